"""``asm serve``'s API through FastAPI's test client: upload, job, live progress, result, downloads,
history, cancellation, a full queue and bad files. Real renders, a real registry file."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from plugin_paths import needs_amsynth

pytest_plugins = ["plugin_helpers"]


@pytest.fixture(scope="module")
def target_wav(tmp_path_factory) -> bytes:
    """A rendered asm-sub note (A3, square wave), as the bytes of a WAV file."""
    from asm.registry.db import dispose_engines

    home = tmp_path_factory.mktemp("render")
    import os

    old = {k: os.environ.get(k) for k in ("ASM_DATA", "ASM_DB")}
    os.environ["ASM_DATA"], os.environ["ASM_DB"] = str(home), f"sqlite:///{home / 'asm.db'}"
    try:
        from asm.cli import run

        out = home / "target.wav"
        assert run(["render", "--synth", "asm-sub", "--note", "57", "--duration", "1.0", "--note-off", "0.6",
                    "--set", "osc1_wave=square", "--set", "cutoff=0.45", "--out", str(out)]) == 0
        dispose_engines()
        return out.read_bytes()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client(**kwargs) -> TestClient:
    from asm.serve.app import create_app

    return TestClient(create_app(workers=1, **kwargs))


def _stored() -> tuple[int, int, int]:
    from asm.registry.db import session_scope
    from asm.registry.models import Preset, Result, Run

    with session_scope() as session:
        return (session.query(Run).count(), session.query(Result).count(),
                session.query(Preset).filter(Preset.origin == "matched").count())


def _events(client: TestClient, job_id: str) -> list[dict]:
    out = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
    return out


def _wait(client: TestClient, job_id: str, until, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the state: {job}")


def test_upload_match_live_progress_result_downloads_and_history(target_wav, asm_home):
    from asm.presets import jsonpreset
    from asm.registry.db import session_scope
    from asm.registry.models import Result, Run
    from asm.registry.synth_loader import load_spec

    with _client() as client:
        config = client.get("/api/config").json()
        assert config["defaults"]["budget"] == 1500 and config["defaults"]["method"] == "auto"
        assert "asm-sub" in config["synths"] and "nsga2" in config["methods"]
        up = client.post("/api/targets", files={"file": ("my sound?.wav", target_wav, "audio/wav")})
        assert up.status_code == 201, up.text
        target = up.json()
        assert [n["pitch"] for n in target["notes"]] == [57] and target["notes_from"] == "detected"
        spec = target["picture"]["spectrogram"]
        assert len(__import__("base64").b64decode(spec["data"])) == spec["bins"] * spec["frames"]
        assert abs(target["picture"]["seconds"] - 1.0) < 0.05 and len(target["picture"]["waveform"]["max"]) > 100

        r = client.post("/api/jobs", data={"target_id": target["id"], "method": "nsga2", "budget": "60", "seed": "2"})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        events = _events(client, job_id)
        final = events[-1]
        assert final["state"] == "done", final["message"]
        searching = [e for e in events if e["phase"] == "searching"]
        assert searching and all(0 < e["renders"] <= 60 for e in searching)
        renders = [e["renders"] for e in events]
        assert renders == sorted(renders)  # progress only moves forward
        assert all(b[2] <= a[2] for a, b in zip(final["curve"], final["curve"][1:]))  # best-so-far falls

        result = final["result"]
        assert result["renders"] == 60 and result["method"] == "nsga2" and result["synth"] == "asm-sub"
        assert result["metrics"]["mr-stft"] == pytest.approx(final["best"])
        assert result["pareto"] and all(p.get("audio") for p in result["pareto"])
        assert set(result["loudness"]) == {"target.wav", "match.wav"}
        files = result["files"]
        assert {"preset", "preset.json", "match.wav", "target.wav", "spectrograms.png", "match.json",
                "pareto-1.wav", "pareto-1.preset"} <= set(files)

        preset = client.get(files["preset"])
        assert preset.status_code == 200 and "attachment" in preset.headers["content-disposition"]
        assert "my_sound-match.json" in preset.headers["content-disposition"]
        audio, rate = sf.read(io.BytesIO(client.get(files["match.wav"]).content))
        assert rate == 16000 and len(audio) > 0.9 * rate and np.abs(audio).max() > 0
        assert client.get(files["spectrograms.png"]).content[:8] == b"\x89PNG\r\n\x1a\n"
        assert client.get(files["pareto-1.wav"]).status_code == 200

        # the downloaded preset is the stored match: it decodes to the reported values
        path = asm_home / "download.json"
        path.write_bytes(preset.content)
        with session_scope() as session:
            space = load_spec(session, "asm-sub").space
            (decoded,) = jsonpreset.decode(path, "asm-sub", space)
            named = decoded.named or dict(zip([p.name for p in space.params], decoded.values))
            run = session.get(Run, result["run_id"])
            row = session.get(Result, result["result_id"])
            assert run.kind == "match" and run.status == "complete" and row.renders == 60
        assert named == pytest.approx(result["preset"])

        # history: the run is listed, its detail and artefacts are served by run id
        runs = client.get("/api/runs").json()
        assert runs[0]["id"] == result["run_id"] and runs[0]["kind"] == "match"
        assert runs[0]["mr_stft"] == pytest.approx(result["metrics"]["mr-stft"])
        detail = client.get(f"/api/runs/{result['run_id']}").json()
        assert detail["summary"][0]["method"] == "nsga2" and "match.wav" in detail["files"]
        assert client.get(detail["files"]["match.wav"]).content == client.get(files["match.wav"]).content
        assert client.get("/api/runs/999").status_code == 400
        assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/jobs", "/api/targets",
                                                                      "/api/jobs/{job_id}/events"}
    with _client(previews=False) as restarted:  # a new server keeps stored matches' files
        assert restarted.get(detail["files"]["preset"]).content == preset.content


def test_bad_files_and_requests_get_one_clear_error_and_store_nothing(target_wav, asm_home, tmp_path):
    silent = io.BytesIO()
    sf.write(silent, np.zeros(16000, np.float32), 16000, format="WAV")
    orphan = asm_home / "serve" / "jobs" / "0123abcd" / "out"  # a job a killed server left half-written
    orphan.mkdir(parents=True)
    (orphan / "match.wav").write_bytes(b"partial")
    with _client(max_upload_mb=0.05, previews=False) as client:
        assert not orphan.parent.exists()
        cases = [
            (("a.wav", b"", "audio/wav"), 400, "empty"),
            (("a.wav", b"RIFF not really a wave file at all" * 10, "audio/wav"), 400, "cannot read"),
            (("notes.txt", b"hello", "text/plain"), 400, "must be one of"),
            (("silent.wav", silent.getvalue(), "audio/wav"), 400, "silent"),
            (("big.wav", target_wav, "audio/wav"), 413, "upload limit"),  # 64 kB > 50 kB
        ]
        for upload, code, words in cases:
            r = client.post("/api/targets", files={"file": upload})
            assert r.status_code == code, (upload[0], r.text)
            assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
        r = client.post("/api/targets", files={"file": ("a.wav", target_wav[:30000], "audio/wav"),
                                               "midi": ("n.mid", b"MThd garbage", "audio/midi")})
        assert r.status_code == 400 and "MIDI" in r.json()["detail"]
        assert client.post("/api/targets", data={"synth": "no-such-synth"},
                           files={"file": ("a.wav", target_wav[:30000], "audio/wav")}).json()["detail"].startswith(
            "unknown synth")
        r = client.post("/api/jobs", data={"target_id": "0" * 32})
        assert r.status_code == 404
        assert client.post("/api/jobs", data={"method": "magic"}).json()["detail"].startswith("unknown method")
        assert client.post("/api/jobs", data={"budget": "0"}).status_code == 400
        assert client.post("/api/jobs", data={}).status_code == 400
        assert client.get("/api/jobs/nope").status_code == 404
        # a job that fails once it runs says why, and stores nothing
        tid = client.post("/api/targets", files={"file": ("t.wav", target_wav[:30000], "audio/wav")}).json()["id"]
        failed = client.post("/api/jobs", data={"target_id": tid, "method": "model"}).json()["id"]
        job = _wait(client, failed, lambda j: j["state"] in ("done", "failed", "cancelled"))
        assert job["state"] == "failed" and "needs a trained model" in job["message"]
        r = client.post("/api/targets", content=b"x" * 2_000_000,
                        headers={"content-type": "multipart/form-data; boundary=zz"})
        assert r.status_code == 413  # refused from its Content-Length, before the body is read
        # no client path reaches the filesystem: only fixed artefact names of known jobs are served
        assert client.get("/api/jobs/nope/files/..%2F..%2Fasm.db").status_code == 404
        assert client.get("/api/runs/1/report/..%2Fasm.db").status_code in (400, 404)
    assert _stored() == (0, 0, 0)
    targets = asm_home / "serve" / "targets"
    assert len(list(targets.iterdir())) == 1  # only the accepted upload: refused ones leave no files


def test_cancel_a_running_and_a_queued_job_leaves_the_registry_as_it_was(target_wav, asm_home):
    with _client(previews=False) as client:
        tid = client.post("/api/targets", files={"file": ("t.wav", target_wav, "audio/wav")}).json()["id"]
        running = client.post("/api/jobs", data={"target_id": tid, "method": "nsga2", "budget": "100000"}).json()["id"]
        queued = client.post("/api/jobs", data={"target_id": tid, "method": "nsga2", "budget": "60"}).json()["id"]
        assert client.get(f"/api/jobs/{queued}").json()["state"] == "queued"
        assert client.post(f"/api/jobs/{queued}/cancel").json()["state"] == "cancelled"
        _wait(client, running, lambda j: j["renders"] > 0)
        client.post(f"/api/jobs/{running}/cancel")
        job = _wait(client, running, lambda j: j["state"] in ("done", "failed", "cancelled"))
        assert job["state"] == "cancelled" and "nothing was stored" in job["message"]
        assert 0 < job["renders"] < 100000 and "result" not in job
        assert client.get(f"/api/jobs/{queued}").json()["renders"] == 0
        assert not (asm_home / "serve" / "jobs" / running / "out").exists()
        assert client.get("/api/runs").json() == []
    assert _stored() == (0, 0, 0)


def test_twenty_concurrent_uploads_each_get_a_job_id_or_a_clear_busy(target_wav, asm_home):
    with _client(max_waiting=2, previews=False) as client:
        answers: list = [None] * 20

        def post(i: int) -> None:
            r = client.post("/api/jobs", data={"method": "nsga2", "budget": "100000"},
                            files={"file": (f"t{i}.wav", target_wav, "audio/wav")})
            answers[i] = (r.status_code, r.json())

        threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        codes = [a[0] for a in answers]
        assert set(codes) <= {201, 503}, answers
        accepted = [a[1]["id"] for a in answers if a[0] == 201]
        assert 1 <= len(accepted) <= 3 and codes.count(503) >= 17
        assert all(a[1]["detail"].startswith("busy") for a in answers if a[0] == 503)
        assert len(set(accepted)) == len(accepted)
    # closing the app cancelled them: nothing half-stored
    assert _stored() == (0, 0, 0)


def test_loudness_tracks_level_and_ignores_silence():
    from asm.serve.pictures import loudness_db

    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    assert loudness_db(tone) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert loudness_db(tone / 2) == pytest.approx(loudness_db(tone) - 6.02, abs=0.1)
    assert loudness_db(np.concatenate([tone, np.zeros(48000)])) == pytest.approx(loudness_db(tone), abs=0.2)


def test_serve_command_binds_localhost_by_default(cli):
    r = cli("serve", "--help")
    assert r.code == 0 and "127.0.0.1" in r.out and "8765" in r.out
    assert cli("serve", "--port", "0").code == 2
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = cli("serve", "--port", str(taken.getsockname()[1]))
    assert r.code == 2 and "cannot listen on 127.0.0.1" in r.err and r.err.strip().count("\n") == 0


def test_a_polyphonic_target_with_its_midi_file_is_matched_on_those_notes(cli, tmp_path):
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for k, pitch in enumerate((48, 52, 55)):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0 if k else 240))
    for k, pitch in enumerate((48, 52, 55)):
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=0 if k else 720))
    mid.save(tmp_path / "chord.mid")
    assert cli("render", "--midi", tmp_path / "chord.mid", "--out", tmp_path / "chord.wav").code == 0
    with _client(previews=False) as client:
        up = client.post("/api/targets", files={"file": ("chord.wav", (tmp_path / "chord.wav").read_bytes(), "audio/wav"),
                                                "midi": ("chord.mid", (tmp_path / "chord.mid").read_bytes(), "audio/midi")})
        assert up.status_code == 201, up.text
        target = up.json()
        assert target["midi"] and target["notes_from"] == "midi"
        assert sorted(n["pitch"] for n in target["notes"]) == [48, 52, 55]
        job = client.post("/api/jobs", data={"target_id": target["id"], "method": "nsga2", "budget": "16"}).json()
        final = _events(client, job["id"])[-1]
        assert final["state"] == "done", final["message"]
        assert final["result"]["notes_from"] == "midi" and len(final["result"]["notes"]) == 3


@needs_amsynth
def test_an_amsynth_match_downloads_as_fxp_and_json(cli, amsynth_registry, tmp_path):
    from asm.presets import fxp

    target = tmp_path / "strings.wav"
    assert cli("render", "--synth", "amsynth", "--preset", "Synth Strings 1", "--note", "C3", "--duration", "1.0",
               "--note-off", "0.7", "--out", target).code == 0
    with _client() as client:
        up = client.post("/api/targets", data={"synth": "amsynth"},
                         files={"file": ("strings.wav", target.read_bytes(), "audio/wav")})
        assert up.status_code == 201, up.text
        job = client.post("/api/jobs", data={"target_id": up.json()["id"], "synth": "amsynth", "method": "nsga2",
                                             "budget": "20"}).json()
        final = _events(client, job["id"])[-1]
        assert final["state"] == "done", final["message"]
        result = final["result"]
        assert result["synth"] == "amsynth" and result["preset_format"] == ".fxp"
        native = client.get(result["files"]["preset"])
        assert native.headers["content-disposition"].endswith('strings-match.fxp"')
        path = tmp_path / "download.fxp"
        path.write_bytes(native.content)
        item = fxp.read(path)
        assert item.magic == b"FxCk" and item.plugin_id == "amsy"
        as_json = client.get(result["files"]["preset.json"])
        assert json.loads(as_json.content)["synth"] == "amsynth"
        assert all(p.get("audio") for p in result["pareto"])  # the Pareto front rendered through the plugin


def test_history_serves_a_benchmark_run_and_its_report(asm_home):
    from bench_helpers import build_run

    run_id = build_run(n_targets=2)
    with _client(previews=False) as client:
        runs = client.get("/api/runs?kind=benchmark").json()
        assert [r["id"] for r in runs] == [run_id] and runs[0]["results"] == 2 * 3 + 3
        detail = client.get(f"/api/runs/{run_id}").json()
        assert {s["method"] for s in detail["summary"]} >= {"random", "nn", "nsga2"}
        page = client.get(detail["report"])  # written on first request when the run has none yet
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (asm_home / "reports" / f"run-{run_id}" / "index.html").is_file()
        import re

        linked = [src for src in re.findall(r'(?:src|href)="([^"#:]+)"', page.text) if not src.startswith("/")]
        assert linked and all(client.get(f"/api/runs/{run_id}/report/{src}").status_code == 200 for src in linked)
        assert client.get(f"/api/runs/{run_id}/report/..%2F..%2Fasm.db").status_code == 404
        assert client.get(f"/api/runs/{run_id}/report/../../asm.db").status_code in (404, 422)
        assert client.get(f"/api/runs/{run_id}/files/preset").status_code == 404  # a benchmark has no match files
