"""Config checks that run before any work, so bad values fail fast with a clear message."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from gnnzoo.utils.errors import ConfigError


def _range(cfg: DictConfig, key: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    node, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, node) if node else cfg
    if parent is None or leaf not in parent or parent[leaf] is None:
        return
    v = parent[leaf]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{key} must be a number, got {v!r}")
    bad = (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi))
    if bad:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ConfigError(f"{key}={v} is out of range: expected a value in {lb}{lo}, {hi}{rb}")


# the validation metrics a backbone run logs every epoch: what `monitor.metric` may name
LOGGED_VAL_METRICS = ("val/acc", "val/loss")
# the problems a run can be asked to solve (`problem=`), and what each logs beside them
PROBLEMS = ("node", "link", "graph")


def logged_val_metrics(cfg: DictConfig) -> tuple[str, ...]:
    """The validation metrics a run of ``cfg``'s problem logs every epoch (link prediction adds AUC, AP, Hits@K)."""
    problem = cfg.get("problem") or {}
    if problem.get("name", "node") == "link":
        return ("val/auc", "val/ap", f"val/hits@{problem.get('hits_k', 20)}") + LOGGED_VAL_METRICS
    return LOGGED_VAL_METRICS


def problem_name(cfg: DictConfig) -> str:
    return str((cfg.get("problem") or {}).get("name", "node"))


def check_problem(cfg: DictConfig) -> None:
    """The problem exists, the dataset declares it (``dataset.problems``), and its settings can be honoured."""
    name = problem_name(cfg)
    if name not in PROBLEMS:
        raise ConfigError(f"problem={name!r} is not a problem gnnzoo solves: use one of {', '.join(PROBLEMS)}")
    supported = list(cfg.dataset.get("problems") or ["node"])
    if name not in supported:
        raise ConfigError(
            f"dataset={cfg.dataset.name} does not support problem={name}: it declares {', '.join(supported)} "
            f"(dataset/{cfg.dataset.name}.yaml, `problems`)"
        )
    fold = cfg.get("fold", 0)
    if name != "graph" and fold not in (0, None):
        raise ConfigError(f"fold={fold} is the test fold of graph classification; problem={name} has no folds")
    if name != "node" and cfg.get("data") is not None and cfg.data.get("batch_size") is not None:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} (neighbour sampling) is for node classification; problem={name} "
            + ("trains full-batch on the message-passing graph" if name == "link" else "sets problem.batch_size")
        )
    if name == "link":
        _range(cfg, "problem.neg_ratio", 0, float("inf"), lo_open=True)
        _range(cfg, "problem.hits_k", 1, float("inf"))
        _choice(cfg, "problem.decoder", ("dot", "mlp"))
    if name == "graph":
        _choice(cfg, "problem.readout", ("sum", "mean"))
        folds = cfg.problem.get("folds", 10)
        if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < folds:
            raise ConfigError(f"fold={fold!r}: expected a whole number in [0, {folds - 1}] (problem.folds={folds})")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(choices)}")


def check_config(cfg: DictConfig) -> None:
    inf = float("inf")
    _range(cfg, "backbone.dropout", 0, 1, hi_open=True)
    _range(cfg, "backbone.attn_dropout", 0, 1, hi_open=True)
    _range(cfg, "backbone.num_layers", 1, inf)
    _range(cfg, "backbone.hidden_channels", 1, inf)
    _range(cfg, "optimizer.lr", 0, inf, lo_open=True)
    _range(cfg, "optimizer.weight_decay", 0, inf)
    _range(cfg, "optimizer.momentum", 0, 1)
    _range(cfg, "trainer.max_epochs", 1, inf)
    _range(cfg, "zoo.snapshot_every", 0, inf)
    _range(cfg, "zoo.parallel_models", 1, inf)
    _range(cfg, "monitor.patience", 0, inf)
    threads = cfg.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads={threads!r}: expected null (torch's default) or a whole number >= 1")
    if cfg.monitor.mode not in ("min", "max"):
        raise ConfigError(f"monitor.mode must be 'min' or 'max', got {cfg.monitor.mode!r}")
    check_problem(cfg)
    logged = logged_val_metrics(cfg)
    if cfg.monitor.metric not in logged:
        raise ConfigError(
            f"monitor.metric={cfg.monitor.metric!r} is not a metric a run logs: it selects the best "
            f"epoch, so it must be one of the validation metrics {', '.join(logged)}"
        )


def is_multirun() -> bool:
    """True inside a Hydra multirun job."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def instantiate_clean(node, **kwargs):
    """``hydra.utils.instantiate`` that re-raises gnnzoo's own errors (missing data, bad values) as
    they are, instead of wrapped in Hydra's InstantiationException with the message as a repr."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, (FileNotFoundError, ValueError, ImportError)):
            raise cause from None
        raise


# config groups of the methods built on top of backbone runs: a plain run's config carries none of them
METHOD_GROUPS = ("task", "soup", "pruning", "encoder", "generator")
# the key of a method group that names its option (null at the neutral default `none`) and the task it selects
METHOD_CHOICE = {
    "soup": ("strategy", "soup"),
    "pruning": ("method", "prune"),
    "encoder": ("name", "encoder"),
    "generator": ("name", "generate"),
}


def active_methods(cfg: DictConfig) -> list[str]:
    """``soup=learned`` -> ``["soup=learned"]``: the method groups set away from their neutral default."""
    out = []
    for group, (key, _) in METHOD_CHOICE.items():
        node = cfg.get(group)
        if node is not None and node.get(key):
            out.append(f"{group}={node.get(key)}")
    return out


# (task, problem) pairs a method does not solve (yet): refused with one error before any work
UNSUPPORTED = {("generate", "graph"): "GNN-Diff generates node classifiers and link predictors"}


def check_one_method(cfg: DictConfig, task: str) -> None:
    """One method per run: ``task`` (backbone | soup | prune ...) accepts only its own group's choice, and only the
    problems it solves (:data:`UNSUPPORTED`)."""
    problem = problem_name(cfg)
    why = UNSUPPORTED.get((task, problem))
    if why:
        raise ConfigError(f"task={task} does not run on problem={problem}: {why}")
    active = active_methods(cfg)
    foreign = [a for a in active if METHOD_CHOICE[a.split("=")[0]][1] != task]
    if foreign:
        raise ConfigError(
            f"{', '.join(active)} given with task={task}: one method per run (each of "
            f"{', '.join(active)} selects its own task; drop the others, or an explicit task=...)"
        )


def backbone_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` as the plain backbone run a method trains on the way (ingredients, a ticket's dense run):
    the same config without the method groups, so its record shows what it is. Its run id is ``cfg``'s."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for group in METHOD_GROUPS:
        plain.pop(group, None)
    return OmegaConf.create(plain)
