"""``boltzkit plot``: log-density contours with samples on top."""

from __future__ import annotations

import argparse
import itertools
import os

import numpy as np

from boltzkit import _io
from boltzkit.cli import _common
from boltzkit.cli._errors import CommandError

MAX_PLOTTED_DIMS = 4
GRID_POINTS = 200
# Contours cover this many nats below the highest log-density on the grid.
LOG_DENSITY_RANGE = 40.0
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw log-density contours with samples on top",
        description="Draw log-density contours with exact samples on top. For D > 2, one "
        f"panel per pair of the first {MAX_PLOTTED_DIMS} dimensions, each showing the exact "
        "marginal density of that pair. Needs matplotlib (the 'plot' extra).",
    )
    _common.add_target_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="output figure: .png, .pdf or .svg")
    parser.add_argument("-n", "--n-samples", type=_common.non_negative_int, default=1000,
                        metavar="N", help="number of samples drawn on top (default: 1000)")
    parser.add_argument("--seed", type=_common.seed_int, default=0, metavar="S",
                        help="seed of the samples (default: 0)")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(run=run)


def import_matplotlib():
    """Import matplotlib's object-oriented API, or explain how to install it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CommandError(
            "plotting needs matplotlib; install the plot extra: pip install 'boltzkit[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


def _pair_limits(means, stds, dims):
    low = np.min(means[:, dims] - 4 * stds[:, dims], axis=0)
    high = np.max(means[:, dims] + 4 * stds[:, dims], axis=0)
    return low, high


def draw_target(target, samples, path: str, *, overwrite: bool, title: str | None = None) -> None:
    """Draw contours of the target's log-density (or pair marginals) with samples to ``path``."""
    from boltzkit.targets import DiagonalGaussianMixture

    Figure, FigureCanvasAgg = import_matplotlib()
    means = np.asarray(target.means, np.float64)
    stds = np.asarray(target.diag_stds, np.float64)
    samples = np.asarray(samples, np.float64)
    dims = list(range(min(target.dim, MAX_PLOTTED_DIMS)))

    if target.dim == 1:
        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        low, high = _pair_limits(means, stds, [0])
        grid = np.linspace(low[0], high[0], 1000)
        density = np.exp(np.asarray(target.log_prob(grid[:, None].astype(target.dtype))))
        if len(samples):
            axes.hist(samples[:, 0], bins=100, density=True, alpha=0.4, label="samples")
        axes.plot(grid, density, color="black", label="density")
        axes.set_xlabel("x[0]")
        axes.legend()
    else:
        pairs = list(itertools.combinations(dims, 2))
        columns = min(3, len(pairs))
        rows = -(-len(pairs) // columns)
        figure = Figure(figsize=(5 * columns, 4.5 * rows))
        for panel, (i, j) in enumerate(pairs):
            axes = figure.add_subplot(rows, columns, panel + 1)
            marginal = DiagonalGaussianMixture(
                target.means[:, [i, j]], target.diag_stds[:, [i, j]], target.logits
            )
            low, high = _pair_limits(means, stds, [i, j])
            xs = np.linspace(low[0], high[0], GRID_POINTS)
            ys = np.linspace(low[1], high[1], GRID_POINTS)
            grid = np.stack(np.meshgrid(xs, ys), axis=-1).astype(target.dtype)
            log_density = np.asarray(marginal.log_prob(grid), np.float64)
            top = np.max(log_density)
            clipped = np.maximum(log_density, top - LOG_DENSITY_RANGE)
            filled = axes.contourf(xs, ys, clipped, levels=30, cmap="viridis")
            if len(samples):
                axes.scatter(samples[:, i], samples[:, j], s=2, color="white", alpha=0.6,
                             edgecolors="none")
            axes.set_xlabel(f"x[{i}]")
            axes.set_ylabel(f"x[{j}]")
            figure.colorbar(filled, ax=axes, label="log density" if target.dim == 2 else
                            "marginal log density")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    image_format = os.path.splitext(path)[1].lstrip(".").lower()
    _io.write_bytes(path, lambda handle: figure.savefig(handle, format=image_format, dpi=120),
                    overwrite=overwrite)


def run(args: argparse.Namespace) -> None:
    import_matplotlib()
    _io.check_output_path(args.output, overwrite=args.force, suffixes=FIGURE_SUFFIXES)
    target = _common.load(args.target)
    samples = target.sample(args.n_samples, seed=args.seed)
    title = f"{args.target}: {args.n_samples} samples"
    if target.dim > MAX_PLOTTED_DIMS:
        title += f" (first {MAX_PLOTTED_DIMS} of {target.dim} dimensions)"
    draw_target(target, samples, args.output, overwrite=args.force, title=title)
    print(f"wrote {args.output}")
