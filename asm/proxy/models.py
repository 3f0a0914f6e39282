"""Proxy networks (synth-proxy's zoo): free-parameter vector -> audio embedding.

The input is the normalised free-parameter vector in the registry's free order; categorical
parameters enter as one-hot vectors (``InputLayout``). A proxy of checkpoint format 2 also takes the
example's mean pitch as one more continuous column (``asm.proxy.pitch``): the same preset sounds
different an octave up, and a mono dataset varies the pitch. Three networks:

* ``mlp``: one-hot inputs, hidden layers with GELU and dropout;
* ``highway``: highway layers (gated skip connections, Srivastava et al.) after an input projection;
* ``transformer``: one token per parameter (its value through a per-parameter projection, or its
  category's embedding, plus a parameter-identity embedding), a class token, pre-norm encoder layers.

Targets are standardised embeddings (per-dimension mean and std of the training split, kept as
buffers), and the loss is L1, as synth-proxy trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

NETS = ("mlp", "highway", "transformer")


@dataclass(frozen=True)
class InputLayout:
    """Free parameters as the network sees them: (kind, n_values) in free order."""

    params: tuple[tuple[str, int], ...]

    @classmethod
    def from_free(cls, free_parameters: list[dict[str, Any]]) -> "InputLayout":
        return cls(tuple((str(p["kind"]), int(p.get("n_values") or 0)) for p in free_parameters))

    def categorical(self, i: int) -> bool:
        kind, n = self.params[i]
        return kind == "categorical" and n > 1

    @property
    def width(self) -> int:
        return sum(self.params[i][1] if self.categorical(i) else 1 for i in range(len(self.params)))

    def category(self, x: torch.Tensor, i: int) -> torch.Tensor:
        n = self.params[i][1]
        return (x[:, i] * n).floor().clamp(0, n - 1).long() if n else x[:, i].long()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_free) normalised values -> (B, width): continuous as is, categorical one-hot."""
        cols = []
        for i in range(len(self.params)):
            if self.categorical(i):
                cols.append(nn.functional.one_hot(self.category(x, i), self.params[i][1]).to(x.dtype))
            else:
                cols.append(x[:, i : i + 1])
        return torch.cat(cols, dim=1)


class Highway(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.transform, self.gate = nn.Linear(dim, dim), nn.Linear(dim, dim)
        nn.init.constant_(self.gate.bias, -1.0)  # start close to the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(x))
        return g * nn.functional.gelu(self.transform(x)) + (1 - g) * x


class MLPBody(nn.Module):
    def __init__(self, layout: InputLayout, out_dim: int, hidden: int = 512, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        dims = [layout.width] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        self.layout, self.net, self.out = layout, nn.Sequential(*blocks), nn.Linear(dims[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(self.layout.encode(x)))


class HighwayBody(nn.Module):
    def __init__(self, layout: InputLayout, out_dim: int, hidden: int = 512, layers: int = 4, dropout: float = 0.1):
        super().__init__()
        self.layout = layout
        self.inp = nn.Sequential(nn.Linear(layout.width, hidden), nn.GELU())
        self.layers = nn.Sequential(*[nn.Sequential(Highway(hidden), nn.Dropout(dropout)) for _ in range(layers)])
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(self.inp(self.layout.encode(x))))


class TransformerBody(nn.Module):
    def __init__(self, layout: InputLayout, out_dim: int, dim: int = 128, depth: int = 3, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.layout = layout
        n = len(layout.params)
        self.value_w = nn.Parameter(torch.randn(n, dim) * 0.02)  # per-parameter projection of a value
        self.value_b = nn.Parameter(torch.zeros(n, dim))
        self.identity = nn.Parameter(torch.randn(n, dim) * 0.02)
        self.cats = nn.ModuleDict({str(i): nn.Embedding(layout.params[i][1], dim)
                                   for i in range(n) if layout.categorical(i)})
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm, self.out = nn.LayerNorm(dim), nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value_w + self.value_b  # (B, n, dim)
        if len(self.cats):
            tokens = tokens.clone()
            for key, emb in self.cats.items():
                i = int(key)
                tokens[:, i] = emb(self.layout.category(x, i)) + self.value_b[i]
        tokens = tokens + self.identity
        h = self.encoder(torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1))
        return self.out(self.norm(h[:, 0]))


BODIES = {"mlp": MLPBody, "highway": HighwayBody, "transformer": TransformerBody}


class ProxyNetwork(nn.Module):
    """A body plus the embedding's standardisation; ``forward`` returns embeddings in the original
    units, ``loss`` is L1 in standardised units (what the Trainer minimises and selects by)."""

    def __init__(self, net: str, free_parameters: list[dict[str, Any]], embed_dim: int, pitch_input: bool = False,
                 **hyper: Any):
        super().__init__()
        layout = InputLayout.from_free(free_parameters)
        if pitch_input:  # the normalised mean pitch: one more continuous input after the free parameters
            layout = InputLayout((*layout.params, ("continuous", 0)))
        self.layout, self.pitch_input = layout, bool(pitch_input)
        self.body = BODIES[net](self.layout, embed_dim, **hyper)
        self.register_buffer("mean", torch.zeros(embed_dim))
        self.register_buffer("std", torch.ones(embed_dim))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-4))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.std + self.mean

    def loss(self, x: torch.Tensor, target: torch.Tensor, generator=None) -> tuple[torch.Tensor, dict]:
        l1 = (self.body(x) - (target - self.mean) / self.std).abs().mean()
        return l1, {"head": l1.detach()}


def check_hyperparameters(net: str, settings: dict[str, Any]) -> None:
    """Unknown network kinds or hyperparameters are refused by name."""
    import inspect

    from asm.registry.fixtures import FieldError

    if net not in BODIES:
        raise FieldError("net", f"unknown proxy network {net!r}; known: {', '.join(NETS)}")
    accepted = set(inspect.signature(BODIES[net].__init__).parameters) - {"self", "layout", "out_dim"}
    unknown = set(settings) - accepted
    if unknown:
        raise FieldError("hyper", f"unknown hyperparameter(s) {', '.join(sorted(unknown))} for {net}; "
                                  f"known: {', '.join(sorted(accepted))}")
