"""Independent float64 NumPy/SciPy references and the shared tolerance helper."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax


def mixture_log_prob(means, diag_stds, logits, x):
    """Return log p(x) in float64 for points of shape (..., d)."""
    means = np.asarray(means, np.float64)
    stds = np.asarray(diag_stds, np.float64)
    logits = np.asarray(logits, np.float64)
    x = np.asarray(x, np.float64)
    log_weights = logits - logsumexp(logits)
    z = (x[..., None, :] - means) / stds
    component = -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(stds), axis=-1) \
        - 0.5 * means.shape[1] * np.log(2 * np.pi)
    return logsumexp(component + log_weights, axis=-1)


def mixture_score(means, diag_stds, logits, x):
    """Return the gradient of log p(x) with respect to x in float64."""
    means = np.asarray(means, np.float64)
    stds = np.asarray(diag_stds, np.float64)
    logits = np.asarray(logits, np.float64)
    x = np.asarray(x, np.float64)
    log_weights = logits - logsumexp(logits)
    z = (x[..., None, :] - means) / stds
    component = -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(stds), axis=-1)
    responsibilities = softmax(component + log_weights, axis=-1)
    return np.sum(responsibilities[..., None] * (means - x[..., None, :]) / stds**2, axis=-2)


def assert_close(actual, expected, *, rtol, atol, name="value"):
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise, in float64."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual) == np.isfinite(expected)), f"{name}: non-finite mismatch"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)
