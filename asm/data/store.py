"""Datasets on disk and in the registry: directories, rows, locking, listing, verification, deletion.

Layout: ``<data dir>/datasets/<name>/shard-00000.safetensors …`` plus a ``.lock`` file held by the
one process generating or deleting the dataset. The registry row (``Dataset``) holds every setting;
a ``DatasetShard`` row exists only for a shard file that is complete on disk, with its checksum.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

import asm
from asm import paths
from asm.audio.signal import SILENCE_PEAK
from asm.data.shards import ShardFile, file_sha256
from asm.errors import AsmError
from asm.locks import LOCK_FILE, DirectoryLock, is_locked  # noqa: F401 - LOCK_FILE, is_locked: re-exported
from asm.registry.db import session_scope
from asm.registry.models import Dataset
from asm.registry.synths import space_of

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def check_name(name: str) -> str:
    return paths.check_name(name, "dataset")


def datasets_root() -> Path:
    return paths.data_dir() / "datasets"


def dataset_dir(name: str) -> Path:
    return datasets_root() / check_name(name)


@lru_cache(maxsize=1)
def code_version() -> str:
    """asm's version plus the git commit of the source tree when there is one."""
    version = asm.__version__
    try:
        here = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if commit:
            version += f"+g{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return version[:80]


def get_dataset(session: Session, name: str) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.name == name))
    if row is None:
        known = list(session.scalars(select(Dataset.name).order_by(Dataset.name)))
        hint = f"; known datasets: {', '.join(known[:20])}" if known else "; there are no datasets yet"
        raise AsmError(f"unknown dataset {name!r}{hint}")
    return row


class DatasetLock(DirectoryLock):
    """An exclusive lock on a dataset directory (released when the process dies, even by kill -9)."""

    def __init__(self, directory: Path, what: str = "generated"):
        super().__init__(directory, f"dataset {Path(directory).name} is being {what}")
        self.what = what


def disk_usage(row: Dataset) -> int:
    return sum(s.bytes for s in row.shards)


def summary(row: Dataset) -> dict:
    """The dataset as plain data (list-datasets, show-dataset, --json)."""
    n_shards = -(-row.size // row.shard_size)
    done = sum(s.count for s in row.shards)
    rejections = dict(row.rejections or {})
    if row.status != "complete":
        rejections = _sum_rejections(row.shards)
    return {
        "name": row.name,
        "synth": row.synth.name,
        "mode": row.mode,
        "size": row.size,
        "status": row.status,
        "examples_done": done,
        "shards_done": len(row.shards),
        "shards": n_shards,
        "shard_size": row.shard_size,
        "split_counts": row.split_counts,
        "seed": row.seed,
        "bytes": disk_usage(row),
        "rejections": rejections,
        "settings": row.settings,
        "code_version": row.code_version,
        "free_signature": row.free_signature,
        "lock_signature": row.lock_signature,
        "free_parameters": row.free_parameters,
        "directory": str(dataset_dir(row.name)),
        "created_at": row.created_at.isoformat(timespec="seconds") if row.created_at else None,
        "completed_at": row.completed_at.isoformat(timespec="seconds") if row.completed_at else None,
    }


def _sum_rejections(shards) -> dict:
    total: dict[str, int] = {}
    for s in shards:
        for k, v in (s.rejections or {}).items():
            total[k] = total.get(k, 0) + int(v)
    return total


def list_datasets() -> list[dict]:
    with session_scope(read_only=True) as session:
        return [summary(r) for r in session.scalars(select(Dataset).order_by(Dataset.name))]


def show_dataset(name: str) -> dict:
    with session_scope(read_only=True) as session:
        return summary(get_dataset(session, name))


def delete_dataset(name: str) -> dict:
    """Remove the rows, then the files (the directory is renamed away first, so a kill leaves no
    files that a later dataset of the same name would mistake for its own)."""
    check_name(name)
    with session_scope() as session:
        row = get_dataset(session, name)
        info = summary(row)
    directory = dataset_dir(name)
    trash = None
    if directory.exists():
        with DatasetLock(directory, "generated"):
            pass  # fails if a generation holds it
        trash = directory.with_name(f".deleting-{name}-{os.getpid()}")
        try:
            os.replace(directory, trash)
        except OSError as exc:
            raise AsmError(f"cannot remove {directory}: {exc.strerror or exc}") from None
    with session_scope() as session:
        session.delete(get_dataset(session, name))
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    for stale in datasets_root().glob(".deleting-*") if datasets_root().exists() else []:
        shutil.rmtree(stale, ignore_errors=True)
    return info


# ---- verification ---------------------------------------------------------------------------
def _shard_contents(sf, where: str, expected: tuple[int, int, int, int], settings, n_free: int,
                    split_counts: tuple[int, int], space, problems: list[str]) -> tuple[np.ndarray | None, int]:
    """Check one open shard's header and arrays against what the dataset row expects, appending to
    ``problems``. Returns its preset keys (None when arrays are missing or misshapen) and how many
    of its examples are silent."""
    from asm.data.plan import preset_keys

    index, start, count, n_notes = expected
    n_train, n_val = split_counts
    T, n_mels, F = settings.n_samples, settings.features.n_mels, settings.n_frames
    meta = sf.metadata
    if (meta.get("index"), meta.get("start"), meta.get("count")) != (str(index), str(start), str(count)):
        problems.append(f"{where}: file header says shard {meta.get('index')} at {meta.get('start')}")
    expect = {
        "audio": (count, T), "features": (count, n_mels, F), "params": (count, n_free),
        "preset_key": (count,), "source": (count,), "split": (count,), "attempts": (count,),
        "note_offsets": (count + 1,), "note_pitch": (n_notes,), "note_velocity": (n_notes,),
        "note_start": (n_notes,), "note_duration": (n_notes,),
    }
    if not settings.has_audio:  # a features-only dataset
        del expect["audio"]
    elif settings.audio_dtype == "int16":
        expect["audio_scale"] = (count,)
    bad = False
    for key, shape in expect.items():
        if key not in sf:
            problems.append(f"{where}: array {key} is missing")
            bad = True
        elif tuple(sf[key].shape) != shape:
            problems.append(f"{where}: {key} has shape {tuple(sf[key].shape)}, expected {shape}")
            bad = True
    if bad:
        return None, 0
    feats = np.asarray(sf["features"], dtype=np.float32)
    if not np.isfinite(feats).all():
        problems.append(f"{where}: features contain NaN or Inf")
    params = np.asarray(sf["params"])
    if not np.isfinite(params).all() or params.min(initial=0) < 0 or params.max(initial=0) > 1:
        problems.append(f"{where}: parameters outside [0, 1] or not finite")
    audio = np.asarray(sf["audio"]) if settings.has_audio else None
    if audio is None:
        peaks = np.ones(0)  # features only: silence was checked when the example was rendered
    elif settings.audio_dtype == "int16":
        scale = np.asarray(sf["audio_scale"])
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            problems.append(f"{where}: audio scales not finite and positive")
        peaks = np.abs(audio.astype(np.int32)).max(axis=1) * scale
    else:
        peaks = np.abs(audio.astype(np.float32)).max(axis=1)
        if not np.isfinite(peaks).all():
            problems.append(f"{where}: audio contains NaN or Inf")
    silent = int((peaks < SILENCE_PEAK * 0.5).sum())
    split = np.asarray(sf["split"])
    g = np.arange(start, start + count)
    want_split = np.where(g < n_train, 0, np.where(g < n_train + n_val, 1, 2))
    if not np.array_equal(split, want_split):
        problems.append(f"{where}: split codes do not match the dataset's split ranges")
    off = np.asarray(sf["note_offsets"])
    if off[0] != 0 or off[-1] != n_notes or (np.diff(off) < 1).any():
        problems.append(f"{where}: note offsets inconsistent (every example needs at least one note)")
    pitch, vel = np.asarray(sf["note_pitch"]), np.asarray(sf["note_velocity"])
    ns, nd = np.asarray(sf["note_start"]), np.asarray(sf["note_duration"])
    if (pitch > 127).any() or (vel < 1).any() or (vel > 127).any() or (ns < 0).any() or (nd <= 0).any() \
            or (ns + nd > settings.duration + 1e-4).any():
        problems.append(f"{where}: notes out of range (pitch, velocity, or timing past the end)")
    keys = np.asarray(sf["preset_key"]).copy()
    if space is not None and not np.array_equal(preset_keys(space, params), keys):
        problems.append(f"{where}: stored preset keys do not match the stored parameters")
    return keys, silent


def verify_dataset(name: str, checksums: bool = True) -> dict:
    """Counts, shapes, dtypes, finiteness, ranges, uniqueness of presets and checksums against the
    registry rows. Returns {"ok": bool, "problems": [...], "checked": {...}}."""
    from asm.data.settings import DatasetSettings

    problems: list[str] = []
    with session_scope() as session:
        row = get_dataset(session, name)
        info = summary(row)
        shards = [(s.index, s.start, s.count, s.file, s.sha256, s.bytes, s.n_notes, dict(s.rejections or {}))
                  for s in row.shards]
        stored = dict(row.settings)
        space = None
        locks = {int(k): v for k, v in (stored.get("locks") or {}).items()}
        if row.synth.version == stored.get("synth_version"):
            base = space_of(row.synth)
            space = base.with_locks({p.index: locks.get(p.index) for p in base.params})
            if space.free_signature() != row.free_signature or space.lock_signature() != row.lock_signature:
                space = None
    settings = DatasetSettings(**{k: v for k, v in stored.items() if k not in ("inputs", "locks")})
    directory = dataset_dir(name)
    size, shard_size = info["size"], info["shard_size"]
    n_shards = -(-size // shard_size)
    if info["status"] != "complete":
        problems.append(f"incomplete: {len(shards)} of {n_shards} shards ({info['examples_done']} of {size} "
                        "examples); run the same generate-dataset command again to finish it")
    indices = [s[0] for s in shards]
    if sorted(indices) != list(range(len(shards))) and info["status"] == "complete":
        problems.append(f"shard indices are not 0..{n_shards - 1}: {indices[:10]}")
    n_free = len(info["free_parameters"])
    n_train, n_val, _ = info["split_counts"]["train"], info["split_counts"]["val"], info["split_counts"]["test"]
    all_keys = []
    examples = 0
    silent = 0
    for index, start, count, file, sha, nbytes, n_notes, _rej in shards:
        where = f"shard {index}"
        want_start, want_count = index * shard_size, min(shard_size, size - index * shard_size)
        if (start, count) != (want_start, want_count):
            problems.append(f"{where}: row says examples {start}+{count}, expected {want_start}+{want_count}")
        path = directory / file
        if not path.is_file():
            problems.append(f"{where}: file {file} is missing")
            continue
        if path.stat().st_size != nbytes:
            problems.append(f"{where}: file is {path.stat().st_size} bytes, row says {nbytes}")
            continue
        if checksums and file_sha256(path) != sha:
            problems.append(f"{where}: checksum does not match the registry row (file changed or corrupt)")
            continue
        try:
            sf = ShardFile(path)
        except AsmError as exc:
            problems.append(f"{where}: {exc}")
            continue
        try:
            keys, n_silent = _shard_contents(sf, where, (index, start, count, n_notes), settings, n_free,
                                             (n_train, n_val), space, problems)
            if keys is None:
                continue
            silent += n_silent
            all_keys.append(keys)
            examples += count
        finally:
            sf.close()
    if silent:
        problems.append(f"{silent} stored examples are silent")
    if all_keys:
        keys = np.concatenate(all_keys)
        dup = len(keys) - len(np.unique(keys))
        if dup:
            problems.append(f"{dup} examples repeat a preset of another example (splits could share presets)")
    if info["status"] == "complete" and examples != size:
        problems.append(f"{examples} examples in the shards, the dataset row says {size}")
    checked = {"shards": len(shards), "examples": examples, "checksums": checksums,
               "preset_keys": space is not None}
    return {"name": name, "ok": not problems, "problems": problems, "checked": checked}
