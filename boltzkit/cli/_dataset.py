"""``boltzkit dataset``: write a reproducible dataset split."""

from __future__ import annotations

import argparse

from boltzkit import datasets
from boltzkit.cli import _common
from boltzkit.cli._errors import CommandError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="write items [offset, offset + length) of a train/val/test split to .npz",
        description="Write a window of a reproducible dataset split, identical to "
        "target.load_dataset(split, length, seed=seed, offset=offset). The .npz file contains "
        "'samples' and, on request, 'log_probs' and 'scores'. Memory stays bounded for any "
        "length, and the file is written atomically.",
    )
    _common.add_target_argument(parser)
    parser.add_argument("--split", required=True, choices=datasets.SPLITS,
                        help="which split to write")
    parser.add_argument("--length", type=_common.stream_count, required=True, metavar="L",
                        help="number of items")
    parser.add_argument("--offset", type=_common.stream_count, default=0, metavar="O",
                        help="index of the first item (default: 0)")
    parser.add_argument("--seed", type=_common.seed_int, default=0, metavar="S",
                        help="integer seed in [0, 2**32) that selects the streams (default: 0)")
    parser.add_argument("--log-probs", action="store_true", help="also store log_prob of each sample")
    parser.add_argument("--scores", action="store_true", help="also store the score of each sample")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.npz", help="output .npz file")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--quiet", action="store_true", help="print no progress or summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    if not args.output.endswith(".npz"):
        raise ValueError(f"output file {args.output!r} must end with .npz")
    target = _common.load(args.target)
    if args.offset + args.length > datasets.MAX_STREAM_LENGTH:
        raise CommandError(
            f"--offset + --length must be at most 2**32 - 1 = {datasets.MAX_STREAM_LENGTH}, got "
            f"--offset {args.offset} and --length {args.length}"
        )
    key = datasets.split_key(args.split, args.seed)
    progress = _common.Progress(args.length, f"writing {args.split}", enabled=not args.quiet)
    datasets.write_stream(
        target,
        key,
        args.output,
        args.offset,
        args.length,
        include_log_probs=args.log_probs,
        include_scores=args.scores,
        overwrite=args.force,
        progress=progress.update,
    )
    progress.close()
    if not args.quiet:
        extras = [name for name, flag in (("log_probs", args.log_probs), ("scores", args.scores))
                  if flag]
        with_extras = f" with {' and '.join(extras)}" if extras else ""
        print(
            f"wrote items [{args.offset}, {args.offset + args.length}) of the {args.split} split "
            f"(seed {args.seed}){with_extras} to {args.output}"
        )
