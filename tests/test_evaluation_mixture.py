"""Mixture metrics: exact samples, a sampler that drops half of the modes, and a NumPy reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from boltzkit import evaluation
from boltzkit.targets import DiagonalGaussianMixture
from tests._reference import assert_close


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


def half_mixture(target):
    """Return the mixture of the first half of the components, renormalized."""
    half = target.n_components // 2
    return DiagonalGaussianMixture(target.means[:half], target.diag_stds[:half], target.logits[:half])


def test_responsibilities_match_numpy_reference():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(4, 3)) * 2.0
    stds = rng.uniform(0.5, 1.5, size=(4, 3))
    logits = rng.normal(size=4)
    x = rng.normal(size=(25, 3)) * 3.0
    target = DiagonalGaussianMixture(means, stds, logits)
    z = (x[:, None, :] - means[None]) / stds[None]
    joints = logits - np.log(np.exp(logits).sum()) - 0.5 * np.sum(z**2, axis=-1) - np.log(stds).sum(-1)
    expected = softmax(joints, axis=-1)
    assert_close(evaluation.responsibilities(target, x), expected, rtol=1e-4, atol=1e-6)


def test_responsibilities_far_away_are_one_hot():
    target = DiagonalGaussianMixture.create_isotropic([[0.0], [10.0]], std=1.0)
    values = np.asarray(evaluation.responsibilities(target, [[1e30], [-1e30]]))
    assert np.all(np.isfinite(values))
    assert values.sum(axis=1).tolist() == [1.0, 1.0]
    assert sorted(values.ravel().tolist()) == [0.0, 0.0, 1.0, 1.0]


def test_exact_samples_cover_every_mode(gmm40):
    samples = gmm40.sample(2000, seed=1)
    assert float(evaluation.entropic_mode_coverage(gmm40, samples)) > 0.99
    assert int(evaluation.modes_covered(gmm40, samples)) == 40
    assert float(evaluation.component_weights_tv(gmm40, samples)) < 0.1


def test_sampler_dropping_half_the_modes():
    # 40 unit components on an 8 x 5 grid with spacing 12 barely overlap, so
    # a sampler of the first 20 leaves nothing on the other 20.
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    target = DiagonalGaussianMixture.create_isotropic(grid * 12.0, std=1.0)
    samples = half_mixture(target).sample(4000, seed=2)
    frequencies = np.asarray(evaluation.component_frequencies(target, samples))
    assert frequencies[20:].sum() < 1e-6
    emc = float(evaluation.entropic_mode_coverage(target, samples))
    assert emc == pytest.approx(math.log(20) / math.log(40), abs=0.005)
    assert int(evaluation.modes_covered(target, samples)) == 20
    assert float(evaluation.component_weights_tv(target, samples)) == pytest.approx(0.5, abs=1e-4)


def test_gmm40_sampler_dropping_half_the_modes(gmm40):
    samples = half_mixture(gmm40).sample(2000, seed=2)
    assert float(evaluation.entropic_mode_coverage(gmm40, samples)) < 0.85
    assert int(evaluation.modes_covered(gmm40, samples)) <= 24
    assert float(evaluation.component_weights_tv(gmm40, samples)) > 0.45


def test_component_weights_tv_matches_numpy(gmm40):
    samples = gmm40.sample(300, seed=3)
    frequencies = np.asarray(evaluation.responsibilities(gmm40, samples), np.float64).mean(axis=0)
    expected = 0.5 * np.abs(frequencies - 1.0 / 40).sum()
    assert_close(evaluation.component_weights_tv(gmm40, samples), expected, rtol=1e-4, atol=1e-6)
    entropy = -np.sum(frequencies * np.log(frequencies)) / np.log(40)
    assert_close(evaluation.entropic_mode_coverage(gmm40, samples), entropy, rtol=1e-5, atol=0)


def test_modes_covered_threshold_is_relative_to_weights():
    target = DiagonalGaussianMixture.create_isotropic([[-10.0], [10.0]], std=1.0, logits=[0.0, -np.log(9)])
    # Weights 0.9 and 0.1; one sample in ten at the light component gives it
    # its full weight, and a frequency of 0.05 is half of it.
    samples = np.array([[-10.0]] * 19 + [[10.0]])
    assert int(evaluation.modes_covered(target, samples, threshold=0.5)) == 2
    assert int(evaluation.modes_covered(target, samples, threshold=0.6)) == 1


def test_emc_of_one_component_is_one():
    target = DiagonalGaussianMixture.create_isotropic([[0.0, 0.0]], std=1.0)
    assert float(evaluation.entropic_mode_coverage(target, np.zeros((3, 2)))) == 1.0


def test_mixture_metrics_jit(gmm40):
    samples = gmm40.sample(100, seed=4)
    for function in (
        evaluation.entropic_mode_coverage,
        evaluation.component_weights_tv,
        evaluation.modes_covered,
    ):
        eager = float(function(gmm40, samples))
        assert float(jax.jit(function)(gmm40, samples)) == pytest.approx(eager, rel=1e-6)


def test_mixture_metrics_reject_bad_input(gmm40):
    with pytest.raises(TypeError, match="target must be a DiagonalGaussianMixture"):
        evaluation.entropic_mode_coverage(object(), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"samples must have shape \(n_samples, 2\)"):
        evaluation.modes_covered(gmm40, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="threshold must be > 0"):
        evaluation.modes_covered(gmm40, np.zeros((3, 2)), threshold=0.0)
    with pytest.raises(TypeError, match="samples must be an array of real numbers"):
        evaluation.responsibilities(gmm40, jnp.zeros((3, 2), bool))


@pytest.mark.parametrize("metric", ["entropic_mode_coverage", "modes_covered", "component_weights_tv"])
def test_mixture_metrics_reject_nan_rows(metric):
    target = DiagonalGaussianMixture.create_gmm40()
    samples = np.asarray(target.sample(50, seed=0)).copy()
    samples[7] = np.inf
    with pytest.raises(ValueError, match=r"samples must be finite.*row 7"):
        getattr(evaluation, metric)(target, samples)
