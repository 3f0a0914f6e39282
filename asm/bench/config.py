"""What a benchmark run does: scale presets, the synth set-ups (fixtures) and the resolved plan.

``make mono-benchmark`` / ``make poly-benchmark`` run ``asm benchmark --mode mono|poly --synth S
--params 32|16 --models "..." --scale small|paper --seed N``. The plan fixes, before anything runs:

* the **set-up**: the fixture applied for ``(synth, params)`` (``SETUPS``): asm-sub with all 30
  parameters free (``--params 32``) or 16 free (``fixtures/asm_sub16.py``); amsynth with 32 or
  16 free (``fixtures/amsynth32.py``, ``fixtures/amsynth16.py``); the shipped fixtures are package
  data (``asm/fixtures``, see ``asm.registry.shipped``);
* the **dataset** (``asm.data.settings.DatasetSettings``) and its name, which is keyed by a hash
  of the settings, so a second run with the same settings finds it finished and reuses it (and
  resumes it if it was interrupted), while other settings get another dataset;
* the **models** trained on it (``--models``, else the scale's default list, plus its ``twin_models``
  such as ``cnn-spectral`` for a synth with a differentiable twin), also keyed by their settings;
* the **methods**, all run on the same targets with the same render budget per search:
  ``random`` (one random preset), ``nn`` (nearest training example), ``model:<config>`` (each
  trained model alone), ``nsga2-autosoundmatch`` (NSGA-II from random with AutoSoundMatch's recipe:
  population 25, its three objectives), ``nsga2`` (NSGA-II from random with asm's objectives) and
  ``hybrid`` (NSGA-II seeded by the estimators and neighbours, refined by gradient through the
  synth's twin when it has one), ``gradient`` (refinement alone from the estimator's guess; synths
  with a twin only), ``cmaes`` (CMA-ES from the best of hybrid's seeds) and ``proxy`` (``nsga2``
  screened by a neural proxy the benchmark trains on its dataset, ``proxy-mlp`` with the scale's
  epochs; synths without a twin only: asm-sub's twin refines instead, and its benchmark stays as
  fast as it was). ``hybrid`` is not screened (as ``asm match`` without ``--proxy``);
* the **target sets**: the dataset's held-out test split (``test``), with ``--synth amsynth`` the
  factory presets held out from training (``factory``), and the out-of-domain SoundFont notes
  (``ood``, mono or poly set) when ``make ood-targets`` has made them.

Scales (``SCALES``): ``small`` finishes within 20 minutes on 2 CPU cores without a GPU; ``medium``
(120,000 examples, models trained until validation stops improving) is planned for 45 minutes on
the same machine; ``paper``
is AutoSoundMatch's set-up (11,000 examples, 128 test targets, full training) for a GPU machine or
a Ray cluster.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from asm.bench.ood import default_dir, read_manifest
from asm.errors import AsmError
from asm.midi.mode import Mode
from asm.registry.db import session_scope
from asm.registry.models import Synth
from asm.registry.shipped import FIXTURES, model_config_fixture  # package data: a wheel benchmarks too
from asm.synth.builtin import BUILTINS

# (synth, --params) -> fixture file (relative to fixtures/) and the number of free parameters it leaves
SETUPS: dict[tuple[str, int], tuple[str, int]] = {
    ("asm-sub", 32): ("asm_sub.py", 30),  # asm-sub has 30 parameters: all free
    ("asm-sub", 16): ("asm_sub16.py", 16),
    ("amsynth", 32): ("amsynth32.py", 32),
    ("amsynth", 16): ("amsynth16.py", 16),
}

SEARCH_METHODS = ("nsga2-autosoundmatch", "nsga2", "hybrid", "gradient", "cmaes", "proxy")
TWIN_METHODS = ("gradient",)  # only for a synth with a differentiable twin (asm.synth.diff)
PROXY_METHODS = ("proxy",)  # only for a synth without a twin: the benchmark trains a proxy for them
PROXY_CONFIG = "proxy-mlp"
# method -> (asm.match method, search recipe name in asm.search.config)
METHOD_RECIPES = {"nsga2-autosoundmatch": ("nsga2", "autosoundmatch"), "nsga2": ("nsga2", "asm"),
                  "hybrid": ("hybrid", "asm"), "gradient": ("gradient", "asm"), "cmaes": ("cmaes", "asm"),
                  "proxy": ("proxy", "asm")}


class ModeSettings(BaseModel):
    """Notes and length of the examples and targets of one mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration: float = Field(gt=0, le=60)
    note_off: float = Field(gt=0, le=60)
    note_range: tuple[int, int] | None = None  # mono: uniform pitch; poly: the chord generator's range
    max_polyphony: int = Field(6, ge=1, le=64)


class ScalePreset(BaseModel):
    """How big a benchmark run is. Every field is recorded with the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    dataset_size: int = Field(gt=0, description="examples generated (split 80/10/10 train/val/test)")
    test_targets: int = Field(gt=0, description="held-out test examples used as targets")
    factory_targets: int = Field(ge=0, description="held-out factory presets used as targets (amsynth)")
    ood_targets: int = Field(ge=0, description="out-of-domain targets used, at most the set's size")
    models: tuple[str, ...] = Field(description="model configs trained when --models is not given")
    twin_models: tuple[str, ...] = Field((), description="added to models (without --models) for a synth with "
                                                         "a differentiable twin: configs that train through it")
    epochs: int = Field(gt=0)
    patience: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    search_budget: int = Field(gt=0, description="renders per target of every search method")
    search_time_limit: float | None = Field(None, gt=0, description="seconds per target and search")
    sample_rate: int = 16000
    mono: ModeSettings
    poly: ModeSettings

    def mode(self, mode: str) -> ModeSettings:
        return self.mono if Mode(mode) is Mode.mono else self.poly


SCALES: dict[str, ScalePreset] = {
    "small": ScalePreset(
        name="small",
        description="at most 20 minutes on 2 CPU cores, no GPU: 5,000 examples, 32 test targets, "
                    "2 models (3 with a twin), 600 renders per search",
        dataset_size=5000, test_targets=32, factory_targets=32, ood_targets=32,
        models=("cnn", "flow"), twin_models=("cnn-spectral",), epochs=30, patience=5, batch_size=64,
        search_budget=600, search_time_limit=10.0,
        mono=ModeSettings(duration=1.0, note_off=0.75, note_range=(40, 76)),
        poly=ModeSettings(duration=2.0, note_off=1.5, note_range=(40, 76), max_polyphony=4),
    ),
    # Planned from the measured rates on 2 cores (REFERENCE.md; not yet timed end to end): ~820
    # examples/s -> ~2.5 min of generation; the CNN at ~2,700 samples/s -> ~36 s per epoch of 96,000
    # examples, so 20 epochs of each of two models ~25 min; searches as in small ~8 min. Disk: ~40 KB
    # per example with its audio (~5 GB): the test targets are read from the stored audio.
    "medium": ScalePreset(
        name="medium",
        description="about 45 minutes on 2 CPU cores, no GPU: 120,000 examples, 32 test targets, "
                    "2 models trained until validation stops improving, 600 renders per search",
        dataset_size=120_000, test_targets=32, factory_targets=32, ood_targets=32,
        models=("cnn", "flow"), epochs=20, patience=3, batch_size=128,
        search_budget=600, search_time_limit=10.0,
        mono=ModeSettings(duration=1.0, note_off=0.75, note_range=(40, 76)),
        poly=ModeSettings(duration=2.0, note_off=1.5, note_range=(40, 76), max_polyphony=4),
    ),
    "paper": ScalePreset(
        name="paper",
        description="AutoSoundMatch's set-up for a GPU machine or a Ray cluster: 11,000 examples, "
                    "128 test targets, every model trained fully, 5,000 renders per search",
        dataset_size=11000, test_targets=128, factory_targets=128, ood_targets=48,
        models=("mlp", "cnn", "rescnn", "lstm", "transformer", "flow"), epochs=200, patience=20, batch_size=64,
        search_budget=5000, search_time_limit=None,
        mono=ModeSettings(duration=1.0, note_off=0.75, note_range=(36, 84)),
        poly=ModeSettings(duration=2.0, note_off=1.5, note_range=(36, 84), max_polyphony=6),
    ),
}


class BenchmarkRequest(BaseModel):
    """What the user asked for (the command line / Make variables)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Mode.mono
    synth: str = "asm-sub"
    params: Literal[32, 16] = 32
    models: tuple[str, ...] = ()  # empty: the scale's default list
    scale: Literal["small", "medium", "paper"] = "small"
    seed: int = Field(0, ge=0)
    budget: int | None = Field(None, gt=0, description="override the scale's renders per search")
    test_targets: int | None = Field(None, gt=0, description="override the scale's number of test targets")
    ood: bool = True
    ood_dir: str | None = None


def parse_models(text: str | None) -> tuple[str, ...]:
    """``"cnn, flow"`` or ``"cnn flow"`` -> ("cnn", "flow"); duplicates dropped, order kept."""
    names = [n for n in (text or "").replace(",", " ").split() if n]
    return tuple(dict.fromkeys(names))


def settings_key(obj: dict) -> str:
    """8 hex digits identifying a settings dict (names of reusable datasets and models)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def setup_of(synth: str, params: int) -> tuple[Path, int]:
    """The fixture file for ``(synth, params)`` and the free parameters it promises."""
    if (synth, params) not in SETUPS:
        known = ", ".join(sorted({s for s, _ in SETUPS}))
        raise AsmError(f"no benchmark set-up for synth {synth!r} with {params} parameters; "
                       f"set-ups exist for {known} with --params 32 or 16")
    name, free = SETUPS[(synth, params)]
    path = FIXTURES / name
    if not path.is_file():
        raise AsmError(f"fixture {path} is missing")
    return path, free


def _registry_state(synth: str) -> tuple[str, dict]:
    """(version, feature settings) of a registered synth, read only ("", {}) when it is not registered."""
    with session_scope() as session:
        row = session.scalar(select(Synth).where(Synth.name == synth))
        if row is not None:
            return row.version or "", dict((row.settings or {}).get("features", {}))
    builtin = BUILTINS.get(synth)
    return (builtin.version if builtin else ""), {}


def dataset_settings(req: BenchmarkRequest, preset: ScalePreset, features: dict | None = None):
    """The ``DatasetSettings`` of the benchmark's training data (``generate-dataset``'s choices: the
    synth's feature settings, shards of ~16 MB; amsynth mixes in 30 % factory presets)."""
    from asm.audio.features import FeatureSettings
    from asm.data.settings import DatasetSettings, auto_shard_size

    m = preset.mode(req.mode)
    presets = "mix" if req.synth == "amsynth" else "random"
    feats = FeatureSettings(**(features or {}))
    return DatasetSettings(
        synth=req.synth, mode=req.mode, size=preset.dataset_size, presets=presets,
        factory_fraction=0.3 if presets == "mix" else 0.0, sample_rate=preset.sample_rate,
        duration=m.duration, note_off=m.note_off, note_range=m.note_range, max_polyphony=m.max_polyphony,
        seed=req.seed, features=feats, shard_size=auto_shard_size(m.duration, preset.sample_rate, feats),
    )


# Model configs trained through a twin: they seed hybrid, gradient and cmaes ahead of the flow's candidates.
TWIN_TRAINED = frozenset(m for preset in SCALES.values() for m in preset.twin_models)

def default_models(preset: ScalePreset, synth: str) -> tuple[str, ...]:
    """The scale's model configs for ``synth``: ``models``, and ``twin_models`` when it has a twin."""
    from asm.synth.diff import TWINS

    return (*preset.models, *(preset.twin_models if synth in TWINS else ()))


def methods_for(models: tuple[str, ...], synth: str = "asm-sub") -> list[str]:
    from asm.synth.diff import TWINS

    searches = [m for m in SEARCH_METHODS if (m not in TWIN_METHODS or synth in TWINS)
                and (m not in PROXY_METHODS or synth not in TWINS)]
    return ["random", "nn", *[f"model:{m}" for m in models], *searches]


def _config_fixture(config: str) -> Path:
    """The shipped fixture file of a model config (``cnn-spectral`` lives in ``cnn_spectral.py``)."""
    return model_config_fixture(config) or FIXTURES / "models" / f"{config}.py"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def plan(req: BenchmarkRequest, preset: ScalePreset | None = None) -> dict:
    """Everything a run will do, resolved and named, before any work (``asm benchmark --dry-run``).

    Dataset and model names carry a hash of what determines them (settings, the set-up fixture's
    text, the synth version, the model config fixture's text), so a changed set-up never reuses a
    stale dataset or model. ``preset`` overrides the request's scale (tests use a tiny one).
    """
    preset = preset or SCALES[req.scale]
    fixture, free = setup_of(req.synth, req.params)
    models = req.models or default_models(preset, req.synth)
    version, features = _registry_state(req.synth)
    ds = dataset_settings(req, preset, features)
    identity = ds.identity()
    key = settings_key({"dataset": identity, "fixture": _file_hash(fixture), "synth_version": version})
    dataset = f"bench-{req.synth}-{req.params}-{req.mode}-{preset.name}-s{req.seed}-{key}"
    train = {"epochs": preset.epochs, "patience": preset.patience, "batch_size": preset.batch_size,
             "seed": req.seed}
    model_names = {m: f"{dataset}-{m}-{settings_key({'config': _file_hash(_config_fixture(m)), **train})}"
                   for m in models}
    methods = methods_for(tuple(models), req.synth)
    proxy = None
    if any(m in PROXY_METHODS for m in methods):
        ptrain = {"epochs": preset.epochs, "patience": preset.patience, "batch_size": max(preset.batch_size, 128),
                  "seed": req.seed}
        pkey = settings_key({"config": _file_hash(FIXTURES / "proxies" / "mlp.py"), **ptrain})
        proxy = {"config": PROXY_CONFIG, "name": f"{dataset}-{PROXY_CONFIG}-{pkey}", "train": ptrain}
    budget = req.budget if req.budget is not None else preset.search_budget
    test_targets = min(req.test_targets if req.test_targets is not None else preset.test_targets,
                       ds.split_counts()[2])
    sets = {"test": test_targets}
    if req.synth == "amsynth":
        sets["factory"] = preset.factory_targets
    ood_note = None
    if req.ood:
        directory = Path(req.ood_dir) if req.ood_dir else default_dir()
        manifest = read_manifest(directory)
        if manifest is None:
            ood_note = f"no out-of-domain targets in {directory}: make ood-targets adds them"
        else:
            available = sum(t["set"] == req.mode for t in manifest["targets"])
            sets["ood"] = min(preset.ood_targets, available)
    return {
        "request": req.model_dump(mode="json"),
        "scale": preset.model_dump(mode="json"),
        "fixture": str(fixture.relative_to(FIXTURES.parent)),  # "fixtures/asm_sub.py", as in a checkout
        "free_parameters": free,
        "dataset": {"name": dataset, "settings": identity},
        "models": [{"config": m, "name": model_names[m], "train": train} for m in models],
        "methods": methods,
        "proxy": proxy,
        "search": {"budget": budget, "time_limit": preset.search_time_limit,
                   "recipes": {m: {"method": a, "recipe": r} for m, (a, r) in METHOD_RECIPES.items()}},
        "target_sets": sets,
        "notes": [n for n in (ood_note,) if n],
    }
