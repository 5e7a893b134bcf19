"""Weight features of a checkpoint for the surrogate: ``stat`` (per-layer weight statistics of the neural graph,
training-free, the StatNN features) or a trained neural-graph encoder's ``embed`` (issue 17's
:class:`~gnnzoo.weightspace.encoder.TrainedEncoder`, by its zoo run id). Both read the checkpoint as a neural
graph, so they are invariant to hidden-neuron permutations and work for every backbone the encoder supports."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

Featurizer = Callable[[dict, str], list]  # (state dict, backbone name) -> feature vector


def stat_features(max_layers: int = 4) -> Featurizer:
    from torch_geometric.data import Batch

    from gnnzoo.weightspace.baselines import layer_statistics
    from gnnzoo.weightspace.graph import spec_of, to_graph

    def f(state: dict[str, Tensor], backbone: str) -> list:
        g = Batch.from_data_list([to_graph(spec_of(backbone, state), state)])
        return layer_statistics(g, max_layers)[0].tolist()

    return f


def encoder_features(zoo_dir: str | Path, run_id: str) -> Featurizer:
    from gnnzoo.weightspace.encoder import TrainedEncoder

    enc = TrainedEncoder.from_zoo(zoo_dir, run_id)

    def f(state: dict[str, Tensor], backbone: str) -> list:
        with torch.no_grad():
            return enc.embed(state, backbone)[0].tolist()

    return f


def make_featurizer(weights: str | None, zoo_dir: str | Path) -> Featurizer | None:
    """``None`` / ``"none"``: no weights; ``"stat"``; else a trained encoder's run id in ``zoo_dir``."""
    if weights in (None, "none", "null"):
        return None
    if weights == "stat":
        return stat_features()
    return encoder_features(zoo_dir, str(weights))
