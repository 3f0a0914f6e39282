"""Parameter kinds, normalised values and locks.

Everything above the synth host works on normalised values in [0, 1]. A discrete parameter with
``n`` values uses ``k / (n - 1)`` for its ``k``-th value, which both rounding (JUCE) and flooring
(``floor(v * n)`` clamped) plugins read back as ``k``. A locked parameter is fixed: estimators and
searches only ever see the *free* (unlocked) parameters, in ascending plugin-index order.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterable, Mapping, Sequence

import numpy as np

from asm.errors import AsmError


class Kind(str, Enum):
    continuous = "continuous"
    stepped = "stepped"
    categorical = "categorical"
    boolean = "boolean"


@dataclass(frozen=True)
class ParameterSpec:
    """One synth parameter: its plugin index, kind, default and (display-only) natural range."""

    index: int
    name: str
    kind: Kind = Kind.continuous
    default: float = 0.0
    steps: int | None = None  # number of values of a stepped parameter
    choices: tuple[str, ...] | None = None  # names of a categorical parameter's values
    minimum: float = 0.0  # natural range, for display only
    maximum: float = 1.0
    unit: str = ""
    scale: str = "linear"  # "linear" or "log": how [0,1] maps onto [minimum, maximum] for display
    locked: bool = False
    locked_value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.kind is Kind.categorical and not self.choices:
            raise ValueError(f"categorical parameter {self.name!r} needs choices")
        if self.kind is Kind.stepped and (self.steps is None or self.steps < 2):
            raise ValueError(f"stepped parameter {self.name!r} needs steps >= 2")

    @property
    def n_values(self) -> int:
        """Number of distinct values; 0 for a continuous parameter."""
        if self.kind is Kind.continuous:
            return 0
        if self.kind is Kind.boolean:
            return 2
        if self.kind is Kind.categorical:
            assert self.choices is not None
            return len(self.choices)
        assert self.steps is not None
        return self.steps

    @property
    def discrete(self) -> bool:
        return self.kind is not Kind.continuous

    def quantise(self, value: float) -> float:
        value = min(1.0, max(0.0, float(value)))
        n = self.n_values
        return round(value * (n - 1)) / (n - 1) if n > 1 else value

    def to_class(self, value: float) -> int:
        return int(round(min(1.0, max(0.0, value)) * (self.n_values - 1)))

    def from_class(self, k: int) -> float:
        return k / (self.n_values - 1)

    def natural(self, value: float) -> float:
        """The value in natural units (Hz, seconds, semitones) for display."""
        lo, hi = self.minimum, self.maximum
        if self.scale == "log" and lo > 0 and hi > 0:
            return lo * (hi / lo) ** value
        return lo + (hi - lo) * value

    def display(self, value: float) -> str:
        if self.kind is Kind.categorical:
            assert self.choices is not None
            return self.choices[self.to_class(value)]
        if self.kind is Kind.boolean:
            return "on" if value >= 0.5 else "off"
        if self.kind is Kind.stepped:
            return f"{self.natural(self.quantise(value)):g}{self.unit}"
        if (self.minimum, self.maximum) == (0.0, 1.0) and not self.unit:
            return f"{value:.3f}"
        return f"{self.natural(value):.4g}{(' ' + self.unit) if self.unit else ''}"

    def parse(self, value: str | float) -> float:
        """A user's value: a normalised number in [0, 1], ``"default"``, a choice name (categorical)
        or on/off (boolean)."""
        if not isinstance(value, str):
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise AsmError(f"value for {self.name} must be in [0, 1] (normalised), got {value:g}")
            return self.quantise(value)
        text = value.strip()
        if text.lower() == "default":
            return self.default
        if self.kind is Kind.categorical and self.choices:
            lowered = [c.lower() for c in self.choices]
            if text.lower() in lowered:
                return self.from_class(lowered.index(text.lower()))
        if self.kind is Kind.boolean and text.lower() in ("on", "off", "true", "false"):
            return 1.0 if text.lower() in ("on", "true") else 0.0
        try:
            value = float(text)
        except ValueError:
            if self.kind is Kind.categorical and self.choices:
                raise AsmError(
                    f"unknown choice {text!r} for {self.name}; choose one of: {', '.join(self.choices)}"
                ) from None
            raise AsmError(f"value for {self.name} must be a number in [0, 1], not {text!r}") from None
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise AsmError(f"value for {self.name} must be in [0, 1] (normalised), got {text}")
        return self.quantise(value)


@dataclass(frozen=True)
class ParameterSpace:
    """The ordered parameters of one synth with their locks; converts between full and free vectors."""

    params: tuple[ParameterSpec, ...]
    _by_name: dict[str, list[int]] = field(init=False, repr=False, compare=False)

    def __init__(self, params: Iterable[ParameterSpec]):
        ordered = tuple(sorted(params, key=lambda p: p.index))
        indices = [p.index for p in ordered]
        if len(set(indices)) != len(indices):
            raise ValueError("parameter indices must be unique")
        object.__setattr__(self, "params", ordered)
        by_name: dict[str, list[int]] = {}
        for pos, p in enumerate(ordered):
            by_name.setdefault(p.name.lower(), []).append(pos)
        object.__setattr__(self, "_by_name", by_name)
        n_values = np.array([p.n_values for p in ordered], dtype=np.int64)
        object.__setattr__(self, "_n_values", n_values)
        locked = np.array([p.locked for p in ordered], dtype=bool)
        object.__setattr__(self, "_locked_pos", np.flatnonzero(locked))
        object.__setattr__(
            self,
            "_locked_val",
            np.array([p.quantise(p.locked_value or 0.0) for p in ordered if p.locked], dtype=np.float64),
        )
        object.__setattr__(self, "_free_pos", np.flatnonzero(~locked))

    # --- shape -----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.params)

    @property
    def free(self) -> tuple[ParameterSpec, ...]:
        return tuple(self.params[i] for i in self._free_pos)

    @property
    def free_positions(self) -> np.ndarray:
        return self._free_pos

    @property
    def n_free(self) -> int:
        return len(self._free_pos)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    # --- lookup ----------------------------------------------------------------------------
    def position(self, key: str | int) -> int:
        """Position of a parameter given its name (case-insensitive) or plugin index."""
        if isinstance(key, str):
            hits = self._by_name.get(key.strip().lower())
            if hits and len(hits) == 1:
                return hits[0]
            if hits:
                idx = ", ".join(str(self.params[h].index) for h in hits)
                raise AsmError(f"parameter name {key!r} is ambiguous; use its plugin index ({idx})")
            if key.strip().lstrip("-").isdigit():
                key = int(key)
            else:
                raise AsmError(f"unknown parameter {key!r}")
        for pos, p in enumerate(self.params):
            if p.index == key:
                return pos
        raise AsmError(f"no parameter with plugin index {key}")

    def spec(self, key: str | int) -> ParameterSpec:
        return self.params[self.position(key)]

    def parse_assignments(self, items: Iterable[str] | Mapping[str | int, str | float], what: str = "a value",
                          hint: str = "") -> dict[int, float]:
        """``name=value`` texts (or a ``{name or plugin index: value}`` mapping) as normalised values
        by plugin index; every value goes through ``ParameterSpec.parse``. ``what`` and ``hint``
        word the error for a text without ``=`` (e.g. ``"--set"``)."""
        if isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            pairs = []
            for item in items:
                key, sep, text = item.partition("=")
                if not sep or not key.strip():
                    raise AsmError(f"{what} needs name=value, got {item!r}{hint}")
                pairs.append((key.strip(), text))
        out: dict[int, float] = {}
        for key, value in pairs:
            spec = self.spec(key)
            if spec.index in out:
                raise AsmError(f"{spec.name} is given twice")
            out[spec.index] = spec.parse(value)
        return out

    # --- vectors ---------------------------------------------------------------------------
    def defaults(self) -> np.ndarray:
        return self.apply_locks(np.array([p.default for p in self.params], dtype=np.float64))

    def apply_locks(self, full: np.ndarray) -> np.ndarray:
        """A copy of a full vector (or batch) with every locked value put in place."""
        out = np.array(full, dtype=np.float64, copy=True)
        if out.shape[-1] != self.size:
            raise AsmError(f"expected {self.size} parameter values, got {out.shape[-1]}")
        out[..., self._locked_pos] = self._locked_val
        return out

    def full(self, free: np.ndarray) -> np.ndarray:
        """Full vector(s) from free values: locked positions get their locked values."""
        free = np.asarray(free, dtype=np.float64)
        if free.shape[-1] != self.n_free:
            raise AsmError(f"expected {self.n_free} free parameter values, got {free.shape[-1]}")
        out = np.empty(free.shape[:-1] + (self.size,), dtype=np.float64)
        out[..., self._free_pos] = free
        out[..., self._locked_pos] = self._locked_val
        return out

    def free_part(self, full: np.ndarray) -> np.ndarray:
        return np.asarray(full)[..., self._free_pos]

    def quantise(self, full: np.ndarray) -> np.ndarray:
        """Snap discrete parameters of full vector(s) onto their allowed values; clip to [0, 1]."""
        return _quantise(np.asarray(full, dtype=np.float64), self._n_values)

    def quantise_free(self, free: np.ndarray) -> np.ndarray:
        return _quantise(np.asarray(free, dtype=np.float64), self._n_values[self._free_pos])

    def random_free(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random presets over the free parameters: uniform values, uniform choices."""
        nv = self._n_values[self._free_pos]
        u = rng.random((n, self.n_free))
        discrete = nv > 1
        k = np.minimum(np.floor(u * np.where(discrete, nv, 1)), np.maximum(nv - 1, 0))
        return np.where(discrete, k / np.maximum(nv - 1, 1), u)

    def named(self, full: np.ndarray) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.params, full)}

    def from_named(self, values: dict[str | int, float], base: Sequence[float] | None = None) -> np.ndarray:
        """A full vector from ``{name or plugin index: value}`` over ``base`` (default: defaults)."""
        out = self.defaults() if base is None else np.array(base, dtype=np.float64)
        for key, value in values.items():
            out[self.position(key)] = value
        return self.apply_locks(self.quantise(out))

    # --- identity --------------------------------------------------------------------------
    def free_signature(self) -> str:
        """Identifies the free parameters and their order: models and datasets record it."""
        body = json.dumps([[p.index, p.name, p.kind.value, p.n_values] for p in self.free])
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def lock_signature(self) -> str:
        """Identifies which parameters are locked and to what."""
        body = json.dumps([[p.index, round(float(v), 6)] for p, v in zip(
            [self.params[i] for i in self._locked_pos], self._locked_val)])
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def with_locks(self, locks: dict[int, float | None]) -> "ParameterSpace":
        """A copy with the given plugin indices locked (value) or unlocked (None)."""
        params = []
        for p in self.params:
            if p.index in locks:
                value = locks[p.index]
                p = replace(p, locked=value is not None, locked_value=None if value is None else p.quantise(value))
            params.append(p)
        return ParameterSpace(params)


def _quantise(values: np.ndarray, n_values: np.ndarray) -> np.ndarray:
    values = np.clip(values, 0.0, 1.0)
    discrete = n_values > 1
    steps = np.maximum(n_values - 1, 1)
    return np.where(discrete, np.round(values * steps) / steps, values)


def preset_hash(values: Sequence[float]) -> str:
    """Content hash of a full normalised vector (rounded so float noise does not split duplicates)."""
    rounded = np.round(np.asarray(values, dtype=np.float64), 5) + 0.0  # +0.0 folds -0.0 into 0.0
    return hashlib.sha256(rounded.astype("<f8").tobytes()).hexdigest()
