"""The render command and the CLI's handling of bad input (one red line, exit 2, registry untouched)."""

import json

import pytest
import soundfile as sf
from conftest import ROOT, fundamental, run_cli_process


def test_render_writes_a_one_second_c4(cli, tmp_path):
    out = tmp_path / "c4.wav"
    r = cli("render", "--synth", "asm-sub", "--note", "60", "--duration", "1", "--out", out)
    assert r.code == 0, r.err
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and audio.ndim == 1 and len(audio) == 16000
    assert sf.info(out).subtype == "FLOAT"
    assert abs(fundamental(audio, sr) - 261.63) < 2.6


def test_render_chord_midi_and_sample_rate(cli, tmp_path):
    import mido

    midi = tmp_path / "notes.mid"
    mf = mido.MidiFile()
    track = mido.MidiTrack()
    mf.tracks.append(track)
    for note in (60, 64):
        track.append(mido.Message("note_on", note=note, velocity=90, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=mf.ticks_per_beat))
    mf.save(midi)
    r = cli("render", "--midi", midi, "--sr", "44100", "--out", tmp_path / "m.wav")
    assert r.code == 0, r.err
    audio, sr = sf.read(tmp_path / "m.wav")
    assert sr == 44100 and len(audio) == int(44100 * 2.0)  # two 0.5 s notes + 1 s tail
    assert cli("render", "--chord", "C4,E4,G4", "--out", tmp_path / "c.wav").code == 0


def _registry_state(cli):
    return json.dumps(cli("inspect-registry", "--synth", "asm-sub", "--json").json(), sort_keys=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["render", "--synth", "nosuch"], "unknown synth"),
        (["render", "--set", "cutof=0.3"], "unknown parameter"),
        (["render", "--set", "cutoff=1.5"], "in [0, 1]"),
        (["render", "--set", "cutoff"], "name=value"),
        (["render", "--set", "osc1_wave=kazoo"], "unknown choice"),
        (["render", "--chord", "60,,67"], "malformed chord"),
        (["render", "--chord", "60,64,200"], "malformed chord"),
        (["render", "--midi", "/no/such/file.mid"], "MIDI file not found"),
        (["render", "--note", "60", "--chord", "60,64"], "only one of"),
        (["render", "--preset", "nothing"], "no preset named"),
        (["lock", "asm-sub", "cutoff=2"], "in [0, 1]"),
        (["lock", "nosynth", "cutoff=0.2"], "unknown synth"),
        (["unlock", "asm-sub", "bogus"], "unknown parameter"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_registry_untouched(cli, tmp_path, args, message):
    before = _registry_state(cli)
    out = tmp_path / "x.wav"
    r = cli(*args, *(["--out", out] if args[0] == "render" else []))
    assert r.code == 2
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], r.err
    assert "Traceback" not in r.err
    assert not out.exists()
    assert _registry_state(cli) == before


def test_unwritable_output_and_corrupt_midi(cli, tmp_path):
    r = cli("render", "--out", "/no/such/dir/x.wav")
    assert r.code == 2 and "does not exist" in r.err
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    r = cli("render", "--midi", bad, "--out", tmp_path / "y.wav")
    assert r.code == 2 and "cannot read MIDI file" in r.err


def test_errors_in_a_real_process_have_no_traceback_and_debug_shows_one(tmp_path):
    r = run_cli_process("render", "--synth", "nosuch", "--out", tmp_path / "x.wav")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = run_cli_process("--debug", "render", "--synth", "nosuch", "--out", tmp_path / "x.wav")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_a_real_process_leaves_its_output_printed_and_the_registry_folded(tmp_path):
    """``main`` leaves with os._exit once done: stdout must be flushed, and SQLite's WAL folded into asm.db."""
    data = tmp_path / "data"
    out = tmp_path / "x.wav"
    r = run_cli_process("render", "--synth", "asm-sub", "--note", "60", "--duration", "0.5", "--out", out,
                        env={"ASM_DATA": str(data), "ASM_DB": f"sqlite:///{data / 'asm.db'}"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wrote") and sf.info(out).frames == 8000
    assert (data / "asm.db").is_file() and not (data / "asm.db-wal").exists()
    import sqlite3

    with sqlite3.connect(data / "asm.db") as db:
        assert db.execute("select count(*) from synth where name = 'asm-sub'").fetchone()[0] == 1


def test_asm_cli_py_is_the_same_app_as_the_console_script():
    import shutil
    import subprocess

    script = shutil.which("asm") or str(ROOT / ".venv" / "bin" / "asm")
    a = subprocess.run([script, "--help"], capture_output=True, text=True, env={"COLUMNS": "100", "PATH": ""})
    b = run_cli_process("--help", env={"COLUMNS": "100"})
    assert a.returncode == b.returncode == 0
    assert a.stdout.replace("asm-cli.py", "asm") == b.stdout.replace("asm-cli.py", "asm")
    assert "render" in a.stdout


def test_every_short_flag_means_one_long_option_across_the_cli():
    """-x must not be --note in one command and --size in another (the short flags used to collide)."""
    import typer.main

    from asm.cli import app

    meaning: dict[str, dict[tuple, list[str]]] = {}

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in command.params:
            longs = tuple(sorted(o for o in param.opts + param.secondary_opts if o.startswith("--")))
            for short in (o for o in param.opts + param.secondary_opts if o.startswith("-") and o[1] != "-"):
                meaning.setdefault(short, {}).setdefault(longs, []).append(" ".join(path))

    walk(typer.main.get_command(app), [])
    assert meaning, "no short flags found: the walk is broken"
    assert {"-o", "-s", "-j"} <= set(meaning)
    clashes = {short: uses for short, uses in meaning.items() if len(uses) > 1}
    assert not clashes, clashes


@pytest.mark.parametrize("args, message", [
    (["--duration", "0"], "'--duration'"),
    (["--duration", "nan"], "'--duration'"),
    (["--note-off", "0"], "'--note-off'"),
    (["--sr", "0"], "not a supported sample rate"),
    (["--sr", "12345"], "not a supported sample rate"),
    (["--velocity", "0"], "'--velocity'"),
])
def test_render_refuses_out_of_range_values_instead_of_using_defaults(cli, tmp_path, args, message):
    out = tmp_path / "x.wav"
    r = cli("render", *args, "--out", out)
    assert r.code == 2, (r.out, r.err)
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.err, r.err
    assert not out.exists()


def test_usage_errors_are_one_line_in_a_real_process(tmp_path):
    r = run_cli_process("render", "--duration", "0", "--out", tmp_path / "x.wav")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--duration" in r.stderr, r.stderr
    assert not (tmp_path / "x.wav").exists()
    r = run_cli_process("generate-dataset", "d", "--size", "4", "--mode", "stereo")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'--mode'" in r.stderr, r.stderr
