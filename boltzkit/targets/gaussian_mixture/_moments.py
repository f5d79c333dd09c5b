r"""Exact ground truth for diagonal Gaussian mixtures.

With weights :math:`w_k`, means :math:`\mu_k` and diagonal covariances
:math:`\Sigma_k = \operatorname{diag}(\sigma_k^2)`:

.. math::

    E[x] = \sum_k w_k \mu_k, \qquad
    E[x x^T] = \sum_k w_k (\Sigma_k + \mu_k \mu_k^T), \qquad
    \operatorname{Cov}[x] = \sum_k w_k \bigl(\Sigma_k + (\mu_k - E[x])(\mu_k - E[x])^T\bigr),

and for :math:`f(x) = (x + s)^T A (x + s) + b^T (x + s)`

.. math::

    E[f(x)] = \sum_k w_k \bigl((\mu_k + s)^T A (\mu_k + s)
    + \operatorname{tr}(A \Sigma_k) + b^T (\mu_k + s)\bigr).

The moment functions compute in float64 with NumPy when every argument is a
concrete array, whatever the x64 setting, and return NumPy float64 values.
Inside ``jit`` or ``grad``, where an argument is a tracer, they compute with
JAX in the wider float dtype of their arguments instead.

A marginal over some coordinates and the image under ``x -> x / c`` of a
diagonal mixture are again diagonal mixtures; :func:`marginal_parameters`
and :func:`rescale_parameters` return their parameters.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit._validation import as_float_array, is_traced, wider_float
from boltzkit.targets.gaussian_mixture import _functional


def _as_float64(name: str, value: Any) -> np.ndarray:
    """Convert a concrete array of real numbers to float64 without an intermediate float32."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be an array of real numbers, got a {type(value).__name__} that NumPy "
            f"cannot convert ({error})"
        ) from None
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {array.dtype.name}")
    return array.astype(np.float64)


def _as_arrays(named: dict[str, Any]):
    """Return ``(xp, arrays)``: float64 NumPy arrays if all are concrete, else JAX arrays."""
    if not any(is_traced(value) for value in named.values()):
        return np, {name: _as_float64(name, value) for name, value in named.items()}
    converted = {name: as_float_array(name, value) for name, value in named.items()}
    dtype = wider_float(*(array.dtype for array in converted.values()))
    return jnp, {name: array.astype(dtype) for name, array in converted.items()}


def _weights(xp, logits):
    # The largest logit is finite: the constructor rejects +inf and all -inf.
    unnormalized = xp.exp(logits - xp.max(logits))
    return unnormalized / xp.sum(unnormalized)


def _dot(xp, left, right):
    """Return ``left @ right``, in full float32 precision on accelerators for JAX arrays."""
    if xp is np:
        return left @ right
    return jnp.matmul(left, right, precision=jax.lax.Precision.HIGHEST)


def _symmetrize(matrix):
    # The two triangles of a weighted outer product can round differently.
    return 0.5 * (matrix + matrix.T)


def _check_parameter_shapes(means, diag_stds, logits) -> None:
    if means.ndim != 2 or diag_stds.shape != means.shape or logits.shape != means.shape[:1]:
        raise ValueError(
            "means and diag_stds must have shape (n_components, dim) and logits shape "
            f"(n_components,), got {tuple(means.shape)}, {tuple(diag_stds.shape)} and "
            f"{tuple(logits.shape)}"
        )


def _parameters(means, diag_stds, logits, **extra):
    xp, arrays = _as_arrays({"means": means, "diag_stds": diag_stds, "logits": logits, **extra})
    _check_parameter_shapes(arrays["means"], arrays["diag_stds"], arrays["logits"])
    return xp, arrays


def mixture_mean(means: Any, diag_stds: Any, logits: Any) -> Any:
    """Return the mean ``E[x] = sum_k w_k mu_k`` of shape ``(D,)``.

    Example:
        >>> mixture_mean([[0.0, 2.0], [4.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]], [0.0, 0.0])
        array([2., 4.])
    """
    xp, a = _parameters(means, diag_stds, logits)
    return _dot(xp, _weights(xp, a["logits"]), a["means"])


def mixture_second_moment(means: Any, diag_stds: Any, logits: Any) -> Any:
    """Return ``E[x x^T] = sum_k w_k (diag(sigma_k^2) + mu_k mu_k^T)`` of shape ``(D, D)``.

    Example:
        >>> mixture_second_moment([[1.0, 0.0]], [[2.0, 3.0]], [0.0])
        array([[5., 0.],
               [0., 9.]])
    """
    xp, a = _parameters(means, diag_stds, logits)
    weights = _weights(xp, a["logits"])
    outer = _dot(xp, a["means"].T, weights[:, None] * a["means"])
    return _symmetrize(outer) + xp.diag(_dot(xp, weights, a["diag_stds"] ** 2))


def mixture_covariance(means: Any, diag_stds: Any, logits: Any) -> Any:
    """Return the covariance ``Cov[x]`` of shape ``(D, D)``.

    It is computed around the mean, as ``sum_k w_k (diag(sigma_k^2) +
    (mu_k - m)(mu_k - m)^T)`` with ``m = E[x]``, which avoids the cancellation
    of ``E[x x^T] - m m^T`` when the means are far from the origin.

    Example:
        >>> mixture_covariance([[-1.0], [1.0]], [[0.5], [0.5]], [0.0, 0.0])
        array([[1.25]])
    """
    xp, a = _parameters(means, diag_stds, logits)
    weights = _weights(xp, a["logits"])
    centered = a["means"] - _dot(xp, weights, a["means"])[None, :]
    spread = _dot(xp, centered.T, weights[:, None] * centered)
    return _symmetrize(spread) + xp.diag(_dot(xp, weights, a["diag_stds"] ** 2))


def quadratic_expectation(
    means: Any, diag_stds: Any, logits: Any, A: Any, b: Any = None, s: Any = None
) -> Any:
    """Return ``E[(x + s)^T A (x + s) + b^T (x + s)]`` under the mixture.

    Args:
        means: component means of shape ``(K, D)``.
        diag_stds: component standard deviations of shape ``(K, D)``.
        logits: unnormalized log-weights of shape ``(K,)``.
        A: a ``(D, D)`` matrix, not necessarily symmetric.
        b: a ``(D,)`` vector; zero by default.
        s: a ``(D,)`` shift; zero by default.

    Returns:
        A scalar: a NumPy float64 for concrete arguments, or a 0-d JAX array
        under tracing.

    Example:
        >>> float(quadratic_expectation([[1.0]], [[2.0]], [0.0], A=[[1.0]], b=[3.0], s=[1.0]))
        14.0
    """
    named = {"A": A}
    if b is not None:
        named["b"] = b
    if s is not None:
        named["s"] = s
    xp, a = _parameters(means, diag_stds, logits, **named)
    dim = a["means"].shape[1]
    a.setdefault("b", xp.zeros(dim, dtype=a["means"].dtype))
    a.setdefault("s", xp.zeros(dim, dtype=a["means"].dtype))
    expected = {"A": (dim, dim), "b": (dim,), "s": (dim,)}
    for name, shape in expected.items():
        if a[name].shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} for a mixture of dimension {dim}, got shape "
                f"{tuple(a[name].shape)}"
            )
        if xp is np and not np.all(np.isfinite(a[name])):
            raise ValueError(f"{name} must be finite, got {a[name].tolist()}")

    weights = _weights(xp, a["logits"])
    shifted = a["means"] + a["s"][None, :]
    quadratic = xp.sum(_dot(xp, shifted, a["A"]) * shifted, axis=1)
    trace = _dot(xp, a["diag_stds"] ** 2, xp.diag(a["A"]))
    linear = _dot(xp, shifted, a["b"])
    return _dot(xp, weights, quadratic + trace + linear)


def responsibilities(means: Any, diag_stds: Any, logits: Any, x: Any) -> jax.Array:
    """Return the posterior component probabilities ``p(k | x)`` of shape ``(..., K)``.

    Computed with JAX in the wider float dtype of the parameters and points,
    in chunks of rows like :func:`log_prob`; it traces under ``jit``. Every
    row sums to one. Where every component density underflows, the component
    nearest in standardized distance gets probability one. When those
    distances tie at float precision, the lowest index wins.

    Example:
        >>> import jax.numpy as jnp
        >>> r = responsibilities(jnp.array([[-1.0], [1.0]]), jnp.ones((2, 1)), jnp.zeros(2),
        ...                      jnp.array([[0.0], [1.0]]))
        >>> print(np.asarray(r).round(4))
        [[0.5    0.5   ]
         [0.1192 0.8808]]
    """
    return _functional.responsibilities(means, diag_stds, logits, x)


def check_dims(dims: Any, dim: int) -> tuple[int, ...]:
    """Check a selection of coordinates and return it as a tuple of indices in ``[0, dim)``.

    Negative indices count from the end, as in NumPy. The selection must be
    non-empty and free of repeats.

    Example:
        >>> check_dims([0, -1], 3)
        (0, 2)
    """
    if isinstance(dims, numbers.Integral) and not isinstance(dims, bool | np.bool_):
        dims = [dims]
    if isinstance(dims, np.ndarray | jax.Array):
        if is_traced(dims) or not jnp.issubdtype(dims.dtype, jnp.integer) or dims.ndim != 1:
            raise TypeError(
                f"dims must be an int or a sequence of ints, got an array of dtype {dims.dtype} "
                f"and shape {dims.shape}"
            )
        dims = dims.tolist()
    if not isinstance(dims, Sequence) or isinstance(dims, str):
        raise TypeError(f"dims must be an int or a sequence of ints, got {dims!r}")
    checked = []
    for value in dims:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
            raise TypeError(f"dims must contain only ints, got {value!r} in {list(dims)!r}")
        if not -dim <= value < dim:
            raise ValueError(
                f"dims must be in [{-dim}, {dim}) for a target of dimension {dim}, got {value}"
            )
        checked.append(int(value) % dim)
    if not checked:
        raise ValueError("dims must select at least one coordinate, got an empty sequence")
    if len(set(checked)) != len(checked):
        raise ValueError(f"dims must not repeat a coordinate, got {list(dims)!r}")
    return tuple(checked)


def marginal_parameters(means: Any, diag_stds: Any, logits: Any, dims: Any):
    """Return ``(means, diag_stds, logits)`` of the marginal over coordinates ``dims``.

    The marginal of a diagonal mixture keeps the weights and the selected
    columns of the means and standard deviations, in the order of ``dims``.

    Example:
        >>> import numpy as np
        >>> m, s, l = marginal_parameters(np.array([[1.0, 2.0, 3.0]]), np.ones((1, 3)),
        ...                               np.zeros(1), [2, 0])
        >>> m.tolist()
        [[3.0, 1.0]]
    """
    columns = np.asarray(check_dims(dims, means.shape[1]))
    return means[:, columns], diag_stds[:, columns], logits


def rescale_parameters(means: Any, diag_stds: Any, logits: Any, c: Any):
    """Return ``(means, diag_stds, logits)`` of the distribution of ``x / c``.

    ``c`` is a positive scalar or a ``(D,)`` vector of positive per-coordinate
    factors. If ``x`` has density ``p``, then ``y = x / c`` has density
    ``q(y) = p(c y) * prod_d c_d``, so ``log q(x / c) = log p(x) + sum_d log
    c_d``, which is ``D * log c`` for a scalar ``c``.

    Example:
        >>> import jax.numpy as jnp
        >>> m, s, l = rescale_parameters(jnp.array([[8.0, -4.0]]), jnp.full((1, 2), 2.0),
        ...                              jnp.zeros(1), 4.0)
        >>> m.tolist(), s.tolist()
        ([[2.0, -1.0]], [[0.5, 0.5]])
    """
    dim = means.shape[1]
    factor = as_float_array("c", c)
    if factor.ndim not in (0, 1) or (factor.ndim == 1 and factor.shape != (dim,)):
        raise ValueError(
            f"c must be a scalar or have shape ({dim},), the dimension of the target, got shape "
            f"{tuple(factor.shape)}"
        )
    if not is_traced(factor):
        values = np.asarray(factor)
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"c must be finite and > 0, got {values.tolist()}")
    factor = factor.astype(means.dtype)
    factor = jnp.broadcast_to(factor, (dim,))
    return means / factor[None, :], diag_stds / factor[None, :], logits
