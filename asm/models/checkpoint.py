"""Checkpoints carry everything needed to rebuild a model without the dataset: the network config,
the free parameters in order (with kinds), the feature settings, the input shape, the signatures of
the synth's free and locked parameters, the dataset, seed and code version.

A model's checkpoints live in one directory (``Model.checkpoint`` under the data dir), locked by
the one process that trains or deletes the model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import update

from asm import paths
from asm.errors import AsmError
from asm.locks import DirectoryLock
from asm.models.network import Network, NetworkConfig
from asm.registry.db import session_scope
from asm.registry.models import Model, Result, Run
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


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A torch checkpoint file's contents, or one AsmError line (missing, truncated or foreign)."""
    if not path.is_file():
        raise AsmError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign file
        raise AsmError(f"cannot read checkpoint {path}: {exc}") from None


def load_network(path: Path) -> tuple[Network, dict[str, Any]]:
    """The network of ``best.pt`` (or any checkpoint) with its metadata."""
    ckpt = read_checkpoint(path)
    meta = ckpt.get("meta")
    if not meta or meta.get("format") != FORMAT:
        raise AsmError(f"{path} is not an asm checkpoint of format {FORMAT}")
    network = build_network(meta)
    network.load_state_dict(ckpt["network"])
    network.eval()
    return network, meta


def model_lock(name: str, checkpoint: str) -> DirectoryLock:
    """The lock a process holds on a model's checkpoint directory while it trains or deletes the model."""
    return DirectoryLock(paths.data_dir() / checkpoint, f"model {name} is being trained")


def directory_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) if directory.is_dir() else 0


def describe_model(ref: str) -> dict:
    """What ``delete-model`` would remove (asked before confirming)."""
    from asm.models.estimator import find_model

    with session_scope() as session:
        row = find_model(session, ref)
        info = {"id": row.id, "name": row.name, "status": row.status, "epochs": row.epochs_done,
                "checkpoint": row.checkpoint}
    info["bytes"] = directory_bytes(paths.data_dir() / info["checkpoint"]) if info["checkpoint"] else 0
    return info


def delete_model(ref: str) -> dict:
    """Remove a model's row (its epochs with it) and its checkpoint directory; refused while it trains.

    Runs and results that used the model keep their rows, without the link. The directory is renamed
    away first, so a kill leaves no files a later model of the same id and name would take for its own.
    """
    info = describe_model(ref)
    checkpoint = info["checkpoint"] or f"models/{info['id']:05d}-{info['name']}"
    directory = paths.data_dir() / checkpoint
    trash = directory.with_name(f".deleting-{directory.name}-{os.getpid()}")
    with model_lock(info["name"], checkpoint):
        try:
            os.replace(directory, trash)
        except OSError as exc:
            raise AsmError(f"cannot remove {directory}: {exc.strerror or exc}") from None
        with session_scope() as session:
            for table in (Run, Result):
                session.execute(update(table).where(table.model_id == info["id"]).values(model_id=None))
            session.delete(session.get(Model, info["id"]))
    shutil.rmtree(trash, ignore_errors=True)
    for stale in directory.parent.glob(".deleting-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return info
