"""Time boltzkit's Gaussian mixture against TFP-JAX, distrax and NumPyro, side by side.

Every library evaluates the same mixture on the same float32 points inside
``jax.jit``. After one warm-up call of each, the libraries are timed in turn,
round after round, and each timing is the median of its rounds, so that a
change in the load of a shared machine affects every library alike. Within a
round, each timed call directly follows an untimed call of the same function. The
script prints a table of points per second, the ratio of boltzkit to each
peer and the worst error of each library against a float64 NumPy reference,
and writes the results, with the time to trace and compile each function and
the JAX version, backend and device, to a JSON file. ``log_prob_and_score``
is also timed against boltzkit's ``log_prob`` and against writing a new array
of the points' shape, the least that any score costs on top of ``log_prob``.

Usage::

    python benchmarks/bench_gaussian_mixture.py            # full run
    python benchmarks/bench_gaussian_mixture.py --quick    # under 2 minutes on 2 cores
    python benchmarks/bench_gaussian_mixture.py --gpu      # also report the H200 roofline

A peer that is not installed, or fails on an operation, is reported as
missing instead of stopping the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers
import reference
import roofline

from boltzkit import datasets
from boltzkit.targets import DiagonalGaussianMixture

LIBRARIES = ("boltzkit", "tfp", "distrax", "numpyro")


@dataclasses.dataclass(frozen=True)
class Config:
    """One mixture shape and batch size to time."""

    name: str
    n_components: int
    dim: int
    n_points: int
    n_points_quick: int
    operations: tuple[str, ...]


CONFIGS = (
    Config("gmm40", 40, 2, 1_000_000, 100_000,
           ("log_prob", "score", "log_prob_and_score", "sample", "dataset")),
    Config("k10_d100", 10, 100, 100_000, 10_000, ("log_prob", "score", "log_prob_and_score")),
    Config("k128_d512", 128, 512, 8192, 512, ("log_prob", "score", "log_prob_and_score")),
)


def make_target(config: Config) -> DiagonalGaussianMixture:
    """Build the mixture of a configuration, with float32 parameters."""
    if config.name == "gmm40":
        return DiagonalGaussianMixture.create_gmm40()
    rng = np.random.default_rng(1)
    means = rng.normal(size=(config.n_components, config.dim))
    stds = rng.uniform(0.5, 1.5, size=(config.n_components, config.dim))
    logits = rng.normal(size=config.n_components)
    return DiagonalGaussianMixture(means.astype(np.float32), stds.astype(np.float32),
                                   logits.astype(np.float32))


def make_points(target: DiagonalGaussianMixture, n_points: int) -> jax.Array:
    """Return half exact samples and half uniform points over the box of the means, padded by 25%."""
    samples = np.asarray(target.sample(n_points - n_points // 2, seed=123))
    means = np.asarray(target.means, np.float64)
    low, high = means.min(axis=0), means.max(axis=0)
    pad = 0.25 * (high - low) + 3.0 * np.asarray(target.diag_stds).max()
    uniform = np.random.default_rng(7).uniform(low - pad, high + pad, size=(n_points // 2, target.dim))
    points = np.concatenate([samples, uniform.astype(np.float32)])
    return jnp.asarray(points, jnp.float32)


def first_call(fn: Callable, args: tuple) -> tuple[float, float, object]:
    """Return the first call's seconds (compilation included), the compile seconds and the output.

    The second figure traces, lowers and compiles the function again, without running it.
    """
    start = time.perf_counter()
    output = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    # A new outer function misses the compilation cache that the first call filled.
    start = time.perf_counter()
    jax.jit(lambda *inputs: fn(*inputs)).lower(*args).compile()
    return first, time.perf_counter() - start, output


def interleaved_medians(functions: dict[str, Callable], args: tuple, repeats: int) -> dict[str, float]:
    """Return the median seconds per call of each function, timed in turn within each round.

    Timing the libraries round by round, rather than one after the other,
    exposes them all to the same drift in the load of a shared machine. In
    each round, every timed call follows an untimed call of the same
    function, as in a training loop, so that it does not pay for the memory
    that another library's call released.
    """
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            jax.block_until_ready(fn(*args))
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def boltzkit_functions(target: DiagonalGaussianMixture) -> dict[str, Callable]:
    """Return the jitted boltzkit functions, each taking (points, key)."""

    def sample(x, key):
        return target.sample_at(key, jnp.arange(x.shape[0], dtype=jnp.uint32))

    def dataset(x, key):
        # The block function that load_dataset and `boltzkit dataset` run.
        return datasets._generate_block(
            target, key, jnp.uint32(0), size=x.shape[0], include_samples=True,
            include_log_probs=True, include_scores=True,
        )

    return {
        "log_prob": jax.jit(lambda x, key: target.log_prob(x)),
        "score": jax.jit(lambda x, key: jax.grad(lambda y: jnp.sum(target.log_prob(y)))(x)),
        "log_prob_and_score": jax.jit(lambda x, key: target.log_prob_and_score(x)),
        "sample": jax.jit(sample),
        "dataset": jax.jit(dataset),
    }


@jax.jit
def _write_like_points(points, key):
    """Return ``points * 2``, a new array from one pass that reads the points and writes the result.

    ``key`` is unused. It is there because every timed function takes ``(points, key)``.
    """
    return points * 2.0


def checked_rows(n_points: int, n_check: int) -> np.ndarray:
    """Return up to ``n_check`` row indices spread evenly over the batch.

    The batch contains exact samples in its first half and box points in its
    second, so the check covers both.
    """
    return np.unique(np.linspace(0, n_points - 1, min(n_points, n_check)).round().astype(np.int64))


def evaluate_errors(operation: str, output, rows: np.ndarray, expected: Callable) -> float | None:
    """Return the worst normalized error against float64 on ``rows``, or None when it does not apply.

    ``expected(name)`` returns the float64 reference ``"log_prob"`` or
    ``"score"`` on those rows. The normalized error of a log_prob value is
    ``|error| / max(1e-4, 1e-5 |reference|)`` and that of a score is
    ``max_d |error_d| / max(1e-4, 1e-5 max_d |reference_d|)``, so a value of
    at most 1 meets the accuracy goal (1e-5 relative or 1e-4 absolute).
    """
    if operation == "log_prob":
        values = np.asarray(output)[rows].astype(np.float64)
        return reference.normalized_log_prob_error(values, expected("log_prob"))
    if operation == "score":
        values = np.asarray(output)[rows].astype(np.float64)
        return reference.normalized_score_error(values, expected("score"))
    if operation == "log_prob_and_score":
        value_error = evaluate_errors("log_prob", output[0], rows, expected)
        score_error = evaluate_errors("score", output[1], rows, expected)
        return max(value_error, score_error)
    return None


def run(args: argparse.Namespace) -> dict:
    repeats = 3 if args.quick else 7
    n_check = 2048 if args.quick else 16384
    selected = [c for c in CONFIGS if args.configs is None or c.name in args.configs]
    results = []
    key = jax.random.key(0)
    for config in selected:
        target = make_target(config)
        n_points = config.n_points_quick if args.quick else config.n_points
        points = make_points(target, n_points)
        check_rows = checked_rows(n_points, n_check)
        checked_points = np.asarray(points, np.float64)[check_rows]
        params = [np.asarray(leaf, np.float64) for leaf in (target.means, target.diag_stds, target.logits)]
        expected = functools.cache(
            lambda name, params=params, checked_points=checked_points:
            getattr(reference, name)(*params, checked_points)
        )
        libraries = {"boltzkit": boltzkit_functions(target)}
        for name in args.peers:
            libraries[name] = peers.functions(name, target)
        for operation in config.operations:
            rows, outputs, ready = {}, {}, {}
            for library, functions in libraries.items():
                row = {"config": config.name, "n_components": config.n_components, "dim": config.dim,
                       "n_points": n_points, "operation": operation, "library": library}
                rows[library] = row
                fn = functions.get(operation) if functions is not None else None
                if fn is None:
                    row["error"] = "not available"
                    continue
                try:
                    first, compile_s, outputs[library] = first_call(fn, (points, key))
                except Exception as error:  # a peer failing on one operation must not stop the run
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                    continue
                row.update(first_call_s=first, compile_s=compile_s)
                ready[library] = fn
            medians = interleaved_medians(ready, (points, key), repeats)
            for library, median in medians.items():
                row = rows[library]
                row.update(median_s=median, points_per_s=n_points / median,
                           max_normalized_error=evaluate_errors(operation, outputs[library], check_rows,
                                                                expected))
                print(f"  {config.name:10s} {operation:18s} {library:9s} "
                      f"{n_points / median / 1e6:9.3f} M/s  first call {row['first_call_s']:7.3f} s"
                      f"  compile {row['compile_s']:6.3f} s", flush=True)
            if operation == "log_prob_and_score" and "boltzkit" in ready:
                # Timed with log_prob in the same rounds, so a change in load affects both alike.
                # Every score writes a new array of the points' shape, so that write
                # is the least it can add to the cost of log_prob.
                pair = {"log_prob_and_score": ready["boltzkit"],
                        "log_prob": libraries["boltzkit"]["log_prob"],
                        "write_score_shape": _write_like_points}
                pair_medians = interleaved_medians(pair, (points, key), repeats)
                rows["boltzkit"]["cost_vs_log_prob"] = (
                    pair_medians["log_prob_and_score"] / pair_medians["log_prob"])
                rows["boltzkit"]["write_vs_log_prob"] = (
                    pair_medians["write_score_shape"] / pair_medians["log_prob"])
            results.extend(rows.values())
    return {"environment": environment(), "quick": args.quick, "repeats": repeats,
            "n_points_checked": n_check, "results": results}


def environment() -> dict:
    device = jax.devices()[0]
    versions = {"jax": jax.__version__, "jaxlib": getattr(jax.lib, "__version__", None),
                "numpy": np.__version__, "python": platform.python_version()}
    versions.update(peers.versions())
    return {
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
    }


def format_table(report: dict) -> str:
    """Return a Markdown table: points per second of each library and boltzkit's ratio to each peer."""
    rows = report["results"]
    keys = []
    for row in rows:
        key = (row["config"], row["operation"])
        if key not in keys:
            keys.append(key)
    peer_names = [name for name in LIBRARIES[1:] if any(r["library"] == name for r in rows)]
    header = ["config", "operation", "boltzkit M/s", *[f"{p} M/s" for p in peer_names],
              *[f"x {p}" for p in peer_names], "boltzkit err", *[f"{p} err" for p in peer_names]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    by_key = {(r["config"], r["operation"], r["library"]): r for r in rows}
    for config, operation in keys:
        own = by_key.get((config, operation, "boltzkit"), {})
        speeds = [_speed(by_key.get((config, operation, p), {})) for p in peer_names]
        ratios = []
        for p in peer_names:
            peer = by_key.get((config, operation, p), {})
            if "points_per_s" in own and "points_per_s" in peer:
                ratios.append(f"{own['points_per_s'] / peer['points_per_s']:.1f}")
            else:
                ratios.append("-")
        errors = [_error(by_key.get((config, operation, name), {})) for name in ("boltzkit", *peer_names)]
        lines.append("| " + " | ".join([config, operation, _speed(own), *speeds, *ratios, *errors]) + " |")
    return "\n".join(lines)


def _speed(row: dict) -> str:
    return f"{row['points_per_s'] / 1e6:.3g}" if "points_per_s" in row else "-"


def _error(row: dict) -> str:
    value = row.get("max_normalized_error")
    return "-" if value is None else f"{value:.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches and fewer repeats")
    parser.add_argument("--gpu", action="store_true",
                        help="also report the fraction of the H200 roofline (needs a GPU backend)")
    parser.add_argument("--configs", nargs="+", choices=[c.name for c in CONFIGS], default=None,
                        help="configurations to run (default: all)")
    parser.add_argument("--peers", nargs="*", choices=LIBRARIES[1:], default=list(LIBRARIES[1:]),
                        help="peer libraries to time (default: all)")
    parser.add_argument("--json", default="benchmarks/results.json", help="output JSON path")
    args = parser.parse_args(argv)

    if args.gpu and jax.default_backend() != "gpu":
        print(f"--gpu needs a GPU backend, but JAX runs on {jax.default_backend()}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    report = run(args)
    if args.gpu:
        report["roofline"] = roofline.report(report["results"])
    report["wall_s"] = time.perf_counter() - start

    env = report["environment"]
    print()
    print(f"jax {env['versions']['jax']} on {env['backend']} ({env['device_kind']}, "
          f"{env['cpu_count']} CPUs), float32, median of {report['repeats']} interleaved rounds")
    print(format_table(report))
    print("\nlog_prob: first call (compile + run) and trace + compile alone, seconds:")
    for row in report["results"]:
        if row["operation"] == "log_prob" and "first_call_s" in row:
            print(f"  {row['config']:10s} {row['library']:9s} {row['first_call_s']:7.3f} "
                  f"{row['compile_s']:7.3f}")
    print("\nover log_prob, timed in the same rounds: log_prob_and_score, and writing a new "
          "array of the score's shape (points * 2):")
    for row in report["results"]:
        if "cost_vs_log_prob" in row:
            print(f"  {row['config']:10s} {row['cost_vs_log_prob']:.2f}  {row['write_vs_log_prob']:.2f}")
    if args.gpu:
        print()
        print(roofline.format_report(report["roofline"]))
    print(f"\ntotal {report['wall_s']:.1f} s")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=1, default=_json_default)
    print(f"wrote {args.json}")
    return 0


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    sys.exit(main())
