"""Estimators as the rest of asm sees them: audio in, K candidate presets out.

    est = load_estimator(session, "cnn-mono")      # a model name, "#12", or an id
    est.check_space(space)                          # refuses another synth or another lock set
    cands = est.candidates(audio_batch, k=8)        # (B, k, n_free) normalised free values, best first

For trained networks the first candidate is the point estimate; ``flow`` models add k-1 samples of
their conditional flow; ``nn`` returns the k nearest training examples' presets.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sqlalchemy import select

from asm import paths
from asm.audio.features import LOG_FLOOR, FeatureSettings, logmel
from asm.errors import AsmError
from asm.models import architectures
from asm.registry.models import Model
from asm.synth.params import ParameterSpace


class Estimator:
    def __init__(self, row, meta: dict):
        self.model_id: int = row.id
        self.name: str = row.name
        self.arch: str = row.arch
        self.synth: str = row.synth.name
        self.sample_rate: int = int(row.sample_rate)
        self.features = FeatureSettings(**row.feature_settings)
        self.free_parameters: list[dict] = list(row.free_parameters)
        self.free_signature, self.lock_signature = row.free_signature, row.lock_signature
        self.frames: int = int(meta["input_shape"][1])

    @property
    def many_candidates(self) -> bool:
        """Whether ``candidates(k)`` gives k different presets (flow samples, neighbours) or one estimate."""
        return architectures.get(self.arch).many_candidates

    @property
    def n_free(self) -> int:
        return len(self.free_parameters)

    def check_space(self, space: ParameterSpace, synth: str | None = None) -> None:
        """Refuse to drive a synth whose free parameters or locks differ from the training data's."""
        if synth is not None and synth != self.synth:
            raise AsmError(f"model {self.name} was trained for synth {self.synth}, not {synth}")
        if space.free_signature() != self.free_signature:
            raise AsmError(f"model {self.name} was trained with other free parameters of {self.synth} "
                           "(the locks changed since); retrain it or restore the locks")
        if space.lock_signature() != self.lock_signature:
            raise AsmError(f"model {self.name} was trained with other locked values on {self.synth}; "
                           "retrain it or restore the locks")

    def mel(self, audio: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Log-mel of audio at the model's sample rate, cropped or padded to the trained length."""
        batch = [np.asarray(a, dtype=np.float32) for a in (audio if isinstance(audio, (list, tuple)) or
                                                             np.asarray(audio).ndim == 2 else [audio])]
        n = (self.frames - 1) * self.features.hop
        fixed = np.zeros((len(batch), n), dtype=np.float32)
        for i, a in enumerate(batch):
            fixed[i, : min(n, len(a))] = a[:n]
        mel = logmel(fixed, self.sample_rate, self.features)
        if mel.shape[-1] != self.frames:  # centred STFT rounding
            pad = self.frames - mel.shape[-1]
            mel = mel[..., : self.frames] if pad < 0 else torch.nn.functional.pad(
                mel, (0, pad), value=float(np.log(LOG_FLOOR)))
        return mel

    def candidates(self, audio, k: int = 1, seed: int = 0) -> np.ndarray:
        return self.candidates_from_mel(self.mel(audio), k, seed)

    def candidates_from_mel(self, mel: torch.Tensor, k: int = 1, seed: int = 0) -> np.ndarray:
        raise NotImplementedError


class NetworkEstimator(Estimator):
    def __init__(self, row, network, meta: dict):
        super().__init__(row, meta)
        self.network = network

    def candidates_from_mel(self, mel: torch.Tensor, k: int = 1, seed: int = 0) -> np.ndarray:
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            return self.network.candidates(mel.float(), k, generator=gen).numpy().astype(np.float64)


class NeighbourEstimator(Estimator):
    def __init__(self, row, index, meta: dict):
        super().__init__(row, meta)
        self.index = index

    def candidates_from_mel(self, mel: torch.Tensor, k: int = 1, seed: int = 0) -> np.ndarray:
        return self.index.candidates(mel, k).numpy().astype(np.float64)


def find_model(session, ref: str | int):
    """A model row by name, ``#id`` or id; unfinished models are refused."""
    row = None
    text = str(ref).strip()
    if text.lstrip("#").isdigit():
        row = session.get(Model, int(text.lstrip("#")))
    if row is None:
        row = session.scalar(select(Model).where(Model.name == text))
    if row is None:
        names = list(session.scalars(select(Model.name).where(Model.status == "complete").limit(20)))
        hint = f"; trained models: {', '.join(names)}" if names else "; train one with asm train-model"
        raise AsmError(f"unknown model {text!r}{hint}")
    return row


def load_estimator(session, ref: str | int) -> Estimator:
    from asm.models.checkpoint import load_network
    from asm.models.neighbours import NeighbourIndex

    row = find_model(session, ref)
    if row.status != "complete":
        raise AsmError(f"model {row.name} is not finished ({row.status}); resume it with "
                       f"asm train-model --resume {row.name}")
    directory = paths.data_dir() / row.checkpoint
    if architectures.get(row.arch).kind == "index":
        path = directory / "index.pt"
        if not path.is_file():
            raise AsmError(f"the index of model {row.name} is missing: {path}")
        state = torch.load(path, map_location="cpu", weights_only=False)
        return NeighbourEstimator(row, NeighbourIndex.from_state(state["index"]), state["meta"])
    network, meta = load_network(directory / "best.pt")
    return NetworkEstimator(row, network, meta)
