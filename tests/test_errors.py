"""Bad input gets one clear error."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from conftest import make_cfg
from gnnzoo.data import load_graph
from gnnzoo.data.datasets import DatasetNotFoundError
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


@pytest.mark.parametrize(
    "override,needle",
    [
        ("backbone.dropout=1.5", "backbone.dropout=1.5 is out of range"),
        ("backbone.num_layers=0", "backbone.num_layers=0 is out of range"),
        ("optimizer.lr=-1", "optimizer.lr=-1"),
        ("monitor.mode=up", "monitor.mode"),
    ],
)
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


def _cora_copy(real_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(real_data / "Planetoid" / "Cora", data / "Planetoid" / "Cora")
    return data


def test_corrupt_processed_cache_is_named_and_rebuilt(real_data, tmp_path):
    data = _cora_copy(real_data, tmp_path)
    cfg = make_cfg(["dataset=cora"], tmp_path, data_dir=data)
    n = load_graph(cfg).num_nodes
    cache = tmp_path / "cache" / "Planetoid" / "Cora" / "processed" / "data.pt"
    cache.write_bytes(b"\x93random bytes, not a torch file" * 10)
    from gnnzoo.data import graph as graph_module

    graph_module._GRAPH_CACHE.clear()
    with pytest.warns(UserWarning, match=r"processed cache of Planetoid/Cora .*data\.pt.* rebuilding") as rec:
        assert load_graph(cfg).num_nodes == n
    assert not any("weights_only=False" in str(w.message) for w in rec)
    assert cache.stat().st_size > 1000  # rebuilt


def test_truncated_raw_file_is_named(real_data, tmp_path):
    from gnnzoo.data.datasets import DatasetCorruptError

    data = _cora_copy(real_data, tmp_path)
    raw = data / "Planetoid" / "Cora" / "raw" / "ind.cora.graph"
    raw.write_bytes(raw.read_bytes()[:5000])
    with pytest.raises(
        DatasetCorruptError, match=r"raw file .*ind\.cora\.graph of Planetoid/Cora cannot be read .*truncated"
    ):
        load_graph(make_cfg(["dataset=cora"], tmp_path, data_dir=data))


def _load_in_child(args):
    import time

    data_dir, cache_dir = args
    from gnnzoo.data.datasets import planetoid

    n = planetoid(data_dir, cache_dir, "Cora").num_nodes
    return n, time.time()


def test_parallel_jobs_wait_for_the_process_building_a_dataset_cache(real_data, tmp_path):
    """Parallel jobs opening one dataset cache are serialised by a lock on it: while one process holds it
    (building the cache), another does not read the half-written files, it waits. (They used to race: the
    second deleted the first's half-written cache as corrupt and failed.)"""
    import multiprocessing as mp
    import time

    from gnnzoo.data.datasets import _cache_lock, planetoid

    data = _cora_copy(real_data, tmp_path)
    cache = tmp_path / "fresh_cache"
    planetoid(str(data), str(cache), "Cora")  # built once, so the child's own load is fast
    with mp.get_context("spawn").Pool(1) as pool:
        with _cache_lock(cache / "Planetoid" / "Cora"):
            pending = pool.apply_async(_load_in_child, ((str(data), str(cache)),))
            time.sleep(8)  # the child starts, imports, and must block on the lock
            released = time.time()
        n, finished = pending.get(timeout=120)
    assert n == 2708 and finished >= released
