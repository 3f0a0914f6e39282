"""update-registry: fixtures are validated whole, applied in one transaction, logged; item types plug in."""

import hashlib
import json
import textwrap

import pytest
from conftest import ROOT, run_cli_process
from plugin_paths import needs_amsynth

pytest_plugins = ["plugin_helpers"]  # fixtures: amsynth_registry, crashy_plugin

FIXTURES = ROOT / "fixtures"


def _state(cli):
    from asm.registry.db import session_scope
    from asm.registry.models import FixtureLog

    with session_scope() as session:
        logs = session.query(FixtureLog).count()
    return json.dumps(cli("inspect-registry", "--json").json(), sort_keys=True), logs


def _write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_the_default_fixture_applies_and_is_logged(cli):
    from asm.registry.db import session_scope
    from asm.registry.models import FixtureLog

    assert cli("lock", "asm-sub", "cutoff=0.3").code == 0  # the fixture states the locks: this goes
    r = cli("update-registry", FIXTURES / "asm_sub.py")
    assert r.code == 0, r.err
    assert "locks asm-sub: 0 locked, 30 free" in r.out
    data = cli("inspect-registry", "--synth", "asm-sub", "--json").json()
    assert data["free_count"] == 30
    assert data["settings"]["render"] == {"sample_rate": 16000, "note": 60, "velocity": 100, "duration": 2.0,
                                          "note_off": 1.5, "tail": 1.0}
    assert data["settings"]["features"]["n_mels"] == 64
    with session_scope() as session:
        (log,) = session.query(FixtureLog).all()
        assert log.name == "asm_sub" and log.path == str((FIXTURES / "asm_sub.py").resolve())
        assert log.content_hash == hashlib.sha256((FIXTURES / "asm_sub.py").read_bytes()).hexdigest()
        assert log.applied_at is not None and len(log.summary["items"]) == 2


INVALID = {
    "type.py": ("""
        from asm.registry.synth_config import SynthConfig
        from asm.synth.defaults import RenderDefaults
        FIXTURE = [SynthConfig(name="asm-sub", render=RenderDefaults(sample_rate=1000))]
        """, "line 4: RenderDefaults field 'sample_rate': Input should be greater than or equal to 8000"),
    "extra.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", valeus={"cutoff": 0.2})]
        """, "LockConfig field 'valeus': Extra inputs are not permitted"),
    "param.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", values={"cutoff": 0.2}),
                   LockConfig(synth="asm-sub", values={"cutof": 0.2})]
        """, "FIXTURE[1] (locks asm-sub): field 'values': unknown parameter 'cutof'"),
    "range.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", values={"cutoff": 2})]
        """, "field 'values': value for cutoff must be in [0, 1]"),
    "count.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", values={"cutoff": 0.2}, expect_free=30)]
        """, "field 'expect_free': these locks leave 29 of 30 parameters free, not 30"),
    "synth.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="nosuch", values={})]
        """, "field 'synth': unknown synth 'nosuch'"),
    "path.py": ("""
        from asm.registry.synth_config import SynthConfig
        FIXTURE = [SynthConfig(name="thing", path="/no/such/plugin.so")]
        """, "FIXTURE[0] (synth thing): field 'path': plugin not found: /no/such/plugin.so"),
    "preset.py": ("""
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", from_preset="Nope", names=["cutoff"])]
        """, "field 'from_preset': no preset named 'Nope'"),
    "nofixture.py": ("X = 1\n", "defines no FIXTURE"),
    "syntax.py": ("FIXTURE = [\n", "syntax error"),
    "notitem.py": ("FIXTURE = [{'synth': 'asm-sub'}]\n", "FIXTURE[0] is a dict, not an asm config object"),
    "exits.py": ("import sys\nsys.exit(0)\n", "line 2: invalid fixture: it calls sys.exit(0)"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_an_invalid_fixture_changes_nothing_and_names_the_problem(cli, tmp_path, name):
    body, message = INVALID[name]
    path = _write(tmp_path, name, body)
    before = _state(cli)
    r = cli("update-registry", path)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert r.code == 2 and len(lines) == 1 and str(path) in r.err and message in r.err, r.err
    assert _state(cli) == before


def test_a_later_bad_file_rolls_back_an_earlier_good_one(cli, tmp_path):
    good = _write(tmp_path, "good.py", """
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", values={"cutoff": 0.2})]
        """)
    bad = _write(tmp_path, "bad.py", INVALID["count.py"][0])
    before = _state(cli)
    assert cli("update-registry", good, bad).code == 2
    assert cli("update-registry", good, "--dry-run").code == 0
    assert _state(cli) == before
    assert cli("update-registry", good).code == 0 and _state(cli) != before


def test_new_item_types_plug_in_without_changing_asm(cli, tmp_path):
    """A later issue adds its own config class in its own module; the fixture machinery runs it as is."""
    _write(tmp_path, "my_configs.py", """
        from pydantic import Field
        from asm.registry.fixtures import FieldError, FixtureItem
        from asm.registry.synths import get_synth

        class TagConfig(FixtureItem):
            kind = "tag"
            synth: str
            tag: str = Field(min_length=1)

            def label(self):
                return f"tag {self.synth}"

            def check(self, ctx):
                if self.tag == "forbidden":
                    raise FieldError("tag", "that tag is not allowed")

            def apply(self, session, ctx):
                row = get_synth(session, self.synth)
                row.settings = {**row.settings, "tag": self.tag}
                return f"tagged {self.synth} {self.tag}"
        """)
    header = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nfrom my_configs import TagConfig\n"
    ok = _write(tmp_path, "ok.py", header + 'FIXTURE = [TagConfig(synth="asm-sub", tag="bright")]\n')
    bad = _write(tmp_path, "bad.py", header + 'FIXTURE = [TagConfig(synth="asm-sub", tag="forbidden")]\n')
    r = cli("update-registry", bad)
    assert r.code == 2 and "FIXTURE[0] (tag asm-sub): field 'tag': that tag is not allowed" in r.err
    r = cli("update-registry", ok)
    assert r.code == 0 and "tagged asm-sub bright" in r.out
    assert cli("inspect-registry", "--synth", "asm-sub", "--json").json()["settings"]["tag"] == "bright"


@needs_amsynth
def test_amsynth32_and_amsynth16_on_a_registry_with_factory_presets(cli, amsynth_registry):
    r = run_cli_process("update-registry", FIXTURES / "amsynth32.py")  # python asm-cli.py update-registry ...
    assert r.returncode == 0, r.stderr
    assert "locks amsynth: 9 locked, 32 free" in r.stdout
    data = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    params = {p["name"]: p for p in data["parameters"]}
    locked = {name for name, p in params.items() if p["locked"]}
    assert data["free_count"] == 32 and data["preset_count"] == amsynth_registry["imported"]
    assert locked == {"master_vol", "reverb_wet", "reverb_roomsize", "reverb_damp", "reverb_width",
                      "distortion_crunch", "portamento_time", "portamento_mode", "keyboard_mode"}
    assert params["reverb_wet"]["locked_value"] == 0.0 and params["master_vol"]["locked_value"] == pytest.approx(0.67)
    assert params["keyboard_mode"]["locked_display"] == "poly"
    assert params["osc1_waveform"]["kind"] == "categorical" and params["osc1_waveform"]["choices"][0] == "sine"
    assert data["settings"]["render"]["sample_rate"] == 16000

    r = cli("update-registry", FIXTURES / "amsynth16.py")
    assert r.code == 0, r.err
    data = cli("inspect-registry", "--synth", "amsynth", "--json").json()
    free = [p["name"] for p in data["parameters"] if not p["locked"]]
    assert len(free) == 16 and {"filter_cutoff", "osc1_waveform", "amp_attack"} <= set(free)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["filter_type"]["locked_display"] == "low pass"
    assert params["filter_slope"]["locked_display"] == "24 dB/oct"


def test_a_fixture_that_calls_sys_exit_is_invalid_and_nothing_is_applied(cli, tmp_path):
    good = _write(tmp_path, "good.py", """
        from asm.registry.synth_config import LockConfig
        FIXTURE = [LockConfig(synth="asm-sub", values={"cutoff": 0.2})]
        """)
    bad = _write(tmp_path, "bad.py", "import sys\nsys.exit(0)\n")
    before = _state(cli)
    r = cli("update-registry", good, bad)
    assert r.code == 2 and str(bad) in r.err and "sys.exit(0)" in r.err, r.err
    assert _state(cli) == before
