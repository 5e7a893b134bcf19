"""Every option of every config group composes and instantiates."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF, make_cfg, shared_data_dir
from gnnzoo.data import load_graph
from gnnzoo.data.datasets import DatasetNotFoundError


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in (
        "dataset",
        "backbone",
        "optimizer",
        "scheduler",
        "data",
        "trainer",
        "callbacks",
        "logger",
        "paths",
        "zoo",
        "extras",
        "hydra",
        "debug",
        "experiment",
        "task",
        "soup",
        "pruning",
        "hparams_search",
    ):
        assert options(group), group


@pytest.mark.parametrize("name", options("backbone"))
def test_backbone_instantiates_and_runs(name, tmp_path):
    cfg = make_cfg([f"backbone={name}", "dataset=synthetic", "dataset.loader.num_nodes=300"], tmp_path)
    graph = load_graph(cfg)
    model = instantiate(cfg.backbone)
    out = model(graph.data.x, graph.data.edge_index)
    assert out.shape == (300, cfg.dataset.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", options("optimizer"))
def test_optimizer(name, tmp_path):
    cfg = make_cfg([f"optimizer={name}"], tmp_path)
    opt = instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.Optimizer)


@pytest.mark.parametrize("name", options("scheduler"))
def test_scheduler(name, tmp_path):
    cfg = make_cfg([f"scheduler={name}"], tmp_path)
    if not cfg.scheduler:
        return  # `none`
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert instantiate(cfg.scheduler)(optimizer=opt) is not None


@pytest.mark.parametrize("group", ["trainer", "callbacks", "logger", "data"])
def test_lightning_groups(group, tmp_path):
    for name in options(group):
        cfg = make_cfg([f"{group}={name}", "dataset=synthetic", "dataset.loader.num_nodes=300"], tmp_path)
        node = cfg[group]
        if group == "trainer":
            if name == "gpu" and not torch.cuda.is_available():
                assert node.accelerator == "gpu"
                continue
            assert instantiate(node).max_epochs == cfg.trainer.max_epochs
        elif group == "data":
            dm = instantiate({k: v for k, v in node.items() if k != "fused_eval"}, graph=load_graph(cfg))
            batch = next(iter(dm.train_dataloader()))
            assert batch.x.size(0) > 0
        else:
            for key, sub in (node or {}).items():
                assert instantiate(sub) is not None, f"{group}={name}: {key}"


@pytest.mark.parametrize("group", ["debug", "experiment", "paths", "zoo", "extras"])
def test_other_groups_compose(group, tmp_path):
    for name in options(group):
        make_cfg([f"{group}={name}"], tmp_path)


REAL = {"cora", "citeseer", "pubmed", "computers", "photo", "cs", "physics", "mutag", "proteins"}
GRAPH_SETS = {"mutag", "proteins"}  # graph classification datasets


@pytest.mark.parametrize("name", options("dataset"))
def test_dataset_yaml_matches_data(name, tmp_path, cache_dir):
    """num_features / num_classes in each dataset yaml equal the loaded data (load_graph checks)."""
    data_dir = shared_data_dir()
    problem = ["problem=graph"] if name in GRAPH_SETS else []
    cfg = make_cfg([f"dataset={name}", f"paths.cache_dir={cache_dir}", *problem], tmp_path, data_dir=data_dir)
    if name == "synthetic":
        graph = load_graph(cfg)
    elif name in REAL:
        if data_dir is None:
            pytest.skip("GNNZOO_DATA_DIR not set")
        graph = load_graph(cfg)
        d = graph.data
        assert int(d.train_mask.sum()) > 0 and int(d.val_mask.sum()) > 0 and int(d.test_mask.sum()) > 0
        assert not (d.train_mask & d.test_mask).any()
    else:  # OGB: no raw copy here; the loader must fail with the clear offline message
        with pytest.raises(DatasetNotFoundError, match=cfg.dataset.loader.name):
            load_graph(cfg)
        return
    assert graph.num_features == cfg.dataset.num_features
    assert graph.num_classes == cfg.dataset.num_classes


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_runs_a_fast_dev_run(name, tmp_path, real_data, cache_dir):
    """Each saved experiment composes and runs one step of everything (debug=fdr) through the task wrapper."""
    from gnnzoo.tasks.run import run_task

    cfg = make_cfg([f"experiment={name}", "debug=fdr", f"paths.cache_dir={cache_dir}"], tmp_path, data_dir=real_data)
    value = run_task(cfg)
    assert 0.0 <= value <= 1.0


METHOD_GROUPS = {"soup": ("strategy", "gnnzoo.soups.task.run"), "pruning": ("method", "gnnzoo.pruning.task.run")}


@pytest.mark.parametrize("group,name", [(g, n) for g in METHOD_GROUPS for n in options(g)])
def test_every_method_option_composes_and_selects_its_task(group, name, tmp_path):
    """``none`` keeps task=backbone; every other option selects its method's task and passes its checks."""
    from gnnzoo.pruning.checks import check_pruning
    from gnnzoo.soups.registry import STRATEGIES
    from gnnzoo.soups.strategies import check_params

    key, target = METHOD_GROUPS[group]
    cfg = make_cfg([f"{group}={name}"], tmp_path)
    if name == "none":
        assert cfg.task._target_ == "gnnzoo.tasks.backbone.run" and cfg[group][key] is None
        return
    assert cfg.task._target_ == target
    if group == "soup":
        assert cfg.soup.strategy in STRATEGIES
        check_params(cfg.soup.strategy, dict(cfg.soup.params))
    else:
        check_pruning(cfg)


@pytest.mark.parametrize("name", options("hparams_search"))
def test_every_hparams_search_instantiates_its_sweeper_over_real_keys(name):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = instantiate(cfg.hydra.sweeper)
    assert type(sweeper).__name__ == "OptunaSweeper"
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, (
            f"hparams_search={name} searches {key}, which is not in the config"
        )
