"""What ``asm match`` leaves behind: files in the output directory, then one run and one result row.

Files (each written atomically): ``best.<ext>`` (the synth's native format: ``.fxp`` for VST2,
``.vstpreset`` for VST3, ``.json`` for built-in synths; plugins also get ``best.json``),
``pareto-<k>.<ext>`` (top-K of the Pareto front, best multi-resolution STFT distance first),
``match.wav`` (the best preset playing the target's notes), ``target.wav`` (the target as matched:
mono, resampled, trimmed), ``spectrograms.png`` (target and match side by side) and ``match.json``.
The registry rows (a ``run`` of kind ``match``, a ``result`` and the matched ``preset``) are
committed only after every file is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from asm.errors import AsmError

NATIVE = {"vst2": ".fxp", "vst3": ".vstpreset", "faust": ".json"}


def native_extension(synth_row) -> str:
    return NATIVE.get(synth_row.kind, ".json")


def default_out_dir(target: Path) -> Path:
    """``<data>/matches/<target stem>-<n>``: the first n not taken."""
    from asm.paths import data_dir

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


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def write_files(out_dir: Path, result, target, synth_row, space, name: str) -> dict[str, object]:
    """Every output file but match.json; returns their paths by role."""
    from asm.audio.io import write_audio
    from asm.audio.plots import save_match_picture
    from asm.presets.exporter import export_preset
    from asm.registry.models import Preset

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
    """The run (kind 'match'), its result and the matched preset; returns their ids."""
    from asm.data.store import code_version
    from asm.registry.models import Preset, Result, Run, utcnow
    from asm.synth.params import preset_hash

    run = Run(kind="match", name=f"match {target.path.name}", status="complete", synth_id=synth_row.id,
              model_id=context.get("model_id"), dataset_id=context.get("dataset_id"), seed=int(context["seed"]),
              settings={k: v for k, v in context.items() if k not in ("model_id", "dataset_id")},
              summary={"method": result.method, "metrics": result.summary()["metrics"], "renders": result.renders,
                       "seconds": round(result.seconds, 3)},
              report_path=str(Path(files["match_json"]).parent), code_version=code_version(), finished_at=utcnow())
    session.add(run)
    session.flush()
    values = [float(v) for v in result.full]
    digest = preset_hash(values)
    from sqlalchemy import select

    preset = session.scalar(select(Preset).where(Preset.synth_id == synth_row.id, Preset.content_hash == digest))
    if preset is None:
        preset = Preset(synth_id=synth_row.id, name=f"{target.path.stem} (match #{run.id})"[:200], origin="matched",
                        source_file=str(files["preset"]), source_format=Path(str(files["preset"])).suffix.lstrip("."),
                        values=values, content_hash=digest)
        session.add(preset)
        session.flush()
    summary = result.summary()
    row = Result(run_id=run.id, method=result.method, target_set="file", target=str(target.path.resolve()),
                 model_id=context.get("model_id"), preset_id=preset.id, metrics=summary["metrics"],
                 renders=result.renders, seconds=float(result.seconds), values=summary["values"],
                 notes=[[n.pitch, n.velocity, n.start, n.duration] for n in target.notes],
                 extra={k: summary[k] for k in ("objectives", "generations", "stopped", "best_source",
                                                "initial_population", "curve", "front")} | {"files": files})
    session.add(row)
    session.flush()
    return {"run_id": run.id, "result_id": row.id, "preset_id": preset.id}


def finish(out_dir: Path, doc: dict) -> None:
    _write_json(out_dir / "match.json", doc)
