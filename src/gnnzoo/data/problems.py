"""What a run predicts: node labels (``problem=node``, the default), links (``problem=link``) or graph labels
(``problem=graph``). :func:`prepare` turns a loaded dataset into the problem's data: the edge split of link
prediction (:mod:`gnnzoo.data.links`), the folds of graph classification (:mod:`gnnzoo.data.tu`)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

from gnnzoo.data.datasets import GraphData
from gnnzoo.data.links import split_edges
from gnnzoo.data.tu import fold_masks

PROBLEMS = ("node", "link", "graph")

# the last link split made in this process, keyed by the graph's edges and the split settings: the soups and the
# batched launcher load the same graph many times
_SPLITS: dict[tuple, Any] = {}


def problem_of(cfg: Mapping | None) -> dict:
    """The resolved ``problem`` block of a config (a record's or a live one); ``{"name": "node"}`` when absent."""
    from omegaconf import DictConfig, OmegaConf

    node = cfg.get("problem") if cfg is not None else None
    if node is None:
        return {"name": "node"}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def prepare(graph: GraphData, problem: Mapping) -> GraphData:
    """``graph`` as the problem needs it (a new GraphData when anything changes; the loaded one is never touched)."""
    name = problem.get("name", "node")
    if name not in PROBLEMS:
        raise ValueError(f"problem={name!r}: expected one of {', '.join(PROBLEMS)}")
    is_set = graph.graphs is not None
    if (name == "graph") != is_set:
        kind = "a set of graphs" if is_set else "one graph"
        raise ValueError(
            f"problem={name} cannot run on {graph.name}: it is {kind}"
            + (" (graph classification: problem=graph)" if is_set else " (node or link prediction)")
        )
    if name == "node":
        return graph
    data = copy.copy(graph.data)
    if name == "link":
        key = (
            graph.data.edge_index.data_ptr(),
            int(graph.data.edge_index.size(1)),
            float(problem["val_ratio"]),
            float(problem["test_ratio"]),
            int(problem["split_seed"]),
        )
        split = _SPLITS.get(key)
        if split is None:
            split = split_edges(graph.data, key[2], key[3], key[4])
            _SPLITS.clear()
            _SPLITS[key] = (graph.data.edge_index, split)  # the edges are held, so their address is not reused
        else:
            split = split[1]
        for k in ("edge_index", "train_pos", "val_edges", "val_labels", "test_edges", "test_labels"):
            data[k] = split[k]
    else:
        data.train_mask, data.val_mask, data.test_mask = fold_masks(
            data.y, int(problem["folds"]), int(problem["fold"]), float(problem["val_ratio"]), int(problem["split_seed"])
        )
    return dataclasses.replace(graph, data=data)
