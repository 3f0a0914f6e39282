"""``asm find-presets``: the stored presets nearest a target sound, what a sound designer tries first.

It reads a target like ``asm match`` (this module's layer) and searches the preset index of
``asm.proxy.index``. Two stages: a fast embedding search over the index shortlists
``shortlist`` presets, then each is rendered for real with the target's notes and ranked by the
headline metric. Every reported score comes from such a render. The outputs (the target, each
found preset's render and preset file, a picture of the best against the target, find.json) go to
``--out-dir`` (default ``data/finds/<target>-<n>``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm.errors import AsmError
from asm.progress import Reporter

# renders are cheap (100 of a 2 s amsynth note: 0.2 s on 2 cores) and the pitch-aligned profile of a 1 s
# reference note ranks a slow pad rendered 1.5 s long 35th: a shortlist of 30 missed it, 100 ranks it first
SHORTLIST_FACTOR, SHORTLIST_MIN = 10, 100


@dataclass
class FindOptions:
    target: Path
    synth: str = "amsynth"
    k: int = 10
    note: str | None = "auto"
    midi: Path | None = None
    shortlist: int | None = None  # presets rendered for real (default max(10 k, 100))
    out_dir: Path | None = None
    workers: int | str = "auto"


def default_out_dir(target: Path) -> Path:
    from asm import paths

    base = paths.data_dir() / "finds"
    n = 1
    while (base / f"{target.stem}-{n}").exists():
        n += 1
    return base / f"{target.stem}-{n}"


def _warm_imports() -> None:
    import asm.audio.plots  # noqa: F401  (matplotlib)
    import asm.presets.exporter  # noqa: F401
    from asm.audio.metrics import distances

    distances(np.zeros((1, 1600), np.float32), np.full(1600, 0.1, np.float32), 16000, ("perceptual",))


def median_pitch(notes) -> int:
    return int(np.median([n.pitch for n in notes]))


def find_presets(opts: FindOptions, reporter: Reporter | None = None) -> dict:
    """Run ``find-presets``; returns find.json's document. Bad input is one AsmError line, before any
    render or file."""
    from asm.atomic import atomic_open
    from asm.audio.io import target_frames
    from asm.audio.metrics import HEADLINE_METRIC as HEADLINE
    from asm.audio.metrics import REPORT_METRICS, distances
    from asm.match.outputs import prepare_out_dir
    from asm.match.target import prepare_target
    from asm.proxy.embedding import spectral_profile
    from asm.proxy.index import load_or_build, preset_rows
    from asm.registry.db import session_scope
    from asm.registry.synth_loader import render_defaults, spec_of
    from asm.registry.synths import get_synth
    from asm.render import RenderPool

    reporter = reporter or Reporter()
    if opts.k < 1:
        raise AsmError(f"-k must be at least 1, got {opts.k}")
    started = time.perf_counter()
    target_frames(Path(opts.target))  # a missing or unreadable file: before anything else
    with session_scope() as session:
        synth_row = get_synth(session, opts.synth)
        spec = spec_of(synth_row, render_defaults(synth_row).sample_rate)
        if not preset_rows(session, synth_row, spec.space):
            raise AsmError(f"synth {synth_row.name} has no presets: import some with asm import-presets "
                           f"--synth {synth_row.name} FILES")
        from concurrent.futures import ThreadPoolExecutor

        if opts.shortlist is not None and opts.shortlist < opts.k:
            raise AsmError(f"--shortlist ({opts.shortlist}) must be at least -k ({opts.k})")
        shortlist = opts.shortlist or max(SHORTLIST_FACTOR * opts.k, SHORTLIST_MIN)
        with ThreadPoolExecutor(1) as starter:
            pool_future = starter.submit(RenderPool, spec, opts.workers)  # the workers start meanwhile
            try:
                target = prepare_target(Path(opts.target), spec.sample_rate, synth_row, opts.note, opts.midi)
                out_dir = prepare_out_dir(Path(opts.out_dir) if opts.out_dir else default_out_dir(Path(opts.target)))
                query = spectral_profile(target.audio, spec.sample_rate)[0]
                t_target = time.perf_counter()
                if not pool_future.done():  # spare time while the workers start: what scoring and writing import
                    _warm_imports()
                pool = pool_future.result()
            except BaseException:
                pool_future.add_done_callback(lambda f: f.exception() is None and f.result().close())
                raise
        with pool:
            t_pool = time.perf_counter()
            index, built = load_or_build(session, synth_row, spec, pool, reporter)
            t_index = time.perf_counter()
            order, emb_dist = index.nearest(query, median_pitch(target.notes), shortlist)
            if len(order) == 0:
                raise AsmError(f"no preset of {synth_row.name} makes a sound at the reference pitches")
            audio = pool.render(index.full[order].astype(np.float64), target.notes, target.duration)
        synth_name = synth_row.name
    t_render = time.perf_counter()
    n = len(target.audio)
    batch = np.zeros((len(order), n), np.float32)
    ok = np.zeros(len(order), bool)
    for j, x in enumerate(audio):
        if x is not None:
            batch[j, : min(n, len(x))] = x[:n]
            ok[j] = np.isfinite(x).all() and np.abs(x).max() > 0
    names = tuple(dict.fromkeys((HEADLINE, *REPORT_METRICS)))
    scores = distances(batch, target.audio, spec.sample_rate, names)
    head = np.where(ok, scores[HEADLINE], np.inf)
    rank = np.argsort(head, kind="stable")[: opts.k]
    rank = [int(r) for r in rank if np.isfinite(head[r])]
    doc = _write(out_dir, synth_row_name=synth_name, spec=spec, target=target, index=index, order=order,
                 emb_dist=emb_dist, rank=rank, batch=batch, scores=scores, names=names)
    doc.update({"synth": synth_name, "presets_indexed": int(len(index.preset_ids)), "index_built": built,
                "shortlist": int(len(order)), "renders": int(len(order)),
                "seconds": round(time.perf_counter() - started, 3),
                "timings": {"target": round(t_target - started, 3), "pool_wait": round(t_pool - t_target, 3),
                            "index": round(t_index - t_pool, 3), "render": round(t_render - t_index, 3),
                            "score_write": round(time.perf_counter() - t_render, 3)}})
    with atomic_open(out_dir / "find.json", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    return doc


def _write(out_dir: Path, *, synth_row_name: str, spec, target, index, order, emb_dist, rank, batch, scores,
           names) -> dict:
    """The found presets' renders and preset files, the target and a picture of the best; their rows."""
    from asm.audio.io import write_audio
    from asm.audio.metrics import HEADLINE_METRIC as HEADLINE
    from asm.audio.plots import save_match_picture
    from asm.match.outputs import native_extension
    from asm.presets.exporter import export_preset
    from asm.registry.db import session_scope
    from asm.registry.models import Preset
    from asm.registry.synths import get_synth
    from asm.runs.files import slug

    sr = spec.sample_rate
    found = []
    with session_scope() as session:
        synth_row = get_synth(session, synth_row_name)
        ext = native_extension(synth_row)
        for place, r in enumerate(rank, 1):
            pos = int(order[r])
            name = index.names[pos]
            stem = f"{place:02d}-{slug(name, 40)}"
            wav = write_audio(out_dir / f"{stem}.wav", batch[r], sr)
            preset = out_dir / f"{stem}{ext}"
            export_preset(synth_row, spec.space, Preset(name=name[:28] if ext in (".fxp", ".fxb") else name,
                                                        values=[float(v) for v in index.full[pos]]), preset)
            found.append({"rank": place, "preset_id": int(index.preset_ids[pos]), "name": name,
                          "embedding_distance": float(emb_dist[r]),
                          "metrics": {m: float(scores[m][r]) for m in names}, "audio": str(wav),
                          "preset": str(preset)})
    files = {"target_audio": str(write_audio(out_dir / "target.wav", target.audio, sr))}
    if found:
        best = found[0]
        title = f"{target.path.name}: {best['name']}, {HEADLINE} {best['metrics'][HEADLINE]:.3f}"
        files["picture"] = str(save_match_picture(target.audio, batch[rank[0]], sr, out_dir / "spectrograms.png",
                                                  title=title))
    files["find_json"] = str(out_dir / "find.json")
    return {"target": str(target.path), "notes": [n._asdict() for n in target.notes],
            "notes_from": target.notes_from, "found": found, "files": files}
