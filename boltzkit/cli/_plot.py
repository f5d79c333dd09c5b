"""``boltzkit plot``: log-density contours with samples on top."""

from __future__ import annotations

import argparse
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
        description="Draw log-density contours with exact samples on top. For D > 2, a corner "
        f"plot of the first {MAX_PLOTTED_DIMS} dimensions with the exact marginal densities. "
        "Needs matplotlib (the 'plot' extra).",
    )
    _common.add_target_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="output figure: .png, .pdf or .svg")
    parser.add_argument("-n", "--n-samples", type=_common.stream_count, default=1000,
                        metavar="N", help="number of samples drawn on top (default: 1000)")
    parser.add_argument("--seed", type=_common.seed_int, default=0, metavar="S",
                        help="seed of the samples (default: 0)")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--quiet", action="store_true", help="print no summary")
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


def draw_target(target, samples, path: str, *, overwrite: bool, title: str | None = None) -> None:
    """Draw the target's log-density (or its pair marginals) with samples to ``path``.

    One dimension gives the density over a histogram of the samples, two
    give filled contours, and more give a corner plot of the first
    ``MAX_PLOTTED_DIMS`` coordinates with exact marginals.
    """
    from boltzkit import plot

    Figure, FigureCanvasAgg = import_matplotlib()
    samples = np.asarray(samples)
    if target.dim == 1:
        figure = Figure(figsize=(6, 4))
        plot.plot_marginals(target, samples, np.array([figure.add_subplot()]))
    elif target.dim == 2:
        figure = Figure(figsize=(6, 5))
        plot.plot_log_prob_contours(target, samples, figure.add_subplot(), depth=LOG_DENSITY_RANGE,
                                    levels=30, grid_size=GRID_POINTS)
    else:
        size = min(target.dim, MAX_PLOTTED_DIMS)
        figure = Figure(figsize=(2.8 * size, 2.8 * size))
        axes = figure.subplots(size, size, squeeze=False)
        plot.plot_pair_grid(target, samples, axes, dims=list(range(size)))
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
    if not args.quiet:
        print(f"wrote {args.output}")
