"""A synth as data: a declarative chain of module calls, evaluated in order (as in torchsynth/DiffMoog).

A ``Node`` names its output, the module function and where each argument comes from: the name of a
control, of a per-call value (``sample_rate``, ``n_samples``, ...) or of an earlier node's output; a
tuple of names passes a list. A ``Chain`` checks at construction that every name is defined before
use, so a mistyped chain fails when it is declared, not mid-render. ``VoiceSynth`` runs one chain per
voice (every note is a fresh voice starting at its note-on sample), sums the voices into their rows
and runs a second chain on the sum, which is how the Faust host groups voices before the effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from asm.errors import AsmError


@dataclass(frozen=True)
class Node:
    out: str
    fn: Callable[..., Tensor]
    inputs: Mapping[str, str | tuple[str, ...]]
    consts: Mapping[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [n for v in self.inputs.values() for n in ((v,) if isinstance(v, str) else v)]


@dataclass(frozen=True)
class Chain:
    nodes: tuple[Node, ...]
    output: str
    given: frozenset[str]  # names the caller provides

    def __post_init__(self):
        known = set(self.given)
        for node in self.nodes:
            missing = [n for n in node.names() if n not in known]
            if missing:
                raise AsmError(f"chain node {node.out!r} uses undefined inputs: {', '.join(missing)}")
            known.add(node.out)
        if self.output not in known:
            raise AsmError(f"chain output {self.output!r} is not produced by any node")

    def __call__(self, env: Mapping[str, Any]) -> Tensor:
        missing = sorted(self.given - set(env))
        if missing:
            raise AsmError(f"chain inputs missing: {', '.join(missing)}")
        values = dict(env)
        for node in self.nodes:
            kwargs = {arg: (values[src] if isinstance(src, str) else [values[s] for s in src])
                      for arg, src in node.inputs.items()}
            values[node.out] = node.fn(**kwargs, **node.consts)
        return values[self.output]


@dataclass(frozen=True)
class Voices:
    """Notes of a batch, one row per render: ``(B, V)`` tensors, ``mask`` false for padding voices."""

    pitch: Tensor
    velocity: Tensor
    start: Tensor  # seconds
    duration: Tensor  # seconds
    mask: Tensor

    @classmethod
    def from_notes(cls, rows: Sequence[Sequence], dtype=torch.float64, device="cpu") -> "Voices":
        """From one list of ``asm.midi.notes.Note`` per row."""
        if not rows or any(len(r) == 0 for r in rows):
            raise AsmError("every render row needs at least one note")
        v = max(len(r) for r in rows)

        def table(attr, fill):
            return torch.tensor([[getattr(n, attr) for n in r] + [fill] * (v - len(r)) for r in rows],
                                dtype=dtype, device=device)

        mask = torch.tensor([[True] * len(r) + [False] * (v - len(r)) for r in rows], device=device)
        return cls(table("pitch", 60), table("velocity", 1), table("start", 0.0), table("duration", 1.0), mask)


# DawDreamer runs Faust's poly DSP one sample at a time, so a releasing voice is freed right after
# the first output sample whose magnitude is below Faust's VOICE_STOP_LEVEL (-90 dB), measured.
FAUST_VOICE_STOP_LEVEL = 10 ** (-90 / 20)


def free_released_voices(out: Tensor, gate_samples: Tensor, level: float) -> Tensor:
    """Silence each voice (N, T) after its first sample below ``level`` once its gate is off, as the host does.

    The cut position is a discrete choice and carries no gradient; the kept samples keep theirs.
    """
    n = torch.arange(out.shape[1], device=out.device)
    below = (out.detach().abs() < level) & (n.unsqueeze(0) >= gate_samples.long())
    first = torch.where(below.any(dim=1), below.float().argmax(dim=1), out.shape[1])
    return out * (n.unsqueeze(0) <= first.unsqueeze(1))


@dataclass(frozen=True)
class VoiceSynth:
    """A polyphonic synth: ``voice`` chain per note, summed per row, then the ``effect`` chain."""

    voice: Chain
    effect: Chain

    def render(self, controls: Mapping[str, Tensor], voices: Voices, sample_rate: int, n_samples: int,
               stop_level: float | None = FAUST_VOICE_STOP_LEVEL) -> Tensor:
        """``controls``: (B, 1) or (B, k) tensors; returns (B, n_samples) audio.

        ``stop_level``: free releasing voices as the DawDreamer host does (None: voices play out).
        """
        b, v = voices.pitch.shape
        on = torch.floor(voices.start * sample_rate)
        off = torch.floor((voices.start + voices.duration) * sample_rate)
        per_voice = {name: t.repeat_interleave(v, dim=0) for name, t in controls.items()}
        per_voice.update(
            freq=(440 * torch.pow(2.0, (voices.pitch - 69) / 12)).reshape(b * v, 1),
            gain=(voices.velocity / 127).reshape(b * v, 1),
            gate_samples=(off - on).clamp_min(1).reshape(b * v, 1),
            sample_rate=sample_rate,
            n_samples=n_samples,
        )
        out = self.voice(per_voice)
        if stop_level is not None:
            out = free_released_voices(out, per_voice["gate_samples"], stop_level)
        out = out.reshape(b, v, n_samples)
        if bool((on > 0).any()):  # shift each voice to its note-on sample
            index = torch.arange(n_samples, device=out.device).view(1, 1, -1) - on.long().unsqueeze(-1)
            valid = index >= 0
            out = torch.gather(out, 2, index.clamp_min(0)) * valid
        out = (out * voices.mask.unsqueeze(-1)).sum(dim=1)
        return self.effect({**controls, "voices": out, "sample_rate": sample_rate, "n_samples": n_samples})

