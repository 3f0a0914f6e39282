"""Parameter-space scores where the true preset is known: MAE over the continuous free parameters
and accuracy over the discrete ones (stepped, categorical, boolean), per example."""

from __future__ import annotations

import numpy as np


def parameter_scores(predicted: np.ndarray, truth: np.ndarray, free_parameters: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(mae, accuracy), each of shape (B,); NaN where a preset has no parameter of that kind."""
    predicted, truth = np.atleast_2d(predicted), np.atleast_2d(truth)
    n_values = np.array([int(p.get("n_values") or 0) for p in free_parameters])
    continuous = n_values <= 1
    discrete = ~continuous
    mae = (np.abs(predicted[:, continuous] - truth[:, continuous]).mean(axis=1) if continuous.any()
           else np.full(len(truth), np.nan))
    if discrete.any():
        steps = (n_values[discrete] - 1).astype(np.float64)
        same = np.round(predicted[:, discrete] * steps) == np.round(truth[:, discrete] * steps)
        accuracy = same.mean(axis=1)
    else:
        accuracy = np.full(len(truth), np.nan)
    return mae, accuracy
