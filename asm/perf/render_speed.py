"""Render speed of asm's synth layer against the bare DawDreamer call on the same patches."""

from __future__ import annotations

import time

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import held
from asm.registry.db import session_scope
from asm.registry.synth_loader import load_spec
from asm.synth.host import FaustSynth, open_synth


def measure_render_speed(synth_name: str, sample_rate: int, duration: float, n: int, seed: int = 0) -> dict:
    with session_scope() as session:
        spec = load_spec(session, synth_name, sample_rate)
    synth = open_synth(spec, isolate=False)  # render workers host plugins in-process: measure that
    rng = np.random.default_rng(seed)
    presets = spec.space.quantise(spec.space.full(spec.space.random_free(rng, n)))
    notes = held([60], 100, 0.75 * duration)
    bare = bare_renderer(synth)
    if bare is None:
        raise AsmError(f"no bare-call comparison is available for synth kind {spec.kind}")

    def asm_once(values):
        synth.render(values, notes, duration)

    def bare_once(values):
        bare(values, notes, duration)

    for fn in (asm_once, bare_once):  # warm up caches and the plugin
        fn(presets[0])
    times = {"asm": 0.0, "bare": 0.0}
    block = max(1, n // 10)
    for start in range(0, n, block):  # interleave blocks so drift in machine load hits both alike
        for key, fn in (("bare", bare_once), ("asm", asm_once)):
            t0 = time.perf_counter()
            for values in presets[start : start + block]:
                fn(values)
            times[key] += time.perf_counter() - t0
    synth.close()
    asm_rps, bare_rps = n / times["asm"], n / times["bare"]
    isolated_rps = None
    if spec.kind in ("vst2", "vst3"):  # the child-process host commands use: one IPC round trip more
        iso = open_synth(spec, isolate=True)
        def asm_once_iso(values):
            return iso.render(values, notes, duration)
        asm_once_iso(presets[0])
        t0 = time.perf_counter()
        for values in presets:
            asm_once_iso(values)
        isolated_rps = n / (time.perf_counter() - t0)
        iso.close()
    return {
        "synth": synth_name,
        "sample_rate": sample_rate,
        "duration": duration,
        "n": n,
        "asm_rps": asm_rps,
        "bare_rps": bare_rps,
        "overhead_pct": 100.0 * (bare_rps / asm_rps - 1.0),
        "isolated_rps": isolated_rps,
    }


def bare_renderer(synth):
    """A function doing only the DawDreamer calls one render needs, on the synth's own processor."""
    if isinstance(synth, FaustSynth):
        return faust_bare_render(synth._faust, synth._targets)
    return getattr(synth, "bare_renderer", lambda: None)()


def faust_bare_render(f, targets):
    """The DawDreamer calls of one render of Faust engine ``f`` (parameter ``targets`` in order);
    the function returns DawDreamer's output array as it is."""

    def render(values, notes, duration):
        for target, value in zip(targets, values.tolist()):
            f.proc.set_parameter(target, value)
        f.proc.clear_midi()
        for note in notes:
            f.proc.add_midi_note(note.pitch, note.velocity, note.start, note.duration)
        f.engine.render(duration)
        return f.engine.get_audio()

    return render
