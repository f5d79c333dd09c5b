"""Sample-set metrics: W2 against POT and closed forms, MMD and energy distance against NumPy."""

import decimal
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist, pdist

from boltzkit import evaluation
from tests._jax_compat import enable_x64
from tests._reference import assert_close


def brute_force_assignment_cost(cost):
    n = cost.shape[0]
    return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_assignment_matches_brute_force(n):
    rng = np.random.default_rng(n)
    cost = rng.uniform(-5.0, 10.0, size=(n, n))
    columns = np.asarray(evaluation.assignment(jnp.asarray(cost, jnp.float32)))
    assert sorted(columns.tolist()) == list(range(n))
    found = cost[np.arange(n), columns].sum()
    assert found == pytest.approx(brute_force_assignment_cost(cost), rel=1e-5)


def test_assignment_with_ties_is_a_permutation():
    cost = np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    columns = np.asarray(evaluation.assignment(jnp.asarray(cost, jnp.float32)))
    assert sorted(columns.tolist()) == [0, 1, 2]
    assert cost[np.arange(3), columns].sum() == pytest.approx(2.0)


@pytest.mark.parametrize(("n", "dim", "seed"), [(5, 1, 0), (40, 2, 1), (150, 3, 2), (300, 2, 3)])
def test_exact_w2_matches_pot(n, dim, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * 3.0
    y = rng.normal(size=(n, dim)) * 2.0 + np.concatenate([[4.0], np.zeros(dim - 1)])
    weights = np.full(n, 1.0 / n)
    expected = math.sqrt(ot.emd2(weights, weights, ot.dist(x, y, metric="sqeuclidean")))
    actual = float(evaluation.wasserstein2(x.astype(np.float32), y.astype(np.float32), method="exact"))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_exact_w2_matches_pot_on_clustered_points():
    from boltzkit.targets import DiagonalGaussianMixture

    target = DiagonalGaussianMixture.create_gmm40()
    x = np.asarray(target.sample(400, seed=3), np.float64)
    y = np.asarray(target.sample(400, seed=4), np.float64)
    weights = np.full(400, 1.0 / 400)
    expected = math.sqrt(ot.emd2(weights, weights, ot.dist(x, y, metric="sqeuclidean")))
    assert float(evaluation.wasserstein2(x, y)) == pytest.approx(expected, rel=1e-5)


def test_exact_w2_of_affine_map_matches_gaussian_closed_form():
    # T(x) = m2 + (s2 / s1) (x - m1) is the gradient of a convex function, so it
    # is the optimal map between {x_i} and {T(x_i)} in any order, and its cost
    # tends to the closed form |m1 - m2|^2 + d (s1 - s2)^2 of the Gaussians.
    rng = np.random.default_rng(5)
    dim, n = 3, 500
    m1, s1 = np.array([1.0, -2.0, 0.5]), 1.5
    m2, s2 = np.array([-1.0, 0.0, 2.0]), 0.5
    x = m1 + s1 * rng.normal(size=(n, dim))
    y = m2 + (s2 / s1) * (x - m1)
    empirical = math.sqrt(np.mean(np.sum((x - y) ** 2, axis=1)))
    closed_form = math.sqrt(np.sum((m1 - m2) ** 2) + dim * (s1 - s2) ** 2)
    shuffled = y[rng.permutation(n)]
    assert float(evaluation.wasserstein2(x, shuffled)) == pytest.approx(empirical, rel=1e-5)
    assert empirical == pytest.approx(closed_form, rel=0.05)


def test_sinkhorn_approaches_exact_w2():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 8.0])
    y = np.concatenate([rng.normal(size=(140, 2)), rng.normal(size=(60, 2)) + 8.0])
    exact = float(evaluation.wasserstein2(x, y, method="exact"))
    sinkhorn = float(evaluation.wasserstein2(x, y, method="sinkhorn"))
    assert sinkhorn == pytest.approx(exact, rel=0.03)
    assert sinkhorn <= exact * 1.001


def test_sinkhorn_of_duplicated_set_is_near_zero():
    x = np.random.default_rng(7).normal(size=(60, 2))
    w2 = float(evaluation.wasserstein2(x, np.concatenate([x, x])))
    assert w2 < 0.05


def test_w2_auto_method_uses_sinkhorn_for_unequal_sizes():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(30, 2))
    y = rng.normal(size=(45, 2)) + 5.0
    auto = float(evaluation.wasserstein2(x, y))
    assert auto == pytest.approx(float(evaluation.wasserstein2(x, y, method="sinkhorn")))
    with pytest.raises(ValueError, match="equal size"):
        evaluation.wasserstein2(x, y, method="exact")


def test_w2_jits_and_gradient_is_finite():
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(20, 2)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(20, 2)), jnp.float32)
    eager = float(evaluation.wasserstein2(x, y))
    jitted = float(jax.jit(evaluation.wasserstein2)(x, y))
    assert jitted == pytest.approx(eager, rel=1e-6)
    gradient = jax.grad(lambda points: evaluation.wasserstein2(points, y))(x)
    assert np.all(np.isfinite(np.asarray(gradient)))


def reference_mmd_squared(x, y, bandwidths, unbiased):
    def kernel(a, b):
        squared = cdist(a, b, metric="sqeuclidean")
        return np.mean([np.exp(-squared / (2 * h * h)) for h in bandwidths], axis=0)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    if unbiased:
        return (
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("bandwidth", [None, 0.7, (0.5, 2.0, 8.0)])
def test_mmd_matches_numpy_reference(bandwidth, unbiased):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=(70, 3)) * 1.3 + 0.4
    if bandwidth is None:
        bandwidths = [np.median(pdist(np.concatenate([x, y])))]
    else:
        bandwidths = np.atleast_1d(bandwidth)
    expected = reference_mmd_squared(x, y, bandwidths, unbiased)
    actual = evaluation.mmd_squared(x, y, bandwidth, unbiased=unbiased)
    assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def test_median_bandwidth_matches_scipy():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(31, 2)), rng.normal(size=(20, 2)) + 1.0
    expected = np.median(pdist(np.concatenate([x, y])))
    assert_close(evaluation.median_bandwidth(x, y), expected, rtol=1e-5, atol=0)


def test_mmd_separates_shifted_sets():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(200, 2))
    same = float(evaluation.mmd_squared(x, rng.normal(size=(200, 2))))
    shifted = float(evaluation.mmd_squared(x, rng.normal(size=(200, 2)) + 2.0))
    assert abs(same) < 0.01
    assert shifted > 0.2


def test_mmd_rejects_bad_bandwidth():
    x = np.zeros((3, 1))
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0"):
        evaluation.mmd_squared(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        evaluation.mmd_squared(x, x, bandwidth=[[1.0]])


def test_energy_distance_matches_numpy_reference():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(40, 2))
    y = rng.normal(size=(55, 2)) + np.array([1.0, 0.0])
    dxy, dxx, dyy = cdist(x, y), cdist(x, x), cdist(y, y)
    expected = 2 * dxy.mean() - dxx.sum() / (40 * 39) - dyy.sum() / (55 * 54)
    assert_close(evaluation.energy_distance(x, y), expected, rtol=1e-4, atol=1e-6)


def test_energy_distance_gradient_is_finite_with_duplicate_points():
    x = jnp.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    gradient = jax.grad(lambda points: evaluation.energy_distance(points, x))(x)
    assert np.all(np.isfinite(np.asarray(gradient)))


def reference_histogram_tv(reference, samples, n_bins):
    edges = np.linspace(reference.min(), reference.max(), n_bins + 1)
    full_edges = np.concatenate([[-np.inf], edges, [np.inf]])

    def frequencies(values):
        # np.histogram closes only the last bin; the reference maximum belongs
        # to the last inner bin and larger values to the overflow bin.
        counts = np.zeros(n_bins + 2)
        for value in values:
            if value < edges[0]:
                counts[0] += 1
            elif value > edges[-1]:
                counts[-1] += 1
            else:
                counts[min(np.searchsorted(edges, value, side="right"), n_bins)] += 1
        return counts / len(values)

    assert len(full_edges) == n_bins + 3
    return 0.5 * np.abs(frequencies(reference) - frequencies(samples)).sum()


def test_log_prob_histogram_tv_matches_reference():
    rng = np.random.default_rng(14)
    reference = rng.normal(size=300)
    samples = np.concatenate([rng.normal(size=250) * 0.5, [-10.0, 10.0, 3.0]])
    expected = reference_histogram_tv(reference, samples, 20)
    actual = evaluation.log_prob_histogram_tv(reference.astype(np.float32), samples.astype(np.float32), 20)
    assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def test_point_sets_must_share_dimension():
    with pytest.raises(ValueError, match=r"same dimension, got shapes \(3, 2\) and \(3, 1\)"):
        evaluation.energy_distance(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        evaluation.mmd_squared(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples, dim\)"):
        evaluation.wasserstein2(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="method must be"):
        evaluation.wasserstein2(np.zeros((3, 2)), np.zeros((3, 2)), method="emd")


def test_w2_in_float64_matches_pot_to_rounding():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(120, 2)) * 5.0
    y = rng.normal(size=(120, 2)) * 5.0 + 1.0
    weights = np.full(120, 1.0 / 120)
    expected = math.sqrt(ot.emd2(weights, weights, ot.dist(x, y, metric="sqeuclidean")))
    with enable_x64():
        exact = evaluation.wasserstein2(jnp.asarray(x), jnp.asarray(y))
        sinkhorn = evaluation.wasserstein2(jnp.asarray(x), jnp.asarray(y), method="sinkhorn")
    assert exact.dtype == jnp.float64
    assert float(exact) == pytest.approx(expected, rel=1e-12)
    assert float(sinkhorn) == pytest.approx(expected, rel=0.01)
    assert float(sinkhorn) <= expected * (1 + 1e-9)


@pytest.mark.parametrize("metric", ["wasserstein2", "energy_distance", "mmd_squared"])
def test_sample_metrics_reject_nan_rows(metric):
    x = np.random.default_rng(0).normal(size=(20, 2))
    y = np.random.default_rng(1).normal(size=(20, 2))
    x[3] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite.*row 3"):
        getattr(evaluation, metric)(x, y)
    with pytest.raises(ValueError, match=r"y must be finite"):
        getattr(evaluation, metric)(y, x)


def test_exact_w2_under_jit_is_nan_for_nan_rows():
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(20, 2)).astype(np.float32)
    x[3] = np.nan
    value = jax.jit(lambda a, b: evaluation.wasserstein2(a, b))(x, y)
    assert np.isnan(float(value))


@pytest.mark.parametrize("size", [1e5, 1e20, 1e30, 3e38])
def test_far_points_match_float64(size):
    # A diverged sampler leaves a few points far out. Their squared
    # distances overflow float32, yet every metric is finite in float64.
    rng = np.random.default_rng(14)
    x = rng.normal(size=(60, 2)) * 3.0
    x[:4] = size
    x[4:8] = -size
    x[8, 0] = size
    y = rng.normal(size=(60, 2)) * 2.0 + 1.0
    x = x.astype(np.float32).astype(np.float64)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)

    rows, columns = linear_sum_assignment(cdist(x, y, metric="sqeuclidean"))
    expected_w2 = math.sqrt(cdist(x, y, metric="sqeuclidean")[rows, columns].mean())
    assert_close(evaluation.wasserstein2(x32, y32), expected_w2, rtol=1e-5, atol=0)

    dxy, dxx, dyy = cdist(x, y), cdist(x, x), cdist(y, y)
    expected_energy = 2 * dxy.mean() - dxx.sum() / (60 * 59) - dyy.sum() / (60 * 59)
    assert_close(evaluation.energy_distance(x32, y32), expected_energy, rtol=1e-4, atol=0)

    median = np.median(pdist(np.concatenate([x, y])))
    assert_close(evaluation.median_bandwidth(x32, y32), median, rtol=1e-5, atol=0)
    for bandwidth, bandwidths in ((None, [median]), (0.7, [0.7]), ((0.5, 1e30), [0.5, 1e30])):
        expected = reference_mmd_squared(x, y, bandwidths, True)
        actual = evaluation.mmd_squared(x32, y32, bandwidth)
        assert_close(actual, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("metric", ["wasserstein2", "energy_distance", "mmd_squared"])
def test_far_point_gradients_finite(metric):
    x = jnp.array([[0.0, 0.0], [0.0, 0.0], [1e30, 1.0], [1e30, 1.0], [2.0, -1.0]])
    y = jnp.array([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [-1.0, 0.0], [0.5, 0.5]])
    function = getattr(evaluation, metric)
    gradient = jax.grad(lambda points: function(points, y))(x)
    assert np.all(np.isfinite(np.asarray(gradient)))


def exact_energy_distance(x, y):
    """Return the energy distance of float inputs, computed with 50 decimal digits."""
    with decimal.localcontext() as context:
        context.prec = 50
        xs = [[decimal.Decimal(float(v)) for v in row] for row in x]
        ys = [[decimal.Decimal(float(v)) for v in row] for row in y]

        def distance(p, q):
            return sum((a - b) ** 2 for a, b in zip(p, q, strict=True)).sqrt()

        n, m = len(xs), len(ys)
        between = sum(distance(p, q) for p in xs for q in ys) / (n * m)
        within_x = 2 * sum(distance(xs[i], xs[j]) for i in range(n) for j in range(i)) / (n * (n - 1))
        within_y = 2 * sum(distance(ys[i], ys[j]) for i in range(m) for j in range(i)) / (m * (m - 1))
        return float(2 * between - within_x - within_y)


@pytest.mark.parametrize("far", [(1e9, -1e9), (1e10, 1e10), (1e20, -1e20), (1e30, 0.0), (3e38, 3e38)])
def test_energy_distance_one_far_row(far):
    # The far row adds about its distance to sums that cancel, and the
    # energy distance stays near that of the other rows. Even float64 sums
    # lose it from about 1e20 on, so the reference uses 50 digits.
    rng = np.random.default_rng(15)
    x = (rng.normal(size=(40, 2)) * 3.0).astype(np.float32)
    y = (rng.normal(size=(30, 2)) * 2.0 + 1.0).astype(np.float32)
    x[7] = far
    expected = exact_energy_distance(x, y)
    assert_close(evaluation.energy_distance(x, y), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("size", [1e20, 1e30])
def test_exact_w2_shared_far_row(size):
    # The far rows pair up at cost 0, so W2 comes from the ordinary rows,
    # whose squared distances must not underflow when the points are scaled.
    rng = np.random.default_rng(16)
    x = (rng.normal(size=(50, 2)) * 3.0).astype(np.float32)
    y = (rng.normal(size=(50, 2)) * 2.0 + 1.0).astype(np.float32)
    x[3] = (size, 0.0)
    y[5] = (size, 0.0)
    cost = cdist(x.astype(np.float64), y.astype(np.float64), metric="sqeuclidean")
    rows, columns = linear_sum_assignment(cost)
    expected = math.sqrt(cost[rows, columns].mean())
    assert_close(evaluation.wasserstein2(x, y, method="exact"), expected, rtol=1e-5, atol=0)


def test_energy_distance_far_rows_both_sets():
    rng = np.random.default_rng(17)
    x = (rng.normal(size=(40, 2)) * 3.0).astype(np.float32)
    y = (rng.normal(size=(30, 2)) * 2.0 + 1.0).astype(np.float32)
    x[2] = (1e30, 1e30)
    y[4] = (-1e30, 1e30)
    expected = exact_energy_distance(x, y)
    assert_close(evaluation.energy_distance(x, y), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("scale", [2.0**-40, 2.0**-70])
def test_tiny_points_scale_exactly(scale):
    # Squares of differences of such points fall below the smallest normal
    # float32. Every metric is homogeneous, so the values must scale with the points.
    rng = np.random.default_rng(18)
    x = (rng.normal(size=(50, 2)) * 3.0).astype(np.float32)
    y = (rng.normal(size=(50, 2)) * 2.0 + 1.0).astype(np.float32)
    tiny_x, tiny_y = x * np.float32(scale), y * np.float32(scale)
    for metric in ("wasserstein2", "energy_distance", "median_bandwidth"):
        ordinary = float(getattr(evaluation, metric)(x, y))
        tiny = float(getattr(evaluation, metric)(tiny_x, tiny_y))
        assert tiny / scale == pytest.approx(ordinary, rel=1e-5), metric
    ordinary = float(evaluation.mmd_squared(x, y))
    tiny = float(evaluation.mmd_squared(tiny_x, tiny_y))
    assert tiny == pytest.approx(ordinary, rel=1e-5)
