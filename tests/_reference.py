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


def mixture_hessian(means, diag_stds, logits, x):
    """Return the Hessian of log p(x) with respect to x in float64, of shape (..., d, d).

    With responsibilities r_k, per-component pulls g_k = (mean_k - x) / std_k^2
    and the score s = sum_k r_k g_k, the Hessian is
    sum_k r_k (g_k g_k^T - diag(1 / std_k^2)) - s s^T.
    """
    means = np.asarray(means, np.float64)
    stds = np.asarray(diag_stds, np.float64)
    logits = np.asarray(logits, np.float64)
    x = np.asarray(x, np.float64)
    log_weights = logits - logsumexp(logits)
    z = (x[..., None, :] - means) / stds
    component = -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(stds), axis=-1)
    r = softmax(component + log_weights, axis=-1)
    pulls = (means - x[..., None, :]) / stds**2
    s = np.sum(r[..., None] * pulls, axis=-2)
    outer = np.einsum("...k,...ki,...kj->...ij", r, pulls, pulls)
    diagonal = np.einsum("...k,kd->...d", r, 1.0 / stds**2)
    return outer - np.einsum("...d,de->...de", diagonal, np.eye(means.shape[1])) \
        - s[..., :, None] * s[..., None, :]


def finite_difference_gradient(function, value, step=1e-6):
    """Return the central finite-difference gradient of a scalar float64 function."""
    value = np.asarray(value, np.float64)
    gradient = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up = value.copy()
        down = value.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (function(up) - function(down)) / (2 * step)
    return gradient


def random_mixture(rng, n_components, dim, *, spread=3.0, std_range=(0.3, 3.0), logit_scale=1.0):
    """Return float64 (means, diag_stds, logits) of a random mixture with unequal stds."""
    means = rng.normal(size=(n_components, dim)) * spread
    diag_stds = rng.uniform(*std_range, size=(n_components, dim))
    logits = rng.normal(size=n_components) * logit_scale
    return means, diag_stds, logits


def points_near_modes(rng, means, diag_stds, n, *, widen=1.5):
    """Return n float64 points around randomly chosen components, of shape (n, d)."""
    components = rng.integers(means.shape[0], size=n)
    noise = rng.normal(size=(n, means.shape[1]))
    return means[components] + widen * diag_stds[components] * noise


def as_float32(*arrays):
    """Round float64 arrays to float32 values, returned as float64 NumPy arrays."""
    return tuple(np.asarray(np.asarray(a, np.float32), np.float64) for a in arrays)
