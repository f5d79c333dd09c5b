"""The DiagonalGaussianMixture target: construction, dtypes, pytree behaviour and sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import boltzkit
from boltzkit.targets import DiagonalGaussianMixture, gaussian_mixture
from tests._jax_compat import enable_x64
from tests._reference import (
    as_float32,
    assert_close,
    finite_difference_gradient,
    mixture_log_prob,
    mixture_score,
    points_near_modes,
    random_mixture,
)


def small_target(seed=0, k=3, d=2):
    rng = np.random.default_rng(seed)
    means, stds, logits = as_float32(*random_mixture(rng, k, d))
    return DiagonalGaussianMixture(means, stds, logits), (means, stds, logits)


def params_of(target):
    return tuple(np.asarray(a, np.float64) for a in (target.means, target.diag_stds, target.logits))


# ---------------------------------------------------------- construction


def test_import_paths():
    assert gaussian_mixture.DiagonalGaussianMixture is DiagonalGaussianMixture
    assert boltzkit.targets.DiagonalGaussianMixture is DiagonalGaussianMixture
    assert isinstance(boltzkit.__version__, str)


@pytest.mark.parametrize("kind", ["numpy", "jax", "list"])
def test_constructor_accepts_arrays_and_lists(kind):
    means = [[-2.0, -2.0], [2.0, 2.0]]
    stds = [[0.8, 0.8], [0.5, 0.9]]
    logits = [0.4, 0.6]
    convert = {"numpy": np.array, "jax": jnp.array, "list": lambda v: v}[kind]
    target = DiagonalGaussianMixture(convert(means), convert(stds), convert(logits))
    assert target.means.dtype == jnp.float32
    np.testing.assert_array_equal(target.means, np.float32(means))
    np.testing.assert_array_equal(target.diag_stds, np.float32(stds))
    np.testing.assert_array_equal(target.logits, np.float32(logits))


def test_default_logits_are_equal_weights():
    target = DiagonalGaussianMixture([[0.0], [1.0], [2.0], [3.0]], np.ones((4, 1)))
    np.testing.assert_array_equal(target.logits, np.zeros(4, np.float32))
    np.testing.assert_allclose(target.weights, np.full(4, 0.25), rtol=1e-7)


def test_integer_parameters_become_float32():
    target = DiagonalGaussianMixture(np.array([[1, 2]]), np.array([[1, 3]]), np.array([0]))
    assert target.means.dtype == jnp.float32
    assert target.diag_stds.dtype == jnp.float32
    assert target.logits.dtype == jnp.float32


def test_target_is_frozen():
    target, _ = small_target()
    with pytest.raises(AttributeError):
        target.means = jnp.zeros((3, 2))


def test_properties():
    target, (_, _, logits) = small_target(k=4, d=3)
    assert target.dim == 3
    assert target.n_components == 4
    assert target.logZ == 0.0
    assert isinstance(target.dim, int)
    assert isinstance(target.n_components, int)
    expected_log_weights = logits - scipy.special.logsumexp(logits)
    assert_close(target.log_weights, expected_log_weights, rtol=1e-6, atol=1e-6,
                 name="log_weights")
    assert_close(target.weights, np.exp(expected_log_weights), rtol=1e-6, atol=1e-7,
                 name="weights")
    assert target.dtype == np.float32


def test_logZ_matches_numerical_integral():
    # The density integrates to one: a trapezoid rule over a wide 1-D grid.
    target = DiagonalGaussianMixture([[-1.0], [2.0]], [[0.5], [1.5]], [0.3, -0.2])
    grid = np.linspace(-15, 15, 20001)
    density = np.exp(mixture_log_prob(*params_of(target), grid[:, None]))
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-8
    assert target.logZ == 0.0


# ---------------------------------------------------------- factories


def test_create_isotropic_std_forms():
    means = [[0.0, 1.0], [2.0, 3.0]]
    target = DiagonalGaussianMixture.create_isotropic(means, std=0.5, logits=[0.1, 0.2])
    np.testing.assert_array_equal(target.diag_stds, np.full((2, 2), 0.5, np.float32))
    np.testing.assert_array_equal(target.logits, np.float32([0.1, 0.2]))
    target = DiagonalGaussianMixture.create_isotropic(means, std=[0.5, 2.0])
    np.testing.assert_array_equal(target.diag_stds, np.float32([[0.5, 0.5], [2.0, 2.0]]))
    np.testing.assert_array_equal(target.logits, np.zeros(2, np.float32))


def test_create_isotropic_uniform_numpy_means():
    target = DiagonalGaussianMixture.create_isotropic_uniform(
        std=0.7, n_components=5, dim=3, mean_range=(-2.0, 6.0), seed=123)
    expected = np.random.default_rng(123).uniform(-2.0, 6.0, (5, 3))
    np.testing.assert_array_equal(target.means, expected.astype(np.float32))
    np.testing.assert_array_equal(target.diag_stds, np.full((5, 3), 0.7, np.float32))
    np.testing.assert_array_equal(target.logits, np.zeros(5, np.float32))


def test_create_gmm40_defaults():
    target = DiagonalGaussianMixture.create_gmm40()
    assert (target.n_components, target.dim) == (40, 2)
    expected = np.random.default_rng(0).uniform(-40.0, 40.0, (40, 2))
    np.testing.assert_array_equal(target.means, expected.astype(np.float32))
    np.testing.assert_array_equal(target.diag_stds, np.ones((40, 2), np.float32))
    np.testing.assert_array_equal(target.weights, np.full(40, 1 / 40, np.float32))
    same = DiagonalGaussianMixture.create_isotropic_uniform(
        std=1.0, n_components=40, dim=2, mean_range=(-40.0, 40.0), seed=0)
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(a, b)


def test_create_gmm40_arguments():
    target = DiagonalGaussianMixture.create_gmm40(dim=3, n_components=7, loc_scaling=5.0,
                                                  scale=2.0, seed=4)
    expected = np.random.default_rng(4).uniform(-5.0, 5.0, (7, 3))
    np.testing.assert_array_equal(target.means, expected.astype(np.float32))
    np.testing.assert_array_equal(target.diag_stds, np.full((7, 3), 2.0, np.float32))


def test_to_dict_round_trip():
    target, _ = small_target()
    arrays = target.to_dict()
    assert sorted(arrays) == ["diag_stds", "logits", "means"]
    again = DiagonalGaussianMixture(**arrays)
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------- bad input


BAD_CONSTRUCTIONS = [
    (dict(means=[0.0, 1.0], diag_stds=[[1.0, 1.0]]), ValueError, "means"),
    (dict(means=[[[0.0]]], diag_stds=[[[1.0]]]), ValueError, "means"),
    (dict(means=np.zeros((0, 2)), diag_stds=np.zeros((0, 2))), ValueError, "means"),
    (dict(means=np.zeros((2, 0)), diag_stds=np.zeros((2, 0))), ValueError, "means"),
    (dict(means=[[0.0, np.nan]], diag_stds=[[1.0, 1.0]]), ValueError, "means"),
    (dict(means=[[0.0, np.inf]], diag_stds=[[1.0, 1.0]]), ValueError, "means"),
    (dict(means=[[0.0, 1.0]], diag_stds=[1.0, 1.0]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, 1.0, 1.0]]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, 0.0]]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, -1.0]]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, np.nan]]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, np.inf]]), ValueError, "diag_stds"),
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, -np.inf]]), ValueError, "diag_stds"),
    # Subnormal float32 stds, which XLA flushes to zero.
    (dict(means=[[0.0, 1.0]], diag_stds=[[1.0, 1e-39]]), ValueError, "smallest normal"),
    (dict(means=[[0.0, 1.0]], diag_stds=np.array([[1.0, 1e-45]], np.float32)), ValueError,
     "smallest normal"),
    (dict(means=[[0.0], [1.0]], diag_stds=[[1.0], [1.0]], logits=[0.0]), ValueError, "logits"),
    (dict(means=[[0.0], [1.0]], diag_stds=[[1.0], [1.0]], logits=[[0.0, 0.0]]), ValueError,
     "logits"),
    (dict(means=[[0.0], [1.0]], diag_stds=[[1.0], [1.0]], logits=[0.0, np.nan]), ValueError,
     "logits"),
    (dict(means=[[0.0], [1.0]], diag_stds=[[1.0], [1.0]], logits=[0.0, np.inf]), ValueError,
     "logits"),
    (dict(means=[[0.0], [1.0]], diag_stds=[[1.0], [1.0]], logits=[-np.inf, -np.inf]),
     ValueError, "logits"),
    (dict(means=[["a"]], diag_stds=[[1.0]]), TypeError, "means"),
    (dict(means=[[True]], diag_stds=[[1.0]]), TypeError, "means"),
    (dict(means=[[0.0]], diag_stds=[[1.0 + 1.0j]]), TypeError, "diag_stds"),
    (dict(means=[[0.0], [1.0, 2.0]], diag_stds=[[1.0]]), TypeError, "means"),
    (dict(means=[[0.0]], diag_stds=[[1.0]], logits=["x"]), TypeError, "logits"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD_CONSTRUCTIONS)
def test_constructor_rejects_bad_parameters(kwargs, error, name):
    with pytest.raises(error, match=name):
        DiagonalGaussianMixture(**kwargs)


def test_error_messages_show_shapes_and_values():
    with pytest.raises(ValueError, match=r"\(n_components, dim\).*\(3,\)"):
        DiagonalGaussianMixture(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"diag_stds.*\(2, 1\).*\(2,\)"):
        DiagonalGaussianMixture(np.zeros((2, 1)), np.ones(2))
    with pytest.raises(ValueError, match=r"logits.*\(2,\).*\(3,\)"):
        DiagonalGaussianMixture(np.zeros((2, 1)), np.ones((2, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"diag_stds.*-0\.5"):
        DiagonalGaussianMixture(np.zeros((2, 1)), [[1.0], [-0.5]])


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: DiagonalGaussianMixture.create_isotropic([0.0, 1.0]), ValueError, "means"),
        (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=0.0), ValueError, "std"),
        (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=-1.0), ValueError, "std"),
        (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=np.nan), ValueError,
         "std"),
        (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=[1.0, 2.0]), ValueError,
         "std"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(std=0.0), ValueError, "std"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(n_components=0), ValueError,
         "n_components"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(n_components=2.5), TypeError,
         "n_components"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(dim=0), ValueError, "dim"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(dim=True), TypeError, "dim"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(mean_range=(1.0, 1.0)),
         ValueError, "mean_range"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(mean_range=3.0), TypeError,
         "mean_range"),
        (lambda: DiagonalGaussianMixture.create_isotropic_uniform(seed=-1), ValueError, "seed"),
        (lambda: DiagonalGaussianMixture.create_gmm40(loc_scaling=0.0), ValueError,
         "loc_scaling"),
        (lambda: DiagonalGaussianMixture.create_gmm40(scale=-1.0), ValueError, "scale"),
    ],
)
def test_factories_reject_bad_arguments(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("method", ["log_prob", "score", "log_prob_and_score", "get_log_prob",
                                    "get_score", "get_log_prob_and_score"])
@pytest.mark.parametrize("shape", [(3,), (4, 1), (2, 3), ()])
def test_wrong_last_axis_names_dim(method, shape):
    target, _ = small_target(k=3, d=2)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        getattr(target, method)(np.zeros(shape))


def test_non_numeric_points_raise_type_error():
    target, _ = small_target(k=3, d=2)
    with pytest.raises(TypeError, match="x"):
        target.log_prob([["a", "b"]])


# ---------------------------------------------------------- methods


def test_methods_match_reference_all_shapes():
    target, (means, stds, logits) = small_target(seed=2, k=3, d=2)
    x = as_float32(np.random.default_rng(0).normal(size=(2, 3, 2)) * 3)[0]
    for points in (x[0, 0], x[0], x, x.tolist()):
        points_array = np.asarray(points)
        expected_value = mixture_log_prob(means, stds, logits, points_array)
        expected_score = mixture_score(means, stds, logits, points_array)
        for value in (target.log_prob(points), target.get_log_prob(points)):
            assert value.shape == points_array.shape[:-1]
            assert_close(value, expected_value, rtol=2e-6, atol=2e-6, name="log_prob")
        for grad in (target.score(points), target.get_score(points)):
            assert grad.shape == points_array.shape
            assert_close(grad, expected_score, rtol=2e-5, atol=2e-5, name="score")
        for value, grad in (target.log_prob_and_score(points),
                            target.get_log_prob_and_score(points)):
            assert_close(value, expected_value, rtol=2e-6, atol=2e-6, name="log_prob")
            assert_close(grad, expected_score, rtol=2e-5, atol=2e-5, name="score")


def test_length_k_point_when_dim_equals_k():
    target, (means, stds, logits) = small_target(seed=3, k=2, d=2)
    value = target.log_prob(np.array([0.5, -0.5]))
    assert value.shape == ()
    assert_close(value, mixture_log_prob(means, stds, logits, np.array([0.5, -0.5])),
                 rtol=2e-6, atol=2e-6)


# ---------------------------------------------------------- dtype policy


def test_float64_input_is_float32_without_x64():
    target = DiagonalGaussianMixture(np.zeros((2, 2)), np.ones((2, 2)), np.zeros(2))
    assert target.dtype == np.float32
    value, grad = target.log_prob_and_score(np.ones((3, 2), np.float64))
    assert value.dtype == jnp.float32
    assert grad.dtype == jnp.float32
    assert target.sample(4).dtype == jnp.float32


def test_float64_parameters_under_x64():
    with enable_x64():
        rng = np.random.default_rng(0)
        means, stds, logits = random_mixture(rng, 3, 2)
        target = DiagonalGaussianMixture(means, stds, logits)
        assert target.dtype == np.float64
        for leaf in jax.tree.leaves(target):
            assert leaf.dtype == jnp.float64
        x = points_near_modes(rng, means, stds, 10)
        value, grad = target.log_prob_and_score(x)
        assert value.dtype == jnp.float64
        assert grad.dtype == jnp.float64
        assert_close(value, mixture_log_prob(means, stds, logits, x), rtol=1e-13, atol=1e-13)
        assert_close(grad, mixture_score(means, stds, logits, x), rtol=1e-12, atol=1e-12)
        assert target.sample(5).dtype == jnp.float64
        assert target.load_dataset("train", 5, include_log_probs=True).log_probs.dtype \
            == jnp.float64


def test_float32_parameters_stay_float32_under_x64():
    with enable_x64():
        means = np.zeros((2, 2), np.float32)
        stds = np.ones((2, 2), np.float32)
        target = DiagonalGaussianMixture(means, stds, np.zeros(2, np.float32))
        assert target.dtype == np.float32
        assert target.log_prob(np.zeros(2, np.float32)).dtype == jnp.float32


def test_mixed_dtypes_promote_under_x64():
    with enable_x64():
        means = np.array([[0.25, -1.5], [3.0, 2.0]], np.float32)
        stds = np.array([[1.0, 0.5], [2.0, 1.0]], np.float64)
        logits = jnp.array([0.0, 1.0], jnp.float32)
        target = DiagonalGaussianMixture(means, stds, logits)
        assert target.dtype == np.float64
        for leaf in jax.tree.leaves(target):
            assert leaf.dtype == jnp.float64

        float32_target = DiagonalGaussianMixture(means, stds.astype(np.float32),
                                                 np.zeros(2, np.float32))
        x64 = np.array([[0.1, 0.2]], np.float64)
        value, grad = float32_target.log_prob_and_score(x64)
        assert value.dtype == jnp.float64
        assert grad.dtype == jnp.float64
        expected = mixture_log_prob(*params_of(float32_target), x64)
        assert_close(value, expected, rtol=1e-12, atol=1e-12)


def test_no_x64_state_leaks_from_tests():
    assert not jax.config.jax_enable_x64
    assert jnp.zeros(1).dtype == jnp.float32


# ---------------------------------------------------------- pytree


def test_tree_round_trip_keeps_fields():
    target, _ = small_target()
    leaves, treedef = jax.tree_util.tree_flatten(target)
    assert len(leaves) == 3
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(again, DiagonalGaussianMixture)
    assert again.means is target.means
    assert again.diag_stds is target.diag_stds
    assert again.logits is target.logits
    assert (again.n_components, again.dim) == (target.n_components, target.dim)


def test_tree_unflatten_does_not_validate():
    target, _ = small_target()
    treedef = jax.tree_util.tree_structure(target)
    placeholders = [object(), None, "not an array"]
    rebuilt = jax.tree_util.tree_unflatten(treedef, placeholders)
    assert rebuilt.means is placeholders[0]
    assert rebuilt.diag_stds is None
    # Leaves that would fail the constructor's checks pass through unchanged.
    negative = jax.tree.map(lambda leaf: -jnp.ones_like(leaf), target)
    assert np.all(np.asarray(negative.diag_stds) == -1.0)


def test_tree_map_and_jit_identity():
    target, _ = small_target()
    doubled = jax.tree.map(lambda leaf: 2 * leaf, target)
    np.testing.assert_array_equal(doubled.means, 2 * target.means)
    passed = jax.jit(lambda t: t)(target)
    for a, b in zip(jax.tree.leaves(passed), jax.tree.leaves(target), strict=True):
        np.testing.assert_array_equal(a, b)


def test_jit_over_targets_traces_once():
    traces = []

    @jax.jit
    def evaluate(target, x):
        traces.append(None)
        return target.log_prob_and_score(x)

    x = np.array([[0.5, -0.5]], np.float32)
    for seed in range(4):
        target, (means, stds, logits) = small_target(seed=seed, k=3, d=2)
        value, grad = evaluate(target, x)
        assert_close(value, mixture_log_prob(means, stds, logits, x), rtol=2e-6, atol=2e-6)
        assert_close(grad, mixture_score(means, stds, logits, x), rtol=2e-5, atol=2e-5)
    assert len(traces) == 1
    assert evaluate._cache_size() == 1

    other_shape, _ = small_target(seed=9, k=4, d=2)
    evaluate(other_shape, x)
    assert len(traces) == 2


def test_methods_reuse_compilation_across_instances():
    from boltzkit.targets.gaussian_mixture import _target

    x = np.zeros((5, 2), np.float32)
    first, _ = small_target(seed=0)
    first.log_prob(x)
    first.score(x)
    first.log_prob_and_score(x)
    sizes = [f._cache_size() for f in (_target._log_prob, _target._score,
                                        _target._log_prob_and_score)]
    for seed in (1, 2, 3):
        target, _ = small_target(seed=seed)
        target.log_prob(x)
        target.score(x)
        target.log_prob_and_score(x)
    assert [f._cache_size() for f in (_target._log_prob, _target._score,
                                       _target._log_prob_and_score)] == sizes

    first.sample(16, seed=0)
    sample_size = _target._sample_indices._cache_size()
    for seed in (1, 2):
        small_target(seed=seed)[0].sample(16, seed=seed)
    assert _target._sample_indices._cache_size() == sample_size


def test_grad_with_respect_to_target():
    target, (means, stds, logits) = small_target(seed=5, k=3, d=2)
    x = np.random.default_rng(1).normal(size=(6, 2)) * 2
    x = as_float32(x)[0]

    def loss(t):
        return -jnp.mean(t.log_prob(x))

    grad = jax.jit(jax.grad(loss))(target)
    assert isinstance(grad, DiagonalGaussianMixture)
    for field in ("means", "diag_stds", "logits"):
        assert getattr(grad, field).shape == getattr(target, field).shape

    def reference_loss(m, s, lg):
        return -np.mean(mixture_log_prob(m, s, lg, x))

    expected = {
        "means": finite_difference_gradient(lambda m: reference_loss(m, stds, logits), means),
        "diag_stds": finite_difference_gradient(lambda s: reference_loss(means, s, logits), stds),
        "logits": finite_difference_gradient(lambda lg: reference_loss(means, stds, lg), logits),
    }
    for field, value in expected.items():
        assert_close(getattr(grad, field), value, rtol=1e-4, atol=1e-5, name=field)


def test_vmap_over_stacked_targets():
    targets = [small_target(seed=seed, k=3, d=2) for seed in range(4)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[t for t, _ in targets])
    assert stacked.means.shape == (4, 3, 2)
    x = np.array([[0.5, -0.5], [1.0, 2.0]], np.float32)
    values = jax.vmap(lambda t: t.log_prob(x))(stacked)
    scores = jax.jit(jax.vmap(lambda t: t.score(x)))(stacked)
    assert values.shape == (4, 2)
    for i, (_, params) in enumerate(targets):
        assert_close(values[i], mixture_log_prob(*params, x), rtol=2e-6, atol=2e-6)
        assert_close(scores[i], mixture_score(*params, x), rtol=2e-5, atol=2e-5)


def test_vmap_constructs_and_returns_targets():
    means = np.array([[0.0, 0.0], [3.0, 3.0]])
    logits = np.array([0.0, 0.5])
    scales = jnp.array([0.5, 1.0, 2.0])

    def build(scale):
        return DiagonalGaussianMixture(means, scale * jnp.ones((2, 2)), logits)

    batch = jax.vmap(build)(scales)
    assert isinstance(batch, DiagonalGaussianMixture)
    assert batch.diag_stds.shape == (3, 2, 2)
    x = np.array([[0.5, -0.5]])
    values = jax.vmap(lambda t: t.log_prob(x))(batch)
    for i, scale in enumerate([0.5, 1.0, 2.0]):
        expected = mixture_log_prob(means, np.full((2, 2), scale), logits, x)
        assert_close(values[i], expected, rtol=2e-6, atol=2e-6)


def test_jit_with_traced_parameters_skips_checks():
    # Under jit the values are unknown, so an invalid std cannot raise; the
    # result must then be NaN rather than the density of |std|.
    @jax.jit
    def evaluate(stds):
        return DiagonalGaussianMixture(jnp.zeros((1, 1)), stds, jnp.zeros(1)).log_prob(
            jnp.zeros(1))

    assert_close(evaluate(jnp.ones((1, 1))), -0.5 * np.log(2 * np.pi), rtol=1e-6, atol=1e-6)
    assert np.isnan(float(evaluate(-jnp.ones((1, 1)))))
    assert not np.isfinite(float(evaluate(jnp.zeros((1, 1)))))
    assert np.isnan(float(evaluate(jnp.zeros((1, 1)))))


# ---------------------------------------------------------- sampling


def test_sample_shape_and_dtype():
    target, _ = small_target(k=3, d=5)
    samples = target.sample(7, seed=0)
    assert samples.shape == (7, 5)
    assert samples.dtype == jnp.float32
    assert target.sample(0).shape == (0, 5)
    assert target.sample(1001).shape == (1001, 5)
    assert np.all(np.isfinite(np.asarray(target.sample(1001))))


@pytest.mark.parametrize(("m", "n"), [(37, 1000), (1000, 1025), (65536, 70000)])
def test_sample_prefix_stable(m, n):
    target = DiagonalGaussianMixture.create_gmm40()
    np.testing.assert_array_equal(target.sample(n, seed=3)[:m], target.sample(m, seed=3))


def test_sample_deterministic_and_seed_dependent():
    target = DiagonalGaussianMixture.create_gmm40()
    a = np.asarray(target.sample(100, seed=5))
    np.testing.assert_array_equal(a, target.sample(100, seed=5))
    assert not np.array_equal(a, target.sample(100, seed=6))
    assert len(np.unique(a, axis=0)) == 100


def test_sample_seed_forms_agree():
    target = DiagonalGaussianMixture.create_gmm40()
    reference = np.asarray(target.sample(50, seed=7))
    forms = [
        np.int64(7),
        np.uint32(7),
        jnp.array(7),
        jax.random.key(7),
        jax.random.key(7, impl="threefry2x32"),
        jax.random.PRNGKey(7),
        np.array([0, 7], np.uint32),
        jax.random.key_data(jax.random.key(7)),
    ]
    for seed in forms:
        np.testing.assert_array_equal(target.sample(50, seed=seed), reference)
    split = jax.random.split(jax.random.key(7))[1]
    from_split = np.asarray(target.sample(50, seed=split))
    assert not np.array_equal(from_split, reference)
    np.testing.assert_array_equal(target.sample(50, seed=jax.random.key_data(split)), from_split)
    assert target.sample(3, seed=2**32 - 1).shape == (3, 2)


@pytest.mark.parametrize(
    ("seed", "error"),
    [
        (-1, ValueError),
        (2**32, ValueError),
        (1.0, TypeError),
        (True, TypeError),
        ("0", TypeError),
        (None, TypeError),
        (jax.random.split(jax.random.key(0)), ValueError),
        (np.zeros(3, np.uint32), TypeError),
        (np.zeros(2, np.float32), TypeError),
    ],
)
def test_sample_rejects_bad_seeds(seed, error):
    target, _ = small_target()
    with pytest.raises(error, match="seed"):
        target.sample(3, seed=seed)


@pytest.mark.parametrize(
    ("n_samples", "error"),
    [(-1, ValueError), (1.5, TypeError), (2.0, TypeError), (True, TypeError),
     (np.bool_(True), TypeError), ("3", TypeError), (None, TypeError), (2**32, ValueError)],
)
def test_sample_rejects_bad_n_samples(n_samples, error):
    target, _ = small_target()
    with pytest.raises(error, match="n_samples"):
        target.sample(n_samples)


def test_sample_limit_message_states_limit():
    target, _ = small_target()
    with pytest.raises(ValueError, match=r"at most 2\*\*32 - 1 = 4294967295, got 4294967296"):
        target.sample(2**32)


def test_smallest_normal_std_stays_finite():
    # The smallest normal float32 std is accepted, and log_prob at the mean matches float64.
    std = np.finfo(np.float32).smallest_normal
    target = DiagonalGaussianMixture([[0.0]], [[std]])
    expected = -np.log(np.float64(std)) - 0.5 * np.log(2.0 * np.pi)
    value = float(target.log_prob(np.zeros(1, np.float32)))
    assert np.isfinite(value)
    assert abs(value - expected) <= 1e-5 * abs(expected)


def test_sample_accepts_numpy_integer_n_samples():
    target, _ = small_target()
    assert target.sample(np.int64(4)).shape == (4, 2)
    assert target.sample(jnp.array(4)).shape == (4, 2)


def test_sample_at_matches_sample():
    target = DiagonalGaussianMixture.create_gmm40()
    full = np.asarray(target.sample(20, seed=4))
    np.testing.assert_array_equal(target.sample_at(4, [3, 17, 0]), full[[3, 17, 0]])
    grid = target.sample_at(jax.random.key(4), np.arange(20).reshape(4, 5))
    np.testing.assert_array_equal(grid.reshape(20, 2), full)
    with pytest.raises(TypeError, match="indices"):
        target.sample_at(0, [1.0, 2.0])


def well_separated_target(logits):
    k = len(logits)
    means = np.zeros((k, 2))
    means[:, 0] = 30.0 * np.arange(k)
    stds = np.stack([np.linspace(0.5, 2.0, k), np.linspace(2.0, 0.5, k)], axis=1)
    return DiagonalGaussianMixture(means, stds, logits)


def nearest_component(target, samples):
    means = np.asarray(target.means, np.float64)
    distances = np.sum((np.asarray(samples, np.float64)[:, None, :] - means) ** 2, axis=-1)
    return np.argmin(distances, axis=-1)


def test_sample_component_frequencies_chi_square():
    logits = np.log([0.1, 0.2, 0.3, 0.15, 0.25])
    target = well_separated_target(logits)
    n = 40000
    samples = target.sample(n, seed=11)
    counts = np.bincount(nearest_component(target, samples), minlength=5)
    expected = n * np.asarray(target.weights, np.float64)
    expected *= n / expected.sum()
    # A correct sampler fails this at the fixed seed with probability 1e-3.
    assert scipy.stats.chisquare(counts, expected).pvalue > 1e-3


def test_sample_per_component_moments():
    logits = np.log([0.2, 0.5, 0.3])
    target = well_separated_target(logits)
    n = 40000
    samples = np.asarray(target.sample(n, seed=12), np.float64)
    labels = nearest_component(target, samples)
    means = np.asarray(target.means, np.float64)
    stds = np.asarray(target.diag_stds, np.float64)
    for k in range(3):
        chosen = samples[labels == k]
        m = len(chosen)
        assert m > 0.15 * n
        # Sample mean and std within 5 standard errors; the standard error of a
        # Gaussian sample std is about std / sqrt(2 m).
        np.testing.assert_array_less(np.abs(chosen.mean(axis=0) - means[k]),
                                     5 * stds[k] / np.sqrt(m))
        np.testing.assert_array_less(np.abs(chosen.std(axis=0, ddof=1) - stds[k]),
                                     5 * stds[k] / np.sqrt(2 * m))
        # Coordinates are independent within a component.
        correlation = np.corrcoef(chosen.T)[0, 1]
        assert abs(correlation) < 5 / np.sqrt(m)
        # Standardized coordinates are normal: Kolmogorov-Smirnov at 1e-3.
        z = (chosen - means[k]) / stds[k]
        for d in range(2):
            assert scipy.stats.kstest(z[:, d], "norm").pvalue > 1e-3


@pytest.mark.parametrize("dead", [0, 1, 3])
def test_zero_weight_component_never_sampled(dead):
    logits = np.zeros(4)
    logits[dead] = -np.inf
    target = well_separated_target(logits)
    samples = target.sample(40000, seed=dead)
    assert np.all(np.isfinite(np.asarray(samples)))
    labels = nearest_component(target, samples)
    assert not np.any(labels == dead)
    assert set(np.unique(labels)) == {0, 1, 2, 3} - {dead}

    dataset = target.load_dataset("train", 5000, include_log_probs=True, include_scores=True)
    assert not np.any(nearest_component(target, dataset.samples) == dead)
    for field in (dataset.samples, dataset.log_probs, dataset.scores):
        assert np.all(np.isfinite(np.asarray(field)))
    at_dead_mean = np.asarray(target.means)[dead][None]
    value, grad = target.log_prob_and_score(at_dead_mean)
    assert np.all(np.isfinite(np.asarray(value)))
    assert np.all(np.isfinite(np.asarray(grad)))
    target_grad = jax.grad(lambda t: jnp.sum(t.log_prob(dataset.samples[:100])))(target)
    for leaf in jax.tree.leaves(target_grad):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_tiny_weight_sampled_at_its_rate():
    # A weight of about 1e-3 must neither vanish nor be inflated.
    target = well_separated_target(np.log([1e-3, 0.999]))
    n = 50000
    labels = nearest_component(target, target.sample(n, seed=1))
    count = int(np.sum(labels == 0))
    assert abs(count - n * 1e-3) < 5 * np.sqrt(n * 1e-3)
