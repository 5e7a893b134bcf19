"""Trained encoders: build one from its config and the zoo's sizes, and load one back from the zoo with
``embed(state)`` / ``predict(state)`` (what the generator and the forecasting sweeper use)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import Tensor, nn
from torch_geometric.data import Batch

from gnnzoo.utils.errors import ConfigError
from gnnzoo.weightspace.graph import spec_of, to_graph
from gnnzoo.zoo.store import Zoo, ZooError


def data_dims(graphs) -> dict[str, Any]:
    """What an encoder's size depends on, over a set of neural graphs."""
    dims = {"max_inputs": 0, "max_hidden": 0, "max_outputs": 0, "max_layers": 0, "num_params": set()}
    for g in graphs:
        kind = g.node_kind
        dims["max_inputs"] = max(dims["max_inputs"], int((kind == 0).sum()))
        dims["max_outputs"] = max(dims["max_outputs"], int((kind == 2).sum()))
        dims["max_hidden"] = max(dims["max_hidden"], int(g.node_layer.max()) - 1)
        dims["max_layers"] = max(dims["max_layers"], int(g.edge_layer.max()) + 1)
        dims["num_params"].add(int(g.edge_attr.numel() + g.x.numel()))
    return dims


def build_encoder(model_cfg: dict, dims: dict[str, Any]) -> tuple[nn.Module, dict]:
    """Instantiate ``model_cfg`` (``_target_`` + options) with the data-dependent sizes it takes; returns the
    module and the full kwargs (recorded, so the entry can be rebuilt)."""
    cfg = dict(model_cfg)
    cls = get_class(cfg.pop("_target_"))
    accepted = inspect.signature(cls).parameters
    for key in ("max_inputs", "max_hidden", "max_outputs", "max_layers"):
        if key in accepted and key not in cfg:
            cfg[key] = dims[key]
    if "num_params" in accepted and "num_params" not in cfg:
        sizes = dims["num_params"]
        if len(sizes) != 1:
            raise ConfigError(
                f"encoder=flat_mlp reads checkpoints of one architecture; this zoo query has "
                f"{len(sizes)} parameter counts ({sorted(sizes)[:5]}). Use encoder=ng_gnn or stat, or "
                "narrow encoder.zoo (backbones, and one hidden size)"
            )
        cfg["num_params"] = next(iter(sizes))
    return cls(**cfg), {"_target_": f"{cls.__module__}.{cls.__name__}", **cfg}


class TrainedEncoder:
    """A trained encoder from the zoo: ``predict(state, backbone)`` (the target, e.g. validation accuracy) and
    ``embed(state, backbone)`` (the invariant representation), for the generator and the sweeper."""

    def __init__(self, model: nn.Module, y_mean: float, y_std: float):
        self.model = model.eval()
        self.y_mean, self.y_std = y_mean, y_std

    @classmethod
    def from_zoo(cls, zoo: Zoo | str | Path, run_id: str) -> "TrainedEncoder":
        zoo = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
        entry = zoo[run_id]
        rec = entry.record
        if rec.get("kind") != "encoder":
            raise ZooError(f"zoo entry {run_id} is a {rec.get('kind')!r} entry, not an encoder")
        info = rec.get("encoder")
        if not isinstance(info, dict) or not {"model", "y_mean", "y_std"} <= set(info):
            raise ZooError(
                f"zoo entry {run_id} (kind encoder) has no usable 'encoder' block in "
                f"{entry.path / 'record.json'} (it needs model, y_mean and y_std): it was not written by "
                "task=encoder, or the record is damaged; train the encoder again"
            )
        model, _ = build_encoder(info["model"], {})
        model.load_state_dict(entry.state_dict())
        return cls(model, info["y_mean"], info["y_std"])

    def _batch(self, states, backbone: str) -> Batch:
        states = [states] if isinstance(states, dict) else list(states)
        return Batch.from_data_list([to_graph(spec_of(backbone, s), s) for s in states])

    @torch.no_grad()
    def embed(self, state: dict[str, Tensor] | list, backbone: str) -> Tensor:
        """``[n, embed_dim]`` for one state dict (n = 1) or a list of them."""
        return self.model.embed(self._batch(state, backbone))

    @torch.no_grad()
    def predict_graphs(self, graphs, batch_size: int = 16) -> Tensor:
        """Predictions for neural graphs (e.g. a :class:`~gnnzoo.weightspace.dataset.ZooGraphs`), in order."""
        from torch_geometric.loader import DataLoader

        return torch.cat(
            [self.model(b) * self.y_std + self.y_mean for b in DataLoader(graphs, batch_size=batch_size, shuffle=False)]
        )

    @torch.no_grad()
    def predict(self, state: dict[str, Tensor] | list, backbone: str) -> Tensor:
        return self.model(self._batch(state, backbone)) * self.y_std + self.y_mean
