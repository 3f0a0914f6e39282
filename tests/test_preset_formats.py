"""Preset file formats on their own: round trips, and malformed files rejected with file and reason."""

import json
import struct

import numpy as np
import pytest
from plugin_paths import BANKS

from asm.presets import amsynth_bank, fxp, jsonpreset, vstpreset
from asm.presets.base import PresetFormatError
from asm.presets.vstpreset import juce_base64_decode, juce_base64_encode, juce_vst3_state
from asm.synth.builtin import ASM_SUB
from asm.synth.params import ParameterSpace

RNG = np.random.default_rng(7)


def f32(values):
    return [float(np.float32(v)) for v in values]


# --- FXP / FXB ------------------------------------------------------------------------------------
def test_fxp_program_and_bank_round_trips(tmp_path):
    values = f32(RNG.random(41))
    prog = fxp.FxProgram("amsy", "Warm Pad", params=values, plugin_version=3)
    fxp.write(tmp_path / "a.fxp", prog)
    back = fxp.read(tmp_path / "a.fxp")
    assert isinstance(back, fxp.FxProgram) and back.magic == b"FxCk"
    assert (back.plugin_id, back.name, back.params, back.plugin_version) == ("amsy", "Warm Pad", values, 3)
    assert (tmp_path / "a.fxp").read_bytes()[:4] == b"CcnK"

    chunk_prog = fxp.FxProgram("amsy", "Chunky", chunk=b"opaque\0state")
    fxp.write(tmp_path / "b.fxp", chunk_prog)
    back = fxp.read(tmp_path / "b.fxp")
    assert back.magic == b"FPCh" and back.chunk == b"opaque\0state" and back.name == "Chunky"

    bank = fxp.FxBank("amsy", programs=[prog, fxp.FxProgram("amsy", "Two", params=f32(RNG.random(41)))],
                      current_program=1)
    fxp.write(tmp_path / "c.fxb", bank)
    back = fxp.read(tmp_path / "c.fxb")
    assert back.magic == b"FxBk" and back.current_program == 1
    assert [p.name for p in back.programs] == ["Warm Pad", "Two"] and back.programs[0].params == values

    fxp.write(tmp_path / "d.fxb", fxp.FxBank("amsy", chunk=b"bank state", num_programs=128))
    back = fxp.read(tmp_path / "d.fxb")
    assert back.magic == b"FBCh" and back.chunk == b"bank state" and back.num_programs == 128

    presets = fxp.decode(tmp_path / "c.fxb", "amsy", 41)
    assert [p.name for p in presets] == ["Warm Pad", "Two"] and presets[0].values == values


def _bad(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_malformed_fxp_files_are_rejected_with_file_and_reason(tmp_path):
    good = fxp.encode_program(fxp.FxProgram("amsy", "X", params=[0.5] * 41))
    cases = {
        "truncated.fxp": (good[:100], "truncated"),
        "magic.fxp": (b"RIFF" + good[4:], "wrong magic"),
        "kind.fxp": (good[:8] + b"XxXx" + good[12:], "unknown VST2 preset type"),
        "empty.fxp": (b"", "truncated"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(PresetFormatError) as exc:
            fxp.decode(_bad(tmp_path, name, data), "amsy", 41)
        assert name in str(exc.value) and reason in exc.value.reason, (name, exc.value)
    path = _bad(tmp_path, "other.fxp", good)
    with pytest.raises(PresetFormatError, match="plugin id 'amsy' does not match the synth's 'ABCD'"):
        fxp.decode(path, "ABCD", 41)
    with pytest.raises(PresetFormatError, match="parameter-count mismatch: file has 41 parameters, the synth has 30"):
        fxp.decode(path, "amsy", 30)
    bad_value = fxp.encode_program(fxp.FxProgram("amsy", "X", params=[0.5] * 40 + [1.5]))
    with pytest.raises(PresetFormatError, match="outside"):
        fxp.decode(_bad(tmp_path, "range.fxp", bad_value), "amsy", 41)


# --- .vstpreset -----------------------------------------------------------------------------------
CID = "ABCDEF0123456789ABCDEF0123456789"


def test_vstpreset_round_trip(tmp_path):
    preset = vstpreset.VstPreset(CID, comp=b"\x01\x02component", cont=b"controller",
                                 info={"MediaType": "VstPreset", "Name": "Bell <&> \"1\""})
    vstpreset.write(tmp_path / "p.vstpreset", preset)
    data = (tmp_path / "p.vstpreset").read_bytes()
    assert data[:4] == b"VST3" and data[8:40] == CID.encode()
    back = vstpreset.read(tmp_path / "p.vstpreset")
    assert (back.class_id, back.comp, back.cont, back.info) == (CID, preset.comp, preset.cont, preset.info)
    (decoded,) = vstpreset.decode(tmp_path / "p.vstpreset", CID.lower())
    assert decoded.name == 'Bell <&> "1"' and decoded.loader == "vstpreset" and decoded.chunk == data


def test_malformed_vstpreset_files_are_rejected(tmp_path):
    good = vstpreset.encode(vstpreset.VstPreset(CID, comp=b"state"))
    list_offset = struct.unpack_from("<q", good, 40)[0]
    no_comp = vstpreset.encode(vstpreset.VstPreset(CID, comp=b"x")).replace(b"Comp", b"Junk")
    cases = {
        "magic.vstpreset": (b"VST2" + good[4:], "wrong magic"),
        "short.vstpreset": (good[:30], "truncated"),
        "nolist.vstpreset": (good[:list_offset], "truncated"),
        "cid.vstpreset": (good[:8] + b"Z" * 32 + good[40:], "malformed class id"),
        "nocomp.vstpreset": (no_comp, "no component state"),
        "chunk.vstpreset": (good[:-8] + struct.pack("<q", 10_000), "outside the file"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(PresetFormatError) as exc:
            vstpreset.decode(_bad(tmp_path, name, data), CID)
        assert name in str(exc.value) and reason in exc.value.reason, (name, exc.value)
    with pytest.raises(PresetFormatError, match="does not match the synth's"):
        vstpreset.decode(_bad(tmp_path, "other.vstpreset", good), "0" * 32)


def test_juce_vst3_state_is_unwrapped():
    comp, cont = b"\x00\x01component state\xff", b"controller"
    xml = (f"<VST3PluginState><IComponent>{juce_base64_encode(comp)}</IComponent>"
           f"<IEditController>{juce_base64_encode(cont)}</IEditController></VST3PluginState>").encode()
    state = b"VC2!" + struct.pack("<I", len(xml) + 1) + xml + b"\0"
    assert juce_vst3_state(state) == (comp, cont)
    for size in range(9):
        data = bytes(RNG.integers(0, 256, size, dtype=np.uint8))
        assert juce_base64_decode(juce_base64_encode(data)) == data


# --- asm JSON -------------------------------------------------------------------------------------
SPACE = ParameterSpace(ASM_SUB.params).with_locks({3: 0.25})


def test_json_round_trip_is_readable_and_exact(tmp_path):
    values = SPACE.quantise(RNG.random(SPACE.size)).tolist()
    jsonpreset.write(tmp_path / "p.json", "asm-sub", "Bright", SPACE, values)
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["format"] == "asm-preset" and doc["version"] == 1 and doc["synth"] == "asm-sub"
    assert list(doc["parameters"]) == SPACE.names and doc["locked"] == ["osc1_level"]
    (back,) = jsonpreset.decode(tmp_path / "p.json", "asm-sub", SPACE)
    assert back.values == values and back.name == "Bright" and back.locked == ["osc1_level"]
    doc["parameters"]["osc1_wave"] = "square"  # people may write choice names
    (tmp_path / "q.json").write_text(json.dumps(doc))
    (back,) = jsonpreset.decode(tmp_path / "q.json", "asm-sub", SPACE)
    assert back.values[0] == 1 / 3


def test_malformed_json_presets_are_rejected(tmp_path):
    values = SPACE.defaults().tolist()
    good = json.loads(jsonpreset.encode("asm-sub", "X", SPACE, values))
    missing = dict(good, parameters={k: v for k, v in good["parameters"].items() if k != "cutoff"})
    extra = dict(good, parameters={**good["parameters"], "wobble": 0.5})
    cases = {
        "bad.json": (b'{"format": "asm-preset", "version": 1,', "bad JSON"),
        "notasm.json": (json.dumps({"hello": 1}).encode(), "not an asm preset"),
        "version.json": (json.dumps(dict(good, version=9)).encode(), "unsupported asm preset version"),
        "missing.json": (json.dumps(missing).encode(), "parameter-count mismatch: file has 29 parameters, the synth has 30"),
        "extra.json": (json.dumps(extra).encode(), "unknown wobble"),
        "range.json": (json.dumps(dict(good, parameters={**good["parameters"], "cutoff": 1.5})).encode(), "[0, 1]"),
        "type.json": (json.dumps(dict(good, parameters={**good["parameters"], "cutoff": [1]})).encode(), "number"),
        "synth.json": (json.dumps(dict(good, synth="amsynth")).encode(), "preset is for synth 'amsynth'"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(PresetFormatError) as exc:
            jsonpreset.decode(_bad(tmp_path, name, data), "asm-sub", SPACE)
        assert name in str(exc.value) and reason in exc.value.reason, (name, exc.value)


# --- amsynth banks --------------------------------------------------------------------------------
@pytest.mark.skipif(not BANKS.is_dir(), reason="amsynth's factory banks are not installed (make synths)")
def test_every_factory_bank_parses_and_old_banks_get_defaults():
    counts = {}
    for bank in sorted(BANKS.glob("*.bank")):
        presets = amsynth_bank.read(bank)
        counts[bank.name] = len(presets)
    assert sum(counts.values()) == 3482 and len(counts) == 28
    old = amsynth_bank.read(BANKS / "BriansBank01.amSynth.bank")[0]
    assert len(old.raw) == 36 and "amp_vel_sens" not in old.raw
    values = amsynth_bank.normalise(old.raw)
    assert [values[n] for n in amsynth_bank.NAMES[36:]] == [0.0, 1.0, 1.0, 1.0, 0.0]  # amsynth's defaults


def test_bank_write_read_round_trip_is_exact(tmp_path):
    """Values amsynth reports (from raw values) survive write -> read exactly; any others within a step."""
    presets = []
    for k in range(6):
        raw = {p.name: RNG.uniform(p.minimum, p.maximum) for p in amsynth_bank.PARAMS}
        named = amsynth_bank.normalise(raw) if k < 3 else {p.name: float(np.float32(RNG.random()))
                                                              for p in amsynth_bank.PARAMS}
        presets.append((f"Random {k}", named))
    amsynth_bank.write(tmp_path / "r.bank", [amsynth_bank.from_values(n, v) for n, v in presets])
    back = amsynth_bank.read(tmp_path / "r.bank")
    assert [p.name for p in back] == [n for n, _ in presets]
    for k, ((_, named), preset) in enumerate(zip(presets, back)):
        got = amsynth_bank.normalise(preset.raw)
        for p in amsynth_bank.PARAMS:
            want = named[p.name]
            if p.step:  # stepped parameters snap to their steps, like the plugin does
                n = round((p.maximum - p.minimum) / p.step)
                want = float(np.float32(round(want * n) / n))
            if k < 3:
                assert got[p.name] == want, (p.name, got[p.name], want)
            else:
                assert abs(got[p.name] - want) <= 6e-8, (p.name, got[p.name], want)


def test_malformed_banks_are_rejected(tmp_path):
    good = amsynth_bank.encode_bank([amsynth_bank.from_values("A", {"amp_attack": 0.5})]).decode()
    cases = {
        "header.bank": ("NotAmSynth\n" + good.split("\n", 1)[1], "wrong magic"),
        "unknown.bank": (good.replace("amp_decay", "amp_wobble"), "unknown amsynth parameter 'amp_wobble'"),
        "value.bank": (good.replace("<parameter> amp_decay 0", "<parameter> amp_decay zero"), "is not a number"),
        "trunc.bank": (good.rsplit("\n", 3)[0] + "\n<parameter> amp_vel", "truncated parameter line"),
        "empty.bank": ("amSynth\n", "no presets"),
        "noparams.bank": ("amSynth\n<preset> <name> Lonely\n", "has no parameters"),
    }
    for name, (text, reason) in cases.items():
        with pytest.raises(PresetFormatError) as exc:
            amsynth_bank.decode(_bad(tmp_path, name, text.encode()), list(amsynth_bank.NAMES))
        assert name in str(exc.value) and reason in exc.value.reason, (name, exc.value)
