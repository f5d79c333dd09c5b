"""Importance-weight metrics against closed forms for Gaussians and a NumPy reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit import evaluation
from tests._jax_compat import enable_x64
from tests._reference import assert_close

LOG_Z = 2.3
MODEL_STD = 1.5


def gaussian_log_density(x, std):
    return -0.5 * (x / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def unnormalized_target(x):
    """Return log(Z * N(x; 0, 1)), a target with a known log Z."""
    return gaussian_log_density(x, 1.0) + LOG_Z


# Closed forms for p = N(0, 1) and q = N(0, s^2), s = MODEL_STD.
KL_QP = math.log(1.0 / MODEL_STD) + MODEL_STD**2 / 2 - 0.5
KL_PQ = math.log(MODEL_STD) + 1.0 / (2 * MODEL_STD**2) - 0.5
ESS_FRACTION = math.sqrt(2 - 1 / MODEL_STD**2) / MODEL_STD
NLL = 0.5 * math.log(2 * math.pi * MODEL_STD**2) + 1.0 / (2 * MODEL_STD**2)


@pytest.fixture(scope="module")
def model_draws():
    x = np.random.default_rng(0).normal(size=40_000) * MODEL_STD
    return unnormalized_target(x), gaussian_log_density(x, MODEL_STD)


@pytest.fixture(scope="module")
def target_draws():
    x = np.random.default_rng(1).normal(size=40_000)
    return unnormalized_target(x), gaussian_log_density(x, MODEL_STD)


def test_logZ_estimate_recovers_known_logZ(model_draws):
    estimate = float(evaluation.logZ_estimate(*model_draws))
    assert abs(estimate - LOG_Z) < 0.01


def test_elbo_and_reverse_kl_closed_form(model_draws):
    log_weights = model_draws[0] - model_draws[1]
    tolerance = 4 * log_weights.std() / math.sqrt(log_weights.size)
    assert abs(float(evaluation.elbo(*model_draws)) - (LOG_Z - KL_QP)) < tolerance
    assert abs(float(evaluation.reverse_kl(*model_draws, logZ=LOG_Z)) - KL_QP) < tolerance


def test_eubo_forward_kl_nll_closed_form(target_draws):
    log_weights = target_draws[0] - target_draws[1]
    tolerance = 4 * log_weights.std() / math.sqrt(log_weights.size)
    assert abs(float(evaluation.eubo(*target_draws)) - (LOG_Z + KL_PQ)) < tolerance
    assert abs(float(evaluation.forward_kl(*target_draws, logZ=LOG_Z)) - KL_PQ) < tolerance
    nll_tolerance = 4 * target_draws[1].std() / math.sqrt(target_draws[1].size)
    assert abs(float(evaluation.nll(target_draws[1])) - NLL) < nll_tolerance


def test_reverse_and_forward_ess_closed_form(model_draws, target_draws):
    assert abs(float(evaluation.reverse_ess(*model_draws)) - ESS_FRACTION) < 0.02
    assert abs(float(evaluation.forward_ess(*target_draws)) - ESS_FRACTION) < 0.02


def test_ess_matches_numpy_reference():
    rng = np.random.default_rng(2)
    target_log_probs = rng.normal(size=300) * 3.0 - 50.0
    model_log_probs = rng.normal(size=300)
    log_w = target_log_probs - model_log_probs
    w = np.exp(log_w - log_w.max())
    reverse = w.sum() ** 2 / (w.size * np.sum(w**2))
    forward = 1.0 / (np.mean(np.exp(log_w - log_w.max())) * np.mean(np.exp(log_w.max() - log_w)))
    forward_direct = 1.0 / np.mean(w) / np.mean(1.0 / w)
    assert_close(evaluation.reverse_ess(target_log_probs, model_log_probs), reverse, rtol=1e-4, atol=0)
    assert_close(evaluation.forward_ess(target_log_probs, model_log_probs), forward, rtol=1e-4, atol=0)
    assert_close(forward, forward_direct, rtol=1e-10, atol=0)


def test_ess_of_equal_weights_is_one():
    values = jnp.full((10,), -3.0)
    assert float(evaluation.reverse_ess(values, values - 1.0)) == pytest.approx(1.0, abs=1e-6)
    assert float(evaluation.forward_ess(values, values - 1.0)) == pytest.approx(1.0, abs=1e-6)


def test_ess_of_one_dominant_weight_is_one_over_n():
    target_log_probs = jnp.array([0.0, -200.0, -200.0, -200.0])
    ess = float(evaluation.reverse_ess(target_log_probs, jnp.zeros(4)))
    assert ess == pytest.approx(0.25, rel=1e-5)


def test_large_log_weights_stay_finite():
    target_log_probs = jnp.array([1e4, 1e4 + 1.0, 1e4 - 2.0])
    model_log_probs = jnp.zeros(3)
    for function in (evaluation.reverse_ess, evaluation.forward_ess, evaluation.logZ_estimate):
        assert np.isfinite(float(function(target_log_probs, model_log_probs))), function.__name__


def test_metrics_jit_and_differentiate():
    target_log_probs = jnp.array([0.5, -1.0, 0.2])
    model_log_probs = jnp.array([0.1, -0.3, 0.0])
    for function in (
        evaluation.reverse_ess,
        evaluation.forward_ess,
        evaluation.logZ_estimate,
        evaluation.elbo,
        evaluation.eubo,
        evaluation.reverse_kl,
        evaluation.forward_kl,
    ):
        eager = float(function(target_log_probs, model_log_probs))
        jitted = float(jax.jit(function)(target_log_probs, model_log_probs))
        assert jitted == pytest.approx(eager, rel=1e-6), function.__name__
        gradient = jax.grad(function, argnums=1)(target_log_probs, model_log_probs)
        assert np.all(np.isfinite(np.asarray(gradient))), function.__name__


def test_metrics_in_float64():
    with enable_x64():
        target_log_probs = jnp.array([0.5, -1.0, 0.2], jnp.float64)
        model_log_probs = jnp.array([0.1, -0.3, 0.0], jnp.float64)
        value = evaluation.elbo(target_log_probs, model_log_probs)
        assert value.dtype == jnp.float64
        assert float(value) == pytest.approx(np.mean([0.4, -0.7, 0.2]), rel=1e-12)
        mixed = evaluation.elbo(target_log_probs, model_log_probs.astype(jnp.float32))
        assert mixed.dtype == jnp.float64


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="same samples"):
        evaluation.elbo(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"target_log_probs must have shape \(n_samples,\)"):
        evaluation.reverse_ess(jnp.zeros((3, 1)), jnp.zeros(3))
    with pytest.raises(ValueError, match="model_log_probs"):
        evaluation.nll(jnp.zeros(()))


def test_logZ_must_be_finite():
    with pytest.raises(ValueError, match="logZ must be finite"):
        evaluation.reverse_kl(jnp.zeros(3), jnp.zeros(3), logZ=float("nan"))
    with pytest.raises(TypeError, match="logZ must be a real number"):
        evaluation.forward_kl(jnp.zeros(3), jnp.zeros(3), logZ="0")
