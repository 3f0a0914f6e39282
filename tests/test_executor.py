"""The render executor: ordered batch renders, per-worker reductions, crashed and hung workers."""

import os

import numpy as np
import pytest

from asm.audio.signal import peak_dbfs
from asm.errors import AsmError
from asm.midi.notes import held
from asm.registry.db import session_scope
from asm.render import RenderPool, resolve_workers
from asm.synth.host import open_synth
from asm.synth.loader import load_spec


class CrashOnce:
    """A reduction that kills its worker the first time it runs anywhere (a plugin segfault)."""

    def __init__(self, marker: str, how: str = "segv"):
        self.marker, self.how = marker, how

    def __call__(self, audio):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return float(np.max(np.abs(audio)))
        os.close(fd)
        if self.how == "segv":
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        import time

        time.sleep(3600)  # hang


def _spec():
    with session_scope() as s:
        return load_spec(s, "asm-sub", 16000)


def test_workers_auto_is_the_core_count_and_bad_counts_are_refused():
    assert resolve_workers("auto") == len(os.sched_getaffinity(0))
    assert resolve_workers(3) == 3
    with pytest.raises(AsmError):
        resolve_workers("0")
    with pytest.raises(AsmError):
        resolve_workers("many")


def test_batch_renders_come_back_in_order_and_equal_serial_renders(tmp_path):
    spec = _spec()
    space = spec.space
    values = space.full(space.random_free(np.random.default_rng(1), 25))
    notes = held([57, 64], 90, 0.3)
    serial = open_synth(spec)
    want = [serial.render(v, notes, 0.5) for v in values]
    events = []
    with RenderPool(spec, 2, on_event=events.append) as pool:
        got = pool.render(values, notes, 0.5)
        assert len(got) == 25 and all(np.array_equal(a, b) for a, b in zip(got, want))
        peaks = pool.render(values, notes, 0.5, reduce=peak_dbfs)  # computed in the workers
        assert peaks == pytest.approx([peak_dbfs(a) for a in want])
        free = pool.render(space.free_part(values), notes, 0.5, free=True, reduce=peak_dbfs)
        assert free == peaks
        assert pool.render(np.zeros((0, space.size)), notes, 0.5) == []

        # a worker that segfaults on one candidate: that result is None, the rest are right
        crash = CrashOnce(str(tmp_path / "crashed"))
        pids = {w.process.pid for w in pool.workers}
        out = pool.render(values, notes, 0.5, reduce=crash)
        assert sum(x is None for x in out) == 1
        ok = [i for i, x in enumerate(out) if x is not None]
        assert [out[i] for i in ok] == pytest.approx([float(np.max(np.abs(want[i]))) for i in ok])
        assert any("SIGSEGV" in e for e in events)
        assert {w.process.pid for w in pool.workers} != pids and all(w.alive() for w in pool.workers)
        # the pool keeps working after the replacement
        assert pool.render(values[:4], notes, 0.5, reduce=peak_dbfs) == pytest.approx(peaks[:4])


def test_a_hung_worker_is_detected_killed_and_replaced(tmp_path):
    spec = _spec()
    values = spec.space.full(spec.space.random_free(np.random.default_rng(2), 6))
    events = []
    with RenderPool(spec, 2, stall_timeout=2.0, on_event=events.append) as pool:
        out = pool.render(values, held([60], 100, 0.3), 0.5, reduce=CrashOnce(str(tmp_path / "hung"), "hang"))
        assert sum(x is None for x in out) == 1 and sum(x is not None for x in out) == 5
        assert any("no progress" in e for e in events)


def test_a_synth_crash_during_generation_rejects_that_preset_and_the_dataset_completes():
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings
    from asm.data.store import verify_dataset
    from asm.progress import Message, RecordingReporter, StageFinished, StageProgress, StageStarted

    rec = RecordingReporter()
    s = DatasetSettings(synth="asm-sub", size=24, duration=0.5, note_off=0.3, shard_size=8)
    info = generate_dataset("crash", s, workers=2, fault={"crash_slots": [5, 17]}, reporter=rec)
    assert info["status"] == "complete" and info["rejections"]["crashed"] == 2
    crashes = [e for e in rec.of(Message) if "crashed on example" in e.text]
    assert len(crashes) == 2 and all(e.level == "warning" and e.stage == "generating crash" for e in crashes)
    assert rec.of(StageStarted) == [StageStarted("generating crash", 24, 0)]
    done = [e.done for e in rec.of(StageProgress, "generating crash")]
    assert done and done[-1] == 24 and max(done) == 24
    assert rec.events[-1] == StageFinished("generating crash")
    assert verify_dataset("crash")["ok"]
    from asm.data.shards import ShardFile
    from asm.data.torch_dataset import ShardDataset

    ds = ShardDataset("crash", None)
    attempts = np.concatenate([np.asarray(ShardFile(f)["attempts"]) for f in ds._files])
    assert attempts[5] == 1 and attempts[17] == 1 and attempts.sum() == 2


def test_a_synth_that_cannot_open_fails_with_one_line():
    from dataclasses import replace

    spec = replace(_spec(), path="builtin:missing")
    with pytest.raises(AsmError, match="cannot open synth"):
        RenderPool(spec, 1)


def test_perf_commands_report_their_figures_and_leave_nothing_behind(cli):
    r = cli("perf", "generate", "--n", "48", "--workers", "2", "--duration", "0.5", "--shard-size", "16", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["n"] == 48 and data["workers"] == 2 and data["examples_per_s"] > 0 and data["bare_rps"] > 0
    assert data["ratio"] == pytest.approx(data["examples_per_s"] / (2 * data["bare_rps"]))
    assert cli("list-datasets", "--json").json() == []  # the temporary dataset is gone
    r = cli("perf", "batch", "--population", "8", "--generations", "2", "--workers", "2", "--duration", "0.5", "--json")
    assert r.code == 0, r.err
    assert r.json()["pool_ms"] > 0 and r.json()["serial_ms"] > 0
