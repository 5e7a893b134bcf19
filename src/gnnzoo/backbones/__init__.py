from gnnzoo.backbones.models import APPNP, BACKBONES, GAT, GCN, GIN, MLP, SAGE, Backbone, dropout_input

__all__ = ["APPNP", "BACKBONES", "GAT", "GCN", "GIN", "MLP", "SAGE", "Backbone", "dropout_input"]
