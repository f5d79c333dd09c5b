r"""Optimal transport between two sample sets: an exact assignment and a Sinkhorn divergence.

The squared Wasserstein-2 distance between two empirical measures of ``n``
points each with equal weights is

$$
W_2^2 = \min_{\sigma} \frac{1}{n} \sum_i \lVert x_i - y_{\sigma(i)} \rVert^2,
$$

a minimum over permutations, because the extreme points of the transport
polytope between two uniform measures of equal size are permutation
matrices. `assignment` finds the optimal permutation with the
shortest augmenting path method of Jonker and Volgenant, in the form
described by Crouse (2016), written with ``jax.lax`` loops so that it jits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from boltzkit._validation import wider_float
from boltzkit.evaluation import _checks


def squared_distances(x, y):
    """Return the matrix of squared Euclidean distances, of shape ``(n, m)``, in bounded memory."""

    def block(a, b):
        difference = a[:, None, :] - b[None, :, :]
        return jnp.sum(difference * difference, axis=-1)

    return _checks.map_row_blocks(block, x, y)


def assignment(cost: jax.Array) -> jax.Array:
    r"""Return the column assigned to each row by a minimum-cost perfect matching.

    Solves $\min_\sigma \sum_i C_{i\sigma(i)}$ for a square, finite
    cost matrix. Each of the ``n`` rows is added by one Dijkstra search
    over reduced costs $C_{ij} - u_i - v_j$, which stay non-negative,
    so the result is optimal up to floating-point rounding. The work is
    $O(n^3)$ in the worst case and far less for point clouds; every
    step of a search is one vector operation over ``n`` columns.

    Args:
        cost: a finite array of shape ``(n, n)``.

    Returns:
        The int32 array ``columns`` of shape ``(n,)`` that matches row ``i``
        to column ``columns[i]``.

    Example:
        >>> import jax.numpy as jnp
        >>> assignment(jnp.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])).tolist()
        [1, 0, 2]
    """
    n = cost.shape[0]
    dtype = cost.dtype
    inf = jnp.array(jnp.inf, dtype)
    # A column reduction gives feasible starting duals: C_ij - v_j >= 0.
    v0 = jnp.min(cost, axis=0)
    u0 = jnp.zeros((n,), dtype)
    row_of_col0 = jnp.full((n,), -1, jnp.int32)
    col_of_row0 = jnp.full((n,), -1, jnp.int32)

    def add_row(current_row, state):
        u, v, row_of_col, col_of_row = state

        def search_step(search):
            row, min_value, path_costs, path, scanned_rows, scanned_cols, _ = search
            scanned_rows = scanned_rows.at[row].set(True)
            reduced = min_value + cost[row] - u[row] - v
            better = (~scanned_cols) & (reduced < path_costs)
            path = jnp.where(better, row, path)
            path_costs = jnp.where(better, reduced, path_costs)
            # Among the cheapest unscanned columns, prefer an unassigned one,
            # which ends the search one step earlier.
            candidates = jnp.where(scanned_cols, inf, path_costs)
            lowest = jnp.min(candidates)
            free_at_lowest = (candidates == lowest) & (row_of_col < 0)
            column = jnp.where(
                jnp.any(free_at_lowest), jnp.argmax(free_at_lowest), jnp.argmin(candidates)
            ).astype(jnp.int32)
            scanned_cols = scanned_cols.at[column].set(True)
            sink = jnp.where(row_of_col[column] < 0, column, -1)
            next_row = jnp.where(sink < 0, row_of_col[column], row)
            return next_row, lowest, path_costs, path, scanned_rows, scanned_cols, sink

        search = (
            current_row,
            jnp.zeros((), dtype),
            jnp.full((n,), inf),
            jnp.full((n,), -1, jnp.int32),
            jnp.zeros((n,), bool),
            jnp.zeros((n,), bool),
            jnp.array(-1, jnp.int32),
        )
        search = jax.lax.while_loop(lambda s: s[-1] < 0, search_step, search)
        _, min_value, path_costs, path, scanned_rows, scanned_cols, sink = search

        # Dual update: reduced costs stay non-negative and are zero on the path.
        matched_cost = path_costs[jnp.clip(col_of_row, 0, n - 1)]
        row_shift = jnp.where(scanned_rows & (col_of_row >= 0), min_value - matched_cost, 0.0)
        u = u + row_shift
        u = u.at[current_row].add(min_value)
        v = v - jnp.where(scanned_cols, min_value - path_costs, 0.0)

        def augment_step(carry):
            column, row_of_col, col_of_row, _ = carry
            row = path[column]
            row_of_col = row_of_col.at[column].set(row)
            previous = col_of_row[row]
            col_of_row = col_of_row.at[row].set(column)
            return previous, row_of_col, col_of_row, row

        _, row_of_col, col_of_row, _ = jax.lax.while_loop(
            lambda carry: carry[3] != current_row,
            augment_step,
            (sink, row_of_col, col_of_row, jnp.array(-1, jnp.int32)),
        )
        return u, v, row_of_col, col_of_row

    _, _, _, col_of_row = jax.lax.fori_loop(
        0, n, add_row, (u0, v0, row_of_col0, col_of_row0)
    )
    return col_of_row


def exact_w2_squared(x, y):
    """Return the exact squared W2 between equal-size point sets, by an assignment.

    The result is NaN if any cost is not finite. The assignment then runs on
    zeroed costs, because its searches need finite costs to terminate.
    """
    cost = squared_distances(x, y)
    finite = jnp.isfinite(cost)
    columns = assignment(jnp.where(finite, cost, 0.0))
    matched = y[columns]
    difference = x - matched
    value = jnp.mean(jnp.sum(difference * difference, axis=-1))
    return jnp.where(jnp.all(finite), value, jnp.nan)


def _softmin_rows(epsilon, x, y, log_weights_y, potential_y, rows_per_batch):
    r"""Return $-\varepsilon \log \sum_j b_j \exp((g_j - \lVert x_i - y_j \rVert^2) / \varepsilon)$."""

    def one(point):
        difference = point[None, :] - y
        cost = jnp.sum(difference * difference, axis=-1)
        return -epsilon * jax.nn.logsumexp(log_weights_y + (potential_y - cost) / epsilon)

    return jax.lax.map(one, x, batch_size=rows_per_batch)


def sinkhorn_divergence(x, y, *, epsilon, n_iterations, rows_per_batch=512):
    r"""Return the debiased Sinkhorn divergence with squared Euclidean cost.

    $S_\varepsilon(x, y) = OT_\varepsilon(x, y) - \tfrac12 OT_\varepsilon(x, x)
    - \tfrac12 OT_\varepsilon(y, y)$, where $OT_\varepsilon$ is the
    entropic transport cost between the uniform empirical measures. It is
    computed by log-domain Sinkhorn iterations. Over the first half of them
    the temperature falls geometrically from the mean squared distance to
    ``epsilon`` (epsilon scaling). The cost matrix is never stored, because
    rows are processed ``rows_per_batch`` at a time.
    """
    dtype = wider_float(x.dtype, y.dtype)
    x = x.astype(dtype)
    y = y.astype(dtype)
    epsilon = jnp.asarray(epsilon, dtype)
    n, m = x.shape[0], y.shape[0]
    log_a = jnp.full((n,), -jnp.log(jnp.asarray(n, dtype)))
    log_b = jnp.full((m,), -jnp.log(jnp.asarray(m, dtype)))

    start = jnp.maximum(mean_squared_distance(x, y), epsilon)
    n_annealing = max(1, n_iterations // 2)
    decay = (epsilon / start) ** (1.0 / n_annealing)

    def softmin(eps, points, others, log_weights, potential):
        return _softmin_rows(eps, points, others, log_weights, potential, rows_per_batch)

    def step(t, potentials):
        _, g_xy, f_xx, g_yy = potentials
        eps = jnp.maximum(epsilon, start * decay ** t.astype(dtype))
        # The cross potentials take alternating Sinkhorn updates; the self
        # potentials are averaged with their update, which makes the
        # symmetric iteration converge.
        new_f_xy = softmin(eps, x, y, log_b, g_xy)
        new_g_xy = softmin(eps, y, x, log_a, new_f_xy)
        new_f_xx = 0.5 * (f_xx + softmin(eps, x, x, log_a, f_xx))
        new_g_yy = 0.5 * (g_yy + softmin(eps, y, y, log_b, g_yy))
        return new_f_xy, new_g_xy, new_f_xx, new_g_yy

    zeros = (jnp.zeros((n,), dtype), jnp.zeros((m,), dtype), jnp.zeros((n,), dtype), jnp.zeros((m,), dtype))
    f_xy, g_xy, f_xx, g_yy = jax.lax.fori_loop(0, n_iterations, step, zeros)
    # One last update at the final temperature so that the potentials match it.
    f_xy_final = softmin(epsilon, x, y, log_b, g_xy)
    g_xy_final = softmin(epsilon, y, x, log_a, f_xy)
    f_xx_final = softmin(epsilon, x, x, log_a, f_xx)
    g_yy_final = softmin(epsilon, y, y, log_b, g_yy)
    return (
        jnp.mean(f_xy_final - f_xx_final) + jnp.mean(g_xy_final - g_yy_final)
    )


def mean_squared_distance(x, y):
    r"""Return $\frac{1}{nm}\sum_{ij} \lVert x_i - y_j \rVert^2$ in O((n + m) d) time."""
    mean_x = jnp.mean(x, axis=0)
    mean_y = jnp.mean(y, axis=0)
    shift = mean_x - mean_y
    return (
        jnp.sum(jnp.var(x, axis=0)) + jnp.sum(jnp.var(y, axis=0)) + jnp.sum(shift * shift)
    )
