"""``boltzkit demo``: the main job on GMM40, from parameters to datasets and a figure."""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from boltzkit import _io, datasets
from boltzkit.cli import _plot
from boltzkit.cli._errors import CommandError
from boltzkit.targets import DiagonalGaussianMixture, save_target

SPLIT_LENGTHS = {"train": 100_000, "val": 10_000, "test": 10_000}
PLOTTED_SAMPLES = 2000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="write GMM40's parameters, three dataset splits, a figure and a summary",
        description="Run the main job on the built-in GMM40: write its parameters, the train, "
        "val and test splits with log_probs and scores, a figure of the density with test "
        "samples, and a summary. Finishes in seconds on a laptop CPU.",
    )
    parser.add_argument("--out", default="boltzkit-demo", metavar="DIR",
                        help="output directory, created if missing (default: boltzkit-demo)")
    parser.add_argument("--force", action="store_true", help="replace files from an earlier demo")
    parser.set_defaults(run=run)


def _output_paths(directory: str) -> dict[str, str]:
    names = {"params": "gmm40.json", "summary": "summary.json", "figure": "gmm40.png"}
    names.update({split: f"{split}.npz" for split in SPLIT_LENGTHS})
    return {key: os.path.join(directory, name) for key, name in names.items()}


def run(args: argparse.Namespace) -> None:
    start = time.monotonic()
    directory = args.out
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"{directory} exists and is not a directory")
    paths = _output_paths(directory)
    existing = [path for path in paths.values() if os.path.exists(path)]
    if existing and not args.force:
        raise CommandError(
            f"{existing[0]} already exists ({len(existing)} demo files in {directory}); "
            "pass --force to replace them or choose another --out"
        )
    os.makedirs(directory, exist_ok=True)

    target = DiagonalGaussianMixture.create_gmm40()
    save_target(target, paths["params"], overwrite=args.force)
    print(f"target: gmm40, {target.n_components} components in {target.dim} dimensions "
          f"-> {paths['params']}")

    summary: dict = {"target": "gmm40", "dim": target.dim, "n_components": target.n_components,
                     "splits": {}}
    for split, length in SPLIT_LENGTHS.items():
        datasets.write_stream(
            target, datasets.split_key(split, 0), paths[split], 0, length,
            include_log_probs=True, include_scores=True, overwrite=args.force,
        )
        loaded = datasets.Dataset.load(paths[split])
        log_probs = np.asarray(loaded.log_probs, np.float64)
        summary["splits"][split] = {
            "file": paths[split],
            "length": length,
            "mean_log_prob": float(log_probs.mean()),
        }
        print(f"{split:>5}: {length:>7} samples with log_probs and scores -> {paths[split]} "
              f"(mean log_prob {log_probs.mean():.3f})")

    test = datasets.Dataset.load(paths["test"])
    responsibilities = np.asarray(_nearest_components(target, test.samples))
    counts = np.bincount(responsibilities, minlength=target.n_components)
    frequencies = counts / counts.sum()
    total_variation = 0.5 * float(np.abs(frequencies - np.asarray(target.weights)).sum())
    summary["test_component_frequency_tv"] = total_variation
    summary["test_modes_visited"] = int(np.sum(counts > 0))
    print(f"test split: {np.sum(counts > 0)} of {target.n_components} modes visited, total "
          f"variation of component frequencies from the weights {total_variation:.4f}")

    try:
        _plot.draw_target(target, test.samples[:PLOTTED_SAMPLES], paths["figure"],
                          overwrite=args.force, title=f"GMM40 with {PLOTTED_SAMPLES} test samples")
        summary["figure"] = paths["figure"]
        print(f"figure -> {paths['figure']}")
    except CommandError as error:
        summary["figure"] = None
        print(f"figure skipped: {error}")

    summary["seconds"] = round(time.monotonic() - start, 2)
    text = json.dumps(summary, indent=2) + "\n"
    _io.write_bytes(paths["summary"], lambda handle: handle.write(text.encode()),
                    overwrite=args.force)
    print(f"summary -> {paths['summary']} ({summary['seconds']} s)")


def _nearest_components(target, samples):
    """Return the index of the component with the highest responsibility for each sample."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def assign(means, diag_stds, logits, x):
        z = (x[:, None, :] - means[None]) / diag_stds[None]
        log_joint = jax.nn.log_softmax(logits)[None, :] - 0.5 * jnp.sum(z * z, axis=-1) \
            - jnp.sum(jnp.log(diag_stds), axis=-1)[None, :]
        return jnp.argmax(log_joint, axis=-1)

    return assign(target.means, target.diag_stds, target.logits, samples)
