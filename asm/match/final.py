"""The final render of a match: the audio that is reported, written and scored for the best preset.

It must be what the exported preset plays in a fresh synth, and never silent when the search found an
audible candidate. A plugin carries state from render to render inside a worker (amsynth: a click of
the previous render's tail at the start, or silence, about once in 48 matches), so for plugins the
final render is the first render of a fresh instance (opened in a child process during the search,
so it costs no wall time). Built-in Faust synths render deterministically, so the pool renders
theirs. A render that comes back silent, non-finite or crashed is redone in another fresh instance;
failing that, the next best candidate is taken.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from asm.audio.signal import is_usable
from asm.errors import AsmError
from asm.synth.host import open_synth

FINAL_CANDIDATES = 8  # best candidates tried, in order, for a usable final render


def _open(spec):
    return open_synth(spec, isolate=True)


class FreshSynths:
    """Synth instances that each make one render (a fresh state). With ``prefetch`` the first one opens
    in a thread now, while the search runs."""

    def __init__(self, spec, prefetch: bool = False):
        self.spec = spec
        self._next: Future | None = None
        if prefetch:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asm-fresh-synth")
            self._next = executor.submit(_open, spec)
            executor.shutdown(wait=False)

    def render(self, free: np.ndarray, notes, duration: float) -> np.ndarray | None:
        """``free`` played by a fresh instance; None when the synth cannot open or crashes (a plugin
        lives in a child process, so a crash never ends the match)."""
        future, self._next = self._next, None
        try:
            synth = future.result() if future is not None else _open(self.spec)
        except AsmError:
            return None
        try:
            return synth.render_free(np.asarray(free, dtype=np.float64), notes, duration)
        except AsmError:
            return None
        finally:
            synth.close()

    def close(self) -> None:
        """Close an instance opened but not used (once it is open; without waiting for it here)."""
        future, self._next = self._next, None
        if future is not None:
            future.add_done_callback(lambda f: f.exception() is None and f.result().close())


def final_render(pool, fresh: FreshSynths, archive, worst: float, notes, duration: float,
                 prefer: int | None = None) -> tuple[int, np.ndarray, list[str]]:
    """(archive index, audio, notices) of the best candidate whose final render is finite and audible.

    A search that found nothing audible gets its best candidate's render as it is; one that did but
    whose best candidates no longer render audibly is an AsmError (never a silent match reported as
    found). ``prefer`` (an archive index, e.g. the best mean over re-renders) is tried first."""
    values, head = archive.all_values(), archive.all_headline()
    plugin = fresh.spec.kind != "faust"

    def by_pool(free):
        return pool.render(free[None], notes, duration, free=True)[0]

    def by_fresh(free):
        return fresh.render(free, notes, duration)

    first, again = (by_fresh, by_fresh) if plugin else (by_pool, by_fresh)
    audible = [int(i) for i in np.argsort(head, kind="stable") if head[i] < worst]
    if prefer is not None and prefer in audible:
        audible.remove(prefer)
        audible.insert(0, prefer)
    if not audible:
        audio = first(values[archive.best_index])
        if audio is None:
            raise AsmError("the synth crashed re-rendering the best preset")
        return archive.best_index, audio, []
    notices: list[str] = []
    for rank, i in enumerate(audible[:FINAL_CANDIDATES]):
        audio = first(values[i])
        if audio is not None and is_usable(audio):
            return i, audio, notices
        what = "crashed" if audio is None else ("was non-finite" if not np.isfinite(audio).all() else "was silent")
        audio = again(values[i])
        if audio is not None and is_usable(audio):
            notices.append(f"the final render of candidate {rank + 1} {what}; rendered again in a fresh synth instance")
            return i, audio, notices
        notices.append(f"candidate {rank + 1} (score {head[i]:.4f} in the search) no longer renders audibly; "
                       "trying the next")
    raise AsmError(f"the {min(len(audible), FINAL_CANDIDATES)} best presets of the search rendered audibly during "
                   "the search but no longer do (silent or non-finite, also in a fresh synth instance)")
