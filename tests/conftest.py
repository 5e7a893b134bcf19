"""Shared fixtures: compose the real configs with test overrides, paths under tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import gnnzoo  # noqa: F401  (registers the config resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# The README's test command passes GNNZOO_DATA_DIR=../shared/data, relative to where it was started.
# Resolve it once, here, so that tests that start train.py in another working directory (sweeps in
# tmp_path) see the same folder.
if os.environ.get("GNNZOO_DATA_DIR"):
    os.environ["GNNZOO_DATA_DIR"] = str(Path(os.environ["GNNZOO_DATA_DIR"]).expanduser().resolve())

QUIET = ["logger=none", "extras.print_config=false", "trainer.enable_progress_bar=false"]


def shared_data_dir() -> Path | None:
    d = os.environ.get("GNNZOO_DATA_DIR")
    return Path(d) if d and Path(d).is_dir() else None


def make_cfg(overrides=(), tmp: Path | None = None, data_dir: Path | None = None, config_name: str = "train"):
    ov = list(QUIET)
    if tmp is not None:
        ov += [
            f"paths.zoo_dir={tmp}/zoo",
            f"paths.output_dir={tmp}/out",
            f"paths.cache_dir={tmp}/cache",
            f"paths.log_dir={tmp}/logs",
        ]
    if data_dir is not None:
        ov.append(f"paths.data_dir={data_dir}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=ov + list(overrides))


@pytest.fixture
def cfg(tmp_path):
    """``cfg(*overrides)`` -> composed train config writing under tmp_path."""
    return lambda *ov: make_cfg(ov, tmp_path)


@pytest.fixture(scope="session")
def real_data(tmp_path_factory) -> Path:
    """A temporary copy of the shared raw data (Planetoid only; others are linked read-only)."""
    src = shared_data_dir()
    if src is None:
        pytest.skip("GNNZOO_DATA_DIR is not set to the shared raw data folder")
    dst = tmp_path_factory.mktemp("data")
    for sub in ("Planetoid/Cora", "Planetoid/CiteSeer"):
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dst / sub)
    return dst


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


def pytest_collection_modifyitems(config, items):
    """``gpu``-marked tests need CUDA: skipped (with the reason) where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker); this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
