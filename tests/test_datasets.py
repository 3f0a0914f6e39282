"""Dataset generation: determinism, labels that belong to the audio, rejections, presets, splits,
storage checks, the torch Dataset, resumption after kill -9 and bad input."""

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from asm.audio.features import logmel
from asm.data.shards import ShardFile
from asm.data.torch_dataset import ShardDataset
from asm.registry.db import session_scope
from asm.registry.models import Preset
from asm.registry.synth_loader import load_spec
from asm.registry.synths import get_synth, space_of
from asm.synth.host import open_synth
from asm.synth.params import preset_hash

SMALL = ("--duration", "0.5", "--note-off", "0.3", "--shard-size", "16")


def gen(cli, name, *args, size=40, workers=2):
    r = cli("generate-dataset", name, "--size", size, "--workers", workers, *SMALL, *args, "--json")
    assert r.code == 0, r.err
    return r.json()


def shard_rows(name):
    from asm.data.store import get_dataset

    with session_scope() as s:
        return [(x.index, x.sha256, x.count) for x in get_dataset(s, name).shards]


def test_mono_dataset_verifies_and_labels_render_to_the_stored_audio(cli, asm_home):
    info = gen(cli, "m", "--note-range", "48:72", "--velocity", "70:110", size=40)
    assert info["status"] == "complete" and info["size"] == 40 and info["shards"] == 3
    assert info["split_counts"] == {"train": 32, "val": 4, "test": 4}
    assert len(info["free_parameters"]) == 30 and info["settings"]["features"]["n_mels"] == 64
    r = cli("verify-dataset", "m", "--json")
    assert r.code == 0 and r.json()["ok"], r.out

    ds = ShardDataset("m", split=None)
    with session_scope() as s:
        spec = load_spec(s, "asm-sub", 16000)
    synth = open_synth(spec)
    pitches = set()
    for i in (0, 7, 21, 39):
        item = ds[i]
        notes = ds.notes(i)
        assert len(notes) == 1 and 48 <= notes[0].pitch <= 72 and 70 <= notes[0].velocity <= 110
        pitches.add(notes[0].pitch)
        audio = synth.render_free(item["params"].numpy().astype(np.float64), notes, 0.5)
        stored = ds.audio(i)
        # the stored label re-renders to the stored audio (int16 quantisation only)
        assert np.max(np.abs(audio - stored)) <= np.max(np.abs(audio)) / 32767 + 1e-7
        feats = logmel(audio, 16000, ds.settings.features)[0].numpy()
        np.testing.assert_allclose(item["features"].numpy(), feats, atol=0.01, rtol=2e-3)  # float16 storage
    assert len(pitches) > 1
    # splits are the contiguous ranges the row announces
    for split, n in (("train", 32), ("val", 4), ("test", 4)):
        part = ShardDataset("m", split)
        assert len(part) == n and {part[k]["split"] for k in range(n)} == {("train", "val", "test").index(split)}
    assert ShardDataset("m", "val")[0]["index"] == 32


def test_same_seed_same_bits_whatever_the_workers_and_different_seed_differs(cli):
    gen(cli, "a", "--seed", "3", size=40, workers=2)
    gen(cli, "b", "--seed", "3", size=40, workers=1)
    gen(cli, "c", "--seed", "4", size=40, workers=2)
    a, b, c = shard_rows("a"), shard_rows("b"), shard_rows("c")
    assert a == b  # checksums of whole shard files: params, notes, audio, features
    assert [x[1] for x in a] != [x[1] for x in c]
    da, dc = ShardDataset("a", None), ShardDataset("c", None)
    assert not np.array_equal(da.params(0), dc.params(0))
    keys = np.concatenate([np.asarray(ShardFile(f)["preset_key"]) for f in da._files])
    assert len(np.unique(keys)) == 40


def test_silent_renders_are_rejected_and_replaced_with_labels_that_match(cli):
    # with only osc1 through a closed lowpass, many random presets are silent
    assert cli("lock", "asm-sub", "osc2_level=0", "noise_level=0", "cutoff=0", "filter_type=lowpass").code == 0
    info = gen(cli, "s", size=48)
    assert info["rejections"]["silent"] > 0 and info["rejections"]["nonfinite"] == 0
    assert len(info["free_parameters"]) == 26 and len(info["settings"]["locks"]) == 4
    assert cli("verify-dataset", "s").code == 0
    ds = ShardDataset("s", None)
    attempts = np.concatenate([np.asarray(ShardFile(f)["attempts"]) for f in ds._files])
    assert attempts.sum() == info["rejections"]["silent"] and (attempts > 0).any()
    with session_scope() as s:
        spec = load_spec(s, "asm-sub", 16000)
    synth = open_synth(spec)
    for i in np.flatnonzero(attempts > 0)[:5]:  # replaced slots carry the label of the replacement
        audio = synth.render_free(ds.params(int(i)).astype(np.float64), ds.notes(int(i)), 0.5)
        assert np.max(np.abs(audio)) > 1e-4
        assert np.max(np.abs(audio - ds.audio(int(i)))) <= np.max(np.abs(audio)) / 32767 + 1e-7


def _add_factory_presets(n: int, silent: int = 0) -> dict[str, list[int]]:
    """``n`` audible factory presets, ``silent`` silent ones, and a twin of the last audible one that
    differs only in ``drive`` (the same sound once drive is locked)."""
    rng = np.random.default_rng(11)
    with session_scope() as s:
        synth = get_synth(s, "asm-sub")
        space = space_of(synth)
        rows = {"audible": [], "silent": []}
        for k in range(n + silent):
            values = space.quantise(rng.random(space.size))
            values[space.position("osc1_level")] = 0.8  # audible for sure...
            values[space.position("amp_sustain")] = 0.8
            values[space.position("amp_attack")] = 0.05
            kind = "audible" if k < n else "silent"
            if kind == "silent":  # ...or silent for sure
                for name in ("osc1_level", "osc2_level", "noise_level"):
                    values[space.position(name)] = 0.0
            else:
                last = list(values)
            p = Preset(synth=synth, name=f"{kind} {k}", origin="factory", values=values.tolist(),
                       content_hash=preset_hash(values))
            s.add(p)
            s.flush()
            rows[kind].append(p.id)
        twin = list(last)
        twin[space.position("drive")] = 0.123
        s.add(Preset(synth=synth, name="twin", origin="factory", values=twin, content_hash=preset_hash(twin)))
    return rows


def test_factory_and_mixed_presets(cli):
    ids = _add_factory_presets(30, silent=5)
    assert cli("lock", "asm-sub", "drive=0").code == 0
    # 36 rows, 35 distinct once drive is locked; 30 wanted: the silent ones picked are replaced by
    # the spare audible ones, so exactly the 30 audible presets end up in the dataset
    info = gen(cli, "f", "--presets", "factory", size=30)
    assert info["rejections"]["silent"] > 0 and cli("verify-dataset", "f").code == 0
    ds = ShardDataset("f", None)
    sources = [ds.source(i) for i in range(30)]
    assert sorted(sources) == sorted(ids["audible"])
    with session_scope() as s:
        spec = load_spec(s, "asm-sub", 16000)
        by_id = {p.id: p.values for p in get_synth(s, "asm-sub").presets}
    for i in range(0, 30, 7):
        want = spec.space.free_part(spec.space.apply_locks(np.array(by_id[sources[i]])))
        np.testing.assert_array_equal(ds.params(i), want.astype(np.float32))
    assert info["settings"]["inputs"]["factory_presets"]

    r = cli("generate-dataset", "f2", "--presets", "factory", "--size", "36", *SMALL)
    assert r.code == 2 and "35 distinct factory presets" in r.err
    info = gen(cli, "mx", "--presets", "mix:0.5", size=20)
    mx = ShardDataset("mx", None)
    assert sum(mx.source(i) > 0 for i in range(20)) == 10
    assert cli("verify-dataset", "mx").code == 0


def test_poly_builtin_patterns_store_their_notes(cli):
    info = gen(cli, "p", "--mode", "poly", "--duration", "1.0", "--note-off", "0.8", "--note-range", "48:72", size=24)
    assert info["mode"] == "poly"
    ds = ShardDataset("p", None)
    from asm.midi.generate import polyphony

    notes = [ds.notes(i) for i in range(24)]
    assert all(n and all(48 <= x.pitch <= 72 and x.end <= 0.8 + 1e-6 for x in n) for n in notes)
    assert sum(polyphony(n) >= 2 for n in notes) >= 18 and len({tuple(n) for n in notes}) == 24
    assert cli("verify-dataset", "p").code == 0


def test_poly_from_partitioned_midi(cli, tmp_path):
    import mido

    src = tmp_path / "midi"
    src.mkdir()
    f = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    for k, p in enumerate([60, 64, 67, 72, 65, 69]):
        tr += [mido.Message("note_on", note=p, velocity=80, time=0 if k == 0 else 0),
               mido.Message("note_on", note=p + 4, velocity=80, time=0),
               mido.Message("note_off", note=p, velocity=0, time=480),
               mido.Message("note_off", note=p + 4, velocity=0, time=0)]
    f.tracks.append(tr)
    f.save(src / "a.mid")
    (src / "corrupt.mid").write_bytes(b"MThd broken")
    assert cli("partition-midi", src, "--length", "1.0", "--out", tmp_path / "chunks").code == 0
    r = cli("generate-dataset", "pm", "--mode", "poly", "--midi-dir", tmp_path / "chunks", "--size", "8",
            "--duration", "1.5", "--note-off", "1.0", "--shard-size", "4", "--workers", "2")
    assert r.code == 0, r.err
    ds = ShardDataset("pm", None)
    chunks = {tuple((n.pitch, n.start) for n in ds.notes(i)) for i in range(8)}
    assert chunks <= {((60, 0.0), (64, 0.0), (64, 0.5), (68, 0.5)), ((67, 0.0), (71, 0.0), (72, 0.5), (76, 0.5)),
                      ((65, 0.0), (69, 0.0), (69, 0.5), (73, 0.5))}
    assert len(chunks) == 3  # every chunk used (8 slots over 3 chunks)
    r = cli("generate-dataset", "pm2", "--mode", "poly", "--midi-dir", src, "--size", "4", *SMALL)
    assert r.code == 0 and "corrupt.mid" in r.out + r.err


@pytest.mark.parametrize("args, message", [
    (("--synth", "nope"), "unknown synth 'nope'"),
    (("--size", "0"), "Invalid value for '--size'"),
    (("--sr", "0"), "not a supported sample rate"),
    (("--duration", "0"), "Invalid value for '--duration'"),
    (("--mode", "stereo"), "Invalid value for '--mode'"),
    (("--split", "0.8,0.3,0.1"), "sum to 1"),
    (("--split", "0.8,0.2"), "three non-negative fractions"),
    (("--split", "a,b,c"), "bad --split"),
    (("--presets", "mix:1.5"), "mix:F must be in [0, 1]"),
    (("--note-off", "0.9"), "note-off"),
    (("--mode", "mono", "--midi-dir", "."), "--midi-dir needs --mode poly"),
    (("--workers", "0"), "--workers must be at least 1"),
    (("--note-range", "80:40"), "bad --note-range"),
])
def test_bad_settings_exit_2_with_one_line(cli, args, message):
    base = {"--size": "8", "--synth": "asm-sub"}
    argv = []
    given = set(args[::2])
    for k, v in base.items():
        if k not in given:
            argv += [k, v]
    r = cli("generate-dataset", "bad", *argv, "--duration", "0.5", *args)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) <= 2
    assert cli("list-datasets", "--json").json() == []


def test_bad_midi_dirs(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("generate-dataset", "x", "--mode", "poly", "--midi-dir", tmp_path / "empty", "--size", "4", *SMALL)
    assert r.code == 2 and "no MIDI files" in r.err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.mid").write_bytes(b"nope")
    r = cli("generate-dataset", "x", "--mode", "poly", "--midi-dir", tmp_path / "bad", "--size", "4", *SMALL)
    assert r.code == 2 and "no usable chunk" in r.err and "1 corrupt" in r.err
    assert cli("list-datasets", "--json").json() == []


def test_unwritable_data_dir(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ASM_DATA", str(blocker))
    monkeypatch.setenv("ASM_DB", f"sqlite:///{tmp_path / 'db.sqlite'}")
    r = cli("generate-dataset", "x", "--size", "4", *SMALL)
    assert r.code == 2 and "cannot create directory" in r.err and "Traceback" not in r.err


def test_disk_full_leaves_nothing_that_verifies_then_resumes(cli, asm_home):
    """A file size limit makes shard writes fail like a full disk (EFBIG instead of ENOSPC)."""
    import resource

    args = ("generate-dataset", "full", "--size", "128", "--workers", "2", "--duration", "0.5", "--note-off", "0.3",
            "--shard-size", "64")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # a 64-example shard is ~1.3 MB; the registry and its write-ahead log stay well below 1 MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    r = subprocess_run(args, preexec_fn=limit)
    assert r.returncode == 2, r.stderr
    assert "cannot write" in r.stderr and "File too large" in r.stderr and "Traceback" not in r.stderr
    directory = asm_home / "datasets" / "full"
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp-")]
    v = cli("verify-dataset", "full")
    assert v.code == 2 and "incomplete" in v.err
    assert cli(*args).code == 0  # the same command without the limit finishes it
    assert cli("verify-dataset", "full").code == 0


def subprocess_run(args, preexec_fn=None, timeout=300):
    import subprocess

    return subprocess.run([sys.executable, str(ROOT / "asm-cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, preexec_fn=preexec_fn)


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            for k in kids:
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


@pytest.mark.slow
def test_kill_9_mid_run_then_the_same_command_finishes_the_same_dataset(cli, asm_home):
    import subprocess

    args = ["generate-dataset", "k", "--size", "480", "--workers", "2", "--duration", "0.5", "--note-off", "0.3",
            "--shard-size", "24", "--seed", "5"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "asm-cli.py"), *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    db = asm_home / "asm.db"
    deadline = time.time() + 120
    committed = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            committed = sqlite3.connect(db, timeout=1).execute("select count(*) from dataset_shard").fetchone()[0]
        except sqlite3.Error:
            continue
        if committed >= 3:
            break
    assert proc.poll() is None and committed >= 3, "generation finished or stalled before it could be killed"
    helpers = _children(proc.pid)  # forkserver, resource tracker
    workers = _descendants(proc.pid) - helpers
    assert len(workers) == 2

    def alive(pids):
        return [p for p in pids if Path(f"/proc/{p}").exists()
                and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    assert not alive(workers), "render workers outlived their killed parent"
    deadline = time.time() + 20
    while alive(helpers) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(helpers)
    assert cli("verify-dataset", "k").code == 2  # incomplete: nothing half-written passes
    assert cli(*args).code == 0  # the same command again
    assert cli("verify-dataset", "k").code == 0
    assert cli(*[a if a != "k" else "k2" for a in args]).code == 0  # the same command, never interrupted
    assert shard_rows("k") == shard_rows("k2")
    files = sorted(p.name for p in (asm_home / "datasets" / "k").iterdir())
    assert files == [".lock"] + [f"shard-{i:05d}.safetensors" for i in range(20)]


def test_torch_dataset_through_a_dataloader_maps_each_shard_once(cli):
    gen(cli, "t", size=48)
    ds = ShardDataset("t", "train", with_audio=True)
    assert len(ds) == 38 and ds.feature_shape == (64, 32) and ds.n_free == 30
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(len(ds)):
        item = ds[i]
    assert len(os.listdir("/proc/self/fd")) - fds <= 3  # one mapping per shard, none per item
    assert item["features"].dtype == torch.float32 and item["params"].dtype == torch.float32
    assert item["audio"].shape == (8000,)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    seen = []
    for batch in loader:
        assert batch["features"].shape[1:] == (64, 32) and batch["params"].shape[1] == 30
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(38))
    with pytest.raises(Exception, match="unknown split"):
        ShardDataset("t", "dev")


def test_torch_dataset_releases_mapped_pages_and_reads_the_same_after(cli, monkeypatch):
    import asm.data.torch_dataset as td

    gen(cli, "r", size=32)
    monkeypatch.setattr(td, "RELEASE_EVERY", 8)
    ds = td.ShardDataset("r", None)
    first = [ds[i]["features"].clone() for i in range(32)]
    again = [ds[i]["features"] for i in reversed(range(32))][::-1]
    assert ds.releases == 8
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_delete_dataset_and_incomplete_datasets_refuse_to_load(cli, asm_home):
    gen(cli, "d", size=16)
    assert (asm_home / "datasets" / "d").is_dir()
    r = cli("delete-dataset", "d")
    assert r.code == 0 and not (asm_home / "datasets" / "d").exists()
    assert cli("show-dataset", "d").code == 2
    assert cli("delete-dataset", "d").code == 2


def test_generate_twice_is_a_no_op_and_other_settings_are_refused(cli):
    gen(cli, "g", size=16)
    again = gen(cli, "g", size=16, workers=1)
    assert again["run"]["outcome"] == "already complete"
    r = cli("generate-dataset", "g", "--size", "16", "--seed", "9", *SMALL)
    assert r.code == 2 and "different settings (seed)" in r.err
    r = cli("show-dataset", "g")
    assert r.code == 0 and "complete" in r.out


@pytest.mark.slow
def test_ray_executor_gives_the_same_dataset_bit_for_bit(cli):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'asm[ray]')")
    gen(cli, "local", "--seed", "2", "--mode", "poly", size=40, workers=2)
    r = cli("generate-dataset", "onray", "--size", "40", "--workers", "2", "--executor", "ray", "--seed", "2",
            "--mode", "poly", *SMALL, "--json")
    assert r.code == 0, r.err
    assert shard_rows("onray") == shard_rows("local")
    assert cli("verify-dataset", "onray").code == 0


def test_replacements_never_repeat_a_preset_of_another_shard(cli):
    """In a tiny space (2 free discrete parameters: 20 presets) the replacements of crashed presets
    in different shards collide (seed 1 makes them: generation is deterministic); the later shard is rebuilt
    without the earlier shards' presets."""
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings
    from asm.data.store import verify_dataset

    with session_scope() as s:
        space = space_of(get_synth(s, "asm-sub"))
    assert cli("lock", "asm-sub", *[f"{p.name}={p.default}" for p in space.params
                                     if p.name not in ("osc1_wave", "osc1_octave")]).code == 0
    from asm.progress import RecordingReporter

    rec = RecordingReporter()
    st = DatasetSettings(synth="asm-sub", size=12, duration=0.3, note_off=0.2, shard_size=3, seed=1)
    info = generate_dataset("tiny", st, workers=2, fault={"crash_slots": [0, 3, 6, 9]},
                            reporter=rec)
    assert info["rejections"]["crashed"] == 4 and info["rejections"]["duplicate"] > 0
    assert any("repeats presets of earlier shards" in e for e in rec.messages())
    assert verify_dataset("tiny")["ok"]  # includes: every preset key unique
    ds = ShardDataset("tiny", None)
    assert len({tuple(ds.params(i)) for i in range(12)}) == 12
    assert all(".r" not in Path(f).name or Path(f).exists() for f in ds._files)
