"""Float64 NumPy reference values of the mixture, evaluated in row chunks to bound memory."""

from __future__ import annotations

import numpy as np

_ROWS = 256


def _log_joints(means, stds, logits, x):
    log_weights = logits - np.logaddexp.reduce(logits)
    z = (x[:, None, :] - means[None]) / stds[None]
    norm = -np.sum(np.log(stds), axis=-1) - 0.5 * means.shape[1] * np.log(2.0 * np.pi)
    return log_weights + norm - 0.5 * np.sum(z * z, axis=-1)


def log_prob(means, stds, logits, x):
    """Return log p(x) in float64 for points of shape (n, d)."""
    out = []
    for start in range(0, x.shape[0], _ROWS):
        a = _log_joints(means, stds, logits, x[start:start + _ROWS])
        top = a.max(axis=-1, keepdims=True)
        out.append(top[:, 0] + np.log(np.sum(np.exp(a - top), axis=-1)))
    return np.concatenate(out)


def score(means, stds, logits, x):
    """Return the gradient of log p(x) with respect to x in float64."""
    out = []
    for start in range(0, x.shape[0], _ROWS):
        chunk = x[start:start + _ROWS]
        a = _log_joints(means, stds, logits, chunk)
        r = np.exp(a - a.max(axis=-1, keepdims=True))
        r /= r.sum(axis=-1, keepdims=True)
        out.append(np.einsum("nk,nkd->nd", r, (means[None] - chunk[:, None, :]) / stds[None] ** 2))
    return np.concatenate(out)


def normalized_log_prob_error(values, expected) -> float:
    """Return max |error| / max(1e-4, 1e-5 |expected|); at most 1 meets the accuracy goal."""
    scale = np.maximum(1e-4, 1e-5 * np.abs(expected))
    return float(np.max(np.abs(values - expected) / scale))


def normalized_score_error(values, expected) -> float:
    """Return the per-point max-norm error over max(1e-4, 1e-5 * max-norm of the expected score)."""
    scale = np.maximum(1e-4, 1e-5 * np.max(np.abs(expected), axis=-1))
    return float(np.max(np.max(np.abs(values - expected), axis=-1) / scale))
