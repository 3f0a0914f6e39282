"""The preset index: the audio embedding of every preset of a synth, rendered once and cached.

Each preset is rendered at a few reference pitches (``PITCHES``), since a log-mel embedding moves
with pitch; a query uses the pitch nearest the target's. The index file lives under the data dir
(``proxies/index/<synth>-<key>.npz``), written atomically; its key hashes everything its
embeddings depend on (the preset set's values, the locks, the sample rate, the render and feature
settings), so importing, changing or deleting a preset, or a lock, builds a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asm import paths
from asm.errors import AsmError
from asm.midi.notes import Note
from asm.progress import Reporter
from asm.proxy.embedding import PROFILE_FFT, PROFILE_HOP, PROFILE_LOW

FORMAT = 2
PITCHES = (48, 60, 72)
NOTE_SECONDS, CLIP_SECONDS, VELOCITY = 1.0, 1.5, 100
CHUNK = 256  # presets rendered per batch (bounds the audio held in memory)


@dataclass
class PresetIndex:
    key: str
    preset_ids: np.ndarray  # (N,)
    names: list[str]
    full: np.ndarray  # (N, size) normalised values as rendered (quantised, locks applied)
    pitches: tuple[int, ...]
    embeddings: np.ndarray  # (len(pitches), N, 2, bands) float32: ``spectral_profile``
    sounding: np.ndarray  # (len(pitches), N) bool: the render was audible

    def nearest(self, profile: np.ndarray, pitch: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the ``k`` presets whose profile at the reference pitch nearest ``pitch``,
        aligned to it, is closest to the target's ``profile``, and those distances."""
        from asm.proxy.embedding import profile_distance

        row = int(np.argmin([abs(p - pitch) for p in self.pitches]))
        ok = self.sounding[row]
        d = profile_distance(profile, self.embeddings[row], self.pitches[row] - int(pitch))
        d[~ok] = np.inf
        order = np.argsort(d, kind="stable")[: max(0, min(k, int(ok.sum())))]
        return order, d[order]


def index_key(synth_row, space, rows, sample_rate: int) -> str:
    """A hash of everything the index's embeddings depend on."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "synth": synth_row.name, "path": synth_row.path,
                         "version": synth_row.version, "sr": int(sample_rate), "pitches": PITCHES,
                         "note": [NOTE_SECONDS, CLIP_SECONDS, VELOCITY], "profile": [PROFILE_FFT, PROFILE_HOP, PROFILE_LOW],
                         "locks": space.lock_signature()}, sort_keys=True, default=str).encode())
    for preset_id, values in rows:
        h.update(f"{preset_id}:".encode())
        h.update(np.asarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def index_path(synth_name: str, key: str) -> Path:
    return paths.data_dir() / "proxies" / "index" / f"{synth_name}-{key}.npz"


def preset_rows(session, synth_row, space) -> list[tuple[int, str, list[float]]]:
    """(id, name, values) of every preset of the synth with this parameter layout, in id order."""
    from sqlalchemy import select

    from asm.registry.models import Preset

    rows = session.execute(select(Preset.id, Preset.name, Preset.values).where(
        Preset.synth_id == synth_row.id).order_by(Preset.id)).all()
    return [(int(i), n, v) for i, n, v in rows if len(v) == space.size]


def load_or_build(session, synth_row, spec, pool, reporter: Reporter | None = None) -> tuple[PresetIndex, bool]:
    """The synth's preset index (built with ``pool`` when the stored one is missing or stale) and
    whether it was built now. A synth without presets is refused in one line."""
    space = spec.space
    rows = preset_rows(session, synth_row, space)
    if not rows:
        raise AsmError(f"synth {synth_row.name} has no presets: import some with asm import-presets "
                       f"--synth {synth_row.name} FILES")
    key = index_key(synth_row, space, [(i, v) for i, _, v in rows], spec.sample_rate)
    path = index_path(synth_row.name, key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return PresetIndex(key, z["preset_ids"], [str(n) for n in z["names"]], z["full"],
                                   tuple(int(p) for p in z["pitches"]), z["embeddings"], z["sounding"]), False
        except (OSError, KeyError, ValueError):
            pass  # a damaged file is rebuilt
    index = build(rows, space, spec.sample_rate, pool, key, reporter or Reporter())
    save(index, path)
    return index, True


def build(rows, space, sample_rate: int, pool, key: str, reporter: Reporter) -> PresetIndex:
    from asm.proxy.embedding import spectral_profile

    full = space.apply_locks(space.quantise(np.array([v for _, _, v in rows], dtype=np.float64)))
    n = len(rows)
    emb = None
    sounding = np.zeros((len(PITCHES), n), dtype=bool)
    stage = "indexing presets"
    reporter.start(stage, n * len(PITCHES))
    done = 0
    for p, pitch in enumerate(PITCHES):
        notes = [Note(pitch, VELOCITY, 0.0, NOTE_SECONDS)]
        for a in range(0, n, CHUNK):
            audio = pool.render(full[a : a + CHUNK], notes, CLIP_SECONDS)
            length = int(round(CLIP_SECONDS * sample_rate))
            batch = np.zeros((len(audio), length), np.float32)
            for j, x in enumerate(audio):
                if x is not None and np.isfinite(x).all() and np.abs(x).max() > 1e-4:
                    batch[j, : min(length, len(x))] = x[:length]
                    sounding[p, a + j] = True
            e = spectral_profile(batch, sample_rate)
            if emb is None:
                emb = np.zeros((len(PITCHES), n, *e.shape[1:]), np.float32)
            emb[p, a : a + len(e)] = e
            done += len(audio)
            reporter.update(done, stage=stage)
    reporter.finish(stage)
    return PresetIndex(key, np.array([i for i, _, _ in rows], np.int64), [nm for _, nm, _ in rows],
                       full.astype(np.float32), PITCHES, emb, sounding)


def save(index: PresetIndex, path: Path) -> None:
    """Write atomically, then drop this synth's stale index files."""
    from asm.atomic import atomic_open

    paths.ensure_dir(path.parent)
    with atomic_open(path) as fh:
        np.savez(fh, preset_ids=index.preset_ids, names=np.array(index.names, dtype=str), full=index.full,
                 pitches=np.array(index.pitches), embeddings=index.embeddings, sounding=index.sounding)
    synth = path.name.rsplit("-", 1)[0]
    for stale in path.parent.glob(f"{synth}-*.npz"):
        if stale != path and stale.name.rsplit("-", 1)[0] == synth:
            stale.unlink(missing_ok=True)

