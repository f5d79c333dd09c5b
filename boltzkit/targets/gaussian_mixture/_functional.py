r"""Pure functions of a mixture of Gaussians with diagonal covariances.

The density of a mixture with ``n_components`` components in ``dim``
dimensions is

.. math::

    p(x) = \sum_k w_k \prod_d \mathcal{N}(x_d; \mu_{kd}, \sigma_{kd}^2),
    \qquad w = \operatorname{softmax}(\text{logits}).

Every function here takes the parameters as plain arrays: ``means`` and
``diag_stds`` of shape ``(k, d)`` and ``logits`` of shape ``(k,)``. Points
``x`` have shape ``(..., d)``. Nothing here checks values, so the functions
trace under ``jit``, ``vmap`` and ``grad`` with any arguments of those shapes.

Derivatives come from a hand-written JVP rule: the derivative of the
log-density is a responsibility-weighted sum over components, which is
cheaper and numerically safer than differentiating through the log-sum-exp.
The rule is written in JAX operations, so forward mode, reverse mode and
higher derivatives (Hessians, divergences) all work.
"""

from __future__ import annotations

import contextlib
import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from boltzkit._validation import wider_float

LOG_2PI = math.log(2.0 * math.pi)

# Up to this dimension the squared distances are accumulated one coordinate
# at a time, so only (rows, k) arrays exist. Above it, one fused broadcast
# over (rows, k, d) is cheaper to compile.
MAX_UNROLLED_DIM = 16

# Rows per chunk for the coordinate-wise path: (8192, k) float32 arrays stay
# in the cache for the usual k.
CHUNK_ROWS = 8192

# Upper bound on the elements of one (rows, k, d) intermediate on the
# broadcast path, which caps its memory at 16 MiB in float32.
MAX_CHUNK_ELEMENTS = 2**22

# In float32 the squared distance overflows once |x - mean| / std > 1.8e19.
# Distances rescaled by this factor stay finite up to the float32 maximum,
# which is enough to find the nearest component.
_FAR_SCALE = 2.0**-64


def _pinned_threefry():
    """Fix the threefry bit layout to the partitionable one while tracing.

    The per-index streams are prefix-stable under both settings of
    ``jax_threefry_partitionable``, but the bits differ between them. Pinning
    the setting keeps datasets identical whatever a user sets globally.
    """
    if hasattr(jax, "threefry_partitionable"):
        return jax.threefry_partitionable(True)
    return contextlib.nullcontext()


def chunk_rows(n_components: int, dim: int) -> int:
    """Return the number of rows evaluated per chunk for a mixture of this shape.

    >>> chunk_rows(n_components=40, dim=2), chunk_rows(n_components=1000, dim=512)
    (8192, 16)
    """
    if dim <= MAX_UNROLLED_DIM:
        return CHUNK_ROWS
    return max(16, min(CHUNK_ROWS, MAX_CHUNK_ELEMENTS // (n_components * dim)))


def _common_dtype(means, diag_stds, logits, x):
    return wider_float(means.dtype, diag_stds.dtype, logits.dtype, x.dtype)


def _squared_distances(x, means, inv_stds):
    """Return sum_d ((x_nd - mean_kd) / std_kd)^2 of shape (n, k)."""
    dim = means.shape[-1]
    if dim <= MAX_UNROLLED_DIM:
        total = None
        for d in range(dim):
            z = (x[:, d, None] - means[None, :, d]) * inv_stds[None, :, d]
            total = z * z if total is None else total + z * z
        return total
    z = (x[:, None, :] - means[None]) * inv_stds[None]
    return jnp.sum(z * z, axis=-1)


def _far_responsibilities(x, means, inv_stds, logits):
    """Return one-hot responsibilities of the nearest component, from rescaled distances.

    Used only where every squared distance overflows, so that the score still
    points toward the nearest mode instead of becoming NaN. Components of
    weight zero are never the nearest.
    """
    dim = means.shape[-1]
    if dim <= MAX_UNROLLED_DIM:
        total = None
        for d in range(dim):
            z = (x[:, d, None] * _FAR_SCALE - means[None, :, d] * _FAR_SCALE) * inv_stds[None, :, d]
            total = z * z if total is None else total + z * z
    else:
        z = (x[:, None, :] * _FAR_SCALE - means[None] * _FAR_SCALE) * inv_stds[None]
        total = jnp.sum(z * z, axis=-1)
    # A component of weight zero is never the nearest one.
    total = jnp.where(jnp.isneginf(logits)[None, :], jnp.inf, total)
    nearest = jnp.argmin(total, axis=-1)
    return jax.nn.one_hot(nearest, means.shape[0], dtype=x.dtype)


def _component_log_joints(means, diag_stds, logits, x):
    """Return log w_k + log N(x; mean_k, std_k) of shape (n, k), and 1 / std."""
    dim = means.shape[-1]
    log_weights = jax.nn.log_softmax(logits)
    inv_stds = 1.0 / diag_stds
    # log(std) of a negative std is NaN, so invalid parameters that reach a
    # jitted call give NaN rather than the density of |std|.
    log_norm = log_weights - jnp.sum(jnp.log(diag_stds), axis=-1) - 0.5 * dim * LOG_2PI
    return log_norm[None, :] - 0.5 * _squared_distances(x, means, inv_stds), inv_stds


def _logsumexp_rows(a):
    """Return log sum_k exp(a_nk), which is -inf where every entry is -inf."""
    row_max = jnp.max(a, axis=-1)
    shift = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    return shift + jnp.log(jnp.sum(jnp.exp(a - shift[:, None]), axis=-1))


def _responsibilities(a, log_probs, x, means, inv_stds, logits):
    """Return the posterior component probabilities p(k | x) of shape (n, k)."""
    regular = jnp.exp(a - jnp.where(jnp.isfinite(log_probs), log_probs, 0.0)[:, None])
    overflowed = jnp.isneginf(log_probs)
    return jax.lax.cond(
        jnp.any(overflowed),
        lambda: jnp.where(
            overflowed[:, None], _far_responsibilities(x, means, inv_stds, logits), regular
        ),
        lambda: regular,
    )


def _weighted_pull(r, x, means, inv_stds):
    """Return sum_k r_nk (mean_k - x_n) / std_k^2 of shape (n, d): the score."""
    dim = means.shape[-1]
    inv_vars = inv_stds * inv_stds
    if dim <= MAX_UNROLLED_DIM:
        columns = [
            jnp.sum(r * ((means[None, :, d] - x[:, d, None]) * inv_vars[None, :, d]), axis=-1)
            for d in range(dim)
        ]
        return jnp.stack(columns, axis=-1)
    return jnp.einsum(
        "nk,nkd->nd", r, (means[None] - x[:, None, :]) * inv_vars[None], precision=jax.lax.Precision.HIGHEST
    )


def _mean_tangent(r, x, means, inv_stds, dmeans):
    """Return sum_kd r_nk (x_nd - mean_kd) / std_kd^2 * dmeans_kd of shape (n,)."""
    dim = means.shape[-1]
    inv_vars = inv_stds * inv_stds
    if dim <= MAX_UNROLLED_DIM:
        total = 0.0
        for d in range(dim):
            total = total + jnp.sum(
                r * ((x[:, d, None] - means[None, :, d]) * inv_vars[None, :, d] * dmeans[None, :, d]),
                axis=-1,
            )
        return total
    coefficients = (x[:, None, :] - means[None]) * inv_vars[None]
    return jnp.einsum(
        "nk,nkd,kd->n", r, coefficients, dmeans, precision=jax.lax.Precision.HIGHEST
    )


def _std_tangent(r, x, means, inv_stds, dstds):
    """Return sum_kd r_nk (z_nkd^2 - 1) / std_kd * dstds_kd, with z = (x - mean) / std.

    The product is formed as z * (r * z) - r: where z^2 overflows, a component
    of responsibility zero then contributes 0 rather than 0 * inf = NaN.
    """
    dim = means.shape[-1]
    if dim <= MAX_UNROLLED_DIM:
        total = 0.0
        for d in range(dim):
            z = (x[:, d, None] - means[None, :, d]) * inv_stds[None, :, d]
            total = total + jnp.sum(
                (z * (r * z) - r) * (inv_stds[None, :, d] * dstds[None, :, d]), axis=-1
            )
        return total
    z = (x[:, None, :] - means[None]) * inv_stds[None]
    weighted = z * (r[:, :, None] * z) - r[:, :, None]
    return jnp.einsum(
        "nkd,kd->n", weighted * inv_stds[None], dstds, precision=jax.lax.Precision.HIGHEST
    )


@jax.custom_jvp
def _log_prob_rows(means, diag_stds, logits, x):
    """Return the log-density of each row of ``x`` of shape (n, d)."""
    a, _ = _component_log_joints(means, diag_stds, logits, x)
    return _logsumexp_rows(a)


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


@functools.partial(_log_prob_rows.defjvp, symbolic_zeros=True)
def _log_prob_rows_jvp(primals, tangents):
    means, diag_stds, logits, x = primals
    dmeans, dstds, dlogits, dx = tangents

    a, inv_stds = _component_log_joints(means, diag_stds, logits, x)
    log_probs = _logsumexp_rows(a)
    r = _responsibilities(a, log_probs, x, means, inv_stds, logits)

    tangent = jnp.zeros_like(log_probs)
    if not _is_zero(dx):
        tangent = tangent + jnp.sum(_weighted_pull(r, x, means, inv_stds) * dx, axis=-1)
    if not _is_zero(dlogits):
        # d log w_k = dlogits_k - sum_j w_j dlogits_j, and the responsibilities sum to one.
        weights = jax.nn.softmax(logits)
        tangent = tangent + (jnp.sum(r * dlogits[None, :], axis=-1) - jnp.sum(weights * dlogits))
    if not _is_zero(dmeans):
        tangent = tangent + _mean_tangent(r, x, means, inv_stds, dmeans)
    if not _is_zero(dstds):
        tangent = tangent + _std_tangent(r, x, means, inv_stds, dstds)
    return log_probs, tangent


def _map_rows(fn, x, rows_per_chunk):
    """Apply ``fn`` to the rows of ``x`` in chunks so that memory stays bounded.

    ``fn`` takes a ``(rows, d)`` array and returns arrays whose leading axis
    is ``rows``. The last chunk is padded with copies of the first row, whose
    results are dropped.
    """
    n_rows = x.shape[0]
    if n_rows <= rows_per_chunk:
        return fn(x)
    n_chunks = -(-n_rows // rows_per_chunk)
    padding = jnp.broadcast_to(x[:1], (n_chunks * rows_per_chunk - n_rows, x.shape[1]))
    chunks = jnp.concatenate([x, padding]).reshape((n_chunks, rows_per_chunk, x.shape[1]))
    results = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda out: out.reshape((-1, *out.shape[2:]))[:n_rows], results)


def _flatten_points(means, diag_stds, logits, x):
    dtype = _common_dtype(means, diag_stds, logits, x)
    params = (means.astype(dtype), diag_stds.astype(dtype), logits.astype(dtype))
    batch_shape = x.shape[:-1]
    rows = x.astype(dtype).reshape((-1, x.shape[-1]))
    return params, rows, batch_shape


def log_prob(means, diag_stds, logits, x):
    """Return the mixture log-density at ``x`` of shape ``(..., d)``, of shape ``(...)``.

    The computation runs in the wider of the parameters' and the points'
    float dtypes.

    >>> import jax.numpy as jnp
    >>> means = jnp.array([[0.0], [2.0]])
    >>> stds = jnp.ones((2, 1))
    >>> float(log_prob(means, stds, jnp.zeros(2), jnp.array([1.0])))
    -1.4189...
    """
    params, rows, batch_shape = _flatten_points(means, diag_stds, logits, x)
    rows_per_chunk = chunk_rows(means.shape[0], means.shape[1])
    values = _map_rows(lambda chunk: _log_prob_rows(*params, chunk), rows, rows_per_chunk)
    return values.reshape(batch_shape)


def _rows_value_and_score(params, rows):
    values, pullback = jax.vjp(lambda points: _log_prob_rows(*params, points), rows)
    (scores,) = pullback(jnp.ones_like(values))
    return values, scores


def log_prob_and_score(means, diag_stds, logits, x):
    """Return the log-density and its gradient with respect to ``x`` in one pass.

    >>> import jax.numpy as jnp
    >>> value, grad = log_prob_and_score(jnp.zeros((1, 2)), jnp.ones((1, 2)), jnp.zeros(1),
    ...                                  jnp.array([1.0, -2.0]))
    >>> grad
    Array([-1.,  2.], dtype=float32)
    """
    params, rows, batch_shape = _flatten_points(means, diag_stds, logits, x)
    rows_per_chunk = chunk_rows(means.shape[0], means.shape[1])
    values, scores = _map_rows(
        lambda chunk: _rows_value_and_score(params, chunk), rows, rows_per_chunk
    )
    return values.reshape(batch_shape), scores.reshape(x.shape)


def score(means, diag_stds, logits, x):
    """Return the score, the gradient of the log-density with respect to ``x``.

    Computed with ``jax.grad`` of :func:`log_prob`; it has the shape of ``x``.

    >>> import jax.numpy as jnp
    >>> score(jnp.zeros((1, 1)), jnp.full((1, 1), 2.0), jnp.zeros(1), jnp.array([[4.0]]))
    Array([[-1.]], dtype=float32)
    """
    return log_prob_and_score(means, diag_stds, logits, x)[1]


def sample_at(means, diag_stds, logits, key):
    """Draw one sample of shape ``(d,)`` from a single key.

    The key gives ``d + 1`` uniforms ``u`` on ``(-1, 1)`` in one call of
    ``jax.random.uniform``. The component is chosen by inverse CDF from
    ``(u_0 + 1) / 2``: component ``k`` owns the interval ``[c_{k-1}, c_k)``
    of the cumulative weights scaled to their total, so a component of
    weight zero is never chosen. The noise is ``sqrt(2) * erfinv(u_{1:})``,
    the same transform ``jax.random.normal`` uses.

    >>> import jax, jax.numpy as jnp
    >>> x = sample_at(jnp.array([[5.0, -5.0]]), jnp.full((1, 2), 1e-3), jnp.zeros(1),
    ...               jax.random.key(0))
    >>> x.shape, bool(jnp.allclose(x, jnp.array([5.0, -5.0]), atol=0.01))
    ((2,), True)
    """
    dim = means.shape[-1]
    dtype = wider_float(means.dtype, diag_stds.dtype, logits.dtype)
    lowest = jnp.nextafter(jnp.array(-1.0, dtype), jnp.array(0.0, dtype))
    with _pinned_threefry():
        u = jax.random.uniform(key, (dim + 1,), dtype=dtype, minval=lowest, maxval=1.0)

    weights = jax.nn.softmax(logits.astype(dtype))
    cumulative = jnp.cumsum(weights)
    position = 0.5 * (u[0] + 1.0) * cumulative[-1]
    component = jnp.sum(cumulative <= position)
    # Rounding can put the position at the very end of the last interval;
    # fall back to the last component with a positive weight.
    last_positive = weights.shape[0] - 1 - jnp.argmax(weights[::-1] > 0)
    component = jnp.minimum(component, last_positive)

    noise = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.lax.erf_inv(u[1:])
    return means[component].astype(dtype) + diag_stds[component].astype(dtype) * noise


def sample_indices(means, diag_stds, logits, stream_key, indices):
    """Draw the samples at ``indices`` of the stream ``stream_key``.

    Sample ``i`` uses only ``jax.random.fold_in(stream_key, i)``, so any
    slice of the stream can be drawn directly and a longer draw keeps a
    shorter one as its prefix.

    >>> import jax, jax.numpy as jnp
    >>> params = (jnp.array([[0.0], [9.0]]), jnp.ones((2, 1)), jnp.zeros(2))
    >>> head = sample_indices(*params, jax.random.key(0), jnp.arange(3, dtype=jnp.uint32))
    >>> tail = sample_indices(*params, jax.random.key(0), jnp.arange(1, 3, dtype=jnp.uint32))
    >>> head.shape, bool((head[1:] == tail).all())
    ((3, 1), True)
    """

    def one(index):
        with _pinned_threefry():
            key = jax.random.fold_in(stream_key, index)
        return sample_at(means, diag_stds, logits, key)

    return jax.vmap(one)(indices)
