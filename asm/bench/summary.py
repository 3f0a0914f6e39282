"""Summary statistics of a run's result rows: the one table every benchmark view shows.

``summarise(records)`` groups result rows by (target set, method) and gives, for each of
``asm.audio.metrics.REPORT_METRICS``: the median, the mean and its 95 % confidence interval
(Student's t: ``mean ± t(0.975, n-1) · s / sqrt(n)``, none for n < 2); the mean parameter MAE and
accuracy where the truth is known; the renders used (median, mean) and the seconds per target
(mean, median, total); the noisiness of targets and matches (``noisiness``: medians, and the
share of matches at least 3x noisier than their target, ``asm.bench.noisiness``); the target
set's re-render floor (``rerender_floor``, ``asm.bench.rerender_floor``) and the headline metric in
units of it (``relative_floor``, None for a deterministic synth). The terminal table (``asm benchmark``, ``asm results``), the HTML report
and ``--json`` all print this structure, so they cannot disagree.

A *record* is a mapping with the keys of a ``result`` row (``method``, ``target_set``, ``target``,
``metrics``, ``param_mae``, ``param_accuracy``, ``renders``, ``seconds``, ...); ``record_of``
turns an ORM row into one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from asm.audio.metrics import HEADLINE_METRIC, REPORT_METRICS
from asm.bench.noisiness import MATCH_KEY, NOISIER_RATIO, TARGET_KEY, noisiness_ratio
from asm.bench.rerender_floor import floor_of, floor_text, relative
from asm.runs.read import record_of  # noqa: F401  (records are read in asm.runs)

# Display order of methods (by name or "name:" prefix) and of target sets; others follow, sorted.
METHOD_ORDER = ("random", "nn", "model", "nsga2-autosoundmatch", "nsga2", "proxy", "hybrid", "gradient", "cmaes")
TARGET_SET_ORDER = ("test", "factory", "ood", "file")
TARGET_SET_TITLES = {
    "test": "in-domain (held-out test split)",
    "factory": "hand-made presets (factory, held out)",
    "ood": "out of domain (real instruments, GM SoundFont)",
    "file": "audio files",
}
METRIC_LABELS = {"perceptual": "perceptual", "mr-stft": "MR-STFT", "noisiness": "noisiness", "log-spectral": "log-spectral (dB)", "mfcc": "MFCC",
                 "spectral-convergence": "spectral conv."}
METRIC_SHORT = {"perceptual": "Perc.", "mr-stft": "MR-STFT", "noisiness": "noise", "log-spectral": "LSD dB", "mfcc": "MFCC", "spectral-convergence": "SC"}
TABLE_CAPTION = ("LSD = log-spectral distance, SC = spectral convergence; lower is better, "
                 "accuracy higher; best in green; Perc. = perceptual (asm's headline metric)")


def method_rank(method: str) -> tuple[int, str]:
    base = method.split(":", 1)[0]
    for i, name in enumerate(METHOD_ORDER):
        if method == name or base == name:
            return i, method
    return len(METHOD_ORDER), method


def target_set_rank(target_set: str) -> tuple[int, str]:
    return (TARGET_SET_ORDER.index(target_set) if target_set in TARGET_SET_ORDER else len(TARGET_SET_ORDER),
            target_set)


def describe(values: Sequence[float]) -> dict | None:
    """n, median, mean, 95 % CI of the mean (t), std of the finite ``values``; None when there are none."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return None
    mean = float(arr.mean())
    out = {"n": n, "median": float(np.median(arr)), "mean": mean, "ci95": None, "std": None,
           "min": float(arr.min()), "max": float(arr.max())}
    if n >= 2:
        from scipy.stats import t

        std = float(arr.std(ddof=1))
        half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci95=[mean - half, mean + half])
    return out


def summarise(records: Iterable[Mapping], metrics: Sequence[str] = REPORT_METRICS) -> list[dict]:
    """One entry per (target set, method), in display order (see the module docstring)."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in records:
        groups.setdefault((r.get("target_set") or "", r["method"]), []).append(r)
    by_set: dict[str, list[Mapping]] = {}
    for (target_set, _), rows in groups.items():
        by_set.setdefault(target_set, []).extend(rows)
    floors = {target_set: floor_of(rows) for target_set, rows in by_set.items()}
    out = []
    for (target_set, method), rows in sorted(groups.items(),
                                             key=lambda kv: (target_set_rank(kv[0][0]), method_rank(kv[0][1]))):
        seconds = [float(r.get("seconds") or 0.0) for r in rows]
        entry = {
            "target_set": target_set,
            "method": method,
            "n": len(rows),
            "metrics": {m: describe([(r.get("metrics") or {}).get(m) for r in rows]) for m in metrics},
            "param_mae": describe([r.get("param_mae") for r in rows]),
            "param_accuracy": describe([r.get("param_accuracy") for r in rows]),
            "renders": describe([r.get("renders") or 0 for r in rows]),
            "seconds": describe(seconds),
            "total_seconds": float(sum(seconds)),
            "noisiness": noisiness_summary(rows),
            "rerender_floor": floors[target_set],
            "relative_floor": describe([relative((r.get("metrics") or {}).get(HEADLINE_METRIC), floors[target_set])
                                        for r in rows]) if floors[target_set] else None,
        }
        out.append(entry)
    _mark_best(out, metrics)
    return out


def noisiness_summary(rows: Sequence[Mapping]) -> dict:
    """Medians of target and match noisiness, and ``noisier``/``n``/``share``: the matches whose
    noisiness ratio is at least ``NOISIER_RATIO`` among the ``n`` results that have both values."""
    extras = [r.get("extra") or {} for r in rows]
    ratios = [x for x in (noisiness_ratio(e) for e in extras) if x is not None]
    noisier = sum(x >= NOISIER_RATIO for x in ratios)
    return {"target": describe([e.get(TARGET_KEY) for e in extras]), "match": describe([e.get(MATCH_KEY) for e in extras]),
            "ratio": describe(ratios), "noisier": int(noisier), "n": len(ratios),
            "share": noisier / len(ratios) if ratios else None}


def fmt_share(noise: Mapping | None) -> str:
    """``12% (3/25)`` of a ``noisiness_summary``; – without data."""
    if not noise or not noise.get("n"):
        return "–"
    return f"{100 * noise['share']:.0f}% ({noise['noisier']}/{noise['n']})"


def renders_to_reach(curve: Sequence[Sequence[float]] | None, score: float) -> int | None:
    """Renders after which a best-so-far curve ``[[renders, seconds, best], ...]`` is at or below ``score``."""
    for renders, _, best in curve or []:
        if best <= score + 1e-12:
            return int(renders)
    return None


def reach_summary(records: Iterable[Mapping], seeded: str = "hybrid",
                  reference: str = "nsga2-autosoundmatch") -> list[dict]:
    """Per target set: how many renders ``seeded`` needs to reach ``reference``'s final MR-STFT score,
    against the renders ``reference`` itself needed (its last improvement), target by target.

    ``ratio`` is the median of seeded/reference over the targets both reach (1/10 or less is our goal);
    a target ``seeded`` never reaches counts in ``targets`` but not in ``reached``."""
    curves: dict[tuple[str, str], dict[str, Mapping]] = {}
    for r in records:
        if r["method"] in (seeded, reference):
            curves.setdefault((r.get("target_set") or "", r.get("target") or ""), {})[r["method"]] = r
    out: dict[str, dict] = {}
    for (target_set, _), pair in curves.items():
        if len(pair) < 2:
            continue
        ref = pair[reference]
        ref_curve = (ref.get("extra") or {}).get("curve")
        final = (ref.get("metrics") or {}).get(HEADLINE_METRIC)  # what the curves track (older runs: none)
        if not ref_curve or final is None:
            continue
        ref_renders = renders_to_reach(ref_curve, final) or int(ref.get("renders") or 0)
        got = renders_to_reach((pair[seeded].get("extra") or {}).get("curve"), final)
        e = out.setdefault(target_set, {"target_set": target_set, "seeded": seeded, "reference": reference,
                                        "targets": 0, "reached": 0, "seeded_renders": [], "reference_renders": [],
                                        "ratios": []})
        e["targets"] += 1
        if got is not None:
            e["reached"] += 1
            e["seeded_renders"].append(got)
            e["reference_renders"].append(ref_renders)
            e["ratios"].append(got / max(ref_renders, 1))
    def med(xs: list) -> float | None:
        return float(np.median(xs)) if xs else None

    result = []
    for target_set in sorted(out, key=target_set_rank):
        e = out[target_set]
        result.append({"target_set": target_set, "seeded": seeded, "reference": reference, "targets": e["targets"],
                       "reached": e["reached"], "median_seeded_renders": med(e["seeded_renders"]),
                       "median_reference_renders": med(e["reference_renders"]), "median_ratio": med(e["ratios"])})
    return result


def reach_text(entry: Mapping) -> str:
    """One sentence of a ``reach_summary`` entry, for the terminal and the report."""
    if entry["reached"] == 0:
        return (f"{entry['seeded']} reached {entry['reference']}'s final {HEADLINE_METRIC} score on none of "
                f"{entry['targets']} targets")
    return (f"{entry['seeded']} reached {entry['reference']}'s final {HEADLINE_METRIC} score on {entry['reached']}/{entry['targets']} "
            f"targets after a median {fmt_count(entry['median_seeded_renders'])} renders; {entry['reference']} "
            f"needed {fmt_count(entry['median_reference_renders'])} (median ratio {entry['median_ratio']:.3f})")


def _mark_best(summary: list[dict], metrics: Sequence[str]) -> None:
    """``best``: the metrics for which a method has the lowest median within its target set, and the
    parameter scores for which it has the best mean (lowest MAE, highest accuracy), as the tables
    show them; ties all count; nothing is best alone."""
    by_set: dict[str, list[dict]] = {}
    for e in summary:
        e["best"] = []
        by_set.setdefault(e["target_set"], []).append(e)
    keys = [(m, lambda e, m=m: e["metrics"].get(m), "median", min) for m in metrics]
    keys += [("param_mae", lambda e: e["param_mae"], "mean", min),
             ("param_accuracy", lambda e: e["param_accuracy"], "mean", max)]
    for entries in by_set.values():
        for name, get, stat, pick in keys:
            values = [(get(e)[stat], e) for e in entries if get(e) is not None]
            if len(values) < 2:
                continue
            target = pick(v for v, _ in values)
            for v, e in values:
                if v == target:
                    e["best"].append(name)


def target_sets(summary: list[dict]) -> list[str]:
    seen: list[str] = []
    for e in summary:
        if e["target_set"] not in seen:
            seen.append(e["target_set"])
    return seen


# ---- formatting shared by the terminal and the HTML report -------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    """A compact number: 3 significant digits, no exponent for everyday magnitudes."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 0.01:
        return f"{value:.{max(0, digits - 1 - math.floor(math.log10(a)))}f}"
    return f"{value:.{digits - 1}e}"


def fmt_count(value: float | None) -> str:
    """Renders and other counts: whole numbers with thousands separators."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_ci(stat: dict | None, sep: str = " ± ") -> str:
    """``mean ± half-width`` of a ``describe`` result."""
    if stat is None:
        return "–"
    if stat["ci95"] is None:
        return fmt(stat["mean"])
    lo, hi = stat["ci95"]
    return f"{fmt(stat['mean'])}{sep}{fmt((hi - lo) / 2, 2)}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def summary_tables(summary: list[dict], title: str = "", metrics: Sequence[str] = REPORT_METRICS,
                   width: int = 120) -> list:
    """Rich tables, one per target set: methods x (metric medians over mean ± 95 % CI, parameter
    scores, renders, seconds per target); the best median of each column in bold green. Below
    ``width`` 100 (the terminal's columns) only the headline metric shows its interval, so the table fits 80."""
    from rich import box
    from rich.table import Table

    tables = []
    for target_set in target_sets(summary):
        entries = [e for e in summary if e["target_set"] == target_set]
        n_targets = max(e["n"] for e in entries)
        label = TARGET_SET_TITLES.get(target_set, target_set)
        wide = width >= 100
        with_ci = metrics if wide else metrics[:1]
        what = "" if wide else f" ({METRIC_SHORT.get(metrics[0], metrics[0])})"
        floor = entries[0].get("rerender_floor")
        relative_shown = any(e.get("relative_floor") for e in entries)
        noisy_shown = any((e.get("noisiness") or {}).get("n") for e in entries)
        notes = [f"cells: median, below it mean ± 95% CI{what}. " + TABLE_CAPTION + "."]
        if relative_shown:
            notes.append(f"×floor = {METRIC_SHORT.get(HEADLINE_METRIC)} median / the re-render floor.")
        if noisy_shown:
            if wide:
                notes.append(f"noise = median noisiness (gated spectral flatness) of target / match; "
                             f"≥{NOISIER_RATIO:g}× = share of matches at least {NOISIER_RATIO:g}x noisier than "
                             "their target.")
            else:  # no room for columns at 80: the shares go into the caption
                shares = ", ".join(f"{e['method']} {fmt_share(e.get('noisiness'))}" for e in entries)
                notes.append(f"Matches at least {NOISIER_RATIO:g}x noisier than their target: {shares}.")
        notes.append(floor_text(floor) + ".")
        table = Table(title=f"{title + ': ' if title else ''}{label}, {n_targets} targets",
                      caption=" ".join(notes), caption_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("method", no_wrap=True)
        for m in metrics:
            table.add_column(METRIC_SHORT.get(m, m), justify="right")
            if m == HEADLINE_METRIC and relative_shown:
                table.add_column("×floor", justify="right")
        if noisy_shown and wide:
            table.add_column("noise\ntgt/match", justify="right")
            table.add_column(f"≥{NOISIER_RATIO:g}×", justify="right")
        has_mae = any(e["param_mae"] for e in entries)
        has_acc = any(e["param_accuracy"] for e in entries)
        if has_mae:
            table.add_column("MAE", justify="right")
        if has_acc:
            table.add_column("acc.", justify="right")
        table.add_column("renders", justify="right")
        table.add_column("s/tgt", justify="right")
        for e in entries:
            cells = [e["method"] + (f" (n={e['n']})" if e["n"] != n_targets else "")]
            for m in metrics:
                stat = e["metrics"].get(m)
                if stat is None:
                    text = "–"
                else:
                    text = fmt(stat["median"])
                    if stat["ci95"] is not None and m in with_ci:
                        text += f"\n[dim]{fmt_ci(stat, '±')}[/dim]"
                cells.append(f"[bold green]{text}[/bold green]" if m in e["best"] else text)
                if m == HEADLINE_METRIC and relative_shown:
                    cells.append(fmt(e["relative_floor"]["median"]) if e.get("relative_floor") else "–")
            if noisy_shown and wide:
                noise = e.get("noisiness") or {}
                pair = [fmt(noise[k]["median"], 2) if noise.get(k) else "–" for k in ("target", "match")]
                cells += ["/".join(pair), fmt_share(noise)]
            for key, shown in (("param_mae", has_mae), ("param_accuracy", has_acc)):
                if shown:
                    stat = e[key]
                    text = "–" if stat is None else fmt(stat["mean"])
                    cells.append(f"[bold green]{text}[/bold green]" if key in e["best"] else text)
            cells.append(fmt_count(e["renders"]["median"]) if e["renders"] else "–")
            cells.append(fmt_seconds(e["seconds"]["mean"]) if e["seconds"] else "–")
            table.add_row(*cells)
        tables.append(table)
    return tables
