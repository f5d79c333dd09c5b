"""Measure the peak resident memory of one log_prob call on 1e7 GMM40 points.

Each measurement runs in a fresh subprocess and reports ``ru_maxrss`` of
that process, so it includes the Python interpreter, JAX and the 1e7 x 2
float32 input (80 MB).

Usage::

    python benchmarks/memory_gaussian_mixture.py [--points 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import resource, sys
    import jax, jax.numpy as jnp
    from boltzkit.targets import DiagonalGaussianMixture

    n_points, operation = int(sys.argv[1]), sys.argv[2]
    target = DiagonalGaussianMixture.create_gmm40()
    x = jax.random.uniform(jax.random.key(0), (n_points, 2), jnp.float32, -50.0, 50.0)
    x.block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if operation == "log_prob":
        out = target.log_prob(x)
    elif operation == "log_prob_and_score":
        out = target.log_prob_and_score(x)
    else:
        out = None
    jax.block_until_ready(out)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before * 1024, after * 1024)
    """
)


def measure(n_points: int, operation: str) -> dict:
    """Return the peak RSS in bytes before and after the call, from a fresh process."""
    completed = subprocess.run([sys.executable, "-c", CHILD, str(n_points), operation],
                               capture_output=True, text=True, check=True)
    before, after = (int(v) for v in completed.stdout.split())
    return {"operation": operation, "n_points": n_points, "peak_rss_before_bytes": before,
            "peak_rss_bytes": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000, help="number of GMM40 points")
    args = parser.parse_args()
    results = [measure(args.points, op) for op in ("none", "log_prob", "log_prob_and_score")]
    for row in results:
        print(f"{row['operation']:20s} {row['n_points']:>10d} points: peak RSS "
              f"{row['peak_rss_bytes'] / 2**20:8.1f} MiB")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
