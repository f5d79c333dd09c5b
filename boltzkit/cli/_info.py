"""``boltzkit info``: describe a target."""

from __future__ import annotations

import argparse

import numpy as np

from boltzkit.cli import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="print the dimension, components, weights and extent of a target",
        description="Print the dimension, number of components, weights and the bounding box "
        "of the means of a target.",
    )
    _common.add_target_argument(parser)
    parser.set_defaults(run=run)


def _format_weights(weights: np.ndarray) -> str:
    if np.allclose(weights, weights[0], rtol=1e-6, atol=0.0):
        return f"equal, 1/{len(weights)} = {weights[0]:.6g} each"
    shown = ", ".join(f"{w:.4g}" for w in weights[:10])
    more = f", ... ({len(weights) - 10} more)" if len(weights) > 10 else ""
    return f"[{shown}{more}] (min {weights.min():.4g}, max {weights.max():.4g})"


def run(args: argparse.Namespace) -> None:
    target = _common.load(args.target)
    means = np.asarray(target.means, dtype=np.float64)
    stds = np.asarray(target.diag_stds, dtype=np.float64)
    weights = np.asarray(target.weights, dtype=np.float64)

    print(f"target:       {args.target}")
    print("kind:         DiagonalGaussianMixture")
    print(f"dim:          {target.dim}")
    print(f"n_components: {target.n_components}")
    print(f"dtype:        {target.dtype}")
    print(f"weights:      {_format_weights(weights)}")
    zero = int(np.sum(weights == 0))
    if zero:
        print(f"zero-weight components: {zero}")
    print(f"diag_stds:    min {stds.min():.6g}, max {stds.max():.6g}")
    print("bounding box of the means:")
    low, high = means.min(axis=0), means.max(axis=0)
    shown = min(target.dim, 10)
    for d in range(shown):
        print(f"  x[{d}]: [{low[d]:.6g}, {high[d]:.6g}]")
    if target.dim > shown:
        print(f"  ... ({target.dim - shown} more dimensions, overall "
              f"[{low.min():.6g}, {high.max():.6g}])")
