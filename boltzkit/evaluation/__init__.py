"""Metrics that score samplers against a target, usable inside ``jax.jit``.

Three groups, by what they need:

* importance weights, from the model's and the target's log densities at
  model samples (`reverse_ess`, `logZ_estimate`, `elbo`,
  `reverse_kl`) or at target samples (`eubo`,
  `forward_ess`, `forward_kl`, `nll`);
* samples only (`mmd_squared`, `wasserstein2`,
  `energy_distance`), and histograms of the target's log density
  (`log_prob_histogram_tv`);
* mixture targets (`responsibilities`, `entropic_mode_coverage`,
  `modes_covered`, `component_weights_tv`).

`evaluate` runs every metric its inputs allow and returns floats.

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
    "logZ_estimate",
    "log_prob_histogram_tv",
    "median_bandwidth",
    "mmd_squared",
    "modes_covered",
    "nll",
    "responsibilities",
    "reverse_ess",
    "reverse_kl",
    "wasserstein2",
]
