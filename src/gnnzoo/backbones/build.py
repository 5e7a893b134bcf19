"""``build_backbone(cfg)``: the configured backbone with its seeded initial weights."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn

from gnnzoo.backbones.heads import for_problem
from gnnzoo.utils.config import instantiate_clean
from gnnzoo.utils.seed import seed_everything


def build_backbone(cfg: DictConfig) -> nn.Module:
    """``cfg.backbone`` instantiated under ``cfg.init_seed`` (equal init seeds give equal weights: init id), inside
    the model its problem trains (``cfg.problem``: a link predictor or a graph classifier around it; node
    classification trains the backbone itself)."""
    seed_everything(cfg.init_seed)
    gnn = instantiate_clean(cfg.backbone)
    problem = cfg.get("problem")
    if problem is None or problem.get("name", "node") == "node":
        return gnn
    return for_problem(gnn, OmegaConf.to_container(problem, resolve=True), int(cfg.dataset.num_classes))
