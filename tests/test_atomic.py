"""Atomic writes: a failed write leaves the old file and no temporary file; modes follow the umask."""

import os
import stat

import numpy as np
import pytest

from asm.atomic import TMP_PREFIX, atomic_path, write_bytes, write_json, write_npy, write_text
from asm.errors import AsmError


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TMP_PREFIX))


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_text(tmp_path / "a.json", "old\n")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a")
            1 / 0
    assert target.read_text() == "old\n" and _leftovers(tmp_path) == []

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_json(target, {"x": Unserialisable()})
    assert target.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_an_os_error_is_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(AsmError, match="cannot write .*missing/a.bin"):
        write_bytes(tmp_path / "missing" / "a.bin", b"x")
    target = write_bytes(tmp_path / "b.bin", b"old")
    with pytest.raises(AsmError, match="cannot write"):
        with atomic_path(target):
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_final_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        paths = [write_bytes(tmp_path / "a.fxp", b"x"), write_text(tmp_path / "b.txt", "x"),
                 write_npy(tmp_path / "c.npy", np.arange(3))]
        with atomic_path(tmp_path / "d.png") as tmp:  # a writer that opens the name itself
            tmp.write_bytes(b"png")
        paths.append(tmp_path / "d.png")
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert _leftovers(tmp_path) == []


def test_writers_replace_whole_contents(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": 1}, indent=None)
    assert path.read_text() == '{"a": 1}\n'
    write_npy(tmp_path / "v.npy", np.arange(5, dtype=np.int16))
    assert np.load(tmp_path / "v.npy").tolist() == [0, 1, 2, 3, 4]
    write_bytes(tmp_path / "v.npy", b"short")
    assert (tmp_path / "v.npy").read_bytes() == b"short"


def test_preset_and_midi_files_get_the_umask_mode_not_0600(tmp_path):
    from asm.midi.notes import Note
    from asm.midi.partition import write_midi
    from asm.presets import fxp

    old = os.umask(0o022)
    try:
        fxp.write(tmp_path / "p.fxp", fxp.FxProgram("amsy", "X", params=[0.5] * 4))
        write_midi(tmp_path / "n.mid", [Note(60, 100, 0.0, 0.5)])
    finally:
        os.umask(old)
    for name in ("p.fxp", "n.mid"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
