"""The evaluate call: which metrics each combination of inputs gives, and bad input."""

import math

import numpy as np
import pytest

from boltzkit import evaluation
from boltzkit.targets import DiagonalGaussianMixture

SAMPLE_KEYS = {
    "n_samples",
    "n_reference",
    "mmd_squared",
    "w2",
    "energy_distance",
    "log_prob_tv",
    "emc",
    "modes_covered",
    "component_weights_tv",
}
REVERSE_KEYS = {"reverse_ess", "logZ_estimate", "logZ_error", "elbo", "reverse_kl"}
FORWARD_KEYS = {"eubo", "forward_ess", "forward_kl", "nll"}


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


@pytest.fixture(scope="module")
def perfect_metrics(gmm40):
    samples = gmm40.sample(1000, seed=11)
    return evaluation.evaluate(gmm40, samples, model_log_prob=gmm40.log_prob)


def test_perfect_sampler_keys_and_types(perfect_metrics):
    assert set(perfect_metrics) == SAMPLE_KEYS | REVERSE_KEYS | FORWARD_KEYS
    assert all(type(value) is float for value in perfect_metrics.values())


def test_perfect_sampler_importance_metrics(perfect_metrics):
    assert perfect_metrics["reverse_ess"] == pytest.approx(1.0, abs=1e-6)
    assert perfect_metrics["forward_ess"] == pytest.approx(1.0, abs=1e-6)
    assert perfect_metrics["logZ_error"] == pytest.approx(0.0, abs=1e-6)
    assert perfect_metrics["reverse_kl"] == pytest.approx(0.0, abs=1e-6)
    assert perfect_metrics["forward_kl"] == pytest.approx(0.0, abs=1e-6)
    assert perfect_metrics["elbo"] == pytest.approx(0.0, abs=1e-6)
    assert perfect_metrics["eubo"] == pytest.approx(0.0, abs=1e-6)


def test_perfect_sampler_nll_is_target_entropy(gmm40, perfect_metrics):
    # The modes of GMM40 barely overlap, so the entropy is close to that of
    # one unit Gaussian in 2-D plus log 40.
    entropy = math.log(2 * math.pi * math.e) + math.log(40)
    assert perfect_metrics["nll"] == pytest.approx(entropy, abs=0.15)


def test_perfect_sampler_sample_metrics_at_floor(perfect_metrics):
    assert perfect_metrics["n_samples"] == 1000.0
    assert perfect_metrics["n_reference"] == 1000.0
    assert perfect_metrics["modes_covered"] == 40.0
    assert perfect_metrics["emc"] > 0.99
    assert perfect_metrics["component_weights_tv"] < 0.12
    assert perfect_metrics["log_prob_tv"] < 0.15
    assert abs(perfect_metrics["mmd_squared"]) < 0.003
    assert abs(perfect_metrics["energy_distance"]) < 0.3
    assert 2.5 < perfect_metrics["w2"] < 8.0


def test_samples_only_gives_sample_metrics(gmm40):
    metrics = evaluation.evaluate(gmm40, gmm40.sample(40, seed=1), n_reference=40)
    assert set(metrics) == SAMPLE_KEYS
    assert metrics["n_reference"] == 40.0


def test_model_log_probs_arrays():
    # 40 unit components on an 8 x 5 grid with spacing 12, so that the model
    # with twice the std still keeps its components apart.
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    target = DiagonalGaussianMixture.create_isotropic(grid * 12.0, std=1.0)
    broad = DiagonalGaussianMixture.create_isotropic(grid * 12.0, std=2.0)
    samples = broad.sample(40, seed=2)
    reference = target.load_dataset("test", 40, seed=5).samples
    metrics = evaluation.evaluate(
        target,
        samples,
        model_log_probs=broad.log_prob(samples),
        reference_samples=reference,
        reference_model_log_probs=broad.log_prob(reference),
    )
    assert set(metrics) == SAMPLE_KEYS | REVERSE_KEYS | FORWARD_KEYS
    # KL(p || q) = log 4 - 3/4 and KL(q || p) = 3 - log 4 for each component
    # pair (two coordinates, std ratio 2); the tolerances are about 3 standard
    # errors at 40 samples.
    assert metrics["forward_kl"] == pytest.approx(math.log(4) - 0.75, abs=0.4)
    assert metrics["reverse_kl"] == pytest.approx(3.0 - math.log(4), abs=0.4)
    assert metrics["eubo"] > metrics["elbo"]


def test_default_reference_is_test_split(gmm40):
    samples = gmm40.sample(40, seed=3)
    reference = gmm40.load_dataset("test", 40, seed=7).samples
    by_default = evaluation.evaluate(gmm40, samples, seed=7)
    explicit = evaluation.evaluate(gmm40, samples, reference_samples=reference)
    assert by_default == explicit


def test_bad_samples_are_rejected(gmm40):
    samples = np.asarray(gmm40.sample(10, seed=4))
    with pytest.raises(ValueError, match=r"samples must have shape \(n_samples, 2\)"):
        evaluation.evaluate(gmm40, samples[:, :1])
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        evaluation.evaluate(gmm40, samples[:1])
    with_nan = samples.copy()
    with_nan[3, 1] = np.nan
    with_nan[7, 0] = np.inf
    with pytest.raises(ValueError, match="2 rows with NaN or inf values, the first at row 3"):
        evaluation.evaluate(gmm40, with_nan)


def test_bad_log_probs_are_rejected(gmm40):
    samples = gmm40.sample(10, seed=5)
    with pytest.raises(ValueError, match=r"model_log_probs must have shape \(10,\)"):
        evaluation.evaluate(gmm40, samples, model_log_probs=np.zeros(9))
    values = np.zeros(10)
    values[2] = -np.inf
    with pytest.raises(ValueError, match="first at index 2"):
        evaluation.evaluate(gmm40, samples, model_log_probs=values)
    with pytest.raises(TypeError, match="model_log_prob must be a function"):
        evaluation.evaluate(gmm40, samples, model_log_prob=np.zeros(10))
    with pytest.raises(ValueError, match="either reference_samples or n_reference"):
        evaluation.evaluate(gmm40, samples, reference_samples=samples, n_reference=10)
