"""``asm perf …``: speed benchmarks that print figures (never used as tests)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from asm.cli.app import app, console

perf_app = typer.Typer(help="Speed benchmarks: print renders/s, examples/s, samples/s, seconds per match.",
                       no_args_is_help=True)
app.add_typer(perf_app, name="perf")


@perf_app.command("render")
def perf_render(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    sr: int = typer.Option(16000, "--sr"),
    duration: float = typer.Option(1.0, "--duration"),
    n: int = typer.Option(500, "--n", min=1),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Renders per second of one process through asm, beside the bare DawDreamer call on the same patches."""
    from asm.bench.render_speed import measure_render_speed

    result = measure_render_speed(synth, sr, duration, n, seed)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"render speed: {synth}, {duration:g} s notes at {sr} Hz, {n} random presets, 1 process")
    table.add_column("path")
    table.add_column("renders/s", justify="right")
    table.add_column("ms/render", justify="right")
    table.add_row("bare DawDreamer", f"{result['bare_rps']:.1f}", f"{1000 / result['bare_rps']:.2f}")
    table.add_row("asm Synth.render", f"{result['asm_rps']:.1f}", f"{1000 / result['asm_rps']:.2f}")
    if result.get("isolated_rps"):
        iso = result["isolated_rps"]
        table.add_row("asm, plugin in a child process", f"{iso:.1f}", f"{1000 / iso:.2f}")
    console.print(table)
    console.print(f"asm overhead over the bare call: {result['overhead_pct']:+.1f}%")
