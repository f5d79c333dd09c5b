"""Measure the finite-sample floor of each sample-based metric for a perfect sampler of GMM40.

For each repetition r, the "model" samples are ``target.sample(n, seed=1000 + r)``
and the reference samples are the first ``n`` items of the test split for
``seed=r``: two independent sets of exact samples. The script prints the mean,
standard deviation, minimum and maximum of every metric of
``boltzkit.evaluation.evaluate`` over the repetitions.

Usage:
    python benchmarks/evaluation_floors.py [--repetitions 20] [--sizes 1000 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from boltzkit.evaluation import evaluate
from boltzkit.targets import DiagonalGaussianMixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()

    target = DiagonalGaussianMixture.create_gmm40()
    for n in args.sizes:
        start = time.monotonic()
        rows = [
            evaluate(target, target.sample(n, seed=1000 + r), n_reference=n, seed=r)
            for r in range(args.repetitions)
        ]
        print(f"n = {n}, {args.repetitions} repetitions, {time.monotonic() - start:.1f} s")
        for name in rows[0]:
            if name in ("n_samples", "n_reference"):
                continue
            values = np.array([row[name] for row in rows])
            print(
                f"  {name:22s} mean {values.mean():.4g}  std {values.std(ddof=1):.2g}  "
                f"min {values.min():.4g}  max {values.max():.4g}"
            )


if __name__ == "__main__":
    main()
