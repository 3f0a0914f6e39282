"""The preset format registry: one list that the importer, the exporter and match outputs share;
a format declared once (here by the test) imports and exports with no other edit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from asm.presets import formats
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes


def test_the_shipped_formats_and_who_gets_which():
    assert [f.name for f in formats.all_formats()] == ["fxp", "fxb", "vstpreset", "bank", "json"]
    from asm.match.outputs import native_extension
    from asm.presets.exporter import formats_for

    faust = SimpleNamespace(kind="faust", plugin_id=None)
    vst2 = SimpleNamespace(kind="vst2", plugin_id="abcd")
    amsynth = SimpleNamespace(kind="vst2", plugin_id="amsy")
    vst3 = SimpleNamespace(kind="vst3", plugin_id="0" * 32)
    assert formats_for(faust) == [".json"] and native_extension(faust) == ".json"
    assert formats_for(vst2) == [".fxp", ".fxb", ".json"] and native_extension(vst2) == ".fxp"
    assert formats_for(amsynth) == [".fxp", ".fxb", ".bank", ".json"] and native_extension(amsynth) == ".fxp"
    assert formats_for(vst3) == [".vstpreset", ".json"] and native_extension(vst3) == ".vstpreset"
    assert formats.readable_suffixes() == [".fxp", ".fxb", ".vstpreset", ".bank", ".json"]


def _read_values(path: Path, synth, space, data: bytes) -> list[DecodedPreset]:
    try:
        values = [float(line) for line in data.decode().split()]
    except ValueError:
        raise PresetFormatError(path, "not a list of numbers") from None
    return [DecodedPreset(path.stem, values=values, source_format="values")]


def _write_values(path: Path, synth, space, name: str, values) -> None:
    path.write_text("".join(f"{v!r}\n" for v in values))


@pytest.fixture
def values_format(monkeypatch):
    extra = formats.PresetFormat("values", (".values",), universal=True, read=_read_values, write=_write_values,
                                 order=45)
    shipped = formats.all_formats()
    monkeypatch.setattr(formats, "all_formats", lambda: (*shipped, extra))
    return extra


def test_a_declared_format_imports_and_exports_through_the_cli(values_format, cli, tmp_path):
    from asm.synth.builtin import ASM_SUB
    from asm.synth.params import ParameterSpace

    space = ParameterSpace(ASM_SUB.params)
    values = space.quantise(space.full(space.random_free(np.random.default_rng(2), 1))[0]).tolist()
    (tmp_path / "mine.values").write_text("\n".join(map(repr, values)))
    r = cli("import-presets", "--synth", "asm-sub", tmp_path / "mine.values", "--json")
    assert r.code == 0 and r.json()["imported"] == 1, r.out + r.err
    out = tmp_path / "again.values"
    r = cli("export-preset", "--synth", "asm-sub", "--preset", "mine", "--out", out)
    assert r.code == 0, r.err
    np.testing.assert_allclose([float(x) for x in read_bytes(out).split()], values)
    (tmp_path / "bad.values").write_text("one two")
    r = cli("import-presets", "--synth", "asm-sub", tmp_path / "bad.values", "--json")
    assert r.json()["failures"] == [{"file": str(tmp_path / "bad.values"), "reason": "not a list of numbers"}]
    r = cli("import-presets", "--synth", "asm-sub", tmp_path / "x.txt", "--json")
    assert "expected .fxp, .fxb, .vstpreset, .bank, .json or .values" in r.out
