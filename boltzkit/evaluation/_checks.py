"""Shape checks for the metric functions, which work on concrete arrays and tracers alike."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from boltzkit._validation import as_float_array, is_traced, wider_float


def check_finite_rows(name: str, points: jax.Array) -> None:
    """Raise ``ValueError`` naming the first row with a NaN or inf; tracers are not checked."""
    if is_traced(points):
        return
    bad_rows = ~jnp.all(jnp.isfinite(points), axis=-1)
    if bool(jnp.any(bad_rows)):
        first = int(jnp.argmax(bad_rows))
        raise ValueError(
            f"{name} must be finite, but {int(jnp.sum(bad_rows))} of {points.shape[0]} rows "
            f"contain NaN or inf (the first is row {first}); drop or fix those samples"
        )


def point_sets(x: Any, y: Any, *, x_name: str = "x", y_name: str = "y", minimum: int = 2):
    """Convert two point sets to arrays of one float dtype, of shapes (n, d) and (m, d)."""
    x = as_float_array(x_name, x)
    y = as_float_array(y_name, y)
    for name, value in ((x_name, x), (y_name, y)):
        if value.ndim != 2:
            raise ValueError(
                f"{name} must have shape (n_samples, dim), got shape {tuple(value.shape)}"
            )
        if value.shape[0] < minimum:
            raise ValueError(
                f"{name} must have at least {minimum} samples, got {value.shape[0]}"
            )
    for name, value in ((x_name, x), (y_name, y)):
        check_finite_rows(name, value)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same dimension, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    dtype = wider_float(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def log_density_pair(
    target_log_probs: Any, model_log_probs: Any
) -> tuple[jax.Array, jax.Array]:
    """Convert two log-density vectors evaluated at the same samples to arrays of shape (n,)."""
    target_log_probs = as_float_array("target_log_probs", target_log_probs)
    model_log_probs = as_float_array("model_log_probs", model_log_probs)
    for name, value in (("target_log_probs", target_log_probs), ("model_log_probs", model_log_probs)):
        if value.ndim != 1 or value.shape[0] < 1:
            raise ValueError(
                f"{name} must have shape (n_samples,) with n_samples >= 1, got shape "
                f"{tuple(value.shape)}"
            )
    if target_log_probs.shape != model_log_probs.shape:
        raise ValueError(
            "target_log_probs and model_log_probs must be evaluated at the same samples, got "
            f"shapes {tuple(target_log_probs.shape)} and {tuple(model_log_probs.shape)}"
        )
    dtype = wider_float(target_log_probs.dtype, model_log_probs.dtype)
    return target_log_probs.astype(dtype), model_log_probs.astype(dtype)


def log_densities(name: str, value: Any) -> jax.Array:
    """Convert one log-density vector to an array of shape (n,) with n >= 1."""
    value = as_float_array(name, value)
    if value.ndim != 1 or value.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (n_samples,) with n_samples >= 1, got shape {tuple(value.shape)}"
        )
    return value


# Coordinates at or above 2**32 would make squared distances overflow in
# float32 (their square is 2**64 per coordinate, summed over dimensions and
# pairs), so the distance metrics scale such points by a power of two first.
_LARGE_COORDINATE = 2.0**32


def _largest_coordinate(x, y):
    """Return the largest absolute coordinate of ``x`` and ``y``."""
    return jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(y)))


def has_large_coordinates(x, y):
    """Return whether a coordinate of ``x`` or ``y`` reaches 2**32 in size."""
    return _largest_coordinate(x, y) >= _LARGE_COORDINATE


def scale_exponent(x, y):
    """Return ``e`` such that squared distances of ``x * 2**-e`` and ``y * 2**-e`` sum without overflow.

    ``e`` is 0 unless a coordinate reaches 2**32, or all are below 2**-32
    (then ``e < 0``, see :func:`tiny_shift`), so ordinary points are not
    touched. Large coordinates are brought down only as far as the sum of
    ``max(n, m)`` squared distances needs. For a few thousand points in a
    few dimensions in float32, this keeps the squared distances of nearby
    points above the smallest normal float unless coordinates exceed about
    2**120. Scaling by a power of two is exact, and W2 is homogeneous in the
    scale, so it is computed on the scaled points and scaled back exactly.
    """
    largest = _largest_coordinate(x, y)
    _, exponent = jnp.frexp(largest)
    terms = 4 * x.shape[1] * max(x.shape[0], y.shape[0])
    headroom = (jnp.finfo(x.dtype).maxexp - 2 - math.ceil(math.log2(terms))) // 2
    down = jnp.maximum(exponent - headroom, 0)
    return jnp.where(largest >= _LARGE_COORDINATE, down, tiny_shift(x, y))


# Largest number of elements of one (rows, m, d) intermediate of a pairwise
# computation: 16 MiB in float32.
_MAX_PAIR_ELEMENTS = 2**22


def map_row_blocks(pair_function, a, b):
    """Return ``pair_function(a, b)`` of shape ``(n, m)``, evaluated on blocks of rows of ``a``.

    A block has as many rows as keep ``rows * m * d`` within 2**22, so the
    ``(rows, m, d)`` differences inside ``pair_function`` stay bounded in
    memory for any ``d``. The last block is padded with copies of the last
    row, whose results are dropped.
    """
    n, m, dim = a.shape[0], b.shape[0], a.shape[1]
    rows = max(1, min(n, _MAX_PAIR_ELEMENTS // max(1, m * dim)))
    if rows == n:
        return pair_function(a, b)
    n_blocks = -(-n // rows)
    padding = n_blocks * rows - n
    if padding:
        a = jnp.concatenate([a, jnp.broadcast_to(a[-1:], (padding, dim))], axis=0)
    blocks = jax.lax.map(lambda block: pair_function(block, b), a.reshape(n_blocks, rows, dim))
    return blocks.reshape(n_blocks * rows, m)[:n]


def robust_norms(vectors):
    """Return the Euclidean norms over the last axis, without squaring a large or tiny number.

    Each vector is divided by its largest coordinate before squaring, so
    the squares neither overflow nor underflow, and a norm is inf only where
    it exceeds the largest float.
    """
    largest = jnp.max(jnp.abs(vectors), axis=-1)
    safe = jnp.where(largest > 0, largest, 1.0)
    unit = vectors / safe[..., None]
    # The sum is at least 1 wherever a vector is not zero, because the largest
    # coordinate of ``unit`` is exactly 1 in size. The floor only keeps the
    # gradient at zero vectors finite.
    return largest * jnp.sqrt(jnp.maximum(jnp.sum(unit * unit, axis=-1), 1.0))


# Coordinates below this size are scaled up before distances are formed,
# because the squares of their differences would fall below the smallest
# normal float32, which the CPU flushes to zero.
_SMALL_COORDINATE = 2.0**-32


def tiny_shift(x, y):
    """Return ``s <= 0`` such that ``x * 2**-s`` and ``y * 2**-s`` have a largest coordinate near 1.

    ``s`` is 0 unless every coordinate is below 2**-32 in size. Scaling by a
    power of two is exact.
    """
    largest = _largest_coordinate(x, y)
    _, exponent = jnp.frexp(largest)
    return jnp.where((largest > 0) & (largest < _SMALL_COORDINATE), exponent, 0)


def far_shift(x, y):
    """Return ``s`` such that ``x * 2**-s`` and ``y * 2**-s`` have coordinates of a safe size.

    Coordinates above 2**100 are brought down to that size, so differences
    and their norms cannot overflow while nearby points keep their digits.
    When every coordinate is below 2**-32, the largest is brought up near 1
    (see :func:`tiny_shift`). Otherwise ``s`` is 0. Scaling by a power of
    two is exact.
    """
    largest = _largest_coordinate(x, y)
    _, exponent = jnp.frexp(largest)
    return jnp.where(exponent > 100, exponent - 100, tiny_shift(x, y))


def robust_distances(x, y):
    """Return the matrix of Euclidean distances of any finite points, without NaN.

    Points are first scaled by the power of two of :func:`far_shift`, and
    the distances come from :func:`robust_norms`. A distance is inf only
    where it exceeds the largest float.
    """
    shift = far_shift(x, y)
    x, y = jnp.ldexp(x, -shift), jnp.ldexp(y, -shift)
    distances = map_row_blocks(lambda a, b: robust_norms(a[:, None, :] - b[None, :, :]), x, y)
    return jnp.ldexp(distances, shift)


def safe_norm(squared):
    """Return sqrt(squared) with a zero gradient, not NaN, where squared is 0."""
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
