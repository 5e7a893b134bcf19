"""Right-sized generator models: the autoencoder's fold and widths and the denoiser's widths follow the number of
parameters generated (``generator.*: auto``), so modelling a 119-number last layer does not cost what modelling a
whole network does, and a whole network fits in memory and time.

The rule (declared, not tuned on test data):

* **latent**: four downsampling convs of kernel = stride ``fold``; ``fold`` is the smallest integer >= 3 that
  leaves at most ``MAX_LATENT_LEN`` latent positions (so the denoiser's length is bounded), 4 latent channels;
* **autoencoder widths**: each decoder block gets the widest power of two (at least 4, at most ``MAX_WIDTH``)
  whose conv costs at most ``CONV_BUDGET`` multiply-adds per sample at that block's length; the encoder keeps 4
  channels (it only has to reach the latent);
* **denoiser**: two blocks ``[c, 2c]``, ``c`` the power of two >= the latent size, clamped to [16, 64], and a
  time/condition embedding of ``2c``.

The budget was set by cost, not accuracy: at 2^20 the decoder of a 903-number SAGE last layer took 55 ms a step on
one thread, at 2^16 20 ms. For the default last-layer target of a Cora GCN (119 numbers: 8 latent numbers) this
gives fold 3, a decoder [32, 32, 16, 8] and a [16, 32] denoiser (~17k parameters against ~814k for the old fixed
[64, 128, 256]); for a whole 64-hidden Cora GCN (92k numbers) fold 7 (156 latent numbers), a decoder [8, 4, 4, 4]
and a [64, 128] denoiser. At ~10^5 positions PyTorch's CPU conv1d is the cost whatever the width (~2.5 s a step).
"""

from __future__ import annotations

import math

MAX_LATENT_LEN = 64
CONV_BUDGET = 2**16
MAX_WIDTH = 32
LATENT_CHANNELS = 4
BLOCKS = 4


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, x)))))


def auto_fold(dim: int) -> int:
    fold = 3
    while math.ceil(dim / fold**BLOCKS) > MAX_LATENT_LEN:
        fold += 1
    return fold


def auto_autoencoder(dim: int) -> dict:
    """``{"fold", "enc_channels", "dec_channels"}`` for ``dim`` generated parameters."""
    fold = auto_fold(dim)
    unit = fold**BLOCKS
    latent_len = -(-dim // unit)
    dec = []
    for i in range(1, BLOCKS + 1):  # block i's output length
        length = latent_len * fold**i
        dec.append(max(4, min(MAX_WIDTH, _pow2_floor(math.sqrt(CONV_BUDGET / (3 * length))))))
    return {"fold": fold, "enc_channels": [LATENT_CHANNELS] * BLOCKS, "dec_channels": dec}


def auto_denoiser(latent_dim: int) -> dict:
    """``{"channels", "d_emb"}`` for a latent of ``latent_dim`` numbers."""
    c = max(16, min(64, 1 << max(0, math.ceil(math.log2(max(1, latent_dim))))))
    return {"channels": [c, 2 * c], "d_emb": 2 * c}


def resolve_autoencoder(acfg, dim: int) -> dict:
    """The autoencoder's fold and widths: the config's, with ``auto`` entries from :func:`auto_autoencoder`."""
    auto = auto_autoencoder(dim)
    out = {}
    for key in ("fold", "enc_channels", "dec_channels"):
        value = acfg.get(key, "auto")
        out[key] = auto[key] if value == "auto" else (int(value) if key == "fold" else [int(v) for v in value])
    return out


def resolve_denoiser(dcfg, latent_dim: int) -> dict:
    auto = auto_denoiser(latent_dim)
    channels, d_emb = dcfg.get("channels", "auto"), dcfg.get("d_emb", "auto")
    return {
        "channels": auto["channels"] if channels == "auto" else [int(c) for c in channels],
        "d_emb": auto["d_emb"] if d_emb == "auto" else int(d_emb),
    }
