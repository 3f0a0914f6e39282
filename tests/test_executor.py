"""The render executor: ordered batch renders, per-worker reductions, crashed and hung workers."""

import os

import numpy as np
import pytest
from conftest import run_cli_process

from asm.audio.signal import peak_dbfs
from asm.errors import AsmError
from asm.midi.notes import held
from asm.registry.db import session_scope
from asm.registry.synth_loader import load_spec
from asm.render import RenderPool, ShardExecutor, resolve_workers
from asm.synth.host import open_synth

pytest_plugins = ["plugin_helpers"]  # fixtures: crashy_plugin


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


def test_the_render_layer_imports_none_of_its_callers():
    import subprocess
    import sys

    code = ("import sys, asm.render, asm.render.ray; "
            "print([m for m in sys.modules if m.split('.')[:2] in (['asm', 'data'], ['asm', 'models'], "
            "['asm', 'search'], ['asm', 'match'], ['asm', 'bench'], ['asm', 'cli'])])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_batch_renders_come_back_in_order_and_equal_serial_renders(tmp_path):
    spec = _spec()
    space = spec.space
    values = space.full(space.random_free(np.random.default_rng(1), 25))
    notes = held([57, 64], 90, 0.3)
    serial = open_synth(spec)
    want = [serial.render(v, notes, 0.5) for v in values]
    events = []
    with RenderPool(spec, 2, on_event=events.append) as pool:
        assert isinstance(pool, ShardExecutor)
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


def test_the_stall_timeout_follows_the_render_length_and_a_hang_costs_only_that():
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings
    from asm.progress import RecordingReporter
    from asm.render import stall_timeout_for

    assert stall_timeout_for(0.5) == 60 and stall_timeout_for(10) == 200  # not the flat 300 s of before
    rec = RecordingReporter()
    s = DatasetSettings(synth="asm-sub", size=8, duration=0.3, note_off=0.2, shard_size=8)
    info = generate_dataset("hang", s, workers=1, fault={"hang_slots": [3]}, stall_timeout=2.0,
                            reporter=rec)
    assert info["status"] == "complete" and info["rejections"]["crashed"] == 1
    assert any("made no progress for 2 s" in e for e in rec.messages())


def test_bad_stall_timeouts_exit_2_with_one_line(cli):
    r = cli("generate-dataset", "x", "--size", "4", "--stall-timeout", "0")
    assert r.code == 2 and "--stall-timeout must be a positive" in r.err and r.err.strip().count("\n") == 0


def _crashy_registry(cli, crashy_plugin) -> dict:
    from asm.paths import data_dir

    assert cli("register-synth", "crashy", "--path", crashy_plugin).code == 0
    return {"ASM_DATA": str(data_dir()), "ASM_DB": os.environ["ASM_DB"], "HOME": os.environ["HOME"]}


def test_a_plugin_crashing_on_a_tenth_of_presets_still_makes_its_dataset(cli, crashy_plugin):
    """The crashy plugin segfaults on presets with tone >= 0.9. One 160-example shard meets more than
    16 of them (the old per-job limit); each is rejected, the dataset completes, and the count shows."""
    env = {**_crashy_registry(cli, crashy_plugin), "CRASHY_MODE": "presets"}
    r = run_cli_process("generate-dataset", "crashes", "--synth", "crashy", "--size", "160", "--shard-size", "160",
                        "--workers", "1", "--duration", "0.2", "--note-off", "0.1", "--sr", "16000", env=env)
    assert r.returncode == 0, r.stderr
    info = cli("show-dataset", "crashes", "--json").json()
    crashed = info["rejections"]["crashed"]
    assert info["status"] == "complete" and crashed > 16
    share = 100 * crashed / (160 + crashed)
    assert 5 < share < 20
    assert f"{crashed} presets crashed the plugin ({share:.1f}%)" in r.stdout
    assert f"{crashed} presets crashed the plugin ({share:.1f}%)" in cli("show-dataset", "crashes").out
    assert cli("verify-dataset", "crashes").code == 0
    from asm.data.torch_dataset import ShardDataset

    ds = ShardDataset("crashes", None)
    assert all(ds.params(i)[1] < 0.9 for i in range(160))  # no label of a crashing preset


def test_an_example_whose_every_preset_crashes_stops_generation_with_one_line(monkeypatch):
    from asm.data import shardgen
    from asm.data.generate import generate_dataset
    from asm.data.settings import DatasetSettings

    monkeypatch.setattr(shardgen, "MAX_CRASHES_PER_EXAMPLE", 4)  # checked in this process; 16 restarts cost ~15 s
    s = DatasetSettings(synth="asm-sub", size=8, duration=0.3, note_off=0.2, shard_size=8)
    with pytest.raises(AsmError, match="asm-sub crashed on 4 different presets for example 2"):
        generate_dataset("doomed", s, workers=1, fault={"doomed_slots": [2]})


def test_a_redone_shard_resumes_from_its_checkpoint_and_equals_one_built_in_one_go(tmp_path):
    """After a crash at example 17 the redo starts at 16 (the last saved feature batch), not at 0."""
    from dataclasses import replace

    from asm.data.generate import Reporter, _job, _prepare
    from asm.data.settings import DatasetSettings
    from asm.data.shardgen import GenerationContext, build_shard, checkpoint_of

    s = DatasetSettings(synth="asm-sub", size=24, duration=0.3, note_off=0.2, shard_size=24)
    spec, s, plan, _ = _prepare("ckpt", s, Reporter())
    ctx = GenerationContext("ckpt", str(tmp_path), s, np.sort(plan.keys), plan.spare)
    synth = open_synth(spec, isolate=False)
    job = replace(_job(plan, 0, "shard.safetensors"), crashed=frozenset({(5, 0)}))

    class Crash(Exception):
        pass

    class Marks:
        def __init__(self, crash_at=None):
            self.crash_at, self.positions = crash_at, []

        def mark(self, position, attempt):
            self.positions.append(position)
            if position == self.crash_at:
                raise Crash  # where the plugin would kill the worker

        def done(self, count):
            pass

    with pytest.raises(Crash):
        build_shard(synth, ctx, job, Marks(crash_at=17), checkpoint_of(ctx, job))
    job = replace(job, crashed=job.crashed | {(17, 0)})
    marks = Marks()
    resumed, stats = build_shard(synth, ctx, job, marks, checkpoint_of(ctx, job))
    assert min(p for p in marks.positions if p >= 0) == 16
    whole, whole_stats = build_shard(synth, ctx, job)
    assert resumed.keys() == whole.keys() and all(np.array_equal(resumed[k], whole[k]) for k in whole)
    assert stats["rejections"] == whole_stats["rejections"] and whole_stats["rejections"]["crashed"] == 2
