"""Differentiable torch twins of the built-in synths (same parameters, same normalised ranges)."""

from importlib import import_module

from asm.errors import AsmError

TWINS = {"asm-sub": "asm.synth.diff.asm_sub"}


def twin_module(synth_name: str):
    """The twin module of a built-in synth (it has ``render(params, voices, sample_rate, duration)``)."""
    if synth_name not in TWINS:
        raise AsmError(f"no differentiable twin for synth {synth_name!r} (twins: {', '.join(TWINS)})")
    return import_module(TWINS[synth_name])
