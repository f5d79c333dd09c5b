"""The example scripts at a reduced size, and the numerical pieces they rely on."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit.targets import DiagonalGaussianMixture

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name: str):
    """Import ``examples/NAME.py`` as a module; the examples are scripts, not a package."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flow_matching():
    return load_example("train_flow_matching")


@pytest.fixture(scope="module")
def annealed_langevin():
    return load_example("annealed_langevin")


def check_outputs(out_dir, figure: str, metrics: dict[str, float]) -> None:
    with open(os.path.join(out_dir, figure), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as handle:
        assert json.load(handle) == pytest.approx(metrics)
    with open(os.path.join(out_dir, "metrics.md"), encoding="utf-8") as handle:
        table = handle.read().splitlines()
    assert table[:2] == ["| metric | value |", "| --- | --- |"]
    assert len(table) == 2 + len(metrics)


# ------------------------------------------------------------ flow matching


def test_flow_matching_quick_command_line(flow_matching, tmp_path, capsys):
    # optax 0.2.8's Adam raises a float to an int32 step count, which strict
    # promotion rejects; the example itself runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        metrics = flow_matching.run(["--quick", "--out", str(tmp_path)])

    for name in ("reverse_ess", "forward_ess", "elbo", "eubo", "logZ_error", "mmd_squared", "w2",
                 "modes_covered", "emc", "component_weights_tv"):
        assert math.isfinite(metrics[name]), name
    # ELBO <= log Z = 0 <= EUBO holds for any normalized model density.
    assert metrics["elbo"] <= 0.0
    assert metrics["eubo"] >= 0.0
    assert metrics["train_steps"] == flow_matching.QUICK["steps"]
    assert metrics["n_samples"] == flow_matching.QUICK["n_eval"]
    check_outputs(tmp_path, "flow_matching.png", metrics)
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):]) == pytest.approx(metrics)


def test_flow_matching_rejects_zero_steps(flow_matching, capsys):
    with pytest.raises(SystemExit) as error:
        flow_matching.parse_args(["--steps", "0"])
    assert error.value.code == 2
    assert "--steps: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_flow_matching_log_density_matches_jacobian(flow_matching):
    # The divergence integrated along the RK4 path must match log |det| of the
    # Jacobian of the integrated map, which jax.jacfwd computes independently.
    params = flow_matching.init_mlp(jax.random.key(3), [2 + 16 + 16, 32, 32, 2])
    y0 = jnp.array([0.3, -0.7])

    def flow_map(y):
        return flow_matching.integrate(params, y, 0.0, 1.0, 32)[0]

    _, delta = flow_matching.integrate(params, y0, 0.0, 1.0, 32)
    _, log_det = np.linalg.slogdet(np.asarray(jax.jacfwd(flow_map)(y0), np.float64))
    assert float(delta) == pytest.approx(-log_det, abs=1e-3)


def test_flow_matching_log_q_inverts_sampling(flow_matching):
    # log q at the model's own samples, computed by integrating back to t = 0,
    # must agree with the value tracked while sampling.
    params = flow_matching.init_mlp(jax.random.key(4), [2 + 16 + 16, 32, 32, 2])
    samples, log_q = flow_matching.sample_with_log_q(params, jax.random.key(5), 16, 32)
    log_q_back = flow_matching.log_q_of(params, samples, 32)
    np.testing.assert_allclose(np.asarray(log_q_back), np.asarray(log_q), atol=2e-3)


# ------------------------------------------------------- annealed Langevin


def test_annealed_langevin_quick_command_line(annealed_langevin, tmp_path, capsys):
    metrics = annealed_langevin.run(["--quick", "--out", str(tmp_path)])

    for name in ("chains/reverse_ess", "chains/logZ_error", "chains/elbo", "chains/w2",
                 "resampled/w2", "resampled/modes_covered", "mean_acceptance"):
        assert math.isfinite(metrics[name]), name
    assert "chains/eubo" not in metrics  # AIS has no density at the test samples.
    assert 0.0 < metrics["mean_acceptance"] <= 1.0
    assert metrics["chains/n_samples"] == annealed_langevin.QUICK["n_chains"]
    check_outputs(tmp_path, "annealed_langevin.png", metrics)
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):]) == pytest.approx(metrics)


def test_annealed_langevin_estimates_gaussian_normalizer(annealed_langevin):
    # For a single Gaussian the path stays Gaussian and AIS with 2000 chains
    # estimates log Z = 0 and the mean closely; the reference is the closed form.
    mean = np.array([3.0, -2.0])
    target = DiagonalGaussianMixture.create_isotropic(mean[None], std=2.0)
    samples, log_weights, acceptance = annealed_langevin.run_sampler(
        target, jax.random.key(0), n_chains=2000, n_levels=100
    )
    log_weights = np.asarray(log_weights, np.float64)
    weights = np.exp(log_weights - log_weights.max())
    log_z = log_weights.max() + np.log(weights.mean())
    weighted_mean = weights @ np.asarray(samples, np.float64) / weights.sum()

    assert abs(log_z) < 0.05
    np.testing.assert_allclose(weighted_mean, mean, atol=0.2)
    assert float(jnp.min(acceptance)) > 0.3


def test_annealed_langevin_weights_vanish_for_initial_target(annealed_langevin):
    # When the target is the initial distribution itself, every weight
    # increment is zero, so all log-weights vanish up to float32 rounding.
    target = DiagonalGaussianMixture.create_isotropic(
        np.zeros((1, 2)), std=annealed_langevin.INIT_STD
    )
    _, log_weights, _ = annealed_langevin.run_sampler(target, jax.random.key(1), n_chains=64, n_levels=5)
    np.testing.assert_allclose(np.asarray(log_weights), 0.0, atol=1e-5)
