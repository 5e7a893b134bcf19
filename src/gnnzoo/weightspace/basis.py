"""Input neurons in a data-defined basis: how one encoder reads checkpoints of any dataset.

A first layer ``W [h, F]`` acts on the node features only through ``X Wᵀ``. Project ``W`` onto the top ``k``
principal directions of the dataset's (preprocessed) feature matrix ``X [n, F]``::

    W' = W V_k diag(s_k) / sqrt(n)        # [h, k]

``V_k`` are the top right singular vectors of ``X`` and ``s_k`` its singular values, so ``W'[j, i]`` is the
root-mean-square, over the graph's nodes, of direction ``i``'s contribution to neuron ``j``'s pre-activation:
weights of every dataset in one unit. Input neuron ``i`` of the neural graph is then "the dataset's ``i``-th
principal direction", whatever the dataset and its number of features, so an encoder has ``k`` input slots
instead of one per raw feature (Cora's 1433 inputs become ``k`` = 32 virtual inputs; the 1433 x 16 input layer
of a GCN-16, 99.5% of its weights, becomes 32 x 16). What the projection drops is summarised per first-layer
neuron as ``residual = ||W_j (I - V_k V_kᵀ)|| s_k / sqrt(n)`` (the norm of the weight outside the kept
directions, scaled by the smallest kept singular value), a node feature of its own.

Hidden-neuron permutations commute with the projection (it acts on the input side only), so an encoder of
projected graphs keeps the weights' symmetries. Signs: each singular vector is oriented so that its
largest-magnitude entry is positive (deterministic per dataset). ``X`` is uncentred: the model sees ``X``
itself, not its deviations from the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class InputBasis:
    """The top-``k`` principal directions of one dataset's node features.

    Attributes:
        dataset: the dataset's name.
        directions: ``V_k [F, k]`` (orthonormal columns; zero columns beyond the feature matrix's rank).
        scales: ``s_k / sqrt(n) [k]``.
    """

    dataset: str
    directions: Tensor
    scales: Tensor

    @property
    def num_features(self) -> int:
        return int(self.directions.size(0))

    @property
    def k(self) -> int:
        return int(self.directions.size(1))

    def project(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        """``(W V_k diag(scales) [h, k], residual [h])`` for a first-layer weight ``W [h, F]``."""
        if weight.size(1) != self.num_features:
            raise ValueError(
                f"a first layer with {weight.size(1)} inputs cannot be read in the basis of {self.dataset!r} "
                f"({self.num_features} features)"
            )
        w = weight.double()
        coef = w @ self.directions.double()  # [h, k]
        rest = (w.pow(2).sum(1) - coef.pow(2).sum(1)).clamp(min=0).sqrt()
        smallest = float(self.scales[self.scales > 0].min()) if bool((self.scales > 0).any()) else 0.0
        return (coef * self.scales.double()).float(), (rest * smallest).float()

    def tensors(self) -> dict[str, Tensor]:
        return {f"basis.{self.dataset}.directions": self.directions, f"basis.{self.dataset}.scales": self.scales}

    @classmethod
    def from_tensors(cls, state: dict[str, Tensor]) -> dict[str, "InputBasis"]:
        """The bases stored by :meth:`tensors` in ``state`` (other keys ignored)."""
        names = {k.split(".")[1] for k in state if k.startswith("basis.")}
        return {
            n: cls(n, state[f"basis.{n}.directions"].float(), state[f"basis.{n}.scales"].float()) for n in sorted(names)
        }


def _orient(v: np.ndarray) -> np.ndarray:
    """Each column's largest-magnitude entry made positive (a deterministic sign per direction)."""
    idx = np.abs(v).argmax(0)
    signs = np.sign(v[idx, np.arange(v.shape[1])])
    signs[signs == 0] = 1.0
    return v * signs


def input_basis(dataset: str, x: Tensor, k: int = 32) -> InputBasis:
    """The basis of a feature matrix ``x [n, F]`` (dense, or sparse CSR/COO as gnnzoo's loaders return it).

    The top-``k`` eigenvectors of the Gram matrix ``XᵀX`` (float64, ``numpy.linalg.eigh`` for ``F`` ≤ 4096,
    else ARPACK on the sparse matrix with a fixed start vector): the same data give the same basis."""
    import scipy.sparse as sp

    if k < 1:
        raise ValueError(f"input basis: k={k} must be at least 1")
    n, f = int(x.size(0)), int(x.size(1))
    if x.is_sparse or x.layout in (torch.sparse_csr, torch.sparse_coo):
        coo = x.to_sparse_coo().coalesce()
        idx, val = coo.indices().numpy(), coo.values().double().numpy()
        mat = sp.csr_matrix((val, (idx[0], idx[1])), shape=(n, f))
    else:
        mat = sp.csr_matrix(x.double().numpy())
    kk = min(k, f, n)
    if f <= 4096:
        gram = (mat.T @ mat).toarray()
        vals, vecs = np.linalg.eigh(gram)
        order = np.argsort(vals)[::-1][:kk]
        vals, vecs = vals[order], vecs[:, order]
    else:
        from scipy.sparse.linalg import svds

        kk = min(kk, min(n, f) - 1)
        _, s, vt = svds(mat, k=kk, v0=np.ones(min(n, f)) / math.sqrt(min(n, f)), random_state=0)
        order = np.argsort(s)[::-1]
        vals, vecs = s[order] ** 2, vt[order].T
    vecs = _orient(vecs)
    directions = np.zeros((f, k))
    scales = np.zeros(k)
    directions[:, : vecs.shape[1]] = vecs
    scales[: len(vals)] = np.sqrt(np.clip(vals, 0, None) / max(n, 1))
    return InputBasis(dataset, torch.from_numpy(directions).float(), torch.from_numpy(scales).float())


def projected_graph(backbone: str, state: dict[str, Tensor], basis: InputBasis):
    """:func:`projected` without the spec."""
    return projected(backbone, state, basis)[1]


def projected(backbone: str, state: dict[str, Tensor], basis: InputBasis):
    """``(spec, graph)``: the neural graph an encoder reads: :func:`~gnnzoo.weightspace.graph.to_graph` of ``state``
    with its first layer (and SAGE's root weights) projected onto ``basis`` (``k`` input neurons), and one more
    node-feature column: the projection's residual on the first layer's output neurons (0 elsewhere);
    ``x [N, NODE_DIM + 1]``.
    """
    from gnnzoo.weightspace.graph import spec_of, to_graph

    spec = spec_of(backbone, state)
    first = spec.layers[0]
    projected_state = dict(state)
    w, res = basis.project(state[first.weight].detach().float())
    projected_state[first.weight] = w
    if first.root is not None:
        w_root, res_root = basis.project(state[first.root].detach().float())
        projected_state[first.root] = w_root
        res = (res.pow(2) + res_root.pow(2)).sqrt()
    pspec = spec_of(backbone, projected_state)
    g = to_graph(pspec, projected_state)
    extra = torch.zeros(g.num_nodes, 1)
    extra[basis.k : basis.k + res.numel(), 0] = res
    g.x = torch.cat([g.x, extra], 1)
    return pspec, g
