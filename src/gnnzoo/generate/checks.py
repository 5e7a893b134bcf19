"""The checks of ``task=generate`` (everything that can be checked before any training: one clear error,
nothing spent), and the trained neural-graph encoder a generator may read its latent from."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from gnnzoo.generate.params import target_names
from gnnzoo.utils.errors import ConfigError
from gnnzoo.utils.validate import choice, fraction, integer, number
from gnnzoo.zoo.store import Zoo


def check_generator(cfg: DictConfig) -> None:
    """Raise a :class:`ConfigError` for the first generator option that cannot be honoured."""
    g = cfg.generator
    if not g.get("name"):
        raise ConfigError("task=generate needs a generator: generator=latent_ddpm")
    integer(g.collect, "k", "generator.collect", lo=2)
    integer(g.collect, "restarts", "generator.collect", lo=1)
    for stage in ("autoencoder", "diffusion"):
        integer(g[stage], "steps", f"generator.{stage}", lo=1)
    _auto_or(g.autoencoder, "fold", "generator.autoencoder", lo=2)
    _auto_or(g.autoencoder, "enc_channels", "generator.autoencoder", lo=1, listed=True)
    _auto_or(g.autoencoder, "dec_channels", "generator.autoencoder", lo=1, listed=True)
    _auto_or(g.diffusion, "channels", "generator.diffusion", lo=1, listed=True)
    _auto_or(g.diffusion, "d_emb", "generator.diffusion", lo=2)
    if g.get("stop"):
        integer(g.stop, "every", "generator.stop", lo=1)
        integer(g.stop, "patience", "generator.stop", lo=1)
        integer(g.stop, "holdout", "generator.stop", lo=0)
        number(g.stop, "min_delta", "generator.stop", lo=0.0)
    integer(g.sample, "n", "generator.sample", lo=1)
    s = g.search
    if s.get("query_fraction") is not None:
        fraction(s, "query_fraction", "generator.search", lo_open=True, hi_closed=True)
    if s.get("query") is None:
        _check_grid(cfg)
    choice(g.diffusion, "sampler", "generator.diffusion", ("ddpm", "ddim"))
    from hydra.utils import instantiate

    target_names(instantiate(cfg.backbone), g.collect.target)  # a target that does not exist fails here
    if g.autoencoder.get("encoder"):
        neural_graph_encoder(Zoo(cfg.paths.zoo_dir), cfg)


def _auto_or(node: DictConfig, key: str, where: str, lo: int, listed: bool = False) -> None:
    """``key`` is ``auto`` or an integer (``listed``: a non-empty list of integers) >= ``lo``."""
    v = node.get(key, "auto")
    if v == "auto":
        return
    if not listed:
        integer(node, key, where, lo=lo)
        return
    ok = OmegaConf.is_list(v) and len(v) and all(isinstance(c, int) and not isinstance(c, bool) and c >= lo for c in v)
    if not ok:
        raise ConfigError(f"{where}.{key}={v}: expected auto or a non-empty list of integers >= {lo}")


def _check_grid(cfg: DictConfig) -> None:
    s = cfg.generator.search
    if not s.get("grid"):
        raise ConfigError(
            "generator.search: give a grid (generator.search.grid) or a zoo query (generator.search.query)"
        )
    fraction(s, "fraction", "generator.search", lo_open=True, hi_closed=True)
    for key, values in s.grid.items():
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(
                f"generator.search.grid: {key!r} is not a config key (grid keys are values such "
                "as optimizer.lr; for config groups such as optimizer=sgd,adam, train the grid with "
                "`train.py -m` and pass generator.search.query)"
            )
        if isinstance(OmegaConf.select(cfg, key), DictConfig):
            raise ConfigError(f"generator.search.grid: {key!r} is a config group or a node, not a value")
        if not isinstance(values, (list, tuple)) and not OmegaConf.is_list(values) or not len(values):
            raise ConfigError(f"generator.search.grid.{key}: expected a non-empty list of values")


def neural_graph_encoder(zoo: Zoo, cfg: DictConfig):
    """The trained neural-graph encoder ``generator.autoencoder.encoder`` names (a zoo entry of kind encoder), able
    to read this run's dataset (its input basis is computed from the data when the encoder was trained on others)."""
    from gnnzoo.weightspace.encoder import TrainedEncoder

    run_id = cfg.generator.autoencoder.encoder
    entry = zoo.get(str(run_id))
    if entry is None or entry.status != "completed" or entry.record.get("kind") != "encoder":
        what = "no entry" if entry is None else f"a {entry.record.get('kind')!r} entry ({entry.status})"
        raise ConfigError(
            f"generator.autoencoder.encoder={run_id}: {zoo.root} has {what} there; train one with "
            "`python train.py encoder=ng_gnn` on this zoo and pass its run id"
        )
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    return TrainedEncoder.from_zoo(zoo, str(run_id), {str(dataset["name"]): dataset}, cfg.paths)
