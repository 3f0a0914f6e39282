"""Shipped fixtures are package data: found from the package (not the working directory), one per
architecture, and a shipped model config trains on a fresh registry without update-registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

import asm
from asm.registry.fixtures import load_fixture
from asm.registry.shipped import FIXTURES, shipped_model_configs


def test_fixtures_live_in_the_package_and_the_checkout_links_to_them():
    assert FIXTURES == Path(asm.__file__).resolve().parent / "fixtures"
    assert (ROOT / "fixtures").resolve() == FIXTURES
    assert (FIXTURES / "asm_sub.py").is_file() and (FIXTURES / "search" / "asm.py").is_file()


def test_every_architecture_has_a_shipped_model_config_of_its_name():
    from asm.models import architectures
    from asm.models.config import ModelConfig

    assert set(architectures.names()) <= set(shipped_model_configs())
    for name in architectures.names():
        (item,) = load_fixture(FIXTURES / "models" / f"{name}.py").items
        assert isinstance(item, ModelConfig) and item.name == name and item.arch == name


def test_every_other_shipped_config_is_named_after_its_file():
    from asm.models.config import ModelConfig
    from asm.registry.shipped import model_config_fixture

    assert "cnn-spectral" in shipped_model_configs()
    for name in shipped_model_configs():
        (item,) = load_fixture(model_config_fixture(name)).items
        assert isinstance(item, ModelConfig) and item.name == name


def test_benchmark_plan_reads_the_package_from_any_directory(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no fixtures/ here
    r = cli("benchmark", "--dry-run", "--json", "--synth", "amsynth", "--params", "16")
    assert r.code == 0, r.err
    assert r.json()["fixture"] == "fixtures/amsynth16.py"


@pytest.fixture
def tiny_dataset(cli):
    r = cli("generate-dataset", "tiny", "--synth", "asm-sub", "--size", "40", "--duration", "0.25",
            "--note-off", "0.2", "--seed", "2", "--workers", "1")
    assert r.code == 0, r.err
    return "tiny"


def test_train_model_applies_a_shipped_config_on_a_fresh_registry(cli, tiny_dataset, tmp_path, monkeypatch):
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import FixtureLog, ModelConfigRow

    monkeypatch.chdir(tmp_path)
    r = cli("train-model", "--config", "cnn", "--dataset", tiny_dataset, "--epochs", "1", "--batch-size", "16",
            "--json")
    assert r.code == 0, r.err
    assert r.json()["arch"] == "cnn" and r.json()["epochs"] == 1
    with session_scope() as s:
        assert list(s.scalars(select(ModelConfigRow.name))) == ["cnn"]  # only what was asked for
        (log,) = s.scalars(select(FixtureLog)).all()
        assert Path(log.path) == FIXTURES / "models" / "cnn.py"
    # a config the user changed is theirs: it is not re-applied from the package
    custom = tmp_path / "cnn.py"
    custom.write_text("from asm.models.config import ModelConfig\n"
                      "FIXTURE = [ModelConfig(name='cnn', arch='mlp', encoder={'hidden': 32, 'layers': 1})]\n")
    assert cli("update-registry", custom).code == 0
    r = cli("train-model", "--config", "cnn", "--dataset", tiny_dataset, "--epochs", "1", "--batch-size", "16",
            "--seed", "1", "--json")
    assert r.code == 0, r.err
    assert r.json()["arch"] == "mlp"
    r = cli("train-model", "--config", "nope", "--dataset", tiny_dataset)
    assert r.code == 2 and "unknown model config 'nope'" in r.err and "transformer" in r.err
