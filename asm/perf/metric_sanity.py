"""Does a distance track what a listener hears? Controlled degradations scored by every metric.

Sounds: out-of-domain instrument notes (``asm ood-targets``, built when missing), renders of random
asm-sub presets and of amsynth factory presets. Each is degraded in families of increasing
strength (``FAMILIES``; asm.audio.degrade), and every family starts at strength 0 with a *phase
re-render*: the same sound with other oscillator phases (amsynth: rendered again, its oscillators
start at random phase; the others: a random all-pass cascade, ``degrade.random_phase``), which a
listener does not tell from the original and a distance should score about 0.

A family that changes nothing audible in a sound cannot be ordered, so it is left out for that
sound: attack families for a rise faster than ``MIN_ATTACK``, and any attack or decay family whose
strongest step moves the loudness envelope by less than ``MIN_ENVELOPE_DB`` (1 dB, about what a
listener just notices; measured on frame power, by no metric's definition): decay stretched in a
sound that sustains, attack in a bassoon's 25 ms rise. ``counts`` says how many sounds each family kept.

Per sound and family, the Spearman correlation between strength (0 = phase re-render, then the
steps) and distance; the table shows the mean over sounds, and in brackets the same over the steps
alone (without the phase re-render: are the audible changes ordered among themselves?). ``phase ratio``: the phase re-render's
distance over the smallest first step of any family (median over sounds): below 1, a re-render
scores better than any audible change. An objective set is judged by the sum of its objectives,
each divided by its median over every degraded sound of the run (a scale-free sum; a Pareto
search sees the objectives apart, but a sum ranks as a search that weighs them evenly).

``rerender_floor``: the distance between R renders of one preset (all ordered pairs) for a
nondeterministic synth: a score below it is luck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm.audio import degrade as D
from asm.audio.analysis import NoPitchFound, detect_notes
from asm.audio.signal import is_usable
from asm.errors import AsmError
from asm.midi.notes import held
from asm.presets import amsynth_bank
from asm.synth.builtin import ASM_SUB
from asm.synth.host import SynthSpec, open_synth
from asm.synth.params import ParameterSpace
from asm.synth.plugin import describe_plugin, space_from

SAMPLE_RATE = 16000
DURATION = 1.0  # s, synth renders (OOD notes keep their own 2 s)
NOTE_OFF = 0.7
MIN_ATTACK = 0.03  # s: a faster rise made faster or slower by 2x is not heard, so it cannot be ordered
MIN_ENVELOPE_DB = 1.0  # an envelope family whose strongest step moves the loudness by less (about the
# level a listener just notices) changes nothing audible in that sound, so it is left out for it
ENVELOPE_FAMILIES = ("attack x<1", "attack x>1", "decay x<1", "decay x>1")


@dataclass(frozen=True)
class Step:
    label: str
    strength: float
    apply: Callable[[np.ndarray, int, int], np.ndarray]  # (audio, sr, seed) -> audio


def _noise(db):
    return Step(f"{db:+g} dB", 60 + db, lambda x, sr, s: D.add_noise(x, db, s))


def _detune(c):
    return Step(f"{c:g} ct", c, lambda x, sr, s: D.detune(x, c))


def _env(part, f):
    return Step(f"x{f:g}", abs(np.log2(f)), lambda x, sr, s: D.stretch_envelope(x, sr, part, f))


def _lp(f):
    return Step(f"{f:g} bw", 1 - f, lambda x, sr, s: D.lowpass(x, sr, f))


def _gain(db):
    return Step(f"{db:+g} dB", abs(db), lambda x, sr, s: D.gain(x, db))


FAMILIES: dict[str, tuple[Step, ...]] = {
    "noise": tuple(_noise(db) for db in (-50, -40, -30, -20)),
    "detune": tuple(_detune(c) for c in (10, 25, 50, 100)),
    "attack x<1": tuple(_env("attack", f) for f in (0.79, 0.63, 0.5)),
    "attack x>1": tuple(_env("attack", f) for f in (1.26, 1.59, 2.0)),
    "decay x<1": tuple(_env("decay", f) for f in (0.79, 0.63, 0.5)),
    "decay x>1": tuple(_env("decay", f) for f in (1.26, 1.59, 2.0)),
    "lowpass": tuple(_lp(f) for f in (0.71, 0.5, 0.25)),
    "level up": tuple(_gain(db) for db in (3, 6)),
    "level down": tuple(_gain(db) for db in (-3, -6)),
}


@dataclass
class Sound:
    source: str
    name: str
    audio: np.ndarray
    phase: np.ndarray  # the phase re-render


def _asm_sub(sample_rate: int):
    return open_synth(SynthSpec("asm-sub", "faust", "builtin:asm-sub", ParameterSpace(ASM_SUB.params), sample_rate))


AMSYNTH = Path("/usr/lib/vst/amsynth_vst.so")
AMSYNTH_BANKS = Path("/usr/share/amsynth/banks")


def _amsynth(sample_rate: int):
    info = describe_plugin(AMSYNTH)
    return open_synth(SynthSpec("amsynth", "vst2", str(AMSYNTH), space_from(info), sample_rate))


def amsynth_factory(space, n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """``n`` amsynth factory presets drawn at random: (name, full normalised values)."""
    presets = [(f"{bank.stem.split('.')[0]}/{p.name}", p) for bank in sorted(AMSYNTH_BANKS.glob("*.bank"))
               for p in amsynth_bank.read(bank)]
    pick = rng.choice(len(presets), size=min(len(presets), 4 * n), replace=False)
    return [(presets[i][0], space.from_named(amsynth_bank.normalise(presets[i][1].raw))) for i in pick]


def _usable_pitched(audio: np.ndarray, sr: int) -> bool:
    if not is_usable(audio) or np.abs(audio).max() > 1.5:
        return False
    try:
        detect_notes(audio, sr)
    except NoPitchFound:
        return False
    return True


def collect_sounds(sources: tuple[str, ...], n: int, seed: int, sample_rate: int = SAMPLE_RATE,
                   targets: Path | None = None) -> list[Sound]:
    """``n`` pitched, usable sounds per source (``ood``, ``asm-sub``, ``amsynth``) with their phase re-renders."""
    rng = np.random.default_rng([seed, 0x5A7E])
    notes = held([57], 100, NOTE_OFF)
    out: list[Sound] = []
    for source in sources:
        found: list[Sound] = []
        if source == "ood":
            from asm.bench.ood import load_ood_targets, make_ood_targets

            if not load_ood_targets("mono", targets):
                make_ood_targets(targets)
            ood = load_ood_targets("mono", targets)
            for k in rng.choice(len(ood), size=min(n, len(ood)), replace=False):
                x = ood[k].audio(sample_rate)
                found.append(Sound("ood", ood[k].name, x, D.random_phase(x, sample_rate, seed + len(found))))
        elif source == "asm-sub":
            synth = _asm_sub(sample_rate)
            for _ in range(40 * n):
                v = synth.space.full(synth.space.random_free(rng, 1)[0])
                x = synth.render(v, notes, DURATION)
                if _usable_pitched(x, sample_rate):
                    found.append(Sound("asm-sub", f"random {len(found)}", x,
                                       D.random_phase(x, sample_rate, seed + len(found))))
                if len(found) == n:
                    break
        elif source == "amsynth":
            if not AMSYNTH.is_file():
                raise AsmError(f"amsynth is not installed ({AMSYNTH}); leave it out of --sources")
            synth = _amsynth(sample_rate)
            try:
                for name, v in amsynth_factory(synth.space, n, rng):
                    x = synth.render(v, notes, DURATION)
                    if _usable_pitched(x, sample_rate):
                        found.append(Sound("amsynth", name, x, synth.render(v, notes, DURATION)))
                    if len(found) == n:
                        break
            finally:
                synth.close()
        else:
            raise AsmError(f"unknown source {source!r}: choose from ood, asm-sub, amsynth")
        out.extend(found)
    return out


def loudness_change_db(reference: np.ndarray, changed: np.ndarray, frame: int = 512) -> float:
    """Mean |difference| in dB of frame power (``frame`` samples, half overlap) over the reference's
    frames within 40 dB of its loudest: how far a degradation moved the loudness envelope, by no metric's
    definition."""
    def levels(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        frames = np.lib.stride_tricks.sliding_window_view(a, frame)[:: frame // 2]
        return 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-12))

    n = min(len(reference), len(changed))
    ref, new = levels(reference[:n]), levels(changed[:n])
    keep = ref > ref.max() - 40
    return float(np.abs(new - ref)[keep].mean())


def _spearman(strength: np.ndarray, dist: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(dist) == 0:
        return 0.0
    return float(spearmanr(strength, dist).statistic)


def run_metric_sanity(sources: tuple[str, ...] = ("ood", "asm-sub", "amsynth"), n: int = 4, seed: int = 0,
                      specs: dict[str, str | tuple[str, ...]] | None = None, targets: Path | None = None,
                      sample_rate: int = SAMPLE_RATE) -> dict:
    """Spearman per (metric or set, family), mean over sounds, and the phase ratio; see the module doc."""
    from asm.audio import metrics as M

    specs = specs or {**{m: (m,) for m in M.METRICS}, **{f"set: {s}": M.OBJECTIVE_SETS[s] for s in
                                                         ("asm", "asm-v1", "autosoundmatch")}}
    names = list(dict.fromkeys(n for spec in specs.values() for n in M.resolve(spec)))
    sounds = collect_sounds(tuple(sources), n, seed, sample_rate, targets)
    # scores[sound][family] -> {metric: (levels + 1,) distances, phase first}
    scores = []
    for i, s in enumerate(sounds):
        batch = [s.phase]
        index = {}
        for fam, steps in FAMILIES.items():
            index[fam] = [0] + list(range(len(batch), len(batch) + len(steps)))
            batch += [st.apply(s.audio, sample_rate, seed * 1000 + i) for st in steps]
        d = M.distances(np.stack(batch), s.audio, sample_rate, names)
        slow_rise = D.attack_time(s.audio, sample_rate) >= MIN_ATTACK
        scores.append({fam: {m: d[m][idx] for m in names} for fam, idx in index.items()
                       if (slow_rise or not fam.startswith("attack"))
                       and (fam not in ENVELOPE_FAMILIES or loudness_change_db(s.audio, batch[idx[-1]]) >= MIN_ENVELOPE_DB)})
    scale = {m: float(np.median([v for sc in scores for fam in sc for v in sc[fam][m][1:]])) or 1.0 for m in names}
    rows = {}
    for label, spec in specs.items():
        members = M.resolve(spec)
        fam_rho: dict[str, list[float]] = {fam: [] for fam in FAMILIES}
        step_rho: dict[str, list[float]] = {fam: [] for fam in FAMILIES}
        ratios = []
        for sc in scores:
            combined = {fam: sum(sc[fam][m] / scale[m] for m in members) for fam in sc}
            for fam in sc:
                strength = np.array([0.0] + [st.strength for st in FAMILIES[fam]])
                fam_rho[fam].append(_spearman(strength, combined[fam]))
                step_rho[fam].append(_spearman(strength[1:], combined[fam][1:]))
            first = min(combined[fam][1] for fam in sc)
            ratios.append(combined["noise"][0] / first if first > 0 else np.inf)
        rho = {fam: float(np.mean(v)) if v else float("nan") for fam, v in fam_rho.items()}
        steps_only = {fam: float(np.mean(v)) if v else float("nan") for fam, v in step_rho.items()}
        rows[label] = {"spearman": rho, "min_spearman": float(np.nanmin(list(rho.values()))),
                       "spearman_steps": steps_only,
                       "phase_ratio": float(np.median(ratios)), "phase_ratio_max": float(np.max(ratios))}
    counts = {fam: sum(fam in sc for sc in scores) for fam in FAMILIES}
    return {"sounds": [{"source": s.source, "name": s.name} for s in sounds], "counts": counts, "families": {
        fam: [st.label for st in steps] for fam, steps in FAMILIES.items()}, "rows": rows, "seed": seed,
        "sample_rate": sample_rate}


def rerender_floor(synth, presets: np.ndarray, notes, duration: float, renders: int = 4,
                   metrics: tuple[str, ...] = ("perceptual", "mr-stft")) -> dict:
    """Distances between ``renders`` renders of each preset (all ordered pairs): a nondeterministic
    synth's floor. Returns {metric: {"median", "max", "per_preset": [...]}}."""
    from asm.audio.metrics import rerender_spread

    per: dict[str, list[float]] = {m: [] for m in metrics}
    for v in presets:
        audio = np.stack([synth.render(v, notes, duration) for _ in range(renders)])
        for m, d in rerender_spread(audio, synth.sample_rate, metrics).items():
            per[m].append(d)
    return {m: {"median": float(np.median(v)), "max": float(np.max(v)), "per_preset": v} for m, v in per.items()}
