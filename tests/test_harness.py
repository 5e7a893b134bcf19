"""The benchmark harness (benchmarks/_common.py): cached jobs are keyed by everything that determines them, the
paired interval is Student's t, and the pool gives every job the same thread budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import _common  # noqa: E402


def test_a_cached_job_is_reused_only_under_the_same_settings(tmp_path):
    cache = _common.JobCache(tmp_path, ROOT / "benchmarks" / "pruning.py")
    calls = []

    def compute(v):
        calls.append(v)
        return {"value": v}

    a = cache.run({"seed": 0, "levels": [0.5, 0.9]}, lambda: compute(1))
    assert a["result"] == {"value": 1} and a["settings"] == {"seed": 0, "levels": [0.5, 0.9]}
    assert a["code"] == _common.code_digest(str((ROOT / "benchmarks" / "pruning.py").resolve()))
    assert cache.run({"levels": [0.5, 0.9], "seed": 0}, lambda: compute(2))["result"] == {"value": 1}  # key order
    assert cache.run({"seed": 0, "levels": [0.5, 0.95]}, lambda: compute(3))["result"] == {"value": 3}  # a setting
    assert calls == [1, 3]
    # another script's job with the same settings is another job
    other = _common.JobCache(tmp_path, ROOT / "benchmarks" / "fms.py")
    assert other.run({"seed": 0, "levels": [0.5, 0.9]}, lambda: compute(4))["result"] == {"value": 4}
    # a payload whose stored settings do not match its key is refused, never reused
    path = cache.path({"seed": 0, "levels": [0.5, 0.9]})
    payload = json.loads(path.read_text())
    payload["settings"]["seed"] = 7
    path.write_text(json.dumps(payload))
    with pytest.raises(SystemExit, match="other settings or code"):
        cache.run({"seed": 0, "levels": [0.5, 0.9]}, lambda: compute(5))


def test_paired_differences_use_students_t():
    from scipy import stats

    a, b = [0.81, 0.83, 0.80, 0.84, 0.82], [0.80, 0.80, 0.79, 0.81, 0.80]
    d = _common.paired(a, b)
    ci = stats.ttest_1samp([x - y for x, y in zip(a, b)], 0.0).confidence_interval(0.95)
    assert d["mean"] == pytest.approx((ci.low + ci.high) / 2) and d["ci95"] == pytest.approx((ci.high - ci.low) / 2)
    assert d["n"] == 5 and d["holds_zero"] is False
    assert _common.paired([1.0, 2.0], [1.5, 1.5])["holds_zero"] is True
    rows = _common.paired_rows([(["cell", "x − y"], d)])
    assert rows[0][:2] == ["cell", "x − y"] and rows[0][-1] == "no" and "±" in rows[0][2]
    with pytest.raises(ValueError, match="different lengths"):
        _common.paired([1.0], [1.0, 2.0])


def test_run_jobs_gives_every_job_the_same_threads():
    import torch

    before = torch.get_num_threads()
    try:
        out = _common.run_jobs(_threads, [1, 2, 3], jobs=1, threads=1)
        assert sorted(r["item"] for r in out) == [1, 2, 3] and {r["threads"] for r in out} == {1}
    finally:
        torch.set_num_threads(before)


def _threads(item):
    import torch

    return {"item": item, "threads": torch.get_num_threads()}


def test_pruning_max_sparsity_is_the_last_level_before_the_first_failure_at_common_levels():
    """A level that passes after a failing one does not count; UGS's intermediate rounds are not compared; one-shot's
    dense run is not added to its search time (its ``search_s`` already holds it)."""
    import pruning

    def row(method, rnd, acc):
        return {
            "method": method,
            "axis": "weight",
            "round": rnd,
            "weight_sparsity": pruning.W_LEVEL[rnd],
            "graph_sparsity": 0.0,
            "mac_saving": 0.5,
            "test_acc": acc,
            "val_acc": acc,
            "search_s": 10.0,
            "retrain_s": 2.0,
            "epochs": 5,
            "min_layer_density": 0.1,
        }

    accs = {2: 0.80, 4: 0.80, 6: 0.70, 8: 0.80}  # dense 0.80: the 6-round level fails, the 8-round one passes
    jobs = [
        {
            "dataset": "cora",
            "backbone": "gcn",
            "seed": s,
            "dense_acc": 0.80,
            "dense_wall_s": 100.0,
            "rows": [row("one_shot", k, a) for k, a in accs.items()] + [row("imp_ugs", 3, 0.80)],
        }
        for s in (0, 1)
    ]
    summary, curves, _ = pruning.aggregate(jobs)
    cell = summary["cora/gcn"]
    assert cell["max_weight_sparsity"]["one_shot"] == pytest.approx(pruning.W_LEVEL[4])  # not W_LEVEL[8]
    assert cell["search_wall_s"]["one_shot"] == pytest.approx(12.0)  # 10 + 2, no dense run added again
    assert curves["cora/gcn"]["imp_ugs/weight"] == []  # round 3 is not a common level


def test_a_failing_train_py_stops_the_benchmark_with_its_command_and_error():
    with pytest.raises(SystemExit, match=r"(?s)backbone=no_such_backbone.*no_such_backbone"):
        _common.train_py(["backbone=no_such_backbone", "logger=none"])


def test_from_cache_reads_learned_features_of_any_code_version_and_trains_nothing(tmp_path):
    import fms_learned

    settings = {"kind": "learned_features", "cell": "cora/gcn", "encoder": ["encoder=ng_gnn"]}
    with pytest.raises(SystemExit, match="no cached learned features for cora/gcn"):
        fms_learned.stored_learned_features(settings, tmp_path)
    old = tmp_path / "old" / "fms_learned.py"  # an earlier version of the script cached the encoder
    old.parent.mkdir()
    old.write_text(Path(fms_learned.__file__).read_text() + "\n# an earlier version\n")
    _common.JobCache(tmp_path, old, fms_learned.NOT_IN_TABLE).run(settings, lambda: {"embed_dim": 128})
    out = fms_learned.stored_learned_features(settings, tmp_path)
    current = _common.code_digest(str(Path(fms_learned.__file__).resolve()), fms_learned.NOT_IN_TABLE)
    assert out["embed_dim"] == 128 and out["code"]["script"] != current["script"]
    with pytest.raises(SystemExit, match="no cached learned features"):  # other settings: not reused
        fms_learned.stored_learned_features({**settings, "cell": "citeseer/gcn"}, tmp_path)


def test_a_pruning_job_runs_none_of_the_code_its_cache_key_leaves_out(tmp_path):
    # the pruning benchmark keys its jobs by the library less NOT_IN_PRUNING. Composing any config imports the FMS
    # sweeper plugin (Hydra's plugin discovery) and the search settings it declares its defaults from; beyond that,
    # a job (every method, weights and graph, the zoo read back) must load nothing from the code left out
    import subprocess

    script = f"""
import sys
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from pathlib import Path
import pruning

def left_out():
    files = {{getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}}
    return sorted(f for f in files for x in pruning.NOT_IN_PRUNING if "/" + x.replace("src/", "", 1) in f)

zoo = {str(tmp_path / "zoo")!r}
base = ["dataset=synthetic", "dataset.loader.num_nodes=200", "trainer.max_epochs=3", "logger=none",
        "paths.zoo_dir=" + zoo, "paths.output_dir={tmp_path}/out", "paths.cache_dir={tmp_path}/cache"]
pruning.compose(base)
print("DISCOVERY", left_out())
quick = {{"one_shot": [], "imp_ugs": ["pruning.rounds=2", "pruning.rate_weight=0.5", "pruning.rate_graph=0.1"],
         "fastglt": ["pruning.pretrain_epochs=2", "pruning.denoise_epochs=3", "pruning.delta=1"]}}
for method, extra in quick.items():
    rows = pruning._search(base, Path(zoo), method, "weight",
                           extra + ["pruning.weight_sparsity=0.5", "pruning.graph_sparsity=0.1"])
    assert rows, method
print("JOB", left_out())
"""
    p = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in p.stdout.splitlines() if line.startswith(("DISCOVERY ", "JOB ")))
    assert lines["JOB"] == lines["DISCOVERY"], p.stdout[-2000:]
    for folder in ("generate", "weightspace", "soups"):  # never even imported
        assert f"/gnnzoo/{folder}/" not in lines["JOB"]
