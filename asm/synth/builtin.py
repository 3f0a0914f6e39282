"""Built-in synths: Faust code shipped inside the package, registered automatically on first use.

The parameter table here is the registry's view of the synth (plugin index = position below, kind,
choices, default, natural range for display). The Faust code reads every control as a 0..1 slider
with the same name; a test checks that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asm.synth.params import Kind, ParameterSpec

FAUST_DIR = Path(__file__).parent / "faust"

WAVES = ("saw", "square", "triangle", "sine")


@dataclass(frozen=True)
class BuiltinSynth:
    name: str
    dsp_file: str
    version: str
    voices: int
    params: tuple[ParameterSpec, ...]

    @property
    def dsp_path(self) -> Path:
        return FAUST_DIR / self.dsp_file

    def dsp_code(self) -> str:
        return self.dsp_path.read_text()


def _table(rows: list[dict]) -> tuple[ParameterSpec, ...]:
    return tuple(ParameterSpec(index=i, **row) for i, row in enumerate(rows))


def _cont(name: str, default: float, lo: float = 0.0, hi: float = 1.0, unit: str = "", scale: str = "linear"):
    return dict(name=name, kind=Kind.continuous, default=default, minimum=lo, maximum=hi, unit=unit, scale=scale)


def _choice(name: str, choices: tuple[str, ...], default_index: int = 0):
    return dict(name=name, kind=Kind.categorical, choices=choices, default=default_index / (len(choices) - 1))


def _steps(name: str, lo: int, hi: int, default: int, unit: str = ""):
    n = hi - lo + 1
    return dict(name=name, kind=Kind.stepped, steps=n, default=(default - lo) / (n - 1), minimum=lo,
                maximum=hi, unit=unit)


def _env(prefix: str, attack: float, decay: float, sustain: float, release: float) -> list[dict]:
    return [
        _cont(f"{prefix}_attack", attack, 0.001, 4.0, "s", "log"),
        _cont(f"{prefix}_decay", decay, 0.001, 4.0, "s", "log"),
        _cont(f"{prefix}_sustain", sustain),
        _cont(f"{prefix}_release", release, 0.001, 4.0, "s", "log"),
    ]


ASM_SUB = BuiltinSynth(
    name="asm-sub",
    dsp_file="asm_sub.dsp",
    version="1.2",
    voices=8,
    params=_table(
        [
            _choice("osc1_wave", WAVES, 0),
            _steps("osc1_octave", -2, 2, 0, " oct"),
            _cont("osc1_pw", 0.5, 0.05, 0.95),
            _cont("osc1_level", 0.8),
            _choice("osc2_wave", WAVES, 1),
            _steps("osc2_semitone", -12, 12, 0, " st"),
            _cont("osc2_detune", 0.5, -50, 50, "cents"),
            _cont("osc2_pw", 0.5, 0.05, 0.95),
            _cont("osc2_level", 0.0),
            _cont("noise_level", 0.0),
            _choice("filter_type", ("lowpass", "bandpass", "highpass"), 0),
            _cont("cutoff", 0.7, 30, 16000, "Hz", "log"),
            _cont("resonance", 0.2, 0.5, 15, "Q", "log"),
            _cont("filter_env_amount", 0.5, -4, 4, "oct"),
            _cont("key_tracking", 0.5),
            *_env("filter", 0.1, 0.5, 0.5, 0.5),
            *_env("amp", 0.1, 0.5, 0.7, 0.4),
            _cont("lfo_rate", 0.5, 0.1, 20, "Hz", "log"),
            _choice("lfo_shape", ("sine", "triangle", "saw", "square"), 0),
            _cont("lfo_to_pitch", 0.0, 0, 2, "st"),
            _cont("lfo_to_cutoff", 0.0, 0, 2, "oct"),
            _cont("lfo_to_amp", 0.0),
            _cont("drive", 0.0, 0, 30, "dB"),
            _cont("output_gain", 0.8, -24, 6, "dB"),
        ]
    ),
)

BUILTINS: dict[str, BuiltinSynth] = {ASM_SUB.name: ASM_SUB}
