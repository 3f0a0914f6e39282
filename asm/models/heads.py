"""Output heads that follow the parameter kinds, and the matching mixed loss.

Continuous parameters get a bounded (sigmoid) output and an L1 (or MSE) loss; stepped, categorical
and boolean parameters get one classification head each (logits over their values) and a
cross-entropy loss. ``decode`` turns outputs back into a normalised free-parameter vector, where
class ``k`` of an ``n``-valued parameter is ``k / (n - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from asm.synth.params import ParameterSpec


@dataclass
class LossWeights:
    continuous: float = 1.0
    categorical: float = 0.2
    continuous_loss: str = "l1"  # or "mse"


@dataclass
class Prediction:
    continuous: torch.Tensor  # (B, n_continuous) in [0, 1]
    logits: torch.Tensor  # (B, sum of the discrete parameters' value counts)


class ParameterLayout:
    """Where each free parameter lives in a prediction: continuous slot or a block of logits."""

    def __init__(self, free: Sequence[ParameterSpec]):
        self.n_free = len(free)
        self.continuous = [i for i, p in enumerate(free) if not p.discrete]
        self.discrete = [i for i, p in enumerate(free) if p.discrete]
        self.n_values = [free[i].n_values for i in self.discrete]
        offsets = [0]
        for n in self.n_values:
            offsets.append(offsets[-1] + n)
        self.offsets = offsets
        self.n_logits = offsets[-1]

    def classes(self, target: torch.Tensor) -> torch.Tensor:
        """Class indices (B, n_discrete) of the discrete parameters of normalised targets."""
        if not self.discrete:
            return torch.zeros(target.shape[0], 0, dtype=torch.long, device=target.device)
        steps = torch.tensor([n - 1 for n in self.n_values], device=target.device, dtype=target.dtype)
        return torch.round(target[:, self.discrete].clamp(0, 1) * steps).long()

    def decode(self, pred: Prediction) -> torch.Tensor:
        """Normalised free vectors (B, n_free): continuous as predicted, discrete by argmax."""
        b = pred.continuous.shape[0]
        out = torch.empty(b, self.n_free, device=pred.continuous.device, dtype=pred.continuous.dtype)
        out[:, self.continuous] = pred.continuous
        for j, i in enumerate(self.discrete):
            block = pred.logits[:, self.offsets[j] : self.offsets[j + 1]]
            out[:, i] = block.argmax(dim=1).to(out.dtype) / (self.n_values[j] - 1)
        return out

    def loss(self, pred: Prediction, target: torch.Tensor, weights: LossWeights) -> tuple[torch.Tensor, dict]:
        """Mixed loss averaged over parameters: weighted L1/MSE + weighted cross-entropy."""
        parts: dict[str, torch.Tensor] = {}
        total = pred.continuous.new_zeros(())
        if self.continuous:
            t = target[:, self.continuous]
            per = (pred.continuous - t).abs() if weights.continuous_loss == "l1" else (pred.continuous - t) ** 2
            parts["continuous"] = per.mean().detach()
            total = total + weights.continuous * per.mean(dim=0).sum()
        if self.discrete:
            classes = self.classes(target)
            ce = pred.logits.new_zeros(())
            for j in range(len(self.discrete)):
                block = pred.logits[:, self.offsets[j] : self.offsets[j + 1]]
                ce = ce + F.cross_entropy(block.float(), classes[:, j])
            parts["categorical"] = (ce / len(self.discrete)).detach()
            total = total + weights.categorical * ce
        return total / self.n_free, parts


class ParameterHead(nn.Module):
    """Embedding -> Prediction for every free parameter."""

    def __init__(self, in_features: int, layout: ParameterLayout):
        super().__init__()
        self.layout = layout
        self.continuous = nn.Linear(in_features, len(layout.continuous))
        self.logits = nn.Linear(in_features, layout.n_logits)

    def forward(self, embedding: torch.Tensor) -> Prediction:
        return Prediction(torch.sigmoid(self.continuous(embedding)), self.logits(embedding))


def constant_prediction(layout: ParameterLayout, train_targets: torch.Tensor, batch: int) -> Prediction:
    """The best input-free predictor: training mean for continuous parameters, training class
    frequencies for discrete ones (whose argmax is the most frequent choice). Used as the baseline."""
    cont = train_targets[:, layout.continuous].mean(dim=0, keepdim=True).expand(batch, -1)
    blocks = []
    classes = layout.classes(train_targets)
    for j, n in enumerate(layout.n_values):
        counts = torch.bincount(classes[:, j], minlength=n).float() + 0.5
        blocks.append(torch.log(counts / counts.sum()))
    logits = torch.cat(blocks).unsqueeze(0).expand(batch, -1) if blocks else cont.new_zeros(batch, 0)
    return Prediction(cont, logits)
