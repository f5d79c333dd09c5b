"""Property-based tests of log_prob, score and parameter gradients against a float64 reference.

Hypothesis draws the values (stds from 1e-3 to 1e3, logits from -50 to 50 or
-inf with at least one finite, points up to 1e4 standard deviations from a
mode) for a fixed list of shapes that covers K from 1 to 64 and D from 1 to
256 and both evaluation paths of the core (D <= 16 and D > 16). Fixing the
shapes keeps the number of compilations, and so the run time, small.

The tolerances are the rounding-error bounds derived in docs/numerics.md,
evaluated per point from float64 reference quantities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from boltzkit.targets import DiagonalGaussianMixture
from tests._reference import mixture_log_prob, mixture_score

# (K, D) pairs: the corners of K in [1, 64] and D in [1, 256], and both sides
# of the switch between the coordinate-wise (D <= 16) and broadcast paths.
SHAPES = ((1, 1), (64, 1), (1, 256), (64, 256), (7, 16), (5, 17), (40, 2))
N_POINTS = 6
SAFETY = 2.0

PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def x64(request):
    """Enable x64 for float64 cases and restore the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    try:
        yield np.dtype(request.param)
    finally:
        jax.config.update("jax_enable_x64", previous)


@st.composite
def mixtures(draw):
    """Draw parameters and points; every array is exactly representable in float32."""
    n_components, dim = draw(st.sampled_from(SHAPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    log_std_low = draw(st.floats(-3.0, 3.0))
    log_std_high = draw(st.floats(log_std_low, 3.0))
    mean_spread = draw(st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e3]))
    logit_width = draw(st.sampled_from([0.0, 1.0, 50.0]))
    neg_inf_fraction = draw(st.sampled_from([0.0, 0.3, 0.9]))
    max_log_distance = draw(st.floats(-2.0, 4.0))

    stds = 10.0 ** rng.uniform(log_std_low, log_std_high, size=(n_components, dim))
    means = rng.uniform(-mean_spread, mean_spread, size=(n_components, dim))
    logits = rng.uniform(-logit_width, logit_width, size=n_components)
    logits[rng.random(n_components) < neg_inf_fraction] = -np.inf
    logits[rng.integers(n_components)] = rng.uniform(-logit_width, logit_width)

    # Each point sits at up to 10**max_log_distance stds of one component per coordinate.
    owners = rng.integers(n_components, size=N_POINTS)
    scales = 10.0 ** rng.uniform(-2.0, max_log_distance, size=(N_POINTS, 1))
    offsets = rng.uniform(-1.0, 1.0, size=(N_POINTS, dim)) * scales
    x = means[owners] + stds[owners] * offsets

    as32 = lambda value: np.asarray(value, np.float32).astype(np.float64)  # noqa: E731
    return as32(means), as32(stds), as32(logits), as32(x)


def reference_terms(means, stds, logits, x):
    """Return float64 log-responsibilities, per-component magnitudes and pulls.

    ``log_r`` has shape (n, k); ``magnitude`` (n, k) bounds the absolute size
    of every term that enters a component's log-joint; ``pulls`` (n, k, d) is
    (mean_k - x) / std_k**2.
    """
    dim = means.shape[1]
    log_weights = logits - logsumexp(logits)
    z = (x[:, None, :] - means[None]) / stds[None]
    squared = np.sum(z * z, axis=-1)
    sum_log_stds = np.sum(np.log(stds), axis=-1)
    log_joint = log_weights - sum_log_stds - 0.5 * dim * np.log(2 * np.pi) - 0.5 * squared
    log_r = log_joint - logsumexp(log_joint, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        magnitude = (0.5 * squared + np.sum(np.abs(np.log(stds)), axis=-1)
                     + 0.5 * dim * np.log(2 * np.pi) + np.abs(logits) + abs(logsumexp(logits)))
    pulls = (means[None] - x[:, None, :]) / stds[None] ** 2
    return log_r, magnitude, pulls


def log_prob_tolerance(log_r, magnitude, dim, eps):
    """Bound the rounding error of log_prob: eps * ((D + 8) * sum_k r_k m_k + K + 4)."""
    n_components = log_r.shape[1]
    r = np.exp(log_r)
    weighted = np.sum(np.where(r > 0, r * np.nan_to_num(magnitude, posinf=0.0), 0.0), axis=-1)
    return SAFETY * eps * ((dim + 8) * weighted + n_components + 4)


def score_tolerance(log_r, magnitude, pulls, score, dim, eps):
    """Bound the rounding error of the score, per coordinate.

    A log-joint is off by at most E_k = eps * (D + 8) * m_k, so a computed
    responsibility is off by at most e_k = min(1, r_k * (exp(E_k + sum_j r_j E_j) - 1)).
    The error of sum_k r_k pull_k is then at most sum_k e_k |pull_k - s| +
    |s| sum_k e_k, plus a relative error of about (K + 4) eps in the pulls.
    """
    n_components = log_r.shape[1]
    r = np.exp(log_r)
    finite = np.isfinite(log_r)
    errors = np.where(finite, eps * (dim + 8) * np.nan_to_num(magnitude, posinf=0.0), 0.0)
    mean_error = np.sum(r * errors, axis=-1, keepdims=True)
    with np.errstate(over="ignore"):
        shift = np.where(finite, np.expm1(np.minimum(errors + mean_error, 700.0)), 0.0)
        log_bound = np.where(finite, log_r + np.log(np.maximum(shift, 1e-300)), -np.inf)
    responsibility_error = np.minimum(1.0, np.exp(log_bound))
    spread = np.abs(pulls - score[:, None, :])
    from_responsibilities = np.sum(responsibility_error[..., None] * spread, axis=1)
    # The computed responsibilities need not sum to one: s * (sum_k r_k - 1).
    from_normalization = np.abs(score) * np.sum(responsibility_error, axis=1, keepdims=True)
    from_pulls = (n_components + 4) * eps * np.sum(r[..., None] * np.abs(pulls), axis=1)
    return SAFETY * (from_responsibilities + from_normalization + from_pulls)


def finite_difference_score(means, stds, logits, x, columns):
    """Return central differences of the float64 reference log_prob and their error bound.

    The step along coordinate d keeps every responsibility within a factor
    exp(1e-3) over [x - h, x + h], so the third-derivative bound taken at x
    is valid over the whole interval.
    """
    log_r, magnitude, pulls = reference_terms(means, stds, logits, x)
    r = np.exp(log_r)
    score = mixture_score(means, stds, logits, x)
    eps = np.finfo(np.float64).eps
    values = mixture_log_prob(means, stds, logits, x)
    value_error = log_prob_tolerance(log_r, magnitude, means.shape[1], eps) + eps * np.abs(values)

    estimates, bounds = [], []
    for d in columns:
        spread = np.abs(pulls[:, :, d] - score[:, None, d])
        active = np.where(r > 1e-30, spread, 0.0).max(axis=1)
        step = np.minimum(1e-4 * stds[:, d].min(), 1e-3 / np.maximum(active, 1e-300))
        up, down = x.copy(), x.copy()
        up[:, d] += step
        down[:, d] -= step
        width = up[:, d] - down[:, d]
        difference = (mixture_log_prob(means, stds, logits, up)
                      - mixture_log_prob(means, stds, logits, down)) / width
        # |f'''| <= 3 E|g - s| max|1/std^2| + E|g - s|^3 along coordinate d.
        third = (3 * np.sum(r * spread, axis=1) / stds[:, d].min() ** 2
                 + np.sum(r * spread**3, axis=1))
        truncation = (width / 2) ** 2 / 6 * third * np.exp(2e-3)
        rounding = 2 * value_error / width
        estimates.append(difference)
        bounds.append(SAFETY * (truncation + rounding))
    return np.stack(estimates, axis=-1), np.stack(bounds, axis=-1)


@jax.jit
def _evaluate(target, x):
    values, scores = target.log_prob_and_score(x)
    grads = jax.grad(lambda t: jnp.sum(t.log_prob(x)))(target)
    return values, scores, grads


def _build(means, stds, logits, x, dtype):
    target = DiagonalGaussianMixture(means.astype(dtype), stds.astype(dtype), logits.astype(dtype))
    assert target.dtype == dtype
    return target, jnp.asarray(x.astype(dtype))


def _reference_parameter_gradients(means, stds, logits, x):
    log_r, _, _ = reference_terms(means, stds, logits, x)
    r = np.exp(log_r)
    z = (x[:, None, :] - means[None]) / stds[None]
    d_means = np.sum(r[..., None] * z / stds[None], axis=0)
    d_stds = np.sum(r[..., None] * (z * z - 1.0) / stds[None], axis=0)
    weights = np.exp(logits - logsumexp(logits))
    d_logits = np.sum(r, axis=0) - x.shape[0] * weights
    return d_means, d_stds, d_logits


@pytest.mark.parametrize("x64", ["float32", "float64"], indirect=True)
@PROPERTY_SETTINGS
@given(case=mixtures())
def test_log_prob_score_within_bound(x64, case):
    dtype = x64
    means, stds, logits, x = case
    target, points = _build(means, stds, logits, x, dtype)
    values, scores, grads = (jax.tree.map(np.asarray, out) for out in [*_evaluate(target, points)])
    eps = np.finfo(dtype).eps
    dim = means.shape[1]

    expected_values = mixture_log_prob(means, stds, logits, x)
    expected_scores = mixture_score(means, stds, logits, x)
    assert np.isfinite(expected_values).all()

    assert np.isfinite(values).all(), values
    assert np.isfinite(scores).all(), scores
    for name in ("means", "diag_stds", "logits"):
        assert np.isfinite(getattr(grads, name)).all(), name

    log_r, magnitude, pulls = reference_terms(means, stds, logits, x)
    value_bound = log_prob_tolerance(log_r, magnitude, dim, eps)
    value_error = np.abs(values.astype(np.float64) - expected_values)
    assert (value_error <= value_bound).all(), (value_error, value_bound)

    score_bound = score_tolerance(log_r, magnitude, pulls, expected_scores, dim, eps)
    score_error = np.abs(scores.astype(np.float64) - expected_scores)
    worst = np.unravel_index(np.argmax(score_error - score_bound), score_error.shape)
    assert (score_error <= score_bound).all(), (worst, score_error[worst], score_bound[worst])


@pytest.mark.parametrize("x64", ["float32", "float64"], indirect=True)
@PROPERTY_SETTINGS
@given(case=mixtures())
def test_score_matches_finite_differences(x64, case):
    dtype = x64
    means, stds, logits, x = case
    target, points = _build(means, stds, logits, x, dtype)
    scores = np.asarray(_evaluate(target, points)[1], np.float64)

    columns = range(min(means.shape[1], 4))
    estimates, fd_bound = finite_difference_score(means, stds, logits, x, columns)
    log_r, magnitude, pulls = reference_terms(means, stds, logits, x)
    expected = mixture_score(means, stds, logits, x)
    eps = np.finfo(dtype).eps
    score_bound = score_tolerance(log_r, magnitude, pulls, expected, means.shape[1], eps)

    selected = scores[:, list(columns)]
    error = np.abs(selected - estimates)
    bound = fd_bound + score_bound[:, list(columns)]
    assert (error <= bound).all(), (error, bound)


def test_parameter_gradients_match_reference_float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(7)
        means = rng.normal(size=(5, 3)) * 3
        stds = 10.0 ** rng.uniform(-1, 1, size=(5, 3))
        logits = np.array([0.5, -np.inf, 2.0, -1.0, 0.0])
        x = means[[0, 2, 3, 4]] + rng.normal(size=(4, 3))
        target, points = _build(means, stds, logits, x, np.dtype(np.float64))
        grads = _evaluate(target, points)[2]
        expected = _reference_parameter_gradients(means, stds, logits, x)
        for name, value in zip(("means", "diag_stds", "logits"), expected, strict=True):
            np.testing.assert_allclose(np.asarray(getattr(grads, name)), value,
                                       rtol=1e-10, atol=1e-12, err_msg=name)
    finally:
        jax.config.update("jax_enable_x64", previous)


def _nearest_pull(means, stds, logits, x):
    """Return the float64 pull toward the nearest component of positive weight."""
    squared = np.sum(((x[:, None, :] - means[None]) / stds[None]) ** 2, axis=-1)
    squared[:, np.isneginf(logits)] = np.inf
    nearest = np.argmin(squared, axis=-1)
    return (means[nearest] - x) / stds[nearest] ** 2, nearest


@pytest.mark.parametrize("dim", [2, 20])
def test_overflow_score_points_to_nearest_mode(dim):
    rng = np.random.default_rng(dim)
    means = rng.uniform(-1e19, 1e19, size=(6, dim)).astype(np.float32)
    stds = (10.0 ** rng.uniform(-1, 0.5, size=(6, dim))).astype(np.float32)
    logits = np.array([0.0, -np.inf, 1.0, -3.0, -np.inf, 2.0], np.float32)
    far = rng.choice([-1.0, 1.0], size=(4, dim)) * rng.uniform(2e20, 1e21, size=(4, dim))
    near = means[[0, 2]] + stds[[0, 2]] * rng.normal(size=(2, dim))
    x = np.concatenate([far, near]).astype(np.float32)
    target = DiagonalGaussianMixture(means, stds, logits)

    values, scores = (np.asarray(a, np.float64) for a in target.log_prob_and_score(x))
    x64_, means64, stds64, logits64 = (a.astype(np.float64) for a in (x, means, stds, logits))
    squared = np.sum(((x64_[:, None, :] - means64[None]) / stds64[None]) ** 2, axis=-1)
    assert (squared[:4].min(axis=-1) > np.finfo(np.float32).max).all()

    assert np.isfinite(scores).all()
    assert np.isneginf(values[:4]).all()
    expected, _ = _nearest_pull(means64, stds64, logits64, x64_[:4])
    np.testing.assert_allclose(scores[:4], expected, rtol=1e-5)
    direction = np.sum(scores[:4] * expected, axis=-1)
    assert (direction > 0).all()

    near_expected = mixture_score(means64, stds64, logits64, x64_[4:])
    np.testing.assert_allclose(scores[4:], near_expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values[4:], mixture_log_prob(means64, stds64, logits64, x64_[4:]),
                               rtol=1e-5)


def test_overflow_skips_zero_weight_component():
    means = np.array([[2e19, 0.0], [0.0, 0.0]], np.float32)
    target = DiagonalGaussianMixture(means, np.ones((2, 2), np.float32),
                                     np.array([-np.inf, 0.0], np.float32))
    x = np.array([[3e19, 1e19]], np.float32)
    np.testing.assert_allclose(np.asarray(target.score(x)), -x, rtol=1e-6)


@pytest.mark.parametrize("dim", [2, 20])
def test_overflow_parameter_gradients_finite(dim):
    offsets = np.arange(3, dtype=np.float32)[:, None]
    target = DiagonalGaussianMixture(np.zeros((3, dim), np.float32) + offsets * 1e19,
                                     np.ones((3, dim), np.float32))
    x = np.full((1, dim), 2.2e19, np.float32)
    grads = jax.grad(lambda t: jnp.sum(t.log_prob(x)))(target)
    for name in ("means", "diag_stds", "logits"):
        assert np.isfinite(np.asarray(getattr(grads, name))).all(), name
    np.testing.assert_array_equal(np.asarray(grads.diag_stds)[:2], 0.0)
    np.testing.assert_allclose(np.asarray(grads.means)[2], 2e18, rtol=1e-5)


def test_x64_fixture_restores_setting():
    assert jax.config.jax_enable_x64 is False
