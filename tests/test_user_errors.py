"""What the user is told must be true: each case here was seen by a new user, and each test failed on the code
before its fix (clear errors before any work, and messages that say what happened)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT, make_cfg
from gnnzoo.tasks.backbone import train
from gnnzoo.utils.errors import ConfigError
from gnnzoo.zoo import Zoo, ZooError

SYN = ["dataset=synthetic", "dataset.loader.num_nodes=200", "trainer.max_epochs=2", "backbone.hidden_channels=8"]


def _runs(tmp_path, n: int) -> list[str]:
    return [train(make_cfg(SYN + [f"seed={s}", "init_seed=0"], tmp_path))["run_id"] for s in range(n)]


def test_a_negative_soup_limit_is_refused(tmp_path):
    from gnnzoo.soups.task import run as run_soup

    _runs(tmp_path, 4)
    with pytest.raises(ConfigError, match=r"soup.limit=-1: expected an integer >= 2"):
        run_soup(make_cfg(SYN + ["soup=uniform", "+soup.from_zoo.dataset=synthetic", "soup.limit=-1"], tmp_path))
    assert len(Zoo(tmp_path / "zoo").df(kind="soup")) == 0


def test_a_one_ingredient_soup_is_refused_and_nothing_is_written(tmp_path):
    from gnnzoo.soups.task import run as run_soup

    [rid] = _runs(tmp_path, 1)
    with pytest.raises(ConfigError, match=rf"selects 1 completed run \({rid}\): a soup needs at least two"):
        run_soup(make_cfg(SYN + ["soup=uniform", "+soup.from_zoo.dataset=synthetic"], tmp_path))
    with pytest.raises(ConfigError, match="soup.ingredients=1: expected an integer >= 2"):
        run_soup(make_cfg(SYN + ["soup=uniform", "soup.ingredients=1"], tmp_path))
    assert [e.record["kind"] for e in Zoo(tmp_path / "zoo").entries()] == ["run"]


def test_an_encoder_target_that_no_run_records_names_the_curves_that_exist(tmp_path):
    from gnnzoo.tasks.run import run_task

    _runs(tmp_path, 4)
    with pytest.raises(
        ConfigError,
        match=r"encoder.target='val/foo' is not a curve of the 4 completed entries.*"
        r"their curves: .*val/acc",
    ):
        run_task(make_cfg(SYN + ["encoder=stat", "encoder.target=val/foo"], tmp_path))


def test_an_encoder_entry_without_its_encoder_block_is_a_clear_error(tmp_path):
    from gnnzoo.weightspace.encoder import TrainedEncoder

    [rid] = _runs(tmp_path, 1)
    zoo = Zoo(tmp_path / "zoo")
    rec = dict(zoo[rid].record, kind="encoder")
    zoo.write(rec, zoo[rid].state_dict())
    with pytest.raises(ZooError, match=rf"zoo entry {rid} \(kind encoder\) has no usable 'encoder' block"):
        TrainedEncoder.from_zoo(zoo, rid)


def test_an_unknown_monitor_metric_fails_before_training_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match=r"monitor.metric='val/foo' is not a metric a run logs.*val/acc, val/loss"):
        train(make_cfg(SYN + ["monitor.metric=val/foo"], tmp_path))
    assert not (tmp_path / "zoo").exists() or len(Zoo(tmp_path / "zoo")) == 0


def test_a_ticket_whose_masks_have_the_wrong_shape_fails_at_load_naming_the_entry(tmp_path):
    from gnnzoo.pruning.task import run as run_prune
    from gnnzoo.zoo.ids import tensors_digest
    from gnnzoo.zoo.store import TICKET, save_weights

    res = run_prune(make_cfg(SYN + ["pruning=one_shot", "pruning.weight_sparsity=0.5"], tmp_path))
    zoo = Zoo(tmp_path / "zoo")
    entry = zoo[res["run_id"]]
    assert entry.load() is not None  # the real ticket loads
    masks = {k: v.to(torch.uint8) for k, v in entry.ticket().items()}
    name = next(iter(masks))
    masks[name] = masks[name][:, :-1].contiguous()  # one input column short
    save_weights(entry.path / TICKET, masks)
    rec = dict(entry.record)
    rec["files"] = {**rec["files"], TICKET: tensors_digest({k: v for k, v in masks.items()})}
    zoo.write(rec, entry.state_dict(), files={TICKET: masks})
    with pytest.raises(ZooError, match=rf"zoo entry {res['run_id']} .*the mask of '{name}' has shape"):
        zoo.load(res["run_id"])


def test_the_closing_line_is_one_line_when_output_is_piped(tmp_path):
    """``grep run_id=`` on a log finds the accuracies: the line never wraps at 80 columns."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "zoo"
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *SYN,
            "logger=none",
            "extras.print_config=false",
            "trainer.enable_progress_bar=false",
            f"paths.zoo_dir={deep}",
            f"paths.output_dir={tmp_path}/o",
            f"paths.log_dir={tmp_path}/logs",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    [line] = [ln for ln in p.stdout.splitlines() if "run_id=" in ln]
    assert "val/acc=" in line and "test/acc=" in line and str(deep) in line


def test_report_says_which_plots_it_wrote(tmp_path, capsys):
    from gnnzoo.report import report

    _runs(tmp_path, 2)  # two seeds of one configuration: nothing swept, nothing to plot
    res = report(tmp_path / "zoo", tmp_path / "r1")
    out = capsys.readouterr().out
    assert res["plots"] == [] and "no plot: no parameter was swept" in out and "and plots" not in out
    report(tmp_path / "zoo", tmp_path / "r2", plots=False)
    assert "(no plot: --no-plots)" in capsys.readouterr().out
    train(make_cfg(SYN + ["seed=0", "init_seed=0", "backbone.hidden_channels=16"], tmp_path))
    res = report(tmp_path / "zoo", tmp_path / "r3")
    out = capsys.readouterr().out.replace("\n", "")
    assert len(res["plots"]) == 1 and res["plots"][0].is_file() and "and 1 plot (" in out
