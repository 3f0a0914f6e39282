"""The trainable estimator: feature normalisation -> encoder -> kind-aware head, plus (for the
``flow`` architecture) a conditional normalising flow over the parameters that yields K candidates.
What to build comes from the architecture registry (``asm.models.architectures``).

The flow (zuko's neural spline flow, built in ``asm.models.architectures.flow``) models the free parameters in logit space. Discrete
parameters are dequantised inside their bin during training and snapped back after sampling, so
one density covers mixed parameter kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from asm.models import architectures
from asm.models.heads import LossWeights, ParameterHead, ParameterLayout, Prediction
from asm.synth.params import ParameterSpec

EPS = 1e-3


@dataclass
class NetworkConfig:
    """What a model config in the registry says about the network (architecture + hyperparameters)."""

    arch: str
    encoder: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    flow: dict[str, Any] = field(default_factory=dict)  # only for arch "flow": transforms, hidden, weight
    flow_encoder: str = "cnn"  # the encoder a flow conditions on


class Network(nn.Module):
    def __init__(self, config: NetworkConfig, free: Sequence[ParameterSpec], n_mels: int, frames: int):
        super().__init__()
        self.config = config
        self.layout = ParameterLayout(free)
        self.n_free = len(free)
        self.n_values = torch.tensor([p.n_values for p in free], dtype=torch.float32)
        arch = architectures.get(config.arch)
        self.encoder = arch.encoder(config, n_mels, frames)
        self.head = ParameterHead(self.encoder.dim, self.layout)
        self.weights = LossWeights(**config.loss)
        self.register_buffer("feat_mean", torch.zeros(1, n_mels, 1))
        self.register_buffer("feat_std", torch.ones(1, n_mels, 1))
        self.flow = None
        density = arch.density(config, self.n_free, self.encoder.dim)
        if density is not None:
            self.flow, self.flow_weight = density

    # --- features ----------------------------------------------------------------------------
    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-mel-band statistics of the training split (stored in the checkpoint)."""
        self.feat_mean.copy_(mean.reshape(1, -1, 1))
        self.feat_std.copy_(std.reshape(1, -1, 1).clamp_min(1e-3))

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder((mel - self.feat_mean) / self.feat_std)

    def forward(self, mel: torch.Tensor) -> tuple[Prediction, torch.Tensor]:
        embedding = self.embed(mel)
        return self.head(embedding), embedding

    # --- training ----------------------------------------------------------------------------
    def loss(self, mel: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None,
             with_prediction: bool = False):
        """(loss, parts), and the head's prediction too with ``with_prediction`` (spectral training)."""
        pred, embedding = self(mel)
        total, parts = self.layout.loss(pred, target, self.weights)
        parts["head"] = total.detach()
        if self.flow is not None:
            y = self._to_flow_space(self._dequantise(target, generator))
            nll = -self.flow(embedding.float()).log_prob(y.float()).mean() / self.n_free
            parts["flow_nll"] = nll.detach()
            total = total + self.flow_weight * nll
        return (total, parts, pred) if with_prediction else (total, parts)

    def _dequantise(self, target: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = self.n_values.to(target.device)
        discrete = n > 1
        if not discrete.any():
            return target
        noise = torch.rand(target.shape, generator=generator, device="cpu").to(target.device) - 0.5
        width = torch.where(discrete, 1.0 / (n - 1).clamp_min(1), torch.zeros_like(n))
        return (target + noise * width).clamp(0, 1)

    @staticmethod
    def _to_flow_space(v: torch.Tensor) -> torch.Tensor:
        return torch.logit(EPS + (1 - 2 * EPS) * v)

    @staticmethod
    def _from_flow_space(y: torch.Tensor) -> torch.Tensor:
        return ((torch.sigmoid(y) - EPS) / (1 - 2 * EPS)).clamp(0, 1)

    # --- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, mel: torch.Tensor) -> torch.Tensor:
        """Point estimates: normalised free vectors (B, n_free)."""
        pred, _ = self(mel)
        return self.layout.decode(pred)

    @torch.no_grad()
    def candidates(self, mel: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, k, n_free): the point estimate first, then k-1 flow samples (flow models only)."""
        pred, embedding = self(mel)
        point = self.layout.decode(pred).unsqueeze(1)
        if self.flow is None or k <= 1:
            return point
        if generator is not None:
            state = torch.random.get_rng_state()
            torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        samples = self.flow(embedding.float()).sample((k - 1,))  # (k-1, B, n_free)
        if generator is not None:
            torch.random.set_rng_state(state)
        values = self._snap(self._from_flow_space(samples).transpose(0, 1))
        return torch.cat([point, values.to(point.dtype)], dim=1)

    def _snap(self, v: torch.Tensor) -> torch.Tensor:
        n = self.n_values.to(v.device)
        steps = (n - 1).clamp_min(1)
        return torch.where(n > 1, torch.round(v * steps) / steps, v)
