"""Step 3 of GNN-Diff: the checkpoints the generator learns from, collected by training on from the best model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from gnnzoo.generate.params import ParamCodec
from gnnzoo.zoo.store import ZooEntry


def collect(cfg: DictConfig, best: ZooEntry, graph, names: list[str], seed: int) -> tuple[torch.Tensor, list[float]]:
    """``k`` checkpoints of the target parameters: ``restarts`` times, reload the best-val model and train
    only the targets (Adam, ``collect.lr``) on the training nodes, one checkpoint per epoch."""
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
        loss = F.cross_entropy(model(d.x, d.edge_index)[d.train_mask], d.y[d.train_mask])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(d.x, d.edge_index).argmax(-1)
        vals.append(float((pred[d.val_mask] == d.y[d.val_mask]).float().mean()))
        vecs.append(codec.flatten(model.state_dict()))
    return torch.stack(vecs), vals
