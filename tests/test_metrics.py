"""The metric module: definitions hold numerically, worst cases are defined, batches agree."""

import pickle

import numpy as np
import pytest

from asm.audio import metrics as M
from asm.errors import AsmError
from asm.midi.notes import held
from asm.synth.builtin import ASM_SUB
from asm.synth.host import SynthSpec, open_synth
from asm.synth.params import ParameterSpace

SR = 16000
ALL = tuple(M.METRICS)


@pytest.fixture(scope="module")
def synth():
    """asm-sub opened without the registry (module scope: renders are shared by the tests here)."""
    return open_synth(SynthSpec("asm-sub", "faust", "builtin:asm-sub", ParameterSpace(ASM_SUB.params), SR))


def saw_preset(space, **named):
    return space.from_named({"osc1_wave": 0.0, "cutoff": 0.75, "amp_sustain": 0.8, **named})


@pytest.fixture(scope="module")
def target(synth):
    return synth.render(saw_preset(synth.space), held([57], 100, 0.7), 1.0)


@pytest.fixture(scope="module")
def randoms(synth):
    rng = np.random.default_rng(3)
    values = synth.space.random_free(rng, 12)
    return np.stack([synth.render(synth.space.full(v), held([57], 100, 0.7), 1.0) for v in values])


def test_identical_audio_scores_zero_for_every_metric(target, randoms):
    for audio in (target, randoms[0]):
        d = M.distances(audio, audio, SR, ALL)
        for name in ALL:
            assert d[name].shape == (1,) and abs(d[name][0]) < 1e-6, (name, d[name])
    batch = np.stack([target, randoms[1], randoms[2]])
    pairwise = M.distances(batch, batch, SR, ALL)
    for name in ALL:
        np.testing.assert_allclose(pairwise[name], 0.0, atol=1e-6)


def test_symmetric_metrics_are_symmetric_and_spectral_convergence_is_normalised_by_the_target(target, randoms):
    a, b = np.stack([target, randoms[0], randoms[3]]), np.stack([randoms[1], randoms[2], target])
    ab, ba = M.distances(a, b, SR, ALL), M.distances(b, a, SR, ALL)
    for name in ALL:
        if M.METRICS[name].symmetric:
            np.testing.assert_allclose(ab[name], ba[name], rtol=1e-5, err_msg=name)
    # a candidate twice as loud: SC = ||2Y - Y|| / ||Y|| = 1; the reverse, ||Y/2 - Y|| / ||Y|| = 0.5
    assert M.distance("spectral-convergence", 2 * target, target, SR)[0] == pytest.approx(1.0, abs=1e-4)
    assert M.distance("spectral-convergence", 0.5 * target, target, SR)[0] == pytest.approx(0.5, abs=1e-4)


def test_gain_change_gives_the_values_the_definitions_predict():
    # white noise has every bin far above the -100 dB floor, so a gain g shifts every log by ln g
    noise = (np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32)
    g = 0.5
    d = M.distances(g * noise, noise, SR, ALL)
    db = 20 * np.log10(1 / g)
    assert d["spectral-convergence"][0] == pytest.approx(1 - g, abs=1e-4)
    assert d["mr-stft"][0] == pytest.approx((1 - g) + np.log(1 / g), abs=1e-3)
    assert d["log-spectral"][0] == pytest.approx(db, abs=1e-3)
    assert d["loudness-envelope"][0] == pytest.approx(db, abs=1e-3)
    # MFCC: ln(g^2) on every mel band moves only c0, by sqrt(n_mels) * ln(g^2) (orthonormal DCT)
    assert d["mfcc"][0] == pytest.approx(np.sqrt(M.N_MELS) * 2 * np.log(1 / g), rel=1e-3)
    assert d["amplitude-envelope"][0] > 0 and d["fft-magnitude"][0] > 0 and d["stft-magnitude"][0] > 0


def test_loudness_reads_minus_3_db_for_a_full_scale_1khz_sine():
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    loud = M._Analysis(M.as_batch(sine), SR).loudness()[0].numpy()
    middle = loud[10:-10]  # frames away from the zero-padded edges
    np.testing.assert_allclose(middle, 10 * np.log10(0.5), atol=0.05)
    silent = M._Analysis(M.as_batch(np.zeros(SR, np.float32)), SR).loudness()[0].numpy()
    assert (silent == M.POWER_FLOOR_DB).all()


def test_distance_grows_with_detuning(synth, target):
    space = synth.space
    cents = [5, 15, 30, 50]  # osc2 alone, detuned from the target's pitch
    audio = np.stack([
        synth.render(saw_preset(space, osc1_level=0.0, osc2_level=0.8, osc2_wave=0.0, osc2_detune=0.5 + c / 100),
                     held([57], 100, 0.7), 1.0)
        for c in cents
    ])
    d = M.distances(audio, target, SR, ALL)
    for name in ("mr-stft", "spectral-convergence", "log-spectral", "stft-magnitude"):
        assert np.all(np.diff(d[name]) > 0), (name, d[name])
    assert (d["mfcc"] > 1.0).all()  # MFCCs are made to ignore pitch, but still see a 5-cent beat


def test_distance_grows_as_a_lowpass_closes(synth, target):
    cutoffs = [0.7, 0.6, 0.5, 0.4]  # target: 0.75
    audio = np.stack([synth.render(saw_preset(synth.space, cutoff=c), held([57], 100, 0.7), 1.0) for c in cutoffs])
    d = M.distances(audio, target, SR, ALL)
    for name in ALL:
        assert d[name][0] > 0 and np.all(np.diff(d[name]) > 0), (name, d[name])


def test_silent_or_non_finite_audio_scores_the_documented_worst_never_nan(target, randoms):
    bad = [np.zeros_like(target), target * 1e-6, target.copy(), target.copy(), np.zeros(0, np.float32)]
    bad[2][100] = np.nan
    bad[3][5000] = np.inf
    good = randoms[:2]
    for audio in bad:
        d = M.distances(audio, target, SR, ALL)
        for name in ALL:
            assert d[name][0] == M.METRICS[name].worst, (name, d[name])
    batch = np.stack([good[0], bad[0], bad[2], good[1]])
    f = M.objectives("asm", batch, target, SR)
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f[1], M.worst_scores("asm"))
    np.testing.assert_array_equal(f[2], M.worst_scores("asm"))
    assert (f[[0, 3]] < M.worst_scores("asm")).all()
    # pairwise: an unusable reference makes its pair worst, and only that pair
    pairs = M.distances(np.stack([good[0], good[1]]), np.stack([bad[0], target]), SR, ["mr-stft"])["mr-stft"]
    assert pairs[0] == M.METRICS["mr-stft"].worst and pairs[1] < M.METRICS["mr-stft"].worst
    # usable scores never exceed the worst, even for a wildly loud candidate
    loud = M.distances(target * 1e4, target, SR, ALL)
    for name in ALL:
        assert loud[name][0] <= M.METRICS[name].worst


def test_batch_equals_one_by_one_and_chunking_does_not_matter(target, randoms):
    batch = randoms[:7]
    whole = M.distances(batch, target, SR, ALL, chunk=64)
    chunked = M.distances(batch, target, SR, ALL, chunk=3)
    pairs = M.distances(batch, np.repeat(target[None], len(batch), 0), SR, ALL, chunk=2)
    for i, audio in enumerate(batch):
        one = M.distances(audio, target, SR, ALL)
        for name in ALL:
            for other in (whole, chunked, pairs):
                assert other[name][i] == pytest.approx(one[name][0], rel=1e-5, abs=1e-6), name
    reversed_pairs = M.distances(batch[::-1], batch, SR, ["log-spectral"])["log-spectral"]
    for i in range(len(batch)):
        assert reversed_pairs[i] == pytest.approx(M.distance("log-spectral", batch[::-1][i], batch[i], SR)[0], rel=1e-5)


def test_deterministic_and_scorer_pickles(target, randoms):
    first = M.objectives("asm", randoms, target, SR)
    np.testing.assert_array_equal(first, M.objectives("asm", randoms, target, SR))
    scorer = M.Scorer(target, SR, "autosoundmatch")
    scorer.objectives(randoms[:2])
    clone = pickle.loads(pickle.dumps(scorer))
    np.testing.assert_allclose(clone.objectives(randoms), M.objectives("autosoundmatch", randoms, target, SR),
                               rtol=1e-6)
    assert scorer.names == ("fft-magnitude", "stft-magnitude", "amplitude-envelope")


def test_lengths_are_zero_padded_to_the_longer_signal(target):
    padded = np.concatenate([target, np.zeros(800, np.float32)])
    assert M.distance("mr-stft", padded, target, SR)[0] < 1e-6  # trailing silence added: same sound
    shorter = target[: SR // 2]
    d = M.distances(shorter, target, SR, ALL)
    d2 = M.distances(np.concatenate([shorter, np.zeros(SR // 2, np.float32)]), target, SR, ALL)
    for name in ALL:
        assert np.isfinite(d[name][0]) and d[name][0] > 0
        assert d[name][0] == pytest.approx(d2[name][0], rel=1e-5)
    with pytest.raises(ValueError):
        M.distances(np.stack([target, target]), np.stack([target] * 3), SR)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_other_sample_rates_keep_the_resolutions_in_milliseconds(sample_rate):
    n = M.frame_length(sample_rate, 64)
    assert n % 16 == 0 and abs(n / sample_rate - 0.064) < 0.001
    t = np.arange(sample_rate) / sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t)).astype(np.float32)
    detuned = (0.5 * np.sin(2 * np.pi * 452 * t) * np.exp(-2 * t)).astype(np.float32)
    same = M.distances(tone, tone, sample_rate, ALL)
    diff = M.distances(detuned, tone, sample_rate, ALL)
    for name in ALL:
        assert same[name][0] < 1e-6, name
        if name != "noisiness":  # two pure tones are equally noise-free
            assert diff[name][0] > same[name][0], name


def test_registry_names_sets_and_rejects_unknown_metrics():
    assert M.resolve("asm") == M.resolve("perceptual") == ("perceptual", "loudness-envelope", "mfcc")
    assert M.resolve("asm-v1") == ("mr-stft", "mfcc", "loudness-envelope")
    assert M.REPORT_METRICS[:2] == (M.HEADLINE_METRIC, "mr-stft")
    assert M.resolve("autosoundmatch") == ("fft-magnitude", "stft-magnitude", "amplitude-envelope")
    assert M.resolve("mfcc, log-spectral") == ("mfcc", "log-spectral")
    assert set(M.REPORT_METRICS) <= set(M.METRICS)
    assert M.frame_length(SR, 128) == 2048 and M.frame_length(SR, 16) == 256
    with pytest.raises(AsmError, match="unknown metric 'mel-stft'"):
        M.resolve("mel-stft")
    with pytest.raises(AsmError):
        M.resolve([])
    rows = M.describe()
    assert {r["name"] for r in rows} == set(M.METRICS) and all(r["definition"] and r["worst"] > 0 for r in rows)


def test_perf_metrics_command_prints_every_metric_and_set(cli):
    result = cli("perf", "metrics", "--batch", "8", "--durations", "0.5", "--repeats", "1", "--threads", "1",
                 "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert set(M.METRICS) | {"set: asm", "set: autosoundmatch"} <= set(data["ms_per_pair"])
    assert all(row["0.5s"] > 0 for row in data["ms_per_pair"].values())
    assert data["detect_notes_ms"]["0.5s"] > 0 and data["threads"] == 1
    assert cli("perf", "metrics", "--durations", "one").code == 2


# --- the perceptual metric and the degradation families -------------------------------------------

def _family_sounds(synth):
    """A small fixed set: two asm-sub presets (saw with a slow attack, a plucked square) and a
    synthetic bowed tone with vibrato and a soft noise floor (a stand-in for a recorded note)."""
    from asm.audio import degrade as D

    notes = held([57], 100, 0.7)
    saw = synth.render(saw_preset(synth.space, amp_attack=0.35), notes, 1.0)
    pluck = synth.render(synth.space.from_named({"osc1_wave": 0.5, "cutoff": 0.6, "amp_attack": 0.0,
                                                 "amp_decay": 0.3, "amp_sustain": 0.2}), notes, 1.0)
    t = np.arange(SR) / SR
    f0 = 220 * (1 + 0.004 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    env = np.minimum(t / 0.12, 1.0) * np.where(t < 0.75, 1.0, np.exp(-(t - 0.75) / 0.06))
    bowed = sum(np.sin(k * phase) / k for k in range(1, 12)) * env * 0.25
    bowed += np.random.default_rng(5).standard_normal(SR) * 10 ** (-70 / 20) * 0.25
    sounds = [saw, pluck, bowed.astype(np.float32)]
    return [(x, D.random_phase(x, SR, i)) for i, x in enumerate(sounds)]


def test_default_metric_orders_every_degradation_family(synth):
    """Each family, from the phase re-render (strength 0) through its steps, scores strictly increasing
    with the headline metric on the fixed set (attack families only on sounds with a heard rise)."""
    from asm.audio import degrade as D
    from asm.perf.metric_sanity import FAMILIES, MIN_ATTACK

    failures = []
    for i, (x, phased) in enumerate(_family_sounds(synth)):
        for fam, steps in FAMILIES.items():
            if fam.startswith("attack") and D.attack_time(x, SR) < MIN_ATTACK:
                continue
            batch = np.stack([phased] + [st.apply(x, SR, 7) for st in steps])
            d = M.distance(M.HEADLINE_METRIC, batch, x, SR)
            if not np.all(np.diff(d) > 0):
                failures.append((i, fam, np.round(d, 4).tolist()))
    assert not failures


def test_perceptual_ignores_what_lies_far_under_the_target_and_sees_noise_between_partials():
    """The issue's case: a target with a soft noise floor (-75 dB). A clean candidate differs only
    under that floor (inaudible): perceptual ~0 where mr-stft's -100 dB floor counts it; noise at
    -50 dB between the partials is seen by perceptual and by noisiness."""
    t = np.arange(SR) / SR
    rng = np.random.default_rng(0)
    tone = sum(np.sin(2 * np.pi * 196 * k * t) / k for k in range(1, 16)) * 0.2 * np.exp(-1.5 * t)
    target = (tone + rng.standard_normal(SR) * 10 ** (-75 / 20)).astype(np.float32)
    clean = tone.astype(np.float32)
    noisy = (tone + rng.standard_normal(SR) * 10 ** (-50 / 20) * 0.2).astype(np.float32)
    d = M.distances(np.stack([clean, noisy]), target, SR, ["perceptual", "mr-stft", "noisiness"])
    assert d["perceptual"][0] < 0.01 and d["mr-stft"][0] > 0.1
    assert d["perceptual"][1] > 20 * d["perceptual"][0]
    assert d["noisiness"][1] > 2 * d["noisiness"][0]


def test_perceptual_charges_noise_between_partials_that_the_bands_forgive_and_only_above_the_slack():
    """Noise 12 dB under a tone's partials fills the gaps between them: the band terms alone barely
    move (they average over each band's bins), the noise term charges its decades of extra flatness.
    A candidate less noisy than its target, or within the slack, pays nothing for noise."""
    import torch

    t = np.arange(SR) / SR
    rng = np.random.default_rng(1)
    tone = (sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 12)) * 0.2).astype(np.float32)
    hiss = (rng.standard_normal(SR) * 0.2 * 10 ** (-12 / 20)).astype(np.float32)
    d = M.distances(np.stack([tone + hiss, tone]), tone, SR, ["perceptual", "noisiness"])
    from asm.audio.analysis import noisiness

    f_tone, f_washed = noisiness(tone, SR), noisiness(tone + hiss, SR)
    assert f_washed > 10 * f_tone  # the wash is over a decade flatter
    term = float(M.noise_excess(torch.tensor([f_washed]), torch.tensor([f_tone]))[0])
    expected = M.PERCEPTUAL_NOISE_WEIGHT * (np.log10(max(f_washed, M.NOISINESS_MIN) / max(f_tone, M.NOISINESS_MIN))
                                            - np.log10(M.PERCEPTUAL_NOISE_SLACK))
    assert term == pytest.approx(expected, rel=1e-4) and term > 0.3
    assert d["perceptual"][0] > term and d["perceptual"][1] == 0
    # the other way round (a clean candidate for a washed target) and within the slack: no noise charge
    assert float(M.noise_excess(torch.tensor([f_tone]), torch.tensor([f_washed]))[0]) == 0
    assert float(M.noise_excess(torch.tensor([1.9 * f_tone]), torch.tensor([f_tone]))[0]) == 0


def test_metric_sanity_command_prints_spearman_and_the_phase_ratio(cli):
    result = cli("perf", "metric-sanity", "--sources", "asm-sub", "--n", "2", "--json")
    assert result.code == 0, result.err
    data = result.json()
    row = data["rows"]["perceptual"]
    assert set(row["spearman"]) == set(data["families"]) and len(data["sounds"]) == 2
    assert row["spearman"]["noise"] > 0.9 and row["spearman"]["level down"] > 0.9 and row["phase_ratio"] > 0
    assert {"set: asm", "set: asm-v1", "mr-stft"} <= set(data["rows"])
    assert cli("perf", "metric-sanity", "--sources", "piano").code == 2


def test_envelope_families_are_left_out_where_they_change_nothing_audible():
    """metric-sanity drops a decay family from a sound that only sustains (no metric decides it)."""
    from asm.audio import degrade as D
    from asm.perf.metric_sanity import MIN_ENVELOPE_DB, loudness_change_db

    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 220 * t)
    rise = np.minimum(1.0, t / 0.05)
    sustained = (tone * rise * 0.3).astype(np.float32)
    plucked = (tone * rise * np.exp(-4 * t) * 0.3).astype(np.float32)
    assert loudness_change_db(sustained, D.stretch_envelope(sustained, SR, "decay", 2.0)) < MIN_ENVELOPE_DB
    assert loudness_change_db(plucked, D.stretch_envelope(plucked, SR, "decay", 2.0)) > MIN_ENVELOPE_DB
    assert loudness_change_db(plucked, D.gain(plucked, -6)) == pytest.approx(6.0, abs=0.01)
