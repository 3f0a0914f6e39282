"""Past work from the registry for the page: runs (newest first), one run's summary, the files of a
match run and a benchmark's report, each found through the run's own rows (never a client path)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from asm.bench.runs import load_run, resolve_data_path, run_info
from asm.errors import AsmError
from asm.registry.db import session_scope
from asm.registry.models import Result, Run
from asm.serve.jobs import artefacts_of


def run_rows(kind: str | None, limit: int) -> list[dict]:
    """Runs, newest first, with their result counts and headline summary."""
    with session_scope(read_only=True) as session:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if kind:
            query = query.where(Run.kind == kind)
        runs = session.scalars(query).all()
        counts = dict(session.execute(select(Result.run_id, func.count())
                                      .where(Result.run_id.in_([r.id for r in runs])).group_by(Result.run_id)).all())
        rows = []
        for r in runs:
            info = run_info(r, session)
            summary = dict(r.summary or {})
            rows.append({k: info[k] for k in ("id", "kind", "name", "status", "synth", "seed", "started_at",
                                              "finished_at", "wall_seconds")}
                        | {"results": int(counts.get(r.id, 0)), "method": summary.get("method"),
                           "mr_stft": (summary.get("metrics") or {}).get("mr-stft"),
                           "has_report": r.kind == "benchmark" or r.kind == "match"})
        return rows


def run_detail(run_id: int) -> dict:
    """The run, its summary per target set and method, and (for matches) its artefacts."""
    from asm.bench.summary import summarise

    info, records = load_run(run_id)
    out = {"run": info, "summary": summarise(records), "results": [
        {k: r.get(k) for k in ("id", "method", "target_set", "target", "metrics", "renders", "seconds")}
        for r in records[:200]]}
    if info["kind"] == "match":
        files = match_artefacts(run_id)
        out["files"] = {name: f"/api/runs/{run_id}/files/{name}" for name in files}
        out["preset_format"] = files["preset"].suffix if "preset" in files else None
    if info["kind"] == "benchmark":
        out["report"] = f"/api/runs/{run_id}/report/index.html"
    return out


def match_artefacts(run_id: int) -> dict[str, Path]:
    """The files a match run wrote, as its result row records them."""
    with session_scope(read_only=True) as session:
        run = session.get(Run, int(run_id))
        if run is None:
            raise AsmError(f"no run with id {run_id}")
        if run.kind != "match":
            return {}
        row = session.scalar(select(Result).where(Result.run_id == run.id).order_by(Result.id))
        files = dict((row.extra or {}).get("files") or {}) if row is not None else {}
    return artefacts_of(files)


def report_files(run_id: int) -> dict[str, Path]:
    """Relative name -> file of a benchmark run's HTML report directory (written first when missing)."""
    info, _ = load_run(run_id)
    if info["kind"] != "benchmark":
        return {}
    index = resolve_data_path(info["report_path"]) if info["report_path"] else None
    if index is None or not index.is_file():
        from asm.bench.report import write_report

        index = write_report(run_id)
    root = index.parent
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
