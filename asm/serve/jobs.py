"""Uploaded targets and match jobs of ``asm serve``: the one adapter between the web app and
``asm.match`` (``run_match`` with its ``on_start``/``on_batch`` callbacks as they are today).

One worker thread runs the jobs one at a time, in submission order, so a single render pool is busy
at any moment; a bounded queue answers ``Busy`` when it is full instead of piling work up. A job is
cancelled from its progress callback (between render batches); ``run_match`` stores its rows only
after the search and every file are done, so a cancelled or crashed job leaves the registry as it
was (its partial output directory is removed). A second, one-process render pool is kept warm
across jobs to draw the current best while a search runs and to render the top of the Pareto
front for auditioning.

Everything a job reads or writes lies in a directory the server chose under
``<data>/serve/``; clients name targets and jobs by random ids and files by fixed artefact names.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from asm.audio.io import load_target, read_audio, write_audio
from asm.errors import AsmError
from asm.match.command import MatchOptions, run_match
from asm.match.target import check_range, find_notes, note_range
from asm.midi.notes import Note, load_midi
from asm.paths import data_dir
from asm.registry.db import session_scope
from asm.registry.models import Model, Run
from asm.registry.synth_loader import render_defaults, spec_of
from asm.registry.synths import get_synth
from asm.render import RenderPool
from asm.serve.pictures import loudness_db, picture, spectrogram

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".opus", ".w64", ".caf")
MIDI_SUFFIXES = (".mid", ".midi")
TERMINAL = ("done", "failed", "cancelled")
PREVIEW_INTERVAL = 1.0  # seconds between renders of the current best while a search runs


class Busy(AsmError):
    """The job queue is full: the client should try again later."""


class JobCancelled(Exception):
    """Raised from the progress callback to stop a search the user cancelled."""


def serve_dir() -> Path:
    return (data_dir() / "serve").resolve()  # absolute: stored runs point at their outputs wherever asm runs


def safe_stem(filename: str | None) -> str:
    """A file stem made only of letters, digits, '-' and '_' (the client's name is never a path)."""
    stem = Path(str(filename or "")).name.rsplit(".", 1)[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60].strip("_")
    return cleaned or "target"


def checked_suffix(filename: str | None, allowed: tuple[str, ...], what: str) -> str:
    suffix = Path(str(filename or "")).suffix.lower()
    if suffix not in allowed:
        raise AsmError(f"{what} must be one of {', '.join(allowed)} (got {suffix or 'no extension'})")
    return suffix


@dataclass
class Target:
    """An uploaded target in its own server-chosen directory, analysed as ``asm match`` will read it."""

    id: str
    name: str  # the client's file name, for display only
    audio_path: Path
    midi_path: Path | None
    synth: str
    analysis: dict

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "synth": self.synth, "midi": self.midi_path is not None,
                **self.analysis}


class TargetStore:
    """Uploaded targets by id (kept for the life of the server; their files under ``<data>/serve/targets``)."""

    def __init__(self, root: Path | None = None):
        self.root = root
        self._targets: dict[str, Target] = {}
        self._lock = threading.Lock()

    def _root(self) -> Path:
        return self.root if self.root is not None else serve_dir() / "targets"

    def add(self, filename: str, data: bytes, midi_name: str | None = None, midi: bytes | None = None,
            synth: str = "asm-sub") -> Target:
        """Write the upload to a fresh directory, check it is audio (and MIDI) and analyse it."""
        suffix = checked_suffix(filename, AUDIO_SUFFIXES, "the target file")
        if midi is not None:
            checked_suffix(midi_name, MIDI_SUFFIXES, "the MIDI file")
        tid = uuid.uuid4().hex
        folder = self._root() / tid
        folder.mkdir(parents=True)
        try:
            audio_path = folder / f"{safe_stem(filename)}{suffix}"
            audio_path.write_bytes(data)
            midi_path = None
            if midi is not None:
                midi_path = folder / "notes.mid"
                midi_path.write_bytes(midi)
            analysis = analyse(audio_path, synth, midi_path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        target = Target(tid, Path(str(filename)).name[:120], audio_path, midi_path, synth, analysis)
        with self._lock:
            self._targets[tid] = target
        return target

    def get(self, tid: str) -> Target:
        with self._lock:
            target = self._targets.get(tid)
        if target is None:
            raise KeyError(tid)
        return target


def analyse(path: Path, synth: str, midi: Path | None) -> dict:
    """The target as ``asm match`` reads it for ``synth``: its picture and its notes (or why none)."""
    with session_scope() as session:
        row = get_synth(session, synth)
        sample_rate = render_defaults(row).sample_rate
        lo, hi = note_range(row)
        name = row.name
    if midi is not None:
        try:
            load_midi(midi)
        except AsmError:
            raise
        except Exception as exc:  # noqa: BLE001 - mido's errors on a file that is not MIDI
            raise AsmError(f"cannot read the MIDI file ({type(exc).__name__}: {exc})") from None
    audio = load_target(path, sample_rate)
    info = {"picture": picture(audio, sample_rate), "notes": [], "notes_from": None, "warning": None}
    try:
        notes, source = find_notes(audio, sample_rate, None, midi)
        check_range(notes, name, lo, hi)
        info["notes"] = [{"pitch": n.pitch, "velocity": n.velocity, "start": n.start, "duration": n.duration}
                         for n in notes]
        info["notes_from"] = source
    except AsmError as exc:  # no clear pitch, notes out of range: the page asks for a note
        info["warning"] = str(exc)
    return info


@dataclass
class Job:
    id: str
    target: Target
    options: dict
    state: str = "queued"  # queued | running | done | failed | cancelled
    phase: str = "waiting in the queue"
    message: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    renders: int = 0
    budget: int | None = None
    best: float | None = None
    curve: list = field(default_factory=list)
    context: dict | None = None
    preview: dict | None = None  # spectrogram of the current best
    doc: dict | None = None
    files: dict[str, Path] = field(default_factory=dict)  # artefact name -> server path
    pareto: list[dict] = field(default_factory=list)
    version: int = 0
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def folder(self) -> Path:
        return serve_dir() / "jobs" / self.id

    def touch(self, **changes) -> None:
        for k, v in changes.items():
            setattr(self, k, v)
        self.version += 1

    def public(self, preview: bool = True) -> dict:
        now = self.finished or time.time()
        out = {
            "id": self.id, "state": self.state, "phase": self.phase, "message": self.message,
            "target": {"id": self.target.id, "name": self.target.name}, "options": self.options,
            "renders": self.renders, "budget": self.budget, "best": self.best,
            "curve": [[int(r), round(float(s), 3), float(b)] for r, s, b in self.curve],
            "elapsed": round(now - (self.started or now), 2), "version": self.version,
            "context": _jsonable_context(self.context),
        }
        if preview:
            out["preview"] = self.preview
        if self.doc is not None:
            d = self.doc
            out["result"] = {
                "method": d["method"], "model": d.get("model"), "dataset": d.get("dataset"),
                "metrics": d["metrics"], "renders": d["renders"], "seconds": d["seconds"],
                "wall_seconds": d.get("wall_seconds"), "stopped": d["stopped"], "best_source": d["best_source"],
                "notes": d["notes"], "notes_from": d["notes_from"], "synth": d["synth"],
                "run_id": d.get("run_id"), "result_id": d.get("result_id"), "preset_id": d.get("preset_id"),
                "preset": d["preset"], "pareto": self.pareto, "loudness": d.get("loudness", {}),
                "preset_format": self.files["preset"].suffix if "preset" in self.files else None,
                "files": {name: f"/api/jobs/{self.id}/files/{name}" for name in self.files},
            }
        return out


def _jsonable_context(ctx: dict | None) -> dict | None:
    if ctx is None:
        return None
    keep = ("method", "search", "model", "dataset", "seed", "budget", "time_limit")
    return {k: ctx.get(k) for k in keep}


class Previewer:
    """A one-process render pool kept warm between jobs (started in the background, replaced when the
    synth, rate or lock set changes) for pictures of the current best and Pareto auditions."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._pool = None
        self._starting: threading.Thread | None = None

    def prepare(self, spec) -> None:
        key = (spec.name, int(spec.sample_rate), spec.space.free_signature(), spec.space.lock_signature())
        with self._lock:
            if self._key == key:
                return
            old, self._pool, self._key = self._pool, None, key
        if old is not None:
            old.close()

        def start() -> None:
            try:
                pool = RenderPool(spec, 1, stall_timeout=30)
            except Exception as exc:  # noqa: BLE001 - no previews, the match itself is unaffected
                log.warning("preview render pool did not start: %s", exc)
                return
            with self._lock:
                if self._key == key and self._pool is None:
                    self._pool = pool
                    return
            pool.close()

        self._starting = threading.Thread(target=start, name="asm-serve-preview", daemon=True)
        self._starting.start()

    def pool(self, wait: float = 0.0):
        """The warm pool, or None when it is not up (``wait`` seconds at most)."""
        thread = self._starting
        if wait and thread is not None:
            thread.join(wait)
        with self._lock:
            return self._pool

    def close(self) -> None:
        thread = self._starting
        if thread is not None:
            thread.join(60)
        with self._lock:
            pool, self._pool, self._key = self._pool, None, None
        if pool is not None:
            pool.close()


def preview_spec(synth: str, model_id: int | None):
    """The spec the search renders with: the model's sample rate when a model drives it."""
    with session_scope() as session:
        row = get_synth(session, synth)
        model = session.get(Model, model_id) if model_id is not None else None
        rate = int(model.sample_rate) if model is not None else render_defaults(row).sample_rate
        return spec_of(row, rate)


class JobQueue:
    """Match jobs run one at a time by one worker thread; at most ``max_waiting`` wait for it."""

    def __init__(self, workers: int | str = "auto", max_waiting: int = 8, previews: bool = True):
        self.workers = workers
        self.max_waiting = max_waiting
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_waiting)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.previewer = Previewer() if previews else None

    def submit(self, target: Target, options: dict) -> Job:
        """Queue a match of ``target``; ``Busy`` when the queue is full."""
        job = Job(uuid.uuid4().hex, target, dict(options))
        with self._lock:
            if self._closed:
                raise Busy("the server is shutting down")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise Busy(f"busy: {self.max_waiting} jobs are already waiting; try again in a minute") from None
            self.jobs[job.id] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="asm-serve-jobs", daemon=True)
                self._thread.start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def waiting(self) -> int:
        return self._queue.qsize()

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in TERMINAL:
            return job
        job.cancel_event.set()
        if job.state == "queued":
            job.touch(state="cancelled", phase="cancelled before it started", finished=time.time())
        else:
            job.touch(phase="cancelling")
        return job

    def close(self, timeout: float = 60.0) -> None:
        """Cancel what runs and waits, stop the worker, close the preview pool."""
        with self._lock:
            self._closed = True
            pending = [job for job in self.jobs.values() if job.state not in TERMINAL]
            thread = self._thread
        for job in pending:
            self.cancel(job.id)
        if thread is not None:
            while True:
                try:
                    self._queue.put(None, timeout=1)
                    break
                except queue.Full:
                    if not thread.is_alive():
                        break
            thread.join(timeout)
        if self.previewer is not None:
            self.previewer.close()

    # -- the worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancel_event.is_set():
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - the worker outlives any one job
                log.exception("job %s failed", job.id)

    def _run(self, job: Job) -> None:
        out_dir = job.folder / "out"
        o = job.options
        opts = MatchOptions(target=job.target.audio_path, synth=o["synth"], method=o.get("method"),
                            model=o.get("model"), dataset=o.get("dataset"), search=o.get("search") or "asm",
                            budget=o.get("budget"), time_limit=o.get("time_limit"), note=o.get("note") or "auto",
                            midi=job.target.midi_path, seed=int(o.get("seed") or 0), out_dir=out_dir,
                            workers=self.workers)
        job.touch(state="running", phase="reading the target and loading the method", started=time.time())
        state = {"last_preview": 0.0, "previewed": None, "spec": None}

        def on_start(ctx: dict) -> None:
            if job.cancel_event.is_set():
                raise JobCancelled()
            if self.previewer is not None:
                try:
                    state["spec"] = preview_spec(o["synth"], ctx.get("model_id"))
                    self.previewer.prepare(state["spec"])
                except AsmError:
                    state["spec"] = None
            job.touch(context=ctx, budget=ctx.get("budget"), phase="starting the render pool")
            state["notes"], state["duration"] = ctx["notes"], job.target.analysis["picture"]["seconds"]

        def on_batch(archive) -> None:
            if job.cancel_event.is_set():
                raise JobCancelled()
            job.touch(renders=int(archive.renders), best=float(archive.best), curve=list(archive.curve),
                      phase="searching")
            now = time.monotonic()
            if (state["previewed"] != archive.best_index and now - state["last_preview"] >= PREVIEW_INTERVAL):
                state["last_preview"] = now
                state["previewed"] = archive.best_index
                self._preview(job, state, archive.best_values())

        try:
            doc = run_match(opts, on_start=on_start, on_batch=on_batch)
        except JobCancelled:
            self._discard(out_dir)
            job.touch(state="cancelled", phase="cancelled", message="cancelled: nothing was stored",
                      finished=time.time())
            return
        except AsmError as exc:
            self._discard(out_dir)
            job.touch(state="failed", phase="failed", message=str(exc), finished=time.time())
            return
        except Exception as exc:  # noqa: BLE001 - a crash is reported to the page, not raised
            log.exception("match job %s crashed", job.id)
            self._discard(out_dir)
            job.touch(state="failed", phase="failed", message=f"internal error: {type(exc).__name__}: {exc}",
                      finished=time.time())
            return
        files = self._artefacts(doc)
        job.touch(doc=doc, files=files, phase="rendering the top of the Pareto front")
        pareto = self._audition(job, doc, files)
        job.touch(state="done", phase="done", pareto=pareto, files=files, finished=time.time(),
                  renders=int(doc["renders"]), curve=[tuple(c) for c in doc["curve"]],
                  best=float(doc["metrics"]["mr-stft"]))

    @staticmethod
    def _discard(out_dir: Path) -> None:
        """Remove a failed job's outputs unless a stored run points at them."""
        if not out_dir.exists():
            return
        with session_scope() as session:
            kept = session.scalar(select(Run.id).where(Run.report_path == str(out_dir)))
        if kept is None:
            shutil.rmtree(out_dir, ignore_errors=True)

    @staticmethod
    def _artefacts(doc: dict) -> dict[str, Path]:
        return artefacts_of(doc["files"])

    def _preview(self, job: Job, state: dict, best_free: np.ndarray) -> None:
        pool = self.previewer.pool() if self.previewer is not None and state["spec"] is not None else None
        if pool is None:
            return
        try:
            audio = pool.render(np.asarray(best_free)[None], state["notes"], state["duration"], free=True)[0]
        except Exception as exc:  # noqa: BLE001 - a preview never stops the search
            log.warning("preview render failed: %s", exc)
            return
        if audio is not None:
            top = job.target.analysis["picture"]["spectrogram"]["top_db"]
            job.touch(preview={"renders": int(job.renders), "best": job.best,
                               "spectrogram": spectrogram(audio, state["spec"].sample_rate, top)})

    def _audition(self, job: Job, doc: dict, files: dict[str, Path]) -> list[dict]:
        """Render each preset of the Pareto front for the page (``pareto-K.wav``), with its loudness."""
        for name in ("target.wav", "match.wav"):
            if name in files:
                audio, _ = read_audio(files[name])
                doc.setdefault("loudness", {})[name] = loudness_db(audio.mean(axis=1))
        front = doc.get("front") or []
        items = [{"k": k, "mr-stft": f.get("mr-stft"), "source": f.get("source"), "scores": f.get("scores"),
                  "preset": f"pareto-{k}.preset" if f"pareto-{k}.preset" in files else None}
                 for k, f in enumerate(front, 1)]
        pool = None
        if self.previewer is not None and front:
            try:
                spec = preview_spec(doc["synth"], doc.get("model_id"))
                self.previewer.prepare(spec)
                pool = self.previewer.pool(wait=120)
            except AsmError:
                pool = None
        if pool is not None:
            notes = [Note(n["pitch"], n["velocity"], n["start"], n["duration"]) for n in doc["notes"]]
            values = np.asarray([f["values"] for f in front], dtype=np.float64)
            try:
                audios = pool.render(values, notes, float(doc["duration"]), free=True)
            except Exception as exc:  # noqa: BLE001 - auditions are a convenience
                log.warning("pareto renders failed: %s", exc)
                audios = [None] * len(front)
            folder = job.folder / "audition"
            folder.mkdir(parents=True, exist_ok=True)
            for item, audio in zip(items, audios):
                if audio is None:
                    continue
                name = f"pareto-{item['k']}.wav"
                files[name] = write_audio(folder / name, audio, int(doc["sample_rate"]))
                item["audio"] = name
                item["loudness_db"] = loudness_db(audio)
        return items


def sweep_unfinished() -> int:
    """Remove the output directories of jobs a killed server left unfinished (no stored run points at
    them); returns how many. Stored matches keep their files."""
    root = serve_dir() / "jobs"
    if not root.is_dir():
        return 0
    with session_scope() as session:
        kept = {Path(p).resolve() for p in session.scalars(select(Run.report_path).where(Run.kind == "match")) if p}
    removed = 0
    for out in root.glob("*/out"):
        if out.resolve() in kept or _stored_doc(out / "match.json"):
            continue
        shutil.rmtree(out.parent, ignore_errors=True)
        removed += 1
    return removed


def _stored_doc(path: Path) -> bool:
    """match.json gets its run id only once the rows are committed."""
    try:
        return json.loads(path.read_text()).get("run_id") is not None
    except (OSError, ValueError, AttributeError):
        return False


def artefacts_of(paths: dict) -> dict[str, Path]:
    """Fixed artefact names -> the files ``asm match`` wrote (the registry's or match.json's record)."""
    out: dict[str, Path] = {}

    def put(name: str, value) -> None:
        if value and Path(str(value)).is_file():
            out[name] = Path(str(value))

    put("preset", paths.get("preset"))
    put("preset.json", paths.get("preset_json") or (paths.get("preset") if str(paths.get("preset", "")).endswith(
        ".json") else None))
    put("match.wav", paths.get("match_audio"))
    put("target.wav", paths.get("target_audio"))
    put("spectrograms.png", paths.get("picture"))
    put("match.json", paths.get("match_json"))
    for k, p in enumerate(paths.get("pareto") or [], 1):
        put(f"pareto-{k}.preset", p)
    return out
