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


def encoder_features(
    zoo_dir: str | Path, run_id: str, datasets: dict[str, dict] | None = None, paths=None
) -> Featurizer:
    """A trained encoder's embedding. ``datasets`` (name -> dataset config, with ``paths`` for its data and cache):
    datasets whose checkpoints the encoder must read although it was not trained on them (the search's own, for an
    encoder trained on other datasets); their input bases are computed (or read from the cache) once, here."""
    from gnnzoo.weightspace.encoder import TrainedEncoder

    enc = TrainedEncoder.from_zoo(zoo_dir, run_id, datasets, paths)

    def f(state: dict[str, Tensor], backbone: str) -> list:
        with torch.no_grad():
            return enc.embed(state, backbone)[0].tolist()

    return f


def make_featurizer(
    weights: str | None, zoo_dir: str | Path, datasets: dict[str, dict] | None = None, paths=None
) -> Featurizer | None:
    """``None`` / ``"none"``: no weights; ``"stat"``; else a trained encoder's run id in ``zoo_dir`` (``datasets``
    and ``paths``: see :func:`encoder_features`)."""
    if weights in (None, "none", "null"):
        return None
    if weights == "stat":
        return stat_features()
    return encoder_features(zoo_dir, str(weights), datasets, paths)


def reference_basis(
    zoo,
    featurizer: Featurizer,
    k: int,
    backbone: str,
    exclude: set[str] | frozenset[str] = frozenset(),
    max_checkpoints: int = 256,
    seed: int = 0,
):
    """The weight basis of a search (:class:`~gnnzoo.search.surrogate.WeightBasis`), fitted on checkpoints already
    in the zoo — completed runs of the same backbone that are not this search's trials (``exclude``): their final
    weights and snapshots, at most ``max_checkpoints`` of them drawn with ``seed``. Returns ``(basis, why)``:
    ``basis`` is None when the zoo holds fewer than ``4 k`` such checkpoints, and ``why`` says so."""
    import numpy as np

    from gnnzoo.search.surrogate import WeightBasis

    items = []
    for e in zoo.entries():
        rec = e.record
        if rec.get("kind", "run") != "run" or e.status != "completed" or rec.get("backbone") != backbone:
            continue
        if e.run_id in exclude:
            continue
        items.append((e, None))
        items += [(e, int(s["epoch"])) for s in rec.get("snapshots") or []]
    need = 4 * k
    if len(items) < need:
        return None, (
            f"the zoo holds {len(items)} checkpoints of completed {backbone} runs outside this search; a "
            f"{k}-direction weight basis needs {need}: the search forecasts without weights (as dyhpo)"
        )
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(items), size=min(max_checkpoints, len(items)), replace=False).tolist())
    feats, unread = [], []
    for i in pick:
        e, epoch = items[i]
        try:
            feats.append(featurizer(e.state_dict() if epoch is None else e.snapshot(epoch), backbone))
        except Exception as err:  # an unreadable or foreign checkpoint is not evidence: left out, and counted
            unread.append(f"{e.run_id}: {type(err).__name__}: {str(err)[:120]}")
    skipped = f" ({len(unread)} unreadable, left out; first: {unread[0]})" if unread else ""
    if len(feats) < need:
        return None, f"only {len(feats)} reference checkpoints were read{skipped}; a {k}-direction basis needs {need}"
    basis = WeightBasis.fit(torch.tensor(feats), k)
    return basis, f"{k} principal directions of {len(feats)} {backbone} checkpoints in the zoo{skipped}"
