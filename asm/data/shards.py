"""Shard files: named arrays in the safetensors layout, written atomically, read by memory map.

A shard is one file (``shard-00000.safetensors``): an 8-byte little-endian header length, a JSON
header naming each array's dtype, shape and byte range, then the raw array bytes. It is the
safetensors format, so any safetensors reader opens it, but asm reads it with a single ``np.memmap``
of the whole file and zero-copy views (one mapping, one file descriptor per shard, nothing loaded
until a page is touched). Arrays are laid out largest item size first, so every view is aligned.

Writing goes to a hidden temporary file in the same directory that is renamed into place once
complete, so a shard file that exists under its final name is whole; its SHA-256 (computed while
writing) is what the registry row records and ``verify-dataset`` checks.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from asm.atomic import atomic_open
from asm.errors import AsmError

# safetensors dtype names <-> numpy
_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(v).newbyteorder("<"): k for k, v in _DTYPES.items()}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def encode_header(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> tuple[bytes, list]:
    """The header bytes (length prefix included) and the arrays in file order."""
    order = sorted(arrays.items(), key=lambda kv: (-np.dtype(kv[1].dtype).itemsize, kv[0]))
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, arr in order:
        dt = np.dtype(arr.dtype).newbyteorder("<")
        if dt not in _NAMES:
            raise ValueError(f"unsupported dtype {arr.dtype} for shard array {name}")
        header[name] = {"dtype": _NAMES[dt], "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)  # keeps the data 8-byte aligned
    return struct.pack("<Q", len(body)) + body, order


def encode_shard(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """The whole shard file as bytes (for executors that ship shards to the writer)."""
    head, order = encode_header(arrays, metadata)
    return head + b"".join(np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<")).tobytes()
                           for _, a in order)


def write_atomic(path: Path, chunks) -> tuple[str, int]:
    """Write byte chunks to ``path`` atomically (``asm.atomic``); returns (sha256, size).

    Any OSError (disk full, read-only directory, file too large) leaves no temporary file and
    becomes one AsmError line.
    """
    digest = hashlib.sha256()
    size = 0
    with atomic_open(path) as f:
        for chunk in chunks:
            mv = memoryview(chunk).cast("B")
            digest.update(mv)
            f.write(mv)
            size += len(mv)
    return digest.hexdigest(), size


def write_shard(path: Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> tuple[str, int]:
    head, order = encode_header(arrays, metadata)

    def chunks():
        yield head
        for _, a in order:
            yield np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<")).reshape(-1)

    return write_atomic(path, chunks())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class ShardFile:
    """Read-only, memory-mapped view of a shard: ``shard["features"]`` is a zero-copy array."""

    def __init__(self, path: Path, random_access: bool = False):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > 100_000_000:
                    raise ValueError("header too large")
                header = json.loads(f.read(n))
        except (OSError, ValueError, struct.error) as exc:
            raise AsmError(f"cannot read shard {self.path}: {exc}") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", {}) or {}
        self.header = header
        self._base = 8 + n
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        self._views: dict[str, np.ndarray] = {}
        if random_access:  # items are read one by one in random order: no read-around
            self.advise(mmap.MADV_RANDOM)

    def advise(self, advice: int) -> None:
        mm = getattr(self._buf, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise"):
            try:
                mm.madvise(advice)
            except (OSError, ValueError):
                pass

    def names(self) -> list[str]:
        return list(self.header)

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def __getitem__(self, name: str) -> np.ndarray:
        view = self._views.get(name)
        if view is None:
            info = self.header[name]
            begin, end = info["data_offsets"]
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            raw = self._buf[self._base + begin : self._base + end]
            view = raw.view(dtype).reshape(info["shape"])
            self._views[name] = view
        return view

    def close(self) -> None:
        self._views.clear()
        mm = getattr(self._buf, "_mmap", None)
        self._buf = None
        if mm is not None:
            try:
                mm.close()
            except (BufferError, ValueError):  # a caller still holds a view; the GC will unmap it
                pass
