"""Audio encoders: log-mel (B, n_mels, frames) -> embedding (B, dim).

Each encoder is a small module built from a dict of hyperparameters (stored in the registry with
the model config). The architectures in ``asm.models.architectures`` use them; a new architecture
may as well define its encoder in its own module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asm.audio.features import mfcc_from_logmel


class MLPEncoder(nn.Module):
    """Flattened log-mel through hidden layers with real non-linearities (the reference's MLP had
    none, so it was a linear model)."""

    def __init__(self, n_mels: int, frames: int, hidden: int = 512, layers: int = 2, dropout: float = 0.1,
                 time_pool: int = 2):
        super().__init__()
        self.pool = nn.AvgPool1d(time_pool, ceil_mode=True) if time_pool > 1 else nn.Identity()
        in_features = n_mels * math.ceil(frames / max(1, time_pool))
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
                       nn.Dropout(dropout)]
        self.net = nn.Sequential(*blocks)
        self.dim = hidden

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(self.pool(mel).flatten(1))


def _conv_block(c_in: int, c_out: int, stride: tuple[int, int] | int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class CNNEncoder(nn.Module):
    """2-D convolutions over the log-mel; frequency is pooled away, a coarse time axis is kept so the
    envelope (attack, decay, release) stays visible to the head."""

    def __init__(self, n_mels: int, frames: int, channels: tuple[int, ...] = (16, 32, 64, 96), dim: int = 256,
                 time_bins: int = 8, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers.append(_conv_block(c_in, c, stride=2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.pool, self.proj = _pool_and_project(c_in, time_bins, dim, dropout)
        self.dim = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.features(mel.unsqueeze(1))))


def _pool_and_project(c_in: int, time_bins: int, dim: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """The CNN encoders' tail: pool to 2 frequency x ``time_bins`` time cells (the envelope stays
    visible), then one dropout + linear + ReLU to ``dim`` (same module names: checkpoints load)."""
    return nn.AdaptiveAvgPool2d((2, time_bins)), nn.Sequential(
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * 2 * time_bins, dim), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResCNNEncoder(nn.Module):
    """Residual CNN (the ResNet recipe at a size that trains on a laptop CPU)."""

    def __init__(self, n_mels: int, frames: int, channels: tuple[int, ...] = (16, 32, 64, 96), dim: int = 256,
                 time_bins: int = 8, dropout: float = 0.1):
        super().__init__()
        self.stem = _conv_block(1, channels[0], stride=2)
        blocks = []
        c_in = channels[0]
        for c in channels[1:]:
            blocks.append(_Residual(c_in, c, stride=2))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.pool, self.proj = _pool_and_project(c_in, time_bins, dim, dropout)
        self.dim = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.blocks(self.stem(mel.unsqueeze(1)))))


class LSTMEncoder(nn.Module):
    """Bidirectional LSTM over MFCC frames (the deepDIVA recipe); MFCCs are a DCT of the log-mel."""

    def __init__(self, n_mels: int, frames: int, n_mfcc: int = 20, hidden: int = 128, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.n_mfcc = n_mfcc
        self.lstm = nn.LSTM(n_mfcc, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.dim = 4 * hidden

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        seq = mfcc_from_logmel(mel, self.n_mfcc).transpose(1, 2)  # (B, frames, n_mfcc)
        out, _ = self.lstm(seq)
        return torch.cat([out.mean(dim=1), out[:, -1]], dim=1)


class TransformerEncoder(nn.Module):
    """A small spectrogram transformer: non-overlapping patches of the log-mel, learned positions,
    a class token (the AST recipe, scaled down)."""

    def __init__(self, n_mels: int, frames: int, patch: tuple[int, int] = (16, 8), dim: int = 128, depth: int = 3,
                 heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.patch = tuple(patch)
        self.embed = nn.Conv2d(1, dim, kernel_size=self.patch, stride=self.patch)
        n_patches = (n_mels // self.patch[0]) * math.ceil(frames / self.patch[1])
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        pad = (-mel.shape[-1]) % self.patch[1]
        x = nn.functional.pad(mel, (0, pad)).unsqueeze(1)
        x = self.embed(x).flatten(2).transpose(1, 2)  # (B, patches, dim)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos[:, : x.shape[1]]
        return self.norm(self.encoder(x)[:, 0])

