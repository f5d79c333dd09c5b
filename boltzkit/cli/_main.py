"""Argument parsing, dispatch and error reporting for the ``boltzkit`` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from boltzkit._version import __version__
from boltzkit.cli import _dataset, _demo, _evaluate, _info, _plot, _sample, _signals
from boltzkit.cli._errors import CommandError

COMMANDS = (_info, _sample, _dataset, _plot, _evaluate, _demo)

EXIT_USAGE = 2
# 128 + SIGTERM, the status a shell reports for a process ended by SIGTERM.
EXIT_TERMINATED = 128 + signal.SIGTERM
# 128 + SIGPIPE (13), the status of a process whose reader closed the pipe.
EXIT_BROKEN_PIPE = 128 + 13


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
            "TARGET is a built-in name (gmm40 or a GMM40 variant, listed in each command's help) "
            "or a parameter file (.npz or .json) holding means, diag_stds and logits."
        ),
    )
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """Return the parser of the subcommand ``command``."""
    for action in parser._subparsers._group_actions:
        if command in action.choices:
            return action.choices[command]
    return parser


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's flush at exit stays quiet."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def _describe_os_error(error: OSError, output: str | None = None) -> str:
    """Describe an OS error in one line, naming the output file for failed writes.

    A write fails on a temporary file beside the output (or on no file at
    all, as for a full disk), so such errors name the output instead.
    """
    if error.strerror is None and error.filename is None:
        # boltzkit's own checks raise OSError with a complete message.
        return str(error)
    reason = error.strerror or str(error)
    filename = None if error.filename is None else os.fsdecode(error.filename)
    if output is not None and _is_beside(filename, output):
        return f"cannot write {output}: {reason}"
    if filename is not None:
        return f"{filename}: {reason}"
    return reason


def _is_beside(filename: str | None, output: str) -> bool:
    """Return whether ``filename`` is a temporary file or folder written for ``output``."""
    if filename is None:
        return True
    directory = os.path.dirname(os.path.abspath(output))
    prefixes = (f".{os.path.basename(output)}.", ".boltzkit-")
    return os.path.abspath(filename).startswith(
        tuple(os.path.join(directory, prefix) for prefix in prefixes)
    )


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
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Options after the subcommand belong to it, so its parser reports
        # them and points to its own help.
        after_command = unknown[0] not in argv[: argv.index(args.command)]
        owner = _subparser(parser, args.command) if after_command else parser
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with _signals.signals_as_exceptions():
            args.run(args)
    except _signals.Terminated:
        print("boltzkit: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except CommandError as error:
        message = str(error)
    except FileNotFoundError as error:
        if error.strerror:
            message = _describe_os_error(error, getattr(args, "output", None))
        else:
            message = str(error)
    except FileExistsError as error:
        path = getattr(error, "path", None) or error.filename
        if path is not None:
            message = f"{os.fsdecode(path)} already exists; pass --force to replace it"
        else:
            message = str(error)
    except BrokenPipeError:
        # Outputs go to temporary files that are then renamed, so the closed
        # pipe is stdout, as in ``boltzkit info gmm40 | head -1``.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:
        message = _describe_os_error(error, getattr(args, "output", None))
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
