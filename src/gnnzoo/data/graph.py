"""``load_graph(cfg)``: the graph a config names, loaded once per process."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gnnzoo.data.datasets import GraphData
from gnnzoo.data.problems import prepare, problem_of
from gnnzoo.utils.config import instantiate_clean
from gnnzoo.utils.errors import ConfigError

# The last graph loaded in this process, keyed by its resolved loader config and roots: sweeps that run
# many jobs in one process (joblib workers, the batched launcher, soups) load and preprocess it once.
_GRAPH_CACHE: dict[str, GraphData] = {}


def graph_spec(cfg: DictConfig | dict) -> dict[str, Any]:
    """What determines the graph: the resolved ``dataset.loader`` (a record's config or a live one).
    Two runs saw the same graph exactly when their specs are equal (name, split, seed, sizes ...)."""
    loader = cfg["dataset"]["loader"]
    return OmegaConf.to_container(loader, resolve=True) if isinstance(loader, DictConfig) else dict(loader)


def load_graph(cfg: DictConfig) -> GraphData:
    """Instantiate ``cfg.dataset.loader`` with the data/cache roots, check its declared dims, and prepare it for
    ``cfg.problem`` (link prediction's edge split, graph classification's folds; see :mod:`gnnzoo.data.problems`).

    The graph is cached in-process (one entry); each call gets its own shallow copy (new ``Data``
    stores over the same tensors), so moving a copy to a device or setting attributes on it does not
    touch the cached one. Tensors are shared: nothing in gnnzoo writes into them in place."""
    key = json.dumps([graph_spec(cfg), str(cfg.paths.data_dir), str(cfg.paths.cache_dir)], sort_keys=True, default=str)
    cached = _GRAPH_CACHE.get(key)
    if cached is None:
        cached = instantiate_clean(cfg.dataset.loader, data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir)
        _GRAPH_CACHE.clear()
        _GRAPH_CACHE[key] = cached
    graph = dataclasses.replace(cached, data=copy.copy(cached.data), info=dict(cached.info))
    for name in ("num_features", "num_classes"):
        declared, actual = cfg.dataset.get(name), getattr(graph, name)
        if declared is not None and int(declared) != int(actual):
            raise ConfigError(
                f"dataset/{cfg.dataset.name}.yaml declares {name}={declared} but the data has "
                f"{actual}; fix the yaml (backbone dims are interpolated from it)"
            )
    try:
        return prepare(graph, problem_of(cfg))
    except ValueError as e:
        raise ConfigError(str(e)) from None
