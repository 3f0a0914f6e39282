"""One progress protocol for long work: dataset generation, training, search, match, test-model, benchmarks.

Work reports through a ``Reporter``: ``start(stage, total)`` opens a stage (a bar), ``update(done)``
/ ``advance(n)`` move it (with optional figures such as ``best=0.93`` or ``loss=0.12``),
``event(text)`` says something worth reading (a crashed worker, a resumed checkpoint) and
``finish()`` closes the stage. Each call becomes one **event dataclass** handed to ``emit``, the one
method a display overrides, so a terminal bar (``asm.cli.progress.RichReporter``), a test
(``RecordingReporter``) and a web page all consume the same data. The base class is the no-op
default.

Several stages may be open at once (training shows ``epochs`` and ``batches``); calls without
``stage=`` go to the stage opened last.

This module is the bottom layer: it imports nothing of asm, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["info", "warning", "error"]
Figure = float | int | str


@dataclass(frozen=True)
class StageStarted:
    """A stage of ``total`` steps (None: unknown) began, ``done`` of them already done (a resume)."""

    stage: str
    total: int | None
    done: int = 0


@dataclass(frozen=True)
class StageProgress:
    """``done`` of ``total`` steps of ``stage`` are done; ``info``: figures to show (best, loss...)."""

    stage: str
    done: int
    total: int | None
    info: dict[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """Something the user should read, said during ``stage`` (None: outside any stage)."""

    text: str
    level: Level = "info"
    stage: str | None = None


@dataclass(frozen=True)
class StageFinished:
    stage: str


ProgressEvent = StageStarted | StageProgress | Message | StageFinished


class Reporter:
    """Progress of long work as event dataclasses; this base class drops them (the default)."""

    def __init__(self) -> None:
        self._stages: dict[str, list] = {}  # stage -> [done, total], in opening order

    # --- what a display overrides -------------------------------------------------------------
    def emit(self, event: ProgressEvent) -> None:
        """Receive one event (no-op here)."""

    # --- what work calls ----------------------------------------------------------------------
    def start(self, stage: str, total: int | None, done: int = 0) -> None:
        """Open ``stage`` (re-opening one restarts it)."""
        self._stages.pop(stage, None)
        self._stages[stage] = [int(done), None if total is None else int(total)]
        self.emit(StageStarted(stage, self._stages[stage][1], int(done)))

    def update(self, done: int, *, stage: str | None = None, total: int | None = None, **info: Figure) -> None:
        """``done`` steps of the stage are done so far (``total`` may change on the way)."""
        name = self._stage(stage)
        if name is None:
            return
        state = self._stages.setdefault(name, [0, total])
        state[0] = int(done)
        if total is not None:
            state[1] = int(total)
        self.emit(StageProgress(name, state[0], state[1], dict(info)))

    def advance(self, n: int = 1, *, stage: str | None = None, **info: Figure) -> None:
        """``n`` more steps of the stage are done."""
        name = self._stage(stage)
        if name is not None:
            self.update(self._stages.get(name, [0])[0] + int(n), stage=name, **info)

    def event(self, text: str, level: Level = "info") -> None:
        """Say ``text`` (also between stages)."""
        self.emit(Message(str(text), level, self._stage(None)))

    def finish(self, stage: str | None = None) -> None:
        """Close the stage (the last opened one by default); closing nothing is allowed."""
        name = self._stage(stage)
        if name is not None and self._stages.pop(name, None) is not None:
            self.emit(StageFinished(name))

    def _stage(self, stage: str | None) -> str | None:
        if stage is not None:
            return stage
        return next(reversed(self._stages), None)


class RecordingReporter(Reporter):
    """Keeps every event in ``events`` (tests, and anything that replays progress later)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[ProgressEvent] = []

    def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def of(self, kind: type, stage: str | None = None) -> list:
        """The recorded events of one type (and of one stage, or of stages starting with it)."""
        return [e for e in self.events if isinstance(e, kind)
                and (stage is None or (e.stage or "").startswith(stage))]

    def messages(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Message)]


class MessageReporter(Reporter):
    """Passes only messages on, as text, to ``say`` (for callers that print notes and draw no bars)."""

    def __init__(self, say) -> None:
        super().__init__()
        self.say = say

    def emit(self, event: ProgressEvent) -> None:
        if isinstance(event, Message):
            self.say(event.text)
