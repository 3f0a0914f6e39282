"""Estimator architectures: one module per architecture in this package, found through one registry.

A module named like its architecture registers it with ``@register``::

    from asm.models.architectures import EncoderArchitecture, register

    @register
    class TinyLinear(EncoderArchitecture):
        name = "tinylinear"
        description = "a linear map of the time-pooled log-mel"
        encoder_class = LinearEncoder     # (n_mels, frames, **hyperparameters) -> module with .dim

Adding an architecture is that module plus a model-config fixture (``fixtures/models/NAME.py``):
model configs validate ``arch`` against ``names()``, the network, training and the estimators ask
``get(name)`` what to build. Module names are listed without importing them, so ``names()`` does
not load torch (``--help`` stays fast); ``get`` imports the module on first use.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING, Any, ClassVar

from asm.errors import AsmError
from asm.registry.fixtures import FieldError

if TYPE_CHECKING:
    from torch import nn

    from asm.models.network import NetworkConfig

SECTIONS = ("encoder", "flow", "nn")  # the settings sections of a ModelConfig an architecture may read
REGISTRY: dict[str, "Architecture"] = {}


class Architecture:
    """What asm needs to know about one architecture. Subclass, set the class attributes, ``@register``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "network"  # "network": trained by train-model; "index": built from the training split
    many_candidates: ClassVar[bool] = False  # gives k different candidates, not one point estimate
    sections: ClassVar[tuple[str, ...]] = ("encoder",)  # the ModelConfig sections it reads

    def check(self, config: Any) -> None:
        """Validate a ``ModelConfig`` of this architecture; raise ``FieldError`` naming the field."""
        for section in SECTIONS:
            if section not in self.sections and getattr(config, section):
                raise FieldError(section, f"{section} settings do not apply to arch {self.name!r}")

    def encoder(self, config: NetworkConfig, n_mels: int, frames: int) -> nn.Module:
        """The audio encoder (log-mel (B, n_mels, frames) -> (B, dim), with a ``dim`` attribute)."""
        raise AsmError(f"architecture {self.name!r} has no trainable network")

    def density(self, config: NetworkConfig, n_free: int, context: int) -> tuple[nn.Module, float] | None:
        """An optional conditional density over the free parameters and its loss weight (flows)."""
        return None


class EncoderArchitecture(Architecture):
    """An encoder followed by the kind-aware parameter head: the usual regression estimator."""

    encoder_class: ClassVar[type | None] = None

    def accepted(self) -> set[str]:
        return set(inspect.signature(self.encoder_class.__init__).parameters) - {"self", "n_mels", "frames"}

    def check_encoder(self, settings: dict[str, Any]) -> None:
        accepted = self.accepted()
        unknown = set(settings) - accepted
        if unknown:
            raise FieldError("encoder", f"unknown hyperparameter(s) {', '.join(sorted(unknown))} for "
                                        f"{self.encoder_class.__name__}; known: {', '.join(sorted(accepted))}")

    def check(self, config: Any) -> None:
        super().check(config)
        self.check_encoder(config.encoder)

    def encoder(self, config: NetworkConfig, n_mels: int, frames: int) -> nn.Module:
        return self.encoder_class(n_mels, frames, **config.encoder)


def register(cls: type[Architecture]) -> type[Architecture]:
    """Class decorator: make an architecture known by its ``name`` (a second one of that name is refused)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    known = REGISTRY.get(cls.name)
    if known is not None and type(known).__qualname__ != cls.__qualname__:
        raise ValueError(f"architecture {cls.name!r} is registered twice ({type(known).__name__}, {cls.__name__})")
    REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    """Forget an architecture registered from outside this package (tests)."""
    REGISTRY.pop(name, None)


def _modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


def names() -> tuple[str, ...]:
    """Every architecture name: this package's modules and any registered from elsewhere (sorted)."""
    return tuple(sorted({*_modules(), *REGISTRY}))


def get(name: str) -> Architecture:
    """The architecture ``name`` (its module is imported on first use); unknown names are refused."""
    if name not in REGISTRY and name in _modules():
        importlib.import_module(f"{__name__}.{name}")
    if name not in REGISTRY:
        raise AsmError(f"unknown architecture {name!r}; known: {', '.join(names())}")
    return REGISTRY[name]


def every() -> list[Architecture]:
    """All architectures (imports every module of the package)."""
    return [get(n) for n in names()]


def trainable() -> tuple[str, ...]:
    """The architectures train-model fits with epochs (``perf train``'s default)."""
    return tuple(a.name for a in every() if a.kind == "network")
