"""The message protocol between a render pool and its workers: one frozen dataclass per message.

Parent to worker: ``Install``, ``Uninstall``, ``RunShard``, ``RenderBatch``, ``Stop``.
Worker to parent: ``Ready`` or ``Fatal`` once after start, then one ``ShardDone``, ``Rendered`` or
``Failed`` per job. Every reply names the ``job_id`` it answers, so a late reply from a replaced
job is recognised and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np


# ---- parent -> worker ------------------------------------------------------------------------
@dataclass(frozen=True)
class Install:
    """Keep ``obj`` under ``token`` (a shard work object or a reduction) until uninstalled."""

    token: int
    obj: Any


@dataclass(frozen=True)
class Uninstall:
    token: int


@dataclass(frozen=True)
class RunShard:
    """Run one shard ``job`` with the work object installed under ``token``."""

    job_id: int
    token: int
    job: Any


@dataclass(frozen=True)
class RenderBatch:
    """Render rows ``offset .. offset + len(values)`` of a batch; ``token`` names the reduction, if any."""

    job_id: int
    token: int | None
    values: np.ndarray
    notes: list  # one note list for all rows, or one per row (per_row)
    duration: float
    free: bool  # values hold only the free parameters
    offset: int
    per_row: bool


@dataclass(frozen=True)
class Stop:
    pass


# ---- worker -> parent ------------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    pid: int


@dataclass(frozen=True)
class Fatal:
    """The worker could not open its synth; it exits after sending this."""

    text: str


@dataclass(frozen=True)
class ShardDone:
    job_id: int
    result: Any


@dataclass(frozen=True)
class Rendered:
    job_id: int
    out: list


@dataclass(frozen=True)
class Failed:
    """A job raised: ``user`` errors (``AsmError``) carry one line, others a traceback."""

    job_id: int
    user: bool
    text: str


ToWorker = Union[Install, Uninstall, RunShard, RenderBatch, Stop]
FromWorker = Union[Ready, Fatal, ShardDone, Rendered, Failed]
JobReply = Union[ShardDone, Rendered, Failed]
