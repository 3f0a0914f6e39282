"""Architecture ``nn``: the nearest training examples of the target (standardised log-mel, time
pooled), indexed from the training split without epochs; returns K candidates."""

from __future__ import annotations

from asm.models.architectures import Architecture, register
from asm.registry.fixtures import FieldError

NN_SETTINGS = ("time_pool",)


@register
class NeighbourArchitecture(Architecture):
    name = "nn"
    description = "nearest neighbours among the training examples (no training)"
    kind = "index"
    many_candidates = True
    sections = ("nn",)

    def check(self, config) -> None:
        unknown = set(config.nn) - set(NN_SETTINGS)
        if unknown:
            raise FieldError("nn", f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(NN_SETTINGS)}")
