"""Spectral training of estimators through a synth's differentiable twin (``asm.synth.diff``).

A model config with a ``spectral`` section (``asm.models.config.SpectralSettings``) trains on the
parameter loss alone for ``warmup`` epochs, then mixes in a spectral loss whose weight rises linearly
to ``weight`` over ``ramp`` epochs (DiffMoog, Masuda & Saito 2023: a spectral loss from scratch fails,
the parameter loss first puts the estimate in the right basin). The spectral term:

* the estimator's prediction becomes a full preset: its continuous values (differentiable), the
  locked values, and for each categorical parameter the softmax of its logits as the twin's soft
  one-hot weights (so gradients reach the logits; ``categorical: straight-through`` renders the argmax
  choice and passes the gradient to the softmax); stepped and boolean values are read as the argmax
  (the twin reads them as Faust does, without gradient);
* the twin renders ``examples`` of the batch (a seeded subset) with each example's own notes, for the
  first ``duration`` seconds at the dataset's sample rate;
* the loss (``perceptual``, the distance searches choose by, ``mr-stft``, or their mean) is taken against the
  example's stored audio, or, for a features-only dataset, the twin's render of the true preset.

Each epoch the same loss of the point prediction (its median) is measured on a fixed set of
``val_examples`` validation examples; with ``select_by: spectral`` it names the best epoch. Everything depends on the
epoch, the step and the seed only, so ``--resume`` continues across the stage boundary exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from asm.audio.signal import SILENCE_PEAK
from asm.errors import AsmError
from asm.models.config import SpectralSettings
from asm.models.heads import ParameterLayout, Prediction
from asm.synth.params import ParameterSpace


def check_twin(synth: str, what: str):
    """The twin module of ``synth``, or one AsmError line saying that ``what`` (a config, a model) needs one."""
    from asm.synth.builtin import BUILTINS
    from asm.synth.diff import TWINS, twin_module

    if synth not in TWINS or synth not in BUILTINS:
        raise AsmError(f"{what} trains through a differentiable twin, and synth {synth} has none "
                       f"(synths with a twin: {', '.join(TWINS)})")
    return twin_module(synth)


class SpectralTerm:
    """The spectral part of a spectral config's training loss, for one dataset's train and val splits."""

    def __init__(self, settings: SpectralSettings | dict[str, Any], train_ds, val_ds, layout: ParameterLayout,
                 what: str = "a spectral config", device: str | torch.device = "cpu"):
        from asm.synth.builtin import BUILTINS

        self.settings = settings if isinstance(settings, SpectralSettings) else SpectralSettings(**settings)
        self.twin = check_twin(train_ds.synth, what)
        self.train_ds, self.val_ds, self.layout = train_ds, val_ds, layout
        self.device = torch.device(device)
        self.sample_rate = int(train_ds.sample_rate)
        self.duration = min(self.settings.duration, float(train_ds.settings.duration))
        self.n_samples = int(round(self.duration * self.sample_rate))
        space = ParameterSpace(BUILTINS[train_ds.synth].params).with_locks(train_ds.locks)
        free_index = [int(p["index"]) for p in train_ds.free_parameters]
        if [p.index for p in space.free] != free_index:
            raise AsmError(f"dataset {train_ds.name}'s free parameters do not match synth {train_ds.synth}'s "
                           "parameters with its locks: it was made for another version")
        self.base = torch.tensor(space.defaults(), dtype=torch.float32, device=self.device)
        self.free_positions = torch.tensor(space.free_positions, dtype=torch.long, device=self.device)
        choices = getattr(self.twin, "CHOICES", {})
        names = [p["name"] for p in train_ds.free_parameters]
        # (block j of the logits, twin control name) for each free categorical parameter the twin mixes softly
        self.soft = [(j, names[i]) for j, i in enumerate(layout.discrete)
                     if names[i] in choices and choices[names[i]] == layout.n_values[j]]
        n_val = min(self.settings.val_examples, len(val_ds))
        self.val_indices = np.unique(np.linspace(0, len(val_ds) - 1, n_val).round().astype(np.int64))
        self._val_targets: tuple | None = None

    # --- schedule ----------------------------------------------------------------------------
    def weight(self, epoch: int) -> float:
        """The spectral term's weight in epoch ``epoch`` (0-based): 0 in the warm-up, then a linear ramp."""
        s = self.settings
        if epoch < s.warmup:
            return 0.0
        return s.weight * min(1.0, (epoch - s.warmup + 1) / s.ramp)

    def counts_for_patience(self, epoch: int) -> bool:
        """Early stopping counts only epochs at the full spectral weight (the warm-up and ramp run out)."""
        return epoch >= self.settings.warmup + self.settings.ramp - 1

    # --- presets -----------------------------------------------------------------------------
    def presets(self, pred: Prediction) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Full normalised presets (B, P) and the twin's soft choice weights from a prediction."""
        layout = self.layout
        cont = pred.continuous.float()
        b = cont.shape[0]
        free = torch.zeros(b, layout.n_free, dtype=torch.float32, device=cont.device)
        if layout.continuous:
            free = free.index_copy(1, torch.tensor(layout.continuous, device=cont.device), cont)
        if layout.discrete:
            hard = torch.stack([pred.logits[:, layout.offsets[j]: layout.offsets[j + 1]].detach().argmax(dim=1)
                                .float() / (n - 1) for j, n in enumerate(layout.n_values)], dim=1)
            free = free.index_copy(1, torch.tensor(layout.discrete, device=cont.device), hard)
        full = self.base.to(cont.device).expand(b, -1).index_copy(1, self.free_positions.to(cont.device), free)
        soft = {name: torch.softmax(pred.logits[:, layout.offsets[j]: layout.offsets[j + 1]].float(), dim=1)
                for j, name in self.soft}
        if self.settings.categorical == "straight-through":  # render the argmax, differentiate the softmax
            soft = {name: w + (torch.nn.functional.one_hot(w.detach().argmax(dim=1), w.shape[1]).to(w.dtype)
                               - w.detach()) for name, w in soft.items()}
        return full, soft

    def _true_presets(self, free: torch.Tensor) -> torch.Tensor:
        free = free.float().to(self.base.device)
        return self.base.expand(free.shape[0], -1).index_copy(1, self.free_positions, free)

    def render(self, full: torch.Tensor, soft: dict[str, torch.Tensor] | None, notes: list) -> torch.Tensor:
        from asm.synth.diff.chain import Voices

        voices = Voices.from_notes(notes, dtype=torch.float32, device=full.device)
        return self.twin.render(full, voices, self.sample_rate, self.duration, soft=soft)

    # --- targets and loss --------------------------------------------------------------------
    def targets(self, ds, indices: np.ndarray, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        """Target audio (B, n) of split examples ``indices`` and their notes: the stored audio, else the
        twin's render of the true preset (``labels``: their free values, read from ``ds`` when None)."""
        notes = [ds.notes(int(i)) for i in indices]
        if ds.has_audio:
            audio = np.zeros((len(indices), self.n_samples), dtype=np.float32)
            for r, i in enumerate(indices):
                a = ds.audio(int(i))[: self.n_samples]
                audio[r, : len(a)] = a
            return torch.from_numpy(audio).to(self.device), notes
        if labels is None:
            labels = torch.from_numpy(np.stack([ds.params(int(i)) for i in indices]))
        with torch.no_grad():
            return self.render(self._true_presets(labels), None, notes), notes

    def _loss_fn(self, target: torch.Tensor):
        from asm.audio.spectral_loss import MultiResolutionSTFTLoss, PerceptualLoss

        kinds = {"perceptual": (PerceptualLoss,), "mr-stft": (MultiResolutionSTFTLoss,),
                 "perceptual+mr-stft": (PerceptualLoss, MultiResolutionSTFTLoss)}[self.settings.loss]
        parts = [kind(target, self.sample_rate, target.device) for kind in kinds]
        return parts[0] if len(parts) == 1 else (lambda audio: sum(p(audio) for p in parts) / len(parts))

    def loss(self, pred: Prediction, target: torch.Tensor, notes: list, hard: bool = False,
             per_row: bool = False) -> torch.Tensor:
        """Mean spectral loss of the predictions' renders against ``target`` (rows with a silent target
        or a non-finite loss left out; 0 when none is left), or with ``per_row`` each row's (NaN where
        left out). ``hard``: categorical values by argmax (the preset a user gets), not the soft mixture."""
        with torch.autocast(target.device.type, enabled=False):
            full, soft = self.presets(pred)
            per = self._loss_fn(target)(self.render(full, None if hard else soft, notes))
        usable = (target.abs().amax(dim=1) > SILENCE_PEAK) & torch.isfinite(per)
        if per_row:
            return torch.where(usable, per, torch.full_like(per, float("nan")))
        if not bool(usable.any()):
            return per.new_zeros(())
        return torch.where(usable, per, torch.zeros_like(per)).sum() / usable.sum()

    def train_loss(self, pred: Prediction, indices: np.ndarray, labels: torch.Tensor,
                   rng: np.random.Generator) -> torch.Tensor:
        """The term for one training batch: ``examples`` rows of it (chosen by ``rng``) through the twin."""
        k = min(self.settings.examples, len(indices))
        rows = np.sort(rng.choice(len(indices), size=k, replace=False))
        target, notes = self.targets(self.train_ds, np.asarray(indices)[rows], labels[rows].cpu())
        r = torch.as_tensor(rows, device=pred.continuous.device)
        return self.loss(Prediction(pred.continuous[r], pred.logits[r]), target, notes)

    @torch.no_grad()
    def validation_loss(self, network) -> float:
        """Median spectral loss of the point predictions (categorical values by argmax) on the fixed
        validation examples: the median, as test-model and the benchmarks report, is not thrown by
        the few examples whose loss is far off (a near-silent prediction of a loud sound)."""
        if self._val_targets is None:
            blocks = [self.targets(self.val_ds, chunk) for chunk in self._val_chunks()]
            self._val_targets = ([b[0] for b in blocks], [b[1] for b in blocks])
        was_training = network.training
        network.eval()
        rows = []
        for chunk, target, notes in zip(self._val_chunks(), *self._val_targets):
            mel = torch.from_numpy(np.stack([self.val_ds.features(int(i)) for i in chunk])).to(self.device)
            pred, _ = network(mel)
            rows.append(self.loss(pred, target, notes, hard=True, per_row=True).cpu())
        network.train(was_training)
        losses = torch.cat(rows)
        return float(losses.nanmedian()) if bool(torch.isfinite(losses).any()) else float("inf")

    def _val_chunks(self) -> list[np.ndarray]:
        step = max(1, 4 * self.settings.examples)
        return [self.val_indices[i: i + step] for i in range(0, len(self.val_indices), step)]
