"""Hydra sweeper ``hydra/sweeper=fms``: Forecasting Model Search over a search space, spending a budget of
epochs where a deep-kernel GP over (hyperparameters, learning curve, checkpoint weights) forecasts the most
improvement (``gnnzoo.search``).

    python train.py -m hydra/sweeper=fms hydra.sweeper.budget=400 hydra.sweeper.max_epochs=100 \\
        'optimizer.lr=tag(log, interval(1e-3, 1e-1))' 'backbone.dropout=interval(0, 0.8)'

(or the same space as ``hydra.sweeper.params`` in a config file, as for the Optuna sweeper).

Every trial is a resumable backbone run (``zoo.resumable=true``): continuing it by Δ epochs relaunches it with
a larger ``trainer.max_epochs``, and it continues from its last checkpoint in the zoo (same run id, its curve
and optimizer state go on). Jobs go through the configured launcher (``batch_size`` of them at a time). The
search state lives in ``<zoo>/.searches/<search id>/state.json``: the same command after a kill continues the
search, and finished trials are not redone. ``optimization_results.yaml`` and ``search.png`` go to the sweep
folder (and the state folder).
"""

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from gnnzoo.search.state import Settings as _Loop  # the loop's defaults, declared once

log = logging.getLogger("gnnzoo")


@dataclass
class FMSSweeperConf:
    _target_: str = "hydra_plugins.gnnzoo.fms.FMSSweeper"
    # the search space, in the Optuna sweeper's grammar (choice, interval, range, tag(log, ...), a,b,c)
    params: Dict[str, str] = field(default_factory=dict)
    # total epochs the search may train, over all trials (never exceeded)
    budget: int = 1000
    # the largest budget of one trial (null: trainer.max_epochs)
    max_epochs: Optional[int] = None
    n_initial: int = _Loop.n_initial
    # a trial's first budget and each continuation, in epochs (the sweeper's own defaults; the loop's are 1)
    b0: int = 10
    delta: int = 10
    # trials continued per iteration (launched together: parallel with hydra/launcher=local or slurm)
    batch_size: int = _Loop.batch_size
    # fms (hyperparameters + curve + weights) | dyhpo (no weights) | random (random configs, full budget)
    surrogate: str = _Loop.surrogate
    # weight features for surrogate=fms: stat (layer statistics) or the zoo run id of a trained encoder
    weights: str = "stat"
    direction: str = _Loop.direction
    seed: int = _Loop.seed
    # candidate configurations scored each step (the whole grid when it is smaller)
    n_candidates: int = _Loop.n_candidates
    width: int = _Loop.width
    lr: float = _Loop.lr
    fit_steps_initial: int = _Loop.fit_steps_initial
    refit_steps: int = _Loop.refit_steps
    # weight features reduced to k principal directions of checkpoints already in the zoo (0: raw features)
    weights_k: int = _Loop.weights_k
    # forecast with the weights only while they have forecast the observed outcomes better than without them
    guard: bool = _Loop.guard
    guard_warmup: int = _Loop.guard_warmup
    # expected improvement over the best value at the candidate's budget (budget, DyHPO) or at any budget (global)
    incumbent: str = _Loop.incumbent
    extra: List[str] = field(default_factory=list)  # overrides added to every trial


ConfigStore.instance().store(group="hydra/sweeper", name="fms", node=FMSSweeperConf, provider="gnnzoo")


def _leaf_keys(node: Any, prefix: str = "") -> List[str]:
    """Dotted keys of every value in a config (for suggestions)."""
    out: List[str] = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            try:
                child = node._get_node(k)
            except Exception:
                continue
            key = f"{prefix}{k}"
            out += _leaf_keys(child, key + ".") if isinstance(child, DictConfig) else [key]
    return out


class FMSSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        self.opts = dict(kwargs)
        self.config: Optional[DictConfig] = None
        self.launcher = None
        self.hydra_context: Optional[HydraContext] = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _settings(self):
        """The loop's settings: every field of :class:`~gnnzoo.search.state.Settings` read from this sweeper's
        config by name (``max_epochs`` falls back to ``trainer.max_epochs``)."""
        from gnnzoo.search.state import Settings

        names = {f.name for f in fields(Settings)} - {"max_epochs"}
        max_epochs = self.opts.get("max_epochs") or int(self.config.trainer.max_epochs)
        return Settings(max_epochs=int(max_epochs), **{k: self.opts[k] for k in names if k in self.opts})

    def sweep(self, arguments: List[str]) -> Any:
        from gnnzoo.search.loop import Search
        from gnnzoo.search.results import SEARCHES, plot, save_state, summary
        from gnnzoo.search.space import SearchSpace, split_arguments, to_overrides
        from gnnzoo.utils.errors import ConfigError
        from gnnzoo.utils.io import atomic_write_bytes
        from gnnzoo.zoo.ids import hash_id
        from gnnzoo.zoo.store import Zoo

        assert self.config is not None and self.launcher is not None
        fixed, cli_space = split_arguments(arguments)
        params = {**{str(k): str(v) for k, v in (self.opts.get("params") or {}).items()}, **cli_space}
        space = SearchSpace(params)
        for bad in ("trainer.max_epochs", "zoo.resumable"):
            if bad in params or any(a.split("=")[0].lstrip("+~") == bad for a in fixed):
                raise ConfigError(
                    f"{bad} is set by the FMS sweeper for every trial (epochs are the fidelity); "
                    "give the largest budget of one trial as hydra.sweeper.max_epochs=N instead"
                )
        self._check_space(params)
        settings = self._settings()
        settings.check()
        weights = self.opts.get("weights") if settings.surrogate == "fms" else None
        monitor = str(self.config.monitor.metric)
        mode = str(self.config.monitor.mode)
        if (mode == "max") != (settings.direction == "maximize"):
            raise ConfigError(
                f"hydra.sweeper.direction={settings.direction} contradicts monitor.mode={mode} ({monitor})"
            )
        zoo = Zoo(str(self.config.paths.zoo_dir))
        zoo.check_writable()
        featurizer = self._featurizer(weights, zoo)
        base = fixed + list(self.opts.get("extra") or [])
        search_id = hash_id(
            {"space": params, "settings": settings.__dict__, "weights": weights, "overrides": sorted(base)}
        )
        state_dir = zoo.root / SEARCHES / search_id
        state_file = state_dir / "state.json"
        state = self._load_or_start(state_file, space, settings, search_id)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        def runner(launches):
            batch = [
                base + to_overrides(ln.point) + [f"trainer.max_epochs={ln.target}", "zoo.resumable=true"]
                for ln in launches
            ]
            rets = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(batch)
            return [self._result(ret, zoo, monitor, featurizer) for ret in rets]

        basis = self._weight_basis(state, settings, zoo, featurizer) if featurizer is not None else None
        search = Search(
            space,
            settings,
            runner,
            state=state,
            save=lambda st: save_state(state_file, st),
            log=log.info,
            weight_basis=basis,
        )
        state = search.run()
        res = summary(state)
        text = OmegaConf.to_yaml(OmegaConf.create(res))
        for d in (sweep_dir, state_dir):
            atomic_write_bytes(d / "optimization_results.yaml", text.encode())
            plot(state, d / "search.png")
        self._log_wandb(state, res, sweep_dir / "search.png")
        log.info(
            "FMS search done: best %s=%s at %s epochs (%s); %d/%d epochs spent; results in %s",
            monitor,
            res.get("best_value"),
            res.get("best_epochs"),
            res.get("best_params"),
            state["spent"],
            settings.budget,
            sweep_dir / "optimization_results.yaml",
        )
        return res

    def _featurizer(self, weights, zoo):
        """The weight features' reader; an encoder trained on other datasets reads this search's checkpoints in this
        dataset's input basis (computed from its data)."""
        from gnnzoo.search.features import make_featurizer

        dataset = OmegaConf.to_container(self.config.dataset, resolve=True)
        return make_featurizer(weights, zoo.root, {str(dataset["name"]): dataset}, self.config.paths)

    def _weight_basis(self, state: dict, settings, zoo, featurizer):
        """The search's weight basis: fitted once on the zoo's checkpoints outside this search and kept in the
        state, so a resumed search reads its weights in the same directions."""
        from gnnzoo.search.features import reference_basis
        from gnnzoo.search.surrogate import WeightBasis

        if settings.weights_k == 0:
            return None
        if "weight_basis" not in state:
            basis, why = reference_basis(
                zoo,
                featurizer,
                settings.weights_k,
                str(self.config.backbone.name),
                exclude={t.get("run_id") for t in state["trials"].values()},
                seed=settings.seed,
            )
            state["weight_basis"] = basis.to_dict() if basis is not None else None
            state["weight_basis_note"] = why
            log.info("FMS weight features: %s", why)
        saved = state["weight_basis"]
        return WeightBasis.from_dict(saved) if saved is not None else None

    @staticmethod
    def _load_or_start(state_file: Path, space, settings, search_id: str) -> dict:
        """The search's saved state (the same command continues it), or a new one."""
        from gnnzoo.search.loop import new_state
        from gnnzoo.search.results import load_state

        state = load_state(state_file)
        if state is None:
            log.info("FMS search %s: new (%s)", search_id, state_file)
            return new_state(space, settings, search_id)
        log.info(
            "FMS search %s: continuing from iteration %d, %d/%d epochs spent (%s)",
            search_id,
            state["iteration"],
            state["spent"],
            settings.budget,
            state_file,
        )
        return state

    def _check_space(self, params: Dict[str, str]) -> None:
        """Every key of the search space names a config value (or a config group), checked before any trial."""
        import difflib

        from gnnzoo.utils.errors import ConfigError

        choices = OmegaConf.to_container(self.config.hydra.runtime.choices) if "hydra" in self.config else {}
        leaves = [k for k in _leaf_keys(self.config) if not k.startswith("hydra.")]
        for key in params:
            bare = key.lstrip("+~")
            if key.startswith("+") or bare in (choices or {}):
                continue
            if OmegaConf.select(self.config, bare, default="__missing__") == "__missing__":
                near = difflib.get_close_matches(bare, leaves, n=3)
                raise ConfigError(
                    f"the FMS search space names {bare!r}, which is not in the config"
                    + (f" (did you mean {', '.join(near)}?)" if near else "")
                    + "; a new key needs a leading '+'. Nothing was trained"
                )

    @staticmethod
    def _result(ret, zoo, monitor, featurizer):
        """A launched job's observation: a failed job (its status file) or the zoo entry it trained."""
        import json

        from gnnzoo.search.loop import Result
        from gnnzoo.search.results import observe
        from gnnzoo.utils.sweep import JOB_FILE

        out = Path(str(ret.hydra_cfg.hydra.runtime.output_dir)) if ret.hydra_cfg is not None else None
        info = {}
        if out is not None and (out / JOB_FILE).is_file():
            info = json.loads((out / JOB_FILE).read_text())
        rid = info.get("run_id")
        if info.get("status") == "failed" or rid is None:
            return Result(ok=False, run_id=rid, error=str(info.get("error") or "the job left no run id"))
        return observe(zoo, rid, monitor, featurizer)

    def _log_wandb(self, state: dict, res: dict, plot_path: Path) -> None:
        """The search as one W&B run (offline, like the trials): incumbent, τ and spent epochs per iteration."""
        if "wandb" not in (self.config.get("logger") or {}):
            return
        try:
            import wandb

            lg = self.config.logger.wandb
            run = wandb.init(
                project=str(lg.get("project", "gnnzoo")),
                mode="offline" if lg.get("offline", True) else "online",
                dir=str(self.config.hydra.sweep.dir),
                job_type="fms",
                name=f"fms-{state['search_id']}",
                config={**state["settings"], "params": res.get("best_params")},
                reinit=True,
            )
            for h in state["history"]:
                run.log(
                    {
                        "fms/spent": h["spent"],
                        "fms/incumbent": h["incumbent_value"],
                        "fms/incumbent_test": h["incumbent_test"],
                        "fms/tau": h["tau"],
                        "fms/tau_pooled": h.get("tau_pooled"),
                    },
                    step=h["iteration"],
                )
            if plot_path.is_file():
                run.log({"fms/plot": wandb.Image(str(plot_path))})
            run.summary.update({k: v for k, v in res.items() if isinstance(v, (int, float, str))})
            run.finish()
        except Exception as e:  # W&B never fails a finished search
            log.warning("the search was not logged to W&B: %s", e)
