"""Out-of-domain targets: real SoundFont notes, non-silent, at the notes the manifest promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asm.bench.ood import MONO, POLY, SOUNDFONT, load_ood_targets, make_ood_targets

SR = 16000


def _fluidsynth_ready() -> str | None:
    if not Path(SOUNDFONT).is_file():
        return f"{SOUNDFONT} missing (make system-deps installs fluid-soundfont-gm)"
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"pyfluidsynth/libfluidsynth unavailable ({exc}); make ood-targets installs it"
    return None


pytestmark = pytest.mark.skipif(_fluidsynth_ready() is not None, reason=str(_fluidsynth_ready()))


@pytest.fixture(scope="module")
def ood_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ood")
    manifest = make_ood_targets(out)
    assert manifest["outcome"] == "generated"
    return out


def _level_at(audio: np.ndarray, f0: float) -> tuple[float, float]:
    """(dB of the strongest bin within 30 cents of f0 re the spectrum's peak, median dB 50 Hz..2 kHz)."""
    seg = audio[int(0.1 * SR):int(1.4 * SR)]  # while the notes are held
    n = 8 * len(seg)
    mag = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    db = 20 * np.log10(mag / mag.max() + 1e-12)
    near = (freqs > f0 * 2 ** (-0.3 / 12)) & (freqs < f0 * 2 ** (0.3 / 12))
    return float(db[near].max()), float(np.median(db[(freqs > 50) & (freqs < 2000)]))


def test_manifest_lists_every_target_with_its_notes(ood_dir):
    manifest = json.loads((ood_dir / "manifest.json").read_text())
    mono = [t for t in manifest["targets"] if t["set"] == "mono"]
    poly = [t for t in manifest["targets"] if t["set"] == "poly"]
    assert len(mono) == len(MONO) == 32 and len(poly) == len(POLY) == 16
    assert len({t["program"] for t in mono}) == 32  # one instrument each
    assert len({t["family"] for t in mono}) >= 10
    assert all(len(t["notes"]) == 1 for t in mono) and all(2 <= len(t["notes"]) <= 4 for t in poly)
    for t in manifest["targets"]:
        assert (ood_dir / t["file"]).is_file()
        for pitch, velocity, start, duration in t["notes"]:
            assert 40 <= pitch <= 76 and velocity == 100 and start == 0.0 and duration == 1.5
    assert not list(ood_dir.rglob(".*tmp"))


def test_mono_targets_are_audible_at_their_note(ood_dir):
    from asm.audio.analysis import pitch_track
    from asm.audio.signal import is_usable, peak_dbfs

    targets = load_ood_targets("mono", ood_dir)
    assert [t.notes[0].pitch for t in targets] == [p for _, p in MONO]
    for t in targets:
        audio = t.audio(SR)
        assert len(audio) == 2 * SR and is_usable(audio)
        assert abs(peak_dbfs(t.audio(t.sample_rate)) - 20 * np.log10(0.5)) < 0.01, t.name  # normalised: -6 dBFS
        track = pitch_track(audio, SR)
        held = track.voiced & (track.times < 1.4)
        assert held.mean() > 0.2, t.name
        assert abs(np.median(track.midi[held]) - t.notes[0].pitch) < 0.5, t.name  # YIN agrees with the note
        level, floor = _level_at(audio, 440 * 2 ** ((t.notes[0].pitch - 69) / 12))
        assert level > -30 and level > floor + 25, t.name  # the fundamental itself is there
        # the release is heard: sound after the note-off, decaying
        after = np.abs(audio[int(1.55 * SR):]).max()
        assert after < np.abs(audio[: int(1.5 * SR)]).max()


def test_poly_targets_sound_every_chord_note(ood_dir):
    from asm.audio.signal import is_usable

    targets = load_ood_targets("poly", ood_dir)
    assert [tuple(n.pitch for n in t.notes) for t in targets] == [p for _, _, p in POLY]
    for t in targets:
        audio = t.audio(SR)
        assert is_usable(audio)
        for note in t.notes:
            level, floor = _level_at(audio, 440 * 2 ** ((note.pitch - 69) / 12))
            assert level > -20 and level > floor + 25, (t.name, note.pitch)
        # a pitch a tritone off the root is far weaker than the chord's notes
        root = min(n.pitch for n in t.notes)
        if all((root + 6 - n.pitch) % 12 for n in t.notes):
            off, _ = _level_at(audio, 440 * 2 ** ((root + 6 - 69) / 12))
            assert off < -20, t.name


def test_rendering_is_deterministic_and_skipped_when_up_to_date(ood_dir, tmp_path):
    import soundfile as sf

    again = make_ood_targets(ood_dir)
    assert again["outcome"] == "up to date"
    other = make_ood_targets(tmp_path / "again", force=True)
    assert other["outcome"] == "generated"
    for t in other["targets"][:4] + other["targets"][-4:]:
        a, _ = sf.read(ood_dir / t["file"], dtype="int16")
        b, _ = sf.read(tmp_path / "again" / t["file"], dtype="int16")
        assert np.array_equal(a, b), t["name"]


def test_cli_and_missing_soundfont(cli, tmp_path):
    r = cli("ood-targets", "--out", tmp_path / "t", "--sr", "16000", "--duration", "1", "--note-off", "0.5", "--json")
    assert r.code == 0, r.err
    manifest = r.json()
    assert manifest["sample_rate"] == 16000 and len(manifest["targets"]) == 48
    assert all(t["notes"][0][3] == 0.5 for t in manifest["targets"])
    assert len(load_ood_targets("poly", tmp_path / "t")) == 16
    assert load_ood_targets("mono", tmp_path / "nothing") == []
    r = cli("ood-targets", "--out", tmp_path / "u", "--soundfont", tmp_path / "none.sf2")
    assert r.code == 2 and "SoundFont not found" in r.err
    r = cli("ood-targets", "--out", tmp_path / "u", "--duration", "1", "--note-off", "2")
    assert r.code == 2 and "note-off" in r.err
