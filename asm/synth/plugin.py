"""VST2/VST3 plugins hosted by DawDreamer: rendering, reading their parameters, loading presets.

``PluginSynth`` hosts a plugin in this process (render workers, which are child processes already,
use it directly). ``open_plugin(spec, isolate=True)`` hosts it in a child process instead
(``asm.synth.isolation``): a plugin that segfaults or aborts then gives one clear ``AsmError`` and
the caller, the CLI and the registry carry on; the next call starts a fresh child.

Plugins keep state between renders (voices in their release, reverb and delay tails, the last
note's pitch for portamento, limiter gain). Every render therefore starts with a short pre-roll
that is cut from the output: MIDI "all notes off", "all sound off" and "reset controllers", a
priming note at the first pitch (so a glide starts where a fresh instance would), and "all sound
off" again, leaving a stretch of silence before the notes. Renders are then as reproducible as the
plugin allows (amsynth draws random oscillator phases, so it is compared by spectrum).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asm.atomic import atomic_open
from asm.errors import AsmError
from asm.midi.notes import Note
from asm.synth.host import Synth, SynthSpec
from asm.synth.isolation import Isolated, run_isolated
from asm.synth.params import Kind, ParameterSpace, ParameterSpec

PREROLL = 0.04  # seconds of reset before every render (a whole number of samples at 16/22.05/44.1/48 kHz)
PRIME_OFF = 0.005  # the priming note lasts this long
RESET_AGAIN = 0.015  # second "all sound off", leaving PREROLL - RESET_AGAIN of silence before the notes


def _reset_dir() -> str:
    """One directory of pre-roll MIDI files per user and timing, shared by every process.

    The files are tiny and their content depends only on the pitch and the timings above, so
    they are kept rather than made per process: a render worker that is killed leaks nothing.
    """
    path = os.path.join(tempfile.gettempdir(), f"asm-midi-{os.getuid()}-{round(PRIME_OFF * 1e4)}-{round(RESET_AGAIN * 1e4)}")
    os.makedirs(path, exist_ok=True)
    return path
PROBE_POINTS = 129  # values tried per parameter to find discrete ones
MAX_STEPS = PROBE_POINTS // 3  # more distinct texts than this: continuous


@dataclass
class PluginInfo:
    """What ``register-synth`` learns from a plugin."""

    path: str
    kind: str
    name: str
    plugin_id: str | None
    params: list[ParameterSpec] = field(default_factory=list)


def plugin_kind(path: str | Path) -> str:
    """``vst3`` for a .vst3 bundle or file, ``vst2`` for a shared library; anything else is an error."""
    p = Path(path)
    if not p.exists():
        raise AsmError(f"plugin not found: {p}")
    if p.suffix.lower() == ".vst3":
        return "vst3"
    if p.is_file() and p.suffix.lower() in (".so", ".dll", ".vst", ".dylib"):
        return "vst2"
    if p.is_dir():
        raise AsmError(f"{p} is a directory, not a plugin (expected a VST2 .so or a .vst3 bundle)")
    raise AsmError(f"{p} is not a plugin (expected a VST2 .so or a .vst3 bundle)")


@contextlib.contextmanager
def _quiet():
    """Hide what DawDreamer/JUCE and plugins print while a plugin loads ("Attempting to load VST ...")."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        try:  # C++ iostreams share C stdio's buffers: flush them while they still point at /dev/null
            import ctypes

            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError):
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def load_processor(path: str, sample_rate: int, block_size: int):
    """A DawDreamer engine with the plugin at ``path`` loaded as its only processor."""
    import dawdreamer as daw

    plugin_kind(path)
    os.makedirs(os.path.join(os.path.expanduser("~"), ".local", "share"), exist_ok=True)  # amsynth wants it
    engine = daw.RenderEngine(int(sample_rate), int(block_size))
    with _quiet():
        try:
            proc = engine.make_plugin_processor("plugin", str(path))
        except (RuntimeError, OSError, ValueError) as exc:  # DawDreamer: RuntimeError("Unable to load plugin.")
            raise AsmError(f"{path} could not be loaded as a plugin ({exc})") from None
    if proc.get_num_output_channels() < 1:
        raise AsmError(f"{path} has no audio outputs: not a synth")
    engine.load_graph([(proc, [])])
    return engine, proc


# --- reading parameters ---------------------------------------------------------------------------
def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _probe_texts(proc, index: int, points: int = PROBE_POINTS) -> list[str]:
    texts = []
    for k in range(points):
        proc.set_parameter(index, k / (points - 1))
        texts.append(proc.get_parameter_text(index).strip())
    return texts


def _runs(texts: list[str]) -> list[str]:
    """Distinct texts in order of appearance; None when a text comes back after another (not monotone)."""
    out: list[str] = []
    for t in texts:
        if not out or out[-1] != t:
            if t in out:
                return []
            out.append(t)
    return out


def describe_parameter(proc, index: int, desc: dict) -> ParameterSpec:
    """Kind, steps, choices, default and display range of one parameter, as the plugin reports them."""
    name = (desc.get("name") or proc.get_parameter_name(index) or f"param_{index}").strip()
    initial = float(proc.get_parameter(index))
    unit = (desc.get("label") or "").strip()[:20]
    reported_steps = int(desc.get("numSteps") or 0)
    values = [str(v) for v in (desc.get("valueStrings") or [])]
    try:
        if desc.get("isDiscrete") and 2 <= reported_steps <= 4096:  # VST3 and JUCE plugins say so
            texts = values if len(values) == reported_steps else [
                _text_at(proc, index, k / (reported_steps - 1)) for k in range(reported_steps)]
        else:  # VST2 says nothing: find plateaus of the displayed text
            texts = _runs(_probe_texts(proc, index))
            if not 2 <= len(texts) <= MAX_STEPS or not _steps_match(proc, index, texts):
                texts = []
        lo_text, mid_text, hi_text = (_text_at(proc, index, v) for v in (0.0, 0.5, 1.0))
    finally:
        proc.set_parameter(index, initial)
    if texts:
        n = len(texts)
        default = round(initial * (n - 1)) / (n - 1)
        if desc.get("isBoolean") or n == 2:
            return ParameterSpec(index, name, Kind.boolean, default=default, unit=unit)
        numbers = [float(t) for t in texts] if all(_is_number(t) for t in texts) else None
        if numbers and _evenly_spaced(numbers):
            return ParameterSpec(index, name, Kind.stepped, default=default, steps=n,
                                 minimum=numbers[0], maximum=numbers[-1], unit=unit)
        return ParameterSpec(index, name, Kind.categorical, default=default, choices=tuple(texts), unit=unit)
    lo = hi = None
    scale = "linear"
    if _is_number(lo_text) and _is_number(hi_text):
        lo, hi = float(lo_text), float(hi_text)
        if _is_number(mid_text) and lo > 0 and hi > lo:
            mid = float(mid_text)
            if abs(mid - (lo * hi) ** 0.5) < abs(mid - (lo + hi) / 2):
                scale = "log"
    return ParameterSpec(index, name, Kind.continuous, default=min(1.0, max(0.0, initial)),
                         minimum=0.0 if lo is None else lo, maximum=1.0 if hi is None else hi,
                         unit=unit, scale=scale)


def _text_at(proc, index: int, value: float) -> str:
    proc.set_parameter(index, value)
    return proc.get_parameter_text(index).strip()


def _steps_match(proc, index: int, texts: list[str]) -> bool:
    """Whether value k/(n-1) shows the k-th text: asm's convention for discrete values holds."""
    n = len(texts)
    return all(_text_at(proc, index, k / (n - 1)) == t for k, t in enumerate(texts))


def _evenly_spaced(numbers: list[float]) -> bool:
    diffs = np.diff(numbers)
    return bool(len(diffs)) and bool(np.all(diffs > 0)) and bool(np.allclose(diffs, diffs[0], rtol=1e-3, atol=1e-9))


def _vst2_plugin_id(proc) -> str | None:
    """The 4-character VST2 id, from the header of the state JUCE saves (an FXB/FXP)."""
    fd, tmp = tempfile.mkstemp(suffix=".fxb")
    os.close(fd)
    try:
        proc.save_state(tmp)
        data = Path(tmp).read_bytes()
    except Exception:  # noqa: BLE001 - some plugins refuse; the id is optional
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)
    if len(data) >= 20 and data[:4] == b"CcnK":
        return data[16:20].decode("latin-1")
    return None


def _vst3_class_id(path: str) -> str | None:
    """The audio-module class id from a VST3 bundle's moduleinfo.json (VST3 SDK 3.7.5+), if present."""
    for info in Path(path).glob("Contents/Resources/moduleinfo.json"):
        try:
            doc = json.loads(info.read_text())
        except (OSError, ValueError):
            return None
        for cls in doc.get("Classes", []):
            if cls.get("Category") == "Audio Module Class" and cls.get("CID"):
                return str(cls["CID"]).upper()
    return None


class PluginProbe:
    """Loads a plugin and describes it (run in a child by ``register-synth``)."""

    def __init__(self, path: str):
        self.path = str(path)
        self.kind = plugin_kind(path)
        self.engine, self.proc = load_processor(self.path, 44100, 512)

    def describe(self) -> PluginInfo:
        proc = self.proc
        descs = proc.get_parameters_description()
        params = [describe_parameter(proc, i, d) for i, d in enumerate(descs)]
        name = Path(self.path).stem
        plugin_id = _vst2_plugin_id(proc) if self.kind == "vst2" else _vst3_class_id(self.path)
        return PluginInfo(self.path, self.kind, str(name), plugin_id, params)


def describe_plugin(path: str | Path) -> PluginInfo:
    """Read every parameter of a plugin, loading it in a child process (a crash is an AsmError)."""
    plugin_kind(path)
    return run_isolated(PluginProbe, str(path), method="describe", label=f"plugin {path}")


# --- rendering --------------------------------------------------------------------------------------
class PluginSynth(Synth):
    """A plugin rendered in this process. Parameters are set by plugin index, normalised."""

    def __init__(self, spec: SynthSpec):
        super().__init__(spec)
        self.engine, self.proc = load_processor(spec.path, spec.sample_rate, spec.block_size)
        count = int(self.proc.get_plugin_parameter_size())
        self._indices = [p.index for p in spec.space.params]
        if self._indices and max(self._indices) >= count:
            raise AsmError(f"{spec.path} has {count} parameters but synth {spec.name} is registered with "
                           f"index {max(self._indices)}: register it again (asm register-synth)")
        self._reset_files: dict[int, str] = {}
        self.reloads = 0  # fresh instances made after a non-finite render (see ``play``)

    def _reset_file(self, pitch: int) -> str:
        """A MIDI file with the pre-roll events for a render whose first note is ``pitch``."""
        path = self._reset_files.get(pitch)
        if path is None:
            import mido

            tpb, tempo = 960, 500000  # 1920 ticks per second

            def ticks(s: float) -> int:
                return round(s * tpb * 1e6 / tempo)

            mf = mido.MidiFile(ticks_per_beat=tpb)
            track = mido.MidiTrack()
            mf.tracks.append(track)
            track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
            reset = [mido.Message("control_change", control=c, value=0, time=0) for c in (123, 120, 121, 64)]
            track.extend(reset + [mido.Message("pitchwheel", pitch=0, time=0)])
            track.append(mido.Message("note_on", note=pitch, velocity=1, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks(PRIME_OFF)))
            track.append(mido.Message("control_change", control=123, value=0, time=ticks(RESET_AGAIN - PRIME_OFF)))
            track.append(mido.Message("control_change", control=120, value=0, time=0))
            path = os.path.join(_reset_dir(), f"reset-{pitch}.mid")
            with atomic_open(path) as fh:  # workers of other processes may read the same file
                mf.save(file=fh)
            self._reset_files[pitch] = path
        return path

    def set_values(self, full: Sequence[float]) -> None:
        set_parameter = self.proc.set_parameter
        for index, value in zip(self._indices, full):
            set_parameter(index, float(value))

    def _render(self, full: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray:
        self.set_values(full.tolist())
        return self.play(notes, duration)

    def play(self, notes: Sequence[Note], duration: float) -> np.ndarray:
        """Render with the plugin's current parameter values (after a pre-roll reset), e.g. a loaded preset.

        A preset can drive a plugin's filters to NaN, and MIDI resets do not clear that: amsynth then
        renders NaN for every later preset. A non-finite render therefore reloads the plugin (same
        parameter values) and renders again on the fresh instance; what that gives is the answer (still
        non-finite: the preset itself blows up, and the plugin is reloaded once more for the next render).
        """
        audio = self._play_once(notes, duration)
        if np.isfinite(audio).all():
            return audio
        self._reload()
        audio = self._play_once(notes, duration)
        if not np.isfinite(audio).all():
            self._reload()
        return audio

    def _reload(self) -> None:
        """A fresh plugin instance with the current parameter values (clears NaN filter state)."""
        values = self.values()
        self.engine, self.proc = load_processor(self.spec.path, self.spec.sample_rate, self.spec.block_size)
        self.set_values(values)
        self.reloads += 1

    def _play_once(self, notes: Sequence[Note], duration: float) -> np.ndarray:
        proc = self.proc
        first = min(notes, key=lambda n: n.start).pitch if notes else 60
        proc.load_midi(self._reset_file(first), clear_previous=True, beats=False, all_events=True)
        for n in notes:
            proc.add_midi_note(n.pitch, n.velocity, n.start + PREROLL, n.duration)
        self.engine.render(duration + PREROLL)
        audio = self.engine.get_audio()[:, round(PREROLL * self.sample_rate):]
        mono = audio[0] if audio.shape[0] == 1 else audio.mean(axis=0)
        n = round(duration * self.sample_rate)
        return np.pad(mono, (0, max(0, n - len(mono))))[:n].astype(np.float32)

    def bare_renderer(self):
        """Only the DawDreamer calls a render needs (no pre-roll), for ``asm perf render``."""
        proc, engine, indices = self.proc, self.engine, self._indices

        def render(values, notes, duration):
            for index, value in zip(indices, values.tolist()):
                proc.set_parameter(index, value)
            proc.clear_midi()
            for note in notes:
                proc.add_midi_note(note.pitch, note.velocity, note.start, note.duration)
            engine.render(duration)
            return engine.get_audio()

        return render

    # --- presets through the plugin ---------------------------------------------------------------
    def values(self) -> list[float]:
        """The plugin's current normalised value of every registered parameter."""
        get = self.proc.get_parameter
        return [float(get(i)) for i in self._indices]

    def load_presets(self, items: Sequence[tuple[bytes, str]]) -> list[Any]:
        """For each (file bytes, loader) the values the plugin reports after loading it, or an error text.

        Each load starts from the registered defaults, so a preset that sets only some parameters gets
        defaults for the rest, whatever was loaded before it.
        """
        defaults = self.space.defaults().tolist()
        out: list[Any] = []
        for data, loader in items:
            suffix = ".vstpreset" if loader == "vstpreset" else ".fxp"
            fd, tmp = tempfile.mkstemp(suffix=suffix)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                self.set_values(defaults)
                ok = self.proc.load_vst3_preset(tmp) if loader == "vstpreset" else self.proc.load_preset(tmp)
                out.append(self.values() if ok else "the plugin refused to load it")
            except Exception as exc:  # noqa: BLE001 - reported per file
                out.append(f"the plugin could not load it ({exc})")
            finally:
                Path(tmp).unlink(missing_ok=True)
        return out

    def state(self, full: Sequence[float]) -> bytes:
        """The plugin's saved state with ``full`` values set (what JUCE's ``save_state`` writes)."""
        self.set_values(full)
        fd, tmp = tempfile.mkstemp()
        os.close(fd)
        try:
            self.proc.save_state(tmp)
            return Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)

class IsolatedPlugin(Synth):
    """The same ``Synth`` API with the plugin in a child process (see ``asm.synth.isolation``)."""

    def __init__(self, spec: SynthSpec):
        super().__init__(spec)

        plugin_kind(spec.path)
        self._iso = Isolated(PluginSynth, spec, label=f"plugin {spec.name} ({spec.path})")

    def _render(self, full: np.ndarray, notes: Sequence[Note], duration: float) -> np.ndarray:
        return self._iso.call("_render", full, list(notes), duration)

    def load_presets(self, items: Sequence[tuple[bytes, str]]) -> list[Any]:
        return self._iso.call("load_presets", list(items))

    def state(self, full: Sequence[float]) -> bytes:
        return self._iso.call("state", list(full))

    def values(self) -> list[float]:
        return self._iso.call("values")

    @property
    def child_pid(self) -> int | None:
        return self._iso.pid

    def close(self) -> None:
        self._iso.close()


def open_plugin(spec: SynthSpec, isolate: bool = True) -> Synth:
    """A plugin synth: in a child process (``isolate=True``) or in this one (render workers)."""
    return IsolatedPlugin(spec) if isolate else PluginSynth(spec)


def space_from(info: PluginInfo) -> ParameterSpace:
    return ParameterSpace(info.params)
