"""The settings of one DDSP model (synth, analysis and decoder sizes): stored with the model row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from asm.errors import AsmError

FRAME_RATE = 250  # control frames per second, as DDSP
MAX_HARMONICS = 256
SIZES = {  # --size presets: decoder width and synth detail
    "tiny": dict(hidden=32, n_harmonics=32, n_noise_bands=17, reverb_seconds=0.1),
    "small": dict(hidden=128, n_harmonics=64, n_noise_bands=33, reverb_seconds=0.25),
    "full": dict(hidden=256, n_harmonics=100, n_noise_bands=65, reverb_seconds=0.5),
}
F0_METHODS = ("crepe", "crepe-full", "pyin")  # offline pitch trackers: CREPE tiny or full (Viterbi), pYIN + YIN


@dataclass(frozen=True)
class DdspConfig:
    sample_rate: int = 48000
    hidden: int = 256
    n_harmonics: int = 100
    n_noise_bands: int = 65
    reverb_seconds: float = 0.5
    f0_min: float = 50.0
    f0_max: float = 2000.0
    f0_method: str = "crepe"  # the offline f0 of training and resynthesis (F0_METHODS)

    def __post_init__(self):
        if not 1 <= self.n_harmonics <= MAX_HARMONICS:
            raise AsmError(f"n_harmonics must be in [1, {MAX_HARMONICS}], not {self.n_harmonics}")
        if self.sample_rate % FRAME_RATE and self.sample_rate not in (22050, 44100):
            raise AsmError(f"unsupported DDSP sample rate {self.sample_rate}")
        if self.f0_method not in F0_METHODS:
            raise AsmError(f"unknown f0 method {self.f0_method!r}; known: {', '.join(F0_METHODS)}")

    @property
    def hop(self) -> int:
        """Samples per control frame."""
        return self.sample_rate // FRAME_RATE

    @property
    def window(self) -> int:
        """Analysis window (YIN and loudness): a power of two holding two periods of ``f0_min`` or more."""
        n = 256
        while n < 2 * self.sample_rate / self.f0_min:
            n *= 2
        return n

    @property
    def reverb_length(self) -> int:
        """The learned impulse response, in samples: a whole number of frames."""
        return max(1, round(self.reverb_seconds * FRAME_RATE)) * self.hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DdspConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def sized(cls, size: str, sample_rate: int, f0_method: str = "crepe") -> DdspConfig:
        if size not in SIZES:
            raise AsmError(f"unknown DDSP size {size!r}; known: {', '.join(SIZES)}")
        return cls(sample_rate=sample_rate, f0_method=f0_method, **SIZES[size])
