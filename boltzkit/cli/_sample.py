"""``boltzkit sample``: draw exact samples to a file."""

from __future__ import annotations

import argparse

from boltzkit import _keys, datasets
from boltzkit.cli import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="draw exact samples and write them to .npy or .npz",
        description="Draw N exact samples; sample i depends only on fold_in(key(seed), i), so a "
        "larger N keeps a smaller one as its prefix. An .npz file contains the array 'samples'.",
    )
    _common.add_target_argument(parser)
    parser.add_argument("-n", "--n-samples", type=_common.stream_count, required=True,
                        metavar="N", help="number of samples")
    parser.add_argument("--seed", type=_common.seed_int, default=0, metavar="S",
                        help="integer seed in [0, 2**32) (default: 0)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="output file, .npy or .npz")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--quiet", action="store_true", help="print no progress or summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    target = _common.load(args.target)
    progress = _common.Progress(args.n_samples, "sampling", enabled=not args.quiet)
    datasets.write_stream(
        target,
        _keys.as_key(args.seed),
        args.output,
        0,
        args.n_samples,
        overwrite=args.force,
        progress=progress.update,
    )
    progress.close()
    if not args.quiet:
        print(f"wrote {args.n_samples} samples of dimension {target.dim} to {args.output}")
