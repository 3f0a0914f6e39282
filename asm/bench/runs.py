"""Writing a run's results: one ``run`` row, one ``result`` row per (method, target), audio beside them.

The HTML report (``asm.bench.report``) is built from these rows alone, so everything it shows is
recorded here. Layout of ``result.extra`` (paths relative to the data directory, or absolute):

* ``"target_audio"``: the target as WAV (written once per target, shared by its methods' rows);
* ``"audio"``: this method's match rendered with the target's notes, WAV;
* ``"picture"``: optional PNG of the target's and the match's spectrograms (``asm match`` writes one);
* ``"curve"``: ``[[renders, seconds, best_mr_stft], ...]`` best-so-far after each improvement,
  ascending renders (search methods; ``asm.search`` archives give exactly this);
* ``"sample_rate"``, ``"target_label"`` (display name), and anything method-specific.

Audio files of a run live under ``<data dir>/reports/run-<id>/media/`` next to its report. A
``RunWriter`` commits each result row only after its files are on disk, and marks the run
``complete``, ``failed`` or ``interrupted`` when it closes, with the summary (``asm.bench.summary``)
stored on the run row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np

from asm.errors import AsmError


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def report_dir(run_id: int) -> Path:
    """``<data dir>/reports/run-<id>``: the run's report, its media and pictures."""
    from asm.paths import data_dir

    return data_dir() / "reports" / f"run-{int(run_id)}"


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe form of a method or target name (``model:cnn`` -> ``model-cnn``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return (s or "x")[:limit]


def data_relative(path: Path) -> str:
    """``path`` relative to the data directory when inside it (so a moved data dir still works)."""
    from asm.paths import data_dir

    try:
        return str(Path(path).resolve().relative_to(data_dir().resolve()))
    except ValueError:
        return str(Path(path).resolve())


def resolve_data_path(text: str) -> Path:
    """Inverse of ``data_relative``."""
    from asm.paths import data_dir

    p = Path(text)
    return p if p.is_absolute() else data_dir() / p


class RunWriter:
    """Creates a run, stores its results with their audio, and closes it with its summary.

    Use as a context manager: an exception marks the run ``failed`` (``interrupted`` on Ctrl-C)
    and the rows stored so far stay, so ``asm results`` and ``asm report`` still show them.
    """

    def __init__(self, kind: str, name: str = "", *, synth_id: int | None = None, dataset_id: int | None = None,
                 model_id: int | None = None, seed: int = 0, settings: dict | None = None):
        from asm.data.store import code_version
        from asm.registry.db import session_scope
        from asm.registry.models import Run

        if kind not in ("benchmark", "match", "test-model"):
            raise AsmError(f"unknown run kind {kind!r}")
        with session_scope() as session:
            run = Run(kind=kind, name=name, status="running", synth_id=synth_id, dataset_id=dataset_id,
                      model_id=model_id, seed=int(seed), settings=dict(settings or {}), code_version=code_version())
            session.add(run)
            session.flush()
            self.run_id = run.id
        self.dir = report_dir(self.run_id)
        self._targets: dict[tuple[str, str], str] = {}
        self.closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.finish("complete")
        else:
            self.finish("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    # --- files ----------------------------------------------------------------------------------
    def _media_path(self, target_set: str, target: str, name: str) -> Path:
        from asm.paths import ensure_dir

        return ensure_dir(self.dir / "media" / slug(target_set) / slug(target, 80)) / f"{slug(name)}.wav"

    def add_target(self, target_set: str, target: str, audio: np.ndarray, sample_rate: int) -> str:
        """Write the target's audio once; returns its data-relative path (``extra["target_audio"]``)."""
        from asm.audio.io import write_audio

        key = (target_set, target)
        if key not in self._targets:
            path = write_audio(self._media_path(target_set, target, "target"), np.asarray(audio, np.float32),
                               sample_rate)
            self._targets[key] = data_relative(path)
        return self._targets[key]

    # --- rows -----------------------------------------------------------------------------------
    def add(self, *, method: str, target_set: str, target: str, audio: np.ndarray | None, sample_rate: int,
            target_audio: np.ndarray | None = None, metrics: dict | None = None, notes: Sequence | None = None,
            values: Sequence[float] | None = None, param_mae: float | None = None,
            param_accuracy: float | None = None, renders: int = 0, seconds: float = 0.0,
            curve: Sequence[Sequence[float]] | None = None, model_id: int | None = None,
            preset_id: int | None = None, example_index: int | None = None, extra: dict | None = None) -> int:
        """Store one method's answer for one target; returns the result id.

        ``metrics`` default to ``asm.audio.metrics.REPORT_METRICS`` of ``audio`` against
        ``target_audio`` (an unrenderable answer, ``audio=None``, scores each metric's worst value).
        """
        from asm.audio.io import write_audio
        from asm.audio.metrics import METRICS, REPORT_METRICS, distances
        from asm.registry.db import session_scope
        from asm.registry.models import Result

        if target_audio is not None:
            self.add_target(target_set, target, target_audio, sample_rate)
        if metrics is None:
            if target_audio is None:
                raise AsmError("metrics or target_audio needed to score a result")
            if audio is None:
                metrics = {m: METRICS[m].worst for m in REPORT_METRICS}
            else:
                metrics = {k: float(v[0]) for k, v in distances(audio, target_audio, sample_rate, REPORT_METRICS).items()}
        info = {"sample_rate": int(sample_rate), **(extra or {})}
        if (target_set, target) in self._targets:
            info["target_audio"] = self._targets[(target_set, target)]
        if audio is not None:
            path = write_audio(self._media_path(target_set, target, method), np.asarray(audio, np.float32), sample_rate)
            info["audio"] = data_relative(path)
        if curve is not None:
            info["curve"] = [[int(r), round(float(s), 4), float(b)] for r, s, b in curve]
        with session_scope() as session:
            row = Result(run_id=self.run_id, method=method, target_set=target_set, target=target,
                         example_index=example_index, model_id=model_id, preset_id=preset_id,
                         metrics={k: float(v) for k, v in metrics.items()},
                         param_mae=None if param_mae is None or not np.isfinite(param_mae) else float(param_mae),
                         param_accuracy=(None if param_accuracy is None or not np.isfinite(param_accuracy)
                                         else float(param_accuracy)),
                         renders=int(renders), seconds=float(seconds),
                         values=None if values is None else [float(v) for v in values],
                         notes=None if notes is None else [[int(n[0]), int(n[1]), float(n[2]), float(n[3])]
                                                           for n in notes],
                         extra=info)
            session.add(row)
            session.flush()
            return row.id

    def finish(self, status: str = "complete", report_path: str | None = None) -> dict:
        """Close the run: status, finish time and the summary of its rows; returns the summary."""
        summary = finish_run(self.run_id, status, report_path)
        self.closed = True
        return summary


def load_run(run_id: int) -> tuple[dict, list[dict]]:
    """(run as a dict, its result records in insertion order), or one clear error."""
    from sqlalchemy import select

    from asm.bench.summary import record_of
    from asm.registry.db import session_scope
    from asm.registry.models import Result, Run

    with session_scope() as session:
        run = session.get(Run, int(run_id))
        if run is None:
            raise AsmError(f"no run with id {run_id}; asm results lists them")
        rows = session.scalars(select(Result).where(Result.run_id == run.id).order_by(Result.id)).all()
        records = [record_of(r) for r in rows]
        info = run_info(run, session)
    return info, records


def run_info(run, session) -> dict:
    """A plain dict of a ``Run`` row (with its synth's name and wall time)."""
    from asm.registry.models import Synth

    synth = session.get(Synth, run.synth_id) if run.synth_id is not None else None
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    return {
        "id": run.id, "kind": run.kind, "name": run.name, "status": run.status,
        "synth": synth.name if synth is not None else None,
        "synth_id": run.synth_id, "model_id": run.model_id, "dataset_id": run.dataset_id, "seed": run.seed,
        "settings": dict(run.settings or {}), "report_path": run.report_path, "code_version": run.code_version,
        "started_at": run.started_at.isoformat(timespec="seconds") if run.started_at else None,
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "wall_seconds": seconds,
    }


def finish_run(run_id: int, status: str, report_path: str | None = None) -> dict:
    from sqlalchemy import select

    from asm.bench.summary import record_of, summarise
    from asm.registry.db import session_scope
    from asm.registry.models import Result, Run

    with session_scope() as session:
        run = session.get(Run, int(run_id))
        rows = session.scalars(select(Result).where(Result.run_id == run.id)).all()
        summary = summarise(record_of(r) for r in rows)
        run.status = status
        run.finished_at = utcnow()
        run.summary = {"groups": summary}
        if report_path is not None:
            run.report_path = report_path
    return {"groups": summary}
