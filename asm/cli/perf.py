"""``asm perf …``: speed benchmarks that print figures (never used as tests)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from asm.cli import choices
from asm.cli.app import app, console, err_console
from asm.errors import AsmError
from asm.midi.notes import held
from asm.models.architectures import trainable
from asm.perf.generate_speed import measure_batch_speed, measure_generate_speed
from asm.perf.match_perf import measure_match
from asm.perf.metric_sanity import AMSYNTH_BANKS, amsynth_factory, rerender_floor, run_metric_sanity
from asm.perf.metric_speed import measure_metric_speed
from asm.perf.render_speed import measure_render_speed
from asm.perf.twin_fidelity import measure_twin
from asm.registry.synth_loader import load_synth
from asm.render import resolve_workers

perf_app = typer.Typer(help="Speed benchmarks: print renders/s, examples/s, samples/s, seconds per match.",
                       no_args_is_help=True)
app.add_typer(perf_app, name="perf")


@perf_app.command("render")
def perf_render(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    duration: float = typer.Option(1.0, "--duration", callback=choices.seconds),
    n: int = typer.Option(500, "--n", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Renders per second of one process through asm, beside the bare DawDreamer call on the same patches."""
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


@perf_app.command("generate")
def perf_generate(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    n: int = typer.Option(2000, "--n", min=1, help="Examples to generate (a temporary dataset, deleted afterwards)."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Worker processes (auto = number of cores)."),
    mode: choices.Mode = typer.Option(choices.Mode.mono, "--mode", help="mono or poly."),
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    duration: float = typer.Option(1.0, "--duration", callback=choices.seconds),
    shard_size: int = typer.Option(None, "--shard-size", min=1, help="Examples per shard (default: auto)."),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dataset generation end to end (render + features + write + commit) beside workers x the bare render rate."""
    r = measure_generate_speed(synth, n, workers, sr, duration, mode.value, seed, shard_size=shard_size)
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"dataset generation: {synth}, {n} {mode} examples of {duration:g} s at {sr} Hz, "
                        f"{r['workers']} workers, shards of {r['shard_size']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("end to end (render + features + write + commit)", f"{r['examples_per_s']:.1f} examples/s")
    table.add_row(f"bare render rate, 1 process ({r['bare_label']})",
                  f"{r['bare_rps']:.1f} renders/s (before {r['bare_rps_before']:.0f}, after {r['bare_rps_after']:.0f})")
    table.add_row(f"bare rate x {r['workers']} workers", f"{r['bare_x_workers']:.1f} renders/s")
    table.add_row("ratio end to end / (workers x bare)", f"{100 * r['ratio']:.1f}%")
    ms = r["worker_ms_per_example"]
    table.add_row("worker time per example", ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
    table.add_row("pool start (not in the rate)", f"{r['pool_start_s']:.2f} s")
    table.add_row("rejected renders", str(sum(r["rejections"].values())))
    console.print(table)


@perf_app.command("batch")
def perf_batch(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    population: int = typer.Option(50, "--population", min=1, help="Candidates per batch (a search generation)."),
    generations: int = typer.Option(20, "--generations", min=1),
    workers: str = typer.Option("auto", "--workers", "-j"),
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    duration: float = typer.Option(1.0, "--duration", callback=choices.seconds),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Batches of candidates rendered by the worker pool (as a search does) against serial rendering."""
    r = measure_batch_speed(synth, population, generations, workers, sr, duration)
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"batch renders: {synth}, {population} candidates x {generations} generations, "
                        f"{r['workers']} workers, {duration:g} s at {sr} Hz")
    table.add_column("path")
    table.add_column("ms per generation", justify="right")
    table.add_row("one process, serial", f"{r['serial_ms']:.1f}")
    table.add_row(f"ideal: serial / {r['workers']}", f"{r['ideal_ms']:.1f}")
    table.add_row("worker pool", f"{r['pool_ms']:.1f}")
    console.print(table)
    console.print(f"pool efficiency (ideal / pool): {100 * r['efficiency']:.1f}%")


@perf_app.command("metrics")
def perf_metrics(
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    durations: str = typer.Option("1,2", "--durations", help="comma-separated seconds of audio"),
    batch: int = typer.Option(1500, "--batch", min=1, help="candidates scored against one target"),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads (0: torch's default)"),
    chunk: int = typer.Option(0, "--chunk", min=0, help="candidates analysed at once (0: the module default)"),
    repeats: int = typer.Option(3, "--repeats", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Milliseconds per candidate/target pair of every metric and objective set on asm-sub renders."""
    try:
        secs = tuple(float(d) for d in durations.split(","))
    except ValueError:
        raise AsmError(f"--durations must be comma-separated seconds, got {durations!r}") from None
    if not all(choices.MIN_SECONDS <= d <= choices.MAX_SECONDS for d in secs):  # NaN fails too
        raise AsmError(f"--durations must be in [0.01, 600] seconds, got {durations!r}")
    result = measure_metric_speed(sr, secs, batch, repeats=repeats, threads=threads or None, chunk=chunk or None,
                                  seed=seed)
    if as_json:
        typer.echo(json.dumps(result))
        return
    keys = [f"{d:g}s" for d in secs]
    table = Table(title=f"metric speed: {batch} candidates vs one target at {sr} Hz, {result['threads']} torch "
                        f"thread(s), chunk {result['chunk']} (best of {repeats})")
    table.add_column("metric / set", no_wrap=True)
    for k in keys:
        table.add_column(f"{k}: ms/pair", justify="right")
        table.add_column(f"{k}: s per {batch}", justify="right")
    for label, row in result["ms_per_pair"].items():
        table.add_row(label, *[c for k in keys for c in (f"{row[k]:.3f}", f"{row[k] * batch / 1000:.2f}")])
    console.print(table)
    console.print("detect_notes per target: " + ", ".join(f"{k}: {v:.1f} ms" for k, v in result["detect_notes_ms"].items()))


@perf_app.command("match")
def perf_match(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Mono dataset: targets from its test split, "
                                "neighbours from its training split."),
    model: str = typer.Option(None, "--model", help="Trained model for model and hybrid (omit: those "
                              "methods run without it: hybrid seeded by neighbours)."),
    targets: int = typer.Option(32, "--targets", min=1),
    budget: int = typer.Option(1500, "--budget", min=1, help="Renders per search."),
    methods: str = typer.Option(None, "--methods", help="Comma-separated subset of: hybrid, model, nn, "
                                "'nsga2 (autosoundmatch)', 'nsga2 (asm)', gradient, cmaes, proxy, "
                                "'hybrid (proxy)'."),
    proxy: str = typer.Option(None, "--proxy", help="Trained proxy (name or #id) for proxy and 'hybrid (proxy)' "
                              "(default: the synth's newest; without one those methods are left out)."),
    workers: str = typer.Option("auto", "--workers", "-j"),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Matching methods on held-out targets with one render budget: median distance and seconds per target."""
    chosen = [m.strip() for m in methods.split(",")] if methods else None
    with Progress(TextColumn("matching targets"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("", total=targets)
        r = measure_match(dataset, model, targets, budget, chosen, resolve_workers(workers), seed,
                          on_target=lambda done, total, _: progress.update(task, completed=done, total=total),
                          proxy=proxy)
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"match: {len(r['targets'])} test targets of {dataset} ({r['synth']}, "
                        f"{r['duration']:g} s at {r['sample_rate']} Hz), budget {budget} renders, {r['workers']} workers")
    for col in ("method", "median mr-stft", "mean mr-stft", "median perceptual", "median renders", "s/target",
                "max s"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in r["methods"]:
        table.add_row(row["method"], f"{row['median_mr_stft']:.4f}", f"{row['mean_mr_stft']:.4f}",
                      f"{row['median_perceptual']:.4f}",
                      f"{row['median_renders']:.0f}", f"{row['seconds_per_target']:.2f}", f"{row['max_seconds']:.2f}")
    console.print(table)
    reach = r["hybrid_reach"]
    if reach["targets"]:
        med = reach["median_renders"]
        console.print(f"hybrid reached NSGA-II-from-random's final score on {reach['reached']}/{reach['targets']} "
                      f"targets" + (f", after a median {med:.0f} renders ({100 * med / budget:.1f}% of the budget)"
                                    if med is not None else ""))
    if r.get("proxy"):
        console.print(f"proxy and 'hybrid (proxy)' screened by proxy {r['proxy']}", highlight=False)
    console.print(f"pool start {r['pool_start_s']:.1f} s and neighbour index {r['index_s']:.1f} s (once, not in s/target)")


@perf_app.command("train")
def perf_train(
    models: str = typer.Option(None, "--models", help="Comma-separated configs (default: one per trainable "
                               "architecture, named like it)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset to read (default: a 1 s, 16 kHz asm-sub set)."),
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    size: int = typer.Option(2048, "--size", min=1, help="Examples of the default dataset when it is made."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    steps: int = typer.Option(30, "--steps", min=1, help="Timed optimiser steps per model."),
    device: choices.Device = typer.Option(choices.Device.auto, "--device", help="Where to train."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Training samples/s of each model and the data loader's share of the step time."""
    from asm.perf.train_speed import ensure_perf_dataset, measure_train_speed

    name = ensure_perf_dataset(dataset, synth, size, 0)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else list(trainable())
    rows = measure_train_speed(chosen, name, batch_size, steps, device.value)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"training speed on {name} (batch {batch_size}, {steps} steps, {rows[0]['device']})")
    for col in ("model", "parameters", "samples/s", "ms/step", "loader share"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["arch"], f"{r['parameters'] / 1e3:.0f}k", f"{r['samples_per_s']:.0f}",
                      f"{r['ms_per_step']:.1f}", f"{100 * r['loader_share']:.1f}%")
    console.print(table)


@perf_app.command("metric-sanity")
def perf_metric_sanity(
    sources: str = typer.Option("ood,asm-sub,amsynth", "--sources", help="Comma-separated: ood, asm-sub, amsynth."),
    n: int = typer.Option(4, "--n", min=1, help="Sounds per source."),
    targets: str = typer.Option(None, "--targets", help="Out-of-domain target directory (default: the data "
                                "dir's; built when missing)."),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Controlled degradations scored by every metric and objective set: Spearman of strength vs distance
    per family (mean over sounds) and the phase re-render's distance over the smallest step."""
    chosen = tuple(s.strip() for s in sources.split(",") if s.strip())
    r = run_metric_sanity(chosen, n, seed, targets=Path(targets) if targets else None)
    if as_json:
        typer.echo(json.dumps(r))
        return
    fams = list(r["families"])
    table = Table(title=f"metric sanity: {len(r['sounds'])} sounds ({', '.join(chosen)}), Spearman of degradation "
                        "strength vs distance per family (1 = ordered; in brackets: the steps alone, without the "
                        "phase re-render), phase re-render / smallest step")
    table.add_column("metric / set", no_wrap=True)
    for f in fams:
        table.add_column(f"{f} ({r['counts'][f]})", justify="right")
    table.add_column("min", justify="right")
    table.add_column("phase ratio med / max", justify="right")
    for label, row in r["rows"].items():
        table.add_row(label, *[f"{row['spearman'][f]:.2f} ({row['spearman_steps'][f]:.2f})" for f in fams],
                      f"{row['min_spearman']:.2f}",
                      f"{row['phase_ratio']:.2f} / {row['phase_ratio_max']:.2f}")
    console.print(table)
    console.print("steps: " + "; ".join(f"{f}: {', '.join(steps)}" for f, steps in r["families"].items()))


@perf_app.command("rerender-floor")
def perf_rerender_floor(
    synth: str = typer.Option("amsynth", "--synth", "-s", help="A registered synth."),
    presets: int = typer.Option(8, "--presets", min=1, help="Random presets (amsynth: factory presets)."),
    renders: int = typer.Option(4, "--renders", min=2, help="Renders of each preset."),
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The distance between R renders of one preset (a nondeterministic synth's floor: scores below it are luck)."""
    import numpy as np

    s = load_synth(synth, sr)
    try:
        rng = np.random.default_rng(seed)
        if synth == "amsynth" and AMSYNTH_BANKS.is_dir():
            values = np.stack([v for _, v in amsynth_factory(s.space, presets, rng)[:presets]])
        else:
            values = s.space.full(s.space.random_free(rng, presets))
        r = rerender_floor(s, values, held([57], 100, 0.7), 1.0, renders)
    finally:
        s.close()
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"re-render floor: {synth}, {presets} presets x {renders} renders (mean over ordered pairs)")
    for col in ("metric", "median", "max"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m, v in r.items():
        table.add_row(m, f"{v['median']:.4f}", f"{v['max']:.4f}")
    console.print(table)


@perf_app.command("twin")
def perf_twin(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    n: int = typer.Option(500, "--n", min=1, help="Random presets to compare."),
    sr: int = typer.Option(16000, "--sr", callback=choices.sample_rate),
    duration: float = typer.Option(1.0, "--duration"),
    batch: int = typer.Option(32, "--batch", min=1, help="Presets per batched twin render."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    all_voices: bool = typer.Option(False, "--all-voices",
                                    help="Reference: DawDreamer computing every voice always (the DSP's math alone, "
                                         "no early voice freeing; ~9x slower renders)."),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fidelity of the differentiable twin against DawDreamer (MR-STFT), batched renders/s and gradient step time."""
    from asm.models.training import resolve_device

    device = resolve_device(device)
    r = measure_twin(synth, n, sr, duration, seed, batch, device, all_voices)
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"twin vs DawDreamer ({r['reference']}): {synth}, {n} random presets, "
                        f"{duration:g} s at {sr} Hz (MR-STFT)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("median MR-STFT (twin in float64)", f"{r['median']:.4f}")
    table.add_row("90th percentile MR-STFT (twin in float64)", f"{r['p90']:.4f}")
    table.add_row("median MR-STFT (twin in float32)", f"{r['median_float32']:.4f}")
    table.add_row("90th percentile MR-STFT (twin in float32)", f"{r['p90_float32']:.4f}")
    table.add_row(f"batched twin renders/s ({device}, batch {r['batch']}, float32)", f"{r['renders_per_s']:.1f}")
    table.add_row(f"one gradient step ({device}, batch {r['batch']})", f"{r['grad_step_s']:.3f} s")
    console.print(table)
    modules = Table(title="per module (presets isolating one module)")
    for col in ("module", "MR-STFT", "max |error|", "peak"):
        modules.add_column(col, justify="left" if col == "module" else "right")
    for name, m in r["modules"].items():
        modules.add_row(name, f"{m['mr_stft']:.4f}", f"{m['max_abs_error']:.2e}", f"{m['peak']:.3f}")
    console.print(modules)



@perf_app.command("learning-curve")
def perf_learning_curve(
    synth: str = typer.Option("asm-sub", "--synth", "-s"),
    config: str = typer.Option("cnn", "--config", "-c", help="Model config to train at every size."),
    sizes: str = typer.Option("5000,20000,80000", "--sizes", help="Training-set sizes, comma-separated."),
    val: int = typer.Option(1000, "--val", min=1, help="Validation examples (the same for every size)."),
    test: int = typer.Option(200, "--test", min=1, help="Held-out targets scored by ear (the same for every size)."),
    duration: float = typer.Option(1.0, "--duration", callback=choices.seconds),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Maximum epochs (default: the config's)."),
    seed: int = typer.Option(0, "--seed", min=0),
    device: choices.Device = typer.Option(choices.Device.auto, "--device", help="Where to train."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render workers (auto = cores)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validation loss and model-alone median MR-STFT of one config trained at each size, on the same held-out set."""
    from asm.cli.app import err_console
    from asm.perf.learning_curve import learning_curve, parse_sizes

    out = err_console if as_json else console
    r = learning_curve(synth, config, parse_sizes(sizes), val=val, test=test, duration=duration, seed=seed,
                       device=device.value, workers=workers, epochs=epochs,
                       event=lambda text: out.print(f"[dim]{text}[/dim]"))
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"learning curve: {config} on {synth} ({r['val']} val, {r['test']} test targets of "
                        f"{duration:g} s; dataset {r['dataset']})")
    for col in ("train examples", "epochs (best)", "val loss", "mean predictor", "vs mean", "median mr-stft",
                "train s"):
        table.add_column(col, justify="right")
    for row in r["rows"]:
        v, b = row["val_loss"], row["baseline_val_loss"]
        gain = f"{100 * (1 - v / b):+.1f}%" if v is not None and b else "-"
        mr = row["median_mr_stft"]
        table.add_row(str(row["size"]), f"{row['epochs']} ({row['best_epoch']})", f"{v:.4f}" if v is not None else "-",
                      f"{b:.4f}" if b is not None else "-", gain, f"{mr:.4f}" if mr is not None else "-",
                      f"{row['train_seconds']:.0f}")
    console.print(table)


@perf_app.command("ddsp")
def perf_ddsp(
    name: str = typer.Argument(..., help="DDSP model name (asm ddsp train)."),
    seconds: float = typer.Option(10.0, "--seconds", callback=choices.seconds, help="Audio streamed per buffer size."),
    seed: int = typer.Option(0, "--seed", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The exported DDSP model on one CPU core: real-time factor at buffers 128, 512, 2048; latency;
    streaming against offline output."""
    from asm.perf.ddsp import measure

    r = measure(name, seconds, seed=seed)
    if as_json:
        typer.echo(json.dumps(r))
        return
    table = Table(title=f"DDSP {name}: exported model, 1 CPU core, {r['sample_rate']} Hz, {seconds:g} s streamed")
    for col in ("buffer", "real-time factor", "ms per buffer", "max |stream - offline|", "below peak"):
        table.add_column(col, justify="right")
    for b in r["buffers"]:
        table.add_row(str(b["buffer"]), f"{b['rtf']:.1f}x", f"{b['ms_per_buffer']:.2f}", f"{b['max_abs_diff']:.2e}",
                      f"{b['diff_db_below_peak']:.0f} dB")
    console.print(table)
    console.print(f"latency: {r['latency_samples']} samples ({r['latency_ms']:.1f} ms); peak of the output "
                  f"{r['peak']:.3f}")
