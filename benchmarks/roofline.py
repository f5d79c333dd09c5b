"""A stated roofline for the NVIDIA H200 SXM, and the fraction of it that a measured rate reaches.

Figures (NVIDIA H200 datasheet, and the CUDA C++ Programming Guide table of
arithmetic instruction throughput for compute capability 9.0):

* HBM3e memory bandwidth: 4.8e12 bytes/s.
* float32 (non-tensor) arithmetic: 67e12 flop/s.
* exp: one special-function (MUFU.EX2) result per exp, 16 per clock per SM,
  132 SMs at a boost clock of 1.98 GHz, so 132 * 16 * 1.98e9 = 4.18e12 exp/s.

Per point of a mixture with K components in D dimensions, in float32:

* exps: K (one per component in the log-sum-exp; the score reuses them).
* bytes: 4 D read, plus 4 written for log_prob, 4 D for score, 4 D + 4 for both.
* flops: 4 K D for the distances and the weighted pull (subtract, scale,
  multiply-add), at least.

The roofline is the smallest of exp rate / K, bandwidth / bytes and
flop rate / flops; each is an upper bound, so a measured rate divided by it
is the fraction reached.
"""

from __future__ import annotations

SMS = 132
BOOST_CLOCK_HZ = 1.98e9
EXP_PER_CLOCK_PER_SM = 16
EXP_PER_S = SMS * EXP_PER_CLOCK_PER_SM * BOOST_CLOCK_HZ
BANDWIDTH_BYTES_PER_S = 4.8e12
FLOP_PER_S = 67e12


def bounds(operation: str, n_components: int, dim: int) -> dict[str, float]:
    """Return the exp, memory and flop bounds on points per second, and the work behind them."""
    written = {"log_prob": 4, "score": 4 * dim, "log_prob_and_score": 4 * dim + 4}[operation]
    bytes_per_point = 4 * dim + written
    flops_per_point = 4 * n_components * dim
    return {
        "exp_per_point": n_components,
        "bytes_per_point": bytes_per_point,
        "flops_per_point": flops_per_point,
        "exp_bound": EXP_PER_S / n_components,
        "memory_bound": BANDWIDTH_BYTES_PER_S / bytes_per_point,
        "flop_bound": FLOP_PER_S / flops_per_point,
    }


def report(results: list[dict]) -> list[dict]:
    """Return the roofline and the fraction reached for each timed boltzkit density row."""
    rows = []
    for row in results:
        if row["library"] != "boltzkit" or "points_per_s" not in row:
            continue
        if row["operation"] not in ("log_prob", "score", "log_prob_and_score"):
            continue
        limits = bounds(row["operation"], row["n_components"], row["dim"])
        roof = min(limits["exp_bound"], limits["memory_bound"], limits["flop_bound"])
        rows.append({"config": row["config"], "operation": row["operation"], **limits,
                     "roofline": roof, "measured": row["points_per_s"],
                     "fraction": row["points_per_s"] / roof})
    return rows


def format_report(rows: list[dict]) -> str:
    """Return the roofline rows as text, with the arithmetic of each bound."""
    lines = [f"H200 roofline: exp {EXP_PER_S:.3g}/s = {SMS} SMs * {EXP_PER_CLOCK_PER_SM}/clock * "
             f"{BOOST_CLOCK_HZ:.3g} Hz; memory {BANDWIDTH_BYTES_PER_S:.3g} B/s; "
             f"float32 {FLOP_PER_S:.3g} flop/s"]
    for row in rows:
        lines.append(
            f"  {row['config']:10s} {row['operation']:18s} "
            f"exp {EXP_PER_S:.3g}/{row['exp_per_point']} = {row['exp_bound']:.3g}, "
            f"memory {BANDWIDTH_BYTES_PER_S:.3g}/{row['bytes_per_point']} = {row['memory_bound']:.3g}, "
            f"flops {FLOP_PER_S:.3g}/{row['flops_per_point']} = {row['flop_bound']:.3g} points/s; "
            f"measured {row['measured']:.3g} = {100 * row['fraction']:.2f}% of {row['roofline']:.3g}")
    return "\n".join(lines)
