"""Checkpoints carry everything needed to rebuild a model without the dataset: the network config,
the free parameters in order (with kinds), the feature settings, the input shape, the signatures of
the synth's free and locked parameters, the dataset, seed and code version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asm.errors import AsmError
from asm.models.network import Network, NetworkConfig
from asm.synth.params import Kind, ParameterSpec

FORMAT = 1


def free_specs(free_parameters: list[dict[str, Any]]) -> list[ParameterSpec]:
    """ParameterSpecs (enough for heads and decoding) from the stored free-parameter list."""
    specs = []
    for p in free_parameters:
        kind = Kind(p["kind"])
        n = int(p.get("n_values") or 0)
        specs.append(ParameterSpec(
            index=int(p["index"]), name=p["name"], kind=kind,
            steps=n if kind is Kind.stepped else None,
            choices=tuple(f"v{k}" for k in range(n)) if kind is Kind.categorical else None))
    return specs


def network_config(config_settings: dict[str, Any], arch: str) -> NetworkConfig:
    return NetworkConfig(arch=arch, encoder=dict(config_settings.get("encoder") or {}),
                         loss=dict(config_settings.get("loss") or {}), flow=dict(config_settings.get("flow") or {}),
                         flow_encoder=config_settings.get("flow_encoder", "cnn"))


def build_network(meta: dict[str, Any]) -> Network:
    n_mels, frames = meta["input_shape"]
    return Network(network_config(meta["config_settings"], meta["arch"]), free_specs(meta["free_parameters"]),
                   n_mels, frames)


def load_network(path: Path) -> tuple[Network, dict[str, Any]]:
    """The network of ``best.pt`` (or any checkpoint) with its metadata."""
    if not path.is_file():
        raise AsmError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign file
        raise AsmError(f"cannot read checkpoint {path}: {exc}") from None
    meta = ckpt.get("meta")
    if not meta or meta.get("format") != FORMAT:
        raise AsmError(f"{path} is not an asm checkpoint of format {FORMAT}")
    network = build_network(meta)
    network.load_state_dict(ckpt["network"])
    network.eval()
    return network, meta
