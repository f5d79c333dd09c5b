"""Plots of targets and samples with matplotlib (install the ``plot`` extra).

Every function draws into the given matplotlib ``Axes`` (or creates a figure
with ``matplotlib.pyplot.subplots`` when none is given) and returns them. No
function calls ``show()`` or saves a file; call ``figure.savefig`` yourself.

Higher-dimensional targets are drawn through exact marginals: the marginal
of a diagonal Gaussian mixture over a subset of coordinates is the mixture
with the same weights and the selected columns of ``means`` and
``diag_stds``, so nothing is sliced at an arbitrary value of the other
coordinates.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from boltzkit.plot import plot_log_prob_contours
    >>> from boltzkit.targets import DiagonalGaussianMixture
    >>> target = DiagonalGaussianMixture.create_gmm40()
    >>> ax = plot_log_prob_contours(target, target.sample(500, seed=0))
    >>> ax.get_xlabel()
    'x[0]'
    >>> plt.close(ax.figure)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from boltzkit._validation import as_float_array, check_int, check_real
from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "boltzkit.plot needs matplotlib; install it with pip install 'boltzkit[plot]'"
        ) from None
    return plt


def marginal_mixture(target: DiagonalGaussianMixture, dims: Sequence[int]) -> DiagonalGaussianMixture:
    """Return the exact marginal of a diagonal mixture over the coordinates ``dims``.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40(dim=5)
        >>> marginal_mixture(target, [0, 3]).dim
        2
    """
    return target.marginal(_check_dims(target, dims))


def _check_target(target: Any) -> None:
    if not isinstance(target, DiagonalGaussianMixture):
        raise TypeError(f"target must be a DiagonalGaussianMixture, got {type(target).__name__}")


def _check_dims(target: DiagonalGaussianMixture, dims: Sequence[int]) -> list[int]:
    _check_target(target)
    dims = [check_int("dims", d, minimum=0) for d in dims]
    for d in dims:
        if d >= target.dim:
            raise ValueError(f"dims must be coordinates below the target's dim {target.dim}, got {d}")
    if len(set(dims)) != len(dims) or not dims:
        raise ValueError(f"dims must be distinct coordinates, at least one, got {dims}")
    return dims


def _check_samples(name: str, samples: Any, dim: int) -> np.ndarray:
    values = np.asarray(as_float_array(name, samples), np.float64)
    if values.ndim != 2 or values.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n_samples, {dim}) with the target's dimension {dim}, got "
            f"shape {values.shape}"
        )
    return values


def _default_bounds(marginal: DiagonalGaussianMixture, dim_index: int) -> tuple[float, float]:
    """Return the range that contains every component's mean +- 4 standard deviations."""
    means = np.asarray(marginal.means[:, dim_index], np.float64)
    stds = np.asarray(marginal.diag_stds[:, dim_index], np.float64)
    return float(np.min(means - 4 * stds)), float(np.max(means + 4 * stds))


def plot_log_prob_contours(
    target: DiagonalGaussianMixture,
    samples: Any = None,
    ax: Any = None,
    *,
    dims: Sequence[int] = (0, 1),
    bounds: Sequence[tuple[float, float]] | None = None,
    grid_size: int = 200,
    depth: float = 25.0,
    levels: int = 20,
    sample_color: str = "tab:red",
    max_points: int = 5000,
) -> Any:
    """Draw filled contours of the log density of two coordinates, with samples on top.

    For a target of more than two dimensions the contours show the exact
    marginal log density of the coordinates ``dims`` (see
    `marginal_mixture`), and the samples are projected on them. The
    log density is clipped ``depth`` nats below its maximum on the grid, so
    the far tails do not take every contour level.

    Args:
        target: a diagonal Gaussian mixture.
        samples: optional points of shape ``(N, D)``; at most ``max_points``
            of them (the first ones) are drawn.
        ax: the Axes to draw into; a new figure by default.
        dims: the two coordinates to show.
        bounds: ``((x_low, x_high), (y_low, y_high))``; by default every
            component mean +- 4 standard deviations. Samples outside are not
            visible.
        grid_size: grid points per axis.
        depth: the clipping depth in nats.
        levels: the number of contour levels.
        sample_color: the matplotlib color of the samples.
        max_points: the largest number of samples drawn.

    Returns:
        The Axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> ax = plot_log_prob_contours(target, target.sample(500, seed=0), grid_size=50)
        >>> ax.get_xlabel(), ax.get_ylabel()
        ('x[0]', 'x[1]')
        >>> plt.close(ax.figure)
    """
    dims = _check_dims(target, dims)
    if len(dims) != 2:
        raise ValueError(f"dims must name two coordinates, got {dims}")
    grid_size = check_int("grid_size", grid_size, minimum=2)
    depth = check_real("depth", depth, positive=True)
    levels = check_int("levels", levels, minimum=2)
    max_points = check_int("max_points", max_points, minimum=1)
    if samples is not None:
        samples = _check_samples("samples", samples, target.dim)
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(5, 5))

    marginal = marginal_mixture(target, dims)
    if bounds is None:
        bounds = (_default_bounds(marginal, 0), _default_bounds(marginal, 1))
    (x_low, x_high), (y_low, y_high) = bounds
    xs = np.linspace(x_low, x_high, grid_size)
    ys = np.linspace(y_low, y_high, grid_size)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1).astype(np.dtype(marginal.dtype))
    log_probs = np.asarray(marginal.log_prob(points), np.float64).reshape(grid_x.shape)
    floor = log_probs.max() - depth
    ax.contourf(grid_x, grid_y, np.maximum(log_probs, floor), levels=levels, cmap="viridis")

    if samples is not None:
        shown = samples[:max_points]
        ax.scatter(shown[:, dims[0]], shown[:, dims[1]], s=3, color=sample_color, alpha=0.6, linewidths=0)
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel(f"x[{dims[0]}]")
    ax.set_ylabel(f"x[{dims[1]}]")
    return ax


def plot_pair_grid(
    target: DiagonalGaussianMixture,
    samples: Any = None,
    axes: Any = None,
    *,
    dims: Sequence[int] | None = None,
    grid_size: int = 100,
    bins: int = 50,
) -> Any:
    """Draw a corner plot: pairwise marginal contours below the diagonal, 1-D marginals on it.

    Panel ``(i, j)`` with ``i > j`` shows `plot_log_prob_contours` of
    the coordinates ``(dims[j], dims[i])``; panel ``(i, i)`` shows
    `plot_marginals` of ``dims[i]``. Panels above the diagonal are
    switched off. Every panel uses exact marginals of the mixture.

    Args:
        target: a diagonal Gaussian mixture with ``dim >= 2``.
        samples: optional points of shape ``(N, D)``.
        axes: a square array of Axes of side ``len(dims)``; a new figure by default.
        dims: the coordinates to show, all of them by default.
        grid_size: grid points per axis of each contour panel.
        bins: histogram bins of the diagonal panels.

    Returns:
        The array of Axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40(dim=3)
        >>> axes = plot_pair_grid(target, target.sample(300, seed=0), grid_size=30)
        >>> axes.shape
        (3, 3)
        >>> plt.close(axes[0, 0].figure)
    """
    _check_target(target)
    dims = _check_dims(target, range(target.dim) if dims is None else dims)
    if len(dims) < 2:
        raise ValueError(f"dims must name at least two coordinates, got {dims}")
    size = len(dims)
    if axes is None:
        _, axes = _pyplot().subplots(size, size, figsize=(2.6 * size, 2.6 * size), squeeze=False)
    axes = np.asarray(axes)
    if axes.shape != (size, size):
        raise ValueError(f"axes must be a ({size}, {size}) array of Axes, got shape {axes.shape}")

    for i in range(size):
        for j in range(size):
            ax = axes[i, j]
            if i == j:
                plot_marginals(target, samples, np.array([ax]), dims=[dims[i]], bins=bins)
            elif i > j:
                plot_log_prob_contours(
                    target, samples, ax, dims=(dims[j], dims[i]), grid_size=grid_size, levels=12
                )
            else:
                ax.set_axis_off()
    return axes


def plot_marginals(
    target: DiagonalGaussianMixture,
    samples: Any = None,
    axes: Any = None,
    *,
    dims: Sequence[int] | None = None,
    bins: int = 50,
    grid_size: int = 400,
    label: str = "samples",
) -> Any:
    """Draw a histogram of each coordinate of the samples with the exact marginal density.

    The exact 1-D marginal of coordinate ``d`` is the mixture
    $\\sum_k w_k \\mathcal{N}(\\mu_{kd}, \\sigma_{kd}^2)$. Histograms are
    normalized to unit area over the plotted range, every component mean +- 4
    standard deviations, so they compare with the density curve.

    Args:
        target: a diagonal Gaussian mixture.
        samples: optional points of shape ``(N, D)``.
        axes: a sequence of Axes, one per coordinate; a new figure by default.
        dims: the coordinates to show, all of them by default.
        bins: the number of histogram bins.
        grid_size: points of the density curve.
        label: the legend label of the histogram.

    Returns:
        The array of Axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> axes = plot_marginals(target, target.sample(1000, seed=0))
        >>> len(axes)
        2
        >>> plt.close(axes[0].figure)
    """
    _check_target(target)
    dims = _check_dims(target, range(target.dim) if dims is None else dims)
    bins = check_int("bins", bins, minimum=1)
    grid_size = check_int("grid_size", grid_size, minimum=2)
    if samples is not None:
        samples = _check_samples("samples", samples, target.dim)
    if axes is None:
        _, axes = _pyplot().subplots(1, len(dims), figsize=(3.2 * len(dims), 3), squeeze=False)
        axes = axes[0]
    axes = np.asarray(axes).ravel()
    if axes.shape != (len(dims),):
        raise ValueError(f"axes must hold one Axes per coordinate, {len(dims)}, got {axes.size}")

    for ax, d in zip(axes, dims, strict=True):
        marginal = marginal_mixture(target, [d])
        low, high = _default_bounds(marginal, 0)
        xs = np.linspace(low, high, grid_size)
        density = np.exp(np.asarray(marginal.log_prob(xs[:, None].astype(np.dtype(marginal.dtype)))))
        if samples is not None:
            ax.hist(samples[:, d], bins=bins, range=(low, high), density=True, alpha=0.5,
                    color="tab:blue", label=label)
        ax.plot(xs, density, color="black", linewidth=1.2, label="exact marginal")
        ax.set_xlabel(f"x[{d}]")
        ax.set_xlim(low, high)
    return axes


def plot_log_prob_histograms(
    target: DiagonalGaussianMixture,
    samples: Any,
    reference_samples: Any,
    ax: Any = None,
    *,
    bins: int = 50,
    label: str = "model samples",
) -> Any:
    """Draw histograms of the target log density at reference and at model samples.

    The bins span the range of the reference values; model values beyond it
    are clipped into the outermost bins, so a sampler that puts mass in the
    far tails shows a spike at the left edge. This is the picture behind
    `boltzkit.evaluation.log_prob_histogram_tv`.

    Args:
        target: the target.
        samples: model samples of shape ``(N, D)``.
        reference_samples: exact target samples of shape ``(M, D)``.
        ax: the Axes to draw into; a new figure by default.
        bins: the number of bins.
        label: the legend label of the model histogram.

    Returns:
        The Axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> ax = plot_log_prob_histograms(
        ...     target, target.sample(500, seed=1), target.sample(500, seed=2))
        >>> ax.get_legend() is not None
        True
        >>> plt.close(ax.figure)
    """
    _check_target(target)
    bins = check_int("bins", bins, minimum=1)
    samples = _check_samples("samples", samples, target.dim)
    reference_samples = _check_samples("reference_samples", reference_samples, target.dim)
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(5, 3.5))

    dtype = np.dtype(target.dtype)
    reference = np.asarray(target.log_prob(reference_samples.astype(dtype)), np.float64)
    model = np.asarray(target.log_prob(samples.astype(dtype)), np.float64)
    low, high = float(reference.min()), float(reference.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    ax.hist(reference, bins=edges, density=True, alpha=0.5, color="black", label="target samples")
    ax.hist(np.clip(model, low, high), bins=edges, density=True, alpha=0.5, color="tab:blue",
            label=label)
    ax.set_xlabel("target log density")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", fontsize="small")
    return ax
