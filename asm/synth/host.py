"""One render API over every synth kind.

A ``SynthSpec`` holds everything needed to open a synth without the registry (it is picklable, so
render workers receive it). ``Synth.render(values, notes, duration)`` takes a *full* normalised
vector, re-applies the locks (so a locked value reaches the synth before every render, whatever the
caller passed) and returns mono float32 audio of exactly ``duration`` seconds. Every render starts
from fresh voice state.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Sequence

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import Note
from asm.synth.builtin import BUILTINS
from asm.synth.params import ParameterSpace


@dataclass(frozen=True)
class SynthSpec:
    name: str
    kind: str  # faust | vst2 | vst3
    path: str  # plugin path, or builtin:<name>
    space: ParameterSpace
    sample_rate: int = 16000
    block_size: int = 512

    def with_sample_rate(self, sample_rate: int) -> "SynthSpec":
        return replace(self, sample_rate=int(sample_rate))


class Synth(ABC):
    """A synth opened for rendering in this process."""

    def __init__(self, spec: SynthSpec):
        self.spec = spec

    @property
    def space(self) -> ParameterSpace:
        return self.spec.space

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    def render(self, values: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray:
        """Mono float32 audio of ``duration`` seconds: ``notes`` played with preset ``values``."""
        full = self.space.apply_locks(self.space.quantise(values))
        check_notes(notes)
        if not duration > 0:
            raise AsmError(f"duration must be positive, got {duration}")
        audio = self._render(full, notes, float(duration))
        n = int(round(duration * self.sample_rate))
        if audio.shape[0] < n:
            audio = np.pad(audio, (0, n - audio.shape[0]))
        return np.ascontiguousarray(audio[:n], dtype=np.float32)

    def render_free(self, free: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray:
        """Render from the free (unlocked) values only."""
        return self.render(self.space.full(free), notes, duration)

    @abstractmethod
    def _render(self, full: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray: ...

    def close(self) -> None:
        """Release resources (worker processes of isolated plugins)."""


def check_notes(notes: Sequence[Note]) -> None:
    for n in notes:
        if not (0 <= n.pitch <= 127):
            raise AsmError(f"MIDI pitch {n.pitch} is outside 0..127")
        if not (1 <= n.velocity <= 127):
            raise AsmError(f"MIDI velocity {n.velocity} is outside 1..127")
        if n.start < 0 or n.duration <= 0:
            raise AsmError(f"note {n.pitch} has a negative start or non-positive duration")


class _FaustEngine:
    """A compiled Faust synth inside a DawDreamer engine (compiling costs ~0.8 s, so it is cached)."""

    def __init__(self, code: str, voices: int, sample_rate: int, block_size: int):
        import dawdreamer as daw

        self.engine = daw.RenderEngine(sample_rate, block_size)
        self.proc = self.engine.make_faust_processor("synth")
        self.proc.num_voices = voices
        self.proc.group_voices = True
        self.proc.set_dsp_string(code)
        if not self.proc.compile():
            raise AsmError("the Faust code failed to compile")
        self.engine.load_graph([(self.proc, [])])
        self.index = {d["label"]: d["index"] for d in self.proc.get_parameters_description()}
        self.lock = threading.Lock()


@lru_cache(maxsize=16)
def _faust_engine(name: str, sample_rate: int, block_size: int) -> _FaustEngine:
    builtin = BUILTINS[name]
    return _FaustEngine(builtin.dsp_code(), builtin.voices, sample_rate, block_size)


class FaustSynth(Synth):
    """A built-in Faust synth, rendered in-process (it cannot crash the host)."""

    def __init__(self, spec: SynthSpec):
        super().__init__(spec)

        name = spec.path.removeprefix("builtin:")
        if name not in BUILTINS:
            raise AsmError(f"unknown built-in synth {name!r}")
        self._faust = _faust_engine(name, spec.sample_rate, spec.block_size)
        missing = [p.name for p in spec.space.params if p.name not in self._faust.index]
        if missing:
            raise AsmError(f"the Faust code of {name} lacks parameters: {', '.join(missing)}")
        self._targets = [self._faust.index[p.name] for p in spec.space.params]

    def _render(self, full: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray:
        f = self._faust
        with f.lock:
            set_parameter = f.proc.set_parameter
            for target, value in zip(self._targets, full.tolist()):
                set_parameter(target, value)
            f.proc.clear_midi()
            for n in notes:
                f.proc.add_midi_note(n.pitch, n.velocity, n.start, n.duration)
            f.engine.render(duration)
            audio = f.engine.get_audio()
        return audio[0] if audio.shape[0] == 1 else audio.mean(axis=0)


def open_synth(spec: SynthSpec, isolate: bool = True) -> Synth:
    """Open a synth for rendering.

    ``isolate=True`` (the default, for commands run by users) hosts a plugin in a child process, so
    a plugin that crashes cannot take the caller down. Render workers, which are child processes
    already, pass ``isolate=False`` to host it in-process. Built-in Faust synths always render
    in-process.
    """
    if spec.kind == "faust":
        return FaustSynth(spec)
    if spec.kind in ("vst2", "vst3"):
        from asm.synth.plugin import open_plugin

        return open_plugin(spec, isolate=isolate)
    raise AsmError(f"cannot render synth kind {spec.kind!r}")
