"""The FastAPI app of ``asm serve``: the page (``/``, ``/static``) and the API under ``/api``
(OpenAPI at ``/docs`` and ``/openapi.json``).

Clients name things by id (targets, jobs, runs) and files by fixed artefact names; every path the
server opens comes from its own records (the job's directory, the registry's rows), never from the
request. Uploads are size-limited and must be audio libsndfile reads (MIDI for the notes).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from asm.errors import AsmError
from asm.match.pipeline import METHODS
from asm.registry.db import session_scope
from asm.registry.models import SearchConfigRow, Synth
from asm.registry.synths import get_synth
from asm.serve.history import match_artefacts, report_files, run_detail, run_rows
from asm.serve.jobs import (
    AUDIO_SUFFIXES,
    MIDI_SUFFIXES,
    TERMINAL,
    Busy,
    JobQueue,
    TargetStore,
    sweep_unfinished,
)

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_MB = 50.0
CHUNK = 1 << 16
MEDIA_TYPES = {".wav": "audio/wav", ".png": "image/png", ".json": "application/json",
               ".fxp": "application/octet-stream", ".fxb": "application/octet-stream",
               ".vstpreset": "application/octet-stream", ".html": "text/html; charset=utf-8"}


class NotFound(Exception):
    pass


class TooLarge(Exception):
    pass


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    """The upload's bytes, refused as soon as they pass ``limit``."""
    parts, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{what} is larger than the upload limit of {limit / 1e6:g} MB")
        parts.append(chunk)
    if size == 0:
        raise AsmError(f"{what} is empty (0 bytes)")
    return b"".join(parts)


def _options(synth: str, method: str | None, budget: int | None, time_limit: float | None, seed: int,
             note: str | None, search: str | None, model: str | None, dataset: str | None) -> dict:
    """Job options as ``asm match`` takes them (empty fields mean its defaults), checked up front."""
    method = (method or "").strip() or None
    if method in ("auto", "best"):
        method = None
    if method is not None and method not in METHODS:
        raise AsmError(f"unknown method {method!r}: choose from auto, {', '.join(METHODS)}")
    if budget is not None and budget < 1:
        raise AsmError(f"budget must be at least 1 render, got {budget}")
    if time_limit is not None and not time_limit > 0:
        raise AsmError(f"time limit must be positive, got {time_limit}")
    if seed < 0:
        raise AsmError(f"seed must be 0 or more, got {seed}")
    note = (note or "").strip() or "auto"
    if note.lower() != "auto":
        from asm.match.target import parse_note_option

        parse_note_option(note)
    return {"synth": synth.strip() or "asm-sub", "method": method, "budget": budget, "time_limit": time_limit,
            "seed": seed, "note": note, "search": (search or "").strip() or "asm",
            "model": (model or "").strip() or None, "dataset": (dataset or "").strip() or None}


def open_registry() -> None:
    """Open (and migrate) the registry and register the built-in synth once, before any request:
    opening it is not safe to race from the request threads, and a damaged registry fails at start.
    Outputs of jobs a killed server left unfinished are removed."""
    with session_scope() as session:
        get_synth(session, "asm-sub")

    sweep_unfinished()


def create_app(workers: int | str = "auto", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_waiting: int = 8,
               previews: bool = True) -> FastAPI:
    """The app, with its own target store and job queue (closed when the app shuts down)."""
    jobs = JobQueue(workers=workers, max_waiting=max_waiting, previews=previews)
    targets = TargetStore()
    limit = int(max_upload_mb * 1e6)

    @asynccontextmanager
    async def lifespan(_app):
        await asyncio.to_thread(open_registry)
        yield
        await asyncio.to_thread(jobs.close)

    app = FastAPI(title="asm serve", version="1", lifespan=lifespan,
                  description="Match a sound with a synth, listen, and take the preset home. The same registry, "
                              "render pool and pipeline as the asm command line.")
    app.state.jobs, app.state.targets = jobs, targets
    _add_guards(app, limit)
    _add_page_and_config(app, jobs, max_upload_mb, max_waiting)
    _add_target_routes(app, targets, limit)
    _add_job_routes(app, jobs, targets, limit, max_waiting)
    _add_history_routes(app)
    return app


def _add_guards(app: FastAPI, limit: int) -> None:
    """Upload size limit, static files, and the errors mapped to HTTP statuses."""

    @app.middleware("http")
    async def _refuse_large_bodies(request: Request, call_next):
        """A body announced larger than a target and a MIDI file together is refused before it is read."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > 2 * limit + (1 << 20):
            return JSONResponse({"detail": f"the upload is larger than the limit of {limit / 1e6:g} MB"},
                                status_code=413)
        return await call_next(request)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(AsmError)
    async def _asm_error(_request, exc: AsmError):
        return JSONResponse({"detail": str(exc)}, status_code=503 if isinstance(exc, Busy) else 400)

    @app.exception_handler(NotFound)
    async def _not_found(_request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(TooLarge)
    async def _too_large(_request, exc: TooLarge):
        return JSONResponse({"detail": str(exc)}, status_code=413)


def _add_page_and_config(app: FastAPI, jobs: JobQueue, max_upload_mb: float, max_waiting: int) -> None:
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/api/config", summary="Synths, methods and the defaults of asm match")
    def config():
        from asm.search.config import BUILTIN_RECIPES, load_search_settings

        with session_scope() as session:
            get_synth(session, "asm-sub")
            synths = list(session.scalars(select(Synth.name).order_by(Synth.id)))
            recipes = sorted(set(BUILTIN_RECIPES) | set(session.scalars(select(SearchConfigRow.name))))
            budget = load_search_settings(session, "asm").budget
        return {"synths": synths, "methods": ["auto", *METHODS], "searches": recipes,
                "defaults": {"synth": "asm-sub", "method": "auto", "budget": budget, "time_limit": None, "seed": 0,
                             "note": "auto", "search": "asm"},
                "max_upload_mb": max_upload_mb, "audio_types": list(AUDIO_SUFFIXES), "midi_types": list(MIDI_SUFFIXES),
                "queue": {"waiting": jobs.waiting(), "max_waiting": max_waiting}}


def _job_of(jobs: JobQueue, job_id: str):
    try:
        return jobs.get(job_id)
    except KeyError:
        raise NotFound(f"no job {job_id}") from None


def _target_of(targets: TargetStore, target_id: str):
    try:
        return targets.get(target_id)
    except KeyError:
        raise NotFound(f"no target {target_id}: upload it again") from None


async def _store_target(targets: TargetStore, limit: int, file: UploadFile, midi: UploadFile | None, synth: str):
    data = await _read_limited(file, limit, "the target file")
    midi_data = await _read_limited(midi, limit, "the MIDI file") if midi is not None else None
    return await asyncio.to_thread(targets.add, file.filename or "", data,
                                   midi.filename if midi is not None else None, midi_data, synth or "asm-sub")


def _add_target_routes(app: FastAPI, targets: TargetStore, limit: int) -> None:
    @app.post("/api/targets", status_code=201, summary="Upload a target (and optional MIDI notes); get its analysis")
    async def upload_target(file: UploadFile = File(..., description="Audio: wav, flac, ogg, aiff, ..."),
                            midi: UploadFile | None = File(None, description="Notes of a polyphonic target"),
                            synth: str = Form("asm-sub")):
        return (await _store_target(targets, limit, file, midi, synth)).public()

    @app.get("/api/targets/{target_id}", summary="An uploaded target's analysis")
    def get_target(target_id: str):
        return _target_of(targets, target_id).public()


def _add_job_routes(app: FastAPI, jobs: JobQueue, targets: TargetStore, limit: int, max_waiting: int) -> None:
    @app.post("/api/jobs", status_code=201, summary="Queue a match of an uploaded target (or of a file sent along)")
    async def create_job(target_id: str | None = Form(None), file: UploadFile | None = File(None),
                         midi: UploadFile | None = File(None), synth: str = Form("asm-sub"),
                         method: str | None = Form(None), budget: int | None = Form(None),
                         time_limit: float | None = Form(None), seed: int = Form(0), note: str | None = Form(None),
                         search: str | None = Form(None), model: str | None = Form(None),
                         dataset: str | None = Form(None)):
        options = _options(synth, method, budget, time_limit, seed, note, search, model, dataset)
        if jobs.waiting() >= max_waiting:
            raise Busy(f"busy: {max_waiting} jobs are already waiting; try again in a minute")
        if target_id:
            target = _target_of(targets, target_id)
        elif file is not None:
            target = await _store_target(targets, limit, file, midi, options["synth"])
        else:
            raise AsmError("give target_id (from POST /api/targets) or a file")
        job = jobs.submit(target, options)
        return {"id": job.id, "state": job.state, "waiting": jobs.waiting()}

    @app.get("/api/jobs", summary="Jobs of this server, newest first")
    def list_jobs():
        return [j.public(preview=False) for j in sorted(jobs.all(), key=lambda j: -j.created)]

    @app.get("/api/jobs/{job_id}", summary="A job: state, progress, best-so-far curve, result")
    def get_job(job_id: str):
        return _job_of(jobs, job_id).public()

    @app.get("/api/jobs/{job_id}/events", summary="Server-sent events: the job each time it changes, until it ends")
    async def job_events(job_id: str, request: Request):
        job = _job_of(jobs, job_id)

        async def stream():
            seen, beat = -1, time.monotonic()
            while True:
                if await request.is_disconnected():
                    return
                if job.version != seen:
                    seen = job.version
                    yield f"event: job\ndata: {json.dumps(job.public())}\n\n"
                    if job.state in TERMINAL:
                        return
                elif time.monotonic() - beat > 10:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a queued or running job (nothing is stored)")
    def cancel_job(job_id: str):
        _job_of(jobs, job_id)
        return jobs.cancel(job_id).public(preview=False)

    @app.get("/api/jobs/{job_id}/files/{name}", summary="A job's artefact: preset, preset.json, match.wav, "
             "target.wav, spectrograms.png, match.json, pareto-K.preset, pareto-K.wav")
    def job_file(job_id: str, name: str, download: bool = False):
        job = _job_of(jobs, job_id)
        path = job.files.get(name)
        if path is None or not path.is_file():
            raise NotFound(f"job {job_id} has no file {name!r}")
        stem = Path(job.target.audio_path).stem
        if name in ("preset", "preset.json") or name.endswith(".preset"):
            return _send(path, _preset_name(stem if name in ("preset", "preset.json") else f"{stem}-{name[:-7]}", path))
        return _send(path, f"{stem}-{name}" if download else None)


def _send(path: Path, download_name: str | None = None):
    attach = path.suffix in (".fxp", ".fxb", ".vstpreset") or download_name is not None
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                        filename=download_name or path.name,
                        content_disposition_type="attachment" if attach else "inline")

def _preset_name(stem: str, path: Path) -> str:
    return f"{stem}-match{path.suffix}"



def _add_history_routes(app: FastAPI) -> None:
    """The registry's runs: their rows, match artefacts and benchmark reports."""
    @app.get("/api/runs", summary="Runs in the registry (matches, benchmarks, model tests), newest first")
    def list_runs(kind: str | None = None, limit: int = 50):
        return run_rows(kind, max(1, min(limit, 500)))

    @app.get("/api/runs/{run_id}", summary="One run: its settings, summary per method and target set, results")
    def get_run(run_id: int):
        return run_detail(run_id)

    @app.get("/api/runs/{run_id}/files/{name}", summary="An artefact of a match run (same names as a job's)")
    def run_file(run_id: int, name: str):
        path = match_artefacts(run_id).get(name)
        if path is None:
            raise NotFound(f"run {run_id} has no file {name!r}")
        return _send(path, f"run-{run_id}-{name}" if name.startswith("preset") or name.endswith(".preset") else None)

    @app.get("/api/runs/{run_id}/report", include_in_schema=False)
    def run_report_root(run_id: int):
        return RedirectResponse(f"/api/runs/{run_id}/report/index.html")

    @app.get("/api/runs/{run_id}/report/{asset:path}", summary="A benchmark's HTML report and its pictures and audio")
    def run_report(run_id: int, asset: str):
        path = report_files(run_id).get(asset)
        if path is None:
            raise NotFound(f"run {run_id}'s report has no {asset!r}")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix))

