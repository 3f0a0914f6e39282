"""Parameter space: kinds, quantisation, locks, free/full vectors, user value parsing."""

import numpy as np
import pytest

from asm.errors import AsmError
from asm.synth.params import Kind, ParameterSpace, ParameterSpec, preset_hash


def make_space(locks=None):
    params = [
        ParameterSpec(0, "cutoff", Kind.continuous, 0.5),
        ParameterSpec(1, "wave", Kind.categorical, 0.0, choices=("saw", "square", "sine")),
        ParameterSpec(2, "octave", Kind.stepped, 0.5, steps=5),
        ParameterSpec(3, "sync", Kind.boolean, 0.0),
        ParameterSpec(7, "gain", Kind.continuous, 0.8),
    ]
    space = ParameterSpace(params)
    return space.with_locks(locks) if locks else space


def test_quantise_snaps_discrete_values_only():
    space = make_space()
    q = space.quantise(np.array([0.123, 0.3, 0.6, 0.7, 1.3]))
    np.testing.assert_allclose(q, [0.123, 0.5, 0.5, 1.0, 1.0])


def test_random_free_is_uniform_over_choices():
    space = make_space()
    x = space.random_free(np.random.default_rng(0), 6000)
    assert x.shape == (6000, 5)
    wave_counts = np.unique(x[:, 1], return_counts=True)
    np.testing.assert_allclose(wave_counts[0], [0, 0.5, 1])
    assert wave_counts[1].min() > 1800  # ~2000 each
    assert set(np.unique(x[:, 2])) == {0, 0.25, 0.5, 0.75, 1}
    assert 0.45 < x[:, 0].mean() < 0.55 and len(np.unique(x[:, 0])) > 5000


def test_locks_are_applied_and_hidden_from_free_vectors():
    space = make_space({1: 1.0, 3: 1.0})  # plugin indices
    assert [p.name for p in space.free] == ["cutoff", "octave", "gain"]
    full = space.full(np.array([0.1, 0.25, 0.9]))
    np.testing.assert_allclose(full, [0.1, 1.0, 0.25, 1.0, 0.9])
    np.testing.assert_allclose(space.free_part(full), [0.1, 0.25, 0.9])
    # a caller passing other values for locked parameters is overruled
    np.testing.assert_allclose(space.apply_locks(np.zeros(5)), [0, 1, 0, 1, 0])


def test_scattered_locks_keep_free_values_on_the_right_parameters():
    space = make_space({0: 0.3, 2: 0.75, 7: 0.1})
    full = space.full(np.array([0.5, 1.0]))  # wave, sync
    assert space.named(full) == {"cutoff": 0.3, "wave": 0.5, "octave": 0.75, "sync": 1.0, "gain": 0.1}


def test_parse_user_values():
    space = make_space()
    assert space.spec("wave").parse("SQUARE") == 0.5
    assert space.spec("octave").parse("0.3") == 0.25
    assert space.spec("sync").parse("on") == 1.0
    with pytest.raises(AsmError, match="unknown choice"):
        space.spec("wave").parse("triangle")
    with pytest.raises(AsmError, match=r"in \[0, 1\]"):
        space.spec("cutoff").parse("1.5")
    with pytest.raises(AsmError, match="unknown parameter"):
        space.position("cutof")
    assert space.position(7) == 4  # plugin index 7 sits at position 4


def test_one_parser_for_assignments_texts_and_mappings():
    space = make_space()
    texts = space.parse_assignments(["wave=sine", " cutoff = 0.25", "7=default", "sync=on", "octave=0.6"], "--set")
    assert texts == {1: 1.0, 0: 0.25, 7: 0.8, 3: 1.0, 2: 0.5}
    assert space.parse_assignments({"wave": "sine", "cutoff": 0.25, 7: "default", "sync": "on", "octave": 0.6}) == texts
    with pytest.raises(AsmError, match=r"^--set needs name=value, got 'cutoff'$"):
        space.parse_assignments(["cutoff"], "--set")
    with pytest.raises(AsmError, match=r"lock needs name=value, got '=0.5' \(or use --from-preset\)"):
        space.parse_assignments(["=0.5"], "lock", hint=" (or use --from-preset)")
    with pytest.raises(AsmError, match="cutoff is given twice"):
        space.parse_assignments(["cutoff=0.1", "0=0.2"])
    with pytest.raises(AsmError, match=r"value for gain must be in \[0, 1\] \(normalised\), got 1.5"):
        space.parse_assignments({"gain": 1.5})
    with pytest.raises(AsmError, match="unknown choice 'kazoo'"):
        space.parse_assignments(["wave=kazoo"])


def test_duplicate_names_need_an_index():
    space = ParameterSpace([ParameterSpec(0, "level"), ParameterSpec(1, "level")])
    with pytest.raises(AsmError, match="ambiguous"):
        space.position("level")
    assert space.position("1") == 1


def test_signatures_follow_free_set_and_lock_values():
    a, b, c = make_space({1: 0.0}), make_space({1: 1.0}), make_space({3: 0.0})
    assert a.free_signature() == b.free_signature() != c.free_signature()
    assert a.lock_signature() != b.lock_signature()


def test_preset_hash_ignores_float_noise():
    assert preset_hash([0.5, 0.25]) == preset_hash([0.5 + 1e-9, 0.25])
    assert preset_hash([0.5, 0.25]) != preset_hash([0.5, 0.26])
