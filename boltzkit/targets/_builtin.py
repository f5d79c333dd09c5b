"""Targets known by name, for the command line and configuration files."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

_gmm40 = DiagonalGaussianMixture.create_gmm40

# Each entry maps a name to a factory that takes no arguments. The GMM40
# variants differ in how their means are drawn and in their std.
BUILTIN_TARGETS: dict[str, Callable[[], Any]] = {
    "gmm40": _gmm40,
    "gmm40-fab-torch": functools.partial(_gmm40, variant="fab-torch"),
    "gmm40-craft": functools.partial(_gmm40, variant="craft"),
    "gmm40-fab-jax": functools.partial(_gmm40, variant="fab-jax"),
    "gmm40-fab-jax-50d": functools.partial(_gmm40, dim=50, variant="fab-jax"),
    "gmm40-fab-jax-current": functools.partial(_gmm40, variant="fab-jax-current"),
}


def builtin_target(name: str) -> Any:
    """Return the built-in target called ``name``.

    Raises:
        ValueError: if no built-in target has that name.

    Example:
        >>> builtin_target("gmm40").n_components
        40
    """
    try:
        factory = BUILTIN_TARGETS[name]
    except KeyError:
        raise ValueError(
            f"unknown target {name!r}; built-in targets are {', '.join(sorted(BUILTIN_TARGETS))}, "
            "or pass a parameter file (.npz or .json)"
        ) from None
    return factory()
