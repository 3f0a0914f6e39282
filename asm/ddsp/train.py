"""Training a DDSP model on an instrument's audio (``asm ddsp train``): slices, multi-scale spectral loss,
registry rows, atomic checkpoints that a killed run resumes from."""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from asm import paths
from asm.ddsp.config import FRAME_RATE, DdspConfig
from asm.ddsp.features import Features, audio_files, prepare
from asm.ddsp.model import DdspModel
from asm.errors import AsmError
from asm.models.training import resolve_device

KEEP_CHECKPOINTS = 3
SILENT_SHARE = 0.5  # slices with more of their frames than this near silence are left out
FFT_SIZES_16K = (2048, 1024, 512, 256, 128, 64)  # DDSP's multi-scale spectral loss, scaled with the rate


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 3000
    batch_size: int = 8
    slice_seconds: float = 2.0
    learning_rate: float = 1e-3
    checkpoint_every: int = 200
    min_seconds: float = 2.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_name(name: str) -> str:
    return paths.check_name(name, "DDSP model")


def ddsp_root() -> Path:
    return paths.data_dir() / "ddsp"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ---- loss ----

def multiscale_spectral_loss(pred: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """DDSP's loss: over FFT sizes, mean |S - S'| + mean |log S - log S'| of STFT magnitudes (75 % overlap)."""
    scale = sample_rate / 16000
    total = pred.new_zeros(())
    for size in FFT_SIZES_16K:
        n = int(2 ** round(np.log2(size * scale)))
        window = torch.hann_window(n, device=pred.device)
        s_p = torch.stft(pred, n, n // 4, window=window, return_complex=True).abs()
        s_t = torch.stft(target, n, n // 4, window=window, return_complex=True).abs()
        total = total + (s_p - s_t).abs().mean() + (torch.log(s_p + 1e-7) - torch.log(s_t + 1e-7)).abs().mean()
    return total


# ---- slices ----

@dataclass
class Slices:
    """Training examples: ``starts`` frame indices of slices of ``frames`` blocks into one Features."""

    features: Features
    starts: np.ndarray
    frames: int

    @classmethod
    def of(cls, features: Features, config: DdspConfig, seconds: float) -> Slices:
        n_blocks = max(1, int(round(seconds * FRAME_RATE)))
        total_blocks = len(features.f0) - 1
        if total_blocks < n_blocks:
            n_blocks = total_blocks
        starts = np.arange(0, total_blocks - n_blocks + 1, max(1, n_blocks // 2))
        loud = features.loudness
        quiet = loud < loud.max() - 40.0
        keep = [s for s in starts if quiet[s: s + n_blocks + 1].mean() <= SILENT_SHARE]
        if not keep:
            raise AsmError("no slice of the audio is loud enough to learn from")
        return cls(features, np.asarray(keep), n_blocks)

    def batch(self, idx: np.ndarray, hop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f, n = self.features, self.frames
        f0 = np.stack([f.f0[s: s + n + 1] for s in self.starts[idx]])
        loud = np.stack([f.loudness[s: s + n + 1] for s in self.starts[idx]])
        audio = np.stack([f.audio[s * hop: (s + n) * hop] for s in self.starts[idx]])
        pad = n * hop - audio.shape[1]
        if pad > 0:
            audio = np.pad(audio, ((0, 0), (0, pad)))
        return torch.from_numpy(f0), torch.from_numpy(loud), torch.from_numpy(audio)


# ---- checkpoints ----

def _save_checkpoint(directory: Path, step: int, state: dict) -> tuple[str, str]:
    from asm.atomic import write_bytes

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"step-{step:07d}.pt"
    write_bytes(directory / name, data)
    return name, hashlib.sha256(data).hexdigest()


def _load_checkpoint(path: Path, sha256: str) -> dict:
    if not path.is_file():
        raise AsmError(f"checkpoint {path} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise AsmError(f"checkpoint {path} is corrupt (its checksum differs from the registry's)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def get_row(session, name: str):
    from sqlalchemy import select

    from asm.registry.models import DdspModel as Row

    row = session.scalar(select(Row).where(Row.name == name))
    if row is None:
        known = ", ".join(session.scalars(select(Row.name).order_by(Row.name))) or "none yet; run asm ddsp train"
        raise AsmError(f"unknown DDSP model {name!r}; known: {known}")
    return row


def load_model(name: str) -> tuple[DdspModel, dict]:
    """The newest weights of DDSP model ``name`` (on the CPU, eval mode) and a summary of its row."""
    from asm.registry.db import session_scope

    with session_scope(read_only=True) as session:
        row = get_row(session, name)
        if not row.checkpoints:
            raise AsmError(f"DDSP model {name!r} has no checkpoint yet (its training has not saved one)")
        last = row.checkpoints[-1]
        path = paths.data_dir() / row.checkpoint / last.file
        summary = {"name": row.name, "status": row.status, "steps": row.steps_done, "config": dict(row.config),
                   "sample_rate": row.sample_rate, "loss": row.last_loss, "seed": row.seed}
        sha = last.sha256
    state = _load_checkpoint(path, sha)
    model = DdspModel(DdspConfig.from_dict(summary["config"]), seed=summary["seed"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, summary


# ---- training ----

def _finished_or_refused(name: str, config: DdspConfig, files: list[Path], settings: TrainSettings,
                         device: str) -> dict | None:
    """Refuse a name taken by other settings or audio; a model already trained far enough is its summary."""
    from sqlalchemy import select

    from asm.registry.db import session_scope
    from asm.registry.models import DdspModel as Row

    with session_scope(read_only=True) as session:
        row = session.scalar(select(Row).where(Row.name == name))
        if row is None:
            return None
        if DdspConfig.from_dict(row.config) != config:
            raise AsmError(f"DDSP model {name!r} exists with other settings ({row.config}); "
                           "give another name, or the same settings to resume it")
        if sorted(row.sources) != sorted(str(f.resolve()) for f in files):
            raise AsmError(f"DDSP model {name!r} was trained on other audio; give another name")
        if row.steps_done >= settings.steps:
            return {"name": name, "steps": row.steps_done, "loss": row.last_loss, "first_loss": row.first_loss,
                    "resumed": True, "nothing_to_do": True, "device": device}
    return None


def _open_rows(name: str, files: list[Path], config: DdspConfig, settings: TrainSettings, seed: int, device: str,
               directory: Path, cache: Path) -> tuple[int, int, list[tuple[int, str, str]]]:
    """The model row (made on first use, marked training) and a new ``ddsp-train`` run:
    (run id, model id, its checkpoints as (step, file, sha256))."""
    from sqlalchemy import select

    from asm.data.store import code_version
    from asm.registry.db import session_scope
    from asm.registry.models import DdspModel as Row
    from asm.registry.models import Run

    with session_scope() as session:
        row = session.scalar(select(Row).where(Row.name == name))
        if row is None:
            row = Row(name=name, sample_rate=config.sample_rate, seed=seed, device=device, config=config.to_dict(),
                      train_settings=settings.to_dict(), sources=[str(f.resolve()) for f in files],
                      checkpoint=str(directory.relative_to(paths.data_dir())), code_version=code_version())
            session.add(row)
        row.status = "training"
        row.feature_cache = str(cache.relative_to(paths.data_dir()))
        row.train_settings = settings.to_dict()
        run = Run(kind="ddsp-train", name=name, seed=seed, settings={"model": name, **settings.to_dict(),
                                                                       "device": device}, code_version=code_version())
        session.add(run)
        session.flush()
        return run.id, row.id, [(c.step, c.file, c.sha256) for c in row.checkpoints]


def _restore(directory: Path, checkpoint: tuple[int, str, str], model, optimiser, generator) -> tuple[int, float]:
    """Load a checkpoint (step, file, sha256) into the model, optimiser and generator: (step, first loss)."""
    step, file, sha = checkpoint
    state = _load_checkpoint(directory / file, sha)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    generator.set_state(state["generator"])
    return step, state["first_loss"]


def _store_checkpoint(directory: Path, model_id: int, step: int, loss: float, first_loss: float, state: dict,
                      seconds: float) -> None:
    """Write a checkpoint, record it on the model row and keep only the newest ``KEEP_CHECKPOINTS``."""
    from asm.registry.db import session_scope
    from asm.registry.models import DdspCheckpoint
    from asm.registry.models import DdspModel as Row

    file, sha = _save_checkpoint(directory, step, state)
    with session_scope() as session:
        r = session.get(Row, model_id)
        r.checkpoints.append(DdspCheckpoint(step=step, loss=loss, file=file, sha256=sha))
        r.steps_done, r.last_loss, r.first_loss = step, loss, first_loss
        r.seconds += seconds
        for old in r.checkpoints[:-KEEP_CHECKPOINTS]:
            (directory / old.file).unlink(missing_ok=True)
            r.checkpoints.remove(old)


def train(name: str, sources: list[str | Path], config: DdspConfig, settings: TrainSettings, seed: int = 0,
          device: str = "auto", progress: Callable[[int, int, float], None] | None = None,
          log: Callable[[str], None] = lambda msg: None) -> dict:
    """Train (or resume) DDSP model ``name`` up to ``settings.steps`` steps; returns a summary."""
    from asm.registry.db import session_scope
    from asm.registry.models import DdspModel as Row
    from asm.registry.models import Run

    check_name(name)
    device = resolve_device(device)
    files = audio_files(sources)
    root = ddsp_root()
    directory = root / name
    done = _finished_or_refused(name, config, files, settings, device)  # refusals first, before the audio is analysed
    if done is not None:
        return done
    feats, cache = prepare(files, config, root / "cache", settings.min_seconds, log)
    slices = Slices.of(feats, config, settings.slice_seconds)
    run_id, model_id, resume = _open_rows(name, files, config, settings, seed, device, directory, cache)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    status = "failed"
    try:
        model = DdspModel(config, seed=seed).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        generator = torch.Generator().manual_seed(seed)
        step, first_loss, losses = 0, None, []
        if resume:
            step, first_loss = _restore(directory, resume[-1], model, optimiser, generator)
            log(f"resuming from step {step}")
        model.train()
        window: list[float] = []
        while step < settings.steps:
            idx = torch.randint(len(slices.starts), (settings.batch_size,), generator=generator).numpy()
            f0, loud, audio = (t.to(device) for t in slices.batch(idx, config.hop))
            noise = (torch.rand(audio.shape, generator=generator) * 2 - 1).to(device)
            pred = model.render(f0, loud, noise)
            loss = multiscale_spectral_loss(pred, audio, config.sample_rate)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            optimiser.step()
            step += 1
            value = float(loss.detach())
            window.append(value)
            if first_loss is None:
                first_loss = value
            if progress:
                progress(step, settings.steps, value)
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                mean = float(np.mean(window))
                losses.append(mean)
                window = []
                state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                         "generator": generator.get_state(), "step": step, "first_loss": first_loss}
                _store_checkpoint(directory, model_id, step, mean, first_loss, state, time.perf_counter() - started)
                started = time.perf_counter()
        status = "complete"
        with session_scope() as session:
            r = session.get(Row, model_id)
            summary = {"name": name, "steps": r.steps_done, "loss": r.last_loss, "first_loss": r.first_loss,
                       "resumed": bool(resume), "device": device, "slices": int(len(slices.starts)),
                       "seconds_of_audio": len(feats.audio) / config.sample_rate}
        return summary
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        with session_scope() as session:
            r = session.get(Row, model_id)
            r.status = {"complete": "complete", "interrupted": "training"}.get(status, "failed")
            if status == "complete":
                r.completed_at = utcnow()
            run = session.get(Run, run_id)
            run.status = status
            run.finished_at = utcnow()
            run.summary = {"steps": r.steps_done, "loss": r.last_loss, "first_loss": r.first_loss}
