"""Values and derivatives of the pure-function core against float64 NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit.targets.gaussian_mixture import functional as F
from tests._jax_compat import enable_x64
from tests._reference import (
    as_float32,
    assert_close,
    finite_difference_gradient,
    mixture_hessian,
    mixture_log_prob,
    mixture_score,
    points_near_modes,
    random_mixture,
)

# Shapes on both sides of the switch between the coordinate-wise formulation
# (dim <= F.MAX_UNROLLED_DIM) and the broadcast one.
SHAPES = [
    (1, 1),
    (3, 1),
    (4, 2),
    (7, F.MAX_UNROLLED_DIM),
    (7, F.MAX_UNROLLED_DIM + 1),
    (5, 64),
    (3, 300),
]


def pull_scale(means, diag_stds, x):
    """Return max_k max_d |mean_kd - x_d| / std_kd^2 per point: the size of the score's terms."""
    means, stds, x = (np.asarray(a, np.float64) for a in (means, diag_stds, x))
    pulls = np.abs(means - x[..., None, :]) / stds**2
    return pulls.max(axis=(-2, -1))


def assert_score_close(actual, means, diag_stds, logits, x, *, rtol):
    """Compare a score with the reference, relative to the size of the score's terms.

    The score sums responsibility-weighted pulls, so its rounding error scales
    with the largest pull rather than with the (possibly cancelled) result.
    """
    expected = mixture_score(means, diag_stds, logits, x)
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    bound = rtol * (np.abs(expected) + pull_scale(means, diag_stds, x)[..., None])
    error = np.abs(actual - expected)
    assert np.all(error <= bound), f"max error / bound = {np.max(error / bound)}"


def assert_log_prob_close(actual, means, diag_stds, logits, x, *, rtol):
    """Compare log_prob with the reference, relative to the magnitude of its largest term.

    The log-density is a sum of ``dim`` squared terms and a normalizer, so
    float32 rounding scales with ``dim`` and with the distance to the modes.
    """
    expected = mixture_log_prob(means, diag_stds, logits, x)
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    dim = np.asarray(means).shape[1]
    scale = np.abs(expected) + dim
    error = np.abs(actual - expected)
    assert np.all(error <= rtol * scale), f"max error / bound = {np.max(error / (rtol * scale))}"


def float32_problem(seed, k, d, n=64, **kwargs):
    rng = np.random.default_rng(seed)
    means, stds, logits = random_mixture(rng, k, d, **kwargs)
    x = points_near_modes(rng, means, stds, n)
    return as_float32(means, stds, logits, x)


# The tests call jitted functions: op-by-op dispatch compiles every
# primitive separately, which is much slower than one compilation.
log_prob = jax.jit(F.log_prob)
score = jax.jit(F.score)
log_prob_and_score = jax.jit(F.log_prob_and_score)


def total_log_prob(means, diag_stds, logits, x):
    return jnp.sum(F.log_prob(means, diag_stds, logits, x))


def to_jax(*arrays, dtype=jnp.float32):
    return tuple(jnp.asarray(np.asarray(a, dtype)) for a in arrays)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(("k", "d"), SHAPES)
def test_values_match_reference(k, d):
    means, stds, logits, x = float32_problem(10 * k + d, k, d)
    params = to_jax(means, stds, logits, x)

    value = log_prob(*params)
    assert value.dtype == jnp.float32
    assert_log_prob_close(value, means, stds, logits, x, rtol=1e-6)

    grad = score(*params)
    assert grad.dtype == jnp.float32
    assert_score_close(grad, means, stds, logits, x, rtol=4e-6)

    both = log_prob_and_score(*params)
    np.testing.assert_array_equal(both[1], grad)
    if d <= F.MAX_UNROLLED_DIM:
        # XLA fuses the combined computation differently, so the values may differ by 1 ulp.
        np.testing.assert_array_max_ulp(both[0], value, maxulp=1)
    else:
        # log_prob alone may come from the checked matrix products.
        np.testing.assert_allclose(both[0], value, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(("k", "d"), [(4, 3), (4, 40)])
def test_extreme_logits(k, d):
    rng = np.random.default_rng(7)
    means, stds, _ = random_mixture(rng, k, d)
    logits = np.array([80.0, -80.0, 0.0, -1e4][:k])
    x = points_near_modes(rng, means, stds, 50)
    means, stds, logits, x = as_float32(means, stds, logits, x)
    params = to_jax(means, stds, logits, x)
    assert_log_prob_close(log_prob(*params), means, stds, logits, x, rtol=1e-6)
    # Log-weights of size 80 carry float32 rounding of about 80 * 6e-8 into
    # the responsibilities, hence a looser bound than elsewhere.
    assert_score_close(score(*params), means, stds, logits, x, rtol=2e-5)


@pytest.mark.parametrize("d", [2, F.MAX_UNROLLED_DIM + 4])
def test_unequal_stds_across_decades(d):
    rng = np.random.default_rng(3)
    means = rng.normal(size=(3, d)) * 5
    stds = 10.0 ** rng.uniform(-2, 2, size=(3, d))
    logits = np.array([0.5, -0.5, 0.0])
    x = points_near_modes(rng, means, stds, 40)
    means, stds, logits, x = as_float32(means, stds, logits, x)
    params = to_jax(means, stds, logits, x)
    assert_log_prob_close(log_prob(*params), means, stds, logits, x, rtol=1e-6)
    assert_score_close(score(*params), means, stds, logits, x, rtol=4e-6)


@pytest.mark.parametrize("d", [2, F.MAX_UNROLLED_DIM + 1])
def test_points_far_from_every_mode_float32(d):
    rng = np.random.default_rng(11)
    means = rng.uniform(-40, 40, size=(40, d))
    stds = np.ones((40, d))
    logits = np.zeros(40)
    directions = rng.normal(size=(30, d))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    radii = 10.0 ** rng.uniform(2, 4, size=(30, 1))
    x = directions * radii
    x = np.concatenate([x, np.full((1, d), 1e4), np.full((1, d), -1e4)])
    means, stds, logits, x = as_float32(means, stds, logits, x)
    params = to_jax(means, stds, logits, x)
    value, grad = log_prob_and_score(*params)
    assert np.all(np.asarray(value) < -1e3)
    assert_log_prob_close(value, means, stds, logits, x, rtol=1e-6)
    assert_score_close(grad, means, stds, logits, x, rtol=4e-6)


def test_overflowing_distances_point_to_nearest_mode():
    # (x - mean)^2 overflows float32 for |x| = 1e20, so the log-density is -inf,
    # but the score must still be finite and pull toward the nearest mean.
    means = jnp.array([[0.0, 0.0], [5.0, 5.0]])
    stds = jnp.ones((2, 2))
    logits = jnp.zeros(2)
    x = jnp.array([[1e20, 1e20], [-1e20, 3.0]])
    value, grad = log_prob_and_score(means, stds, logits, x)
    assert np.all(np.isneginf(np.asarray(value)))
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], [5.0 - 1e20, 5.0 - 1e20], rtol=1e-6)
    np.testing.assert_allclose(grad[1], [1e20, -3.0], rtol=1e-6)


def test_single_point_and_batch_shapes():
    means, stds, logits, x = float32_problem(5, 3, 4, n=24)
    params = to_jax(means, stds, logits)
    for shape in [(4,), (24, 4), (2, 12, 4), (2, 3, 2, 4)]:
        points = x[0] if len(shape) == 1 else x[: int(np.prod(shape[:-1]))].reshape(shape)
        value, grad = log_prob_and_score(*params, jnp.asarray(points, jnp.float32))
        assert value.shape == shape[:-1]
        assert grad.shape == shape
        assert_log_prob_close(value, means, stds, logits, points, rtol=1e-6)
        assert_score_close(grad, means, stds, logits, points, rtol=4e-6)


def test_empty_batch():
    means, stds, logits, _ = float32_problem(5, 3, 4)
    value, grad = log_prob_and_score(*to_jax(means, stds, logits), jnp.zeros((0, 4)))
    assert value.shape == (0,)
    assert grad.shape == (0, 4)


@pytest.mark.parametrize(("k", "d"), [(3, 2), (3, 300)])
def test_chunked_rows_match_single_chunk(k, d):
    # More rows than one chunk, and not a multiple of the chunk size.
    rows = F.chunk_rows(k, d)
    n = 2 * rows + 3
    rng = np.random.default_rng(1)
    means, stds, logits = random_mixture(rng, k, d)
    x = points_near_modes(rng, means, stds, n)
    means, stds, logits, x = as_float32(means, stds, logits, x)
    params = to_jax(means, stds, logits)
    value, grad = log_prob_and_score(*params, jnp.asarray(x, jnp.float32))
    assert_log_prob_close(value, means, stds, logits, x, rtol=1e-6)
    assert_score_close(grad, means, stds, logits, x, rtol=4e-6)
    head_value, head_grad = log_prob_and_score(*params, jnp.asarray(x[:5], jnp.float32))
    np.testing.assert_allclose(value[:5], head_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad[:5], head_grad, rtol=1e-5, atol=1e-6)


def test_float64_matches_reference_tightly():
    with enable_x64():
        for k, d in [(4, 3), (3, 300)]:
            rng = np.random.default_rng(k + d)
            means, stds, logits = random_mixture(rng, k, d)
            x = points_near_modes(rng, means, stds, 20)
            params = to_jax(means, stds, logits, x, dtype=jnp.float64)
            value, grad = log_prob_and_score(*params)
            assert value.dtype == jnp.float64
            assert grad.dtype == jnp.float64
            assert_log_prob_close(value, means, stds, logits, x, rtol=1e-13)
            assert_score_close(grad, means, stds, logits, x, rtol=1e-12)


# ---------------------------------------------------- jit, vmap and grad


@pytest.mark.parametrize("d", [3, F.MAX_UNROLLED_DIM + 3])
def test_jit_matches_eager(d):
    means, stds, logits, x = float32_problem(2, 4, d)
    params = to_jax(means, stds, logits, x)
    with jax.disable_jit():
        eager_value, eager_grad = log_prob_and_score(*params)
    value, grad = jax.jit(F.log_prob_and_score)(*params)
    np.testing.assert_allclose(value, eager_value, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(grad, eager_grad, rtol=1e-5, atol=1e-5)
    assert_log_prob_close(eager_value, means, stds, logits, x, rtol=1e-6)
    assert_score_close(eager_grad, means, stds, logits, x, rtol=4e-6)


@pytest.mark.parametrize("d", [3, F.MAX_UNROLLED_DIM + 3])
def test_vmap_over_points_matches_batched_call(d):
    means, stds, logits, x = float32_problem(4, 4, d, n=30)
    params = to_jax(means, stds, logits)
    points = jnp.asarray(x.reshape(5, 6, d), jnp.float32)
    batched = log_prob(*params, points)
    mapped = jax.jit(jax.vmap(lambda p: F.log_prob(*params, p)))(points)
    np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-5)
    mapped_score = jax.jit(jax.vmap(jax.vmap(jax.grad(lambda p: F.log_prob(*params, p)))))(points)
    assert_score_close(mapped_score, means, stds, logits, x.reshape(5, 6, d), rtol=4e-6)


def test_vmap_over_parameters():
    rng = np.random.default_rng(9)
    stacked = [random_mixture(rng, 3, 2) for _ in range(4)]
    x = rng.normal(size=(6, 2)) * 3
    means = np.stack([p[0] for p in stacked])
    stds = np.stack([p[1] for p in stacked])
    logits = np.stack([p[2] for p in stacked])
    means, stds, logits, x = as_float32(means, stds, logits, x)
    values = jax.jit(jax.vmap(F.log_prob, in_axes=(0, 0, 0, None)))(*to_jax(means, stds, logits, x))
    assert values.shape == (4, 6)
    for i in range(4):
        assert_log_prob_close(values[i], means[i], stds[i], logits[i], x, rtol=1e-6)


def test_grad_of_log_prob_is_score():
    means, stds, logits, x = float32_problem(6, 3, 2, n=8)
    params = to_jax(means, stds, logits)
    grad = jax.jit(jax.vmap(jax.grad(lambda p: F.log_prob(*params, p))))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(grad, score(*params, jnp.asarray(x, jnp.float32)),
                               rtol=1e-6, atol=1e-6)
    forward = jax.jit(jax.vmap(jax.jacfwd(lambda p: F.log_prob(*params, p))))(
        jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(forward, grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("d", [3, F.MAX_UNROLLED_DIM + 4])
def test_parameter_gradients_match_finite_differences(d):
    rng = np.random.default_rng(21)
    means, stds, logits = random_mixture(rng, 3, d)
    x = points_near_modes(rng, means, stds, 5)

    def loss(m, s, lg):
        return np.sum(mixture_log_prob(m, s, lg, x))

    expected = (
        finite_difference_gradient(lambda m: loss(m, stds, logits), means),
        finite_difference_gradient(lambda s: loss(means, s, logits), stds),
        finite_difference_gradient(lambda lg: loss(means, stds, lg), logits),
    )
    with enable_x64():
        params = to_jax(means, stds, logits, x, dtype=jnp.float64)
        reverse = jax.jit(jax.grad(total_log_prob, argnums=(0, 1, 2)))(*params)
        forward = jax.jit(jax.jacfwd(total_log_prob, argnums=(0, 1, 2)))(*params)
    for name, rev, fwd, exp in zip(("means", "diag_stds", "logits"), reverse, forward, expected,
                                   strict=True):
        assert_close(rev, exp, rtol=1e-6, atol=1e-7, name=f"reverse d/d{name}")
        assert_close(fwd, exp, rtol=1e-6, atol=1e-7, name=f"forward d/d{name}")

    params32 = to_jax(means, stds, logits, x)
    grads32 = jax.jit(jax.grad(total_log_prob, argnums=(0, 1, 2)))(*params32)
    for name, grad, exp in zip(("means", "diag_stds", "logits"), grads32, expected, strict=True):
        assert grad.dtype == jnp.float32
        scale = np.max(np.abs(exp))
        assert_close(grad, exp, rtol=1e-4, atol=1e-4 * scale, name=f"float32 d/d{name}")


@pytest.mark.parametrize("d", [2, F.MAX_UNROLLED_DIM + 2])
def test_hessian_in_x(d):
    means, stds, logits, x = float32_problem(8, 3, d, n=3)
    params = to_jax(means, stds, logits)
    hessians = jax.jit(jax.vmap(jax.hessian(lambda p: F.log_prob(*params, p))))(
        jnp.asarray(x, jnp.float32))
    for point, hessian in zip(x, hessians, strict=True):
        expected = mixture_hessian(means, stds, logits, point)
        scale = np.max(np.abs(expected)) + np.max(pull_scale(means, stds, point)) ** 2
        assert_close(hessian, expected, rtol=1e-4, atol=1e-4 * scale, name="hessian")


def test_hessian_float64_tight():
    rng = np.random.default_rng(4)
    means, stds, logits = random_mixture(rng, 3, 3)
    point = points_near_modes(rng, means, stds, 1)[0]
    with enable_x64():
        params = to_jax(means, stds, logits, point, dtype=jnp.float64)
        hessian = jax.hessian(lambda p: F.log_prob(*params[:3], p))(params[3])
        assert hessian.dtype == jnp.float64
    assert_close(hessian, mixture_hessian(means, stds, logits, point), rtol=1e-10, atol=1e-12,
                 name="hessian")


def test_divergence_of_score_is_hessian_trace():
    means, stds, logits, x = float32_problem(12, 4, 3, n=4)
    params = to_jax(means, stds, logits)
    jacobians = jax.jit(jax.vmap(jax.jacfwd(lambda p: F.score(*params, p))))(
        jnp.asarray(x, jnp.float32))
    for point, jac in zip(x, jacobians, strict=True):
        expected = np.trace(mixture_hessian(means, stds, logits, point))
        scale = abs(expected) + np.max(pull_scale(means, stds, point)) ** 2
        assert abs(float(jnp.trace(jac)) - expected) <= 1e-4 * scale


# ------------------------------------------------- zero-weight components


@pytest.mark.parametrize("dead", [0, 2])
@pytest.mark.parametrize("d", [1, F.MAX_UNROLLED_DIM + 1])
def test_neg_inf_logit_finite_everywhere(dead, d):
    rng = np.random.default_rng(5)
    means, stds, _ = random_mixture(rng, 3, d)
    logits = np.zeros(3)
    logits[dead] = -np.inf
    x = np.concatenate([points_near_modes(rng, means, stds, 6), means[dead][None]])
    means, stds, logits, x = as_float32(means, stds, logits, x)
    params = to_jax(means, stds, logits, x)

    value, grad = log_prob_and_score(*params)
    assert_log_prob_close(value, means, stds, logits, x, rtol=1e-6)
    assert_score_close(grad, means, stds, logits, x, rtol=4e-6)

    grads = jax.jit(jax.grad(total_log_prob, argnums=(0, 1, 2)))(*params)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    # A component of weight zero has no influence on the density.
    assert np.all(np.asarray(grads[0])[dead] == 0.0)
    assert np.all(np.asarray(grads[1])[dead] == 0.0)
    assert float(grads[2][dead]) == 0.0

    live = [i for i in range(3) if i != dead]
    expected_logits = finite_difference_gradient(
        lambda lg: np.sum(mixture_log_prob(means[live], stds[live], lg, x)), logits[live])
    assert_close(np.asarray(grads[2])[live], expected_logits, rtol=1e-4, atol=1e-4,
                 name="d/dlogits")

    hessian = jax.jit(jax.hessian(lambda p: F.log_prob(*params[:3], p)))(params[3][0])
    assert np.all(np.isfinite(np.asarray(hessian)))
