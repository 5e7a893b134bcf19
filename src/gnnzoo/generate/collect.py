"""Step 3 of GNN-Diff: the checkpoints the generator learns from, collected by training on from the best model."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from gnnzoo.generate.params import ParamCodec
from gnnzoo.lit.problems import split_metric, train_loss
from gnnzoo.zoo.store import ZooEntry


def collect(cfg: DictConfig, best: ZooEntry, graph, names: list[str], seed: int) -> tuple[torch.Tensor, list[float]]:
    """``k`` checkpoints of the target parameters: ``restarts`` times, reload the best-val model and train
    only the targets (Adam, ``collect.lr``) on the training nodes (link prediction: edges), one checkpoint per
    epoch; with each its validation metric (accuracy; AUC for link prediction)."""
    from rich.progress import track

    c = cfg.generator.collect
    k, restarts = int(c.k), int(c.restarts)
    per = -(-k // restarts)
    model = best.load(eval_mode=False)
    base = {n: t.clone() for n, t in model.state_dict().items()}
    codec = ParamCodec.from_state(base, names)
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(False)
    targets = [params[n] for n in names]
    for p in targets:
        p.requires_grad_(True)
    d = graph.data
    torch.manual_seed(int(seed))
    vecs, vals = [], []
    steps = [(r, e) for r in range(restarts) for e in range(per)][:k]
    for r, e in track(
        steps,
        description="collecting checkpoints",
        transient=True,
        disable=not cfg.trainer.get("enable_progress_bar", True),
    ):
        if e == 0:
            model.load_state_dict(base)
            opt = torch.optim.Adam(targets, lr=float(c.lr), weight_decay=float(c.get("weight_decay", 0.0)))
        model.train()
        opt.zero_grad()
        loss = train_loss(model, model(d.x, d.edge_index), d)
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            vals.append(split_metric(model, model(d.x, d.edge_index), d, "val"))
        vecs.append(codec.flatten(model.state_dict()))
    return torch.stack(vecs), vals
