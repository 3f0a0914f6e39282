"""How much noisier a match is than its target: what a benchmark stores per result, and the ratio.

Matches of recorded instruments often fill the space between the target's partials with noise
(issue 14), which distances forgive more than listeners do. Per result the benchmark stores, in
``result.extra`` (layout in ``asm.runs.writer``), the noisiness (``asm.audio.analysis.noisiness``:
level-gated spectral flatness, 0 = pure partials, 1 = white noise) of the target audio and of the
rendered match. The *noisiness ratio* is ``max(match, NOISINESS_MIN) / max(target, NOISINESS_MIN)``
(the floor of the ``noisiness`` metric, so a target of pure partials never divides by zero); a
match is *noisier* when the ratio is at least ``NOISIER_RATIO`` (3x).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from asm.audio.metrics import NOISINESS_MIN

TARGET_KEY = "target_noisiness"
MATCH_KEY = "match_noisiness"
NOISIER_RATIO = 3.0


def _noisiness(audio, sample_rate: int) -> float | None:
    from asm.audio.analysis import noisiness

    if audio is None or isinstance(audio, (str, bytes)) or not hasattr(audio, "shape"):
        return None
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        return None
    return noisiness(audio, sample_rate)


def noisiness_extra(target_audio, audio, sample_rate: int) -> dict:
    """``{TARGET_KEY, MATCH_KEY}`` of a result, measured on the real target and rendered match
    (a missing or unusable render has no match noisiness: it is left out, not counted as quiet)."""
    out = {}
    for key, a in ((TARGET_KEY, target_audio), (MATCH_KEY, audio)):
        value = _noisiness(a, sample_rate)
        if value is not None:
            out[key] = float(value)
    return out


def noisiness_ratio(extra: Mapping) -> float | None:
    """The result's noisiness ratio (module docstring), None when either noisiness is missing."""
    target, match = extra.get(TARGET_KEY), extra.get(MATCH_KEY)
    if target is None or match is None:
        return None
    return max(float(match), NOISINESS_MIN) / max(float(target), NOISINESS_MIN)
