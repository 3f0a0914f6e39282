"""Mono or poly: one note per example or target, or chords, arpeggios, sequences and MIDI chunks."""

from __future__ import annotations

from enum import StrEnum

from asm.errors import AsmError


class Mode(StrEnum):
    mono = "mono"
    poly = "poly"

    @classmethod
    def parse(cls, value: str, option: str = "--mode") -> Mode:
        """The mode a user named, or one ``AsmError`` line naming the option."""
        try:
            return cls(value)
        except ValueError:
            raise AsmError(f"{option} must be {' or '.join(m.value for m in cls)}, got {value!r}") from None

    @classmethod
    def of(cls, poly: bool) -> Mode:
        return cls.poly if poly else cls.mono
