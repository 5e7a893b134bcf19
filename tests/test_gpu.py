"""The device path (``trainer=gpu``): single runs, seeds that cannot batch on a device, soups. ``gpu``-marked:
skipped where CUDA is missing. The CPU-side guarantees these rely on are tested in the fast suite
(``test_batched_training_refuses_devices_and_falls_back``)."""

from __future__ import annotations

import pytest
import torch

from conftest import make_cfg
from gnnzoo.data import load_graph
from gnnzoo.soups.task import run as run_soup
from gnnzoo.tasks.backbone import train
from gnnzoo.tasks.run import run_task
from gnnzoo.zoo import Zoo

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=400", "trainer.max_epochs=5", "trainer=gpu"]
pytestmark = pytest.mark.gpu


def test_gpu_run_trains_on_the_device_and_loads_on_cpu(tmp_path):
    res = train(make_cfg(SYN, tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    rec = zoo[res["run_id"]].record
    assert rec["config"]["trainer"]["accelerator"] == "gpu" and rec["engine"] == "single"
    model = zoo.load(res["run_id"])  # weights are stored on the CPU
    d = load_graph(make_cfg(SYN, tmp_path)).data
    with torch.no_grad():
        pred = model(d.x, d.edge_index).argmax(-1)
    assert float((pred[d.test_mask] == d.y[d.test_mask]).float().mean()) == pytest.approx(res["test/acc"], abs=1e-6)


def test_gpu_parallel_models_train_one_by_one_on_the_device(tmp_path):
    value = run_task(make_cfg(SYN + ["zoo.parallel_models=2"], tmp_path))
    df = Zoo(tmp_path / "zoo").df()
    assert sorted(df.seed) == [0, 1] and set(df.engine) == {"single"} and set(df.status) == {"completed"}
    assert value == pytest.approx(df.best_val.mean())


def test_gpu_soup_of_device_trained_ingredients(tmp_path):
    res = run_soup(make_cfg(SYN + ["soup=learned", "soup.ingredients=2", "soup.params.epochs=3"], tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    assert len(zoo.df(kind="run")) == 2 and 0 <= res["soup/test_acc"] <= 1
    assert set(zoo.df(kind="run").engine) == {"single"}
