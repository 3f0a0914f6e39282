"""A synth's re-render floor: the headline distance between R renders of one preset.

amsynth starts its oscillators at random phase, so two renders of one preset differ; no match
scores better against its target than the target's own preset played again, and a difference
smaller than that is luck. A benchmark measures the floor once per target set (``measure_floor``)
for a nondeterministic synth (``SearchSettings.rerenders_for(kind) > 1``): R renders of each of up
to ``FLOOR_PRESETS`` presets (the set's true presets where known, else each target's best match by
the headline metric), the mean headline distance over the R (R - 1) ordered pairs of renders of a
preset (``perceptual`` is not symmetric), and the median over presets is the floor. A deterministic
synth (asm-sub) has floor 0: it is recorded as ``deterministic`` and never divided by.

Stored as ``result.extra[FLOOR_KEY]`` on every row of the set (``asm.runs.writer``), so tables and
report read it from the rows alone: ``{"metric", "deterministic", "value", "max", "renders",
"presets", "source"}`` (``value``/``max`` None when deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from asm.audio.metrics import HEADLINE_METRIC

FLOOR_KEY = "rerender_floor"
FLOOR_PRESETS = 16  # presets per target set: the floor is a median, a few presets pin it


def deterministic_floor() -> dict:
    return {"metric": HEADLINE_METRIC, "deterministic": True, "value": None, "max": None, "renders": 1,
            "presets": 0, "source": None}


def measure_floor(pool, presets: Sequence[tuple[np.ndarray, Sequence, float]], sample_rate: int, renders: int,
                  source: str) -> dict | None:
    """The floor over ``presets`` (free values, notes, duration in s), each rendered ``renders`` times
    with ``pool``; None when no preset rendered at least twice."""
    from asm.audio.metrics import rerender_spread

    per: list[float] = []
    for values, notes, duration in presets[:FLOOR_PRESETS]:
        rows = np.repeat(np.asarray(values, dtype=np.float64)[None], renders, axis=0)
        clips = [a for a in pool.render(rows, notes, duration, free=True) if a is not None]
        if len(clips) < 2:
            continue
        per.append(rerender_spread(np.stack(clips), sample_rate, [HEADLINE_METRIC])[HEADLINE_METRIC])
    if not per:
        return None
    return {"metric": HEADLINE_METRIC, "deterministic": False, "value": float(np.median(per)),
            "max": float(np.max(per)), "renders": int(renders), "presets": len(per), "source": source}


def floor_of(records: Sequence[Mapping]) -> dict | None:
    """The floor noted on a target set's rows (the first row that has one), None for older runs."""
    for r in records:
        floor = (r.get("extra") or {}).get(FLOOR_KEY)
        if floor:
            return dict(floor)
    return None


def relative(distance: float | None, floor: Mapping | None) -> float | None:
    """``distance`` in units of the floor; None when deterministic, unmeasured or not a number."""
    if distance is None or not floor or floor.get("deterministic") or not floor.get("value"):
        return None
    return float(distance) / float(floor["value"])


def floor_text(floor: Mapping | None) -> str:
    """One phrase for tables and the report."""
    from asm.bench.summary import fmt

    if not floor:
        return "re-render floor: not measured"
    if floor.get("deterministic"):
        return "re-render floor: deterministic (identical re-renders, floor 0; distances are absolute)"
    return (f"re-render floor ({floor['metric']}, {floor['renders']} renders of {floor['presets']} "
            f"{floor['source']}): median {fmt(floor['value'])}, max {fmt(floor['max'])}")
