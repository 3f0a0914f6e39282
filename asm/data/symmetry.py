"""Parameter symmetries: presets that sound the same with groups of parameters exchanged.

A point estimator trained on such labels learns the average of the equivalent answers (e.g. two
half-loud oscillators instead of one loud and one quiet). Putting every label in a **canonical
order** (the group with the larger ``order_by`` value first) gives each sound one label.

A swap is exact only where its condition holds: asm-sub's oscillators have different pitch
controls (osc1: octave; osc2: semitone and detune), so exchanging their wave, pulse width and
level keeps the sound only when both play the same pitch (semitone = 12 x octave, no detune). With
those pitch controls locked the swap holds for every preset; with them free it holds on a set of
measure zero (detune is continuous) and canonicalising changes nothing.

    canon = Canonicaliser.for_space("asm-sub", space)   # None when the synth has no known symmetry
    labels = canon(free_values)                          # (n, n_free) float32, a copy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Swap:
    pairs: tuple[tuple[str, str], ...]  # parameters exchanged together
    order_by: tuple[str, str]  # canonical: value of the first >= value of the second
    holds: Callable[[dict[str, np.ndarray]], np.ndarray]  # full normalised columns -> rows where it is exact


def _step(v: np.ndarray, n: int) -> np.ndarray:
    return np.rint(np.asarray(v) * (n - 1))


def _asm_sub_same_pitch(col: dict[str, np.ndarray]) -> np.ndarray:
    octave = _step(col["osc1_octave"], 5) - 2
    semitone = _step(col["osc2_semitone"], 25) - 12
    detune = (2 * col["osc2_detune"] - 1) * 50
    return (semitone == 12 * octave) & (np.abs(detune) < 1e-4)


SYMMETRIES: dict[str, tuple[Swap, ...]] = {
    "asm-sub": (Swap(pairs=(("osc1_wave", "osc2_wave"), ("osc1_pw", "osc2_pw"), ("osc1_level", "osc2_level")),
                     order_by=("osc1_level", "osc2_level"), holds=_asm_sub_same_pitch),),
}


class Canonicaliser:
    """Puts free-parameter vectors of one parameter space in the canonical order of its swaps."""

    def __init__(self, space, swaps: tuple[Swap, ...]):
        self.space = space
        names = [p.name for p in space.params]
        free = {p.name for p in space.free}
        # a swap can only be applied when every exchanged parameter is free (a label cannot move a lock)
        self.swaps = tuple(s for s in swaps if all(a in free and b in free for a, b in s.pairs))
        self._index = {n: i for i, n in enumerate(names)}

    @classmethod
    def for_dataset(cls, ds) -> "Canonicaliser | None":
        """For a ``ShardDataset``: its synth's symmetries in its parameter space (locks applied)."""
        from asm.errors import AsmError
        from asm.registry.db import session_scope
        from asm.registry.synths import get_synth, space_of

        with session_scope(read_only=True) as session:
            base = space_of(get_synth(session, ds.synth))
        space = base.with_locks({p.index: ds.locks.get(p.index) for p in base.params})
        if space.free_signature() != ds.free_signature:
            raise AsmError(f"the parameters of {ds.synth} changed since dataset {ds.name} was made")
        return cls.for_space(ds.synth, space)

    @classmethod
    def for_space(cls, synth: str, space) -> "Canonicaliser | None":
        swaps = SYMMETRIES.get(synth, ())
        canon = cls(space, swaps)
        return canon if canon.swaps else None

    def swapped(self, free: np.ndarray) -> np.ndarray:
        """Rows where some swap applies and the order is not canonical (before canonicalising)."""
        full = self.space.full(np.atleast_2d(np.asarray(free, dtype=np.float64)))
        return self._mask(full, self.swaps[0]) if self.swaps else np.zeros(len(full), bool)

    def _mask(self, full: np.ndarray, swap: Swap) -> np.ndarray:
        col = {n: full[:, i] for n, i in self._index.items()}
        a, b = swap.order_by
        return swap.holds(col) & (col[b] > col[a])

    def __call__(self, free: np.ndarray) -> np.ndarray:
        free = np.atleast_2d(np.asarray(free, dtype=np.float32))
        full = self.space.full(free.astype(np.float64))
        for swap in self.swaps:
            rows = self._mask(full, swap)
            for a, b in swap.pairs:
                i, j = self._index[a], self._index[b]
                full[rows, i], full[rows, j] = full[rows, j], full[rows, i].copy()
        return self.space.free_part(full).astype(np.float32)


class CanonicalArrays:
    """A training loop's ``ExampleArrays`` whose labels come out in canonical order."""

    def __init__(self, arrays, canon: Canonicaliser):
        self.arrays, self.canon = arrays, canon
        if hasattr(arrays, "order"):  # a stream keeps ordering its own epochs
            self.order = arrays.order

    def __len__(self) -> int:
        return len(self.arrays)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, params = self.arrays.get(indices)
        return feats, self.canon(params)
