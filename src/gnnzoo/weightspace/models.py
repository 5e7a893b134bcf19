"""Encoders of checkpoints (``encoder=``): a batch (``torch_geometric.data.Batch``) of what
:class:`gnnzoo.weightspace.dataset.ZooGraphs` yields -> one prediction per checkpoint, and ``embed(batch)`` -> the
representation the prediction is read from. Each class says what it reads (``reads``).

* :class:`NGGNN` (``ng_gnn``): PNA-style message passing over the weights (mean/max/std aggregation), each
  message modulated by its edge (FiLM: scale and shift from the edge state), edges updated between layers,
  messages both ways along every weight. Reads neural graphs whose first layer is in the dataset's input basis
  (:func:`gnnzoo.weightspace.basis.projected_graph`): positions are one learned vector per virtual input, one per
  hidden layer and one shared by all output neurons (:class:`Positions`), so one encoder reads any dataset and
  any number of classes. Readout: mean and max over the output neurons and over all neurons -> MLP.
  Hidden-neuron permutations of a checkpoint leave its output unchanged.
* :class:`NGTransformer` (``ng_transformer``): relational transformer over the same sparse graph: multi-head
  attention of every neuron over its neighbours along the weights (both ways), the edge state added to the
  keys and values (``torch_geometric.nn.TransformerConv`` with ``edge_dim``), a feed-forward block, edge
  updates between layers; same positions and readout as ``ng_gnn``. Attention runs over the edges, never over
  all node pairs.
* Baselines: :class:`StatNN` (``stat``: per-layer statistics of the raw weights, cached), :class:`HParamsNN`
  (``hparams``: the configuration and epoch only), :class:`ProbeNN` (``probe``: the checkpoint's outputs on a
  fixed sample of its dataset's nodes) and :class:`FlatMLP` (``flat_mlp``: every projected weight and node
  feature flattened; one architecture per query; not invariant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

from gnnzoo.weightspace.graph import EDGE_DIM, NODE_DIM


def _mlp(d_in: int, d_hid: int, d_out: int, layers: int = 2, dropout: float = 0.0) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, d_hid), nn.SiLU(), nn.Dropout(dropout)]
        d = d_hid
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


def _scatter(src: Tensor, index: Tensor, n: int, reduce: str) -> Tensor:
    out = src.new_zeros(n, src.size(-1))
    if reduce == "sum":
        return out.index_add_(0, index, src)
    return out.scatter_reduce_(0, index.view(-1, 1).expand_as(src), src, reduce, include_self=False)


def _graph_pool(h: Tensor, batch: Tensor, n_graphs: int, mask: Tensor | None = None) -> Tensor:
    """[mean, max] of ``h`` per graph (over the nodes in ``mask``)."""
    if mask is not None:
        h, batch = h[mask], batch[mask]
    count = torch.bincount(batch, minlength=n_graphs).clamp(min=1).unsqueeze(-1).to(h.dtype)
    mean = _scatter(h, batch, n_graphs, "sum") / count
    mx = _scatter(h, batch, n_graphs, "amax")
    return torch.cat([mean, mx], -1)


class Positions(nn.Module):
    """Learned position vectors of a neural graph's nodes, sized by the encoder, never by a zoo: one per virtual
    input (the ``k`` principal directions of :mod:`gnnzoo.weightspace.basis`), one per hidden layer (all its
    neurons share it, so they stay permutable), **one for all output neurons** (classes are a set: an encoder
    reads a checkpoint of any number of classes) and one per hidden layer's GAT head nodes.

    Args:
        d: the embedding width.
        inputs: virtual input neurons (``k`` of the input basis); a graph with more is a ``ValueError``.
        max_layers: hidden layers with a vector of their own; deeper layers share the last one.

    Shapes:
        - **input:** ``kind [N]`` (0 input, 1 hidden, 2 output, 3 GAT head), ``rank [N]`` (input index, or
          hidden layer number from 1)
        - **output:** ``[N, d]``
    """

    def __init__(self, d: int, inputs: int, max_layers: int = 8):
        super().__init__()
        self.inputs, self.max_layers = int(inputs), int(max_layers)
        self.table = nn.Embedding(self.inputs + 2 * self.max_layers + 1, d)
        nn.init.normal_(self.table.weight, std=0.1)

    def forward(self, kind: Tensor, rank: Tensor) -> Tensor:
        if bool(((kind == 0) & (rank >= self.inputs)).any()):
            raise ValueError(
                f"a neural graph has more input neurons than the encoder's {self.inputs} virtual inputs: encoders "
                "read checkpoints projected onto their dataset's input basis (gnnzoo.weightspace.basis), with "
                "k = encoder.inputs"
            )
        layer = rank.clamp(1, self.max_layers) - 1
        hidden, output = self.inputs, self.inputs + self.max_layers
        heads = output + 1
        slot = torch.where(
            kind == 0,
            rank,
            torch.where(
                kind == 1, hidden + layer, torch.where(kind == 2, torch.full_like(rank, output), heads + layer)
            ),
        )
        return self.table(slot)


NG_NODE_DIM = NODE_DIM + 1  # the graph's node features + the input projection's residual (basis.projected_graph)


class _NGBase(nn.Module):
    """Input encodings (node features + positions, edge features both ways) and the readout shared by the
    neural-graph encoders."""

    reads = ("graph",)

    def __init__(self, inputs: int, max_layers: int, d: int, d_edge: int, dropout: float, d_out: int):
        super().__init__()
        self.pos = Positions(d, inputs, max_layers)
        self.node_in = nn.Linear(NG_NODE_DIM, d)
        self.edge_in = nn.Linear(EDGE_DIM + 1, d_edge)  # + direction (+1 along the weight, -1 against it)
        self.head = _mlp(4 * d, 2 * d, d_out, layers=3, dropout=dropout)
        self.embed_dim = 4 * d

    def inputs(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if batch.x.size(-1) != NG_NODE_DIM:
            raise ValueError(
                f"neural-graph encoders read projected graphs (x with {NG_NODE_DIM} columns: "
                f"gnnzoo.weightspace.basis.projected_graph); this batch has {batch.x.size(-1)}"
            )
        h = self.node_in(batch.x) + self.pos(batch.node_kind, batch.node_rank)
        src, dst = batch.edge_index
        w = batch.edge_attr
        ones = torch.ones(w.size(0), 1, dtype=w.dtype, device=w.device)
        e = self.edge_in(torch.cat([torch.cat([w, ones], -1), torch.cat([w, -ones], -1)]))
        return h, e, torch.cat([src, dst]), torch.cat([dst, src])

    def readout(self, h: Tensor, batch: Batch) -> Tensor:
        b = (
            batch.batch
            if getattr(batch, "batch", None) is not None
            else torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        )
        g = int(b.max()) + 1 if b.numel() else 1
        return torch.cat([_graph_pool(h, b, g, batch.node_kind == 2), _graph_pool(h, b, g)], -1)

    def forward(self, batch: Batch) -> Tensor:
        return self.head(self.embed(batch)).squeeze(-1)


class EdgeUpdate(nn.Module):
    """``e' = e + Lin(act(Lin_e e + Lin_s h_src + Lin_t h_dst))`` (the node terms computed per node, then
    gathered: the same map as an MLP on ``[e, h_src, h_dst]``, at a fraction of the cost on ~10^5 edges).

    Args:
        d: node width; d_edge: edge width.

    Shapes:
        - **input:** ``h [N, d]``, ``e [E, d_edge]``, ``src [E]``, ``dst [E]``
        - **output:** ``[E, d_edge]``
    """

    def __init__(self, d: int, d_edge: int):
        super().__init__()
        self.lin_e = nn.Linear(d_edge, d_edge)
        self.lin_s = nn.Linear(d, d_edge, bias=False)
        self.lin_t = nn.Linear(d, d_edge, bias=False)
        self.out = nn.Linear(d_edge, d_edge)

    def forward(self, h: Tensor, e: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        return e + self.out(F.silu(self.lin_e(e) + self.lin_s(h)[src] + self.lin_t(h)[dst]))


class NGLayer(nn.Module):
    """One message-passing layer of :class:`NGGNN`: message ``scale(e) * Lin(act(A h_dst + B h_src)) +
    shift(e)`` (the first linear map of an MLP on ``[h_dst, h_src]``, applied per node before the gather),
    aggregated by mean, max and std, then a post-MLP with a residual and LayerNorm.

    Args:
        d: node width; d_edge: edge width; dropout: in the post-MLP.
        update_edges: update the edge states after the node update (every layer but the last).

    Shapes:
        - **input:** ``h [N, d]``, ``e [E, d_edge]``, ``src [E]``, ``dst [E]``
        - **output:** ``(h' [N, d], e' [E, d_edge])``
    """

    def __init__(self, d: int, d_edge: int, dropout: float = 0.0, update_edges: bool = True):
        super().__init__()
        self.msg_dst = nn.Linear(d, d)
        self.msg_src = nn.Linear(d, d, bias=False)
        self.msg_out = nn.Linear(d, d)
        self.film = nn.Linear(d_edge, 2 * d)
        self.post = _mlp(4 * d, d, d, dropout=dropout)
        self.norm = nn.LayerNorm(d)
        self.edge = EdgeUpdate(d, d_edge) if update_edges else None

    def forward(self, h: Tensor, e: Tensor, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
        n = h.size(0)
        scale, shift = self.film(e).chunk(2, -1)
        m = scale * self.msg_out(F.silu(self.msg_dst(h)[dst] + self.msg_src(h)[src])) + shift
        count = torch.bincount(dst, minlength=n).clamp(min=1).unsqueeze(-1).to(h.dtype)
        mean = _scatter(m, dst, n, "sum") / count
        sq = _scatter(m * m, dst, n, "sum") / count
        std = (sq - mean * mean).clamp(min=0).add(1e-6).sqrt()
        mx = _scatter(m, dst, n, "amax")
        h = self.norm(h + self.post(torch.cat([h, mean, mx, std], -1)))
        if self.edge is not None:
            e = self.edge(h, e, src, dst)
        return h, e


class NGGNN(_NGBase):
    """Neural-graph GNN (see the module docstring): permutations of a checkpoint's hidden neurons leave it
    unchanged.

    Args:
        inputs, max_layers: the positional table's size (:class:`Positions`).
        d: node width; d_edge: edge width; layers: message-passing layers; dropout: in the MLPs.
        d_out: outputs per graph (1: the predicted target).

    Shapes:
        - **input:** a ``Batch`` of neural graphs (:func:`gnnzoo.weightspace.graph.to_graph`) of ``G`` graphs
        - **output:** ``forward -> [G]`` (``[G, d_out]`` when ``d_out > 1``); ``embed -> [G, 4 d]``
    """

    def __init__(
        self,
        inputs: int = 32,
        max_layers: int = 8,
        d: int = 32,
        d_edge: int = 16,
        layers: int = 3,
        dropout: float = 0.0,
        d_out: int = 1,
    ):
        super().__init__(inputs, max_layers, d, d_edge, dropout, d_out)
        self.layers = nn.ModuleList(NGLayer(d, d_edge, dropout, update_edges=i < layers - 1) for i in range(layers))

    def embed(self, batch: Batch) -> Tensor:
        h, e, src, dst = self.inputs(batch)
        for layer in self.layers:
            h, e = layer(h, e, src, dst)
        return self.readout(h, batch)


class NGTransformer(_NGBase):
    """Relational transformer over the neural graph's edges (see the module docstring), attention per head
    over each neuron's neighbours along the weights.

    Args and shapes as :class:`NGGNN`, plus ``heads``: attention heads per layer (they must divide ``d``).
    """

    def __init__(
        self,
        inputs: int = 32,
        max_layers: int = 8,
        d: int = 32,
        d_edge: int = 16,
        layers: int = 3,
        heads: int = 4,
        dropout: float = 0.0,
        d_out: int = 1,
    ):
        from torch_geometric.nn import TransformerConv

        super().__init__(inputs, max_layers, d, d_edge, dropout, d_out)
        if d % heads:
            raise ValueError(f"ng_transformer: d={d} must be a multiple of heads={heads}")
        self.attn = nn.ModuleList(
            TransformerConv(d, d // heads, heads=heads, edge_dim=d_edge, dropout=dropout) for _ in range(layers)
        )
        self.norm1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.ffn = nn.ModuleList(_mlp(d, 2 * d, d, dropout=dropout) for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.edge = nn.ModuleList(EdgeUpdate(d, d_edge) for _ in range(layers - 1))

    def embed(self, batch: Batch) -> Tensor:
        h, e, src, dst = self.inputs(batch)
        ei = torch.stack([src, dst])
        for i, attn in enumerate(self.attn):
            h = self.norm1[i](h + attn(h, ei, e))
            h = self.norm2[i](h + self.ffn[i](h))
            if i < len(self.edge):
                e = self.edge[i](h, e, src, dst)
        return self.readout(h, batch)
