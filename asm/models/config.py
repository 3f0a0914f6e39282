"""Model configs: the fixture item that stores an architecture and its hyperparameters.

    from asm.models.config import ModelConfig
    FIXTURE = [ModelConfig(name="cnn", arch="cnn", encoder={"channels": [16, 32, 64, 96]},
                           train={"epochs": 60, "lr": 2e-3})]

Applied with ``asm update-registry fixtures/models/cnn.py``; ``asm train-model --config cnn`` reads it
(and applies the shipped fixture itself when the registry lacks it). ``arch`` is any architecture
of ``asm.models.architectures``.
Hyperparameters are checked against the architecture's constructor before anything is written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from asm.models import architectures
from asm.registry.fixtures import FieldError, FixtureContext, FixtureItem, upsert_named
from asm.registry.models import ModelConfigRow


class LossSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    continuous: float = Field(1.0, ge=0)
    categorical: float = Field(0.2, ge=0)
    continuous_loss: Literal["l1", "mse"] = "l1"


class TrainDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(20, ge=1)


class SpectralSettings(BaseModel):
    """Spectral training through the synth's differentiable twin (``asm.models.spectral``): parameter loss
    alone for ``warmup`` epochs, then the twin's spectral loss of the prediction against the example's
    sound mixed in, its weight rising linearly to ``weight`` over ``ramp`` epochs."""

    model_config = ConfigDict(extra="forbid")
    warmup: int = Field(10, ge=0, description="epochs of parameter loss alone")
    ramp: int = Field(5, ge=1, description="epochs over which the spectral weight rises to its full value")
    weight: float = Field(1.0, gt=0, description="the spectral term's full weight (the parameter loss keeps 1)")
    loss: Literal["perceptual", "mr-stft", "perceptual+mr-stft"] = Field(
        "perceptual", description="the distance to the example's sound (perceptual+mr-stft: their mean)")
    categorical: Literal["soft", "straight-through"] = Field(
        "straight-through", description="straight-through: the twin renders the argmax choice and the gradient "
                                        "goes to the softmax; soft: the twin mixes the choices by their softmax")
    examples: int = Field(16, ge=1, description="examples of each batch rendered through the twin")
    duration: float = Field(0.5, gt=0, le=10, description="seconds rendered (at most the dataset's duration)")
    val_examples: int = Field(128, ge=1, description="validation examples scored by the spectral loss each epoch")
    select_by: Literal["spectral", "parameters"] = Field(
        "spectral", description="which validation loss names the best epoch")


class ModelConfig(FixtureItem):
    """A named estimator recipe: architecture, encoder/flow hyperparameters, loss weights, training defaults."""

    kind = "model"
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    arch: str = Field(description="an architecture of asm.models.architectures")
    encoder: dict[str, Any] = Field(default_factory=dict)
    flow: dict[str, Any] = Field(default_factory=dict, description="flow only: transforms, hidden, weight")
    flow_encoder: str = Field("cnn", description="flow only: the encoder architecture it conditions on")
    nn: dict[str, Any] = Field(default_factory=dict, description="nn only: time_pool")
    loss: LossSettings = Field(default_factory=LossSettings)
    train: TrainDefaults = Field(default_factory=TrainDefaults)
    spectral: SpectralSettings | None = Field(None, description="train through the synth's twin (synths with one)")
    description: str = ""

    @field_validator("arch", "flow_encoder")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        known = architectures.names()
        if value not in known:
            raise ValueError(f"unknown architecture {value!r}; known: {', '.join(known)}")
        return value

    def label(self) -> str:
        return f"model config {self.name} ({self.arch})"

    def check(self, ctx: FixtureContext) -> None:
        """Hyperparameters against the architecture (its constructor's arguments, its sections)."""
        arch = architectures.get(self.arch)
        arch.check(self)
        if self.spectral is not None and arch.kind != "network":
            raise FieldError("spectral", f"arch {self.arch!r} is not trained: spectral training does not apply")

    def apply(self, session: Session, ctx: FixtureContext) -> str:
        verb = upsert_named(session, ModelConfigRow, self.name, arch=self.arch, description=self.description,
                            settings=self.model_dump(exclude={"name", "arch", "description"}))
        return f"model config {self.name}: {verb} ({self.arch})"

    @classmethod
    def from_row(cls, row) -> "ModelConfig":
        return cls(name=row.name, arch=row.arch, description=row.description or "", **row.settings)
