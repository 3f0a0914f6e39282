"""Proxy configs: the fixture item naming a proxy network and its hyperparameters.

    from asm.proxy.config import ProxyConfig
    FIXTURE = [ProxyConfig(name="proxy-mlp", net="mlp", hyper={"hidden": 512, "layers": 3})]

Applied with ``asm update-registry fixtures/proxies/mlp.py``; ``asm train-proxy --config proxy-mlp``
applies a shipped one itself when the registry lacks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from asm.registry.fixtures import FixtureContext, FixtureItem, upsert_named


class TrainDefaults(BaseModel):
    """Training defaults of a proxy config (``train-proxy`` options override them)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(15, ge=1)


SHIPPED = Path(__file__).resolve().parents[1] / "fixtures" / "proxies"


class ProxyConfig(FixtureItem):
    kind = "proxy"
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    net: str = Field(description="mlp, highway or transformer (asm.proxy.models)")
    hyper: dict[str, Any] = Field(default_factory=dict)
    train: TrainDefaults = Field(default_factory=TrainDefaults)
    description: str = ""

    def label(self) -> str:
        return f"proxy config {self.name} ({self.net})"

    def check(self, ctx: FixtureContext) -> None:
        from asm.proxy.models import check_hyperparameters

        check_hyperparameters(self.net, self.hyper)

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        from asm.registry.models import ProxyConfigRow

        verb = upsert_named(session, ProxyConfigRow, self.name, net=self.net, description=self.description,
                            settings=self.model_dump(exclude={"name", "net", "description"}))
        return f"proxy config {self.name}: {verb} ({self.net})"

    @classmethod
    def from_row(cls, row) -> "ProxyConfig":
        return cls(name=row.name, net=row.net, description=row.description or "", **row.settings)


def shipped_configs() -> dict[str, Path]:
    """Shipped proxy config fixtures by config name (a file may hold one config, named in it)."""
    import runpy

    out = {}
    for path in sorted(SHIPPED.glob("*.py")):
        for item in runpy.run_path(str(path)).get("FIXTURE", []):
            if isinstance(item, ProxyConfig):
                out[item.name] = path
    return out


def ensure_config(session: Session, name: str):
    """The registry row of proxy config ``name`` (its shipped fixture applied first if needed), or None."""
    from asm.registry.fixtures import apply_fixtures
    from asm.registry.models import ProxyConfigRow

    row = session.scalar(select(ProxyConfigRow).where(ProxyConfigRow.name == name))
    if row is None and name in (shipped := shipped_configs()):
        apply_fixtures(session, [shipped[name]])
        row = session.scalar(select(ProxyConfigRow).where(ProxyConfigRow.name == name))
    return row
