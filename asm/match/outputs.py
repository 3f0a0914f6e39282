"""What ``asm match`` leaves behind: files in the output directory, then one run and one result row.

Files (each written atomically): ``best.<ext>`` (the synth's native format: ``.fxp`` for VST2,
``.vstpreset`` for VST3, ``.json`` for built-in synths; plugins also get ``best.json``),
``pareto-<k>.<ext>`` (top-K of the Pareto front, best multi-resolution STFT distance first),
``match.wav`` (the best preset playing the target's notes), ``target.wav`` (the target as matched:
mono, resampled, trimmed), ``spectrograms.png`` (target and match side by side) and ``match.json``.
The registry rows (a ``run`` of kind ``match``, a ``result`` and the matched ``preset``) are
written by ``asm.runs.RunWriter`` only after every file is complete; the result's ``extra`` names
the match's audio, the target's, the picture and the preset (layout in ``asm.runs.writer``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sqlalchemy import select

from asm.atomic import write_json
from asm.audio.io import write_audio
from asm.audio.plots import save_match_picture
from asm.errors import AsmError
from asm.paths import data_dir
from asm.presets.exporter import export_preset
from asm.presets.formats import native_for
from asm.registry.db import session_scope
from asm.registry.models import Preset
from asm.runs import RunWriter
from asm.synth.params import preset_hash


def native_extension(synth_row) -> str:
    """The synth's own preset format (``asm.presets.formats``): .fxp for VST2, .vstpreset for VST3, else .json."""
    return native_for(synth_row).suffix


def default_out_dir(target: Path) -> Path:
    """``<data>/matches/<target stem>-<n>``: the first n not taken."""
    root = data_dir() / "matches"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in target.stem) or "target"
    n = 1
    while (root / f"{stem}-{n}").exists():
        n += 1
    return root / f"{stem}-{n}"


def prepare_out_dir(path: Path) -> Path:
    """Create the output directory (and parents) or fail in one line before any work starts."""
    if path.exists() and not path.is_dir():
        raise AsmError(f"--out-dir {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AsmError(f"cannot create output directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise AsmError(f"output directory {path} is not writable")
    return path


def write_files(out_dir: Path, result, target, synth_row, space, name: str) -> dict[str, object]:
    """Every output file but match.json; returns their paths by role."""
    ext = native_extension(synth_row)
    files: dict[str, object] = {}

    def export(values: np.ndarray, stem: str, label: str, suffix: str = ext) -> str:
        path = out_dir / f"{stem}{suffix}"
        export_preset(synth_row, space, Preset(name=label[:28] if suffix in (".fxp", ".fxb") else label,
                                               values=[float(v) for v in values]), path)
        return str(path)

    files["preset"] = export(result.full, "best", name)
    if ext != ".json":
        files["preset_json"] = export(result.full, "best", name, ".json")
    files["pareto"] = [export(f["full"], f"pareto-{k}", f"{name} pareto {k}") for k, f in enumerate(result.front, 1)]
    files["match_audio"] = str(write_audio(out_dir / "match.wav", result.audio, result.sample_rate))
    files["target_audio"] = str(write_audio(out_dir / "target.wav", target.audio, target.sample_rate))
    title = (f"{target.path.name}: {result.method}, perceptual {result.metrics['perceptual']:.3f}, "
             f"mr-stft {result.metrics['mr-stft']:.3f}")
    files["picture"] = str(save_match_picture(target.audio, result.audio, result.sample_rate,
                                              out_dir / "spectrograms.png", title=title))
    files["match_json"] = str(out_dir / "match.json")
    return files


def match_document(result, target, synth_row, space, context: dict, files: dict) -> dict:
    """The contents of match.json."""
    doc = {
        "target": str(target.path),
        "synth": synth_row.name,
        "sample_rate": target.sample_rate,
        "duration": target.duration,
        "samples": len(target.audio),
        "notes_from": target.notes_from,
        "notes": [{"pitch": n.pitch, "velocity": n.velocity, "start": n.start, "duration": n.duration}
                  for n in target.notes],
        **context,
        **result.summary(),
        "preset": {p.name: float(v) for p, v in zip(space.params, result.full)},
        "files": files,
    }
    for item, path in zip(doc["front"], files.get("pareto", [])):
        item["file"] = path
    return doc


def store(session, result, target, synth_row, context: dict, files: dict) -> dict[str, int]:
    """The run (kind 'match'), its result and the matched preset, through ``asm.runs.RunWriter``;
    returns their ids. ``session`` is only read from (the writer commits in its own sessions)."""
    summary = result.summary()
    settings = {k: v for k, v in context.items() if k not in ("model_id", "dataset_id")}
    with RunWriter("match", f"match {target.path.name}", synth_id=synth_row.id, model_id=context.get("model_id"),
                   dataset_id=context.get("dataset_id"), seed=int(context["seed"]), settings=settings) as writer:
        values = [float(v) for v in result.full]
        digest = preset_hash(values)
        with session_scope() as own:
            preset = own.scalar(select(Preset).where(Preset.synth_id == synth_row.id, Preset.content_hash == digest))
            if preset is None:
                preset = Preset(synth_id=synth_row.id, name=f"{target.path.stem} (match #{writer.run_id})"[:200],
                                origin="matched", source_file=str(files["preset"]),
                                source_format=Path(str(files["preset"])).suffix.lstrip("."), values=values,
                                content_hash=digest)
                own.add(preset)
                own.flush()
            preset_id = preset.id
        result_id = writer.add(
            method=result.method, target_set="file", target=str(target.path.resolve()),
            target_label=target.path.name, sample_rate=result.sample_rate, audio=Path(files["match_audio"]),
            target_audio=Path(files["target_audio"]), picture=files["picture"], preset_file=files["preset"],
            metrics=summary["metrics"], renders=result.renders, seconds=float(result.seconds),
            values=summary["values"], notes=[[n.pitch, n.velocity, n.start, n.duration] for n in target.notes],
            curve=summary["curve"], model_id=context.get("model_id"), preset_id=preset_id,
            extra={k: summary[k] for k in ("objectives", "generations", "stopped", "best_source",
                                           "initial_population", "front")} | {"files": files})
        writer.finish("complete", report_path=str(Path(files["match_json"]).parent),
                      summary={"method": result.method, "metrics": summary["metrics"], "renders": result.renders,
                               "seconds": round(result.seconds, 3)})
    return {"run_id": writer.run_id, "result_id": result_id, "preset_id": preset_id}


def finish(out_dir: Path, doc: dict) -> None:
    write_json(out_dir / "match.json", doc)
