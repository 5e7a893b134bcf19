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
from gnnzoo.weightspace.basis import InputBasis, projected_graph
from gnnzoo.weightspace.graph import spec_of, to_graph
from gnnzoo.zoo.store import Zoo, ZooError


def build_encoder(model_cfg: dict, dims: dict[str, Any]) -> tuple[nn.Module, dict]:
    """Instantiate ``model_cfg`` (``_target_`` + options) with the data-dependent sizes it takes (``inputs``: the
    input basis's ``k``; ``num_params``: flat_mlp's one parameter count, from ``dims["num_params"]``, a set);
    returns the module and the full kwargs (recorded, so the entry can be rebuilt)."""
    cfg = dict(model_cfg)
    target = cfg.pop("_target_")
    moved = ("StatNN", "FlatMLP", "HParamsNN", "ProbeNN")  # entries written before the baselines had their module
    if target.rsplit(".", 1) in [["gnnzoo.weightspace.models", m] for m in moved]:
        target = "gnnzoo.weightspace.baselines." + target.rsplit(".", 1)[1]
    cls = get_class(target)
    accepted = inspect.signature(cls).parameters
    if "inputs" in accepted and "inputs" not in cfg and "inputs" in dims:
        cfg["inputs"] = int(dims["inputs"])
    if "num_params" in accepted and "num_params" not in cfg:
        sizes = dims.get("num_params") or set()
        if len(sizes) != 1:
            raise ConfigError(
                f"encoder=flat_mlp reads checkpoints of one architecture; this zoo query has "
                f"{len(sizes)} parameter counts ({sorted(sizes)[:5]}). Use encoder=ng_gnn or stat for mixed zoos, "
                "or narrow encoder.zoo (one backbone, width and depth)"
            )
        cfg["num_params"] = next(iter(sizes))
    return cls(**cfg), {"_target_": f"{cls.__module__}.{cls.__name__}", **cfg}


class TrainedEncoder:
    """A trained encoder from the zoo: ``predict(state, backbone)`` (the target, e.g. validation accuracy) and
    ``embed(state, backbone)`` (the invariant representation), for the generator and the sweeper.

    Neural-graph encoders read the checkpoint in its dataset's input basis: the entry stores the bases of the
    datasets it was trained on (``bases``); pass ``dataset=`` where a state's input width matches several, or
    :meth:`add_basis` for a dataset it has not seen."""

    def __init__(self, model: nn.Module, y_mean: float, y_std: float, bases: dict[str, InputBasis] | None = None):
        self.model = model.eval()
        self.y_mean, self.y_std = y_mean, y_std
        self.bases = dict(bases or {})

    @classmethod
    def from_zoo(
        cls, zoo: Zoo | str | Path, run_id: str, datasets: dict[str, dict] | None = None, paths=None
    ) -> "TrainedEncoder":
        """The encoder ``run_id`` of ``zoo``. ``datasets`` (name -> dataset config; ``paths`` for its data and
        cache): datasets whose checkpoints it must read although it was not trained on them (a search's or a
        generator's own dataset); their input bases are computed from the data (or read from the cache) here."""
        enc = cls._load(zoo if isinstance(zoo, Zoo) else Zoo(zoo), run_id)
        unseen = {name: cfg for name, cfg in (datasets or {}).items() if name not in enc.bases}
        if unseen and enc.bases:  # (an encoder without bases reads weight statistics: any dataset)
            from gnnzoo.weightspace.dataset import input_bases

            if paths is None:
                raise ValueError(f"encoder {run_id} has no input basis for {', '.join(unseen)}: pass paths= to read it")
            for basis in input_bases(unseen, paths, next(iter(enc.bases.values())).k).values():
                enc.add_basis(basis)
        return enc

    @classmethod
    def _load(cls, zoo: Zoo, run_id: str) -> "TrainedEncoder":
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
        try:
            model, _ = build_encoder(info["model"], {})
        except TypeError as e:
            raise ZooError(
                f"zoo entry {run_id}: its encoder ({info['model'].get('_target_')}) was written by an older gnnzoo "
                f"whose encoders had per-feature input tables ({e}); train it again with this version"
            ) from e
        state = entry.state_dict()
        bases = InputBasis.from_tensors(state)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("basis.")})
        return cls(model, info["y_mean"], info["y_std"], bases)

    def add_basis(self, basis: InputBasis) -> None:
        """Read checkpoints of ``basis.dataset`` (a dataset the encoder was not trained on) in this basis."""
        k = getattr(getattr(self.model, "pos", None), "inputs", basis.k)
        if basis.k != k:
            raise ValueError(f"this encoder reads {k} virtual inputs; the basis of {basis.dataset!r} has {basis.k}")
        self.bases[basis.dataset] = basis

    def _basis(self, state: dict[str, Tensor], backbone: str, dataset: str | None) -> InputBasis:
        if dataset is not None:
            if dataset not in self.bases:
                raise ValueError(
                    f"this encoder has no input basis for dataset {dataset!r} (it has: {', '.join(self.bases)}); "
                    "add one with TrainedEncoder.add_basis(gnnzoo.weightspace.basis.input_basis(name, x))"
                )
            return self.bases[dataset]
        width = int(state[spec_of(backbone, state).layers[0].weight].size(1))
        fits = [b for b in self.bases.values() if b.num_features == width]
        if len(fits) != 1:
            raise ValueError(
                f"a checkpoint with {width} input features matches {len(fits)} of this encoder's input bases "
                f"({', '.join(f'{b.dataset}: {b.num_features}' for b in self.bases.values())}); pass dataset="
            )
        return fits[0]

    def _batch(self, states, backbone: str, dataset: str | None) -> Batch:
        states = [states] if isinstance(states, dict) else list(states)
        reads = tuple(getattr(self.model, "reads", ("graph",)))
        if reads == ("stats",):  # the raw weights' statistics, computed from the graph
            return Batch.from_data_list([to_graph(spec_of(backbone, s), s) for s in states])
        if "graph" not in reads:
            raise ValueError(
                f"{type(self.model).__name__} reads {', '.join(reads)} (a checkpoint's record or its outputs on data), "
                "not its weights alone: it has no embed(state) (use ng_gnn, ng_transformer, stat or flat_mlp)"
            )
        return Batch.from_data_list([projected_graph(backbone, s, self._basis(s, backbone, dataset)) for s in states])

    @torch.no_grad()
    def embed(self, state: dict[str, Tensor] | list, backbone: str, dataset: str | None = None) -> Tensor:
        """``[n, embed_dim]`` for one state dict (n = 1) or a list of them."""
        return self.model.embed(self._batch(state, backbone, dataset))

    @torch.no_grad()
    def predict_graphs(self, graphs, batch_size: int = 64) -> Tensor:
        """Predictions for the items of a :class:`~gnnzoo.weightspace.dataset.ZooGraphs` view, in order."""
        from torch_geometric.loader import DataLoader

        return torch.cat(
            [self.model(b) * self.y_std + self.y_mean for b in DataLoader(graphs, batch_size=batch_size, shuffle=False)]
        )

    @torch.no_grad()
    def predict(self, state: dict[str, Tensor] | list, backbone: str, dataset: str | None = None) -> Tensor:
        return self.model(self._batch(state, backbone, dataset)) * self.y_std + self.y_mean
