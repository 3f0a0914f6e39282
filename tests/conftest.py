"""Shared test fixtures: every test gets its own data directory and SQLite registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def asm_home(tmp_path, monkeypatch):
    """A fresh, isolated data directory and registry for each test."""
    home = tmp_path / "asm-data"
    monkeypatch.setenv("ASM_DATA", str(home))
    monkeypatch.setenv("ASM_DB", f"sqlite:///{home / 'asm.db'}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # plugins write user files under $HOME
    (tmp_path / "home" / ".local" / "share").mkdir(parents=True)
    return home


def tiny_locked_dataset(home: Path, free: tuple[str, ...], fixtures: list[str], size: int, workers: int) -> dict:
    """A registry in ``home`` with every asm-sub parameter but ``free`` locked at its default, ``fixtures``
    applied and a real dataset ``tiny`` of ``size`` 0.5 s examples; returns the environment that points at it
    (module-scoped homes shared by a test module's tests)."""
    env = {"ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from asm.cli import run
        from asm.registry.db import session_scope
        from asm.registry.synths import get_synth, space_of

        with session_scope() as s:
            space = space_of(get_synth(s, "asm-sub"))
        locks = [f"{p.name}={p.default}" for p in space.params if p.name not in free]
        assert run(["lock", "asm-sub", *locks]) == 0
        assert run(["update-registry", *fixtures]) == 0
        assert run(["generate-dataset", "tiny", "--synth", "asm-sub", "--size", str(size), "--duration", "0.5",
                    "--note-off", "0.3", "--seed", "3", "--workers", str(workers)]) == 0
    return env


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli("render", "--out", ...)`` -> CliResult(code, out, err)."""
    from asm.cli import run

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def run_cli_process(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``asm`` in a separate process (to prove persistence, exit codes and the absence of tracebacks)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "asm-cli.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )


def spectrum(audio: np.ndarray, sample_rate: int, pad: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrum (Hann window, zero-padded) and its frequency axis."""
    n = len(audio) * pad
    mag = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=n))
    return np.fft.rfftfreq(n, 1 / sample_rate), mag


def spectral_centroid(audio: np.ndarray, sample_rate: int) -> float:
    freqs, mag = spectrum(audio, sample_rate, pad=1)
    return float((freqs * mag).sum() / mag.sum())


def fundamental(audio: np.ndarray, sample_rate: int, lo: float = 50.0, hi: float = 2000.0) -> float:
    freqs, mag = spectrum(audio, sample_rate)
    band = (freqs >= lo) & (freqs <= hi)
    return float(freqs[band][np.argmax(mag[band])])
