"""The pitch a proxy of checkpoint format 2 takes as its last input column.

A dataset varies the pitch of its examples (mono: one note in ``note_range``), so the embedding of a
preset's render depends on the note as much as on the preset. The proxy sees the duration-weighted
mean MIDI pitch of the notes played, mapped linearly from [``PITCH_LOW``, ``PITCH_HIGH``] to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PITCH_LOW, PITCH_HIGH = 24.0, 108.0  # C1 .. C8


def mean_pitch(notes: Sequence) -> float:
    """Duration-weighted mean MIDI pitch of ``notes`` (objects with ``pitch`` and ``duration``)."""
    notes = list(notes)
    if not notes:
        return 60.0
    w = np.array([max(float(n.duration), 1e-3) for n in notes])
    return float(np.average([float(n.pitch) for n in notes], weights=w))


def pitch_value(pitch: float) -> float:
    """A MIDI pitch as the proxy's input (may leave [0, 1] outside C1..C8; the network extrapolates)."""
    return (float(pitch) - PITCH_LOW) / (PITCH_HIGH - PITCH_LOW)


def with_pitch(free: np.ndarray, pitch: float | np.ndarray) -> np.ndarray:
    """(n, n_free) free vectors -> (n, n_free + 1) with the normalised pitch column appended
    (``pitch``: one MIDI pitch for every row, or one per row)."""
    free = np.atleast_2d(np.asarray(free, dtype=np.float32))
    col = np.broadcast_to(np.asarray([pitch_value(p) for p in np.atleast_1d(pitch)], np.float32), (len(free),))
    return np.concatenate([free, col[:, None]], axis=1)
