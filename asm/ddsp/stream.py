"""The DDSP model in buffers, and its export as a neutone waveform-to-waveform TorchScript file (.nm).

``StreamingDdsp`` takes any buffer size and returns as many samples, ``latency`` samples late. Inside,
it works in control frames: YIN f0 and loudness of a window centred on each frame, a stateful GRU step,
then one ``hop`` block of audio per frame pair: harmonic phase carried across blocks, filtered noise
overlap-added with its tail, and the reverb as a uniformly partitioned convolution. Its output is the
offline render (``offline``) of the same input delayed by ``latency``, within float32 rounding.

The neutone contract (neutone_sdk's ``WaveformToWaveformBase``, written out here so that export needs no
neutone-sdk): ``forward(x (channels, samples), params (4, samples) or None) -> (1, samples)``, knobs in
[0, 1], and the exported methods the plugin asks (native rates and buffer sizes, delay, reset, metadata).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from asm.ddsp.features import a_weights, frames, loudness_db, yin_f0
from asm.ddsp.model import DdspModel, Decoder
from asm.ddsp.synth import block_controls, harmonic, noise_blocks, overlap_add
from asm.errors import AsmError

NOISE_TABLE = 1 << 16  # a fixed table of white noise, read at the absolute sample position
PITCH_RANGE = 24.0  # semitones either way on the pitch knob
KNOBS = ("pitch shift", "harmonic mix", "noise mix", "reverb mix")
KNOB_DEFAULTS = (0.5, 1.0, 1.0, 1.0)  # no shift, everything at its trained level
BUFFER_SIZES = [128, 256, 512, 1024, 2048]


def noise_table(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(NOISE_TABLE, generator=g) * 2 - 1


def table_noise(table: torch.Tensor, start: int, n: int) -> torch.Tensor:
    idx = torch.remainder(torch.arange(start, start + n), table.shape[0])
    return table[idx]


class StreamingDdsp(nn.Module):
    """One DDSP model, mono in, mono out, in buffers of any size."""

    def __init__(self, model: DdspModel):
        super().__init__()
        cfg = model.config
        self.sample_rate = cfg.sample_rate
        self.hop = cfg.hop
        self.window = cfg.window
        self.f0_min = float(cfg.f0_min)
        self.f0_max = float(min(cfg.f0_max, cfg.sample_rate / 2 - 1))
        self.latency = cfg.window // 2 + cfg.hop
        self.decoder: Decoder = copy.deepcopy(model.decoder).eval()
        with torch.no_grad():
            ir = model.reverb.response().detach().clone()
        self.n_parts = ir.shape[0] // cfg.hop
        parts = ir.reshape(self.n_parts, cfg.hop)
        spectra = torch.fft.rfft(parts, 2 * cfg.hop)  # (P, hop + 1)
        self.register_buffer("ir_spectra", torch.view_as_real(spectra.flip(0)).contiguous())  # last part first
        self.register_buffer("weights", a_weights(cfg.sample_rate, cfg.window))
        self.register_buffer("noise", noise_table())
        self.taps = 2 * (cfg.n_noise_bands - 1)
        self.hidden = cfg.hidden
        self.n_harmonics = cfg.n_harmonics
        self.n_bands = cfg.n_noise_bands
        # state (reset() sets it)
        self.pending = torch.zeros(0)
        self.out = torch.zeros(0)
        self.gru_state = torch.zeros(1, 1, cfg.hidden)
        self.phase = torch.zeros(1, dtype=torch.float64)
        self.prev_f0 = torch.zeros(1, 1)
        self.prev_amps = torch.zeros(1, 1, cfg.n_harmonics)
        self.prev_mags = torch.zeros(1, 1, cfg.n_noise_bands)
        self.noise_tail = torch.zeros(1, self.taps - 1)
        self.reverb_tail = torch.zeros(cfg.hop)
        self.reverb_history = torch.zeros(max(self.n_parts - 1, 0), cfg.hop + 1, 2)
        self.frames_done = 0
        self.reset()

    @torch.jit.export
    def reset(self) -> bool:
        """Forget everything heard: the next sample starts a new stream."""
        self.pending = torch.zeros(self.window // 2)
        self.out = torch.zeros(self.latency)
        self.gru_state = torch.zeros(1, 1, self.hidden)
        self.phase = torch.zeros(1, dtype=torch.float64)
        self.prev_f0 = torch.zeros(1, 1)
        self.prev_amps = torch.zeros(1, 1, self.n_harmonics)
        self.prev_mags = torch.zeros(1, 1, self.n_bands)
        self.noise_tail = torch.zeros(1, self.taps - 1)
        self.reverb_tail = torch.zeros(self.hop)
        self.reverb_history = torch.zeros(max(self.n_parts - 1, 0), self.hop + 1, 2)
        self.frames_done = 0
        return True

    def _reverb(self, dry: torch.Tensor) -> torch.Tensor:
        """The wet signal of ``dry`` (m * hop,) blocks: uniformly partitioned convolution, history carried."""
        m = dry.shape[0] // self.hop
        spectra = torch.view_as_real(torch.fft.rfft(dry.reshape(m, self.hop), 2 * self.hop))  # (m, F, 2)
        everything = torch.cat([self.reverb_history, spectra], 0)  # (P - 1 + m, F, 2)
        self.reverb_history = everything[everything.shape[0] - (self.n_parts - 1):]
        x = torch.view_as_complex(everything.contiguous()).unfold(0, self.n_parts, 1)  # (m, F, P)
        h = torch.view_as_complex(self.ir_spectra).transpose(0, 1)  # (F, P), last part first
        y = torch.fft.irfft((x * h.unsqueeze(0)).sum(-1), 2 * self.hop)  # (m, 2 hop)
        tails = torch.cat([self.reverb_tail.unsqueeze(0), y[:-1, self.hop:]], 0)
        self.reverb_tail = y[-1, self.hop:]
        return (y[:, : self.hop] + tails).reshape(-1)

    def step(self, x: torch.Tensor, semitones: float, harmonic_mix: float, noise_mix: float,
             reverb_mix: float) -> torch.Tensor:
        """Mono samples in (n,), as many out, ``latency`` late."""
        self.pending = torch.cat([self.pending, x])
        n_frames = 0
        if self.pending.shape[0] >= self.window:
            n_frames = (self.pending.shape[0] - self.window) // self.hop + 1
        if n_frames > 0:
            windows = self.pending.unfold(0, self.window, self.hop)[:n_frames]
            self.pending = self.pending[n_frames * self.hop:]
            f0 = yin_f0(windows, self.sample_rate, self.f0_min, self.f0_max) * (2.0 ** (semitones / 12.0))
            loud = loudness_db(windows, self.weights)
            amps, mags, self.gru_state = self.decoder(f0.unsqueeze(0), loud.unsqueeze(0), self.gru_state)
            f0 = f0.unsqueeze(0)
            first = self.frames_done == 0
            self.frames_done += n_frames
            if not first:
                f0 = torch.cat([self.prev_f0, f0], 1)
                amps = torch.cat([self.prev_amps, amps], 1)
                mags = torch.cat([self.prev_mags, mags], 1)
            self.prev_f0, self.prev_amps, self.prev_mags = f0[:, -1:], amps[:, -1:], mags[:, -1:]
            m = f0.shape[1] - 1
            if m > 0:
                tone, self.phase = harmonic(f0, amps, self.hop, self.sample_rate, self.phase)
                start = (self.frames_done - n_frames - (0 if first else 1)) * self.hop
                white = table_noise(self.noise, start, m * self.hop).unsqueeze(0)
                blocks = overlap_add(noise_blocks(white, block_controls(mags), self.hop), self.hop)
                tail = self.noise_tail.shape[1]
                blocks = torch.cat([blocks[:, :tail] + self.noise_tail, blocks[:, tail:]], 1)
                self.noise_tail = blocks[:, m * self.hop:]
                dry = (harmonic_mix * tone + noise_mix * blocks[:, : m * self.hop]).squeeze(0)
                self.out = torch.cat([self.out, dry + reverb_mix * self._reverb(dry)])
        n = x.shape[0]
        y = self.out[:n]
        self.out = self.out[n:]
        return y


def offline(model: DdspModel, audio: torch.Tensor, semitones: float = 0.0, harmonic_mix: float = 1.0,
            noise_mix: float = 1.0, reverb_mix: float = 1.0) -> torch.Tensor:
    """What the streaming module renders from mono ``audio`` (N,), computed on the whole signal at once
    (YIN and loudness per frame, the decoder over the sequence, the offline synth), without its latency."""
    cfg = model.config
    with torch.no_grad():
        win = frames(audio, cfg.window, cfg.hop)
        f0 = yin_f0(win, cfg.sample_rate, float(cfg.f0_min), float(min(cfg.f0_max, cfg.sample_rate / 2 - 1)))
        f0 = f0 * 2.0 ** (semitones / 12.0)
        loud = loudness_db(win, a_weights(cfg.sample_rate, cfg.window))
        n = (f0.shape[0] - 1) * cfg.hop
        white = table_noise(noise_table(), 0, n).unsqueeze(0)
        return model.render(f0.unsqueeze(0), loud.unsqueeze(0), white, harmonic_mix, noise_mix, reverb_mix)[0]


class NeutoneDdsp(nn.Module):
    """neutone's waveform-to-waveform wrapper around ``StreamingDdsp``: four knobs, mono in and out."""

    def __init__(self, model: DdspModel, name: str, metadata_json: str = "{}"):
        super().__init__()
        self.metadata_json = metadata_json
        self.model = StreamingDdsp(model)
        self.model_name = name
        self.native_sample_rate = model.config.sample_rate
        self.buffer_sizes = BUFFER_SIZES
        self.daw_sample_rate = model.config.sample_rate
        self.daw_buffer_size = 512
        self.knob_defaults: List[float] = list(KNOB_DEFAULTS)
        self.pitch_range = PITCH_RANGE

    def forward(self, x: torch.Tensor, params: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (channels, samples) -> (1, samples); params (4, samples) of knob values in [0, 1], or None."""
        mono = x.mean(0) if x.shape[0] > 1 else x[0]
        if params is None:
            knobs = torch.tensor(self.knob_defaults)
        else:
            knobs = params.mean(-1)  # neutone smooths per sample; one value per buffer here
        semitones = (float(knobs[0]) - 0.5) * 2.0 * self.pitch_range
        y = self.model.step(mono, semitones, float(knobs[1]), float(knobs[2]), float(knobs[3]))
        return y.unsqueeze(0)

    @torch.jit.export
    def get_model_name(self) -> str:
        return self.model_name

    @torch.jit.export
    def is_input_mono(self) -> bool:
        return True

    @torch.jit.export
    def is_output_mono(self) -> bool:
        return True

    @torch.jit.export
    def get_native_sample_rates(self) -> List[int]:
        return [self.native_sample_rate]

    @torch.jit.export
    def get_native_buffer_sizes(self) -> List[int]:
        return self.buffer_sizes

    @torch.jit.export
    def calc_model_delay_samples(self) -> int:
        return self.model.latency

    @torch.jit.export
    def set_daw_sample_rate_and_buffer_size(self, daw_sr: int, daw_buffer_size: int) -> None:
        self.daw_sample_rate = daw_sr
        self.daw_buffer_size = daw_buffer_size

    @torch.jit.export
    def reset(self) -> bool:
        return self.model.reset()

    @torch.jit.export
    def get_default_param_values(self) -> torch.Tensor:
        return torch.tensor(self.knob_defaults)

    @torch.jit.export
    def get_numerical_params_default_values_0to1(self) -> torch.Tensor:
        return torch.tensor(self.knob_defaults).unsqueeze(1)

    @torch.jit.export
    def get_wet_default_value(self) -> float:
        return 1.0

    @torch.jit.export
    def get_dry_default_value(self) -> float:
        return 0.0

    @torch.jit.export
    def get_input_gain_default_value(self) -> float:
        return 1.0

    @torch.jit.export
    def get_output_gain_default_value(self) -> float:
        return 1.0

    @torch.jit.export
    def is_resampling(self) -> bool:
        return False  # one native rate; the host resamples

    @torch.jit.export
    def set_sample_rate_and_buffer_size(self, sample_rate: int, n_samples: int) -> bool:
        self.daw_sample_rate = sample_rate
        self.daw_buffer_size = n_samples
        return sample_rate == self.native_sample_rate

    @torch.jit.export
    def get_preserved_attributes(self) -> List[str]:
        return ["model_name", "native_sample_rate", "buffer_sizes", "knob_defaults", "metadata_json"]

    @torch.jit.export
    def get_metadata_json(self) -> str:
        return self.metadata_json

    @torch.jit.export
    def get_neutone_parameters(self) -> List[Dict[str, str]]:
        return [{"name": "pitch shift", "description": "-24 to +24 semitones",
                 "default": "0.5"},
                {"name": "harmonic mix", "description": "level of the harmonic oscillators", "default": "1.0"},
                {"name": "noise mix", "description": "level of the filtered noise", "default": "1.0"},
                {"name": "reverb mix", "description": "level of the learned reverb", "default": "1.0"}]


def metadata(name: str, summary: dict, latency: int) -> dict:
    cfg = summary["config"]
    return {"model_name": name, "model_authors": ["asm"], "model_version": "1",
            "model_short_description": "DDSP timbre transfer (harmonic + noise + reverb)",
            "model_long_description": f"A DDSP model trained by asm ({summary['steps']} steps); it plays the "
                                      "instrument it learned from the pitch and loudness of the input.",
            "technical_description": "YIN f0 and A-weighted loudness -> GRU decoder -> harmonic oscillator bank, "
                                     "filtered noise, learned impulse-response reverb",
            "technical_links": {"DDSP": "https://arxiv.org/abs/2001.04643"}, "tags": ["ddsp", "timbre transfer"],
            "citation": "Engel et al., DDSP: Differentiable Digital Signal Processing, ICLR 2020",
            "is_experimental": True, "neutone_parameters": {k: {"name": k} for k in KNOBS},
            "native_sample_rates": [cfg["sample_rate"]], "native_buffer_sizes": BUFFER_SIZES,
            "delay_samples": latency, "input_mono": True, "output_mono": True,
            "format": "neutone waveform-to-waveform (TorchScript), written by asm without neutone-sdk"}


def export(model: DdspModel, summary: dict, out: Path) -> dict:
    """Script the streaming model and save it to ``out`` (written atomically); returns its metadata."""
    from asm.atomic import atomic_path

    out = Path(out)
    if out.is_dir():
        raise AsmError(f"output path {out} is a directory")
    if not out.parent.is_dir():
        raise AsmError(f"cannot write {out}: directory {out.parent} does not exist")
    latency = model.config.window // 2 + model.config.hop
    meta = metadata(summary["name"], summary, latency)
    wrapper = NeutoneDdsp(model, summary["name"], json.dumps(meta))
    assert wrapper.model.latency == latency
    scripted = torch.jit.script(wrapper)
    with atomic_path(out) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={"metadata.json": json.dumps(meta)})
    return meta


def load_export(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    """An exported .nm file and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise AsmError(f"exported model not found: {path}")
    extra = {"metadata.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise AsmError(f"cannot load {path} as a TorchScript model ({str(exc).splitlines()[0]})") from None
    return module, json.loads(extra["metadata.json"] or "{}")
