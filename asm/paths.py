"""Where runtime state lives: ``data/`` under the current directory unless ``ASM_DATA`` says otherwise.

The database URL comes from ``ASM_DB`` (default: ``sqlite:///<data dir>/asm.db``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from asm.errors import AsmError


def data_dir() -> Path:
    return Path(os.environ.get("ASM_DATA", "data"))


def database_url() -> str:
    url = os.environ.get("ASM_DB")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'asm.db'}"


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; a clear error when the location is not writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AsmError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    return path


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: str | None, what: str, longest: int = 100) -> str:
    """``name`` if it can name a directory under the data dir (datasets, models, proxies, DDSP
    models): letters, digits, '.', '_' or '-', starting with a letter or digit; else one AsmError line."""
    if not (name and len(name) <= longest and _NAME.fullmatch(name)):
        raise AsmError(f"bad {what} name {name!r}: use letters, digits, '.', '_' or '-' (at most {longest})")
    return name
