"""Helpers that keep the tests running on every JAX release that pyproject.toml admits."""

from __future__ import annotations

import jax


def enable_x64():
    """Return a context manager that enables 64-bit floats while it is active.

    ``jax.enable_x64`` is missing from older releases such as 0.5.0, which
    provide ``jax.experimental.enable_x64`` instead.
    """
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as experimental_enable_x64

    return experimental_enable_x64(True)
