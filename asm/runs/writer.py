"""The one writer of ``run`` and ``result`` rows: ``asm match``, ``asm test-model`` and the benchmarks.

A run has a kind (``RUN_KINDS``), a status (``running`` -> ``complete``, ``failed`` or
``interrupted``), its settings and a summary; each result row is one method's answer for one
target. Scores live in the row's columns (``metrics``: ``asm.audio.metrics.REPORT_METRICS`` by
name, ``param_mae``, ``param_accuracy``, ``renders``, ``seconds``, ``values``, ``notes``), and
everything else in ``result.extra``, whose layout is the same for every kind of run (the report,
``asm.bench.report``, reads only these keys; paths as ``asm.runs.files.data_relative``):

* ``"sample_rate"``: rate of the audio (int);
* ``"target_audio"``: the target as WAV, shared by the rows of one target;
* ``"audio"``: this answer rendered with the target's notes, for the target's length, WAV;
* ``"picture"``: PNG of the target's and the answer's spectrograms (``asm match``);
* ``"preset"``: the answer as a preset file in the synth's native format (``asm match``);
* ``"curve"``: ``[[renders, seconds, best_mr_stft], ...]``, best so far after each improvement in
  ascending renders (searches: ``asm.search`` archives give exactly this);
* ``"target_label"``: the target's display name;
* ``"stopped"``, ``"best_source"``: why a search stopped, where its best answer came from;
* ``"target_noisiness"``, ``"match_noisiness"``: ``asm.audio.analysis.noisiness`` (gated spectral
  flatness) of the target audio and of this answer's render (benchmarks; ``asm.bench.noisiness``
  defines their ratio; no ``"match_noisiness"`` when the answer did not render);
* ``"rerender_floor"``: the synth's re-render floor measured for the row's target set, the same on
  every row of the set (benchmarks; layout in ``asm.bench.rerender_floor``, added by ``annotate``
  once the set is answered);
* ``"files"``: ``{role: path}`` of every file ``asm match`` wrote (preset, preset_json, pareto,
  match_audio, target_audio, picture, match_json), and other method-specific keys (``objectives``,
  ``generations``, ``initial_population``, ``front`` for matches).

Audio the writer is given as an array goes to ``<data dir>/reports/run-<id>/media/``; a file that
already exists (``asm match`` writes its own) is referred to where it is. Each result row is
committed only after its files are on disk. As a context manager the writer marks the run
``complete`` on success, ``failed`` on an exception and ``interrupted`` on Ctrl-C; rows stored so far
stay, so ``asm results`` and ``asm report`` still show them. Registries written before this layout
get it through migration 0006 (match rows had their paths only under ``"files"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np
from sqlalchemy import select

from asm.audio.io import write_audio
from asm.data.store import code_version
from asm.errors import AsmError
from asm.paths import ensure_dir
from asm.registry.db import session_scope
from asm.registry.models import Result, Run
from asm.runs.files import data_relative, report_dir, slug
from asm.runs.read import record_of

RUN_KINDS = ("benchmark", "match", "test-model", "test-proxy")

Audio = np.ndarray | str | Path  # samples to write, or a file already written


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class RunWriter:
    """Creates a run, stores its results with their audio, and closes it with its summary.

    ``summarise``: turns the run's result records (``asm.runs.read.record_of``) into the run's
    summary when it closes without an explicit one (the benchmark passes its tables' statistics).
    """

    def __init__(self, kind: str, name: str = "", *, synth_id: int | None = None, dataset_id: int | None = None,
                 model_id: int | None = None, seed: int = 0, settings: dict | None = None,
                 summarise: Callable[[list[dict]], dict] | None = None):
        if kind not in RUN_KINDS:
            raise AsmError(f"unknown run kind {kind!r}")
        with session_scope() as session:
            run = Run(kind=kind, name=name, status="running", synth_id=synth_id, dataset_id=dataset_id,
                      model_id=model_id, seed=int(seed), settings=dict(settings or {}), code_version=code_version())
            session.add(run)
            session.flush()
            self.run_id = run.id
        self.dir = report_dir(self.run_id)
        self.summarise = summarise
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
        return ensure_dir(self.dir / "media" / slug(target_set) / slug(target, 80)) / f"{slug(name)}.wav"

    def _audio_file(self, audio: Audio, sample_rate: int, target_set: str, target: str, name: str) -> str:
        if isinstance(audio, (str, Path)):
            if not Path(audio).is_file():
                raise AsmError(f"audio file {audio} of a result does not exist")
            return data_relative(audio)

        path = write_audio(self._media_path(target_set, target, name), np.asarray(audio, np.float32), sample_rate)
        return data_relative(path)

    def add_target(self, target_set: str, target: str, audio: Audio, sample_rate: int) -> str:
        """Record the target's audio once; returns its stored path (``extra["target_audio"]``)."""
        key = (target_set, target)
        if key not in self._targets:
            self._targets[key] = self._audio_file(audio, sample_rate, target_set, target, "target")
        return self._targets[key]

    # --- rows -----------------------------------------------------------------------------------
    def add(self, **fields) -> int:
        """Store one method's answer for one target (fields as ``row``); returns the result id."""
        return self.add_many([fields])[0]

    def add_many(self, items: Iterable[Mapping]) -> list[int]:
        """Store several answers in one transaction (after all their files are written)."""
        rows = [self.row(**item) for item in items]
        with session_scope() as session:
            session.add_all(rows)
            session.flush()
            return [r.id for r in rows]

    def row(self, *, method: str, target_set: str, target: str, audio: Audio | None, sample_rate: int,
            target_audio: Audio | None = None, metrics: dict | None = None, notes: Sequence | None = None,
            values: Sequence[float] | None = None, param_mae: float | None = None,
            param_accuracy: float | None = None, renders: int = 0, seconds: float = 0.0,
            curve: Sequence[Sequence[float]] | None = None, picture: str | Path | None = None,
            preset_file: str | Path | None = None, target_label: str | None = None, model_id: int | None = None,
            preset_id: int | None = None, example_index: int | None = None, extra: dict | None = None):
        """An unsaved ``Result`` row of this run, its audio written (see the module for ``extra``).

        ``metrics`` default to ``REPORT_METRICS`` of ``audio`` against ``target_audio`` (both
        arrays); an unrenderable answer (``audio=None``) scores each metric's worst value.
        """
        if metrics is None:
            metrics = _score(audio, target_audio, sample_rate)
        if target_audio is not None:
            self.add_target(target_set, target, target_audio, sample_rate)
        info = {"sample_rate": int(sample_rate), **(extra or {})}
        if target_label is not None:
            info["target_label"] = str(target_label)
        if (target_set, target) in self._targets:
            info["target_audio"] = self._targets[(target_set, target)]
        if audio is not None:
            info["audio"] = self._audio_file(audio, sample_rate, target_set, target, method)
        if picture is not None:
            info["picture"] = data_relative(picture)
        if preset_file is not None:
            info["preset"] = data_relative(preset_file)
        if curve is not None:
            info["curve"] = [[int(r), round(float(s), 4), float(b)] for r, s, b in curve]
        return Result(run_id=self.run_id, method=method, target_set=target_set, target=target,
                      example_index=example_index, model_id=model_id, preset_id=preset_id,
                      metrics={k: float(v) for k, v in metrics.items()},
                      param_mae=_finite_or_none(param_mae), param_accuracy=_finite_or_none(param_accuracy),
                      renders=int(renders), seconds=float(seconds),
                      values=None if values is None else [float(v) for v in values],
                      notes=None if notes is None else [[int(n[0]), int(n[1]), float(n[2]), float(n[3])]
                                                        for n in notes],
                      extra=info)

    def annotate(self, target_set: str, extra: Mapping) -> int:
        """Merge ``extra`` into ``result.extra`` of every row of ``target_set`` stored so far (facts known
        only once the set is answered, such as its re-render floor); returns the rows changed."""
        from sqlalchemy import select

        from asm.registry.db import session_scope
        from asm.registry.models import Result

        with session_scope() as session:
            rows = session.scalars(select(Result).where(Result.run_id == self.run_id,
                                                        Result.target_set == target_set)).all()
            for r in rows:
                r.extra = {**(r.extra or {}), **extra}  # a new dict: JSON columns see reassignment only
            return len(rows)

    def finish(self, status: str = "complete", report_path: str | None = None, summary: dict | None = None) -> dict:
        """Close the run: status, finish time and its summary (``summary``, else ``summarise`` of its
        rows, else the summary it has); returns the summary."""
        with session_scope() as session:
            run = session.get(Run, int(self.run_id))
            if summary is None and self.summarise is not None:
                rows = session.scalars(select(Result).where(Result.run_id == run.id).order_by(Result.id)).all()
                summary = self.summarise([record_of(r) for r in rows])
            if summary is not None:
                run.summary = summary
            run.status = status
            run.finished_at = utcnow()
            if report_path is not None:
                run.report_path = report_path
            out = dict(run.summary or {})
        self.closed = True
        return out


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _score(audio, target_audio, sample_rate: int) -> dict[str, float]:
    from asm.audio.metrics import METRICS, REPORT_METRICS, distances

    if target_audio is None or isinstance(target_audio, (str, Path)):
        raise AsmError("metrics or the target's samples are needed to score a result")
    if audio is None:
        return {m: METRICS[m].worst for m in REPORT_METRICS}
    if isinstance(audio, (str, Path)):
        raise AsmError("metrics or the answer's samples are needed to score a result")
    return {k: float(v[0]) for k, v in distances(audio, target_audio, sample_rate, REPORT_METRICS).items()}
