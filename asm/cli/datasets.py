"""Dataset commands: ``generate-dataset``, ``list-datasets``, ``show-dataset``, ``verify-dataset``,
``delete-dataset``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.cli.progress import RichReporter
from asm.data.store import check_name, delete_dataset, list_datasets, show_dataset, verify_dataset
from asm.errors import AsmError
from asm.midi.notes import parse_pitch
from asm.registry.db import session_scope
from asm.registry.synth_loader import render_defaults
from asm.registry.synths import get_synth
from asm.render import resolve_workers


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@app.command("generate-dataset")
def generate_dataset_cmd(
    name: str = typer.Argument(..., help="Dataset name (letters, digits, . _ -)."),
    synth: str = typer.Option("asm-sub", "--synth", "-s", help="Registered synth name."),
    mode: choices.Mode = typer.Option(choices.Mode.mono, "--mode", help="mono (one note) or poly (chords, arpeggios, sequences, MIDI)."),
    size: int = typer.Option(..., "--size", min=1, help="Number of examples."),
    presets: str = typer.Option("random", "--presets", help="random, factory, or mix:F (a fraction F of factory presets)."),
    sr: Optional[int] = typer.Option(None, "--sr", callback=choices.sample_rate, help="Sample rate: 16000, 22050, "
                                     "44100 or 48000 (default: the synth's render default)."),
    duration: Optional[float] = typer.Option(None, "--duration", callback=choices.seconds, help="Seconds of audio per "
                                             "example, 0.01 to 600 (default: the synth's, 2 s)."),
    note_off: Optional[float] = typer.Option(None, "--note-off", callback=choices.seconds,
                                             help="Seconds until every note is released."),
    note: Optional[str] = typer.Option(None, "--note", help="Mono: the note (60 or C4)."),
    note_range: Optional[str] = typer.Option(None, "--note-range", help="Pitch range LOW:HIGH (mono: uniform; poly: generator)."),
    velocity: Optional[str] = typer.Option(None, "--velocity", help="Velocity, or a range LOW:HIGH."),
    midi_dir: Optional[Path] = typer.Option(None, "--midi-dir", help="Poly: play chunks of these MIDI files."),
    max_polyphony: int = typer.Option(6, "--max-polyphony", min=1, max=64, help="Poly: most notes at once."),
    split: str = typer.Option("0.8,0.1,0.1", "--split", help="Train,validation,test fractions."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice (presets, notes, splits)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Worker processes (auto = number of cores)."),
    executor: choices.Executor = typer.Option(choices.Executor.local, "--executor", help="local (process pool) or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (default: start one)."),
    stall_timeout: Optional[float] = typer.Option(
        None, "--stall-timeout", help="Seconds a worker may make no progress before it counts as hung: it is replaced "
        "and that preset rejected (local executor; default: 60 s, or 20x --duration if longer)."),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", min=1, max=65536, help="Examples per shard (default: ~16 MB shards)."),
    audio_dtype: choices.AudioDtype = typer.Option(choices.AudioDtype.int16, "--audio-dtype", help="Stored audio: int16 (with a per-example scale) or float16."),
    store: choices.Store = typer.Option(choices.Store.audio_features, "--store", help="audio+features, or "
                                        "features only (no audio on disk; test-model renders the targets again)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Render a dataset of (preset, notes, audio, log-mel) examples into shards; resumes if interrupted.

    Run the same command again after a crash or Ctrl-C and it finishes the dataset.
    """
    from pydantic import ValidationError

    from asm.data.settings import DatasetSettings, auto_shard_size, parse_presets, parse_range, parse_split

    check_name(name)
    _check_option_combinations(mode, midi_dir, note, note_range, stall_timeout)
    n_workers = resolve_workers(workers)
    kind, fraction = parse_presets(presets)
    split_t = parse_split(split)
    defaults, features = _synth_defaults(synth)
    length = duration if duration is not None else defaults.duration
    off = note_off if note_off is not None else min(defaults.note_off, 0.75 * length)
    vel, vel_range = _parse_velocity(velocity, defaults.velocity)
    rate = sr if sr is not None else defaults.sample_rate
    try:
        settings = DatasetSettings(
            synth=synth, mode=mode.value, size=size, presets=kind, factory_fraction=fraction, sample_rate=rate,
            duration=length, note_off=off, note=parse_pitch(note) if note else defaults.note,
            note_range=parse_range(note_range, "--note-range", 0, 127) if note_range else None,
            velocity=vel, velocity_range=vel_range,
            midi_dir=str(midi_dir.resolve()) if midi_dir is not None else None, max_polyphony=max_polyphony,
            split=split_t, seed=seed, shard_size=shard_size if shard_size is not None else auto_shard_size(length, rate, features, store.value),
            audio_dtype=audio_dtype.value, features=features, store=store.value,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "settings"
        raise AsmError(f"bad dataset settings ({where}): {err['msg'].removeprefix('Value error, ')}") from None

    result = _run_generation(name, settings, n_workers, executor.value, ray_address, quiet=as_json,
                             stall_timeout=stall_timeout)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_generation(name, result)


def _check_option_combinations(mode, midi_dir: Path | None, note: str | None, note_range: str | None,
                               stall_timeout: float | None) -> None:
    """Options that make sense alone but not together (Typer checks each one by itself)."""
    if midi_dir is not None and mode != "poly":
        raise AsmError("--midi-dir needs --mode poly")
    if note is not None and note_range is not None:
        raise AsmError("give --note or --note-range, not both")
    if note is not None and mode == "poly":
        raise AsmError("--note is for mono datasets; poly datasets take --note-range")
    if stall_timeout is not None and not stall_timeout > 0:
        raise AsmError(f"--stall-timeout must be a positive number of seconds, got {stall_timeout:g}")


def _synth_defaults(synth: str):
    """The synth's render defaults and feature settings from the registry (what options fall back to)."""
    from pydantic import ValidationError

    from asm.audio.features import FeatureSettings

    with session_scope() as session:
        row = get_synth(session, synth)
        defaults = render_defaults(row)
        feature_defaults = dict((row.settings or {}).get("features", {}))
    try:
        return defaults, FeatureSettings(**feature_defaults)
    except ValidationError as exc:
        raise AsmError(f"bad feature settings for {synth} in the registry: {exc.errors()[0]['msg']}") from None


def _parse_velocity(velocity: str | None, default: int) -> tuple[int, tuple[int, int] | None]:
    """``--velocity``: one velocity or a LOW:HIGH range; returns (velocity, range or None)."""
    from asm.data.settings import parse_range

    if velocity is None:
        return default, None
    if ":" in velocity:
        return default, parse_range(velocity, "--velocity", 1, 127)
    try:
        vel = int(velocity)
    except ValueError:
        raise AsmError(f"bad --velocity {velocity!r}: give 1..127 or LOW:HIGH") from None
    if not 1 <= vel <= 127:
        raise AsmError(f"--velocity must be in 1..127, got {vel}")
    return vel, None


def _print_generation(name: str, result: dict) -> None:
    run = result["run"]
    if run["outcome"] == "already complete":
        console.print(f"dataset [bold]{name}[/bold] is already complete ({result['size']} examples); nothing to do")
    else:
        rate_txt = f", {run['examples_per_s']:.0f} examples/s" if run["examples_per_s"] else ""
        console.print(f"dataset [bold]{name}[/bold]: {result['size']} examples in {result['shards']} shards "
                      f"({_mb(result['bytes'])}); this run generated {run['examples']}{rate_txt}")
    _print_rejections(result)


def _run_generation(name, settings, workers, executor, ray_address, quiet: bool,
                    stall_timeout: float | None = None) -> dict:
    from asm.data.generate import generate_dataset

    out = err_console if quiet else console
    with RichReporter(out, transient=quiet, keep=True, rate_unit="examples") as reporter:
        return generate_dataset(name, settings, workers=workers, executor=executor, ray_address=ray_address,
                                reporter=reporter, stall_timeout=stall_timeout)


def _print_rejections(info: dict) -> None:
    rej = {k: v for k, v in (info.get("rejections") or {}).items() if v}
    if rej:
        console.print("rejected and replaced: " + ", ".join(f"{v} {k}" for k, v in rej.items()))
    crashes = _crash_line(info)
    if crashes:
        console.print(crashes)


def _crash_line(info: dict) -> str | None:
    """``N presets crashed the plugin (x%)``: the share of the presets rendered that killed a worker."""
    rej = info.get("rejections") or {}
    n = int(rej.get("crashed", 0))
    if not n:
        return None
    rendered = int(info.get("examples_done", info["size"])) + sum(int(rej.get(k, 0)) for k in ("silent", "nonfinite", "crashed"))
    return f"{n} preset{'s' if n != 1 else ''} crashed the plugin ({100 * n / rendered:.1f}%)"


@app.command("list-datasets")
def list_datasets_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Datasets in the registry with their state and size."""
    rows = list_datasets()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print("no datasets yet: asm generate-dataset NAME --size N")
        return
    table = Table(title="datasets")
    for col, just in (("name", "left"), ("synth", "left"), ("mode", "left"), ("examples", "right"),
                      ("train/val/test", "right"), ("status", "left"), ("MB", "right")):
        table.add_column(col, justify=just, no_wrap=col != "status")
    for r in rows:
        status = r["status"] if r["status"] == "complete" else f"{r['status']} ({r['shards_done']}/{r['shards']} shards)"
        sc = r["split_counts"]
        table.add_row(r["name"], r["synth"], r["mode"], str(r["size"]), f"{sc['train']}/{sc['val']}/{sc['test']}",
                      status, f"{r['bytes'] / 1e6:,.0f}")
    console.print(table)


@app.command("show-dataset")
def show_dataset_cmd(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Every setting of a dataset, its splits, shards, rejections and parameter order."""
    info = show_dataset(name)
    if as_json:
        typer.echo(json.dumps(info))
        return
    s = info["settings"]
    table = Table(title=f"dataset {name}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    sc = info["split_counts"]
    notes = f"note {s['note']}" if s["mode"] == "mono" and not s.get("note_range") else (
        f"notes {s['note_range'][0]}:{s['note_range'][1]}" if s.get("note_range") else "")
    if s["mode"] == "poly":
        notes = f"MIDI chunks from {s['midi_dir']}" if s.get("midi_dir") else f"built-in patterns ({s['generator']})" + (
            f", {notes}" if notes else "")
    presets = s["presets"] + (f":{s['factory_fraction']:g}" if s["presets"] == "mix" else "")
    rows = [
        ("synth", f"{info['synth']} (version {s.get('synth_version') or '?'})"),
        ("status", info["status"] + (f", {info['examples_done']}/{info['size']} examples" if info["status"] != "complete" else "")),
        ("mode", s["mode"]), ("examples", f"{info['size']} (train {sc['train']}, val {sc['val']}, test {sc['test']})"),
        ("presets", presets), ("seed", str(info["seed"])),
        ("audio", f"{s['duration']:g} s at {s['sample_rate']} Hz, note-off {s['note_off']:g} s, stored {s['audio_dtype'] if s.get('store', 'audio+features') != 'features' else 'no audio (features only)'}"),
        ("notes", notes), ("velocity", f"{s['velocity_range'][0]}:{s['velocity_range'][1]}" if s.get("velocity_range") else str(s["velocity"])),
        ("features", ", ".join(f"{k}={v}" for k, v in s["features"].items())),
        ("shards", f"{info['shards_done']}/{info['shards']} of {info['shard_size']} examples, {_mb(info['bytes'])}"),
        ("rejections", ", ".join(f"{k} {v}" for k, v in info["rejections"].items()) or "none"),
        *([("crashes", _crash_line(info))] if _crash_line(info) else []),
        ("free parameters", f"{len(info['free_parameters'])}: " + ", ".join(p["name"] for p in info["free_parameters"])),
        ("locks", ", ".join(f"{k}={v:g}" for k, v in (s.get("locks") or {}).items()) or "none"),
        ("signatures", f"free {info['free_signature']}, locks {info['lock_signature']}"),
        ("code version", info["code_version"]), ("directory", info["directory"]),
        ("created", f"{info['created_at']}" + (f", completed {info['completed_at']}" if info["completed_at"] else "")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@app.command("verify-dataset")
def verify_dataset_cmd(
    name: str = typer.Argument(...),
    quick: bool = typer.Option(False, "--quick", help="Skip the checksums (sizes, shapes and values are still checked)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check counts, shapes, finiteness, unique presets and that shard files match their rows; exit 2 if not."""
    report = verify_dataset(name, checksums=not quick)
    if as_json:
        typer.echo(json.dumps(report))
    elif report["ok"]:
        c = report["checked"]
        console.print(f"dataset [bold]{name}[/bold] verifies: {c['examples']} examples in {c['shards']} shards"
                      + (", checksums match" if c["checksums"] else ""))
    else:
        for p in report["problems"]:
            err_console.print(f"  - {p}", highlight=False)
    if not report["ok"]:
        raise AsmError(f"dataset {name} failed verification: {len(report['problems'])} problem(s)"
                       + (f"; first: {report['problems'][0]}" if as_json else ""))


@app.command("delete-dataset")
def delete_dataset_cmd(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Delete a dataset's registry rows and its files."""
    info = delete_dataset(name)
    if as_json:
        typer.echo(json.dumps({"deleted": name, "bytes": info["bytes"]}))
        return
    console.print(f"deleted dataset [bold]{name}[/bold] ({info['size']} examples, {_mb(info['bytes'])})")
