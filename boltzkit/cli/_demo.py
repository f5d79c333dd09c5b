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

# The baseline sampler: MALA chains started uniformly in the box of the means.
MALA_CHAINS = 2000
MALA_STEPS = 500
MALA_STEP_SIZE = 0.5


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="write GMM40's parameters, three dataset splits, a figure and a summary",
        description="Run the main job on the built-in GMM40: write its parameters, the train, "
        "val and test splits with log_probs and scores, a figure of the density with test "
        "samples, and a summary. Then run a baseline sampler written in JAX (MALA driven by "
        "the target's score, vmapped over chains and jitted), score it with the evaluation "
        "metrics and draw it beside exact samples. Finishes in well under a minute on a "
        "laptop CPU.",
    )
    parser.add_argument("--out", default="boltzkit-demo", metavar="DIR",
                        help="output directory, created if missing (default: boltzkit-demo)")
    parser.add_argument("--force", action="store_true", help="replace files from an earlier demo")
    parser.set_defaults(run=run)


def _output_paths(directory: str) -> dict[str, str]:
    names = {"params": "gmm40.json", "summary": "summary.json", "figure": "gmm40.png",
             "mala_samples": "mala.npy", "mala_figure": "mala.png"}
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
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise CommandError(f"cannot create the --out directory {directory}: {reason}") from None

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
    # Each test sample counts for the component of highest responsibility.
    nearest = np.asarray(target.responsibilities(test.samples).argmax(axis=-1))
    counts = np.bincount(nearest, minlength=target.n_components)
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

    summary["mala"] = _run_baseline_sampler(target, test.samples[:MALA_CHAINS], paths,
                                            overwrite=args.force)

    summary["seconds"] = round(time.monotonic() - start, 2)
    text = json.dumps(summary, indent=2) + "\n"
    _io.write_bytes(paths["summary"], lambda handle: handle.write(text.encode()),
                    overwrite=args.force)
    print(f"summary -> {paths['summary']} ({summary['seconds']} s)")


def mala_chains(target, key, initial, n_steps: int, step_size: float):
    """Run one MALA chain per row of ``initial`` and return the final states.

    Each step proposes ``y = x + h * score(x) + sqrt(2h) * noise`` and accepts
    it with the Metropolis-Hastings probability of the Langevin proposal, so
    every chain leaves the target invariant. Chains rarely cross the low-density
    gaps between modes, so the mode weights are those of the starting points'
    basins, not the target's: a deliberately imperfect baseline.
    """
    import jax
    import jax.numpy as jnp

    def log_proposal(to, frm, frm_score):
        difference = to - frm - step_size * frm_score
        return -jnp.sum(difference * difference) / (4.0 * step_size)

    def step(state, step_key):
        x, log_prob, score = state
        noise_key, accept_key = jax.random.split(step_key)
        noise = jax.random.normal(noise_key, x.shape, x.dtype)
        proposal = x + step_size * score + jnp.sqrt(2.0 * step_size) * noise
        proposal_log_prob, proposal_score = target.log_prob_and_score(proposal)
        log_ratio = (proposal_log_prob + log_proposal(x, proposal, proposal_score)
                     - log_prob - log_proposal(proposal, x, score))
        accept = jnp.log(jax.random.uniform(accept_key, (), x.dtype)) < log_ratio
        new_state = jax.tree.map(lambda new, old: jnp.where(accept, new, old),
                                 (proposal, proposal_log_prob, proposal_score), state)
        return new_state, accept

    def chain(chain_key, x0):
        log_prob, score = target.log_prob_and_score(x0)
        keys = jax.random.split(chain_key, n_steps)
        (x, _, _), accepted = jax.lax.scan(step, (x0, log_prob, score), keys)
        return x, jnp.mean(accepted.astype(x.dtype))

    keys = jax.random.split(key, initial.shape[0])
    return jax.jit(jax.vmap(chain))(keys, initial)


def _run_baseline_sampler(target, reference, paths, *, overwrite: bool) -> dict:
    import jax

    from boltzkit import evaluation
    from boltzkit.cli._evaluate import draw_comparison, format_table

    means = np.asarray(target.means)
    low, high = means.min(axis=0), means.max(axis=0)
    initial = np.random.default_rng(0).uniform(low, high, size=(MALA_CHAINS, target.dim))
    initial = initial.astype(target.dtype)
    samples, acceptance = mala_chains(target, jax.random.key(0), initial, MALA_STEPS, MALA_STEP_SIZE)
    samples = np.asarray(samples)
    _io.write_npy(paths["mala_samples"], samples, overwrite=overwrite)
    print(f"\nbaseline: MALA, {MALA_CHAINS} chains x {MALA_STEPS} steps of size {MALA_STEP_SIZE} "
          f"from uniform starts, mean acceptance {float(np.mean(acceptance)):.2f} "
          f"-> {paths['mala_samples']}")

    metrics = evaluation.evaluate(target, samples, reference_samples=reference)
    print(format_table(metrics))
    result = {"file": paths["mala_samples"], "chains": MALA_CHAINS, "steps": MALA_STEPS,
              "step_size": MALA_STEP_SIZE, "metrics": metrics}
    try:
        draw_comparison(target, samples, reference, paths["mala_figure"], overwrite=overwrite,
                        title=f"MALA ({MALA_STEPS} steps) beside exact samples of GMM40",
                        label="MALA samples")
        result["figure"] = paths["mala_figure"]
        print(f"figure -> {paths['mala_figure']}")
    except CommandError as error:
        result["figure"] = None
        print(f"figure skipped: {error}")
    return result

