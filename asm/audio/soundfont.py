"""General MIDI notes rendered through FluidSynth from a SoundFont (Debian's ``FluidR3_GM.sf2``).

Real-instrument audio with the notes known exactly, made here with nothing downloaded: the
out-of-domain benchmark targets and the DDSP worked example both render through ``SoundFontRenderer``.
Each render uses a fresh FluidSynth instance (dry: reverb and chorus off) so its audio does not
depend on what was rendered before; FluidSynth's float output is used (its 16-bit output is dithered).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import Note

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def fluidsynth_module():
    """The ``fluidsynth`` module (pyfluidsynth), or one clear line on what to install."""
    try:
        import fluidsynth
    except ImportError as exc:  # pyfluidsynth missing, or present but libfluidsynth is not
        if "fluidsynth" in str(exc).lower() and "no module" not in str(exc).lower():
            raise AsmError("the FluidSynth library is missing: install Debian's libfluidsynth3 "
                           "(make system-deps)") from None
        raise AsmError("pyfluidsynth is not installed: pip install -e '.[ood]' (make ood-targets does it)") from None
    except OSError as exc:
        raise AsmError(f"cannot load the FluidSynth library ({exc}): install Debian's libfluidsynth3") from None
    return fluidsynth


class SoundFontRenderer:
    """Renders one target on a fresh FluidSynth instance (float output, reverb and chorus off)."""

    def __init__(self, soundfont: Path, sample_rate: int):
        self.fs = fluidsynth_module()
        self.soundfont = str(soundfont)
        self.sample_rate = int(sample_rate)
        write = self.fs._fl.fluid_synth_write_float
        write.restype = ctypes.c_int
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._write = write

    def _samples(self, synth, n: int) -> np.ndarray:
        buf = np.zeros((n, 2), np.float32)
        if n and self._write(synth.synth, n, buf.ctypes.data, 0, 2, buf.ctypes.data, 1, 2) != 0:
            raise AsmError("FluidSynth failed to render")
        return buf

    def render(self, program: int, pitches: tuple[int, ...], velocity: int, duration: float,
               note_off: float) -> np.ndarray:
        """Mono float32 audio: ``pitches`` struck at 0 s, released at ``note_off``, ``duration`` long."""
        return self.render_notes(program, [Note(p, velocity, 0.0, note_off) for p in pitches], duration)

    def render_notes(self, program: int, notes: list[Note], duration: float) -> np.ndarray:
        """Mono float32 audio of ``notes`` played by one GM ``program``, ``duration`` seconds long."""
        synth = self.fs.Synth(gain=0.5, samplerate=float(self.sample_rate))
        try:
            synth.setting("synth.reverb.active", 0)
            synth.setting("synth.chorus.active", 0)
            synth.setting("synth.dynamic-sample-loading", 1)
            sfid = synth.sfload(self.soundfont)
            if sfid < 0:
                raise AsmError(f"FluidSynth cannot load the SoundFont {self.soundfont}")
            if synth.program_select(0, sfid, 0, program) != 0:
                raise AsmError(f"the SoundFont {self.soundfont} has no General MIDI program {program}")
            total = round(duration * self.sample_rate)
            events = sorted([(min(total, round(n.end * self.sample_rate)), 0, n.pitch, 0) for n in notes]
                            + [(min(total, round(n.start * self.sample_rate)), 1, n.pitch, n.velocity)
                               for n in notes])  # note-offs first at the same sample
            parts, now = [], 0
            for at, on, pitch, velocity in events:
                parts.append(self._samples(synth, at - now))
                now = at
                if on:
                    synth.noteon(0, pitch, velocity)
                else:
                    synth.noteoff(0, pitch)
            parts.append(self._samples(synth, total - now))
        finally:
            synth.delete()
        return np.concatenate(parts).mean(axis=1, dtype=np.float64).astype(np.float32)
