r"""Metrics that compare two sample sets: MMD, Wasserstein-2 and the energy distance.

Every function here takes model samples ``x`` of shape ``(n, d)`` and
reference samples ``y`` of shape ``(m, d)`` and needs no density. Each is
an estimate with a floor above zero for a perfect sampler that depends on the
target and on ``n``; the documentation lists the floors for GMM40.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from boltzkit._validation import as_float_array, check_int, check_real, wider_float
from boltzkit.evaluation import _checks, _transport

# Largest equal-size sets for which wasserstein2(method="auto") runs the exact
# assignment; above it the O(n^3) worst case gets slow on a CPU.
MAX_EXACT_SAMPLES = 4096


def _triangle_values(matrix):
    """Return the entries above the diagonal of a square matrix as a vector."""
    rows, cols = jnp.triu_indices(matrix.shape[0], k=1)
    return matrix[rows, cols]


def median_bandwidth(x: Any, y: Any) -> jax.Array:
    r"""Return the median heuristic bandwidth: the median distance between pooled samples.

    The median runs over all pairs of distinct points of the union of ``x``
    and ``y``, $(n + m)(n + m - 1) / 2$ pairs, so memory grows as
    $(n + m)^2$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(median_bandwidth(jnp.array([[0.0], [1.0]]), jnp.array([[3.0], [4.0]])))
        2.5
    """
    x, y = _checks.point_sets(x, y, minimum=1)
    return _median_bandwidth(x, y)


@jax.jit
def _median_bandwidth(x, y):
    shift = _checks.tiny_shift(x, y)
    pooled = jnp.ldexp(jnp.concatenate([x, y], axis=0), -shift)

    def ordinary(points):
        return _checks.safe_norm(_transport.squared_distances(points, points))

    # Squared distances of far points overflow, so large coordinates take
    # the slower distance that never squares a large number.
    def robust(points):
        return _checks.robust_distances(points, points)

    distances = jax.lax.cond(_checks.has_large_coordinates(x, y), robust, ordinary, pooled)
    return jnp.ldexp(jnp.median(_triangle_values(distances)), shift)


def mmd_squared(
    x: Any, y: Any, bandwidth: float | Sequence[float] | None = None, *, unbiased: bool = True
) -> jax.Array:
    r"""Return the squared maximum mean discrepancy (MMD) with a Gaussian RBF kernel.

    $$
    \mathrm{MMD}^2 = \frac{1}{n(n-1)} \sum_{i \ne i'} k(x_i, x_{i'})
    + \frac{1}{m(m-1)} \sum_{j \ne j'} k(y_j, y_{j'})
    - \frac{2}{nm} \sum_{ij} k(x_i, y_j),
    \qquad k(a, b) = \frac{1}{L} \sum_{l=1}^{L} \exp\Big(-\frac{\lVert a - b\rVert^2}{2 h_l^2}\Big).
    $$

    This is the unbiased U-statistic, whose expectation is zero when both
    sets come from one distribution, so it can be slightly negative. With
    ``unbiased=False`` the sums include ``i = i'`` and divide by
    $n^2$ and $m^2$ (the V-statistic, never negative, with a
    floor near $2/n$ for a perfect sampler).

    Args:
        x: model samples of shape ``(n, d)``, ``n >= 2``.
        y: reference samples of shape ``(m, d)``, ``m >= 2``.
        bandwidth: the kernel length scale ``h``, a sequence of them (the
            kernel is then the mean over the scales) or ``None`` for the
            median heuristic `median_bandwidth`.
        unbiased: whether to return the U-statistic.

    Sample sizes: the standard deviation of the U-statistic under a perfect
    sampler shrinks as $1/n$; memory and time grow as
    $(n + m)^2$, so a few thousand samples on each side is the
    practical range.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0], [2.0]])
        >>> abs(float(mmd_squared(x, x, bandwidth=1.0, unbiased=False))) < 1e-6
        True
        >>> round(float(mmd_squared(x, x + 10.0, bandwidth=1.0)), 3)
        0.899
    """
    x, y = _checks.point_sets(x, y)
    if not isinstance(unbiased, bool):
        raise TypeError(f"unbiased must be a bool, got {unbiased!r}")
    if bandwidth is None:
        bandwidths = _median_bandwidth(x, y)[None]
    else:
        bandwidths = _bandwidth_array(bandwidth).astype(x.dtype)
    return _mmd_squared(x, y, bandwidths, unbiased)


def _bandwidth_array(bandwidth):
    if isinstance(bandwidth, jax.Array) and isinstance(bandwidth, jax.core.Tracer):
        return jnp.reshape(bandwidth, (-1,))
    values = as_float_array("bandwidth", bandwidth)
    if values.ndim > 1 or values.size == 0:
        raise ValueError(
            f"bandwidth must be a positive number or a non-empty 1-D sequence, got shape "
            f"{tuple(values.shape)}"
        )
    values = jnp.reshape(values, (-1,))
    if not bool(jnp.all(jnp.isfinite(values) & (values > 0))):
        raise ValueError(f"bandwidth must be finite and > 0, got {values.tolist()}")
    return values


@functools.partial(jax.jit, static_argnames="unbiased")
def _mmd_squared(x, y, bandwidths, unbiased):
    large = _checks.has_large_coordinates(x, y)
    # The kernel depends only on distances relative to the bandwidths, so
    # tiny points and their bandwidths are scaled up together.
    shift = _checks.tiny_shift(x, y)
    x, y, bandwidths = (jnp.ldexp(value, -shift) for value in (x, y, bandwidths))

    def ordinary(a, b):
        squared = _transport.squared_distances(a, b)
        scales = 2.0 * bandwidths * bandwidths
        return jnp.mean(jnp.exp(-squared[..., None] / scales[None, None, :]), axis=-1)

    def robust(a, b):
        # Squared distances of far points overflow, and their differences can
        # be NaN. The ratio of distance to bandwidth is at worst inf, whose
        # kernel value is exactly 0.
        ratios = _checks.robust_distances(a, b)[..., None] / bandwidths[None, None, :]
        return jnp.mean(jnp.exp(-0.5 * ratios * ratios), axis=-1)

    def kernel_mean(a, b, exclude_diagonal):
        values = jax.lax.cond(large, robust, ordinary, a, b)
        total = jnp.sum(values)
        count = a.shape[0] * b.shape[0]
        if exclude_diagonal:
            # exp(0) = 1 on the diagonal for every scale.
            total = total - a.shape[0]
            count = count - a.shape[0]
        return total / count

    within_x = kernel_mean(x, x, unbiased)
    within_y = kernel_mean(y, y, unbiased)
    between = kernel_mean(x, y, False)
    return within_x + within_y - 2.0 * between


def energy_distance(x: Any, y: Any) -> jax.Array:
    r"""Return the squared energy distance between two sample sets.

    $$
    \mathcal{E}^2 = \frac{2}{nm} \sum_{ij} \lVert x_i - y_j \rVert
    - \frac{1}{n(n-1)} \sum_{i \ne i'} \lVert x_i - x_{i'} \rVert
    - \frac{1}{m(m-1)} \sum_{j \ne j'} \lVert y_j - y_{j'} \rVert,
    $$

    the U-statistic form, unbiased for
    $2E\lVert X - Y\rVert - E\lVert X - X'\rVert - E\lVert Y - Y'\rVert$,
    which is zero exactly when the two distributions are equal. It has no
    bandwidth, and its gradient is finite even where two points coincide.
    Memory and time grow as $(n + m)^2$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(energy_distance(jnp.array([[0.0], [0.0]]), jnp.array([[1.0], [1.0]])))
        2.0
    """
    x, y = _checks.point_sets(x, y)
    return _energy_distance(x, y)


@jax.jit
def _energy_distance(x, y):
    # Every distance |a - b| is written as |a - c| + |b - c| + e(a, b), with
    # c the coordinate-wise median of all points. The |a - c| and |b - c|
    # parts cancel exactly in the energy distance, so only the excesses
    # e(a, b) are summed. A point far from the others would add about its
    # distance to c to several sums that cancel, leaving rounding noise many
    # times the result in float32. Its excesses stay about the size of the
    # other points' spread.
    shift = _checks.far_shift(x, y)
    x, y = jnp.ldexp(x, -shift), jnp.ldexp(y, -shift)
    center = jnp.median(jnp.concatenate([x, y], axis=0), axis=0, keepdims=True)

    def plain_norms(vectors):
        return _checks.safe_norm(jnp.sum(vectors * vectors, axis=-1))

    def energy(norms):
        def excesses(a, b):
            # With u = a - c and v = b - c, the excess is
            # -2 (|u| |v| + u.v) / (|u| + |v| + |u - v|), and
            # |u| |v| + u.v = |u| |v| |u/|u| + v/|v||**2 / 2. Nothing in it
            # cancels, also for one far point.
            # NOTE: for two far points on opposite sides of c and on one line
            # through it, the unit vectors' rounding leaves an error of about
            # |u| eps**2 in their excess: about 4e15 at 1e30 in float32.
            u, v = a - center, b - center
            from_a, from_b = norms(u), norms(v)
            unit_a = u / jnp.where(from_a > 0, from_a, 1.0)[:, None]
            unit_b = v / jnp.where(from_b > 0, from_b, 1.0)[:, None]
            sum_of_units = unit_a[:, None, :] + unit_b[None, :, :]
            alignment = jnp.sum(sum_of_units * sum_of_units, axis=-1)
            distance = norms(a[:, None, :] - b[None, :, :])
            nearer = jnp.minimum(from_a[:, None], from_b[None, :])
            farther = jnp.maximum(from_a[:, None], from_b[None, :])
            total = nearer + farther + distance
            # farther / total lies in [1/4, 1], so the product does not underflow.
            share = farther / jnp.where(total > 0, total, 1.0)
            return -nearer * share * alignment

        def mean_excess(a, b, exclude_diagonal):
            excess = _checks.map_row_blocks(excesses, a, b)
            count = a.shape[0] * b.shape[0]
            if exclude_diagonal:
                excess = jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, excess)
                count = count - a.shape[0]
            return jnp.sum(excess) / count

        return 2.0 * mean_excess(x, y, False) - mean_excess(x, x, True) - mean_excess(y, y, True)

    # Squares of coordinates from 2**32 on can overflow, so such points take
    # the norms that never square a large number.
    value = jax.lax.cond(
        _checks.has_large_coordinates(x, y),
        lambda: energy(_checks.robust_norms),
        lambda: energy(plain_norms),
    )
    return jnp.ldexp(value, shift)


def wasserstein2(
    x: Any,
    y: Any,
    *,
    method: str = "auto",
    epsilon: float | None = None,
    n_iterations: int = 1000,
) -> jax.Array:
    r"""Return the Wasserstein-2 distance between the empirical measures of two sample sets.

    $$
    W_2 = \Big( \min_{\pi \in \Pi(\hat\mu_x, \hat\mu_y)}
    \sum_{ij} \pi_{ij} \lVert x_i - y_j \rVert^2 \Big)^{1/2}.
    $$

    ``method="exact"`` needs ``n == m`` and solves the problem exactly as an
    assignment (see `boltzkit.evaluation.assignment`), in
    $O(n^3)$ time at worst and $O(n^2)$ memory.
    ``method="sinkhorn"`` returns $\sqrt{\max(S_\varepsilon, 0)}$
    with $S_\varepsilon$ the debiased Sinkhorn divergence, for sets of
    any sizes in $O(nm)$ time per iteration and $O(n + m)$
    memory. It converges to the exact value from below as the iterations
    grow and ``epsilon`` shrinks; multimodal targets need many iterations,
    and an unconverged run underestimates W2. ``method="auto"`` runs the
    exact assignment for equal sizes up to 4096 and Sinkhorn otherwise.

    Cost on one CPU core in float32 (a 2-core machine shared with other jobs,
    jax 0.10.2): the exact assignment of 2000 against 2000 GMM40 samples
    takes about 1.6 s; Sinkhorn with the default 1000 iterations on 1000
    against 2000 takes about 35 s of CPU time, so on a CPU prefer equal
    sizes and the exact method.

    Args:
        x: model samples of shape ``(n, d)``, ``n >= 2``.
        y: reference samples of shape ``(m, d)``, ``m >= 2``.
        method: ``"auto"``, ``"exact"`` or ``"sinkhorn"``.
        epsilon: the entropic temperature of Sinkhorn in squared distance
            units; by default ``1e-4`` times the mean squared distance
            between the two sets.
        n_iterations: Sinkhorn iterations; the first half lowers the
            temperature geometrically to ``epsilon``.

    Sample sizes: W2 between two samples of one distribution shrinks slowly
    with ``n`` (as $n^{-1/d}$ in ``d > 4`` dimensions), so compare
    values only at equal ``n`` and against the floor of a perfect sampler.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
        >>> float(wasserstein2(x, x + jnp.array([[0.0, 3.0]])))
        3.0
    """
    x, y = _checks.point_sets(x, y)
    if method not in ("auto", "exact", "sinkhorn"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sinkhorn', got {method!r}")
    if method == "auto":
        equal = x.shape[0] == y.shape[0]
        method = "exact" if equal and x.shape[0] <= MAX_EXACT_SAMPLES else "sinkhorn"
    if method == "exact":
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"method='exact' needs x and y of equal size, got {x.shape[0]} and {y.shape[0]} "
                "samples; use method='sinkhorn' or subsample"
            )
        return _exact_w2(x, y)
    n_iterations = check_int("n_iterations", n_iterations, minimum=1)
    if epsilon is not None and not isinstance(epsilon, jax.core.Tracer):
        epsilon = check_real("epsilon", epsilon, positive=True)
    return _sinkhorn_w2(x, y, epsilon, n_iterations)


@jax.jit
def _exact_w2(x, y):
    exponent = _checks.scale_exponent(x, y)
    x, y = jnp.ldexp(x, -exponent), jnp.ldexp(y, -exponent)
    return jnp.ldexp(jnp.sqrt(_transport.exact_w2_squared(x, y)), exponent)


@functools.partial(jax.jit, static_argnames="n_iterations")
def _sinkhorn_w2(x, y, epsilon, n_iterations):
    exponent = _checks.scale_exponent(x, y)
    x, y = jnp.ldexp(x, -exponent), jnp.ldexp(y, -exponent)
    if epsilon is None:
        epsilon = 1e-4 * _transport.mean_squared_distance(x, y)
    else:
        # epsilon is in squared distance units.
        epsilon = jnp.ldexp(jnp.asarray(epsilon, x.dtype), -2 * exponent)
    divergence = _transport.sinkhorn_divergence(x, y, epsilon=epsilon, n_iterations=n_iterations)
    return jnp.ldexp(jnp.sqrt(jnp.maximum(divergence, 0.0)), exponent)


def log_prob_histogram_tv(
    reference_log_probs: Any, sample_log_probs: Any, n_bins: int = 50
) -> jax.Array:
    r"""Return the total variation between histograms of target log densities.

    Both inputs are $\log \tilde p$ of the *target*, one at exact
    target samples and one at model samples. The ``n_bins`` equal-width
    bins span the range of ``reference_log_probs``; two more bins collect
    the values below and above it, so a model sample far in the tails still
    counts. With $h$ and $g$ the bin frequencies,

    $$
    \mathrm{TV} = \tfrac12 \sum_b \lvert h_b - g_b \rvert \in [0, 1].
    $$

    It detects samples at the wrong density level (too concentrated on the
    modes or spread into the tails) in any dimension, at the cost of a
    finite-sample floor of roughly $0.4\sqrt{n_\text{bins} / N}$.
    An unnormalized target shifts both inputs equally and changes nothing.

    Example:
        >>> import jax.numpy as jnp
        >>> values = jnp.array([0.0, 1.0, 2.0, 3.0])
        >>> float(log_prob_histogram_tv(values, values, n_bins=4))
        0.0
        >>> float(log_prob_histogram_tv(values, values - 10.0, n_bins=4))
        1.0
    """
    reference = _checks.log_densities("reference_log_probs", reference_log_probs)
    samples = _checks.log_densities("sample_log_probs", sample_log_probs)
    n_bins = check_int("n_bins", n_bins, minimum=1)
    dtype = wider_float(reference.dtype, samples.dtype)
    return _log_prob_histogram_tv(reference.astype(dtype), samples.astype(dtype), n_bins)


@functools.partial(jax.jit, static_argnames="n_bins")
def _log_prob_histogram_tv(reference, samples, n_bins):
    low = jnp.min(reference)
    high = jnp.max(reference)
    inner_edges = jnp.linspace(low, high, n_bins + 1)[1:-1]
    # Bin 0 is below the reference range and bin n_bins + 1 above it; the
    # reference minimum and maximum fall in the first and last inner bins.
    def frequencies(values):
        index = jnp.searchsorted(inner_edges, values, side="right") + 1
        index = jnp.where(values < low, 0, index)
        index = jnp.where(values > high, n_bins + 1, index)
        counts = jnp.zeros((n_bins + 2,), values.dtype).at[index].add(1.0)
        return counts / values.shape[0]

    return 0.5 * jnp.sum(jnp.abs(frequencies(reference) - frequencies(samples)))
