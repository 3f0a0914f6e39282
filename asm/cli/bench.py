"""Benchmark commands: ``ood-targets`` (out-of-domain targets), ``results`` (runs and their tables),
``report`` (rewrite a run's HTML report) and ``benchmark`` (the mono/poly benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from sqlalchemy import func, select

from asm.bench.config import BenchmarkRequest, parse_models, plan
from asm.bench.ood import default_dir, make_ood_targets
from asm.bench.runner import run_benchmark
from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.cli.progress import RichReporter
from asm.errors import AsmError
from asm.paths import data_dir
from asm.registry.db import session_scope
from asm.registry.models import Result, Run
from asm.runs import load_run, run_info


@app.command("ood-targets")
def ood_targets_cmd(
    out: Path | None = typer.Option(None, "--out", "-o",
                                       help="Directory for the targets (default: <data dir>/targets/ood)."),
    soundfont: Path = typer.Option(Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "--soundfont",
                                   help="A General MIDI SoundFont (Debian fluid-soundfont-gm)."),
    sr: int = typer.Option(44100, "--sr", callback=choices.sample_rate, help="Sample rate of the written files: "
                           "16000, 22050, 44100 or 48000."),
    duration: float = typer.Option(2.0, "--duration", callback=choices.seconds, help="Seconds per target."),
    note_off: float = typer.Option(1.5, "--note-off", callback=choices.seconds,
                                   help="Seconds until the notes are released."),
    force: bool = typer.Option(False, "--force", help="Render again even when the set is up to date."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Render out-of-domain benchmark targets: 32 real instrument notes and 16 chords from a GM SoundFont.

    Needs pyfluidsynth (pip install -e '.[ood]') and Debian's libfluidsynth3 and fluid-soundfont-gm
    (make system-deps); `make ood-targets` does both. Benchmarks use the set when it is present.
    """
    from rich.progress import Progress

    directory = out or default_dir()
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("rendering targets", total=None)
        manifest = make_ood_targets(directory, soundfont=soundfont, sample_rate=sr, duration=duration,
                                    note_off=note_off, force=force,
                                    progress=lambda n, total: bar.update(task, completed=n, total=total))
    if as_json:
        typer.echo(json.dumps({**manifest, "directory": str(directory)}))
        return
    counts = {s: sum(t["set"] == s for t in manifest["targets"]) for s in ("mono", "poly")}
    verb = "already up to date" if manifest["outcome"] == "up to date" else "wrote"
    console.print(f"{verb}: {counts['mono']} mono notes and {counts['poly']} chords in [bold]{directory}[/bold] "
                  f"({manifest['sample_rate']} Hz, {manifest['duration']:g} s, note-off {manifest['note_off']:g} s; "
                  f"manifest.json lists programs and notes)")


def _run_rows(kind: str | None, limit: int) -> list[dict]:
    with session_scope() as session:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if kind:
            query = query.where(Run.kind == kind)
        runs = session.scalars(query).all()
        counts = dict(session.execute(
            select(Result.run_id, func.count()).where(Result.run_id.in_([r.id for r in runs])).group_by(Result.run_id)
        ).all())
        methods = dict(session.execute(
            select(Result.run_id, func.count(func.distinct(Result.method)))
            .where(Result.run_id.in_([r.id for r in runs])).group_by(Result.run_id)
        ).all())
        return [{**run_info(r, session), "results": int(counts.get(r.id, 0)), "methods": int(methods.get(r.id, 0))}
                for r in runs]


def _compare_tables(a: dict, sa: list[dict], b: dict, sb: list[dict]) -> list:
    """Per target set: each method's medians in run A and run B side by side, with the change."""
    from rich import box
    from rich.table import Table

    from asm.audio.metrics import REPORT_METRICS
    from asm.bench.summary import (
        METRIC_SHORT,
        TABLE_CAPTION,
        TARGET_SET_TITLES,
        fmt,
        fmt_count,
        fmt_seconds,
        method_rank,
        target_set_rank,
    )

    def cell(x, y, fmt_one=fmt, lower_better=True):
        if x is None and y is None:
            return "–"
        if x is None or y is None:
            return f"{fmt_one(x)} → {fmt_one(y)}"
        change = ""
        if x:
            pct = 100.0 * (y - x) / abs(x)
            better = (pct < 0) == lower_better
            colour = "green" if better and abs(pct) >= 0.5 else ("red" if abs(pct) >= 0.5 else "dim")
            change = f"\n[{colour}]{pct:+.0f}%[/{colour}]"
        return f"{fmt_one(x)} → {fmt_one(y)}{change}"

    index_a = {(e["target_set"], e["method"]): e for e in sa}
    index_b = {(e["target_set"], e["method"]): e for e in sb}
    sets = sorted({k[0] for k in index_a} | {k[0] for k in index_b}, key=target_set_rank)
    tables = []
    for ts in sets:
        methods = sorted({k[1] for k in index_a if k[0] == ts} | {k[1] for k in index_b if k[0] == ts},
                         key=method_rank)
        table = Table(title=f"run {a['id']} → run {b['id']}: {TARGET_SET_TITLES.get(ts, ts)}",
                      caption="medians (seconds: mean per target), run A → run B, change below. " + TABLE_CAPTION,
                      caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("method", no_wrap=True)
        table.add_column("n", justify="right")
        for m in REPORT_METRICS:
            table.add_column(METRIC_SHORT.get(m, m), justify="right")
        table.add_column("renders", justify="right")
        table.add_column("s/tgt", justify="right")
        for method in methods:
            ea, eb = index_a.get((ts, method)), index_b.get((ts, method))

            def med(e, m):
                return e["metrics"][m]["median"] if e and e["metrics"].get(m) else None

            row = [method, f"{ea['n'] if ea else 0}/{eb['n'] if eb else 0}"]
            row += [cell(med(ea, m), med(eb, m)) for m in REPORT_METRICS]
            row.append(cell(ea["renders"]["median"] if ea and ea["renders"] else None,
                            eb["renders"]["median"] if eb and eb["renders"] else None, fmt_count))
            row.append(cell(ea["seconds"]["mean"] if ea and ea["seconds"] else None,
                            eb["seconds"]["mean"] if eb and eb["seconds"] else None, fmt_seconds))
            table.add_row(*row)
        tables.append(table)
    return tables


@app.command("results")
def results_cmd(
    run: int | None = typer.Option(None, "--run", "-r", min=1, help="Show this run's summary table per target set."),
    compare: tuple[int, int] | None = typer.Option(None, "--compare", help="Two run ids side by side: A B."),
    kind: choices.RunKind | None = typer.Option(None, "--kind", help="List only runs of this kind."),
    limit: int = typer.Option(30, "--limit", min=1, help="Most recent runs listed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, show one run's summary (median, mean ± 95% CI per method and target set), or compare two."""
    from rich import box
    from rich.table import Table

    from asm.bench.summary import fmt_seconds, reach_summary, reach_text, summarise, summary_tables

    if run is not None and compare:
        raise AsmError("give --run or --compare, not both")
    if compare:
        (a, ra), (b, rb) = load_run(compare[0]), load_run(compare[1])
        sa, sb = summarise(ra), summarise(rb)
        if as_json:
            typer.echo(json.dumps({"runs": [a, b], "summaries": [sa, sb]}))
            return
        for table in _compare_tables(a, sa, b, sb):
            console.print(table)
        return
    if run is not None:
        info, records = load_run(run)
        summary = summarise(records)
        reach = reach_summary(records)
        if as_json:
            typer.echo(json.dumps({"run": info, "summary": summary, "reach": reach}))
            return
        wall = fmt_seconds(info["wall_seconds"]) if info["wall_seconds"] is not None else "–"
        console.print(f"[bold]run {info['id']}[/bold] {info['kind']} {info['name']!r}: {info['status']}, "
                      f"synth {info['synth'] or '–'}, seed {info['seed']}, wall time {wall}, {len(records)} results")
        if not records:
            console.print("no results stored yet")
        for table in summary_tables(summary, title=f"run {info['id']}", width=console.width):
            console.print(table)
        for entry in reach:
            console.print(f"{entry['target_set']}: {reach_text(entry)}")
        if info["report_path"]:
            console.print(f"report: {data_dir() / info['report_path']}")
        return
    rows = _run_rows(kind.value if kind is not None else None, limit)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print("no runs yet: make mono-benchmark, asm match or asm test-model create them")
        return
    table = Table(title="runs, newest first (asm results --run ID shows one)", box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("id", "right"), ("kind", "left"), ("name", "left"), ("status", "left"),
                         ("synth", "left"), ("rows", "right"), ("started", "left"), ("wall", "right")):
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col != "name")
    for r in rows:
        started = (r["started_at"] or "")[5:16].replace("T", " ")
        table.add_row(str(r["id"]), r["kind"], r["name"], r["status"], r["synth"] or "–", str(r["results"]), started,
                      fmt_seconds(r["wall_seconds"]) if r["wall_seconds"] is not None else "–")
    console.print(table)


@app.command("report")
def report_cmd(
    run: int = typer.Argument(..., min=1, help="Run id (asm results lists them)."),
    media_limit: int = typer.Option(32, "--media-limit", min=0,
                                    help="Targets per target set drawn with spectrograms."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write (or rewrite) a run's HTML report from its registry rows and print its path."""
    from asm.bench.report import write_report

    path = write_report(run, media_limit=media_limit)
    if as_json:
        typer.echo(json.dumps({"run": run, "report": str(path)}))
        return
    console.print(f"report: [bold]{path}[/bold]")


@app.command("benchmark")
def benchmark_cmd(
    mode: choices.Mode = typer.Option(choices.Mode.mono, "--mode", help="mono (one note per target) or poly "
                                      "(chords, sequences)."),
    synth: str = typer.Option("asm-sub", "--synth", "-s", help="asm-sub or amsynth."),
    params: choices.FreeParams = typer.Option(choices.FreeParams.p32, "--params",
                                              help="Free parameters of the set-up (asm-sub has 30)."),
    models: str = typer.Option("", "--models", help="Model configs to train, e.g. 'cnn,flow' (default: the scale's)."),
    scale: choices.Scale = typer.Option(choices.Scale.small, "--scale", help="small (20 min on 2 cores), medium "
                                        "(120,000 examples, 45 min on 2 cores) or paper (AutoSoundMatch's set-up)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the dataset, training and every search."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Renders per target of each search "
                                         "(default: the scale's)."),
    targets: int | None = typer.Option(None, "--targets", min=1, help="Held-out test targets (default: the scale's)."),
    ood: bool = typer.Option(True, "--ood/--no-ood", help="Also score the out-of-domain targets when present."),
    ood_dir: Path | None = typer.Option(None, "--ood-dir", help="Out-of-domain targets (default: "
                                           "<data dir>/targets/ood, made by make ood-targets)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render worker processes (auto = number of cores)."),
    device: choices.Device = typer.Option(choices.Device.auto, "--device", help="Training device."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (set-up, dataset, models, methods, "
                                 "targets) and stop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Benchmark every method on the same targets: generate the dataset, train the models, match each
    target with random, nn, every model, NSGA-II (AutoSoundMatch's recipe and asm's) and hybrid,
    store the results, print the table and write the HTML report.

    Finished datasets and models are reused (they are named by their settings), so a second run
    only evaluates.
    """
    from pydantic import ValidationError

    try:
        req = BenchmarkRequest(mode=mode.value, synth=synth, params=int(params), models=parse_models(models),
                               scale=scale.value, seed=seed, budget=budget, test_targets=targets, ood=ood,
                               ood_dir=str(ood_dir) if ood_dir else None)
    except ValidationError as exc:
        raise AsmError(f"invalid benchmark settings: {exc.errors()[0]['msg']}") from None
    resolved = plan(req)
    if as_json and dry_run:
        typer.echo(json.dumps(resolved))
        return
    if not as_json:
        _print_plan(resolved)
    if dry_run:
        return
    from asm.bench.summary import fmt_seconds, reach_text, summary_tables

    with RichReporter(err_console if as_json else console, quiet=as_json) as reporter:
        result = run_benchmark(req, workers=workers, device=device.value, reporter=reporter)
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("run_id", "summary", "reach", "report", "seconds", "notes")}))
        return
    for table in summary_tables(result["summary"], title=f"run {result['run_id']}", width=console.width):
        console.print(table)
    for entry in result["reach"]:
        console.print(f"{entry['target_set']}: {reach_text(entry)}")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"benchmark run {result['run_id']} finished in {fmt_seconds(result['seconds'])}")
    console.print(f"report: [bold]{result['report']}[/bold]")


def _print_plan(p: dict) -> None:
    from rich.table import Table

    req, scale = p["request"], p["scale"]
    table = Table(title=f"benchmark plan: {req['mode']}, {req['synth']} ({p['free_parameters']} free), "
                        f"scale {scale['name']}, seed {req['seed']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("set-up", p["fixture"])
    table.add_row("dataset", f"{p['dataset']['name']} ({scale['dataset_size']:,} examples)")
    table.add_row("models", ", ".join(f"{m['config']} ({m['train']['epochs']} epochs max)" for m in p["models"]) or "–")
    table.add_row("methods", ", ".join(p["methods"]))
    limit = f", {p['search']['time_limit']:g} s" if p["search"]["time_limit"] else ""
    table.add_row("search", f"{p['search']['budget']:,} renders per target{limit}")
    table.add_row("targets", ", ".join(f"{k} {v}" for k, v in p["target_sets"].items()))
    console.print(table)
    for note in p["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
