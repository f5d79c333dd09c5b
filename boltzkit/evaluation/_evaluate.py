"""One call that runs every metric its inputs allow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from boltzkit._validation import as_float_array, check_int, check_real
from boltzkit.evaluation import _mixture, _samples, _weights
from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

# The U-statistics need two points per set.
MIN_SAMPLES = 2


def check_sample_array(name: str, samples: Any, dim: int) -> jax.Array:
    """Convert samples to an array of shape (n, dim) and reject non-finite rows."""
    samples = as_float_array(name, samples)
    if samples.ndim != 2 or samples.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n_samples, {dim}) with the target's dimension {dim}, "
            f"got shape {tuple(samples.shape)}"
        )
    if samples.shape[0] < MIN_SAMPLES:
        raise ValueError(
            f"{name} must have at least {MIN_SAMPLES} samples, got {samples.shape[0]}"
        )
    finite = np.isfinite(np.asarray(samples)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} has {bad.size} rows with NaN or inf values, the first at row {bad[0]}; "
            "remove or fix them before evaluating"
        )
    return samples


def _check_log_probs(name: str, values: Any, n_samples: int) -> jax.Array:
    values = as_float_array(name, values)
    if values.shape != (n_samples,):
        raise ValueError(
            f"{name} must have shape ({n_samples},), one value per sample, got shape "
            f"{tuple(values.shape)}"
        )
    finite = np.isfinite(np.asarray(values))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} has {bad.size} values that are NaN or infinite, the first at index "
            f"{bad[0]} ({float(values[bad[0]])}); the model density must be positive at its "
            "own samples"
        )
    return values


def evaluate(
    target: DiagonalGaussianMixture,
    samples: Any,
    *,
    model_log_probs: Any = None,
    reference_samples: Any = None,
    reference_model_log_probs: Any = None,
    model_log_prob: Callable[[jax.Array], Any] | None = None,
    n_reference: int | None = None,
    seed: Any = 0,
    mmd_bandwidth: float | None = None,
    coverage_threshold: float = _mixture.DEFAULT_COVERAGE_THRESHOLD,
    n_bins: int = 50,
) -> dict[str, float]:
    """Run every metric that the given inputs allow and return a flat dict of floats.

    Always computed from ``samples`` and reference samples: ``mmd_squared``
    (median-heuristic bandwidth unless ``mmd_bandwidth`` is given), ``w2``
    (exact for equal sizes up to 4096, Sinkhorn otherwise, which is slow on
    a CPU: see `wasserstein2`),
    ``energy_distance`` and ``log_prob_tv``; for a mixture target also
    ``emc``, ``modes_covered`` and ``component_weights_tv``. With the
    model's normalized log density at ``samples``: ``reverse_ess``,
    ``logZ_estimate``, ``logZ_error`` (the estimate minus the target's true
    ``logZ``), ``elbo`` and ``reverse_kl``. With the model's log density at
    the reference samples: ``eubo``, ``forward_ess``, ``forward_kl`` and
    ``nll``. ``n_samples`` and ``n_reference`` record the sizes, because
    every sample-based metric depends on them.

    Args:
        target: the target distribution.
        samples: model samples of shape ``(N, D)`` with ``N >= 2``, all finite.
        model_log_probs: the model's normalized log density at ``samples``,
            shape ``(N,)``.
        reference_samples: exact target samples of shape ``(M, D)``; by
            default ``n_reference`` items of the target's ``"test"`` split
            for ``seed``.
        reference_model_log_probs: the model's log density at
            ``reference_samples``, shape ``(M,)``.
        model_log_prob: a function from points of shape ``(n, D)`` to the
            model's log density, used for whichever of the two log density
            arrays is not given.
        n_reference: the number of reference samples to draw; ``N`` by
            default, which makes the W2 exact.
        seed: the dataset seed of the reference samples.
        mmd_bandwidth: the MMD length scale; the median heuristic by default.
        coverage_threshold: the fraction of a component's weight that its
            frequency must reach to count as covered.
        n_bins: bins of the log density histograms.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> metrics = evaluate(target, target.sample(500, seed=1), model_log_prob=target.log_prob)
        >>> round(metrics["reverse_ess"], 3), round(metrics["forward_ess"], 3)
        (1.0, 1.0)
        >>> metrics["modes_covered"]
        40.0
    """
    dim = target.dim
    samples = check_sample_array("samples", samples, dim)
    n_samples = samples.shape[0]
    coverage_threshold = check_real("coverage_threshold", coverage_threshold, positive=True)
    n_bins = check_int("n_bins", n_bins, minimum=1)
    if model_log_prob is not None and not callable(model_log_prob):
        raise TypeError(
            f"model_log_prob must be a function of the samples, got {type(model_log_prob).__name__}"
        )

    if reference_samples is None:
        n_reference = n_samples if n_reference is None else check_int(
            "n_reference", n_reference, minimum=MIN_SAMPLES
        )
        reference_samples = target.load_dataset("test", n_reference, seed=seed).samples
    elif n_reference is not None:
        raise ValueError("pass either reference_samples or n_reference, not both")
    reference_samples = check_sample_array("reference_samples", reference_samples, dim)
    n_reference = reference_samples.shape[0]

    if model_log_probs is None and model_log_prob is not None:
        model_log_probs = model_log_prob(samples)
    if reference_model_log_probs is None and model_log_prob is not None:
        reference_model_log_probs = model_log_prob(reference_samples)

    target_at_samples = target.log_prob(samples)
    target_at_reference = target.log_prob(reference_samples)
    logZ = float(target.logZ)

    metrics: dict[str, Any] = {"n_samples": n_samples, "n_reference": n_reference}

    if model_log_probs is not None:
        model_log_probs = _check_log_probs("model_log_probs", model_log_probs, n_samples)
        estimate = _weights.logZ_estimate(target_at_samples, model_log_probs)
        metrics["reverse_ess"] = _weights.reverse_ess(target_at_samples, model_log_probs)
        metrics["logZ_estimate"] = estimate
        metrics["logZ_error"] = float(estimate) - logZ
        metrics["elbo"] = _weights.elbo(target_at_samples, model_log_probs)
        metrics["reverse_kl"] = _weights.reverse_kl(target_at_samples, model_log_probs, logZ)

    if reference_model_log_probs is not None:
        reference_model_log_probs = _check_log_probs(
            "reference_model_log_probs", reference_model_log_probs, n_reference
        )
        pair = (target_at_reference, reference_model_log_probs)
        metrics["eubo"] = _weights.eubo(*pair)
        metrics["forward_ess"] = _weights.forward_ess(*pair)
        metrics["forward_kl"] = _weights.forward_kl(*pair, logZ)
        metrics["nll"] = _weights.nll(reference_model_log_probs)

    metrics["mmd_squared"] = _samples.mmd_squared(samples, reference_samples, mmd_bandwidth)
    metrics["w2"] = _samples.wasserstein2(samples, reference_samples)
    metrics["energy_distance"] = _samples.energy_distance(samples, reference_samples)
    metrics["log_prob_tv"] = _samples.log_prob_histogram_tv(
        target_at_reference, target_at_samples, n_bins
    )

    if isinstance(target, DiagonalGaussianMixture):
        metrics["emc"] = _mixture.entropic_mode_coverage(target, samples)
        metrics["modes_covered"] = _mixture.modes_covered(target, samples, coverage_threshold)
        metrics["component_weights_tv"] = _mixture.component_weights_tv(target, samples)

    return {name: float(value) for name, value in metrics.items()}
