"""DDSP timbre models: a tiny model trained on a rendered asm-sub melody; its streaming export against the
offline render; bad input refused with one line."""

import json
import os
import sqlite3

import numpy as np
import pytest
import torch

from asm.audio.io import read_audio, write_audio
from asm.midi.notes import Note

SR = 16000
TOLERANCE = 1e-5  # streaming vs offline, absolute (the melody's output peaks near 0.1: > 80 dB below it)


def melody(seed: int = 0, n: int = 12, pitches=(55, 72)) -> np.ndarray:
    """A seeded asm-sub melody at 16 kHz (one voice, notes of 0.25-0.5 s)."""
    from asm.registry.synth_loader import load_synth

    synth = load_synth("asm-sub", SR)
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    for _ in range(n):
        d = float(rng.uniform(0.25, 0.5))
        notes.append(Note(int(rng.integers(*pitches)), 100, t, d * 0.9))
        t += d
    return synth.render(synth.space.from_named({"cutoff": 0.6}), notes, t + 0.3)


TRAIN = ["--sr", "16000", "--size", "tiny", "--batch-size", "4", "--slice", "1", "--checkpoint-every", "40",
         "--seed", "0", "--json"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data dir holding DDSP model 'tiny', trained 80 steps on a melody, and the melody's path."""
    from asm.cli import run

    home = tmp_path_factory.mktemp("ddsp-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASM_DATA", str(home))
    mp.setenv("ASM_DB", f"sqlite:///{home / 'asm.db'}")
    try:
        wav = home / "melody.wav"
        write_audio(wav, melody(0), SR)
        assert run(["ddsp", "train", "tiny", str(wav), "--steps", "80", *TRAIN]) == 0
        yield home, wav
    finally:
        mp.undo()


@pytest.fixture
def in_trained(trained, monkeypatch):
    home, wav = trained
    monkeypatch.setenv("ASM_DATA", str(home))
    monkeypatch.setenv("ASM_DB", f"sqlite:///{home / 'asm.db'}")
    return home, wav


def test_tiny_model_loss_falls_and_rows_are_written(in_trained):
    home, _ = in_trained
    db = sqlite3.connect(home / "asm.db")
    status, steps, first, last, cfg = db.execute(
        "SELECT status, steps_done, first_loss, last_loss, config FROM ddsp_model WHERE name='tiny'").fetchone()
    assert status == "complete" and steps == 80
    assert last < 0.75 * first, (first, last)
    assert json.loads(cfg)["sample_rate"] == SR
    ckpts = db.execute("SELECT step, file FROM ddsp_checkpoint ORDER BY step").fetchall()
    assert [s for s, _ in ckpts] == [40, 80]
    assert all((home / "ddsp" / "tiny" / f).is_file() for _, f in ckpts)
    assert db.execute("SELECT kind, status FROM run").fetchall() == [("ddsp-train", "complete")]


def test_training_resumes_from_its_last_checkpoint(in_trained, cli):
    home, wav = in_trained
    r = cli("ddsp", "train", "tiny", wav, "--steps", "80", *TRAIN)
    assert r.code == 0 and r.json()["nothing_to_do"]
    r = cli("ddsp", "train", "tiny", wav, "--steps", "100", *TRAIN)
    assert r.code == 0, r.err
    assert r.json()["resumed"] and r.json()["steps"] == 100
    assert "features from the cache" in r.err
    r = cli("ddsp", "train", "tiny", wav, "--steps", "120", *TRAIN[:-3], "--seed", "0", "--harmonics", "8")
    assert r.code == 2 and "other settings" in r.err


@pytest.fixture
def exported(in_trained, cli, tmp_path):
    out = tmp_path / "tiny.nm"
    r = cli("ddsp", "export", "tiny", "--out", out)
    assert r.code == 0, r.err
    return out


def _stream(module, x: torch.Tensor, buffer: int, params: torch.Tensor | None = None) -> torch.Tensor:
    module.reset()
    n = x.shape[0] // buffer * buffer
    with torch.no_grad():
        outs = [module(x[i: i + buffer].unsqueeze(0), None if params is None else params.expand(-1, buffer))
                for i in range(0, n, buffer)]
    return torch.cat(outs, 1)[0]


def test_export_loads_with_torch_jit_and_runs_in_buffers(exported, in_trained):
    module = torch.jit.load(str(exported))
    assert module.get_native_sample_rates() == [SR]
    assert 512 in module.get_native_buffer_sizes()
    assert module.is_input_mono() and module.is_output_mono()
    latency = module.calc_model_delay_samples()
    assert latency == 1024 // 2 + 64  # half a YIN window and one frame at 16 kHz
    assert len(module.get_neutone_parameters()) == 4
    assert module.get_numerical_params_default_values_0to1().shape == (4, 1)
    assert json.loads(module.get_metadata_json())["delay_samples"] == latency
    _, wav = in_trained
    x = torch.from_numpy(read_audio(wav)[0][:, 0])
    y = _stream(module, x[: SR], 512)
    assert y.shape == (SR // 512 * 512,) and torch.isfinite(y).all()
    assert y[latency:].abs().max() > 1e-3  # it plays
    assert torch.equal(_stream(module, x[: SR], 512), y)  # reset() forgets the stream


@pytest.mark.parametrize("buffer", [128, 256, 512, 1000, 2048])
def test_streaming_equals_offline_at_every_buffer_size(exported, in_trained, buffer):
    from asm.ddsp.stream import offline
    from asm.ddsp.train import load_model

    model, _ = load_model("tiny")
    module = torch.jit.load(str(exported))
    _, wav = in_trained
    x = torch.from_numpy(read_audio(wav)[0][:, 0])[: 3 * SR]
    latency = module.calc_model_delay_samples()
    ref = offline(model, x)
    y = _stream(module, x, buffer)
    n = y.shape[0] - latency
    assert torch.all(y[:latency] == 0)
    assert (y[latency:] - ref[:n]).abs().max() < TOLERANCE
    # the knobs: an octave up, half the noise, a quarter of the reverb
    knobs = torch.tensor([[0.75], [1.0], [0.5], [0.25]])
    y = _stream(module, x, buffer, knobs)
    ref = offline(model, x, semitones=12.0, noise_mix=0.5, reverb_mix=0.25)
    assert (y[latency:] - ref[:n]).abs().max() < TOLERANCE


def test_resynth_follows_the_pitch_shift(in_trained, cli, tmp_path):
    from asm.ddsp.features import frames, yin_f0

    _, wav = in_trained
    note = tmp_path / "note.wav"
    from asm.registry.synth_loader import load_synth

    synth = load_synth("asm-sub", SR)
    write_audio(note, synth.render(synth.space.from_named({"cutoff": 0.6}), [Note(57, 100, 0.0, 0.9)], 1.0), SR)
    outs = []
    for shift in ("0", "12"):
        out = tmp_path / f"out{shift}.wav"
        r = cli("ddsp", "resynth", "tiny", note, "--out", out, "--pitch", shift)
        assert r.code == 0, r.err
        audio, rate = read_audio(out)
        assert rate == SR and abs(len(audio) - SR) <= 64
        win = frames(torch.from_numpy(audio[2000:12000, 0]), 1024, 64)
        outs.append(float(yin_f0(win, SR, 50.0, 2000.0).median()))
    assert outs[0] == pytest.approx(220.0, rel=0.03)
    assert outs[1] == pytest.approx(440.0, rel=0.03)


def test_perf_ddsp_reports_speed_latency_and_stream_difference(in_trained, cli):
    r = cli("perf", "ddsp", "tiny", "--seconds", "1", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["latency_samples"] == 576
    assert [b["buffer"] for b in data["buffers"]] == [128, 512, 2048]
    assert all(b["rtf"] > 0 and b["max_abs_diff"] < TOLERANCE for b in data["buffers"])


def _one_red_line(r):
    assert r.code == 2, (r.code, r.err)
    lines = [line for line in r.err.splitlines() if line.startswith("error:")]  # besides dim progress notes
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


def test_bad_input_is_refused_with_one_line(cli, tmp_path):
    from asm.registry.synth_loader import load_synth

    synth = load_synth("asm-sub", SR)
    values = synth.space.from_named({"cutoff": 0.6})
    chord_a = synth.render(values, [Note(p, 100, 0.0, 2.8) for p in (60, 64, 67)], 3.0)
    chord_b = synth.render(values, [Note(p, 100, 0.0, 2.8) for p in (57, 62, 66)], 3.0)
    cases = {}
    write_audio(tmp_path / "mix.wav", np.stack([chord_a, chord_b], 1), SR)
    cases["mix.wav"] = "stereo mix"
    write_audio(tmp_path / "chords.wav", np.concatenate([chord_a, chord_b]), SR)
    cases["chords.wav"] = "monophonic pitched instrument, not"  # CREPE hears no pitch in most of a chord
    write_audio(tmp_path / "silence.wav", np.zeros(3 * SR, np.float32), SR)
    cases["silence.wav"] = "silent"
    write_audio(tmp_path / "short.wav", melody(1, n=2)[: SR // 2], SR)
    cases["short.wav"] = "too little audio"
    write_audio(tmp_path / "low.wav", melody(2)[::2], SR // 2)
    cases["low.wav"] = "too low"
    for name, words in cases.items():
        line = _one_red_line(cli("ddsp", "train", "bad", tmp_path / name, *TRAIN, "--steps", "5"))
        assert words in line, line
    # pYIN finds a pitch in chords (often a common subharmonic): the harmonicity check refuses them
    line = _one_red_line(cli("ddsp", "train", "bad", tmp_path / "chords.wav", *TRAIN, "--steps", "5", "--f0", "pyin"))
    assert "not one monophonic" in line, line
    assert "not found" in _one_red_line(cli("ddsp", "train", "bad", tmp_path / "nope.wav", *TRAIN))
    assert "unknown DDSP model" in _one_red_line(cli("ddsp", "export", "nope", "--out", tmp_path / "x.nm"))
    assert not os.path.exists(tmp_path / "x.nm")


@pytest.mark.slow
def test_a_flute_is_learned_and_a_held_out_phrase_resynthesised_closer_than_untrained(cli, tmp_path):
    """FluidR3's General MIDI flute (the out-of-domain targets' renderer): a small model, a held-out phrase."""
    from asm.audio.metrics import distance
    from asm.audio.soundfont import SOUNDFONT, SoundFontRenderer
    from asm.ddsp.config import DdspConfig
    from asm.ddsp.model import DdspModel
    from asm.ddsp.resynth import resynthesize
    from asm.ddsp.train import load_model

    if not os.path.exists(SOUNDFONT):
        pytest.skip("FluidR3 SoundFont not installed")
    renderer = SoundFontRenderer(SOUNDFONT, SR)
    rng = np.random.default_rng(3)
    notes = [renderer.render(73, (int(p),), 100, 0.45, 0.4) for p in rng.integers(60, 84, size=40)]
    train_wav, held_wav = tmp_path / "flute.wav", tmp_path / "held.wav"
    write_audio(train_wav, np.concatenate(notes[:32]), SR)
    write_audio(held_wav, np.concatenate(notes[32:]), SR)
    r = cli("ddsp", "train", "flute", train_wav, "--steps", "200", *TRAIN)
    assert r.code == 0, r.err
    result = r.json()
    assert result["loss"] < 0.7 * result["first_loss"], result
    held = read_audio(held_wav)[0][:, 0]
    model, _ = load_model("flute")
    untrained = DdspModel(DdspConfig.sized("tiny", SR), seed=0).eval()
    trained_out = resynthesize(model, held_wav)
    untrained_out = resynthesize(untrained, held_wav)
    n = min(len(held), len(trained_out))
    d_trained = float(distance("mr-stft", trained_out[None, :n], held[:n], SR)[0])
    d_untrained = float(distance("mr-stft", untrained_out[None, :n], held[:n], SR)[0])
    assert d_trained < 0.8 * d_untrained, (d_trained, d_untrained)


def _harmonic(f0: np.ndarray) -> np.ndarray:
    """Five harmonics (1/k) following the f0 track ``f0`` (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def _cents(est, truth):
    return 1200 * np.log2(np.asarray(est, np.float64) / truth)


def test_offline_f0_is_crepe_and_holds_tones_within_five_cents_and_a_glide_within_fifteen():
    """The default offline f0 (CREPE tiny, Viterbi): a harmonic glide 200 -> 400 Hz, steady tones from 110 Hz
    to 1 kHz, octave leaps settled within 32 ms, silence and noise unvoiced."""
    from asm.ddsp.config import DdspConfig
    from asm.ddsp.features import offline_f0

    cfg = DdspConfig.sized("tiny", SR)
    assert cfg.f0_method == "crepe"
    t = np.arange(3 * SR) / SR
    est, voiced = offline_f0(_harmonic(200.0 * 2 ** (t / 3)), cfg)
    frame_times = np.arange(len(est)) * cfg.hop / SR
    inner = (frame_times > 0.1) & (frame_times < 2.9)
    cents = np.abs(_cents(est[inner], 200.0 * 2 ** (frame_times[inner] / 3)))
    assert voiced[inner].all()
    assert np.median(cents) < 5 and cents.max() < 15, (np.median(cents), cents.max())  # measured 2.4 / 8.9
    for f in (110.0, 311.0, 440.0, 1046.5):
        est, voiced = offline_f0(_harmonic(np.full(len(t), f)), cfg)
        assert voiced[inner].all() and np.abs(_cents(est[inner], f)).max() < 5, f  # measured <= 3.3
    # leaps of up to two octaves: Viterbi's jump share lets the path change note at once
    seq = [220.0, 880.0, 330.0, 660.0, 165.0, 440.0]
    track = np.repeat(seq, SR // 2)
    est, voiced = offline_f0(_harmonic(track), cfg)
    truth = track[np.minimum(np.arange(len(est)) * cfg.hop, len(track) - 1)]
    wrong = np.abs(_cents(est, truth)) > 50
    assert wrong.sum() <= 8 * (len(seq) - 1), wrong.sum()  # measured 23-25
    frame_times = np.arange(len(est)) * cfg.hop / SR
    settled = np.abs(frame_times - np.round(frame_times * 2) / 2) > 0.03  # 30 ms or more from a change
    assert voiced[settled & (frame_times < 2.95)].all()
    # silence, noise and the silence around a tone are unvoiced; the tone is voiced
    rng = np.random.default_rng(0)
    gap = np.zeros(SR // 2, np.float32)
    x = np.concatenate([gap, 0.1 * rng.standard_normal(SR // 2), gap, _harmonic(np.full(SR, 440.0)), gap])
    _, voiced = offline_f0(x.astype(np.float32), cfg)
    frame_times = np.arange(len(voiced)) * cfg.hop / SR
    tone = (frame_times > 1.55) & (frame_times < 2.45)
    assert voiced[tone].all()
    assert not voiced[(frame_times < 1.45) | (frame_times > 2.55)].any()


def test_offline_f0_pyin_holds_a_tone_within_two_cents_and_a_glide_within_ten():
    """``--f0 pyin``: pYIN's coarse Viterbi path refined by YIN."""
    from asm.ddsp.config import DdspConfig
    from asm.ddsp.features import offline_f0

    cfg = DdspConfig.sized("tiny", SR, f0_method="pyin")
    t = np.arange(3 * SR) / SR
    est, voiced = offline_f0(_harmonic(200.0 * 2 ** (t / 3)), cfg)
    frame_times = np.arange(len(est)) * cfg.hop / SR
    inner = (frame_times > 0.1) & (frame_times < 2.9)
    cents = np.abs(_cents(est[inner], 200.0 * 2 ** (frame_times[inner] / 3)))
    assert voiced[inner].mean() > 0.9
    # YIN reads the window's first half: on a glide of 400 cents/s it lags ~16 ms, ~6 cents, never 10
    assert cents.max() < 10, (np.median(cents), cents.max())
    steady = (0.3 * np.sin(2 * np.pi * 311.0 * t)).astype(np.float32)
    est, _ = offline_f0(steady, cfg)
    assert np.abs(_cents(est[inner], 311.0)).max() < 2


def test_example_audio_and_compare_score_a_phrase(cli, tmp_path):
    """`asm ddsp example-audio` renders the GM violin (seeded: the same twice); `compare` scores renders."""
    from asm.audio.soundfont import SOUNDFONT

    pytest.importorskip("fluidsynth")
    if not os.path.exists(SOUNDFONT):
        pytest.skip("FluidR3 SoundFont not installed")
    for out in ("a", "b"):
        r = cli("ddsp", "example-audio", tmp_path / out, "--minutes", "0.1", "--heldout", "3")
        assert r.code == 0, r.err
    a, rate = read_audio(tmp_path / "a" / "heldout.wav")
    assert rate == SR and len(a) == 3 * SR and np.abs(a).max() > 0.4
    assert np.array_equal(a, read_audio(tmp_path / "b" / "heldout.wav")[0])
    assert not np.array_equal(read_audio(tmp_path / "a" / "train.wav")[0][: 3 * SR], a)
    from asm.midi.notes import load_midi

    notes = load_midi(tmp_path / "a" / "heldout.mid")
    assert len(notes) >= 3 and all(55 <= n.pitch <= 88 for n in notes)
    write_audio(tmp_path / "quiet.wav", 0.5 * a[:, 0], SR)
    r = cli("ddsp", "compare", tmp_path / "a" / "heldout.wav", tmp_path / "b" / "heldout.wav",
            tmp_path / "quiet.wav", tmp_path / "a" / "train.wav", "--json")
    assert r.code == 0, r.err
    same, quiet, other = r.json()
    assert same["perceptual"] == pytest.approx(0, abs=1e-6) and same["mr-stft"] == pytest.approx(0, abs=1e-6)
    assert 0 < quiet["mr-stft"] < other["mr-stft"]
    assert "not found" in _one_red_line(cli("ddsp", "compare", tmp_path / "a" / "heldout.wav", tmp_path / "x.wav"))
    assert "unknown instrument" in _one_red_line(cli("ddsp", "example-audio", tmp_path / "c", "--instrument", "kazoo"))
