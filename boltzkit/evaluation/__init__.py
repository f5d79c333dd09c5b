"""Metrics that score samplers against a target, usable inside ``jax.jit``.

Three groups, by what they need:

* importance weights, from the model's and the target's log densities at
  model samples (:func:`reverse_ess`, :func:`logZ_estimate`, :func:`elbo`,
  :func:`reverse_kl`) or at target samples (:func:`eubo`,
  :func:`forward_ess`, :func:`forward_kl`, :func:`nll`);
* samples only (:func:`mmd_squared`, :func:`wasserstein2`,
  :func:`energy_distance`), and histograms of the target's log density
  (:func:`log_prob_histogram_tv`);
* mixture targets (:func:`responsibilities`, :func:`entropic_mode_coverage`,
  :func:`modes_covered`, :func:`component_weights_tv`).

:func:`evaluate` runs every metric its inputs allow and returns floats.

Example:
    >>> from boltzkit.targets import DiagonalGaussianMixture
    >>> from boltzkit.evaluation import entropic_mode_coverage
    >>> target = DiagonalGaussianMixture.create_gmm40()
    >>> round(float(entropic_mode_coverage(target, target.sample(2000, seed=1))), 2)
    1.0
"""

from boltzkit.evaluation._evaluate import MIN_SAMPLES, evaluate
from boltzkit.evaluation._mixture import (
    DEFAULT_COVERAGE_THRESHOLD,
    component_frequencies,
    component_weights_tv,
    entropic_mode_coverage,
    modes_covered,
    responsibilities,
)
from boltzkit.evaluation._samples import (
    MAX_EXACT_SAMPLES,
    energy_distance,
    log_prob_histogram_tv,
    median_bandwidth,
    mmd_squared,
    wasserstein2,
)
from boltzkit.evaluation._transport import assignment
from boltzkit.evaluation._weights import (
    elbo,
    eubo,
    forward_ess,
    forward_kl,
    logZ_estimate,
    nll,
    reverse_ess,
    reverse_kl,
)

__all__ = [
    "DEFAULT_COVERAGE_THRESHOLD",
    "MAX_EXACT_SAMPLES",
    "MIN_SAMPLES",
    "assignment",
    "component_frequencies",
    "component_weights_tv",
    "elbo",
    "energy_distance",
    "entropic_mode_coverage",
    "eubo",
    "evaluate",
    "forward_ess",
    "forward_kl",
    "log_prob_histogram_tv",
    "logZ_estimate",
    "median_bandwidth",
    "mmd_squared",
    "modes_covered",
    "nll",
    "responsibilities",
    "reverse_ess",
    "reverse_kl",
    "wasserstein2",
]
