"""Targets known by name, for the command line and configuration files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

# Each entry maps a name to a factory that takes no arguments.
BUILTIN_TARGETS: dict[str, Callable[[], Any]] = {
    "gmm40": DiagonalGaussianMixture.create_gmm40,
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
