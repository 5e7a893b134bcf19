from gnnzoo.backbones.build import build_backbone
from gnnzoo.backbones.models import APPNP, BACKBONES, GAT, GCN, GIN, MLP, SAGE, Backbone, dropout_input
from gnnzoo.backbones.pruned import EdgeUnits, PrunedBackbone

__all__ = [
    "APPNP",
    "BACKBONES",
    "GAT",
    "GCN",
    "GIN",
    "MLP",
    "SAGE",
    "Backbone",
    "EdgeUnits",
    "PrunedBackbone",
    "build_backbone",
    "dropout_input",
]
