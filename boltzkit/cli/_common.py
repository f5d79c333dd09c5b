"""Helpers shared by the commands: target loading, progress and arguments."""

from __future__ import annotations

import argparse
import sys
import time

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


def non_negative_int(text: str) -> int:
    """Parse a non-negative integer, accepting 1e6-style and 1_000_000-style input."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
        value = int(number)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """Parse a seed in [0, 2**32)."""
    value = non_negative_int(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**32), got {text!r}")
    return value


def load(spec: str):
    """Load TARGET, turning library errors into the command's one-line errors."""
    return load_target(spec)


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
