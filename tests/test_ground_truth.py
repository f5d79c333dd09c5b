"""Exact moments, marginals, responsibilities and rescaling of diagonal mixtures.

Every closed form is compared with an independent float64 NumPy reference
written here and with a Monte Carlo estimate from exact samples at a fixed
seed. A Monte Carlo check passes when the estimate lies within 5 standard
errors of the exact value, with the standard error estimated from the same
samples. Under the normal approximation, a correct closed form fails such a
check with probability about 6e-7 per checked number.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.special import logsumexp, softmax

from boltzkit.targets import DiagonalGaussianMixture
from tests._jax_compat import enable_x64
from tests._reference import assert_close, mixture_log_prob

# The ground-truth check of fab-torch's GMM experiment:
# f(x) = (x + s)^T A (x + s) + b^T (x + s).
FAB_S = np.array([3.0819921, -0.5868578])
FAB_A = np.array([[0.61484563, 1.2681574], [0.9801868, 1.7928895]])
FAB_B = np.array([0.45562798, 0.6323063])

MC_SAMPLES = 400_000
MC_SEED = 20240
MC_STANDARD_ERRORS = 5.0


def random_mixture(seed=0, n_components=4, dim=3):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_components, dim)) * 3.0
    stds = rng.uniform(0.3, 1.5, size=(n_components, dim))
    logits = rng.normal(size=n_components)
    return means, stds, logits


def stored_parameters(target):
    return (
        np.asarray(target.means, np.float64),
        np.asarray(target.diag_stds, np.float64),
        np.asarray(target.logits, np.float64),
    )


# --------------------------------------------- float64 references, per component


def reference_weights(logits):
    return np.exp(logits - logsumexp(logits))


def reference_mean(means, stds, logits):
    weights = reference_weights(logits)
    return sum(w * m for w, m in zip(weights, means, strict=True))


def reference_second_moment(means, stds, logits):
    weights = reference_weights(logits)
    total = np.zeros((means.shape[1], means.shape[1]))
    for w, m, s in zip(weights, means, stds, strict=True):
        total += w * (np.diag(s**2) + np.outer(m, m))
    return total


def reference_covariance(means, stds, logits):
    m = reference_mean(means, stds, logits)
    return reference_second_moment(means, stds, logits) - np.outer(m, m)


def reference_quadratic(means, stds, logits, A, b, s):
    # E[(x+s)^T A (x+s)] = tr(A E[(x+s)(x+s)^T]) and E[b^T (x+s)] = b^T (E[x] + s).
    m = reference_mean(means, stds, logits)
    second = reference_second_moment(means, stds, logits)
    shifted_second = second + np.outer(m, s) + np.outer(s, m) + np.outer(s, s)
    return float(np.trace(A @ shifted_second) + b @ (m + s))


def assert_within_standard_errors(estimate, standard_error, exact, name):
    estimate = np.asarray(estimate, np.float64)
    standard_error = np.asarray(standard_error, np.float64)
    exact = np.asarray(exact, np.float64)
    deviation = np.abs(estimate - exact) / standard_error
    assert np.all(deviation < MC_STANDARD_ERRORS), (
        f"{name}: Monte Carlo deviates by {deviation.max():.2f} standard errors "
        f"(estimate {estimate}, exact {exact})"
    )


@pytest.fixture(scope="module")
def mixture_and_samples():
    means, stds, logits = random_mixture(seed=1)
    target = DiagonalGaussianMixture(means, stds, logits)
    samples = np.asarray(target.sample(MC_SAMPLES, seed=MC_SEED), np.float64)
    return target, samples


@pytest.fixture(scope="module")
def fab_torch_samples():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    return target, np.asarray(target.sample(MC_SAMPLES, seed=MC_SEED), np.float64)


# ----------------------------------------------------------------- moments


def test_mean_matches_reference():
    means, stds, logits = random_mixture(seed=2)
    target = DiagonalGaussianMixture(means, stds, logits)
    value = target.mean()
    assert isinstance(value, np.ndarray)
    assert value.dtype == np.float64
    assert_close(value, reference_mean(*stored_parameters(target)), rtol=1e-13, atol=1e-13)


def test_second_moment_matches_reference():
    target = DiagonalGaussianMixture(*random_mixture(seed=3))
    expected = reference_second_moment(*stored_parameters(target))
    assert_close(target.second_moment(), expected, rtol=1e-13, atol=1e-13)


def test_covariance_matches_reference():
    target = DiagonalGaussianMixture(*random_mixture(seed=4))
    value = target.covariance()
    expected = reference_covariance(*stored_parameters(target))
    assert_close(value, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(value, value.T)
    assert np.all(np.linalg.eigvalsh(value) > 0)


def test_covariance_of_far_modes_keeps_precision():
    # Means near 1e6 and stds near 1: E[x x^T] - m m^T would lose every digit.
    means = np.array([[1e6 - 1.0], [1e6 + 1.0]])
    with enable_x64():
        target = DiagonalGaussianMixture.create_isotropic(means, std=0.5)
        value = target.covariance()
    assert_close(value, np.array([[1.25]]), rtol=1e-14, atol=0.0)


def test_moments_ignore_zero_weight_component():
    means = np.array([[0.0, 0.0], [100.0, 100.0], [2.0, -2.0]])
    stds = np.ones((3, 2))
    with_dead = DiagonalGaussianMixture(means, stds, np.array([0.0, -np.inf, 0.0]))
    without = DiagonalGaussianMixture(means[[0, 2]], stds[[0, 2]], np.zeros(2))
    assert_close(with_dead.mean(), without.mean(), rtol=0.0, atol=1e-15)
    assert_close(with_dead.covariance(), without.covariance(), rtol=0.0, atol=1e-14)
    assert_close(
        with_dead.quadratic_expectation(FAB_A, FAB_B, FAB_S),
        without.quadratic_expectation(FAB_A, FAB_B, FAB_S),
        rtol=1e-15,
        atol=0.0,
    )


def test_quadratic_matches_reference():
    target = DiagonalGaussianMixture(*random_mixture(seed=5))
    rng = np.random.default_rng(6)
    A = rng.normal(size=(3, 3))
    b = rng.normal(size=3)
    s = rng.normal(size=3)
    value = target.quadratic_expectation(A, b, s)
    assert isinstance(value, float)
    expected = reference_quadratic(*stored_parameters(target), A, b, s)
    assert_close(value, expected, rtol=1e-12, atol=1e-12)


def test_quadratic_defaults_are_zero():
    target = DiagonalGaussianMixture(*random_mixture(seed=7))
    A = np.eye(3)
    expected = np.trace(reference_second_moment(*stored_parameters(target)))
    assert_close(target.quadratic_expectation(A), expected, rtol=1e-13, atol=0.0)
    only_b = target.quadratic_expectation(np.zeros((3, 3)), b=np.ones(3))
    assert_close(only_b, reference_mean(*stored_parameters(target)).sum(), rtol=1e-13, atol=1e-13)


def test_fab_torch_quadratic_published_values():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    value = target.quadratic_expectation(FAB_A, FAB_B, FAB_S)
    assert abs(value - 1777.886) < 5e-4
    expected = reference_quadratic(*stored_parameters(target), FAB_A, FAB_B, FAB_S)
    assert_close(value, expected, rtol=1e-13, atol=0.0)

    craft_std = DiagonalGaussianMixture.create_gmm40(variant="fab-torch", scale=0.7443967)
    assert abs(craft_std.quadratic_expectation(FAB_A, FAB_B, FAB_S) - 1775.068) < 5e-4
    craft = DiagonalGaussianMixture.create_gmm40(variant="craft")
    assert abs(craft.quadratic_expectation(FAB_A, FAB_B, FAB_S) - 1775.068) < 5e-4


def test_fab_torch_quadratic_float64_under_x64():
    with enable_x64():
        target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
        value = target.quadratic_expectation(FAB_A, FAB_B, FAB_S)
    assert abs(value - 1777.886) < 5e-4


def test_moments_traced_under_jit():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")

    @jax.jit
    def moments(t):
        return t.mean(), t.covariance(), t.second_moment(), t.quadratic_expectation(FAB_A, FAB_B, FAB_S)

    mean, covariance, second, quadratic = moments(target)
    assert isinstance(mean, jax.Array)
    assert mean.dtype == jnp.float32
    assert_close(mean, target.mean(), rtol=1e-5, atol=1e-5)
    assert_close(covariance, target.covariance(), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(covariance), np.asarray(covariance).T)
    assert_close(second, target.second_moment(), rtol=1e-5, atol=1e-3)
    assert_close(quadratic, target.quadratic_expectation(FAB_A, FAB_B, FAB_S), rtol=1e-5, atol=0.0)


def test_quadratic_gradient_with_respect_to_means():
    means, stds, logits = random_mixture(seed=8)
    rng = np.random.default_rng(9)
    A, b, s = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3)
    target = DiagonalGaussianMixture(means, stds, logits)
    gradient = jax.grad(lambda t: t.quadratic_expectation(A, b, s))(target)
    # d/d mu_k of w_k ((mu_k + s)^T A (mu_k + s) + b^T (mu_k + s)) = w_k ((A + A^T)(mu_k + s) + b).
    m64, s64, l64 = stored_parameters(target)
    weights = reference_weights(l64)
    expected = weights[:, None] * ((m64 + s) @ (A + A.T).T + b)
    assert_close(gradient.means, expected, rtol=1e-4, atol=1e-4)
    # d/d sigma_kd of w_k A_dd sigma_kd^2 = 2 w_k A_dd sigma_kd.
    assert_close(gradient.diag_stds, 2 * weights[:, None] * np.diag(A) * s64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"A": np.eye(2)}, ValueError, r"A must have shape \(3, 3\) .* got shape \(2, 2\)"),
        ({"A": np.eye(3), "b": np.ones(2)}, ValueError, r"b must have shape \(3,\)"),
        ({"A": np.eye(3), "s": np.ones((3, 1))}, ValueError, r"s must have shape \(3,\)"),
        ({"A": np.full((3, 3), np.nan)}, ValueError, "A must be finite"),
        ({"A": np.eye(3), "b": [1.0, np.inf, 0.0]}, ValueError, "b must be finite"),
        ({"A": np.eye(3, dtype=bool)}, TypeError, "A must be an array of real numbers, got dtype bool"),
        ({"A": "eye"}, TypeError, "A must be an array of real numbers"),
    ],
)
def test_quadratic_bad_input(arguments, error, message):
    target = DiagonalGaussianMixture(*random_mixture(seed=10))
    with pytest.raises(error, match=message):
        target.quadratic_expectation(**arguments)


# ----------------------------------------------------------- Monte Carlo


def test_mean_and_covariance_monte_carlo(mixture_and_samples):
    target, x = mixture_and_samples
    n = x.shape[0]
    assert_within_standard_errors(
        x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(n), target.mean(), "mean"
    )
    centered = x - target.mean()
    products = centered[:, :, None] * centered[:, None, :]
    assert_within_standard_errors(
        products.mean(axis=0),
        products.std(axis=0, ddof=1) / math.sqrt(n),
        target.covariance(),
        "covariance",
    )
    raw = x[:, :, None] * x[:, None, :]
    assert_within_standard_errors(
        raw.mean(axis=0), raw.std(axis=0, ddof=1) / math.sqrt(n), target.second_moment(), "E[x x^T]"
    )


def test_quadratic_monte_carlo(mixture_and_samples):
    target, x = mixture_and_samples
    rng = np.random.default_rng(11)
    A, b, s = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3)
    y = x + s
    values = np.einsum("nd,de,ne->n", y, A, y) + y @ b
    assert_within_standard_errors(
        values.mean(),
        values.std(ddof=1) / math.sqrt(values.size),
        target.quadratic_expectation(A, b, s),
        "quadratic expectation",
    )


def test_fab_torch_quadratic_monte_carlo(fab_torch_samples):
    target, x = fab_torch_samples
    y = x + FAB_S
    values = np.einsum("nd,de,ne->n", y, FAB_A, y) + y @ FAB_B
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    assert standard_error < 5.0
    exact = target.quadratic_expectation(FAB_A, FAB_B, FAB_S)
    assert_within_standard_errors(values.mean(), standard_error, exact, "fab-torch f(x)")


def test_responsibilities_average_to_weights(mixture_and_samples):
    # E_x[p(k | x)] = w_k for x drawn from the mixture.
    target, x = mixture_and_samples
    r = np.asarray(target.responsibilities(x), np.float64)
    assert r.shape == (x.shape[0], target.n_components)
    assert_within_standard_errors(
        r.mean(axis=0),
        r.std(axis=0, ddof=1) / math.sqrt(x.shape[0]),
        reference_weights(stored_parameters(target)[2]),
        "mean responsibilities",
    )


def test_marginal_monte_carlo(mixture_and_samples):
    target, x = mixture_and_samples
    marginal = target.marginal([2, 0])
    selected = x[:, [2, 0]]
    n = x.shape[0]
    assert_within_standard_errors(
        selected.mean(axis=0), selected.std(axis=0, ddof=1) / math.sqrt(n), marginal.mean(), "mean"
    )
    centered = selected - marginal.mean()
    products = centered[:, :, None] * centered[:, None, :]
    assert_within_standard_errors(
        products.mean(axis=0),
        products.std(axis=0, ddof=1) / math.sqrt(n),
        marginal.covariance(),
        "marginal covariance",
    )


# ------------------------------------------------------------ responsibilities


def reference_responsibilities(means, stds, logits, x):
    z = (x[..., None, :] - means) / stds
    joint = -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(stds), axis=-1) + logits - logsumexp(logits)
    return softmax(joint, axis=-1)


def test_responsibilities_match_reference():
    means, stds, logits = random_mixture(seed=12)
    target = DiagonalGaussianMixture(means, stds, logits)
    x = np.random.default_rng(13).normal(size=(5, 7, 3)) * 3.0
    r = target.responsibilities(x)
    assert r.shape == (5, 7, 4)
    assert r.dtype == jnp.float32
    expected = reference_responsibilities(*stored_parameters(target), x)
    assert_close(r, expected, rtol=1e-5, atol=1e-6)
    assert_close(np.asarray(r).sum(axis=-1), np.ones((5, 7)), rtol=0.0, atol=1e-6)


def test_responsibilities_float64():
    means, stds, logits = random_mixture(seed=14)
    x = np.random.default_rng(15).normal(size=(11, 3)) * 3.0
    with enable_x64():
        target = DiagonalGaussianMixture(means, stds, logits)
        r = np.asarray(target.responsibilities(x))
    assert r.dtype == np.float64
    assert_close(r, reference_responsibilities(means, stds, logits, x), rtol=1e-12, atol=1e-14)


def test_responsibilities_across_chunks():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    x = np.asarray(target.sample(8192 * 2 + 5, seed=3))
    r = target.responsibilities(x)
    expected = reference_responsibilities(*stored_parameters(target), x.astype(np.float64))
    assert_close(r, expected, rtol=1e-4, atol=1e-5)


def test_responsibilities_far_point_picks_nearest():
    # Every squared distance overflows float32 at these points, so the nearest mean decides.
    target = DiagonalGaussianMixture.create_isotropic([[-1e19, 0.0], [1e19, 0.0]], std=1.0)
    r = np.asarray(target.responsibilities([[1e20, 0.0], [-1e20, 0.0], [3e18, 1e20]]))
    assert np.all(np.isfinite(r))
    np.testing.assert_array_equal(r, [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def test_responsibilities_zero_weight_component():
    target = DiagonalGaussianMixture([[0.0], [1.0]], [[1.0], [1.0]], [0.0, -np.inf])
    np.testing.assert_array_equal(np.asarray(target.responsibilities([[1.0], [3.0]]))[:, 1], [0.0, 0.0])


def test_responsibilities_under_jit():
    target = DiagonalGaussianMixture(*random_mixture(seed=16))
    x = np.random.default_rng(17).normal(size=(9, 3))
    jitted = jax.jit(lambda t, points: t.responsibilities(points))(target, x)
    eager = np.asarray(target.responsibilities(x))
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-6, atol=1e-7)


def test_responsibilities_bad_shape():
    target = DiagonalGaussianMixture(*random_mixture(seed=18))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        target.responsibilities(np.zeros((4, 2)))


# ------------------------------------------------------------------ marginal


def test_marginal_parameters_and_order():
    means, stds, logits = random_mixture(seed=19, dim=4)
    target = DiagonalGaussianMixture(means, stds, logits)
    marginal = target.marginal([3, -4])
    assert isinstance(marginal, DiagonalGaussianMixture)
    m64, s64, l64 = stored_parameters(target)
    np.testing.assert_array_equal(np.asarray(marginal.means), m64[:, [3, 0]].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(marginal.diag_stds), s64[:, [3, 0]].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(marginal.logits), l64.astype(np.float32))
    assert target.marginal(1).dim == 1


def test_marginal_density_integrates_out_coordinate():
    means, stds, logits = random_mixture(seed=20, n_components=3, dim=2)
    target = DiagonalGaussianMixture(means, stds, logits)
    marginal = target.marginal([1])
    m64, s64, l64 = stored_parameters(target)
    for y in (-2.0, 0.3, 4.0):
        density, _ = integrate.quad(
            lambda t, y=y: math.exp(mixture_log_prob(m64, s64, l64, np.array([t, y]))),
            -40.0,
            40.0,
            points=list(m64[:, 0]),
            epsabs=1e-13,
            epsrel=1e-10,
            limit=200,
        )
        assert_close(marginal.log_prob([y]), math.log(density), rtol=0.0, atol=2e-5)


@pytest.mark.parametrize(
    ("dims", "error", "message"),
    [
        ([], ValueError, "dims must select at least one coordinate"),
        ([0, 0], ValueError, "dims must not repeat a coordinate"),
        ([0, -3], ValueError, "dims must not repeat a coordinate"),
        ([3], ValueError, r"dims must be in \[-3, 3\) for a target of dimension 3, got 3"),
        ([-4], ValueError, "got -4"),
        ([0.0], TypeError, "dims must contain only ints, got 0.0"),
        ([True], TypeError, "dims must contain only ints, got True"),
        ("0", TypeError, "dims must be an int or a sequence of ints"),
        (np.array([0.5]), TypeError, "got an array of dtype float64"),
    ],
)
def test_marginal_bad_dims(dims, error, message):
    target = DiagonalGaussianMixture(*random_mixture(seed=21))
    with pytest.raises(error, match=message):
        target.marginal(dims)


def test_marginal_accepts_integer_array():
    target = DiagonalGaussianMixture(*random_mixture(seed=22))
    marginal = target.marginal(np.array([2, 1]))
    np.testing.assert_array_equal(np.asarray(marginal.means), np.asarray(target.means)[:, [2, 1]])


# ------------------------------------------------------------------- rescale


def test_rescale_log_prob_shift_is_dim_log_c():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    small = target.rescale(50.0)
    x = np.asarray(target.sample(1000, seed=5), np.float64)
    shift = np.asarray(small.log_prob(x / 50.0), np.float64) - np.asarray(target.log_prob(x), np.float64)
    assert_close(shift, np.full(1000, 2 * math.log(50.0)), rtol=0.0, atol=2e-5)
    assert abs(2 * math.log(50.0) - 7.824) < 5e-4
    # The same shift from the float64 reference of the rescaled parameters.
    m64, s64, l64 = stored_parameters(target)
    expected = mixture_log_prob(m64 / 50.0, s64 / 50.0, l64, x / 50.0)
    assert_close(small.log_prob(x / 50.0), expected, rtol=1e-6, atol=1e-5)


def test_rescale_vector_factor_float64():
    means, stds, logits = random_mixture(seed=23)
    c = np.array([2.0, 0.5, 10.0])
    x = np.random.default_rng(24).normal(size=(20, 3)) * 3.0
    with enable_x64():
        target = DiagonalGaussianMixture(means, stds, logits)
        rescaled = target.rescale(c)
        shift = np.asarray(rescaled.log_prob(x / c)) - np.asarray(target.log_prob(x))
        assert rescaled.dtype == np.float64
    assert_close(shift, np.full(20, np.log(c).sum()), rtol=0.0, atol=1e-12)
    assert_close(rescaled.mean(), reference_mean(means, stds, logits) / c, rtol=1e-14, atol=1e-14)
    assert_close(
        rescaled.covariance(),
        reference_covariance(means, stds, logits) / np.outer(c, c),
        rtol=1e-12,
        atol=1e-12,
    )


def test_rescale_samples_match():
    # Samples of the rescaled target are the original samples divided by c, up to rounding.
    target = DiagonalGaussianMixture(*random_mixture(seed=25))
    rescaled = target.rescale(4.0)
    np.testing.assert_allclose(
        np.asarray(rescaled.sample(100, seed=1)), np.asarray(target.sample(100, seed=1)) / 4.0,
        rtol=1e-5, atol=1e-6,
    )
    assert rescaled.dtype == target.dtype


@pytest.mark.parametrize(
    ("c", "error", "message"),
    [
        (0.0, ValueError, r"c must be finite and > 0, got 0.0"),
        (-2.0, ValueError, r"c must be finite and > 0"),
        (np.inf, ValueError, r"c must be finite and > 0"),
        (np.array([1.0, 2.0]), ValueError, r"c must be a scalar or have shape \(3,\)"),
        ("2", TypeError, "c must be an array of real numbers"),
    ],
)
def test_rescale_bad_factor(c, error, message):
    target = DiagonalGaussianMixture(*random_mixture(seed=26))
    with pytest.raises(error, match=message):
        target.rescale(c)
