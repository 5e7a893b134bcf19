"""Bad input gets one clear error."""
from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from conftest import make_cfg
from gnnzoo.data.datasets import DatasetNotFoundError
from gnnzoo.data import load_graph
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import ConfigError


@pytest.mark.parametrize("group,bad", [("dataset", "imagenet"), ("backbone", "resnet")])
def test_unknown_option_lists_choices(group, bad, tmp_path):
    with pytest.raises(ConfigCompositionException) as e:
        make_cfg([f"{group}={bad}"], tmp_path)
    msg = str(e.value)
    assert bad in msg and "Available options" in msg and ("cora" in msg or "gcn" in msg)


def test_missing_data_offline_names_dataset_dir_and_files(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    cfg = make_cfg(["dataset=citeseer"], tmp_path, data_dir=empty)
    with pytest.raises(DatasetNotFoundError) as e:
        load_graph(cfg)
    msg = str(e.value)
    assert "Planetoid/CiteSeer" in msg and str(empty / "Planetoid" / "CiteSeer" / "raw") in msg
    assert "ind.citeseer.graph" in msg and "GNNZOO_DATA_DIR" in msg
    assert not any(empty.iterdir())  # nothing written into the data folder


def test_missing_npz_dataset(tmp_path):
    cfg = make_cfg(["dataset=photo"], tmp_path, data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="amazon_electronics_photo.npz"):
        load_graph(cfg)


@pytest.mark.parametrize("override,needle", [
    ("backbone.dropout=1.5", "backbone.dropout=1.5 is out of range"),
    ("backbone.num_layers=0", "backbone.num_layers=0 is out of range"),
    ("optimizer.lr=-1", "optimizer.lr=-1"),
    ("monitor.mode=up", "monitor.mode"),
])
def test_out_of_range_values(override, needle, tmp_path):
    cfg = make_cfg(["dataset=synthetic", override], tmp_path)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        train(cfg)
    assert not (tmp_path / "zoo").exists()  # rejected before any work


def test_backbone_constructor_checks_values():
    from gnnzoo.backbones import GAT, GCN

    with pytest.raises(ValueError, match="dropout must be in"):
        GCN(4, 8, 2, dropout=1.5)
    with pytest.raises(ValueError, match="heads must be a positive integer dividing"):
        GAT(4, 10, 2, heads=3)


def test_declared_dims_mismatch(tmp_path):
    cfg = make_cfg(["dataset=synthetic", "dataset.num_classes=9"], tmp_path)
    with pytest.raises(ConfigError, match="declares num_classes=9"):
        load_graph(cfg)
