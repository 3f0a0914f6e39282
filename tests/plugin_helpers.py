"""Fixtures for tests that need a real plugin: amsynth (Debian package) and a deliberately crashing one.

Test modules load them with ``pytest_plugins = ["plugin_helpers"]``; paths and the skip marker are
in plugin_paths.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run_cli_process
from plugin_paths import AMSYNTH, BANKS


def _env(home: Path) -> dict:
    (home / "home" / ".local" / "share").mkdir(parents=True, exist_ok=True)
    return {"ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}", "HOME": str(home / "home")}


@pytest.fixture(scope="session")
def amsynth_template(tmp_path_factory):
    """A registry with amsynth registered and every factory bank imported, built once per session."""
    if not AMSYNTH.is_file():
        pytest.skip("amsynth is not installed (make synths, or apt-get install amsynth)")
    home = tmp_path_factory.mktemp("amsynth-registry")
    env = _env(home)
    r = run_cli_process("register-synth", "amsynth", "--path", AMSYNTH, env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli_process("import-presets", "--synth", "amsynth", f"{BANKS}/*.bank", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return home / "asm.db", json.loads(r.stdout)


@pytest.fixture
def amsynth_registry(amsynth_template, asm_home):
    """This test's registry starts as a copy of the amsynth template."""
    db, summary = amsynth_template
    asm_home.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(db) + suffix)
        if src.exists():
            shutil.copy(src, Path(str(asm_home / "asm.db") + suffix))
    return summary


@pytest.fixture(scope="session")
def crashy_plugin(tmp_path_factory):
    """tests/data/crashy_vst.c built as a VST2 .so (skips when no C compiler is installed)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the crashing test plugin")
    out = tmp_path_factory.mktemp("crashy") / "crashy.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(ROOT / "tests" / "data" / "crashy_vst.c"), "-lm"],
                   check=True, capture_output=True)
    return out
