"""``asm ddsp …``: DDSP timbre models of an instrument (train, resynth, export, list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer
from rich.table import Table

from asm.cli import choices
from asm.cli.app import app, console, err_console

ddsp_app = typer.Typer(help="DDSP timbre models: learn an instrument from its audio, play it from pitch and "
                            "loudness, export it for a DAW (neutone).", no_args_is_help=True)
app.add_typer(ddsp_app, name="ddsp")

DDSP_RATES = (16000, 22050, 44100, 48000)


def _rate(value: int) -> int:
    if value not in DDSP_RATES:
        raise typer.BadParameter(f"{value} is not a DDSP model rate: {', '.join(map(str, DDSP_RATES))}")
    return value


@ddsp_app.command("train")
def ddsp_train(
    name: str = typer.Argument(..., help="Model name."),
    audio: List[Path] = typer.Argument(..., help="Audio files or folders of one monophonic instrument."),
    sr: int = typer.Option(48000, "--sr", callback=_rate, help="Model sample rate (16000 trains fastest)."),
    size: str = typer.Option("full", "--size", help="tiny, small or full (decoder width, harmonics, reverb)."),
    harmonics: int = typer.Option(None, "--harmonics", min=1, max=256, help="Harmonics (default: the size's)."),
    f0: choices.F0Method = typer.Option(choices.F0Method.crepe, "--f0", help="Offline pitch tracker: CREPE tiny "
                                        "(default) or full, Viterbi-decoded, or pYIN refined by YIN."),
    steps: int = typer.Option(3000, "--steps", min=1, help="Training steps in all (a resumed run continues)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    slice_seconds: float = typer.Option(2.0, "--slice", callback=choices.positive, help="Seconds per example."),
    lr: float = typer.Option(1e-3, "--lr", callback=choices.positive),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", min=1),
    device: choices.Device = typer.Option(choices.Device.auto, "--device", help="auto: CUDA when present."),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train (or resume) a DDSP model: features cached, checkpoints kept, Ctrl-C safe."""
    from dataclasses import replace

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from asm.ddsp.config import DdspConfig
    from asm.ddsp.train import TrainSettings, train

    config = DdspConfig.sized(size, sr, f0_method=f0.value)
    if harmonics is not None:
        config = replace(config, n_harmonics=harmonics)
    settings = TrainSettings(steps=steps, batch_size=batch_size, slice_seconds=slice_seconds, learning_rate=lr,
                             checkpoint_every=checkpoint_every)
    out = err_console if as_json else console
    progress = Progress(TextColumn("[bold]steps"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=out)
    task = progress.add_task("steps", total=steps, info="")
    shown = []

    def step(i: int, n: int, loss: float) -> None:
        if not shown:  # the bar appears once training starts (not over a refusal of the audio)
            shown.append(True)
            progress.start()
        progress.update(task, completed=i, info=f"loss {loss:.3f}")

    try:
        result = train(name, [str(a) for a in audio], config, settings, seed=seed, device=device.value,
                       progress=step, log=lambda t: out.print(f"[dim]{t}[/dim]"))
    except KeyboardInterrupt:
        if shown:
            progress.stop()
        err_console.print(f"[bold red]interrupted[/bold red]: saved checkpoints are kept; run the same command to "
                          f"resume {name}")
        raise typer.Exit(130)
    finally:
        if shown:
            progress.stop()
    if as_json:
        typer.echo(json.dumps(result))
        return
    if result.get("nothing_to_do"):
        console.print(f"{name} has {result['steps']} steps already (ask for more with --steps)")
        return
    console.print(f"trained {name}: {result['steps']} steps on {result['device']}, loss "
                  f"{result['first_loss']:.3f} -> {result['loss']:.3f}")


@ddsp_app.command("resynth")
def ddsp_resynth(
    name: str = typer.Argument(..., help="DDSP model name."),
    input: Path = typer.Argument(..., help="A monophonic recording (any instrument or voice)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output audio file."),
    pitch: float = typer.Option(0.0, "--pitch", min=-48.0, max=48.0, help="Pitch shift in semitones."),
    loudness: float = typer.Option(0.0, "--loudness", min=-60.0, max=60.0, help="Loudness offset in dB."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the noise."),
    f0: choices.F0Method = typer.Option(None, "--f0", help="Pitch tracker for INPUT (default: the one the "
                                        "model was trained with)."),
) -> None:
    """Timbre transfer: play INPUT's melody and dynamics with the trained instrument."""
    from asm.audio.io import check_writable, write_audio
    from asm.ddsp.resynth import resynthesize
    from asm.ddsp.train import load_model

    check_writable(out)
    model, summary = load_model(name)
    audio = resynthesize(model, input, pitch, loudness, seed, f0_method=f0.value if f0 else None)
    write_audio(out, audio, summary["sample_rate"])
    console.print(f"wrote {out} ({len(audio) / summary['sample_rate']:.2f} s at {summary['sample_rate']} Hz)")


@ddsp_app.command("export")
def ddsp_export(
    name: str = typer.Argument(..., help="DDSP model name."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .nm file (neutone waveform-to-waveform)."),
) -> None:
    """Export the streaming model as TorchScript in neutone's waveform-to-waveform format."""
    from asm.ddsp.stream import export
    from asm.ddsp.train import load_model

    model, summary = load_model(name)
    meta = export(model, summary, out)
    console.print(f"wrote {out}: {meta['native_sample_rates'][0]} Hz, buffers "
                  f"{', '.join(map(str, meta['native_buffer_sizes']))}, latency {meta['delay_samples']} samples, "
                  f"knobs {', '.join(meta['neutone_parameters'])}")


@ddsp_app.command("example-audio")
def ddsp_example_audio(
    out: Path = typer.Argument(..., help="Directory for train.wav, heldout.wav and heldout.mid."),
    instrument: str = typer.Option("violin", "--instrument", help="violin, flute, cello, trumpet or clarinet."),
    minutes: float = typer.Option(3.0, "--minutes", callback=choices.positive, help="Minutes of training melody."),
    heldout: float = typer.Option(12.0, "--heldout", callback=choices.positive, help="Seconds of held-out phrase."),
    sr: int = typer.Option(16000, "--sr", callback=_rate, help="Sample rate of the files."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the melodies."),
) -> None:
    """Render a General MIDI instrument (FluidR3) playing seeded melodies: training audio and a held-out
    phrase with its MIDI notes, for the worked example (needs make system-deps and the ood extra)."""
    from asm.ddsp.example import example_audio

    info = example_audio(out, instrument, minutes, heldout, sr, seed)
    console.print(f"wrote {info['train']['file']} ({info['train']['seconds']:.0f} s, {info['train']['notes']} "
                  f"notes) and {info['heldout']['file']} ({info['heldout']['seconds']:.0f} s) with {info['midi']}")


@ddsp_app.command("compare")
def ddsp_compare(
    target: Path = typer.Argument(..., help="The reference recording (for example the held-out phrase)."),
    files: List[Path] = typer.Argument(..., help="Renders to score against it (DDSP resynthesis, asm match)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score renders against a recording with asm's metrics (perceptual, the headline, and MR-STFT)."""
    from asm.ddsp.example import score_files

    rows = score_files(target, files)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"distance to {target}")
    for col in ("file", "perceptual", "mr-stft"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["file"], f"{r['perceptual']:.3f}", f"{r['mr-stft']:.3f}")
    console.print(table)


@ddsp_app.command("list")
def ddsp_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The DDSP models in the registry."""
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import DdspModel

    with session_scope(read_only=True) as session:
        rows = [{"name": r.name, "status": r.status, "sample_rate": r.sample_rate, "steps": r.steps_done,
                 "loss": r.last_loss, "device": r.device, "checkpoints": len(r.checkpoints)}
                for r in session.scalars(select(DdspModel).order_by(DdspModel.name))]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="DDSP models")
    for col in ("name", "status", "sample_rate", "steps", "loss", "device", "checkpoints"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()])
    console.print(table)
