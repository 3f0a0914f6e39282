"""A model config with a hyperparameter its architecture does not have (used by the tests)."""

from asm.models.config import ModelConfig

FIXTURE = [ModelConfig(name="broken", arch="cnn", encoder={"chanels": [8, 16]})]
