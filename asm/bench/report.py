"""The HTML report of a run: ``<data dir>/reports/run-<id>/index.html``.

Built from the registry's ``run`` and ``result`` rows alone (layout of ``result.extra`` in
``asm.runs.writer``), so ``asm report RUN`` can rewrite it at any time. The page is one HTML file
with inline CSS and no scripts or external assets; beside it:

* ``img/dist-<set>.png``: each report metric's distribution per method (box plot and points);
* ``img/curves-<set>.png``: quality (median best-so-far headline metric over the targets, with the
  interquartile band) against renders and against seconds, from ``extra["curve"]``; methods without
  a curve are one point at their median renders/seconds and median score;
* ``img/spec/<set>/<target>/<method>.png``: a spectrogram thumbnail of the target and of each
  method's match (levels and frequency axis as ``asm.audio.plots``: dB re a full-scale sine, log
  frequency from 30 Hz to Nyquist), one colour scale per target row taken from the target's peak
  level, so a match that is too loud shows saturated;
* the audio files the rows name (normally ``media/`` of the same directory).

Sections: a summary table per target set (``asm.bench.summary``: median, mean ± 95 % CI,
the headline metric in units of the re-render floor, the median noisiness of targets and matches
and the share of matches at least 3x noisier than their target, parameter scores, renders, seconds
per target), the two plots, the set's re-render floor, the noisiness of target and every match per
target (``asm.bench.noisiness``), then one row per target with an
audio player and spectrogram for the target and for every method's match, and the metric
definitions (``asm.audio.metrics.describe``).
"""

from __future__ import annotations

import html
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from asm.atomic import atomic_path, write_text
from asm.audio.metrics import HEADLINE_METRIC, REPORT_METRICS
from asm.audio.plots import FMIN_HZ, save_figure, spectrogram_db
from asm.bench.noisiness import MATCH_KEY, NOISIER_RATIO, TARGET_KEY, noisiness_ratio
from asm.bench.rerender_floor import floor_text
from asm.bench.summary import (
    METRIC_LABELS,
    METRIC_SHORT,
    TARGET_SET_TITLES,
    fmt,
    fmt_ci,
    fmt_count,
    fmt_seconds,
    fmt_share,
    method_rank,
    reach_summary,
    reach_text,
    summarise,
    target_sets,
)
from asm.errors import AsmError
from asm.paths import ensure_dir
from asm.registry.db import session_scope
from asm.registry.models import Run
from asm.runs import data_relative, load_run, report_dir, resolve_data_path, slug

HEADLINE = HEADLINE_METRIC
THUMB_ROWS = 96  # log-frequency rows of a thumbnail
DEFAULT_MEDIA_LIMIT = 32  # targets per target set drawn with spectrograms


# ---- helpers --------------------------------------------------------------------------------------

def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _href(path: Path, base: Path) -> str:
    return quote(os.path.relpath(path, base).replace(os.sep, "/"))


def _note_name(pitch: int) -> str:
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def _notes_text(notes) -> str:
    if not notes:
        return ""
    pitches = sorted({int(n[0]) for n in notes})
    text = " ".join(_note_name(p) for p in pitches[:8]) + (" …" if len(pitches) > 8 else "")
    return f"{len(notes)} note{'s' if len(notes) != 1 else ''}: {text}" if len(notes) > 1 else text


def _read_mono(path: Path) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError):
        return None
    return audio.mean(axis=1), int(rate)


def _palette(methods: Sequence[str]) -> dict[str, str]:
    colours = ("#6b7280", "#0ea5e9", "#8b5cf6", "#f59e0b", "#ef4444", "#10b981", "#ec4899", "#14b8a6",
               "#a3a3a3", "#84cc16", "#f97316", "#6366f1")
    return {m: colours[i % len(colours)] for i, m in enumerate(methods)}


# ---- pictures ---------------------------------------------------------------------------------------

def _log_spectrogram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(THUMB_ROWS, frames) dB levels on a log-frequency axis (30 Hz .. Nyquist), as asm.audio.plots."""
    _, freqs, level = spectrogram_db(audio, sample_rate)
    rows = np.geomspace(FMIN_HZ, sample_rate / 2, THUMB_ROWS)
    idx = np.interp(rows, freqs, np.arange(len(freqs)))
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, len(freqs) - 1)
    w = (idx - lo)[:, None]
    return level[lo] * (1 - w) + level[hi] * w


def _save_thumbnail(level: np.ndarray, path: Path, vmin: float, vmax: float, frames: int) -> None:
    """A PNG of a log-frequency spectrogram (low frequencies at the bottom), written atomically."""
    import matplotlib.image

    if level.shape[1] < frames:  # shorter than the target: pad with the floor so time axes line up
        level = np.pad(level, ((0, 0), (0, frames - level.shape[1])), constant_values=vmin)
    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, level[:, :frames], cmap="magma", vmin=vmin, vmax=vmax, origin="lower",
                                format="png")


def _figure(width: float, height: float, ncols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _style(ax) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _log_axis(ax, which: str) -> None:
    """A log axis (``which``: x or y) labelled 1, 2, 5, 10, 20, ... in plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _distribution_plot(records: list[dict], methods: list[str], colours: dict[str, str], path: Path) -> None:
    """Box plots with the points of each report metric, one box per method."""
    fig, axes = _figure(3.1 * len(REPORT_METRICS), 3.6, len(REPORT_METRICS))
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes, REPORT_METRICS):
        data = [np.array([r["metrics"].get(metric, np.nan) for r in records if r["method"] == m], float)
                for m in methods]
        data = [d[np.isfinite(d)] for d in data]
        positions = np.arange(len(methods))
        box = ax.boxplot([d if d.size else [np.nan] for d in data], positions=positions, widths=0.6,
                         showfliers=False, patch_artist=True, medianprops={"color": "#111827", "linewidth": 1.6})
        for patch, m in zip(box["boxes"], methods):
            patch.set_facecolor(colours[m] + "40")
            patch.set_edgecolor(colours[m])
        for i, (d, m) in enumerate(zip(data, methods)):
            ax.scatter(i + rng.uniform(-0.18, 0.18, d.size), d, s=9, color=colours[m], alpha=0.75, linewidths=0,
                       zorder=3)
        values = np.concatenate([d for d in data if d.size]) if any(d.size for d in data) else np.array([1.0])
        positive = values[values > 0]
        if positive.size and positive.max() / max(positive.min(), 1e-12) > 30:
            _log_axis(ax, "y")
        ax.set_xticks(positions, methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(METRIC_LABELS.get(metric, metric) + " (lower is better)", fontsize=10)
        _style(ax)
    save_figure(fig, path)


def _step_median(curves: list[np.ndarray], grid: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and quartiles over targets of best-so-far step functions sampled on ``grid``.

    Each curve is (k, 3) [renders, seconds, best]; ``column`` picks the x axis (0 renders,
    1 seconds). A target counts from its first point on; the median is drawn where at least half
    of the targets have a value.
    """
    values = np.full((len(curves), len(grid)), np.nan)
    for i, c in enumerate(curves):
        x = c[:, column]
        pos = np.searchsorted(x, grid, side="right") - 1
        ok = pos >= 0
        values[i, ok] = c[pos[ok], 2]
    enough = np.sum(np.isfinite(values), axis=0) >= max(1, len(curves) / 2)
    with np.errstate(all="ignore"), _quiet_nan():
        med = np.nanmedian(values, axis=0)
        q1 = np.nanpercentile(values, 25, axis=0)
        q3 = np.nanpercentile(values, 75, axis=0)
    med[~enough] = q1[~enough] = q3[~enough] = np.nan
    return med, q1, q3


class _quiet_nan:
    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def _curve_of(r: dict) -> np.ndarray | None:
    """A record's curve as an array (k, 3), extended to its final renders/seconds and score."""
    curve = r["extra"].get("curve")
    if not curve:
        return None
    c = np.asarray(curve, dtype=np.float64).reshape(-1, 3)
    c = c[np.argsort(c[:, 0], kind="stable")]
    c[:, 2] = np.minimum.accumulate(c[:, 2])
    last = [max(float(r["renders"]), c[-1, 0]), max(float(r["seconds"]), c[-1, 1]), c[-1, 2]]
    return np.vstack([c, last])


def _curves_plot(records: list[dict], methods: list[str], colours: dict[str, str], path: Path) -> bool:
    """Quality against renders and against seconds; False when there is nothing to draw."""
    fig, axes = _figure(11.5, 3.9, 2)
    drew = False
    for ax, column, label in ((axes[0], 0, "renders"), (axes[1], 1, "seconds")):
        for m in methods:
            rows = [r for r in records if r["method"] == m]
            curves = [c for c in (_curve_of(r) for r in rows) if c is not None]
            if curves:
                top = max(float(c[-1, column]) for c in curves)
                bottom = min(float(c[0, column]) for c in curves)
                if top <= 0:
                    continue
                grid = np.geomspace(max(bottom, 1e-3 if column else 1.0), max(top, 1.0 if not column else 1e-3), 120)
                med, q1, q3 = _step_median(curves, grid, column)
                ax.plot(grid, med, color=colours[m], linewidth=2, label=m, drawstyle="steps-post")
                ax.fill_between(grid, q1, q3, color=colours[m], alpha=0.12, step="post", linewidth=0)
                drew = True
            else:
                xs = np.array([r["renders"] if column == 0 else r["seconds"] for r in rows], float)
                ys = np.array([r["metrics"].get(HEADLINE, np.nan) for r in rows], float)
                ok = np.isfinite(ys) & (xs > 0)
                if ok.any():
                    ax.scatter([np.median(xs[ok])], [np.median(ys[ok])], s=60, color=colours[m], marker="D",
                               edgecolors="#111827", linewidths=0.6, zorder=4, label=m)
                    drew = True
        _log_axis(ax, "x")
        ax.set_xlabel(label + " (log scale)")
        ax.set_ylabel(f"median best {HEADLINE} so far")
        ax.set_title(f"quality against {label}", fontsize=10)
        _style(ax)
    if drew:
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            axes[1].legend(handles, labels, fontsize=8, frameon=False, loc="upper right")
        save_figure(fig, path)
    return drew


# ---- page -------------------------------------------------------------------------------------------

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#ffffff; --accent:#2563eb;
        --best:#059669; --bestbg:#ecfdf5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#0f172a; color:#f8fafc; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:650; letter-spacing:.2px; }
header .sub { color:#cbd5e1; margin:0; }
header .chips { margin-top:10px; display:flex; flex-wrap:wrap; gap:6px; }
.chip { background:#1e293b; color:#e2e8f0; border-radius:999px; padding:2px 10px; font-size:12px; }
.chip.ok { background:#065f46; } .chip.bad { background:#7f1d1d; } .chip.run { background:#92400e; }
nav { position:sticky; top:0; z-index:5; background:#ffffffee; border-bottom:1px solid var(--line);
      padding:8px 32px; display:flex; gap:18px; flex-wrap:wrap; backdrop-filter: blur(4px); }
nav a { color:var(--accent); text-decoration:none; font-size:13px; }
main { padding:8px 32px 48px; max-width:1800px; }
section { margin-top:28px; }
h2 { font-size:18px; margin:0 0 10px; font-weight:650; }
h2 .count, h3 .count { color:var(--muted); font-weight:400; font-size:14px; margin-left:6px; }
h3 { font-size:15px; margin:22px 0 8px; font-weight:600; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px;
        box-shadow:0 1px 2px #0000000a; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; }
table.summary th, table.summary td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right;
                                      white-space:nowrap; }
table.summary th { font-size:12px; color:var(--muted); font-weight:600; background:#f9fafb; }
table.summary th.group { text-align:center; color:var(--ink); border-bottom:1px solid #d1d5db; }
table.summary td.method, table.summary th.method { text-align:left; }
table.summary td .ci { color:var(--muted); font-size:12px; }
td.best { color:var(--best); font-weight:700; background:var(--bestbg); }
td.noisy { color:#b91c1c; font-weight:700; background:#fef2f2; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:3px; margin-right:7px;
          vertical-align:baseline; }
.note { color:var(--muted); font-size:12px; margin:8px 0 0; }
figure { margin:14px 0 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:8px; background:#fff; }
figcaption { color:var(--muted); font-size:12px; margin-top:4px; }
table.targets { border-collapse:separate; border-spacing:0; }
table.targets th { position:sticky; top:0; background:#f9fafb; font-size:12px; color:var(--muted);
                   text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
table.targets td { vertical-align:top; padding:4px; border-bottom:1px solid var(--line); min-width:224px; }
table.targets td.target { background:#f8fafc; border-right:1px solid var(--line); }
.cell .name { font-weight:600; font-size:13px; word-break:break-all; }
.cell .score { font-size:13px; margin:2px 0 4px; }
.cell .score b { font-size:15px; }
.cell .small { color:var(--muted); font-size:11.5px; }
.cell { padding:6px 8px; border-radius:8px; border:2px solid transparent; }
.cell.best { border-color:var(--best); background:var(--bestbg); }
.cell img.spec { display:block; width:200px; height:86px; border-radius:4px; margin:4px 0; background:#000;
                 image-rendering:auto; }
.cell audio { width:200px; height:32px; display:block; }
dl.defs { display:grid; grid-template-columns:max-content 1fr; gap:6px 16px; margin:0; }
dl.defs dt { font-weight:600; } dl.defs dd { margin:0; color:#374151; }
pre { background:#0f172a; color:#e2e8f0; padding:12px; border-radius:8px; overflow:auto; font-size:12px; }
details summary { cursor:pointer; color:var(--accent); }
.legend-bar { display:inline-block; width:120px; height:10px; vertical-align:middle; border-radius:2px;
              background:linear-gradient(90deg,#000004,#3b0f70,#8c2981,#de4968,#fe9f6d,#fcfdbf); margin:0 6px; }
"""


def _status_chip(status: str) -> str:
    cls = {"complete": "ok", "failed": "bad", "interrupted": "bad", "running": "run"}.get(status, "")
    return f'<span class="chip {cls}">{_e(status)}</span>'


def _summary_table(entries: list[dict], colours: dict[str, str]) -> str:
    has_mae = any(e["param_mae"] for e in entries)
    has_acc = any(e["param_accuracy"] for e in entries)
    head1 = ['<th class="method" rowspan="2">method</th>', '<th rowspan="2">targets</th>']
    head2 = []
    relative_shown = any(e.get("relative_floor") for e in entries)
    noisy_shown = any((e.get("noisiness") or {}).get("n") for e in entries)
    for m in REPORT_METRICS:
        head1.append(f'<th class="group" colspan="2">{_e(METRIC_LABELS.get(m, m))}</th>')
        head2 += ["<th>median</th>", "<th>mean ± CI</th>"]
        if m == HEADLINE and relative_shown:
            head1.append('<th rowspan="2" title="median perceptual distance / re-render floor">× re-render<br>'
                         'floor</th>')
    if noisy_shown:
        head1.append('<th class="group" colspan="3">noisiness (spectral flatness)</th>')
        head2 += ["<th>target</th>", "<th>match</th>", f"<th>≥{NOISIER_RATIO:g}× noisier</th>"]
    if has_mae:
        head1.append('<th rowspan="2">param MAE</th>')
    if has_acc:
        head1.append('<th rowspan="2">param accuracy</th>')
    head1 += ['<th rowspan="2">renders<br>(median)</th>', '<th rowspan="2">seconds<br>per target</th>']
    rows = []
    for e in entries:
        swatch = f'<span class="swatch" style="background:{colours[e["method"]]}"></span>'
        cells = [f'<td class="method">{swatch}{_e(e["method"])}</td>', f'<td>{e["n"]}</td>']
        for m in REPORT_METRICS:
            stat = e["metrics"].get(m)
            best = ' class="best"' if m in e["best"] else ""
            cells.append(f"<td{best}>{fmt(stat['median']) if stat else '–'}</td>")
            cells.append(f'<td><span class="ci">{_e(fmt_ci(stat))}</span></td>')
            if m == HEADLINE and relative_shown:
                rel = e.get("relative_floor")
                cells.append(f"<td>{fmt(rel['median']) if rel else '–'}</td>")
        if noisy_shown:
            cells += _noisiness_cells(e.get("noisiness") or {})
        for key, shown in (("param_mae", has_mae), ("param_accuracy", has_acc)):
            if shown:
                stat = e[key]
                best = ' class="best"' if key in e["best"] else ""
                cells.append(f"<td{best}>{fmt(stat['mean']) if stat else '–'}</td>")
        cells.append(f"<td>{fmt_count(e['renders']['median']) if e['renders'] else '–'}</td>")
        cells.append(f"<td>{_e(fmt_seconds(e['seconds']['mean']) if e['seconds'] else '–')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="summary"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def _noisiness_cells(noise: dict) -> list[str]:
    """Median target and match noisiness and the share of matches >= 3x noisier (summary table)."""
    cells = [f"<td>{fmt(noise[k]['median']) if noise.get(k) else '–'}</td>" for k in ("target", "match")]
    return cells + [f"<td>{_e(fmt_share(noise))}</td>"]


def _noisiness_table(records: list[dict], methods: list[str], colours: dict[str, str]) -> str:
    """Per target: its noisiness, then each method's match noisiness and ratio (flagged at >= 3x)."""
    targets: dict[str, dict[str, dict]] = {}
    for r in records:
        targets.setdefault(r["target"], {})[r["method"]] = r
    if not any(TARGET_KEY in r["extra"] for r in records):
        return ""
    head1 = ['<th class="method" rowspan="2">target</th>', '<th rowspan="2">target<br>noisiness</th>']
    head2 = []
    for m in methods:
        head1.append(f'<th class="group" colspan="2"><span class="swatch" style="background:{colours[m]}"></span>'
                     f'{_e(m)}</th>')
        head2 += ["<th>match</th>", "<th>× target</th>"]
    rows = []
    for target, by_method in targets.items():
        first = next(iter(by_method.values()))
        label = first["extra"].get("target_label") or target
        cells = [f'<td class="method">{_e(label)}</td>', f"<td>{fmt(first['extra'].get(TARGET_KEY))}</td>"]
        for m in methods:
            extra = (by_method.get(m) or {}).get("extra") or {}
            ratio = noisiness_ratio(extra)
            flag = ' class="noisy"' if ratio is not None and ratio >= NOISIER_RATIO else ""
            cells.append(f"<td>{fmt(extra.get(MATCH_KEY))}</td>")
            cells.append(f"<td{flag}>{fmt(ratio) + '×' if ratio is not None else '–'}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<h3>Noisiness per target<span class="count">gated spectral flatness (0 = pure partials, 1 = white '
            f'noise) of the target and of each match; × target = match / target, red at ≥{NOISIER_RATIO:g}×'
            f'</span></h3><div class="card scroll"><table class="summary noisiness"><thead><tr>{"".join(head1)}</tr>'
            f'<tr>{"".join(head2)}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _audio_tag(path: Path | None, base: Path) -> str:
    if path is None:
        return '<div class="small">no audio</div>'
    return f'<audio controls preload="metadata" src="{_href(path, base)}"></audio>'


def _img_tag(path: Path | None, base: Path, alt: str, link: Path | None = None) -> str:
    if path is None:
        return ""
    img = f'<img class="spec" src="{_href(path, base)}" alt="{_e(alt)}">'
    return f'<a href="{_href(link, base)}">{img}</a>' if link is not None else img


def write_report(run_id: int, *, media_limit: int = DEFAULT_MEDIA_LIMIT, title: str | None = None) -> Path:
    """Write (or rewrite) the run's HTML report from its registry rows; returns the index.html path.

    ``media_limit``: targets per target set drawn with spectrogram thumbnails (every target still
    gets its scores and audio players).
    """
    run, records = load_run(run_id)
    if not records:
        raise AsmError(f"run {run_id} has no results yet: nothing to report")
    out = ensure_dir(report_dir(run_id))
    img = ensure_dir(out / "img")
    summary = summarise(records)
    reach = {e["target_set"]: e for e in reach_summary(records)}
    methods = sorted({r["method"] for r in records}, key=method_rank)
    colours = _palette(methods)
    sets = target_sets(summary)

    parts: list[str] = []
    for target_set in sets:
        sub = [r for r in records if r["target_set"] == target_set]
        set_methods = [m for m in methods if any(r["method"] == m for r in sub)]
        key = slug(target_set)
        entries = [e for e in summary if e["target_set"] == target_set]
        n_targets = len({r["target"] for r in sub})
        _distribution_plot(sub, set_methods, colours, img / f"dist-{key}.png")
        has_curves = _curves_plot(sub, set_methods, colours, img / f"curves-{key}.png")
        label = TARGET_SET_TITLES.get(target_set, target_set)
        parts.append(f'<section id="set-{_e(key)}"><h2>{_e(label)}<span class="count">{n_targets} targets · '
                     f'{len(set_methods)} methods</span></h2><div class="card">')
        parts.append(_summary_table(entries, colours))
        parts.append('<p class="note">Lower is better for every distance; the best median per column is '
                     'highlighted. Mean ± half-width of its 95% confidence interval (Student t). Parameter scores '
                     'only where the true preset is known (MAE over continuous, accuracy over discrete free '
                     'parameters, normalised units).</p>')
        parts.append(f'<p class="note floor">{_e(floor_text(entries[0].get("rerender_floor")))}.</p>')
        parts.append(f'<figure><img src="img/dist-{_e(key)}.png" alt="metric distributions, {_e(label)}">'
                     '<figcaption>Distribution over targets of each metric per method (box: quartiles and '
                     'median; dots: targets).</figcaption></figure>')
        if has_curves:
            parts.append(f'<figure><img src="img/curves-{_e(key)}.png" alt="quality against renders and seconds, '
                         f'{_e(label)}"><figcaption>Median over targets of the best {HEADLINE} distance found so far (band: '
                         'interquartile range) against renders and seconds spent; methods without a search are '
                         'one point (diamond) at their median cost and score.</figcaption></figure>')
        if target_set in reach:
            parts.append(f'<p class="note reach">{_e(reach_text(reach[target_set]))}.</p>')
        parts.append("</div>")
        parts.append(_noisiness_table(sub, set_methods, colours))
        parts.append(_targets_table(sub, set_methods, colours, out, img / "spec" / key, media_limit))
        parts.append("</section>")

    defs = _metric_definitions()
    settings = json.dumps(run["settings"], indent=1, sort_keys=True, default=str)
    chips = _run_chips(run)
    heading = title or f"asm {run['kind']} · run {run['id']}" + (f" · {run['name']}" if run["name"] else "")
    nav = "".join(f'<a href="#set-{_e(slug(s))}">{_e(TARGET_SET_TITLES.get(s, s))}</a>' for s in sets)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(heading)}</title><style>{CSS}</style></head>
<body>
<header><h1>{_e(heading)}</h1>
<p class="sub">{len(methods)} methods on {len({(r['target_set'], r['target']) for r in records})} targets in
{len(sets)} target set{'s' if len(sets) != 1 else ''}: every method scored against the same targets,
rendered with the targets' own notes.</p>
<div class="chips">{''.join(chips)}</div></header>
<nav>{nav}<a href="#metrics">metrics</a><a href="#settings">settings</a></nav>
<main>
{''.join(parts)}
<section id="metrics"><h2>Metrics</h2><div class="card"><dl class="defs">{defs}</dl>
<p class="note">Spectrograms: 64 ms Hann window, log frequency from 30 Hz (bottom) to Nyquist (top), level in dB
re a full-scale sine, 80 dB range <span class="legend-bar"></span> from the target's peak level down; each row
shares the target's colour scale.</p></div></section>
<section id="settings"><h2>Settings</h2><div class="card"><details><summary>run settings (JSON)</summary>
<pre>{_e(settings)}</pre></details></div></section>
</main></body></html>
"""
    index = write_text(out / "index.html", page)
    _record_report_path(run_id, index)
    return index


def _record_report_path(run_id: int, index: Path) -> None:
    with session_scope() as session:
        session.get(Run, int(run_id)).report_path = data_relative(index)


def _metric_definitions() -> str:
    """The metrics section's definition list: each metric, its unit and its worst score."""
    from asm.audio.metrics import describe as describe_metrics

    return "".join(f"<dt>{_e(d['name'])}{(' (' + _e(d['unit']) + ')') if d['unit'] else ''}</dt>"
                   f"<dd>{_e(d['definition'])}; worst (unusable render) = {d['worst']:g}</dd>"
                   for d in describe_metrics(REPORT_METRICS))


def _run_chips(run: dict) -> list[str]:
    """The header's chips: status, kind, synth, seed, wall time, start and code version."""
    wall = fmt_seconds(run["wall_seconds"]) if run["wall_seconds"] is not None else "still running"
    chips = [_status_chip(run["status"])]
    for text in (run["kind"], run["synth"], f"seed {run['seed']}", wall, f"started {run['started_at']}",
                 f"code {run['code_version']}" if run["code_version"] else None):
        if text:
            chips.append(f'<span class="chip">{_e(text)}</span>')
    return chips


def _targets_table(records: list[dict], methods: list[str], colours: dict[str, str], out: Path,
                   spec_dir: Path, media_limit: int) -> str:
    targets: dict[str, dict[str, dict]] = {}
    for r in records:
        targets.setdefault(r["target"], {})[r["method"]] = r
    head = "".join(f'<th><span class="swatch" style="background:{colours[m]}"></span>{_e(m)}</th>' for m in methods)
    rows = []
    for n, (target, by_method) in enumerate(targets.items()):
        first = next(iter(by_method.values()))
        draw = n < media_limit
        tdir = ensure_dir(spec_dir / slug(target, 80)) if draw else None
        target_path = _existing(first["extra"].get("target_audio"))
        sr_frames = None
        vmin = vmax = 0.0
        target_img = None
        if draw and target_path is not None:
            loaded = _read_mono(target_path)
            if loaded is not None:
                level = _log_spectrogram(*loaded)
                vmax = float(np.ceil(level.max() / 10.0) * 10.0)
                vmin = vmax - 80.0
                sr_frames = level.shape[1]
                target_img = tdir / "target.png"
                _save_thumbnail(level, target_img, vmin, vmax, sr_frames)
        label = first["extra"].get("target_label") or target
        info = _notes_text(first.get("notes"))
        cells = [(f'<td class="target"><div class="cell"><div class="name">{_e(label)}</div>'
                  f'<div class="small">{_e(info)}</div>{_img_tag(target_img, out, "target spectrogram")}'
                  f'{_audio_tag(target_path, out)}</div></td>')]
        scores = {m: r["metrics"].get(HEADLINE) for m, r in by_method.items()}
        finite = [v for v in scores.values() if v is not None and np.isfinite(v)]
        best = min(finite) if finite else None
        for m in methods:
            r = by_method.get(m)
            if r is None:
                cells.append('<td><div class="cell small">not run</div></td>')
                continue
            audio_path = _existing(r["extra"].get("audio"))
            picture = _existing(r["extra"].get("picture"))
            img_path = None
            if draw and audio_path is not None and sr_frames is not None:
                loaded = _read_mono(audio_path)
                if loaded is not None:
                    img_path = tdir / f"{slug(m)}.png"
                    _save_thumbnail(_log_spectrogram(*loaded), img_path, vmin, vmax, sr_frames)
            metrics = r["metrics"]
            others = " · ".join(f"{METRIC_SHORT.get(k, k).replace(' dB', '')} {fmt(metrics[k])}"
                                for k in REPORT_METRICS[1:] if k in metrics)
            params = []
            if r.get("param_mae") is not None:
                params.append(f"param MAE {fmt(r['param_mae'])}")
            if r.get("param_accuracy") is not None:
                params.append(f"acc. {fmt(r['param_accuracy'])}")
            cost = f"{r['renders']:,} render{'s' if r['renders'] != 1 else ''} · {fmt_seconds(r['seconds'])}"
            is_best = best is not None and scores.get(m) == best
            cells.append(
                f'<td><div class="cell{" best" if is_best else ""}">'
                f'<div class="score">{METRIC_SHORT.get(HEADLINE, HEADLINE)} <b>{fmt(metrics.get(HEADLINE))}</b></div>'
                f'{_img_tag(img_path, out, f"{m} match spectrogram", picture)}{_audio_tag(audio_path, out)}'
                f'<div class="small">{_e(others)}</div>'
                f'<div class="small">{_e(" · ".join(params + [cost]))}</div></div></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(targets) > media_limit:
        more = (f'<p class="note">Spectrograms are drawn for the first {media_limit} of {len(targets)} targets; '
                'every target has its scores and players.</p>')
    return (f'<h3>Targets<span class="count">one row per target: the target, then each method\'s match '
            f'(best {HEADLINE} distance of the row outlined)</span></h3><div class="card scroll"><table class="targets">'
            f'<thead><tr><th>target</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{more}</div>')


def _existing(text: str | None) -> Path | None:
    if not text:
        return None
    path = resolve_data_path(text)
    return path if path.is_file() else None
