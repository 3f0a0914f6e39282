"""Poly note patterns and MIDI partitioning (no rendering)."""

from pathlib import Path

import mido
import numpy as np
import pytest

from asm.errors import AsmError
from asm.midi.generate import SCALES, PatternSettings, chord, pattern, polyphony
from asm.midi.notes import Note, load_midi
from asm.midi.partition import ChunkFilter, cut, partition_dir


def test_patterns_are_seeded_in_range_and_released_before_the_note_off():
    s = PatternSettings(length=1.5, low=48, high=72, max_polyphony=6)
    seen_poly = []
    for i in range(400):
        a = pattern(np.random.default_rng([7, i]), s)
        assert a == pattern(np.random.default_rng([7, i]), s)  # same stream, same notes
        assert a and all(48 <= n.pitch <= 72 and 1 <= n.velocity <= 127 for n in a)
        assert all(n.start >= 0 and n.duration > 0 and n.end <= 1.5 + 1e-6 for n in a)
        assert all(np.float32(n.start) == n.start and np.float32(n.duration) == n.duration for n in a)
        seen_poly.append(polyphony(a))
    assert max(seen_poly) <= 6
    assert np.mean(np.array(seen_poly) >= 2) > 0.9  # polyphonic material, not single lines
    assert pattern(np.random.default_rng(1), s) != pattern(np.random.default_rng(2), s)


def test_chords_have_2_to_6_voices_from_one_common_scale():
    s = PatternSettings(length=1.0, low=36, high=96)
    sizes = set()
    for i in range(300):
        notes = chord(np.random.default_rng(i), s)
        pcs = {n.pitch % 12 for n in notes}
        sizes.add(len(notes))
        assert any(pcs <= {(r + d) % 12 for d in scale} for scale in SCALES.values() for r in range(12))
        assert polyphony(notes) == len(notes)  # struck together (or strummed), held together
    assert sizes == {2, 3, 4, 5, 6}


def _midi(path: Path, tracks: list[list[tuple[int, float, float]]], bpm: float = 120.0, tempo_change=None) -> Path:
    """tracks: [(pitch, start_beats, length_beats)], 480 ticks per beat."""
    f = mido.MidiFile(ticks_per_beat=480)
    for t, notes in enumerate(tracks):
        tr = mido.MidiTrack()
        if t == 0:
            tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
        events = []
        for p, s, d in notes:
            events += [(int(s * 480), 1, p), (int((s + d) * 480), 0, p)]
        if t == 0 and tempo_change:
            events.append((int(tempo_change[0] * 480), 2, tempo_change[1]))
        events.sort(key=lambda e: (e[0], e[1]))
        now = 0
        for tick, kind, val in events:
            if kind == 2:
                tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(val), time=tick - now))
            else:
                tr.append(mido.Message("note_on" if kind else "note_off", note=val, velocity=90 if kind else 0,
                                       time=tick - now))
            now = tick
        f.tracks.append(tr)
    f.save(path)
    return path


def test_cut_closes_notes_at_chunk_edges_and_filters():
    notes = [Note(60, 100, 0.0, 1.0), Note(64, 100, 2.5, 1.0), Note(30, 100, 0.5, 0.5),  # 64 crosses t=3
             Note(67, 100, 7.0, 0.5)]  # chunk 1 (3..6) has only the tail of 64; chunk 2 holds 67
    chunks = cut(notes, 3.0, filt=ChunkFilter(low=40, high=100))
    assert chunks[0] == [Note(60, 100, 0.0, 1.0), Note(64, 100, 2.5, 0.5)]  # 64 closed at the edge; 30 dropped
    assert chunks[1] == [Note(64, 100, 0.0, 0.5)]  # the held remainder is struck at 0
    assert chunks[2] == [Note(67, 100, 1.0, 0.5)]
    dense = [Note(60 + k, 100, 0.0, 1.0) for k in range(5)] + [Note(70, 100, 3.5, 1.0)]
    kept = cut(dense, 3.0, filt=ChunkFilter(max_polyphony=4))
    assert kept == [[Note(70, 100, 0.5, 1.0)]]  # the 5-voice chunk is dropped
    assert cut([Note(60, 100, 6.5, 0.5)], 3.0) == [[Note(60, 100, 0.5, 0.5)]]  # empty chunks 0 and 1 dropped


def test_partition_midi_cli_merges_tracks_and_lists_corrupt_files(cli, tmp_path):
    src = tmp_path / "midi"
    (src / "sub").mkdir(parents=True)
    # two tracks at 120 bpm (1 beat = 0.5 s): 8 beats = 4 s
    _midi(src / "song.mid", [[(60, 0, 8)], [(64, 1, 2), (67, 5, 2)]])
    _midi(src / "sub" / "other.mid", [[(72, 0, 2)]], bpm=60)  # 2 s
    (src / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (src / "empty.mid").write_bytes(b"")
    out = tmp_path / "chunks"
    r = cli("partition-midi", src, "--length", "3.0", "--out", out, "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["files"] == 2 and report["chunks"] == 3
    assert sorted(Path(c["file"]).name for c in report["corrupt"]) == ["broken.mid", "empty.mid"]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["song_0000.mid", "song_0001.mid", "sub__other_0000.mid"]
    first = load_midi(out / "song_0000.mid")
    # tracks merged; 67 (2.5 s to 3.5 s) is closed at the 3 s edge and struck again in the next chunk
    assert [(n.pitch, round(n.start, 3), round(n.duration, 3)) for n in first] == [
        (60, 0.0, 3.0), (64, 0.5, 1.0), (67, 2.5, 0.5)]
    second = load_midi(out / "song_0001.mid")
    assert [(n.pitch, round(n.start, 3), round(n.duration, 3)) for n in second] == [(60, 0.0, 1.0), (67, 0.0, 0.5)]


def test_partition_midi_bad_input(cli, tmp_path):
    (tmp_path / "none").mkdir()
    r = cli("partition-midi", tmp_path / "none", "--out", tmp_path / "o")
    assert r.code == 2 and "no MIDI files" in r.err and "Traceback" not in r.err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mid").write_bytes(b"not midi at all")
    r = cli("partition-midi", bad, "--out", tmp_path / "o")
    assert r.code == 2 and "could be read" in r.err
    assert not (tmp_path / "o").exists()
    with pytest.raises(AsmError):
        cut([Note(60, 100, 0, 1)], 0.0)


def test_tempo_changes_are_applied(tmp_path):
    path = _midi(tmp_path / "t.mid", [[(60, 0, 1), (62, 4, 1)]], bpm=120, tempo_change=(2, 60))
    notes = load_midi(path)
    # beats 0-2 at 120 bpm (1 s), then 60 bpm: beat 4 is at 1 + 2 = 3 s
    assert [round(n.start, 3) for n in notes] == [0.0, 3.0]
    report = partition_dir(tmp_path, 2.0, tmp_path / "o")
    assert report.files == 1 and report.chunks == 2
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["t_0000.mid", "t_0001.mid"]


def test_mode_is_validated_in_one_place():
    from asm.midi.mode import Mode

    assert Mode.parse("poly") is Mode.poly and Mode.of(False) is Mode.mono and f"{Mode.mono}" == "mono"
    with pytest.raises(AsmError, match=r"^--mode must be mono or poly, got 'stereo'$"):
        Mode.parse("stereo")
