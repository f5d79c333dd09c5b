"""Helpers shared by the commands: target loading, progress and arguments."""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from boltzkit import datasets
from boltzkit.cli import _signals
from boltzkit.targets import load_target
from boltzkit.targets._builtin import BUILTIN_TARGETS


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="a built-in target name (" + ", ".join(sorted(BUILTIN_TARGETS))
        + ") or a parameter file (.npz or .json)",
    )


def _parse_int(text: str, expected: str) -> int:
    """Parse an integer, accepting 1e6-style and 1_000_000-style input."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return int(number)


def int_at_least(minimum: int, maximum: int | None = None):
    """Return a parser of integers in ``[minimum, maximum]``, for ``type=`` of an argument."""
    if maximum is not None:
        expected = f"an integer in [{minimum}, {maximum}]"
    elif minimum == 0:
        expected = "a non-negative integer"
    else:
        expected = f"an integer of at least {minimum}"

    def parse(text: str) -> int:
        value = _parse_int(text, expected)
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


non_negative_int = int_at_least(0)

# Counts and indices of items in one stream, which contains at most 2**32 - 1 items.
stream_count = int_at_least(0, datasets.MAX_STREAM_LENGTH)


def seed_int(text: str) -> int:
    """Parse a seed in [0, 2**32)."""
    expected = "a seed in [0, 2**32)"
    value = _parse_int(text, expected)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**32), got {text!r}")
    return value


def load(spec: str):
    """Load TARGET: a built-in name or a parameter file.

    A built-in target is float32 in every process, also where
    ``JAX_ENABLE_X64`` is set, so the files the commands write for it are
    the same everywhere and match the published fingerprints. A parameter
    file keeps the dtype policy of the library.
    """
    target = load_target(spec)
    if spec in BUILTIN_TARGETS and target.dtype != np.float32:
        target = type(target)(
            np.asarray(target.means, np.float32),
            np.asarray(target.diag_stds, np.float32),
            np.asarray(target.logits, np.float32),
        )
    return target


class Progress:
    """A progress line on stderr, shown only on a terminal and for long runs."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, min_total: int = 10**6):
        self.total = total
        self.label = label
        self.enabled = enabled and total >= min_total and sys.stderr.isatty()
        self.start = time.monotonic()

    def update(self, done: int) -> None:
        _signals.raise_pending()
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        fraction = done / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
        rate = done / elapsed if elapsed > 0 else 0.0
        print(
            f"\r{self.label} [{bar}] {done:,}/{self.total:,} ({rate:,.0f}/s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)
