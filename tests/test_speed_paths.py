"""Correctness of the fast evaluation paths: methods, chunking, guards and memory (no timings)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit.targets import DiagonalGaussianMixture
from boltzkit.targets.gaussian_mixture import functional
from tests._jax_compat import enable_x64
from tests._reference import mixture_log_prob, mixture_score

METHODS = ("auto", "direct", "matmul")


def _f32(*arrays):
    return tuple(jnp.asarray(np.asarray(a), jnp.float32) for a in arrays)


def _normalized_errors(log_probs, scores, means, stds, logits, x):
    """Return the worst log_prob and score errors in units of max(1e-4, 1e-5 |reference|)."""
    expected = mixture_log_prob(means, stds, logits, x)
    expected_score = mixture_score(means, stds, logits, x)
    value_error = np.abs(np.asarray(log_probs, np.float64) - expected)
    value_scale = np.maximum(1e-4, 1e-5 * np.abs(expected))
    score_error = np.max(np.abs(np.asarray(scores, np.float64) - expected_score), axis=-1)
    score_scale = np.maximum(1e-4, 1e-5 * np.max(np.abs(expected_score), axis=-1))
    return float(np.max(value_error / value_scale)), float(np.max(score_error / score_scale))


def _random_mixture(rng, n_components, dim, spread):
    means = rng.normal(size=(n_components, dim)) * spread
    stds = rng.uniform(0.5, 1.5, size=(n_components, dim))
    logits = rng.normal(size=n_components)
    return means, stds, logits


def _points_near(rng, means, stds, n_points, widening):
    picks = rng.integers(0, means.shape[0], size=n_points)
    return means[picks] + widening * stds[picks] * rng.normal(size=(n_points, means.shape[1]))


# Float64 expectations for cancellation in the expanded squared distance (float32)
# and for matrix products whose inputs a GPU would round to TF32.
CANCELLATION = {
    "means": [[1000.0, -1000.0], [1000.5, -999.5]],
    "diag_stds": [[0.0078125, 0.0078125], [0.015625, 0.015625]],
    "logits": [0.0, 0.0],
    "x": [[1000.0009765625, -1000.0009765625], [1000.5, -999.5], [1000.25, -999.75]],
    "log_prob": [7.157411280869943, 5.786741919750052, -250.21325808024994],
    "score": [[-16.0, 16.0], [-0.0, -0.0], [1024.0, 1024.0]],
    "tol_log_prob": (1e-6, 1e-4),
    "tol_score": (1e-5, 1e-3),
}

TF32 = {
    "means": [[1.111111044883728, 2.222222089767456, 3.3333332538604736, 4.444444179534912],
              [-2.5, 0.75, 1.125, -3.0]],
    "diag_stds": [[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]],
    "logits": [0.0, 0.0],
    "x": [[1.0, 2.0, 3.5, 4.25], [0.0, 0.0, 0.0, 0.0], [-2.0, 1.0, 1.0, -2.5]],
    "log_prob": [-1.850941920537878, -12.907963813378636, -4.657963813378636],
    "score": [[0.44444417953491205, 0.8888883590698242, -0.6666669845581055, 0.7777767181396483],
              [-2.5, 0.75, 1.125, -3.0], [-0.5, -0.25, 0.125, -0.5]],
    "tol_log_prob": (1e-6, 1e-4),
    "tol_score": (1e-5, 1e-4),
}


@pytest.mark.parametrize("case", [CANCELLATION, TF32], ids=["cancellation", "tf32"])
@pytest.mark.parametrize("method", METHODS)
def test_numerical_cases_every_method(case, method):
    means, stds, logits, x = _f32(case["means"], case["diag_stds"], case["logits"], case["x"])
    target = DiagonalGaussianMixture(means, stds, logits)
    log_probs, scores = target.log_prob_and_score(x, method=method)
    rtol, atol = case["tol_log_prob"]
    np.testing.assert_allclose(np.asarray(log_probs, np.float64), case["log_prob"], rtol=rtol, atol=atol)
    rtol, atol = case["tol_score"]
    np.testing.assert_allclose(np.asarray(scores, np.float64), case["score"], rtol=rtol, atol=atol)
    np.testing.assert_array_equal(target.log_prob(x, method=method), log_probs)
    np.testing.assert_array_equal(target.score(x, method=method), scores)


@pytest.mark.parametrize(
    ("n_components", "dim", "spread", "widening"),
    [(40, 2, 20.0, 1.5), (10, 100, 1.0, 1.5), (5, 40, 3.0, 2.0), (3, 17, 0.3, 1.0)],
)
def test_auto_within_bound_on_random_mixtures(n_components, dim, spread, widening):
    rng = np.random.default_rng(n_components * 1000 + dim)
    means, stds, logits = _random_mixture(rng, n_components, dim, spread)
    x = _points_near(rng, means, stds, 512, widening)
    for method in ("auto", "direct"):
        log_probs, scores = functional.log_prob_and_score(*_f32(means, stds, logits, x), method=method)
        value_error, score_error = _normalized_errors(log_probs, scores, means, stds, logits, x)
        assert value_error <= 1.0, (method, value_error)
        assert score_error <= 1.0, (method, score_error)


def test_auto_repairs_rows_where_matmul_bound_fails():
    # Two close components far from a third: the centre of the means lies far
    # from the points, the rows between the two close components mix, and the
    # expanded squared distances cancel there.
    dim = 20
    means = np.stack([np.full(dim, 1000.0), np.full(dim, 1000.0) + 0.01, np.full(dim, -1000.0)])
    stds = np.full((3, dim), 0.01)
    logits = np.zeros(3)
    rng = np.random.default_rng(3)
    x = 1000.005 + 0.003 * rng.normal(size=(64, dim))
    means, stds, logits, x = (np.asarray(a, np.float32).astype(np.float64) for a in (means, stds, logits, x))
    args = _f32(means, stds, logits, x)

    forced = functional.log_prob_and_score(*args, method="matmul")
    forced_errors = _normalized_errors(*forced, means, stds, logits, x)
    assert max(forced_errors) > 1.0, "the case must defeat the unguarded matrix products"

    auto = functional.log_prob_and_score(*args, method="auto")
    value_error, score_error = _normalized_errors(*auto, means, stds, logits, x)
    assert value_error <= 1.0
    assert score_error <= 1.0


@pytest.mark.parametrize(("n_components", "dim"), [(4096, 2), (256, 32)])
@pytest.mark.parametrize("method", METHODS)
def test_chunked_equals_unchunked(n_components, dim, method):
    # Kernels compiled for different batch shapes may round differently in
    # the last bit, so equality is checked to 1e-6 relative.
    rng = np.random.default_rng(5)
    means, stds, logits = _random_mixture(rng, n_components, dim, 2.0)
    rows = functional.chunk_rows(n_components, dim, method)
    n_points = 2 * rows + 7
    assert n_points > rows
    x = _points_near(rng, means, stds, n_points, 1.0)
    args = _f32(means, stds, logits, x)
    whole_values, whole_scores = functional.log_prob_and_score(*args, method=method)
    whole_log_probs = functional.log_prob(*args, method=method)

    part_values, part_scores, part_log_probs = [], [], []
    for start in range(0, n_points, rows):
        piece = args[3][start:start + rows]
        values, scores = functional.log_prob_and_score(*args[:3], piece, method=method)
        part_values.append(values)
        part_scores.append(scores)
        part_log_probs.append(functional.log_prob(*args[:3], piece, method=method))
    np.testing.assert_allclose(whole_values, np.concatenate(part_values), rtol=1e-6, atol=0)
    np.testing.assert_allclose(whole_scores, np.concatenate(part_scores), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(whole_log_probs, np.concatenate(part_log_probs), rtol=1e-6, atol=0)


@pytest.mark.parametrize(("n_components", "dim"), [(40, 2), (6, 24), (10, 100), (40, 32)])
def test_row_values_batch_independent(n_components, dim):
    # Datasets of different lengths must store the same bits for the same
    # index, and equal the methods called on their samples, so a row's value
    # may not depend on the batch it is evaluated in, from 64 rows on.
    # Without padding, XLA rounded rows differently for batches such as 100
    # and 127 rows.
    rng = np.random.default_rng(11)
    means, stds, logits = _random_mixture(rng, n_components, dim, 3.0)
    args = _f32(means, stds, logits, _points_near(rng, means, stds, 33000, 1.5))
    for fn in (functional.log_prob, functional.score, functional.responsibilities):
        evaluate = jax.jit(lambda points, fn=fn: fn(*args[:3], points))
        whole = np.asarray(evaluate(args[3]))
        for size in (64, 100, 127, 257, 1000):
            part = np.asarray(evaluate(args[3][7:7 + size]))
            np.testing.assert_array_equal(part, whole[7:7 + size], err_msg=f"{fn.__name__} {size}")


@pytest.mark.parametrize("method", METHODS)
def test_grad_jvp_and_score_agree(method):
    rng = np.random.default_rng(7)
    means, stds, logits = _random_mixture(rng, 6, 24, 1.0)
    x = _points_near(rng, means, stds, 40, 1.0)
    args = _f32(means, stds, logits, x)
    _, scores = functional.log_prob_and_score(*args, method=method)

    def total(points):
        return jnp.sum(functional.log_prob(*args[:3], points, method=method))

    np.testing.assert_array_equal(jax.grad(total)(args[3]), scores)
    direction = jnp.ones_like(args[3])
    _, forward = jax.jvp(lambda p: functional.log_prob(*args[:3], p, method=method),
                         (args[3],), (direction,))
    np.testing.assert_allclose(forward, jnp.sum(scores, axis=-1), rtol=1e-5, atol=1e-5)


def _reference_hessian(means, stds, logits, x):
    """Return the Hessian of log p at one point x of shape (d,), in float64."""
    inv_vars = 1.0 / stds**2
    r = np.exp(
        np.log(np.exp(logits) / np.exp(logits).sum())
        - np.sum(np.log(stds), axis=-1)
        - 0.5 * np.sum((x - means) ** 2 * inv_vars, axis=-1)
    )
    r /= r.sum()
    pulls = (means - x) * inv_vars
    score = r @ pulls
    second = np.einsum("k,kd,ke->de", r, pulls, pulls) - np.diag(r @ inv_vars)
    return second - np.outer(score, score)


@pytest.mark.parametrize("method", METHODS)
def test_hessian_matches_reference(method):
    rng = np.random.default_rng(11)
    means, stds, logits = _random_mixture(rng, 3, 18, 0.5)
    x = means[0] + 0.5 * rng.normal(size=18)
    args = _f32(means, stds, logits, x)
    hessian = jax.hessian(lambda p: functional.log_prob(*args[:3], p, method=method))(args[3])
    expected = _reference_hessian(means, stds, logits, np.asarray(args[3], np.float64))
    np.testing.assert_allclose(np.asarray(hessian, np.float64), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dim", [3, 24])
def test_parameter_gradients_match_reference(method, dim):
    rng = np.random.default_rng(13)
    means, stds, logits = _random_mixture(rng, 4, dim, 0.7)
    x = _points_near(rng, means, stds, 30, 1.5)
    args = _f32(means, stds, logits, x)

    def loss(m, s, lg):
        return jnp.sum(functional.log_prob(m, s, lg, args[3], method=method))

    grads = jax.grad(loss, argnums=(0, 1, 2))(*args[:3])

    x64 = np.asarray(args[3], np.float64)
    log_weights = logits - np.log(np.exp(logits).sum())
    z = (x64[:, None, :] - means) / stds
    joints = log_weights - np.sum(np.log(stds), axis=-1) - 0.5 * np.sum(z**2, axis=-1)
    r = np.exp(joints - joints.max(axis=-1, keepdims=True))
    r /= r.sum(axis=-1, keepdims=True)
    expected_means = np.einsum("nk,nkd->kd", r, z / stds)
    expected_stds = np.einsum("nk,nkd->kd", r, (z**2 - 1.0) / stds)
    expected_logits = r.sum(axis=0) - x64.shape[0] * np.exp(log_weights)
    np.testing.assert_allclose(grads[0], expected_means, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[1], expected_stds, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[2], expected_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_x_gradient_skips_parameter_terms(method, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("parameter terms were built for a gradient with respect to x only")

    monkeypatch.setattr(functional, "_parameter_tangent", fail)
    rng = np.random.default_rng(17)
    means, stds, logits = _random_mixture(rng, 3, 20, 1.0)
    args = _f32(means, stds, logits, _points_near(rng, means, stds, 8, 1.0))
    gradient = jax.grad(lambda p: jnp.sum(functional.log_prob(*args[:3], p, method=method)))(args[3])
    assert gradient.shape == args[3].shape


def test_unknown_method_rejected():
    target = DiagonalGaussianMixture.create_gmm40()
    with pytest.raises(ValueError, match="method must be one of 'auto', 'direct', 'matmul', got 'fast'"):
        target.log_prob(np.zeros(2), method="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        functional.score(target.means, target.diag_stds, target.logits, jnp.zeros((1, 2)), method=None)


def test_chunk_rows_are_powers_of_two():
    for n_components, dim in [(40, 2), (10, 100), (128, 512), (1, 1), (100000, 3), (3, 100000)]:
        for method in METHODS:
            rows = functional.chunk_rows(n_components, dim, method)
            assert rows & (rows - 1) == 0
            assert 16 <= rows <= functional.CHUNK_ROWS


@pytest.mark.parametrize(
    ("n_components", "dim", "n_points"), [(40, 2, 2**20), (128, 512, 2**16)]
)
def test_compiled_temporaries_stay_linear_in_batch(n_components, dim, n_points):
    means, stds, logits = jnp.zeros((n_components, dim)), jnp.ones((n_components, dim)), jnp.zeros(
        n_components
    )
    points = jax.ShapeDtypeStruct((n_points, dim), jnp.float32)
    linear_bytes = 4 * n_points * (dim + n_components)
    full_bytes = 4 * n_points * n_components * dim
    for fn in (
        lambda x: functional.log_prob(means, stds, logits, x),
        lambda x: functional.log_prob_and_score(means, stds, logits, x),
        lambda x: jax.grad(lambda y: jnp.sum(functional.log_prob(means, stds, logits, y)))(x),
    ):
        analysis = jax.jit(fn).lower(points).compile().memory_analysis()
        assert analysis.temp_size_in_bytes <= 2 * linear_bytes + 64 * 2**20
        assert analysis.temp_size_in_bytes < full_bytes / 8


def test_top_components_find_maximum_column():
    rng = np.random.default_rng(19)
    values = rng.normal(scale=50.0, size=(64, 40)).astype(np.float32)
    values[0, :] = 3.0  # an exact tie
    values[1, :5] = -np.inf
    values[2, :] = -np.inf
    values[3, 7] = np.nan
    top, index = functional._top_components(jnp.asarray(values))
    top, index = np.asarray(top, np.float64), np.asarray(index)

    assert index.dtype == np.int32
    assert np.all((index >= 0) & (index < 40))
    finite = slice(4, None)
    np.testing.assert_array_equal(index[finite], np.argmax(values[finite], axis=-1))
    # The column index replaces the lowest 6 bits: within 64 units in the last place.
    ulp = np.spacing(np.abs(values[finite].max(axis=-1)).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(top[finite] - values[finite].max(axis=-1)) <= 64 * ulp)
    assert values[0, index[0]] == 3.0
    assert index[1] == np.argmax(values[1])
    assert np.isfinite(top[1])
    assert top[2] == -np.inf
    assert np.isnan(top[3])


def test_top_components_in_float64():
    with enable_x64():
        values = np.random.default_rng(23).normal(size=(32, 5))
        top, index = functional._top_components(jnp.asarray(values))
        assert top.dtype == jnp.float64
        np.testing.assert_array_equal(index, np.argmax(values, axis=-1))
        np.testing.assert_allclose(top, values.max(axis=-1), rtol=1e-14)


@pytest.mark.parametrize("n_rows", [1, 5, 16, 17, 40, 48])
def test_map_rows_overlapping_last_chunk(n_rows):
    # The last chunk ends at the last row and overlaps the one before it.
    # Batches under 64 rows are not padded.
    x = jnp.arange(n_rows * 3, dtype=jnp.float32).reshape(n_rows, 3)
    shapes = []

    def fn(chunk):
        shapes.append(chunk.shape)
        return jnp.sum(chunk, axis=-1), chunk * 2.0

    sums, doubled = functional._map_rows(fn, (x,), 16)
    np.testing.assert_array_equal(sums, np.asarray(x).sum(axis=-1))
    np.testing.assert_array_equal(doubled, 2.0 * np.asarray(x))
    assert sums.shape == (n_rows,)
    assert all(shape == (min(n_rows, 16), 3) for shape in shapes)


def test_map_rows_pads_to_row_multiple():
    x = jnp.arange(300 * 2, dtype=jnp.float32).reshape(300, 2)
    shapes = []

    def fn(chunk):
        shapes.append(chunk.shape)
        return chunk[:, 0] + 1.0

    out = functional._map_rows(fn, (x,), 4096)
    np.testing.assert_array_equal(out, np.asarray(x)[:, 0] + 1.0)
    assert shapes == [(512, 2)]
    small = functional._map_rows(fn, (x[:63],), 4096)
    np.testing.assert_array_equal(small, np.asarray(x)[:63, 0] + 1.0)
    assert shapes[-1] == (63, 2)


@pytest.mark.parametrize("n_rows", [0, 1, 127, 128, 129, 1000, 40000])
def test_first_true_matches_nonzero(n_rows):
    # Blocks of 128 entries, with a partial last block when 128 does not divide n_rows.
    rng = np.random.default_rng(n_rows)
    for share in (0.0, 0.03, 0.5, 1.0):
        flags = rng.uniform(size=n_rows) < share
        for size in sorted({1, max(1, n_rows // 3), n_rows}):
            expected = np.full(size, n_rows)
            found = np.flatnonzero(flags)[:size]
            expected[: len(found)] = found
            np.testing.assert_array_equal(functional._first_true(jnp.asarray(flags), size), expected)


@pytest.mark.parametrize("n_rows", [64, 37])
def test_repair_fixes_only_failed_rows(n_rows):
    # 37 rows do not split into 16 equal groups, so the last group overlaps.
    x = jnp.arange(n_rows, dtype=jnp.float32)[:, None]
    result = (jnp.zeros(n_rows), jnp.full((n_rows, 1), -1.0))

    def exact(points):
        return points[:, 0] + 0.5, points * 10.0

    for failed in ([], [0], [3, n_rows - 1], list(range(0, n_rows, 3)), list(range(n_rows))):
        row_ok = np.ones(n_rows, bool)
        row_ok[failed] = False
        values, pulls = functional._repair_rows(result, jnp.asarray(row_ok), x, exact)
        expected_values = np.where(row_ok, 0.0, np.arange(n_rows) + 0.5)
        expected_pulls = np.where(row_ok, -1.0, np.arange(n_rows) * 10.0)[:, None]
        np.testing.assert_array_equal(values, expected_values)
        np.testing.assert_array_equal(pulls, expected_pulls)


def _mixed_far_mixture(n_components, dim):
    """Two close narrow components far from the centre of the means, and the rest far away."""
    means = np.full((n_components, dim), -1000.0)
    means[0] = 1000.0
    means[1] = 1000.01
    means[2:] += np.arange(n_components - 2)[:, None] * 5.0
    stds = np.full((n_components, dim), 0.01)
    return means, stds, np.zeros(n_components)


def _mixed_far_problem(n_points, seed):
    """Return the mixed far mixture (k=18, d=20) and points that its two close components share.

    Every array contains float32 values, stored as float64 for the references.
    """
    dim = 20
    means, stds, logits = _mixed_far_mixture(18, dim)
    x = 1000.005 + 0.003 * np.random.default_rng(seed).normal(size=(n_points, dim))
    return tuple(np.asarray(a, np.float32).astype(np.float64) for a in (means, stds, logits, x))


def test_expanded_pull_falls_back_far_from_centre():
    # Two close narrow components 2000 from the centre of the means share
    # the points. The pull of the other components, expanded around that
    # centre, then loses far more than the target, so its bound must flag
    # every row and the refined rows must meet the target.
    means, stds, logits, x = _mixed_far_problem(64, 43)
    args = _f32(means, stds, logits, x)

    log_probs, pull, _, share, pull_error = functional._direct_chunk(*args, True, False)
    assert _normalized_errors(log_probs, pull, means, stds, logits, x)[1] > 1.0
    flagged = functional._imprecise_weights(*args, log_probs, share, pull, pull_error)
    assert np.all(np.asarray(flagged))

    log_probs, scores = functional.log_prob_and_score(*args, method="direct")
    value_error, score_error = _normalized_errors(log_probs, scores, means, stds, logits, x)
    assert value_error <= 1.0
    assert score_error <= 1.0


def test_derivatives_through_repaired_rows():
    # With more than 16 components, "auto" takes matrix products for the
    # score too and repairs the mixed rows. jax.jacrev then differentiates
    # through the repair, and jax.hessian through the custom rule.
    means, stds, logits, x = _mixed_far_problem(3, 29)
    args = _f32(means, stds, logits, x)

    _, forced = functional.log_prob_and_score(*args, method="matmul")
    _, auto = functional.log_prob_and_score(*args, method="auto")
    assert _normalized_errors(np.zeros(3), forced, means, stds, logits, x)[1] > 1.0
    np.testing.assert_allclose(auto, mixture_score(means, stds, logits, x), rtol=1e-4, atol=1e-2)

    point = args[3][0]
    expected = _reference_hessian(means, stds, logits, np.asarray(point, np.float64))
    jacobian = jax.jacrev(lambda p: functional.score(*args[:3], p))(point)
    hessian = jax.hessian(lambda p: functional.log_prob(*args[:3], p))(point)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(jacobian, expected, rtol=0, atol=2e-3 * scale)
    np.testing.assert_allclose(hessian, expected, rtol=0, atol=2e-3 * scale)


@pytest.mark.parametrize(("n_components", "dim"), [(20, 24), (4, 24), (40, 2)])
def test_duplicated_components_tie(n_components, dim):
    # Pairs of identical components tie for the top joint in every row.
    rng = np.random.default_rng(31)
    means, stds, logits = _random_mixture(rng, n_components // 2, dim, 3.0)
    means, stds, logits = (np.concatenate([a, a]) for a in (means, stds, logits))
    x = _points_near(rng, means, stds, 256, 1.0)
    for method in METHODS:
        log_probs, scores = functional.log_prob_and_score(*_f32(means, stds, logits, x), method=method)
        value_error, score_error = _normalized_errors(log_probs, scores, means, stds, logits, x)
        assert value_error <= 1.0, (method, value_error)
        assert score_error <= 1.0, (method, score_error)


def test_float64_auto_keeps_float64_accuracy():
    # Float64 points near two close narrow components, where the float32
    # tolerance of the matrix products would allow errors of about 1e-8.
    with enable_x64():
        means = np.full((3, 17), 1000.0)
        means[1] += 0.1
        means[2] = -1000.0
        stds = np.full((3, 17), 0.1)
        logits = np.zeros(3)
        x = means[0] + 0.1 * np.random.default_rng(37).normal(size=(64, 17))
        expected = mixture_log_prob(means, stds, logits, x)
        for method in ("auto", "direct"):
            values = functional.log_prob(means, stds, logits, x, method=method)
            assert values.dtype == jnp.float64
            np.testing.assert_allclose(values, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("method", ["auto", "direct"])
def test_far_point_score_stays_finite(method):
    # The narrow component's pull overflows while its weight is exactly zero.
    means, stds = jnp.zeros((2, 1)), jnp.array([[1.0], [1e-3]])
    score = functional.score(means, stds, jnp.zeros(2), jnp.array([[1e33]]), method=method)
    np.testing.assert_allclose(score, [[-1e33]], rtol=1e-6)

    for n_components in (2, 20):
        dim = 20
        stds = jnp.ones((n_components, dim)).at[1].set(0.5)
        x = jnp.zeros((1, dim)).at[0, 0].set(3e38)
        score = functional.score(jnp.zeros((n_components, dim)), stds, jnp.zeros(n_components), x,
                                 method=method)
        assert np.all(np.isfinite(score))
        np.testing.assert_allclose(score[0, 0], -3e38, rtol=1e-6)
        np.testing.assert_array_equal(score[0, 1:], 0.0)


@pytest.mark.parametrize("n_components", [7, 20])
@pytest.mark.parametrize("method", METHODS)
def test_empty_batch_in_high_dimensions(n_components, method):
    params = (jnp.zeros((n_components, 17)), jnp.ones((n_components, 17)), jnp.zeros(n_components))
    empty = jnp.zeros((0, 17))
    assert functional.log_prob(*params, empty, method=method).shape == (0,)
    assert functional.score(*params, empty, method=method).shape == (0, 17)
    gradient = jax.grad(lambda y: functional.log_prob(*params, y, method=method).sum())(empty)
    assert gradient.shape == (0, 17)
