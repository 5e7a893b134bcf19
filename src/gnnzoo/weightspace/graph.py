"""Checkpoints as neural graphs (Kofinas et al., ICLR 2024) and back.

A gnnzoo backbone of ``L`` layers is, per layer, a linear map on channels (message passing has no
parameters), so its state dict is a layered graph:

* **nodes**: one per neuron: the ``in_channels`` input neurons, then the output neurons of every layer (a
  GIN layer's inner hidden neurons are a layer of their own). Node features: ``[bias, extra, att_src,
  att_dst]`` (0 for the inputs; ``extra`` is GIN's ε on the layer's output neurons; ``att_*`` are GAT's
  attention vectors, one entry per output channel); 0 where a backbone has no such parameter;
* **edges**: one per weight, from neuron ``i`` of a layer's input to neuron ``j`` of its output, carrying
  ``[W[j, i], W_root[j, i], 0]``: SAGE's neighbour and root weights (``lin_l``, ``lin_r``); the second entry
  is 0 for the other backbones;
* **GAT heads**: a hidden GAT layer with ``H`` heads gets ``H`` head nodes (``node_kind`` 3), each linked to
  its channels by structural edges ``[0, 0, 1]``. Channels then permute freely only within a head, and whole
  heads permute together with their channels: exactly the symmetries of the weights;
* **positions**: every input neuron and every output neuron has its own slot; all the neurons of one hidden
  layer share one (so hidden neurons stay permutable: the symmetry of the weights). The graph stores each
  node's ``node_kind`` (0 input, 1 hidden, 2 output, 3 GAT head) and ``node_rank`` (the input's or output's index, the
  hidden layer's number from 1); an encoder maps them onto its table of learned vectors;
* a ``layer`` index per node and per edge (used by the statistics baseline).

``to_graph(spec, state)`` and ``from_graph(spec, graph)`` are exact inverses. Edges stay a sparse list
(Cora's 1433 inputs give 1433 x hidden edges, never a dense N x N tensor). Backbones: mlp, gcn, sage, gin,
gat, appnp; normalization layers are not built yet (:class:`UnsupportedBackbone`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

NODE_DIM = 4  # [bias, extra, att_src, att_dst]
EDGE_DIM = 3  # [weight, root weight, head link]


class UnsupportedBackbone(ValueError):
    """A checkpoint whose architecture has no neural-graph construction (yet)."""


@dataclass(frozen=True)
class Linear:
    """One linear map of the backbone as the graph sees it: parameter names (``root``: SAGE's ``lin_r``;
    ``extra``: a scalar added as the output neurons' second feature, GIN's ε)."""

    weight: str
    bias: str | None
    root: str | None = None
    extra: str | None = None
    att: tuple[str, str] | None = None  # GAT (att_src, att_dst), shaped [1, heads, channels]
    heads: int = 1  # GAT: head nodes of this layer's outputs (1 = none)


@dataclass(frozen=True)
class GraphSpec:
    """How a backbone's state dict maps onto its neural graph."""

    backbone: str
    layers: tuple[Linear, ...]
    sizes: tuple[int, ...]  # neurons per graph layer: inputs, then each linear map's outputs

    @property
    def num_heads(self) -> int:
        return sum(lin.heads for lin in self.layers if lin.heads > 1)

    @property
    def num_nodes(self) -> int:
        return sum(self.sizes) + self.num_heads


# the linear maps a problem's model adds after its backbone (gnnzoo.backbones.heads), in the order they apply:
# a graph classifier's head (after the parameter-free readout), a link predictor's MLP decoder (after the
# parameter-free Hadamard product of two embeddings); the dot decoder has no parameters
HEAD_LAYERS = (
    ("head.weight", "head.bias"),
    ("decoder.lin1.weight", "decoder.lin1.bias"),
    ("decoder.lin2.weight", "decoder.lin2.bias"),
)


def spec_of(backbone: str, state: dict[str, Tensor]) -> GraphSpec:
    """The :class:`GraphSpec` of a gnnzoo checkpoint (``backbone``: its config name): a backbone's state dict, or
    a link predictor's / graph classifier's (``gnn.*``, then ``decoder.*`` or ``head.*``: their linear maps are
    the last layers of the graph)."""
    root = "gnn." if any(k.startswith("gnn.layers.") for k in state) else ""
    n_layers = 1 + max((int(k.split(".")[1 + bool(root)]) for k in state if k.startswith(root + "layers.")), default=-1)
    if n_layers == 0:
        raise UnsupportedBackbone(f"{backbone}: no `layers.<i>` parameters in the state dict")
    layers = _backbone_layers(backbone, state, root, n_layers)
    layers += [Linear(w, _opt(state, b)) for w, b in HEAD_LAYERS if w in state]
    placed = {name for lin in layers for name in (lin.weight, lin.bias, lin.root, lin.extra, *(lin.att or ()))}
    extra = sorted(
        k
        for k in state
        if k.startswith((root + "layers.", root + "norms.", "head.", "decoder."))
        and k not in placed
        and not k.endswith("num_batches_tracked")
    )
    if extra:
        raise UnsupportedBackbone(
            f"{backbone}: parameters without a place in the neural graph: {extra[:5]} "
            "(normalization layers are not built yet)"
        )
    sizes = [state[layers[0].weight].shape[1]] + [state[lin.weight].shape[0] for lin in layers]
    for a, lin in enumerate(layers):
        if state[lin.weight].shape[1] != sizes[a]:
            raise UnsupportedBackbone(
                f"{backbone}: {lin.weight} has input width {state[lin.weight].shape[1]}, "
                f"the previous layer has {sizes[a]} outputs"
            )
    return GraphSpec(backbone, tuple(layers), tuple(int(s) for s in sizes))


def _backbone_layers(backbone: str, state: dict[str, Tensor], root: str, n_layers: int) -> list[Linear]:
    """The linear maps of a backbone's ``n_layers`` message-passing layers (names under ``root``)."""
    layers: list[Linear] = []
    for i in range(n_layers):
        prefix = f"{root}layers.{i}."
        if backbone in ("mlp", "appnp"):
            layers.append(Linear(prefix + "weight", _opt(state, prefix + "bias")))
        elif backbone == "gcn":
            layers.append(Linear(prefix + "lin.weight", _opt(state, prefix + "bias")))
        elif backbone == "sage":
            layers.append(
                Linear(prefix + "lin_l.weight", _opt(state, prefix + "lin_l.bias"), root=prefix + "lin_r.weight")
            )
        elif backbone == "gin":
            eps = prefix + "eps" if prefix + "eps" in state else None
            layers.append(Linear(prefix + "nn.0.weight", _opt(state, prefix + "nn.0.bias")))
            layers.append(Linear(prefix + "nn.2.weight", _opt(state, prefix + "nn.2.bias"), extra=eps))
        elif backbone == "gat":
            if prefix + "lin.weight" not in state:
                raise UnsupportedBackbone(f"gat: {prefix}lin.weight missing (bipartite GAT layers are not built)")
            heads = int(state[prefix + "att_src"].shape[1])
            last = i == n_layers - 1
            layers.append(
                Linear(
                    prefix + "lin.weight",
                    _opt(state, prefix + "bias"),
                    att=(prefix + "att_src", prefix + "att_dst"),
                    heads=1 if last else heads,
                )
            )
            if last and heads > 1:
                raise UnsupportedBackbone("gat: an output layer with several heads (out_heads > 1) is not built")
        else:
            raise UnsupportedBackbone(
                f"backbone {backbone!r} has no neural-graph construction yet (built: mlp, gcn, sage, gin, gat, appnp)"
            )
    return layers


def _opt(state, name):
    return name if name in state else None


def kinds_and_ranks(spec: GraphSpec) -> tuple[Tensor, Tensor]:
    """``node_kind`` (0 input, 1 hidden, 2 output, 3 GAT head) and ``node_rank`` (input/output index; hidden
    layer number)."""
    s = spec.sizes
    kind = [torch.zeros(s[0], dtype=torch.long)]
    rank = [torch.arange(s[0])]
    for k in range(1, len(s) - 1):
        kind.append(torch.ones(s[k], dtype=torch.long))
        rank.append(torch.full((s[k],), k))
    kind.append(torch.full((s[-1],), 2))
    rank.append(torch.arange(s[-1]))
    for a, lin in enumerate(spec.layers):  # GAT head nodes: kind 3, ranked by the hidden layer they group
        if lin.heads > 1:
            kind.append(torch.full((lin.heads,), 3))
            rank.append(torch.full((lin.heads,), a + 1))
    return torch.cat(kind), torch.cat(rank)


def to_graph(spec: GraphSpec, state: dict[str, Tensor]) -> Data:
    """The neural graph of ``state``: ``x [N, 2]``, ``edge_index [2, E]``, ``edge_attr [E, 2]``, ``node_kind``,
    ``node_rank``, ``node_layer`` and ``edge_layer`` (-1 for GAT's structural head edges)."""
    sizes = spec.sizes
    offsets = [0]
    for k in sizes:
        offsets.append(offsets[-1] + k)
    node_x = torch.zeros(spec.num_nodes, NODE_DIM)
    src, dst, attr, elayer = [], [], [], []
    for layer, lin in enumerate(spec.layers):
        weight = state[lin.weight].detach().float()
        n_out, n_in = weight.shape
        row, col = torch.meshgrid(torch.arange(n_out), torch.arange(n_in), indexing="ij")  # row-major over W
        src.append(offsets[layer] + col.reshape(-1))
        dst.append(offsets[layer + 1] + row.reshape(-1))
        eattr = torch.zeros(weight.numel(), EDGE_DIM)
        eattr[:, 0] = weight.reshape(-1)
        if lin.root is not None:
            eattr[:, 1] = state[lin.root].detach().float().reshape(-1)
        attr.append(eattr)
        elayer.append(torch.full((weight.numel(),), layer))
        if lin.bias is not None:
            node_x[offsets[layer + 1] : offsets[layer + 2], 0] = state[lin.bias].detach().float()
        if lin.extra is not None:
            node_x[offsets[layer + 1] : offsets[layer + 2], 1] = state[lin.extra].detach().float().reshape(-1)[0]
        if lin.att is not None:
            node_x[offsets[layer + 1] : offsets[layer + 2], 2] = state[lin.att[0]].detach().float().reshape(-1)
            node_x[offsets[layer + 1] : offsets[layer + 2], 3] = state[lin.att[1]].detach().float().reshape(-1)
    head0 = offsets[-1]
    for layer, lin in enumerate(spec.layers):  # structural edges: head node -> each of its channels
        if lin.heads > 1:
            per = sizes[layer + 1] // lin.heads
            head = head0 + torch.arange(lin.heads).repeat_interleave(per)
            src.append(head)
            dst.append(offsets[layer + 1] + torch.arange(sizes[layer + 1]))
            eattr = torch.zeros(sizes[layer + 1], EDGE_DIM)
            eattr[:, 2] = 1.0
            attr.append(eattr)
            elayer.append(torch.full((sizes[layer + 1],), -1))
            head0 += lin.heads
    node_layer = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    if spec.num_heads:
        node_layer = torch.cat(
            [
                node_layer,
                torch.cat(
                    [torch.full((lin.heads,), layer + 1) for layer, lin in enumerate(spec.layers) if lin.heads > 1]
                ),
            ]
        )
    kind, rank = kinds_and_ranks(spec)
    return Data(
        x=node_x,
        edge_index=torch.stack([torch.cat(src), torch.cat(dst)]),
        edge_attr=torch.cat(attr),
        node_kind=kind,
        node_rank=rank,
        node_layer=node_layer,
        edge_layer=torch.cat(elayer),
        num_nodes=spec.num_nodes,
    )


def from_graph(spec: GraphSpec, graph: Data) -> dict[str, Tensor]:
    """The state dict of a neural graph built by :func:`to_graph` (exact inverse)."""
    s = spec.sizes
    offsets = [0]
    for k in s:
        offsets.append(offsets[-1] + k)
    out: dict[str, Tensor] = {}
    e0 = 0
    for a, lin in enumerate(spec.layers):
        n_in, n_out = s[a], s[a + 1]
        block = graph.edge_attr[e0 : e0 + n_in * n_out]
        e0 += n_in * n_out
        out[lin.weight] = block[:, 0].reshape(n_out, n_in).clone()
        if lin.root is not None:
            out[lin.root] = block[:, 1].reshape(n_out, n_in).clone()
        if lin.bias is not None:
            out[lin.bias] = graph.x[offsets[a + 1] : offsets[a + 2], 0].clone()
        if lin.extra is not None:
            out[lin.extra] = graph.x[offsets[a + 1], 1].clone().reshape(1)  # GIN: a 1-element tensor
        if lin.att is not None:
            heads = lin.heads if lin.heads > 1 else 1
            for col, name in ((2, lin.att[0]), (3, lin.att[1])):
                out[name] = graph.x[offsets[a + 1] : offsets[a + 2], col].clone().reshape(1, heads, n_out // heads)
    return out
