"""``build_backbone(cfg)``: the configured backbone with its seeded initial weights."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from gnnzoo.utils.config import instantiate_clean
from gnnzoo.utils.seed import seed_everything


def build_backbone(cfg: DictConfig) -> nn.Module:
    """``cfg.backbone`` instantiated under ``cfg.init_seed``: equal init seeds give equal weights (init id)."""
    seed_everything(cfg.init_seed)
    return instantiate_clean(cfg.backbone)
