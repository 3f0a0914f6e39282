"""Import preset files into the registry: decode, resolve through the plugin where needed, dedupe.

Each file is decoded completely before anything is written, and written in one step, so a bad file
never leaves part of a preset (or part of a bank) behind. Files whose state only the plugin
understands (FXP/FXB chunks, .vstpreset) are loaded by the plugin in a child process, in batches,
and read back; a plugin crash fails only the file that caused it. Duplicates are found by content
hash (``preset_hash``) against the registry and within the batch.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.errors import AsmError
from asm.presets import formats
from asm.presets.base import DecodedPreset, PresetFormatError, read_bytes
from asm.registry.models import Preset, Synth
from asm.registry.synth_loader import spec_of
from asm.registry.synths import space_of
from asm.synth.params import ParameterSpace, preset_hash
from asm.synth.plugin import IsolatedPlugin

PLUGIN_BATCH = 64


@dataclass
class ImportReport:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (file, preset name)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)  # (file, name, existing name)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def as_dict(self) -> dict:
        return {
            "imported": len(self.imported),
            "duplicates": len(self.duplicates),
            "failed": len(self.failed),
            "failures": [{"file": f, "reason": r} for f, r in self.failed],
        }


def expand(patterns: Iterable[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files matching the patterns (sorted, each once), and patterns that matched nothing."""
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            hits = sorted(h for h in glob.glob(pattern, recursive=True) if Path(h).is_file())
        else:
            hits = [pattern]  # a missing file is reported by the import as "file not found"
        if not hits:
            missing.append((pattern, "no files match"))
        for hit in hits:
            path = Path(hit)
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files, missing


def decode_file(path: Path, synth: Synth, space: ParameterSpace) -> list[DecodedPreset]:
    """The presets in one file for ``synth``; raises ``PresetFormatError`` naming file and reason."""
    fmt = formats.by_suffix(path.suffix)
    if fmt is None or fmt.read is None:
        raise PresetFormatError(path, f"unknown preset format {path.suffix or '(no extension)'!r} "
                                      f"(expected {formats.spoken(formats.readable_suffixes())})")
    return fmt.read(path, synth, space, read_bytes(path))


def check_values(path: Path, name: str, values: list[float], size: int) -> list[float]:
    if len(values) != size:
        raise PresetFormatError(path, f"parameter-count mismatch: preset {name!r} has {len(values)} values, "
                                      f"the synth has {size}")
    out = []
    for i, v in enumerate(values):
        v = float(v)
        if not math.isfinite(v) or not -1e-6 <= v <= 1 + 1e-6:
            raise PresetFormatError(path, f"preset {name!r}: value {v!r} at position {i} is outside [0, 1]")
        out.append(min(1.0, max(0.0, v)))
    return out


def _resolve_chunks(pending: list[tuple[Path, DecodedPreset]], spec, failed: dict[Path, str]) -> None:
    """Let the plugin load the opaque presets (batched, in a child) and read their values back."""
    if not pending:
        return
    synth = IsolatedPlugin(spec)
    try:
        for start in range(0, len(pending), PLUGIN_BATCH):
            batch = pending[start : start + PLUGIN_BATCH]
            items = [(p.chunk, p.loader) for _, p in batch]
            try:
                results = synth.load_presets(items)
            except AsmError:  # a crash: find the culprit one file at a time
                results = []
                for item in items:
                    try:
                        results.append(synth.load_presets([item])[0])
                    except AsmError as exc:
                        results.append(str(exc))
            for (path, preset), result in zip(batch, results):
                if isinstance(result, str):
                    failed.setdefault(path, result)
                else:
                    preset.values = result
    finally:
        synth.close()


def import_presets(session: Session, synth: Synth, files: list[Path], origin: str = "user",
                   on_file: Callable[[Path], None] | None = None) -> ImportReport:
    """Import ``files`` into ``synth``; commits after each file (a killed import keeps finished files)."""
    space = space_of(synth)
    report = ImportReport()
    ticked: set[Path] = set()

    def tick(path: Path) -> None:
        if on_file and path not in ticked:
            ticked.add(path)
            on_file(path)

    decoded: dict[Path, list[DecodedPreset]] = {}
    failed: dict[Path, str] = {}
    pending: list[tuple[Path, DecodedPreset]] = []
    for path in files:
        try:
            presets = decode_file(path, synth, space)
        except PresetFormatError as exc:
            failed[path] = exc.reason
            tick(path)
            continue
        decoded[path] = presets
        pending += [(path, p) for p in presets if p.values is None and p.chunk is not None]
    if pending:
        _resolve_chunks(pending, spec_of(synth), failed)
    known = dict(session.execute(select(Preset.content_hash, Preset.name).where(Preset.synth_id == synth.id)).all())
    for path in files:
        if path in failed:
            report.failed.append((str(path), failed[path]))
            tick(path)
            continue
        if path not in decoded:
            continue
        try:
            rows = []
            for p in decoded[path]:
                values = p.values if p.values is not None else []
                rows.append((p, check_values(path, p.name, values, space.size)))
        except PresetFormatError as exc:
            report.failed.append((str(path), exc.reason))
            tick(path)
            continue
        for p, values in rows:
            digest = preset_hash(values)
            if digest in known:
                report.duplicates.append((str(path), p.name, known[digest]))
                continue
            name = (p.name or path.stem)[:200]
            session.add(Preset(synth_id=synth.id, name=name, origin=origin, source_file=str(path),
                               source_format=p.source_format, values=values, content_hash=digest))
            known[digest] = name
            report.imported.append((str(path), name))
        session.commit()
        tick(path)
    return report
