"""What each example of a dataset will be, decided in the parent from the seed alone.

The plan fixes, for every example slot, its first-choice preset (random, factory or a mix; all
distinct), its split and its notes. Workers render slots; a slot whose render is silent or
non-finite (or crashes the synth) moves on to replacement presets drawn from the slot's own random
stream, so the outcome of a slot never depends on which worker rendered it or when. Presets are
deduplicated before splitting (by their content hash once locks are applied), and splits are
contiguous ranges of slots: train first, then validation, then test.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from asm.data.settings import DatasetSettings
from asm.errors import AsmError
from asm.midi.generate import PatternSettings, pattern
from asm.midi.notes import Note
from asm.midi.partition import NOTE_DTYPE, ChunkFilter, PartitionReport, chunks_of_dir, notes_array
from asm.synth.params import ParameterSpace

# independent random streams, keyed with the seed: np.random.default_rng([seed, STREAM, ...])
STREAM_FACTORY = 1
STREAM_RANDOM = 2
STREAM_NOTES = 3
STREAM_REPLACE = 4
STREAM_CHUNKS = 5
MAX_DRAWS = 50  # random draws per wanted preset before the space is declared too small
SPLITS = ("train", "val", "test")


def preset_keys(space: ParameterSpace, free: np.ndarray) -> np.ndarray:
    """64-bit content keys of free vectors: the first 8 bytes of ``preset_hash`` of the full vector."""
    free = np.atleast_2d(np.asarray(free, dtype=np.float64))
    full = space.apply_locks(space.quantise(space.full(free)))
    rounded = np.ascontiguousarray(np.round(full, 5) + 0.0, dtype="<f8")
    out = np.empty(len(rounded), dtype=np.uint64)
    for i, row in enumerate(rounded):
        out[i] = int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "little")
    return out


def as_label(space: ParameterSpace, free: np.ndarray) -> np.ndarray:
    """Free values as stored: quantised, float32 (and rendered exactly from that float32)."""
    return space.quantise_free(np.asarray(free, dtype=np.float64)).astype(np.float32)


@dataclass
class FactoryPool:
    """The synth's factory presets (free parts, locks applied), distinct, in registry id order."""

    free: np.ndarray  # (k, n_free) float32
    ids: np.ndarray  # (k,) int32 preset ids
    keys: np.ndarray  # (k,) uint64

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.keys.tobytes() + self.ids.tobytes()).hexdigest()[:16]


def factory_pool(space: ParameterSpace, rows: list[tuple[int, list[float]]]) -> FactoryPool:
    """From (preset id, full normalised values) rows; presets equal once locked count once."""
    rows = [(i, v) for i, v in rows if len(v) == space.size]
    if not rows:
        return FactoryPool(np.zeros((0, space.n_free), np.float32), np.zeros(0, np.int32), np.zeros(0, np.uint64))
    full = space.apply_locks(space.quantise(np.array([v for _, v in rows], dtype=np.float64)))
    free = as_label(space, space.free_part(full))
    keys = preset_keys(space, free)
    _, first = np.unique(keys, return_index=True)
    keep = np.sort(first)
    return FactoryPool(free[keep], np.array([i for i, _ in rows], dtype=np.int32)[keep], keys[keep])


@dataclass
class Plan:
    settings: DatasetSettings
    free: np.ndarray  # (size, n_free) float32 first-choice presets
    keys: np.ndarray  # (size,) uint64
    sources: np.ndarray  # (size,) int32: factory preset id, or -1 for a random preset
    spare: FactoryPool  # factory presets not used as first choices: replacements for factory slots
    chunks: list[np.ndarray] | None = None  # poly from MIDI: NOTE_DTYPE arrays
    chunk_of_slot: np.ndarray | None = None
    inputs: dict = field(default_factory=dict)  # fingerprints of what the plan read besides the seed

    @property
    def size(self) -> int:
        return len(self.free)

    @cached_property
    def split_codes(self) -> np.ndarray:
        """0 train, 1 val, 2 test for every slot (contiguous ranges)."""
        n_train, n_val, _ = self.settings.split_counts()
        s = np.full(self.size, 2, dtype=np.uint8)
        s[:n_train] = 0
        s[n_train : n_train + n_val] = 1
        return s

    def notes(self, slot: int) -> list[Note]:
        """The notes example ``slot`` plays (a pure function of the settings and the slot)."""
        s = self.settings
        if s.mode == "mono":
            if s.note_range is None and s.velocity_range is None:
                return [Note(s.note, s.velocity, 0.0, float(np.float32(s.note_off)))]
            rng = np.random.default_rng([s.seed, STREAM_NOTES, slot])
            pitch = s.note if s.note_range is None else int(rng.integers(s.note_range[0], s.note_range[1] + 1))
            vel = s.velocity if s.velocity_range is None else int(rng.integers(s.velocity_range[0], s.velocity_range[1] + 1))
            return [Note(pitch, vel, 0.0, float(np.float32(s.note_off)))]
        if self.chunks is not None:
            arr = self.chunks[int(self.chunk_of_slot[slot])]
            return [Note(int(r["pitch"]), int(r["velocity"]), float(r["start"]), float(r["duration"])) for r in arr]
        rng = np.random.default_rng([s.seed, STREAM_NOTES, slot])
        return pattern(rng, pattern_settings(s))

    def notes_block(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Notes of slots [start, start+count) as (offsets (count+1,), NOTE_DTYPE array)."""
        arrays = [notes_array(self.notes(slot)) for slot in range(start, start + count)]
        offsets = np.zeros(count + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        return offsets, (np.concatenate(arrays) if arrays else np.zeros(0, NOTE_DTYPE))


def pattern_settings(s: DatasetSettings) -> PatternSettings:
    low, high = s.note_range if s.note_range is not None else (36, 84)
    vel = s.velocity_range if s.velocity_range is not None else (60, 120)
    return PatternSettings(length=float(np.float32(s.note_off)), low=low, high=high, velocity=vel,
                           max_polyphony=s.max_polyphony, max_voices=min(6, s.max_polyphony),
                           min_voices=min(2, s.max_polyphony))


def load_midi_chunks(s: DatasetSettings) -> tuple[list[np.ndarray], PartitionReport]:
    """Chunks of the MIDI files of ``--midi-dir``, cut at the note-off time."""
    low, high = s.note_range if s.note_range is not None else (0, 127)
    chunks, report = chunks_of_dir(Path(s.midi_dir), float(np.float32(s.note_off)),
                                   ChunkFilter(low, high, s.max_polyphony))
    if not chunks:
        raise AsmError(f"no usable chunk in the MIDI files of {s.midi_dir} "
                       f"({report.files} read, {len(report.corrupt)} corrupt, {report.dropped_empty} empty chunks, "
                       f"{report.dropped_polyphony} over the polyphony limit)")
    return [notes_array(c) for _, _, c in chunks], report


def build_plan(s: DatasetSettings, space: ParameterSpace, pool: FactoryPool,
               chunks: list[np.ndarray] | None = None) -> Plan:
    """Deterministic first-choice presets, sources and notes for every slot."""
    size, n_free = s.size, space.n_free
    if n_free == 0:
        raise AsmError(f"every parameter of {s.synth} is locked: nothing to learn; unlock some parameters")
    n_factory = {"random": 0, "factory": size, "mix": int(round(s.factory_fraction * size))}[s.presets]
    if n_factory > len(pool.ids):
        have = len(pool.ids)
        raise AsmError(
            f"{s.synth} has {have} distinct factory presets (locks applied), fewer than the {n_factory} asked for; "
            + ("import factory presets first" if have == 0 else f"use --size {have} or less, or --presets mix:F")
        )
    free = np.empty((size, n_free), dtype=np.float32)
    keys = np.empty(size, dtype=np.uint64)
    sources = np.full(size, -1, dtype=np.int32)
    rng_f = np.random.default_rng([s.seed, STREAM_FACTORY])
    order = rng_f.permutation(len(pool.ids))
    picked, spare_idx = order[:n_factory], np.sort(order[n_factory:])
    factory_slots = np.sort(rng_f.permutation(size)[:n_factory]) if s.presets == "mix" else np.arange(n_factory)
    free[factory_slots] = pool.free[picked]
    keys[factory_slots] = pool.keys[picked]
    sources[factory_slots] = pool.ids[picked]

    random_slots = np.setdiff1d(np.arange(size), factory_slots)
    used = set(keys[factory_slots].tolist())
    rng_r = np.random.default_rng([s.seed, STREAM_RANDOM])
    filled, draws = 0, 0
    while filled < len(random_slots):
        want = len(random_slots) - filled
        cand = as_label(space, space.random_free(rng_r, want))
        ck = preset_keys(space, cand)
        draws += want
        for row, key in zip(cand, ck.tolist()):
            if key in used:
                continue
            used.add(key)
            slot = random_slots[filled]
            free[slot], keys[slot] = row, key
            filled += 1
            if filled == len(random_slots):
                break
        if draws > MAX_DRAWS * max(1, len(random_slots)) and filled < len(random_slots):
            raise AsmError(
                f"the free parameters of {s.synth} give too few distinct presets for {size} examples "
                f"(found {filled + n_factory}); unlock more parameters or lower --size"
            )
    spare = FactoryPool(pool.free[spare_idx], pool.ids[spare_idx], pool.keys[spare_idx])
    plan = Plan(s, free, keys, sources, spare)
    if s.presets != "random":
        plan.inputs["factory_presets"] = pool.fingerprint
    if chunks is not None:
        rng_c = np.random.default_rng([s.seed, STREAM_CHUNKS])
        reps = -(-size // len(chunks))
        plan.chunks = chunks
        plan.chunk_of_slot = np.concatenate([rng_c.permutation(len(chunks)) for _ in range(reps)])[:size]
        digest = hashlib.sha256()
        for c in chunks:
            digest.update(c.tobytes())
            digest.update(b"|")
        plan.inputs["midi_chunks"] = f"{len(chunks)}:{digest.hexdigest()[:16]}"
    return plan
