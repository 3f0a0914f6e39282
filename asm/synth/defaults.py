"""Render defaults of a synth (sample rate, note, velocity, duration, note-off), set by fixtures.

Stored on the synth's registry row; ``asm.registry.synth_loader.render_defaults`` reads them back.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RenderDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(16000, ge=8000, le=192000)
    note: int = Field(60, ge=0, le=127)
    velocity: int = Field(100, ge=1, le=127)
    duration: float = Field(2.0, gt=0, le=60)
    note_off: float = Field(1.5, gt=0, le=60)
    tail: float = Field(1.0, ge=0, le=30, description="seconds rendered after the last note-off of a MIDI file")
