"""Weights in extended precision where float32 log joints are too coarse (no timings).

At points shared by two components far from both in units of the stds, and
at most points between components in high dimensions, the log joints are
thousands in magnitude. Their float32 rounding then moves the
responsibilities and the score beyond the accuracy target. These tests
check the error-free building blocks against exact arithmetic and the
score, responsibilities and parameter gradients at such points against a
float64 reference.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from boltzkit.targets.gaussian_mixture import functional
from tests._jax_compat import enable_x64
from tests._reference import mixture_log_prob, mixture_score


def _f32(*arrays):
    return tuple(jnp.asarray(np.asarray(a, np.float32)) for a in arrays)


def _as_f64(*arrays):
    """Round to float32 and return as float64, so the reference gets the exact float32 inputs."""
    return tuple(np.asarray(a, np.float32).astype(np.float64) for a in arrays)


def _reference_responsibilities(means, stds, logits, x):
    log_weights = logits - logsumexp(logits)
    z = (x[:, None, :] - means[None]) / stds[None]
    joints = log_weights - np.sum(np.log(stds), axis=-1) - 0.5 * np.sum(z * z, axis=-1)
    return softmax(joints, axis=-1)


def _normalized_score_error(scores, expected):
    """Return the worst per-row max-norm error in units of max(1e-4, 1e-5 max|expected|)."""
    error = np.max(np.abs(np.asarray(scores, np.float64) - expected), axis=-1)
    return float(np.max(error / np.maximum(1e-4, 1e-5 * np.max(np.abs(expected), axis=-1))))


def _shared_box_points(n_components, dim, n_points, seed):
    """Return a random mixture and box points that the top two components share.

    The mixture is the benchmark's kind (means ~ N(0, 1), stds in [0.5, 1.5]).
    Points are uniform over the box of the means, padded as in the
    benchmark, and kept where the second responsibility exceeds 1e-3.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_components, dim))
    stds = rng.uniform(0.5, 1.5, size=(n_components, dim))
    logits = rng.normal(size=n_components)
    low, high = means.min(axis=0), means.max(axis=0)
    pad = 0.25 * (high - low) + 3.0 * stds.max()
    x = rng.uniform(low - pad, high + pad, size=(40 * n_points, dim))
    means, stds, logits, x = _as_f64(means, stds, logits, x)
    second = np.sort(_reference_responsibilities(means, stds, logits, x), axis=-1)[:, -2]
    shared = x[second > 1e-3][:n_points]
    assert shared.shape[0] >= n_points // 2
    return means, stds, logits, shared


def _far_pair():
    """Two components and points about 400 stds away that the two share.

    On the line x_1 = 300 the log joints are quadratics in x_0, about -1e5
    near the shared points. The points lie where the difference of the two
    log joints runs from -2 to 2.
    """
    means = np.array([[0.3, -0.2], [9.7, 1.1]])
    stds = np.array([[0.9, 1.1], [1.2, 0.8]])
    logits = np.array([0.1, -0.3])
    means, stds, logits = _as_f64(means, stds, logits)

    def joint_gap(x0):
        point = np.array([[x0, 300.0]])
        z = (point[:, None, :] - means[None]) / stds[None]
        joints = logits - np.sum(np.log(stds), axis=-1) - 0.5 * np.sum(z * z, axis=-1)
        return float(joints[0, 0] - joints[0, 1])

    # The gap is a quadratic in x_0. Its root of smaller magnitude is near x_0 = 336.
    coefficients = np.polyfit([-400.0, 0.0, 400.0], [joint_gap(v) for v in (-400.0, 0.0, 400.0)], 2)
    root = min(np.roots(coefficients).real, key=abs)
    slope = abs(np.polyval(np.polyder(coefficients), root))
    x0 = root + np.linspace(-2.0, 2.0, 9) / slope
    x = np.stack([x0, np.full(9, 300.0)], axis=-1)
    return means, stds, logits, _as_f64(x)[0]


# ------------------------------------------------------------ building blocks


def test_split_halves_multiply_exactly():
    rng = np.random.default_rng(0)
    a = (rng.normal(size=4096) * 10.0 ** rng.integers(-6, 7, size=4096)).astype(np.float32)
    high, low = (np.asarray(v) for v in jax.jit(functional._split)(jnp.asarray(a)))
    np.testing.assert_array_equal(high.astype(np.float64) + low.astype(np.float64), a)
    # Products of halves have at most 24 significant bits, so float32 represents them exactly.
    for left, right in ((high, high), (high, low), (low, low)):
        exact = left.astype(np.float64) * right.astype(np.float64)
        np.testing.assert_array_equal((left * right).astype(np.float64), exact)


def test_two_sum_is_error_free():
    rng = np.random.default_rng(1)
    a = (rng.normal(size=4096) * 1e4).astype(np.float32)
    b = rng.normal(size=4096).astype(np.float32)
    s, e = (np.asarray(v, np.float64) for v in jax.jit(functional._two_sum)(a, b))
    np.testing.assert_array_equal(s + e, a.astype(np.float64) + b.astype(np.float64))


@pytest.mark.parametrize("n_columns", [1, 2, 16, 17, 40])
def test_row_max_matches_numpy(n_columns):
    rng = np.random.default_rng(n_columns)
    values = rng.normal(size=(64, n_columns)).astype(np.float32)
    values[3, -1] = np.inf
    values[5, 0] = -np.inf
    values[7, n_columns // 2] = np.nan
    result = np.asarray(jax.jit(functional._row_max)(jnp.asarray(values)))
    np.testing.assert_array_equal(result, np.max(values, axis=-1))


def test_largest_components_match_sorting():
    rng = np.random.default_rng(2)
    # Distinct values far apart, so the tagged low mantissa bits cannot reorder them.
    a = np.stack([rng.permutation(10) for _ in range(128)]).astype(np.float32) * 3.0 - 20.0
    a[0, :7] = -np.inf
    found = np.asarray(jax.jit(functional._largest_components, static_argnums=1)(jnp.asarray(a), 4))
    expected = np.argsort(-a[1:], axis=-1, kind="stable")[:, :4]
    np.testing.assert_array_equal(found[1:], expected)
    # A row with three finite entries gets those three first.
    np.testing.assert_array_equal(np.sort(found[0, :3]), [7, 8, 9])
    assert a[0, found[0, 0]] == np.max(a[0])


@pytest.mark.parametrize("dim", [2, 7, 16, 100, 512])
def test_compensated_distances_float32(dim):
    # Plain float32 is off by about 1e-7 relative. The pair is good to about 1e-11.
    rng = np.random.default_rng(dim)
    means, stds = _as_f64(rng.normal(size=(5, dim)), rng.uniform(0.5, 1.5, size=(5, dim)))
    x = _as_f64(rng.uniform(-9.0, 9.0, size=(64, dim)))[0]
    parts = tuple(part[None] for part in functional._std_parts(jnp.asarray(stds, jnp.float32)))

    @jax.jit
    def distances(points):
        return functional._compensated_squared_distances(
            points[:, None, :], jnp.asarray(means, jnp.float32)[None], parts
        )

    high, low = (np.asarray(v, np.float64) for v in distances(jnp.asarray(x, jnp.float32)))
    expected = np.sum(((x[:, None, :] - means[None]) / stds[None]) ** 2, axis=-1)
    np.testing.assert_allclose(high + low, expected, rtol=1e-10, atol=0)
    plain = np.asarray(jnp.sum(((x[:, None, :] - means[None]) / stds[None]) ** 2, axis=-1)
                       .astype(jnp.float32), np.float64)
    assert np.max(np.abs(plain - expected) / expected) > 1e-9


@pytest.mark.parametrize("n_terms", [3, 16, 17, 100, 513])
def test_compensated_sum_float64_exact(n_terms):
    # Both the pairwise tree (at most 16 terms) and the grid extraction.
    rng = np.random.default_rng(n_terms)
    with enable_x64():
        high = rng.normal(size=(4, n_terms)) * 10.0 ** rng.integers(-3, 4, size=(4, n_terms))
        low = high * 1e-17 * rng.normal(size=high.shape)
        s, e = jax.jit(functional._compensated_sum)(jnp.asarray(high), jnp.asarray(low))
        for row in range(4):
            exact = sum(Fraction(float(v)) for v in high[row]) + sum(
                Fraction(float(v)) for v in low[row]
            )
            error = abs(Fraction(float(s[row])) + Fraction(float(e[row])) - exact)
            magnitude = sum(abs(Fraction(float(v))) for v in high[row])
            assert error <= Fraction(1, 10**26) * magnitude, (row, float(error / magnitude))


def test_log_norms_sum_exactly():
    # Only the rounding of each float32 logarithm remains.
    rng = np.random.default_rng(5)
    stds, logits = _as_f64(rng.uniform(0.5, 1.5, size=(6, 512)), rng.normal(size=6))
    high, low = functional._compensated_log_norms(*_f32(stds, logits))
    log_stds = np.asarray(jnp.log(jnp.asarray(stds, jnp.float32)), np.float64)
    exact = [
        Fraction(float(logits[k])) - sum(Fraction(float(v)) for v in log_stds[k]) for k in range(6)
    ]
    got = [Fraction(float(h)) + Fraction(float(lo)) for h, lo in zip(high, low, strict=True)]
    for k in range(6):
        assert abs(got[k] - exact[k]) <= Fraction(1, 10**9), k


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("method", ["auto", "direct"])
def test_score_far_shared_points_2d(method):
    means, stds, logits, x = _far_pair()
    expected = mixture_score(means, stds, logits, x)
    _, scores = functional.log_prob_and_score(*_f32(means, stds, logits, x), method=method)
    assert _normalized_score_error(scores, expected) <= 1.0


@pytest.mark.parametrize(("n_components", "dim"), [(10, 100), (40, 32), (128, 512)])
@pytest.mark.parametrize("method", ["auto", "direct"])
def test_score_shared_points_high_dim(n_components, dim, method):
    means, stds, logits, x = _shared_box_points(n_components, dim, 32, seed=dim)
    expected = mixture_score(means, stds, logits, x)
    args = _f32(means, stds, logits, x)
    _, scores = functional.log_prob_and_score(*args, method=method)
    assert _normalized_score_error(scores, expected) <= 1.0
    assert _normalized_score_error(functional.score(*args, method=method), expected) <= 1.0


def test_responsibilities_shared_points():
    means, stds, logits, x = _shared_box_points(10, 100, 32, seed=3)
    expected = _reference_responsibilities(means, stds, logits, x)
    r = functional.responsibilities(*_f32(means, stds, logits, x))
    np.testing.assert_allclose(np.asarray(r, np.float64), expected, rtol=0, atol=1e-5)


def test_mean_gradient_shared_points():
    # d/d mean_k of log p(x) = r_k(x) (x - mean_k) / std_k^2, point by point.
    means, stds, logits, x = _shared_box_points(10, 100, 32, seed=4)
    r = _reference_responsibilities(means, stds, logits, x)
    expected = r[:, :, None] * (x[:, None, :] - means[None]) / stds[None] ** 2
    args = _f32(means, stds, logits, x)

    def mean_gradient(point):
        return jax.grad(lambda m: functional.log_prob(m, *args[1:3], point))(args[0])

    grads = np.asarray(jax.jit(jax.vmap(mean_gradient))(args[3]), np.float64)
    error = np.max(np.abs(grads - expected), axis=(1, 2))
    scale = np.maximum(1e-4, 1e-5 * np.max(np.abs(expected), axis=(1, 2)))
    assert np.max(error / scale) <= 1.0


@pytest.mark.parametrize("method", ["auto", "direct", "matmul"])
def test_joints_near_1e9_stay_finite(method):
    # Log joints near -1e9, where a unit in the last place is 64: the anchor
    # may lie thousands below the largest log joint, and exp of the
    # difference would overflow.
    rng = np.random.default_rng(40)
    means, stds = rng.uniform(-40.0, 40.0, size=(40, 2)), np.ones((40, 2))
    logits, x = np.zeros(40), np.array([[-14672.3896484375, 40661.75], [-10953.228515625, 31351.515625]])
    args = _f32(means, stds, logits, x)
    values, scores = functional.log_prob_and_score(*args, method=method)
    assert np.isfinite(np.asarray(values)).all()
    assert np.isfinite(np.asarray(scores)).all()
    reference = _as_f64(means, stds, logits, x)
    expected_values = mixture_log_prob(*reference)
    np.testing.assert_allclose(np.asarray(values, np.float64), expected_values, rtol=1e-5)
    assert _normalized_score_error(scores, mixture_score(*reference)) <= 1.0


def test_float64_score_far_shared_points():
    # At 1e7 stds the float64 log joints are about 5e13 and their rounding
    # would move the score by about 1e-3. The reference uses 60 digits.
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[5.0 + offset, 1e7] for offset in (-1e-9, 0.0, 3e-10)])
    with localcontext() as context:
        context.prec = 60
        expected = []
        for row in x:
            joints = [
                -sum((Decimal(float(row[d])) - Decimal(float(means[k, d]))) ** 2 for d in range(2)) / 2
                for k in range(2)
            ]
            top = max(joints)
            weights = [(j - top).exp() for j in joints]
            total = sum(weights)
            expected.append([
                float(sum(w / total * (Decimal(float(means[k, d])) - Decimal(float(row[d])))
                          for k, w in enumerate(weights)))
                for d in range(2)
            ])
    with enable_x64():
        for method in ("auto", "direct"):
            scores = functional.score(means, np.ones((2, 2)), np.zeros(2), x, method=method)
            assert scores.dtype == jnp.float64
            np.testing.assert_allclose(scores, expected, rtol=1e-13, atol=1e-12)


# ------------------------------------------------------------------ the flag


def test_near_rows_not_refined():
    rng = np.random.default_rng(6)
    means, stds, logits = _as_f64(
        rng.normal(size=(10, 100)), rng.uniform(0.5, 1.5, size=(10, 100)), rng.normal(size=10)
    )
    picks = rng.integers(0, 10, size=256)
    x = _as_f64(means[picks] + stds[picks] * rng.normal(size=(256, 100)))[0]
    args = _f32(means, stds, logits, x)
    log_probs, pull, _, share, _ = functional._direct_chunk(*args, True, False)
    flagged = functional._imprecise_weights(*args, log_probs, share, pull)
    assert not np.any(np.asarray(flagged))

    means, stds, logits, shared = _shared_box_points(10, 100, 32, seed=7)
    args = _f32(means, stds, logits, shared)
    log_probs, pull, _, share, _ = functional._direct_chunk(*args, True, False)
    assert np.any(np.asarray(functional._imprecise_weights(*args, log_probs, share, pull)))


def test_zero_weight_stays_zero():
    # A logit of -inf gives NaN differences in extended precision, and the weight stays 0.
    means, stds, logits, x = _far_pair()
    means = np.concatenate([means, [[x[4, 0], 300.0]]])
    stds = np.concatenate([stds, [[1.0, 1.0]]])
    logits = np.array([0.0, 0.0, -np.inf])
    expected = mixture_score(means[:2], stds[:2], logits[:2], x)
    r = functional.responsibilities(*_f32(means, stds, logits, x))
    assert np.all(np.asarray(r)[:, 2] == 0.0)
    _, scores = functional.log_prob_and_score(*_f32(means, stds, logits, x))
    assert _normalized_score_error(scores, expected) <= 1.0


def test_refinement_under_vmap_jit():
    means, stds, logits, x = _far_pair()
    args = _f32(means, stds, logits, x)
    expected = mixture_score(means, stds, logits, x)
    batched = jax.jit(jax.vmap(lambda p: functional.score(*args[:3], p)))(args[3])
    assert _normalized_score_error(batched, expected) <= 1.0
