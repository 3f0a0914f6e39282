"""A trained proxy as a search's screen: free vectors -> predicted distance to a target.

``ProxyScreen`` holds a finished proxy and what its dataset was rendered with (sample rate, length,
feature settings); ``for_target`` embeds a target exactly as the dataset's examples were embedded
(resampled to the dataset's rate, cut or padded to its length, its log-mel settings) and returns a
callable that scores rows of free values by the L1 distance, in standardised units (what the proxy
was trained on), between the proxy's predicted embedding and the target's. A screen only chooses
what a search renders (``asm.search.engine``); every reported score is a real render's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from asm.errors import AsmError

BATCH = 4096


class ProxyScreen:
    def __init__(self, network, meta: dict, name: str, proxy_id: int, dataset_settings: dict):
        from asm.audio.features import FeatureSettings

        self.network, self.meta, self.name, self.proxy_id = network, meta, name, int(proxy_id)
        self.sample_rate = int(dataset_settings["sample_rate"])
        self.n_samples = int(round(float(dataset_settings["duration"]) * self.sample_rate))
        self.features = FeatureSettings(**dataset_settings.get("features", {}))
        self.pitch_input = bool(getattr(network, "pitch_input", False))

    @classmethod
    def load(cls, session, ref: str | int, space=None, synth: str | None = None) -> ProxyScreen:
        """A finished proxy by name or id; with ``space`` it must have been trained for that synth's
        current free parameters and locks."""
        from asm.proxy.train import load_proxy

        network, meta, row = load_proxy(session, ref)
        if synth is not None and row.synth.name != synth:
            raise AsmError(f"proxy {row.name} was trained for {row.synth.name}, not {synth}")
        if space is not None and (row.free_signature != space.free_signature()
                                  or row.lock_signature != space.lock_signature()):
            raise AsmError(f"proxy {row.name} was trained with other locks on {row.synth.name}; "
                           "train one for the current locks with asm train-proxy")
        return cls(network, meta, row.name, row.id, dict(row.dataset.settings))

    def embed_target(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        """The target's embedding in the proxy's standardised units, as the dataset embedded its examples."""
        from asm.audio.features import example_logmel
        from asm.proxy.embedding import embed_logmel

        with torch.no_grad():
            mel = example_logmel(audio, sample_rate, self.sample_rate, self.n_samples, self.features)
            e = embed_logmel(mel)[0]
            return (e - self.network.mean) / self.network.std

    def for_target(self, audio: np.ndarray, sample_rate: int, notes: Sequence) -> Callable[[np.ndarray], np.ndarray]:
        """``score(free (n, n_free)) -> (n,)`` predicted distances to this target played with ``notes``
        (lower is closer)."""
        from asm.proxy.pitch import mean_pitch, with_pitch

        z = self.embed_target(audio, sample_rate)
        pitch = mean_pitch(notes)
        network = self.network

        def score(free: np.ndarray) -> np.ndarray:
            free = np.atleast_2d(np.asarray(free, dtype=np.float32))
            inputs = with_pitch(free, pitch) if self.pitch_input else free
            out = np.empty(len(inputs), np.float64)
            with torch.no_grad():
                for a in range(0, len(inputs), BATCH):
                    pred = network.standardised(torch.from_numpy(np.ascontiguousarray(inputs[a : a + BATCH])))
                    out[a : a + BATCH] = (pred - z).abs().mean(dim=1).double().numpy()
            return out

        return score


def latest_proxy(session, synth_row, space):
    """The newest finished proxy of ``synth_row`` trained for its current free parameters and locks, or None."""
    from sqlalchemy import select

    from asm.registry.models import Proxy

    return session.scalar(select(Proxy).where(
        Proxy.synth_id == synth_row.id, Proxy.status == "complete",
        Proxy.free_signature == space.free_signature(), Proxy.lock_signature == space.lock_signature(),
    ).order_by(Proxy.id.desc()).limit(1))
