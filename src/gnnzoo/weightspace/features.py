"""Per-checkpoint feature vectors for the baselines (computed once per checkpoint, cached with the dataset):

* :func:`hparam_features`: the training configuration and the checkpoint's epoch (``hparams``);
* :func:`probe_features`: the checkpoint's outputs on a fixed, seeded sample of its dataset's nodes (``probe``);
* the layer statistics of :func:`gnnzoo.weightspace.baselines.layer_statistics` (``stats``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

BACKBONES = ("mlp", "gcn", "sage", "gat", "gin", "appnp")
OPTIMIZERS = ("adam", "adamw", "sgd")
HPARAM_DIM = 13 + len(BACKBONES) + 1 + len(OPTIMIZERS) + 1


def _num(cfg: dict, *path, default=None):
    v = cfg
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return default
        v = v[p]
    return default if v is None else v


def hparam_features(config: dict, backbone: str, epoch: int) -> Tensor:
    """``[HPARAM_DIM]``: log10 learning rate and weight decay, dropout, log2 width, depth, GAT heads, log2 run
    length, log2 epoch and its fraction of the run, the dataset's log10 features and classes, momentum,
    one-hots of the backbone and the optimizer (an unknown one: the "other" slot). Missing values are 0."""
    opt = _num(config, "optimizer", default={}) or {}
    target = str(opt.get("_target_", "")).rsplit(".", 1)[-1].lower()
    lr = float(opt.get("lr", 0.0) or 0.0)
    wd = float(opt.get("weight_decay", 0.0) or 0.0)
    max_epochs = float(_num(config, "trainer", "max_epochs", default=0) or 0)
    width = float(_num(config, "backbone", "hidden_channels", default=0) or 0)
    heads = float(_num(config, "backbone", "heads", default=0) or 0) if backbone == "gat" else 0.0
    num = [
        math.log10(lr) if lr > 0 else -6.0,
        math.log10(max(wd, 1e-7)),
        float(_num(config, "backbone", "dropout", default=0.0)),
        math.log2(width) if width > 0 else 0.0,
        float(_num(config, "backbone", "num_layers", default=0)),
        math.log2(heads) if heads > 0 else 0.0,
        math.log2(max_epochs) if max_epochs > 0 else 0.0,
        math.log2(max(epoch, 1)),
        epoch / max_epochs if max_epochs > 0 else 0.0,
        math.log10(max(float(_num(config, "dataset", "num_features", default=1)), 1.0)),
        math.log10(max(float(_num(config, "dataset", "num_classes", default=1)), 1.0)),
        float(opt.get("momentum", 0.0) or 0.0),
        float(lr > 0 and wd > 0),
    ]
    bb = [float(backbone == b) for b in BACKBONES] + [float(backbone not in BACKBONES)]
    op = [float(target == o) for o in OPTIMIZERS] + [float(target not in OPTIMIZERS)]
    out = torch.tensor(num + bb + op, dtype=torch.float)
    assert out.numel() == HPARAM_DIM
    return out


PROBE_NODES = 64
PROBE_TOP = 4  # sorted softmax probabilities kept per node
PROBE_NODE_DIM = PROBE_TOP + 2  # + normalised entropy, logit standard deviation
PROBE_GLOBAL_DIM = PROBE_TOP + 1  # sorted predicted-class histogram over the probe nodes + 1 / classes


def probe_nodes(num_nodes: int, seed: int = 0, k: int = PROBE_NODES) -> Tensor:
    """A fixed, seeded sample of ``k`` node indices (the same for every checkpoint of a dataset)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_nodes, generator=gen)[: min(k, num_nodes)].sort().values


def probe_summary(logits: Tensor) -> Tensor:
    """``[P * PROBE_NODE_DIM + PROBE_GLOBAL_DIM]`` from a checkpoint's logits on the probe nodes ``[P, C]``:
    free of the class order (sorted probabilities, entropy, histogram sorted by size), so any number of classes
    maps to one layout."""
    logits = logits.float()
    p, c = logits.shape
    prob = logits.softmax(-1)
    top = prob.sort(-1, descending=True).values[:, :PROBE_TOP]
    if top.size(1) < PROBE_TOP:
        top = torch.cat([top, top.new_zeros(p, PROBE_TOP - top.size(1))], 1)
    ent = -(prob * prob.clamp(min=1e-12).log()).sum(-1) / max(math.log(c), 1e-12)
    spread = logits.std(-1, unbiased=False)
    nodes = torch.cat([top, ent[:, None], spread[:, None]], 1)
    if p < PROBE_NODES:  # a graph smaller than the probe: repeat rows (pooling is mean/max, so nothing new)
        nodes = nodes[torch.arange(PROBE_NODES) % p]
    hist = torch.bincount(prob.argmax(-1), minlength=c).float().sort(descending=True).values / p
    hist = torch.cat([hist, hist.new_zeros(max(0, PROBE_TOP - c))])[:PROBE_TOP]
    return torch.cat([nodes.reshape(-1), hist, torch.tensor([1.0 / c])])


@torch.no_grad()
def probe_features(model: nn.Module, state: dict[str, Tensor], x: Tensor, edge_index: Tensor, nodes: Tensor) -> Tensor:
    """Run ``model`` with ``state`` (eval mode, the whole graph) and summarise its outputs on ``nodes``."""
    from torch.func import functional_call

    model.eval()
    logits = functional_call(model, state, (x, edge_index))
    return probe_summary(logits[nodes])
