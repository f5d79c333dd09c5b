"""Argument checks shared by the public entry points.

Each helper raises ``TypeError`` for a value of the wrong kind and
``ValueError`` for a value of the right kind that is out of range, and names
the argument, what arrived and what is expected.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(value: Any) -> bool:
    """Return whether ``value`` is a JAX tracer, whose values cannot be checked."""
    return isinstance(value, jax.core.Tracer)


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        if isinstance(value, np.ndarray | jax.Array) and value.ndim == 0:
            if jnp.issubdtype(value.dtype, jnp.integer) and not is_traced(value):
                value = int(value)
                return check_int(name, value, minimum=minimum)
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_real(name: str, value: Any, *, positive: bool = False) -> float:
    """Check that ``value`` is a finite real number, optionally greater than zero."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def default_float_dtype() -> np.dtype:
    """Return float64 when x64 is enabled and float32 otherwise."""
    return np.dtype(np.float64) if jax.config.jax_enable_x64 else np.dtype(np.float32)


def wider_float(*dtypes: Any) -> np.dtype:
    """Return float64 if any of ``dtypes`` is float64 and float32 otherwise.

    This is the float32/float64 corner of JAX's promotion lattice, written out
    so that it also holds under ``jax_numpy_dtype_promotion="strict"``.
    """
    if any(np.dtype(d) == np.float64 for d in dtypes):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def as_float_array(name: str, value: Any) -> jax.Array:
    """Convert ``value`` to a float32 or float64 JAX array.

    NumPy arrays, JAX arrays, scalars and nested lists are accepted. Floating
    values keep float64 only when x64 is enabled; integers and other floating
    types become the default float type. Tracers pass through unchanged apart
    from the same dtype rule.
    """
    if isinstance(value, jax.Array):
        dtype = value.dtype
    else:
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise TypeError(
                f"{name} must be an array of real numbers, got a {type(value).__name__} "
                f"that NumPy cannot convert ({error})"
            ) from None
        dtype = value.dtype

    if jnp.issubdtype(dtype, jnp.bool_) or not (
        jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)
    ):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {np.dtype(dtype).name}")

    if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64)):
        target = wider_float(dtype) if jax.config.jax_enable_x64 else np.dtype(np.float32)
    else:
        target = default_float_dtype()
    return jnp.asarray(value, dtype=target)


def check_points(x: Any, dim: int, *, name: str = "x") -> jax.Array:
    """Convert a batch of points to a float array whose last axis has length ``dim``."""
    x = as_float_array(name, x)
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., {dim}) with the target's dimension {dim} as its "
            f"last axis, got shape {tuple(x.shape)}"
        )
    return x


def check_indices(name: str, value: Any, *, maximum: int) -> jax.Array:
    """Convert stream indices to an integer array, checking ``0 <= index <= maximum``.

    Traced indices pass through with only the dtype checked, because their
    values are not known.
    """
    if not isinstance(value, jax.Array):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise TypeError(
                f"{name} must be an array of integers, got a {type(value).__name__} that NumPy "
                f"cannot convert ({error})"
            ) from None
    if jnp.issubdtype(value.dtype, jnp.bool_) or not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(f"{name} must be integers, got dtype {np.dtype(value.dtype).name}")
    if not is_traced(value) and value.size:
        low, high = int(np.min(value)), int(np.max(value))
        if low < 0 or high > maximum:
            bad = low if low < 0 else high
            raise ValueError(f"{name} must lie in [0, {maximum}], got {bad}")
    if isinstance(value, np.ndarray):
        # Values are in range, so the cast to uint32 keeps them exactly.
        value = value.astype(np.uint32)
    return jnp.asarray(value)
