"""The generator's right-sized models (``auto`` widths from the number of generated parameters) and its plateau
stop (a stage ends when its validation loss stops falling)."""

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import make_cfg
from gnnzoo.generate.autoencoder import ParamAutoencoder
from gnnzoo.generate.diffusion import Denoiser
from gnnzoo.generate.fitting import fit, holdout
from gnnzoo.generate.module import GeneratorModule, PlateauStop
from gnnzoo.generate.params import Normalizer
from gnnzoo.generate.sizing import MAX_LATENT_LEN, auto_autoencoder, auto_denoiser, resolve_autoencoder


def _count(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("dim", [119, 455, 23_000, 92_231])
def test_auto_sizes_bound_the_latent_and_shrink_with_the_target(dim):
    a = auto_autoencoder(dim)
    ae = ParamAutoencoder(dim, **a)
    assert ae.latent_shape[1] <= MAX_LATENT_LEN and max(a["dec_channels"]) <= 32
    x = torch.randn(2, dim)
    assert ae(x).shape == (2, dim)
    den = Denoiser(ae.latent_shape[0], **auto_denoiser(ae.latent_dim))
    z = torch.randn(2, *ae.latent_shape)
    assert den(z, torch.tensor([3, 7])).shape == z.shape
    old = Denoiser(4, channels=[64, 128, 256], d_emb=128)
    if dim < 1000:  # a last layer: a denoiser a fraction of the old fixed one
        assert _count(den) < _count(old) / 4
    if dim > 20_000:  # a whole network: a larger fold, narrower decoder blocks at the long lengths
        assert a["fold"] > 3 and a["dec_channels"][-1] < a["dec_channels"][0]


def test_explicit_sizes_override_auto():
    acfg = {"fold": 4, "enc_channels": [2, 2, 2, 2], "dec_channels": "auto"}
    out = resolve_autoencoder(acfg, 500)
    assert out["fold"] == 4 and out["enc_channels"] == [2, 2, 2, 2]
    assert out["dec_channels"] == auto_autoencoder(500)["dec_channels"]


def test_plateau_stop_ends_a_stage_early_and_holds_out_whole_restarts(tmp_path):
    cfg = make_cfg(
        ["dataset=synthetic", "logger=none"],  # the default rule: every 50 steps, patience 4, 1%
        tmp_path,
        config_name="generate",
    )
    cfg.generator.collect.k, cfg.generator.collect.restarts = 40, 4
    ctx = SimpleNamespace(cfg=cfg, loggers=[], batch_size=0, generator=cfg.generator)
    tr, va = holdout(ctx, 40)
    assert (tr, va) == (slice(0, 30), slice(30, 40))  # the last restart (10 checkpoints) validates
    torch.manual_seed(0)
    X = torch.randn(40, 3) @ torch.randn(3, 90)
    x = Normalizer(90).fit(X)(X)
    ae = ParamAutoencoder(90, **auto_autoencoder(90))
    m = GeneratorModule(ae, stage="autoencoder", lr=3e-3, weight_decay=0.0, noise_in=1e-3, noise_latent=0.01)
    out = fit(ctx, m, x[tr], 4000, 0, val=(x[va],))
    assert out["steps"] < 4000 and len(out["val_history"]) >= 4  # stopped on the plateau, not the step cap
    hist = [v for _, v in out["val_history"]]
    assert min(hist) < 0.8 * hist[0]  # it learned before it stopped (held-out reconstruction error fell)
    best = min(hist)
    assert all(v >= best * (1 - 0.01) for v in hist[-4:])  # the last `patience` checks did not improve 1%


def test_plateau_stop_counts_relative_improvements():
    stop = PlateauStop("m", patience=2, min_delta=0.1)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={}, global_step=0, should_stop=False)
    for v in (1.0, 0.5, 0.47, 0.46):  # 0.47 and 0.46 are within 10% of 0.5
        trainer.callback_metrics = {"m": torch.tensor(v)}
        stop.on_validation_end(trainer, None)
    assert trainer.should_stop and math.isclose(stop.best, 0.5)
