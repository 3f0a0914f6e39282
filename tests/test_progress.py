"""The progress protocol: calls become event dataclasses, stages nest, the default drops them."""

from __future__ import annotations

from asm.progress import Message, RecordingReporter, Reporter, StageFinished, StageProgress, StageStarted


def test_calls_become_events_of_the_stage_opened_last_unless_named():
    rec = RecordingReporter()
    rec.event("before any stage")
    rec.start("epochs", 3, done=1)
    rec.update(5, stage="batches", total=10, loss=0.5)  # a stage opened by its first update
    rec.advance()  # the last opened stage: batches
    rec.advance(2, stage="epochs", val=0.25, improved=True)
    rec.event("resumed", "warning")
    rec.finish()
    rec.finish("epochs")
    rec.finish()  # nothing open: no event
    assert rec.events == [
        Message("before any stage"),
        StageStarted("epochs", 3, 1),
        StageProgress("batches", 5, 10, {"loss": 0.5}),
        StageProgress("batches", 6, 10, {}),
        StageProgress("epochs", 3, 3, {"val": 0.25, "improved": True}),
        Message("resumed", "warning", "batches"),
        StageFinished("batches"),
        StageFinished("epochs"),
    ]
    assert rec.messages() == ["before any stage", "resumed"] and len(rec.of(StageProgress, "batch")) == 2


def test_a_subclass_overrides_emit_and_the_default_does_nothing():
    seen = []

    class Display(Reporter):
        def emit(self, event) -> None:
            seen.append(type(event).__name__)

    Reporter().start("x", None)  # the no-op default accepts every call
    d = Display()
    d.start("x", None)
    d.advance()
    d.finish()
    assert seen == ["StageStarted", "StageProgress", "StageFinished"]
