"""Peak memory of a block of work: CUDA allocator peak on GPU, sampled process RSS on CPU."""

from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.peak_mb`` (absolute peak during the block) and
    ``pm.delta_mb`` (peak minus the level at entry). CPU: RSS sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.005, device: str | None = None):
        self.interval = interval
        self.cuda = device == "cuda" or (device is None and torch.cuda.is_available() and torch.cuda.is_initialized())
        self.peak_mb = self.start_mb = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, proc.memory_info().rss / 2**20)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / 2**20
        else:
            self.start_mb = self.peak_mb = psutil.Process().memory_info().rss / 2**20
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, psutil.Process().memory_info().rss / 2**20)

    @property
    def delta_mb(self) -> float:
        return max(0.0, self.peak_mb - self.start_mb)
