"""Reading a run back: the run and its result rows as plain dicts (what the tables and the report use)."""

from __future__ import annotations

from sqlalchemy import select

from asm.errors import AsmError
from asm.registry.db import session_scope
from asm.registry.models import Result, Run, Synth


def record_of(row) -> dict:
    """A plain dict of a ``Result`` ORM row (what ``asm.bench.summary.summarise`` and the report read)."""
    return {
        "id": row.id, "method": row.method, "target_set": row.target_set or "", "target": row.target or "",
        "example_index": row.example_index, "model_id": row.model_id, "metrics": dict(row.metrics or {}),
        "param_mae": row.param_mae, "param_accuracy": row.param_accuracy, "renders": int(row.renders or 0),
        "seconds": float(row.seconds or 0.0), "values": row.values, "notes": row.notes,
        "extra": dict(row.extra or {}),
    }


def load_run(run_id: int) -> tuple[dict, list[dict]]:
    """(run as a dict, its result records in insertion order), or one clear error."""
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
