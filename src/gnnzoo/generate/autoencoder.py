"""The parameter autoencoder (GNN-Diff / p-diff style): 1-D convolutions over the flattened parameters, four
downsampling blocks (kernel = stride = ``fold``) to a Tanh-bounded latent, four upsampling blocks back."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(c: int) -> nn.Module:
    return nn.GroupNorm(1, c)  # per sample over channels and positions (InstanceNorm fails on length-1 maps)


class ParamAutoencoder(nn.Module):
    """``encode(x [B, P]) -> z [B, C, P' / fold^4]`` in [-1, 1]; ``decode(z) -> [B, P]``. The input is zero-
    padded to a multiple of ``fold^len(enc_channels)``.

    With ``embed_dim``, the encoder is a frozen neural-graph encoder's embedding instead: ``encode(e [B,
    embed_dim])`` maps it linearly (then Tanh) onto the same latent shape, and the decoder is unchanged.

    Args:
        dim: ``P``, the number of parameters modelled; fold: kernel = stride of each downsampling conv;
        enc_channels, dec_channels: the blocks' widths (as many of each); embed_dim: read the latent from a
            neural-graph encoder's embedding of this width instead of the conv encoder (None: the conv encoder).

    Shapes:
        - **input:** ``x [B, P]`` (``[B, embed_dim]`` with ``embed_dim``)
        - **output:** ``forward -> [B, P]`` (the reconstruction); ``encode -> latent_shape``-shaped ``[B, C, L]``
    """

    def __init__(
        self,
        dim: int,
        fold: int = 3,
        enc_channels: Sequence[int] = (4, 4, 4, 4),
        dec_channels: Sequence[int] = (4, 64, 64, 8),
        embed_dim: int | None = None,
    ):
        super().__init__()
        if len(enc_channels) != len(dec_channels):
            raise ValueError("enc_channels and dec_channels need the same number of blocks")
        self.dim, self.fold = int(dim), int(fold)
        unit = self.fold ** len(enc_channels)
        self.padded = -(-self.dim // unit) * unit
        self.latent_shape = (int(enc_channels[-1]), self.padded // unit)
        enc, c = [], 1
        for i, ch in enumerate(enc_channels):
            enc.append(
                nn.Sequential(
                    nn.Conv1d(c, ch, 3, padding=1),
                    nn.LeakyReLU(),
                    _norm(ch),
                    nn.Conv1d(ch, ch, self.fold, stride=self.fold),
                )
            )
            c = ch
        self.enc = nn.ModuleList(enc)
        self.embed_dim = int(embed_dim) if embed_dim else None
        if self.embed_dim:  # the conv encoder is not used: the latent is read from the embedding
            self.enc = nn.ModuleList()
            self.embed_proj = nn.Sequential(nn.LayerNorm(self.embed_dim), nn.Linear(self.embed_dim, self.latent_dim))
        dec = []
        for ch in dec_channels:
            dec.append(
                nn.Sequential(
                    nn.ConvTranspose1d(c, ch, self.fold, stride=self.fold),
                    nn.LeakyReLU(),
                    _norm(ch),
                    nn.Conv1d(ch, ch, 3, padding=1),
                    nn.LeakyReLU(),
                )
            )
            c = ch
        self.dec = nn.ModuleList(dec)
        self.out = nn.Conv1d(c, 1, 3, padding=1)

    @property
    def latent_dim(self) -> int:
        return self.latent_shape[0] * self.latent_shape[1]

    def encode(self, x: Tensor) -> Tensor:
        if self.embed_dim:
            if x.size(-1) != self.embed_dim:
                raise ValueError(f"this autoencoder reads {self.embed_dim}-dim embeddings, got {x.size(-1)}")
            return torch.tanh(self.embed_proj(x)).view(x.size(0), *self.latent_shape)
        h = F.pad(x, (0, self.padded - self.dim)).unsqueeze(1)
        for i, block in enumerate(self.enc):
            h = block(h)
            if i < len(self.enc) - 1:
                h = F.leaky_relu(h)
        return torch.tanh(h)

    def decode(self, z: Tensor) -> Tensor:
        h = z
        for block in self.dec:
            h = block(h)
        return self.out(h).squeeze(1)[:, : self.dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
