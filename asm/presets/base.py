"""What every preset format shares: the error type and the decoded-preset record.

A format module turns a file into ``DecodedPreset`` records and back. A record carries what the file
holds: normalised values by plugin index (FXP float programs, asm JSON), raw values by parameter
name (amsynth banks), or an opaque chunk only the plugin can interpret (FXP/FXB chunks,
.vstpreset component state). The importer resolves each to one normalised vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asm.atomic import write_bytes
from asm.audio.io import check_writable
from asm.errors import AsmError


class PresetFormatError(AsmError):
    """A preset file that cannot be read: the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class DecodedPreset:
    name: str
    values: list[float] | None = None  # normalised, one per parameter in plugin-index order
    named: dict[str, float] | None = None  # normalised values by parameter name (asm JSON)
    chunk: bytes | None = None  # opaque plugin state: the plugin must load it (see ``loader``)
    loader: str | None = None  # how the plugin loads ``chunk``: "fxp" or "vstpreset"
    locked: list[str] = field(default_factory=list)  # names locked when the file was written (JSON)
    source_format: str = ""


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PresetFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise PresetFormatError(path, "is a directory, not a preset file") from None
    except OSError as exc:
        raise PresetFormatError(path, f"cannot read: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write a preset file atomically, after checking in one line that ``path`` can be written."""
    check_writable(Path(path))
    write_bytes(path, data)
