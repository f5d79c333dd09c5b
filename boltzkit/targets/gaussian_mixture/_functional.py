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

METHODS = ("auto", "direct", "matmul")

# Up to this dimension the squared distances are accumulated one coordinate
# at a time, so only (rows, k) arrays exist. Above it, the direct method
# loops over the components (see MAX_UNROLLED_COMPONENTS) or uses one fused
# broadcast over (rows, k, d), and "auto" tries matrix products.
MAX_UNROLLED_DIM = 16

# Above MAX_UNROLLED_DIM, the direct method evaluates mixtures of up to this
# many components one component at a time, so only (rows, d) arrays exist.
# "auto" uses this loop for their score and responsibilities, because in high
# dimensions their matrix-product bound fails for many rows.
MAX_UNROLLED_COMPONENTS = 16

# Maximum number of rows per chunk.
CHUNK_ROWS = 32768

# Upper bound on the elements of one (rows, k) array of the coordinate-wise
# path: 8 MiB in float32. Fewer, larger chunks pay the per-chunk cost of
# launching kernels fewer times.
MAX_CHUNK_PAIRS = 2**21

# Upper bound on rows * d in a chunk of the component loop: 2 MiB of float32
# per operand, so that a chunk stays in cache.
MAX_CHUNK_ROW_ELEMENTS = 2**19

# Upper bound on rows * (k + d) in a chunk of the matrix-product path: 8 MiB
# of float32 per operand. Its few large kernels gain more from fewer launches
# than from staying in cache: on a 2-core CPU, chunks of 2 MiB measured 15%
# to 20% slower for k = 10, d = 100 and k = 128, d = 512.
MAX_MATMUL_ROW_ELEMENTS = 2**21

# Upper bound on the elements of one (rows, k, d) intermediate on the
# broadcast path, which caps its memory at 16 MiB in float32.
MAX_CHUNK_ELEMENTS = 2**22

# The matrix-product path is used only where its error bound on each log
# joint stays below this value, because the bound on the mixing terms grows
# like expm1 of it.
_MAX_JOINT_ERROR = 10.0

# Cap on the difference of a matrix-product log joint to the anchor's. Its exp
# is 6.2e27, so sums over up to 5e10 components stay finite in float32.
_MAX_RELATIVE_JOINT = 64.0

# Share of the accuracy target (1e-5 relative or 1e-4 absolute) that the
# rounding error of the matrix products may use.
_BOUND_SHARE = 0.25

# In float32 the squared distance overflows once |x - mean| / std > 1.8e19.
# Distances rescaled by this factor stay finite up to the float32 maximum,
# which is enough to find the nearest component.
_FAR_SCALE = 2.0**-64

_HIGHEST = jax.lax.Precision.HIGHEST

# Number of the largest components whose weights are recomputed in extended
# precision, in rows where rounding of the log joints could move the score or
# the responsibilities beyond the accuracy target. Mixtures with at most this
# many components, or with d <= MAX_UNROLLED_DIM, recompute all of them.
_REFINED_COMPONENTS = 4


def _pinned_threefry():
    """Fix the threefry bit layout to the partitionable one while tracing.

    The per-index streams are prefix-stable under both settings of
    ``jax_threefry_partitionable``, but the bits differ between them. Pinning
    the setting keeps datasets identical whatever a user sets globally.
    """
    if hasattr(jax, "threefry_partitionable"):
        return jax.threefry_partitionable(True)
    return contextlib.nullcontext()


def check_method(method: str) -> str:
    """Return ``method`` if it names an evaluation method, else raise ``ValueError``.

    >>> check_method("matmul")
    'matmul'
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return method


# Row counts below a chunk, from _MIN_PADDED_ROWS on, are padded to a
# multiple of _ROW_MULTIPLE. On a 2-core CPU with jax 0.10.2, every multiple
# of 256 rows gave each row the same bits in log_prob and the score. This
# held for 2 to 512 dimensions in float32 and float64. Other row counts
# changed the last bit of some rows. Smaller batches are left as they are,
# because vmap over single points would otherwise evaluate 256 rows per point.
_ROW_MULTIPLE = 256
_MIN_PADDED_ROWS = 64


def _power_of_two_rows(limit: float) -> int:
    """Return the largest power of two <= ``limit``, clipped to [16, CHUNK_ROWS]."""
    rows = 1 << max(0, int(limit).bit_length() - 1)
    return max(16, min(CHUNK_ROWS, rows))


def _direct_rows(n_components: int, dim: int) -> int:
    if dim <= MAX_UNROLLED_DIM:
        return _power_of_two_rows(MAX_CHUNK_PAIRS / n_components)
    if n_components <= MAX_UNROLLED_COMPONENTS:
        return _power_of_two_rows(MAX_CHUNK_ROW_ELEMENTS / dim)
    return _power_of_two_rows(MAX_CHUNK_ELEMENTS / (n_components * dim))


def _unrolls_components(n_components: int, dim: int) -> bool:
    return dim > MAX_UNROLLED_DIM and n_components <= MAX_UNROLLED_COMPONENTS


def _uses_matmul(method: str, n_components: int, dim: int, needs_weights: bool = False) -> bool:
    """Return whether ``method`` evaluates a mixture of this shape with matrix products.

    ``needs_weights`` is true when the pull or the responsibilities are
    requested. Their error bound grows with the squared distance in units of the stds,
    which is large in high dimensions, so with few components "auto" keeps
    them on the exact component loop.
    """
    if method == "matmul":
        return True
    if method != "auto" or dim <= MAX_UNROLLED_DIM:
        return False
    return not (needs_weights and _unrolls_components(n_components, dim))


def chunk_rows(n_components: int, dim: int, method: str = "auto") -> int:
    """Return the number of rows evaluated per chunk for a mixture of this shape.

    Every chunk size is a power of two, so the chunks of the matrix-product
    path split evenly into the smaller chunks of the direct path.

    >>> chunk_rows(40, 2)
    32768
    >>> chunk_rows(128, 512), chunk_rows(128, 512, method="direct")
    (2048, 64)
    """
    check_method(method)
    direct = _direct_rows(n_components, dim)
    if not _uses_matmul(method, n_components, dim):
        return direct
    return max(direct, _power_of_two_rows(MAX_MATMUL_ROW_ELEMENTS / (n_components + dim)))


def _common_dtype(means, diag_stds, logits, x):
    return wider_float(means.dtype, diag_stds.dtype, logits.dtype, x.dtype)


def _map_rows(fn, arrays, rows_per_chunk):
    """Apply ``fn`` to chunks of rows of ``arrays`` (a tuple) so that memory stays bounded.

    Every chunk has ``rows_per_chunk`` rows, so one compiled kernel serves all
    of them. The last chunk ends at the last row and may overlap the one
    before it. Rows are independent, so the overlapping rows get the same
    result twice. Each chunk is a slice of the inputs, and each result is
    written in place into the output.

    Fewer rows than a chunk, but at least ``_MIN_PADDED_ROWS``, are padded
    with copies of the last row to a multiple of ``_ROW_MULTIPLE``, or to a
    whole chunk, and the padding is cut from the results. XLA on the CPU
    picks its kernels by batch shape, and some round a row differently in
    the last bit for other row counts. With the padding, a row's value does
    not depend on the batch, for batches of at least ``_MIN_PADDED_ROWS``.
    """
    n_rows = arrays[0].shape[0]
    if n_rows <= rows_per_chunk:
        padded_rows = min(rows_per_chunk, -(-n_rows // _ROW_MULTIPLE) * _ROW_MULTIPLE)
        if n_rows < _MIN_PADDED_ROWS or padded_rows == n_rows:
            return fn(*arrays)
        padded = tuple(
            jnp.concatenate([a, jnp.broadcast_to(a[-1:], (padded_rows - n_rows, *a.shape[1:]))])
            for a in arrays
        )
        return jax.tree.map(lambda out: out[:n_rows], fn(*padded))
    n_chunks = -(-n_rows // rows_per_chunk)

    def chunk_at(i):
        start = jnp.minimum(i * rows_per_chunk, n_rows - rows_per_chunk)
        return start, fn(*(jax.lax.dynamic_slice_in_dim(a, start, rows_per_chunk) for a in arrays))

    def write(outputs, start, results):
        return jax.tree.map(
            lambda out, part: jax.lax.dynamic_update_slice_in_dim(out, part, start, axis=0),
            outputs,
            results,
        )

    shapes = jax.eval_shape(lambda i: chunk_at(i)[1], 0)
    outputs = jax.tree.map(lambda part: jnp.zeros((n_rows, *part.shape[1:]), part.dtype), shapes)
    return jax.lax.fori_loop(0, n_chunks, lambda i, outputs: write(outputs, *chunk_at(i)), outputs)


# ------------------------------------------------------------- direct method


def _squared_distances(x, means, inv_stds):
    """Return sum_d ((x_nd - mean_kd) / std_kd)^2 of shape (n, k)."""
    dim = means.shape[-1]
    if dim <= MAX_UNROLLED_DIM:
        total = None
        for d in range(dim):
            z = (x[:, d, None] - means[None, :, d]) * inv_stds[None, :, d]
            total = z * z if total is None else total + z * z
        return total
    if _unrolls_components(*means.shape):
        columns = []
        for k in range(means.shape[0]):
            z = (x - means[None, k]) * inv_stds[None, k]
            columns.append(jnp.sum(z * z, axis=-1))
        return jnp.stack(columns, axis=-1)
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


def _row_max(values):
    """Return the maximum over the last axis of ``values`` (n, m).

    Up to ``MAX_UNROLLED_DIM`` columns this is an elementwise maximum of the
    columns. On a 2-core CPU, XLA's row reduction over 2 columns of 32768
    rows measured 0.38 ms, and the elementwise form 0.05 ms.
    """
    n_columns = values.shape[-1]
    if 0 < n_columns <= MAX_UNROLLED_DIM:
        return functools.reduce(jnp.maximum, [values[:, i] for i in range(n_columns)])
    return jnp.max(values, axis=-1)


def _largest_components(a, count):
    """Return the columns of the ``count`` largest entries of each row of ``a`` (n, k), largest first.

    Each column comes from :func:`_top_components` after the columns found
    before it are set to -inf, which on the CPU is faster than
    ``jax.lax.top_k``, a sort. Near ties may come in either order, and rows
    with fewer than ``count`` finite entries may repeat a column.
    """
    columns = jnp.arange(a.shape[-1], dtype=jnp.int32)[None, :]
    found = []
    for _ in range(count):
        index = _top_components(a)[1]
        found.append(index)
        a = jnp.where(columns == index[:, None], -jnp.inf, a)
    return jnp.stack(found, axis=-1)


def _top_components(a):
    """Return ``(top, index)``: the largest entry of each row of ``a`` (n, k) and its column.

    The column index is written into the low mantissa bits of every finite
    entry, so a single float ``max`` finds both. ``top`` is then that entry
    with its lowest ``b`` bits replaced, ``b`` the bit length of ``k - 1``:
    within ``2**b`` units in the last place of the maximum, which is all a
    shift before ``exp`` needs. On the CPU this is several times faster than
    ``argmax``, a variadic reduction. Ties and near ties may return any of
    the near-maximal columns; rows holding NaN or infinities give a valid
    but arbitrary index.
    """
    n_components = a.shape[-1]
    low = (1 << max(1, (n_components - 1).bit_length())) - 1
    int_type = jnp.int64 if a.dtype == jnp.float64 else jnp.int32
    columns = jnp.arange(n_components, dtype=int_type)[None, :]
    bits = jax.lax.bitcast_convert_type(a, int_type)
    tagged = jax.lax.bitcast_convert_type((bits & ~low) | columns, a.dtype)
    top = jnp.max(jnp.where(jnp.isfinite(a), tagged, a), axis=-1)
    index = jax.lax.bitcast_convert_type(top, int_type) & low
    return top, jnp.minimum(index, n_components - 1).astype(jnp.int32)


def _log_normalizers(means, diag_stds, logits):
    """Return log w_k - sum_d log std_kd - d/2 log(2 pi) of shape (k,)."""
    dim = means.shape[-1]
    # log(std) of a negative std is NaN, so invalid parameters that reach a
    # jitted call give NaN rather than the density of |std|.
    return jax.nn.log_softmax(logits) - jnp.sum(jnp.log(diag_stds), axis=-1) - 0.5 * dim * LOG_2PI


def _component_log_joints(means, diag_stds, logits, x):
    """Return log w_k + log N(x; mean_k, std_k) of shape (n, k), and 1 / std."""
    inv_stds = 1.0 / diag_stds
    log_norm = _log_normalizers(means, diag_stds, logits)
    return log_norm[None, :] - 0.5 * _squared_distances(x, means, inv_stds), inv_stds


def _row_sums(values):
    """Return the sums over the last axis of ``values`` (n, m) as a product with a vector of ones.

    On the CPU, XLA fuses the elementwise work into a loop that writes
    ``values`` once and then runs one matrix-vector product. A reduction
    instead turns the products that feed it into a separate kernel with
    broadcast operands, and measured about twice as slow for the score.
    ``precision=HIGHEST`` keeps GPUs from rounding to TF32. A reduction
    also gave different bits for batches of 16 rows than for longer ones,
    and datasets of different lengths must store the same values.
    """
    ones = jnp.ones((values.shape[-1],), values.dtype)
    return jnp.dot(values, ones, precision=_HIGHEST)


def _weighted_terms(weights, terms):
    """Return ``terms`` set to 0 where the broadcast ``weights`` are 0.

    Far from the means, a component of weight zero can have an infinite
    pull, and weighting it by 0 would otherwise turn the score into NaN.
    """
    return jnp.where(weights == 0, 0.0, terms)


def _weighted_pull(r, x, means, inv_stds):
    """Return sum_k r_nk (mean_k - x_n) / std_k^2 of shape (n, d)."""
    dim = means.shape[-1]
    inv_vars = inv_stds * inv_stds
    if dim <= MAX_UNROLLED_DIM:
        columns = []
        for d in range(dim):
            # (mean - x) / std, so an exact zero stays +0.0 rather than -0.0.
            toward_mean = (means[None, :, d] - x[:, d, None]) * inv_stds[None, :, d]
            pulls = _weighted_terms(r, toward_mean * inv_stds[None, :, d])
            columns.append(_row_sums(r * pulls))
        return jnp.stack(columns, axis=-1)
    if _unrolls_components(*means.shape):
        total = None
        for k in range(means.shape[0]):
            weight = r[:, k, None]
            term = weight * _weighted_terms(weight, (means[None, k] - x) * inv_vars[None, k])
            total = term if total is None else total + term
        return total
    pulls = _weighted_terms(r[:, :, None], (means[None] - x[:, None, :]) * inv_vars[None])
    return jnp.einsum("nk,nkd->nd", r, pulls, precision=_HIGHEST)


def _anchor_parameters(means, inv_stds, anchor):
    """Return the means and 1 / std of the component ``anchor`` of each row, both (n, d), in one gather."""
    return jnp.split(jnp.concatenate([means, inv_stds], axis=1)[anchor], 2, axis=1)


def _expanded_pull(weights, a, x, means, inv_stds):
    r"""Return the unnormalized pull from one matrix product, and a bound on its error.

    The pull is sum_k w_k (mean_k - x) / std_k^2, with ``weights`` (n, k)
    the unnormalized weights of the log joints ``a``.
    The component ``j`` that :func:`_top_components` finds in ``a``
    contributes its own term ``w_j (mean_j - x) / std_j^2``. The others enter
    through :math:`\sum_k w_k m'_k v_k - x' \sum_k w_k v_k`, with
    ``v = 1 / std^2`` and ``m'`` and ``x'`` the means and points less the
    centre of the means, all from one product with a (k, 2d + 1) matrix.

    Rounding moves the sum of the others by at most
    :math:`\gamma_{k+4} W_n P_n`, with ``W_n`` the weight of the other
    components and :math:`P_n = (\|x'_n\|_\infty + \max|m'|) \max v`. The
    returned bound is twice that. The remaining rounding is a few units in
    the last place of the top component's term. Used for d > 16 with more
    than 16 components, where it replaces a (rows, k, d) product: on a
    2-core CPU, the score for k = 128, d = 512 then measured 20% faster. With
    fewer components or dimensions it measured no faster than the direct sums.
    """
    n_components, dim = means.shape
    inv_vars = inv_stds * inv_stds
    center = jnp.mean(means, axis=0)
    centered_means = means - center[None, :]
    centered_x = x - center[None, :]
    _, anchor = _top_components(a)
    is_anchor = jnp.arange(n_components, dtype=anchor.dtype)[None, :] == anchor[:, None]
    others = jnp.where(is_anchor, 0.0, weights)
    table = jnp.concatenate(
        [centered_means * inv_vars, inv_vars, jnp.ones((n_components, 1), x.dtype)], axis=1
    )
    sums = jnp.dot(others, table, precision=_HIGHEST)
    anchor_weight = jnp.take_along_axis(weights, anchor[:, None], axis=-1)
    anchor_means, anchor_inv_stds = _anchor_parameters(means, inv_stds, anchor)
    # (mean - x) / std, so an exact zero stays +0.0 rather than -0.0.
    anchor_pull = (anchor_means - x) * anchor_inv_stds * anchor_inv_stds
    pull = anchor_weight * _weighted_terms(anchor_weight, anchor_pull) + (
        sums[:, :dim] - centered_x * sums[:, dim : 2 * dim]
    )
    reach = (_row_max(jnp.abs(centered_x)) + jnp.max(jnp.abs(centered_means))) * jnp.max(inv_vars)
    error = 2.0 * _summation_error_factor(n_components + 4, x.dtype) * sums[:, 2 * dim] * reach
    return pull, error


def _direct_chunk(means, diag_stds, logits, x, need_pull, need_responsibilities):
    """Evaluate one chunk from (x - mean) / std.

    Returns ``(log_probs, pull, responsibilities, share, pull_error)``, with
    ``None`` for what is not requested. The pull is the score,
    sum_k r_nk (mean_k - x_n) / std_k^2. Where it comes from
    :func:`_expanded_pull`, ``pull_error`` bounds the rounding of its matrix
    product, and is ``None`` otherwise. ``share`` is
    the weight of all components but the largest, given with the pull or
    the responsibilities.
    """
    a, inv_stds = _component_log_joints(means, diag_stds, logits, x)
    row_max = _row_max(a)
    shift = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    unnormalized = jnp.exp(a - shift[:, None])
    total = _row_sums(unnormalized)
    log_probs = shift + jnp.log(total)
    if not (need_pull or need_responsibilities):
        return log_probs, None, None, None, None

    inv_total = 1.0 / total
    r = unnormalized * inv_total[:, None] if need_responsibilities else None
    pull = pull_error = None
    if need_pull and means.shape[-1] > MAX_UNROLLED_DIM and not _unrolls_components(*means.shape):
        pull, pull_error = _expanded_pull(unnormalized, a, x, means, inv_stds)
        pull = pull * inv_total[:, None]
        pull_error = pull_error * inv_total
    elif need_pull:
        pull = _weighted_pull(unnormalized, x, means, inv_stds) * inv_total[:, None]

    # Where every squared distance overflowed, all weights are zero, so the
    # nearest component then takes all the weight. Those rows are redone
    # after the common case, which stays one fused computation.
    overflowed = jnp.isneginf(row_max)

    def redo_far():
        far_weights = _far_responsibilities(x, means, inv_stds, logits)
        keep = overflowed[:, None]
        far_r = far_pull = far_error = None
        if need_responsibilities:
            far_r = jnp.where(keep, far_weights, r)
        if need_pull:
            far_pull = jnp.where(keep, _weighted_pull(far_weights, x, means, inv_stds), pull)
        if pull_error is not None:
            far_error = jnp.where(overflowed, 0.0, pull_error)
        return far_pull, far_r, far_error

    pull, r, pull_error = jax.lax.cond(
        jnp.any(overflowed), redo_far, lambda: (pull, r, pull_error)
    )
    # Rows where every density underflows get a share of -inf and are never refined.
    return log_probs, pull, r, (total - 1.0) / total, pull_error


def _imprecise_weights(means, diag_stds, logits, x, log_probs, share, pull, pull_error=None):
    r"""Return whether rounding of a row's log joints may move its weights beyond the accuracy target.

    The log joint ``a_k`` of a component at squared distance ``q_k`` carries a
    rounding error of several units in the last place of ``q_k / 2``. For the
    components that carry weight this is about ``u h_n``, with ``u`` the unit
    roundoff and ``h_n = max_k log_norm_k - log p(x_n)``. The
    responsibilities then move by up to about ``2 rho_n u h_n`` relative,
    with ``rho_n`` the share of the components other than the top one, and
    the score by that times the spread of the pulls,
    :math:`P_n = (\|x_n\|_\infty + \max|\mu|) \max \sigma^{-2}`. A row is
    flagged when this estimate exceeds a quarter of the accuracy target (of
    the score, or of 1e-4 absolute without one). This happens far from the
    means in units of the stds, at points that two components share; in
    high dimensions, at most points between components. A row is also
    flagged when the estimate plus ``pull_error``, the bound of
    :func:`_expanded_pull`, exceeds it, or when that bound is NaN and the
    log-density finite.
    """
    dtype = x.dtype
    unit_roundoff = float(jnp.finfo(dtype).eps) / 2.0
    headroom = jnp.max(_log_normalizers(means, diag_stds, logits)) - log_probs
    inv_stds = 1.0 / diag_stds
    reach = (_row_max(jnp.abs(x)) + jnp.max(jnp.abs(means))) * jnp.max(inv_stds * inv_stds)
    relative, absolute = _accuracy_target(dtype)
    if pull is None:
        tolerance = absolute
    else:
        tolerance = jnp.maximum(absolute, relative * _row_max(jnp.abs(pull)))
    estimate = 2.0 * share * unit_roundoff * headroom * jnp.maximum(reach, 1.0)
    limit = _BOUND_SHARE * tolerance
    # NaN estimates, from rows where every density underflows, compare False.
    flagged = estimate > limit
    if pull_error is None:
        return flagged
    # A NaN bound next to a finite log-density comes from overflow in the
    # product, so the row is flagged. Rows of invalid parameters have NaN
    # log-densities and are left as they are.
    within = jnp.where(jnp.isnan(estimate), 0.0, estimate) + pull_error <= limit
    return flagged | (jnp.isfinite(log_probs) & ~within)


def _refine_rows(means, diag_stds, logits, x, pull, r, imprecise):
    """Recompute the pull and responsibilities of the rows flagged ``imprecise``.

    The flagged rows get their weights from :func:`_refined_weights`, and
    ``pull`` or ``r`` may be ``None`` when not requested.

    NOTE: the weights are then rounded to the working precision. At a point
    shared equally by components with pulls ``g_1`` and ``g_2``, that moves
    the float32 pull by roughly ``1e-8 |g_1 - g_2|`` (measured), more than
    1e-4 once the pulls differ by about 1e4.
    """
    need_pull, need_responsibilities = pull is not None, r is not None

    def refine_chunk(points):
        a, inv_stds = _component_log_joints(means, diag_stds, logits, points)
        weights = _refined_weights(means, diag_stds, logits, points, a)
        inv_total = 1.0 / _row_sums(weights)
        refined_pull = None
        if need_pull:
            refined_pull = _weighted_pull(weights, points, means, inv_stds) * inv_total[:, None]
        refined_r = weights * inv_total[:, None] if need_responsibilities else None
        return refined_pull, refined_r

    rows = _direct_rows(*means.shape)
    return _repair_rows(
        (pull, r),
        ~imprecise,
        x,
        lambda points: _map_rows(refine_chunk, (points,), rows),
        _group_rows(x.shape[0], rows),
    )


def _split(a):
    """Return ``(high, low)`` with ``a == high + low`` exactly, each half of at most half the bits.

    The split clears low mantissa bits instead of multiplying by
    ``2**s + 1``, so it stays exact when the compiler contracts
    multiplications and additions into fused multiply-adds. Products of two
    halves are exact, apart from low times low in float64, whose rounding
    is 2**-106 relative.
    """
    if a.dtype == jnp.float64:
        int_type, low_bits = jnp.int64, 27
    else:
        int_type, low_bits = jnp.int32, 12
    mask = jnp.asarray(~((1 << low_bits) - 1), int_type)
    high = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(a, int_type) & mask, a.dtype)
    return high, a - high


def _two_sum(a, b):
    """Return ``(s, e)``: ``s = fl(a + b)`` and its rounding error, so ``a + b == s + e`` exactly."""
    s = a + b
    b_part = s - a
    a_part = s - b_part
    return s, (a - a_part) + (b - b_part)


def _power_of_two(exponent, dtype):
    """Return 2**exponent in ``dtype`` for integer arrays ``exponent``, clipped to the normal range."""
    info = jnp.finfo(dtype)
    int_type = jnp.int64 if dtype == jnp.float64 else jnp.int32
    bias = info.maxexp - 1
    biased = jnp.clip(exponent + bias, 1, 2 * bias).astype(int_type)
    return jax.lax.bitcast_convert_type(biased << info.nmant, dtype)


def _pairwise_compensated_sum(high, low):
    """Return the sum over the last axis of ``high + low`` as a pair ``(s, e)``, added in a tree."""
    while high.shape[-1] > 1:
        half = high.shape[-1] // 2
        s, e = _two_sum(high[..., :half], high[..., half:2 * half])
        rest_low = low[..., :half] + low[..., half:2 * half] + e
        if high.shape[-1] % 2:
            s = jnp.concatenate([s, high[..., -1:]], axis=-1)
            rest_low = jnp.concatenate([rest_low, low[..., -1:]], axis=-1)
        high, low = s, rest_low
    return high[..., 0], low[..., 0]


def _compensated_sum(high, low):
    """Return the sum over the last axis of ``high + low`` as an unevaluated pair ``(s, e)``.

    Up to 16 terms are added in a tree of :func:`_two_sum`. Longer sums split
    the terms twice on fixed grids: with ``sigma`` a power of two more than ``n + 2`` times the
    largest ``|high|``, ``(sigma + t) - sigma`` rounds ``t`` to a multiple
    of the unit in the last place of ``sigma``. Any sum of those multiples
    is exact, in any order, and the remainders are exact too. A second
    grid, finer by the working precision, does the same for the remainders
    plus ``low``, so the result carries about twice the working precision.
    ``high`` must hold the results of additions or exact products, not
    rounded products: a fused multiply-add could otherwise see a different
    ``high`` than the rest of the sum.
    """
    if high.shape[-1] <= MAX_UNROLLED_DIM:
        return _pairwise_compensated_sum(high, low)
    dtype = high.dtype
    info = jnp.finfo(dtype)
    int_type = jnp.int64 if dtype == jnp.float64 else jnp.int32
    spread = (high.shape[-1] + 1).bit_length()  # ceil(log2(n + 2))
    largest = jnp.max(jnp.abs(high), axis=-1, keepdims=True)
    exponent = (jax.lax.bitcast_convert_type(largest, int_type) >> info.nmant) - (info.maxexp - 1)
    coarse_grid = _power_of_two(exponent + 1 + spread, dtype)
    coarse = (coarse_grid + high) - coarse_grid
    rest = (high - coarse) + low
    fine_grid = _power_of_two(exponent + 1 + 2 * spread - info.nmant, dtype)
    fine = (fine_grid + rest) - fine_grid
    return jnp.sum(coarse, axis=-1), jnp.sum(fine, axis=-1) + jnp.sum(rest - fine, axis=-1)


def _std_parts(diag_stds):
    """Return ``(std, 1 / std, high, low)`` with ``std == high + low`` split by :func:`_split`."""
    high, low = _split(diag_stds)
    return diag_stds, 1.0 / diag_stds, high, low


def _compensated_squared_distances(x, means, std_parts):
    """Return sum_d ((x_d - mean_d) / std_d)^2 as a pair ``(s, e)`` in about twice the working precision.

    ``std_parts`` comes from :func:`_std_parts`. ``x``, ``means`` and the
    parts broadcast against each other over the leading axes. Every product
    whose rounding would matter is a product of two halves from
    :func:`_split` and therefore exact. That keeps the result the same
    whether or not the compiler fuses a product and a sum into one fused
    multiply-add, and whichever copy of a value XLA recomputes.
    """
    _, inv_stds, std_high, std_low = std_parts
    diff, diff_error = _two_sum(x, -means)
    z = diff * inv_stds
    z_high, z_low = _split(z)
    # diff - z * std, with diff - z_high * std_high exact: the two are close.
    residual = ((diff - z_high * std_high) - z_high * std_low) - z_low * std_high
    residual = (residual - z_low * std_low) + diff_error
    z_error = residual * inv_stds
    # z^2 = z_high^2 + 2 z_high z_low + z_low^2 + 2 z z_error, the first three exact.
    square, square_error = _two_sum(z_high * z_high, 2.0 * z_high * z_low)
    low = square_error + z_low * z_low + 2.0 * z * z_error
    return _compensated_sum(square, low)


def _compensated_log_norms(diag_stds, logits):
    """Return logits_k - sum_d log std_kd as a pair ``(s, e)`` in about twice the working precision.

    Each logarithm keeps its own rounding, about one unit in the last place of
    ``log std``. Only the sum is compensated.
    """
    log_stds = jnp.log(diag_stds)
    total, total_error = _compensated_sum(log_stds, jnp.zeros_like(log_stds))
    norm, norm_error = _two_sum(logits, -total)
    return norm, norm_error - total_error


def _refined_weights(means, diag_stds, logits, x, a):
    """Return weights exp(a_k - a_k*) of shape (n, k) whose largest terms carry extended precision.

    ``a`` contains the log joints of the rows ``x`` in the working precision and
    ``k*`` is the component of the largest one. The difference
    ``a_k - a_k*`` is recomputed from :func:`_compensated_squared_distances`
    and :func:`_compensated_log_norms` for every component when ``k`` is at
    most ``_REFINED_COMPONENTS`` or ``d <= 16``, and otherwise for the
    ``_REFINED_COMPONENTS`` largest.
    Those differences are then accurate to a few units in the last place of
    the difference itself, however large ``a`` is. Other components keep
    ``exp(a_k - a_k*)`` from ``a``, shifted the same way and capped at 1.
    """
    n_components, dim = means.shape
    refines_all = n_components <= _REFINED_COMPONENTS or dim <= MAX_UNROLLED_DIM
    anchor = _top_components(a)[1]
    std_parts = _std_parts(diag_stds)
    if refines_all:
        top = None
        top_means = means[None]
        top_parts = tuple(part[None] for part in std_parts)
        anchor_slot = anchor[:, None]
    else:
        top = _largest_components(a, _REFINED_COMPONENTS)
        top_means = means[top]
        top_parts = tuple(part[top] for part in std_parts)
        anchor_slot = jnp.zeros_like(anchor)[:, None]
        anchor = top[:, 0]
    distance, distance_error = _compensated_squared_distances(x[:, None, :], top_means, top_parts)
    norm, norm_error = _compensated_log_norms(diag_stds, logits)
    if top is None:
        norm, norm_error = norm[None, :], norm_error[None, :]
    else:
        norm, norm_error = norm[top], norm_error[top]

    def at_anchor(values):
        values = jnp.broadcast_to(values, distance.shape)
        return jnp.take_along_axis(values, anchor_slot, axis=-1)

    distance_diff, distance_diff_error = _two_sum(distance, -at_anchor(distance))
    norm_diff, norm_diff_error = _two_sum(norm, -at_anchor(norm))
    low = (norm_diff_error + (norm_error - at_anchor(norm_error))) - 0.5 * (
        distance_diff_error + (distance_error - at_anchor(distance_error))
    )
    delta = (norm_diff - 0.5 * distance_diff) + low
    # Components of weight zero (logit -inf) give NaN differences and keep weight 0.
    delta = jnp.where(jnp.isnan(delta), -jnp.inf, delta)
    # The anchor may lie up to 2**b - 1 units in the last place of ``a`` below
    # the largest log joint, which at log joints of 1e9 is thousands. Shifting
    # by the largest difference keeps every exp at most 1.
    shift = _row_max(delta)
    refined = jnp.exp(delta - shift[:, None])
    if top is None:
        return refined
    plain = a - jnp.take_along_axis(a, anchor[:, None], axis=-1) - shift[:, None]
    weights = jnp.exp(jnp.minimum(plain, 0.0))
    rows = jnp.arange(a.shape[0])[:, None]
    return weights.at[rows, top].set(refined)


def _first_true(flags, size):
    """Return the indices of the first ``size`` true entries of ``flags``, padded with ``len(flags)``.

    The indices equal those of
    ``jnp.nonzero(flags, size=size, fill_value=len(flags))``. Each true
    entry's slot comes from running counts, taken within blocks of 128
    entries by a product with a triangular matrix of ones (exact, as each
    count is at most 127) and then across blocks. On a 2-core CPU, for 1e5 entries,
    it measured 1.7x faster than ``jnp.nonzero`` and compiled in 0.12 s
    instead of 0.18 s.
    """
    n = flags.shape[0]
    block = max(1, min(n, 128))
    blocks = jnp.pad(flags.astype(jnp.float32), (0, -n % block)).reshape(-1, block)
    earlier = jnp.triu(jnp.ones((block, block), jnp.float32), k=1)
    within = jnp.dot(blocks, earlier, precision=_HIGHEST).astype(jnp.int32)
    totals = within[:, -1] + blocks[:, -1].astype(jnp.int32)
    offsets = jnp.cumsum(totals, dtype=jnp.int32) - totals
    slots = jnp.where(flags, (within + offsets[:, None]).reshape(-1)[:n], size)
    # Rows that are not flagged all target the out-of-range slot ``size``, so
    # the indices are not unique and the scatter drops those writes.
    return jnp.full((size,), n, jnp.int32).at[slots].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def _group_rows(n_rows: int, exact_rows: int) -> int:
    """Return the rows recomputed per group by :func:`_repair_rows` for a batch of ``n_rows``.

    An eighth of the exact method's chunk keeps the work spent on unused
    slots small and the group in cache, and at least 1/256 of the batch
    bounds the number of rounds. On a 2-core CPU, groups of a quarter of the
    chunk or of 1/64 of the batch measured up to 15% slower.
    """
    return max(1, min(n_rows, max(exact_rows // 8, -(-n_rows // 256))))


def _repair_rows(result, row_ok, x, exact, group_rows=None):
    """Replace the rows of ``result`` not marked ``row_ok`` by ``exact`` of those rows.

    The failed rows are listed once, then gathered and recomputed in groups
    of ``group_rows`` rows (by default 1/16 of the batch), so a single
    compiled ``exact`` serves any number of failed rows. Rounds past the last
    failed row skip their group, except under ``vmap``, which turns the
    branches into selects that evaluate every round.
    """
    n_rows = x.shape[0]
    if n_rows == 0:
        return result
    group = min(n_rows, group_rows or max(1, n_rows // 16))
    todo = ~row_ok
    # Unused slots contain the out-of-range index n_rows. Their rows are read
    # as zeros and their results are dropped.
    failed = _first_true(todo, n_rows)
    n_failed = jnp.sum(todo, dtype=jnp.int32)

    def fix(i, fixed_result):
        # The last group ends at the end of the list and may overlap the one
        # before it, whose rows then get the same result twice.
        rows = jax.lax.dynamic_slice_in_dim(failed, i * group, group)
        fixed = exact(x.at[rows].get(mode="fill", fill_value=0))
        return jax.tree.map(
            lambda full, part: full.at[rows].set(part, mode="drop"), fixed_result, fixed
        )

    def one_round(i, state):
        return jax.lax.cond(i * group < n_failed, fix, lambda _, unchanged: unchanged, i, state)

    # A loop with a fixed number of rounds, unlike a while loop, can be
    # differentiated in reverse mode.
    return jax.lax.fori_loop(0, -(-n_rows // group), one_round, result)


# ------------------------------------------------------------- matmul method


def _accuracy_target(dtype) -> tuple[float, float]:
    """Return the (relative, absolute) accuracy that a fast path must keep in ``dtype``.

    In float32 this is 1e-5 relative or 1e-4 absolute. Other dtypes scale it
    by their machine epsilon, so float64 keeps about 2e-14 relative: the
    matrix products then serve float64 only where their error is as small as
    the direct method's.
    """
    scale = float(jnp.finfo(dtype).eps) / float(jnp.finfo(jnp.float32).eps)
    return 1e-5 * scale, 1e-4 * scale


def _summation_error_factor(n_terms: int, dtype) -> float:
    """Return gamma_n = n u / (1 - n u): a float sum of n products has relative error <= gamma_n."""
    unit_roundoff = float(jnp.finfo(dtype).eps) / 2.0
    n_u = n_terms * unit_roundoff
    return n_u / (1.0 - n_u)


def _matmul_chunk(means, diag_stds, logits, x, need_pull, need_responsibilities):
    r"""Evaluate one chunk with matrix products; also return whether the error bound holds.

    The squared distance is expanded around the centre ``c`` of the means,
    :math:`q_{nk} = \sum_d x'^2_{nd} v_{kd} - 2 \sum_d x'_{nd} m'_{kd} v_{kd} + \sum_d m'^2_{kd} v_{kd}`
    with :math:`x' = x - c`, :math:`m' = \mu - c`, :math:`v = 1/\sigma^2`, so
    two matrix products give all ``(n, k)`` distances. Each row is then
    anchored at its most likely component ``k*``: the log joint of ``k*`` is
    recomputed exactly from ``(x - mean) / std``, and the matrix products
    enter only through the differences to it, weighted by the other
    components' share ``rho = 1 - r_{k*}``.

    Error bound (rounding to nearest, unit roundoff ``u``,
    :math:`\gamma_n = nu/(1-nu)`): every term of ``q`` is at most
    :math:`2(A_n + C)` in magnitude, with :math:`A_n = \sum_d x'^2_{nd}\max_k v_{kd}`
    and :math:`C = \max_k \sum_d m'^2_{kd} v_{kd}`, so each log joint is off
    by at most :math:`E_n = \gamma_{d+3}(A_n + C)`. Then

    * ``log_prob`` is off by at most ``rho_n expm1(2 E_n)`` from this source,
    * the score by at most
      :math:`\rho_n P_n (\gamma_{k+2} + 2\,\mathrm{expm1}(4 E_n))`, with
      :math:`P_n = (\|x'_n\|_\infty + \max|m'|) \max v`,

    where ``rho_n`` is bounded above by the computed share times
    ``exp(2 E_n)``. The bound holds for a row when ``E_n <= 10``, the
    ``log_prob`` bound is at most a quarter of ``max(1e-4, 1e-5 |log_prob|)``
    and, where the score is requested, the score bound is at most a quarter
    of ``max(1e-4, 1e-5 max_d |score_d|)`` (in float32; other dtypes scale
    these by their epsilon). Well separated components make ``rho`` vanish,
    so such rows pass whenever ``E_n <= 10``. ``E_n`` grows with the squared
    distance from the centre of the means in units of the stds. Mixtures
    whose means lie far apart against their stds therefore fail it and fall
    back to the direct method. So does a row shared between components whose
    coordinates are large against their stds.

    The anchor comes from :func:`_top_components`, so any component whose
    approximate log joint is within ``2**b - 1`` units in the last place of
    the maximum may be the anchor, ``b`` the bit length of ``k - 1``. The
    bound holds for any anchor.
    """
    n_components, dim = means.shape
    dtype = x.dtype
    inv_stds = 1.0 / diag_stds
    inv_vars = inv_stds * inv_stds
    log_norm = _log_normalizers(means, diag_stds, logits)

    center = jnp.mean(means, axis=0)
    centered_means = means - center[None, :]
    centered_x = x - center[None, :]
    scaled_means = centered_means * inv_vars
    offsets = jnp.sum(centered_means * scaled_means, axis=-1)
    # One product gives the squares and, in its last column, A_n of the bound.
    max_inv_vars = jnp.max(inv_vars, axis=0)
    squares = jnp.dot(
        centered_x * centered_x,
        jnp.concatenate([inv_vars.T, max_inv_vars[:, None]], axis=1),
        precision=_HIGHEST,
    )
    cross = jnp.dot(centered_x, scaled_means.T, precision=_HIGHEST)
    approx = log_norm[None, :] - 0.5 * (squares[:, :n_components] - 2.0 * cross + offsets[None, :])

    _, anchor = _top_components(approx)
    is_anchor = jnp.arange(n_components, dtype=anchor.dtype)[None, :] == anchor[:, None]
    anchor_means, anchor_inv_stds = _anchor_parameters(means, inv_stds, anchor)
    z = (x - anchor_means) * anchor_inv_stds
    anchor_joint = log_norm[anchor] - 0.5 * _row_sums(z * z)
    relative = approx - jnp.take_along_axis(approx, anchor[:, None], axis=-1)
    # The anchor's log joint may lie 2**b - 1 units in the last place below the
    # largest one, thousands at log joints of 1e9, where exp would overflow.
    # Such rows fail the error bound, and the cap keeps the unchecked "matmul" finite.
    relative = jnp.minimum(relative, _MAX_RELATIVE_JOINT)
    unnormalized = jnp.where(is_anchor, 0.0, jnp.exp(relative))
    others = _row_sums(unnormalized)
    log_probs = anchor_joint + jnp.log1p(others)

    # Error bound of the matrix-product terms, one value per row.
    joint_error = _summation_error_factor(dim + 3, dtype) * (
        squares[:, n_components] + jnp.max(offsets)
    )
    bounded_error = jnp.minimum(joint_error, _MAX_JOINT_ERROR)
    share = others / (1.0 + others) * jnp.exp(2.0 * bounded_error)
    log_prob_bound = share * jnp.expm1(2.0 * bounded_error)
    relative, absolute = _accuracy_target(dtype)
    tolerance = _BOUND_SHARE * jnp.maximum(absolute, relative * jnp.abs(log_probs))
    # NaN bounds (from overflowing products) compare False and fail.
    row_ok = (joint_error <= _MAX_JOINT_ERROR) & (log_prob_bound <= tolerance)

    if not (need_pull or need_responsibilities):
        return (log_probs, None, None, None), row_ok
    inv_total = 1.0 / (1.0 + others)
    r_others = unnormalized * inv_total[:, None]
    r_anchor = inv_total
    pull = None
    if need_pull:
        anchor_pull = (anchor_means - x) * (anchor_inv_stds * anchor_inv_stds)
        other_pull = jnp.dot(r_others, scaled_means, precision=_HIGHEST) - centered_x * jnp.dot(
            r_others, inv_vars, precision=_HIGHEST
        )
        pull = r_anchor[:, None] * anchor_pull + other_pull
        # The pull uses only 1 / std**2, which is positive for a negative std
        # too, so it takes the NaN of log_prob, as the direct method does.
        pull = jnp.where(jnp.isnan(log_probs)[:, None], jnp.nan, pull)
        reach = (
            jnp.max(jnp.abs(centered_x), axis=-1) + jnp.max(jnp.abs(centered_means))
        ) * jnp.max(inv_vars)
        score_bound = share * reach * (
            _summation_error_factor(n_components + 2, dtype) + 2.0 * jnp.expm1(4.0 * bounded_error)
        )
        score_tolerance = _BOUND_SHARE * jnp.maximum(
            absolute, relative * jnp.max(jnp.abs(pull), axis=-1)
        )
        row_ok = row_ok & (score_bound <= score_tolerance)
    r = None
    if need_responsibilities:
        r = jnp.where(is_anchor, r_anchor[:, None], r_others)
    return (log_probs, pull, r, others * inv_total), row_ok


def _evaluate(method, means, diag_stds, logits, x, need_pull, need_responsibilities):
    """Return ``(log_probs, pull or None, responsibilities or None)`` of the rows ``x`` by ``method``.

    For ``d > 16``, ``"auto"`` takes the matrix products (for the score and
    responsibilities only with more than 16 components) and recomputes with
    ``"direct"`` every row whose error bound does not hold. Then the rows
    flagged by :func:`_imprecise_weights` get refined weights. Both repairs
    gather their rows from all of ``x``, so their cost follows the number
    of such rows rather than the number of chunks.
    """
    n_components, dim = means.shape
    need_weights = need_pull or need_responsibilities
    direct_rows = _direct_rows(n_components, dim)

    def with_flag(points, result):
        # The direct method adds the error bound of its expanded pull, the
        # matrix products do not.
        log_probs, pull, r, share = result[:4]
        if not need_weights:
            return log_probs, None, None, None
        pull_error = result[4] if len(result) > 4 else None
        flag = _imprecise_weights(
            means, diag_stds, logits, points, log_probs, share, pull, pull_error
        )
        return log_probs, pull, r, flag

    def direct(points):
        result = _direct_chunk(means, diag_stds, logits, points, need_pull, need_responsibilities)
        return with_flag(points, result)

    if not _uses_matmul(method, n_components, dim, need_weights):
        result = _map_rows(direct, (x,), direct_rows)
    else:

        def fast(points):
            result, row_ok = _matmul_chunk(
                means, diag_stds, logits, points, need_pull, need_responsibilities
            )
            return with_flag(points, result), row_ok

        result, row_ok = _map_rows(fast, (x,), chunk_rows(n_components, dim, method))
        if method != "matmul":
            result = _repair_rows(
                result,
                row_ok,
                x,
                lambda points: _map_rows(direct, (points,), direct_rows),
                _group_rows(x.shape[0], direct_rows),
            )
    log_probs, pull, r, imprecise = result
    if need_weights:
        pull, r = _refine_rows(means, diag_stds, logits, x, pull, r, imprecise)
    return log_probs, pull, r


# ---------------------------------------------------------- parameter terms


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
    return jnp.einsum("nk,nkd,kd->n", r, coefficients, dmeans, precision=_HIGHEST)


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
        "nkd,kd->n", weighted * inv_stds[None], dstds, precision=_HIGHEST
    )


def _parameter_tangent(r, x, means, inv_stds, dmeans, dstds):
    """Return the mean and std terms of the tangent, in chunks that bound the (rows, k, d) arrays."""

    def chunk(r_chunk, x_chunk):
        total = jnp.zeros(x_chunk.shape[:1], x_chunk.dtype)
        if dmeans is not None:
            total = total + _mean_tangent(r_chunk, x_chunk, means, inv_stds, dmeans)
        if dstds is not None:
            total = total + _std_tangent(r_chunk, x_chunk, means, inv_stds, dstds)
        return total

    return _map_rows(chunk, (r, x), _direct_rows(means.shape[0], means.shape[1]))


# ------------------------------------------------------ custom JVP per chunk


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _log_prob_rows(method, means, diag_stds, logits, x):
    """Return the log-density of each row of ``x`` of shape (n, d), chunk by chunk."""
    return _evaluate(method, means, diag_stds, logits, x, False, False)[0]


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


@functools.partial(_log_prob_rows.defjvp, symbolic_zeros=True)
def _log_prob_rows_jvp(method, primals, tangents):
    """Return the log-densities and their tangent.

    The rule covers the whole batch, so a gradient with respect to ``x``
    keeps the pull of the chunked evaluation as its only residual and
    multiplies it by the cotangent outside the chunk loop.
    """
    means, diag_stds, logits, x = primals
    dmeans, dstds, dlogits, dx = tangents
    need_pull = not _is_zero(dx)
    need_responsibilities = not (_is_zero(dmeans) and _is_zero(dstds) and _is_zero(dlogits))

    if not need_responsibilities:
        log_probs, pull, _ = _evaluate(method, means, diag_stds, logits, x, need_pull, False)
        tangent = jnp.zeros_like(log_probs)
        if need_pull:
            tangent = tangent + jnp.sum(pull * dx, axis=-1)
        return log_probs, tangent

    # The responsibilities are (n, k), so they are reduced to the parameter
    # tangent chunk by chunk rather than kept for the whole batch.
    def chunk(points):
        log_probs, pull, r = _evaluate(
            method, means, diag_stds, logits, points, need_pull, need_responsibilities
        )
        parameter_tangent = jnp.zeros_like(log_probs)
        if not _is_zero(dlogits):
            # d log w_k = dlogits_k - sum_j w_j dlogits_j, and the responsibilities sum to one.
            weights = jax.nn.softmax(logits)
            parameter_tangent = jnp.sum(r * dlogits[None, :], axis=-1) - jnp.sum(weights * dlogits)
        if not (_is_zero(dmeans) and _is_zero(dstds)):
            parameter_tangent = parameter_tangent + _parameter_tangent(
                r,
                points,
                means,
                1.0 / diag_stds,
                None if _is_zero(dmeans) else dmeans,
                None if _is_zero(dstds) else dstds,
            )
        return log_probs, pull, parameter_tangent

    log_probs, pull, parameter_tangent = _map_rows(
        chunk, (x,), chunk_rows(*means.shape, method)
    )
    tangent = parameter_tangent
    if need_pull:
        tangent = tangent + jnp.sum(pull * dx, axis=-1)
    return log_probs, tangent


# ------------------------------------------------------------ public functions


def _flatten_points(means, diag_stds, logits, x):
    dtype = _common_dtype(means, diag_stds, logits, x)
    params = tuple(jnp.asarray(a, dtype) for a in (means, diag_stds, logits))
    batch_shape = x.shape[:-1]
    rows = jnp.asarray(x, dtype).reshape((-1, x.shape[-1]))
    return params, rows, batch_shape


def log_prob(
    means: jax.Array, diag_stds: jax.Array, logits: jax.Array, x: jax.Array, *, method: str = "auto"
) -> jax.Array:
    """Return the mixture log-density at ``x`` of shape ``(..., d)``, of shape ``(...)``.

    The computation runs in the wider of the parameters' and the points'
    float dtypes, in chunks of :func:`chunk_rows` rows.

    Args:
        means: component means of shape ``(k, d)``.
        diag_stds: standard deviations of shape ``(k, d)``.
        logits: unnormalized log-weights of shape ``(k,)``.
        x: points of shape ``(..., d)``.
        method: ``"direct"`` evaluates every ``(x - mean) / std``;
            ``"matmul"`` expands the squared distances into matrix products
            (``precision=HIGHEST``); ``"auto"`` (the default) uses ``"direct"``
            for ``d <= 16`` and otherwise the matrix products wherever their
            error bound holds, row by row, falling back to ``"direct"``. With
            ``k <= 16`` components, ``"auto"`` takes the score and the
            responsibilities from ``"direct"``.

    >>> import jax.numpy as jnp
    >>> means = jnp.array([[0.0], [2.0]])
    >>> stds = jnp.ones((2, 1))
    >>> float(log_prob(means, stds, jnp.zeros(2), jnp.array([1.0])))
    -1.4189...
    """
    check_method(method)
    params, rows, batch_shape = _flatten_points(means, diag_stds, logits, x)
    return _log_prob_rows(method, *params, rows).reshape(batch_shape)


def log_prob_and_score(
    means: jax.Array, diag_stds: jax.Array, logits: jax.Array, x: jax.Array, *, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Return the log-density and its gradient with respect to ``x`` in one pass.

    Both come from the same chunked evaluation that the custom JVP of
    :func:`log_prob` uses. The score equals :func:`score`. For ``d <= 16``
    the log-density equals :func:`log_prob` up to one unit in the last
    place, because XLA fuses the combined computation differently. Above
    that, ``"auto"`` may take :func:`log_prob` alone from the matrix
    products and the combined call from the direct method, so the two agree
    to the accuracy bound (a quarter of 1e-5 relative or 1e-4 absolute), not
    bit for bit. ``method`` is as in :func:`log_prob`.

    >>> import jax.numpy as jnp
    >>> value, grad = log_prob_and_score(jnp.zeros((1, 2)), jnp.ones((1, 2)), jnp.zeros(1),
    ...                                  jnp.array([1.0, -2.0]))
    >>> grad
    Array([-1.,  2.], dtype=float32)
    """
    check_method(method)
    params, rows, batch_shape = _flatten_points(means, diag_stds, logits, x)
    values, scores, _ = _evaluate(method, *params, rows, True, False)
    return values.reshape(batch_shape), scores.reshape(x.shape)


def score(
    means: jax.Array, diag_stds: jax.Array, logits: jax.Array, x: jax.Array, *, method: str = "auto"
) -> jax.Array:
    """Return the score, the gradient of the log-density with respect to ``x``.

    It equals ``jax.grad`` of :func:`log_prob` and has the shape of ``x``.
    ``method`` is as in :func:`log_prob`.

    >>> import jax.numpy as jnp
    >>> score(jnp.zeros((1, 1)), jnp.full((1, 1), 2.0), jnp.zeros(1), jnp.array([[4.0]]))
    Array([[-1.]], dtype=float32)
    """
    return log_prob_and_score(means, diag_stds, logits, x, method=method)[1]


def responsibilities(
    means: jax.Array, diag_stds: jax.Array, logits: jax.Array, x: jax.Array
) -> jax.Array:
    """Return the component probabilities ``p(k | x)`` of shape ``(..., k)``.

    Computed directly from ``(x - mean) / std`` in chunks of rows. Rows where
    rounding of the log joints would move them by more than the accuracy
    target get their weights in extended precision. Where every component
    density underflows, the nearest component of positive weight in
    standardized distance gets probability one.

    >>> import jax.numpy as jnp
    >>> r = responsibilities(jnp.array([[-1.0], [1.0]]), jnp.ones((2, 1)), jnp.zeros(2),
    ...                      jnp.array([[0.0], [1.0]]))
    >>> [[round(float(value), 4) for value in row] for row in r]
    [[0.5, 0.5], [0.1192, 0.8808]]
    """
    params, rows, batch_shape = _flatten_points(means, diag_stds, logits, x)
    values = _evaluate("direct", *params, rows, False, True)[2]
    return values.reshape((*batch_shape, means.shape[0]))


def sample_at(
    means: jax.Array, diag_stds: jax.Array, logits: jax.Array, key: jax.Array
) -> jax.Array:
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


def sample_indices(
    means: jax.Array,
    diag_stds: jax.Array,
    logits: jax.Array,
    stream_key: jax.Array,
    indices: jax.Array,
) -> jax.Array:
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
