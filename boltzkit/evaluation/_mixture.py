r"""Metrics for mixture targets: how a sampler spreads its samples over the components.

All of them start from the responsibilities
$r_{ik} = p(k \mid x_i) = w_k \mathcal{N}_k(x_i) / \sum_j w_j \mathcal{N}_j(x_i)$
of the model samples $x_i$ and the soft component frequencies
$\hat w_k = \frac{1}{N} \sum_i r_{ik}$. For exact samples,
$E[\hat w_k] = w_k$ even when components overlap, which would not hold
for hard assignments to the most likely component.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from boltzkit._validation import as_float_array, check_real, wider_float
from boltzkit.evaluation import _checks
from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture, _functional

# A component counts as covered when its soft frequency reaches this
# fraction of its weight.
DEFAULT_COVERAGE_THRESHOLD = 0.1


def _check_mixture_and_samples(target: Any, samples: Any) -> jax.Array:
    if not isinstance(target, DiagonalGaussianMixture):
        raise TypeError(
            f"target must be a DiagonalGaussianMixture, got {type(target).__name__}"
        )
    samples = as_float_array("samples", samples)
    if samples.ndim != 2 or samples.shape[1] != target.dim or samples.shape[0] < 1:
        raise ValueError(
            f"samples must have shape (n_samples, {target.dim}) with the target's dimension "
            f"{target.dim} and n_samples >= 1, got shape {tuple(samples.shape)}"
        )
    _checks.check_finite_rows("samples", samples)
    return samples


def responsibilities(target: DiagonalGaussianMixture, samples: Any) -> jax.Array:
    r"""Return the posterior component probabilities $p(k \mid x_i)$ of each sample.

    Far from every component, where all component densities underflow, the
    row is one-hot on the nearest component in scaled distance.

    Args:
        target: the mixture.
        samples: points of shape ``(N, D)``.

    Returns:
        An array of shape ``(N, K)`` whose rows sum to one.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_isotropic([[-5.0], [5.0]], std=1.0)
        >>> responsibilities(target, [[-5.0], [0.0]]).round(3).tolist()
        [[1.0, 0.0], [0.5, 0.5]]
    """
    samples = _check_mixture_and_samples(target, samples)
    return _responsibilities(target, samples)


@jax.jit
def _responsibilities(target, samples):
    dtype = wider_float(target.means.dtype, samples.dtype)
    means = target.means.astype(dtype)
    stds = target.diag_stds.astype(dtype)
    logits = target.logits.astype(dtype)
    samples = samples.astype(dtype)
    return _functional.responsibilities(means, stds, logits, samples)


def component_frequencies(target: DiagonalGaussianMixture, samples: Any) -> jax.Array:
    r"""Return the soft component frequencies $\hat w_k = \frac1N \sum_i p(k \mid x_i)$.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_isotropic([[-5.0], [5.0]], std=1.0)
        >>> component_frequencies(target, [[-5.0], [-6.0]]).round(3).tolist()
        [1.0, 0.0]
    """
    samples = _check_mixture_and_samples(target, samples)
    return jnp.mean(_responsibilities(target, samples), axis=0)


def entropic_mode_coverage(target: DiagonalGaussianMixture, samples: Any) -> jax.Array:
    r"""Return the entropic mode coverage (EMC) of samples.

    $$
    \mathrm{EMC} = -\frac{1}{\log K} \sum_k \hat w_k \log \hat w_k \in [0, 1],
    $$

    the entropy of the soft component frequencies in base ``K``. It is 1 when
    the samples spread evenly over the ``K`` components and 0 when they all
    sit in one. For a mixture with unequal weights the value of a perfect
    sampler is the entropy of the weights in base ``K``, below 1. With one
    component it is 1.

    Sample sizes: the finite-sample floor of a perfect sampler is about
    $1 - (K - 1) / (2 N \log K)$ for equal weights, 0.994 for ``K = 40``
    and ``N = 1000``.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_isotropic([[-9.0], [9.0]], std=1.0)
        >>> round(float(entropic_mode_coverage(target, [[-9.0], [9.0]])), 6)
        1.0
        >>> round(float(entropic_mode_coverage(target, [[-9.0], [-9.0]])), 6)
        0.0
    """
    samples = _check_mixture_and_samples(target, samples)
    frequencies = jnp.mean(_responsibilities(target, samples), axis=0)
    if target.n_components == 1:
        return jnp.ones((), frequencies.dtype)
    positive = frequencies > 0
    terms = jnp.where(positive, -frequencies * jnp.log(jnp.where(positive, frequencies, 1.0)), 0.0)
    # Every term is >= 0 up to rounding of frequencies near 1; abs also turns -0.0 into 0.0.
    return jnp.abs(jnp.sum(terms)) / math.log(target.n_components)


def modes_covered(
    target: DiagonalGaussianMixture, samples: Any, threshold: float = DEFAULT_COVERAGE_THRESHOLD
) -> jax.Array:
    r"""Return the number of components whose soft frequency reaches ``threshold`` times their weight.

    Component ``k`` is covered when $\hat w_k \ge \text{threshold} \cdot w_k$.
    With the default 0.1 and 40 equal components at 1000 samples, a
    component needs about 2.5 samples' worth of responsibility where 25 are
    expected. A perfect sampler then misses a component with probability
    below 1e-6; at 200 samples that probability is about 0.6 %.

    Returns:
        An int32 scalar in ``[0, K]``.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_isotropic([[-9.0], [0.0], [9.0]], std=1.0)
        >>> int(modes_covered(target, [[-9.0], [0.0], [0.1]]))
        2
    """
    samples = _check_mixture_and_samples(target, samples)
    if not isinstance(threshold, jax.core.Tracer):
        threshold = check_real("threshold", threshold, positive=True)
    frequencies = jnp.mean(_responsibilities(target, samples), axis=0)
    weights = target.weights.astype(frequencies.dtype)
    covered = (frequencies >= threshold * weights) & (weights > 0)
    return jnp.sum(covered.astype(jnp.int32))


def component_weights_tv(target: DiagonalGaussianMixture, samples: Any) -> jax.Array:
    r"""Return the total variation between the soft component frequencies and the weights.

    $$
    \mathrm{TV} = \tfrac12 \sum_k \lvert \hat w_k - w_k \rvert \in [0, 1].
    $$

    A sampler that finds only half of ``K`` equal components scores 0.5. For
    a perfect sampler the floor is about $\sqrt{K / (2 \pi N)}$ for
    equal weights (0.08 for ``K = 40``, ``N = 1000``).

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_isotropic([[-9.0], [9.0]], std=1.0)
        >>> round(float(component_weights_tv(target, [[-9.0], [-9.0]])), 6)
        0.5
    """
    samples = _check_mixture_and_samples(target, samples)
    frequencies = jnp.mean(_responsibilities(target, samples), axis=0)
    weights = target.weights.astype(frequencies.dtype)
    return 0.5 * jnp.sum(jnp.abs(frequencies - weights))
