"""Argument parsing, dispatch and error reporting for the ``boltzkit`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from boltzkit._version import __version__
from boltzkit.cli import _dataset, _demo, _evaluate, _info, _plot, _sample
from boltzkit.cli._errors import CommandError

COMMANDS = (_info, _sample, _dataset, _plot, _evaluate, _demo)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports usage errors as one line."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``boltzkit`` command with every subcommand."""
    parser = _Parser(
        prog="boltzkit",
        description=(
            "Differentiable target distributions for neural samplers: inspect a target, "
            "draw exact samples, write reproducible datasets, plot densities and score samplers."
        ),
        epilog=(
            "TARGET is a built-in name (gmm40) or a parameter file (.npz or .json) holding "
            "means, diag_stds and logits."
        ),
    )
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _describe_os_error(error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.filename is not None:
        return f"{os.fsdecode(error.filename)}: {reason}"
    return reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``boltzkit`` command and return its exit status.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when
            ``None``.

    Returns:
        0 on success and 2 for invalid input, after one line on stderr.

    Example:
        >>> main(["info", "gmm40"])  # doctest: +ELLIPSIS
        target:       gmm40
        kind:         DiagonalGaussianMixture
        ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except CommandError as error:
        message = str(error)
    except FileNotFoundError as error:
        message = _describe_os_error(error) if error.strerror else str(error)
    except FileExistsError as error:
        message = str(error) if not error.strerror else _describe_os_error(error)
    except OSError as error:
        message = _describe_os_error(error)
    except (ValueError, TypeError) as error:
        message = str(error)
    except KeyboardInterrupt:
        print("boltzkit: interrupted", file=sys.stderr)
        return 130
    else:
        return 0
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"boltzkit: error: {first_line}", file=sys.stderr)
    return EXIT_USAGE
