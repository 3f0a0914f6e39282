"""Match targets load from any libsndfile format and rate; bad files fail with one clear line."""

import os

import numpy as np
import pytest
import soundfile as sf

from asm.audio.io import MAX_TARGET_SECONDS, MIN_TARGET_SECONDS, load_target, parse_crop, write_audio
from asm.errors import AsmError


def stereo_tone(rate: int, seconds: float = 0.5, lead: float = 0.1) -> np.ndarray:
    """A 440 Hz tone, right channel at half level, after ``lead`` seconds of silence."""
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.6 * np.sin(2 * np.pi * 440 * t)
    body = np.stack([tone, 0.5 * tone], axis=1)
    return np.concatenate([np.zeros((int(rate * lead), 2)), body]).astype(np.float32)


@pytest.mark.parametrize("ext, rate", [("wav", 44100), ("flac", 48000), ("ogg", 22050), ("aiff", 16000)])
def test_any_format_and_rate_becomes_trimmed_mono_at_the_requested_rate(tmp_path, ext, rate):
    path = tmp_path / f"target.{ext}"
    sf.write(path, stereo_tone(rate), rate)
    audio = load_target(path, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # 0.1 s of leading silence is gone; 0.5 s of tone remains (Vorbis pre-echo adds ~20 ms)
    assert abs(len(audio) / 16000 - 0.5) < (0.03 if ext == "ogg" else 0.002), len(audio)
    assert 0.44 < np.abs(audio).max() < 0.47  # mean of 0.6 and 0.3 (lossy ogg overshoots a little)
    assert np.abs(audio[0]) > 0.45 * 10 ** (-60 / 20)  # starts at the onset, not in silence
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert abs(np.fft.rfftfreq(len(audio), 1 / 16000)[spectrum.argmax()] - 440) < 3


def test_write_then_load_round_trip_is_exact_at_the_same_rate(tmp_path):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(8000) * 0.2).astype(np.float32)
    write_audio(tmp_path / "x.wav", audio, 16000)
    np.testing.assert_array_equal(load_target(tmp_path / "x.wav", 16000), audio)


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def test_bad_files_fail_with_one_clear_line(tmp_path):
    sf.write(tmp_path / "good.wav", stereo_tone(16000), 16000)
    good = (tmp_path / "good.wav").read_bytes()
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.full(16000, 1e-5, np.float32), 16000, subtype="FLOAT")
    short = tmp_path / "short.wav"
    sf.write(short, np.concatenate([np.zeros(16000), 0.5 * np.ones(int(0.05 * 16000))]).astype(np.float32), 16000)
    nan = np.full(16000, 0.1, np.float32)
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    cases = {
        tmp_path / "missing.wav": "not found",
        tmp_path: "is a directory",
        write_bytes(tmp_path / "empty.wav", b""): "is empty",
        write_bytes(tmp_path / "notes.wav", b"these are my notes, not audio"): "cannot read .* as audio",
        write_bytes(tmp_path / "noise.flac", os.urandom(4000)): "cannot read .* as audio",
        write_bytes(tmp_path / "cut.wav", good[:30]): "cannot read .* as audio",
        write_bytes(tmp_path / "header.wav", good[:44]): "holds no samples",
        silent: "is silent \\(every sample is zero",
        quiet: "is silent \\(peak -100 dBFS",
        short: "too short: 0.050 s",
        tmp_path / "nan.wav": "NaN or infinite",
    }
    for path, message in cases.items():
        with pytest.raises(AsmError, match=message) as info:
            load_target(path, 16000)
        assert "\n" not in str(info.value)
    assert MIN_TARGET_SECONDS == 0.1



def test_a_target_longer_than_the_maximum_is_refused_from_its_header_and_a_crop_picks_a_part(tmp_path):
    rate = 8000
    seconds = MAX_TARGET_SECONDS + 2
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + (t > 10) * (t < 12))).astype(np.float32)  # louder 10..12 s
    long = tmp_path / "long.flac"
    sf.write(long, tone, rate)
    with pytest.raises(AsmError, match=f"too long: it lasts {seconds:.1f} s .* at most {MAX_TARGET_SECONDS:g} s"):
        load_target(long, 16000)
    part = load_target(long, 16000, crop=(10.0, 12.5))
    assert len(part) == 40000 and np.abs(part[:16000]).max() > 0.9  # 2.5 s, starting in the louder span
    assert len(load_target(long, 16000, crop=(seconds - 1, None))) == 16000  # START: up to the end
    with pytest.raises(AsmError, match="the cropped span lasts 31.0 s"):
        load_target(long, 16000, crop=(1.0, None))
    with pytest.raises(AsmError, match="after the end"):
        load_target(long, 16000, crop=(40.0, 45.0))
    assert parse_crop("2:3.5") == (2.0, 3.5) and parse_crop(":4") == (0.0, 4.0) and parse_crop("5:") == (5.0, None)
    for bad in ("3", "a:b", "4:2", "-1:2", "1:2:3"):
        with pytest.raises(AsmError, match="--crop"):
            parse_crop(bad)
