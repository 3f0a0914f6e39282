"""amsynth's factory presets: import, exactness against the plugin, export that the plugin loads."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import spectrum
from plugin_paths import BANKS, amsynth_spec, needs_amsynth

from asm.presets import amsynth_bank, fxp
from asm.synth.params import preset_hash

pytest_plugins = ["plugin_helpers"]  # fixtures: amsynth_registry, crashy_plugin

pytestmark = needs_amsynth


def original_presets(bank: Path) -> list[tuple[str, list[str]]]:
    """(name, verbatim parameter lines) per preset, split without asm's parser."""
    out = []
    for line in bank.read_text().splitlines():
        if line.startswith("<preset>"):
            out.append((line.split("<name>", 1)[1].strip(), []))
        elif line.startswith("<parameter>"):
            out[-1][1].append(line.strip())
    return out


def sample(per_bank: int = 4, seed: int = 3):
    rng = np.random.default_rng(seed)
    picks = []
    for bank in sorted(BANKS.glob("*.bank")):
        presets = original_presets(bank)
        for k in sorted(rng.choice(len(presets), size=min(per_bank, len(presets)), replace=False)):
            picks.append((bank, int(k), *presets[k]))
    return picks


def test_all_factory_banks_import(cli, amsynth_registry):
    summary = amsynth_registry  # registered and imported by the CLI in a separate process
    assert summary["failed"] == 0 and summary["imported"] + summary["duplicates"] == 3482
    assert summary["imported"] >= 3276
    data = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    assert data["preset_count"] == summary["imported"]
    r = cli("import-presets", "--synth", "amsynth", str(BANKS / "BriansBank0[12]*.bank"), "--json")
    assert r.code == 0 and r.json() == {"imported": 0, "duplicates": 256, "failed": 0, "failures": []}


def test_imported_values_are_exactly_what_the_plugin_reports(amsynth_registry):
    """Each sampled preset, verbatim from its bank, loaded by amsynth as its own program chunk (FXP
    FPCh) and read back with get_parameter, equals the registry's vector bit for bit."""
    from asm.registry.db import session_scope
    from asm.registry.models import Preset
    from asm.synth.plugin import PluginSynth

    picks = sample()
    items = []
    for bank, _, name, lines in picks:
        text = "\n".join(["amSynth1.0preset", f"<preset> <name> {name}", *lines]) + "\n"
        items.append((fxp.encode_program(fxp.FxProgram("amsy", name[:27], chunk=text.encode() + b"\0")), "fxp"))
    synth = PluginSynth(amsynth_spec())
    reported = synth.load_presets(items)  # starts each load from amsynth's defaults (old banks lack 5)
    with session_scope() as session:
        stored = {p.content_hash: list(p.values) for p in session.query(Preset)}
    for (bank, k, name, lines), values in zip(picks, reported):
        assert not isinstance(values, str), values
        vector = stored.get(preset_hash(values))
        assert vector is not None, f"{bank.name} #{k} {name} is not in the registry"
        assert vector == values, f"{bank.name} #{k} {name}"
        if len(lines) == 36:  # older banks: the last five parameters take amsynth's defaults
            assert values[36:] == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert sum(len(lines) == 36 for *_, lines in picks) >= 10


def test_bank_chunk_loading_agrees_within_one_float32_step():
    """REFERENCE.md's route (an FXB bank chunk) runs through the host's bank handling and is ~1000x
    slower; on a few presets it differs from the program-chunk values by at most one float32 step."""
    from asm.synth.plugin import PluginSynth

    picks = sample(per_bank=1, seed=11)[:8] + [(BANKS / "amsynth_factory.bank", 0,
                                                *original_presets(BANKS / "amsynth_factory.bank")[0])]
    synth = PluginSynth(amsynth_spec())
    for bank, k, name, lines in picks:
        text = "\n".join(["amSynth1.0preset", f"<preset> <name> {name}", *lines]) + "\n"
        chunk = text.encode() + b"\0"
        (bank_values,) = synth.load_presets([(fxp.encode_bank(fxp.FxBank("amsy", chunk=chunk, num_programs=1)), "fxp")])
        ours = amsynth_bank.normalise(amsynth_bank.parse_text(text)[0].raw)
        diff = np.abs(np.array(bank_values) - np.array([ours[n] for n in amsynth_bank.NAMES]))
        assert diff.max() <= 6e-8, (bank.name, k, name, diff.max())


def _render_pair(out: Path, values, preset_file_bytes):
    from asm.midi.notes import held
    from asm.synth.plugin import PluginSynth

    notes = held([60], 100, 1.0)
    synth = PluginSynth(amsynth_spec())
    from_registry = synth.render(np.array(values), notes, 1.5)
    synth.load_presets([(preset_file_bytes, "fxp")])
    assert synth.values() == pytest.approx(values, abs=0), "the plugin did not take the file's values"
    from_file = synth.play(notes, 1.5)
    _, a = spectrum(from_registry, 16000, pad=1)
    _, b = spectrum(from_file, 16000, pad=1)
    return float(np.linalg.norm(a - b) / np.linalg.norm(a)), float(np.abs(from_registry).max())


def test_an_exported_fxp_renders_the_same_spectrum_as_the_registry_values(cli, amsynth_registry, tmp_path):
    from asm.registry.db import session_scope
    from asm.registry.models import Preset

    with session_scope() as session:
        preset = session.query(Preset).filter(Preset.name == "Synth Strings 1").one()
        name, values = preset.name, list(preset.values)
    out = tmp_path / "strings.fxp"
    r = cli("export-preset", "--synth", "amsynth", "--preset", name, "--out", out)
    assert r.code == 0, r.err
    item = fxp.read(out)
    assert item.magic == b"FxCk" and item.plugin_id == "amsy" and item.name == name and item.params == values
    distance, peak = _render_pair(out, values, out.read_bytes())
    assert peak > 0.05 and distance < 0.02


def test_a_state_saved_by_amsynth_itself_imports(cli, amsynth_registry, tmp_path):
    """JUCE saves amsynth's state as an FXB bank chunk holding amsynth's preset text (6 digits)."""
    from asm.registry.db import session_scope
    from asm.registry.models import Preset
    from asm.synth.plugin import PluginSynth

    with session_scope() as session:
        values = list(session.query(Preset).filter(Preset.name == "Synth Strings 1").one().values)
    state = PluginSynth(amsynth_spec()).state(values)
    assert state[:4] == b"CcnK" and state[8:12] == b"FBCh" and b"amSynth1.0preset" in state
    (tmp_path / "saved.fxb").write_bytes(state)
    r = cli("import-presets", "--synth", "amsynth", tmp_path / "saved.fxb", "--json")
    assert r.code == 0 and r.json()["failed"] == 0, r.out
    with session_scope() as session:
        stored = session.query(Preset).filter(Preset.source_file == str(tmp_path / "saved.fxb")).all()
        got = list(stored[0].values) if stored else None
    if got is not None:  # a new preset: amsynth wrote its raw values rounded to 6 digits
        assert np.allclose(got, values, atol=2e-5)
    else:
        assert r.json()["duplicates"] == 1


def test_exports_import_back_as_duplicates(cli, amsynth_registry, tmp_path):
    for ext in ("fxp", "fxb", "bank", "json"):
        out = tmp_path / f"p.{ext}"
        assert cli("export-preset", "--synth", "amsynth", "--preset", "Derren 1", "--out", out).code == 0
    r = cli("import-presets", "--synth", "amsynth", str(tmp_path / "p.*"), "--json")
    assert r.code == 0 and r.json()["duplicates"] == 4 and r.json()["imported"] == 0, r.out
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["synth"] == "amsynth" and doc["parameters"]["osc1_waveform"] == 0.25
    r = cli("export-preset", "--synth", "amsynth", "--preset", "Derren 1", "--out", tmp_path / "p.vstpreset")
    assert r.code == 2 and "use .fxp, .fxb, .bank, .json" in r.err


def test_a_batch_with_bad_files_imports_the_good_ones_and_lists_the_rest(cli, amsynth_registry, tmp_path):
    good_bank = amsynth_bank.encode_bank([amsynth_bank.from_values(f"New {k}", {"filter_cutoff": k / 10})
                                          for k in range(3)]).decode()
    (tmp_path / "a_good.bank").write_text(good_bank)
    lines = good_bank.splitlines()
    broken = lines[: 1 + 42 + 5] + ["<parameter> filter_cutoff lots"] + lines[1 + 42 + 6:]  # 2nd preset broken
    (tmp_path / "b_half.bank").write_text("\n".join(broken).replace("New", "Half"))
    prog = fxp.encode_program(fxp.FxProgram("amsy", "Lone", params=[0.5] * 41))
    (tmp_path / "c_truncated.fxp").write_bytes(prog[:60])
    (tmp_path / "d_other.fxp").write_bytes(fxp.encode_program(fxp.FxProgram("Zzzz", "X", params=[0.5] * 41)))
    (tmp_path / "e_count.fxp").write_bytes(fxp.encode_program(fxp.FxProgram("amsy", "X", params=[0.5] * 40)))
    (tmp_path / "f_bad.json").write_text('{"format": "asm-preset",')
    (tmp_path / "g_preset.txt").write_text("hello")
    (tmp_path / "h_ok.fxp").write_bytes(prog)
    before = cli("inspect-registry", "--synth", "amsynth", "--json").json()["preset_count"]
    r = cli("import-presets", "--synth", "amsynth", str(tmp_path / "*"))
    assert r.code == 1, r.err  # some files failed: the good ones are kept, the exit status says so
    assert re.search(r"│\s+4 │\s+0 │\s+6 │", r.out), r.out  # imported / duplicates / failed
    for name, reason in [("b_half.bank", "line 49: value 'lots' of filter_cutoff is not a number"),
                         ("c_truncated.fxp", "truncated"),
                         ("d_other.fxp", "plugin id 'Zzzz' does not match the synth's 'amsy'"),
                         ("e_count.fxp", "parameter-count mismatch: file has 40 parameters, the synth has 41"),
                         ("f_bad.json", "bad JSON"),
                         ("g_preset.txt", "unknown preset format '.txt'")]:
        assert re.search(rf"failed \S*{re.escape(name)}: {re.escape(reason)}", r.out), (name, r.out)
    after = cli("inspect-registry", "--synth", "amsynth", "--json").json()["preset_count"]
    assert after == before + 4  # three from the good bank, one .fxp; nothing from the half-broken bank
    r = cli("import-presets", "--synth", "amsynth", str(tmp_path / "c_truncated.fxp"))
    assert r.code == 2 and "no presets imported" in r.err


def _bank_text():
    return (BANKS / "amsynth_factory.bank").read_text()


@pytest.mark.parametrize("cut", ["first_20_lines", "mid_number", "mid_preset_with_newline", "mid_line"])
def test_a_truncated_bank_is_rejected_with_its_reason(tmp_path, cut):
    text = _bank_text()
    lines = text.splitlines(keepends=True)
    second = [i for i, line in enumerate(lines) if line.startswith("<preset>")][1]
    number = re.search(r"<parameter> \w+ -0\.\d{3,}", text)
    cuts = {
        "first_20_lines": "".join(lines[:20]),
        "mid_number": text[: number.start() + len(number.group(0).split()[0]) + len(number.group(0).split()[1]) + 4],
        "mid_preset_with_newline": "".join(lines[: second + 30]),
        "mid_line": text[: len(text) // 2],
    }
    assert cuts["mid_number"].endswith("-0")
    path = tmp_path / "cut.bank"
    path.write_text(cuts[cut])
    with pytest.raises(Exception) as info:
        amsynth_bank.read(path)
    assert "truncated" in str(info.value) or "not a number" in str(info.value)


def test_every_factory_bank_is_complete_and_asm_banks_read_back(tmp_path):
    distinct = set()
    for bank in sorted(BANKS.glob("*.bank")):
        presets = amsynth_bank.read(bank)
        distinct |= {tuple(sorted(amsynth_bank.normalise(p.raw).items())) for p in presets}
        if bank.name == "amsynth_factory.bank":
            out = amsynth_bank.write(tmp_path / "again.bank", presets)
            assert [p.raw for p in amsynth_bank.read(out)] == [
                {n: p.raw.get(n, amsynth_bank.BY_NAME[n].default) for n in amsynth_bank.NAMES} for p in presets]
    assert len(distinct) == 3303
    for bad in ("1_0", "nan", "inf", "0x1", "1e", "--1"):
        text = "amSynth\n<preset> <name> X\n" + "".join(
            f"<parameter> {n} {bad if n == 'osc_mix' else '0'}\n" for n in amsynth_bank.NAMES)
        with pytest.raises(Exception, match="not a number"):
            amsynth_bank.parse_text(text)


def test_import_of_a_truncated_bank_beside_good_files_exits_1_and_keeps_the_good(cli, tmp_path, amsynth_registry):
    cut = tmp_path / "cut.bank"
    cut.write_text("".join(_bank_text().splitlines(keepends=True)[:20]))
    good = tmp_path / "good.bank"
    good.write_text("amSynth\n<preset> <name> Brand New\n" + "".join(
        f"<parameter> {n} {0.123 if n == 'osc_mix' else p.default}\n" for n, p in amsynth_bank.BY_NAME.items()))
    r = cli("import-presets", "--synth", "amsynth", cut, good, "--json")
    assert r.code == 1, r.err
    summary = r.json()
    assert summary["imported"] == 1 and summary["failed"] == 1 and "truncated" in summary["failures"][0]["reason"]
