"""Sample GMM40 without data: annealed importance sampling with Langevin (MALA) moves.

The sampler only calls the target's ``log_prob`` and ``score``. Each chain
starts from a broad Gaussian ``q0 = N(0, INIT_STD^2 I)`` and moves through the
geometric path

    log pi_beta(x) = (1 - beta) log q0(x) + beta log p(x),   beta: 0 -> 1,

with one Metropolis-adjusted Langevin (MALA) step per level. The importance
log-weight of a chain accumulates ``(beta_t - beta_{t-1}) (log p(x) - log q0(x))``
before each move. The weights correct for chains that fell into the wrong
proportion of modes, and their mean estimates the normalizing constant Z of
``p`` (``log Z = 0`` for GMM40, since its density is normalized).

The whole sampler is one jitted ``jax.lax.scan`` over the levels, with the
per-chain transition ``jax.vmap``-ped over chains, and it takes the target as
an argument: another target of the same shapes reuses the compiled sampler.

Run::

    python examples/annealed_langevin.py --out example-output/annealed-langevin

It writes ``annealed_langevin.png``, ``metrics.json`` and ``metrics.md``. With
``--quick`` it runs a few levels only, to check that everything runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit import evaluation
from boltzkit.targets import DiagonalGaussianMixture

# The initial distribution is wide enough to cover GMM40's means in [-40, 40]^2.
INIT_STD = 30.0
# The MALA step size at each level is this fraction of the variance of the
# intermediate density, estimated from the component std and INIT_STD.
STEP_FRACTION = 0.6

FULL = {"n_chains": 4000, "n_levels": 1000}
QUICK = {"n_chains": 64, "n_levels": 10}


def initial_log_prob(x: jax.Array) -> jax.Array:
    """Return ``log q0(x)`` for one point ``x`` of shape ``(D,)``."""
    dim = x.shape[-1]
    return -0.5 * jnp.sum((x / INIT_STD) ** 2) - dim * math.log(INIT_STD) - 0.5 * dim * math.log(2 * math.pi)


def initial_score(x: jax.Array) -> jax.Array:
    """Return the gradient of ``log q0`` at one point ``x``."""
    return -x / INIT_STD**2


def annealed_log_prob_and_score(target, x: jax.Array, beta: jax.Array):
    """Return ``log pi_beta(x)``, its score and ``log p(x) - log q0(x)`` for one point ``x``."""
    log_p, score_p = target.log_prob_and_score(x)
    log_q0 = initial_log_prob(x)
    log_pi = (1.0 - beta) * log_q0 + beta * log_p
    score_pi = (1.0 - beta) * initial_score(x) + beta * score_p
    return log_pi, score_pi, log_p - log_q0


def mala_step(target, x: jax.Array, key: jax.Array, beta: jax.Array, step_size: jax.Array):
    """Apply one MALA step targeting ``pi_beta`` to one chain; return the new point and acceptance."""
    key_noise, key_accept = jax.random.split(key)
    log_pi, score, _ = annealed_log_prob_and_score(target, x, beta)
    proposal = x + step_size * score + jnp.sqrt(2.0 * step_size) * jax.random.normal(key_noise, x.shape)
    log_pi_new, score_new, _ = annealed_log_prob_and_score(target, proposal, beta)

    # Log-densities of the Gaussian Langevin proposals x -> proposal and back.
    forward = -jnp.sum((proposal - x - step_size * score) ** 2) / (4.0 * step_size)
    backward = -jnp.sum((x - proposal - step_size * score_new) ** 2) / (4.0 * step_size)
    log_ratio = log_pi_new - log_pi + backward - forward
    accept = jnp.log(jax.random.uniform(key_accept)) < log_ratio
    return jnp.where(accept, proposal, x), accept


def step_size_schedule(target, betas: jax.Array) -> jax.Array:
    """Return the MALA step size of each level, a fraction of the intermediate variance."""
    component_var = jnp.mean(target.diag_stds**2)
    precision = betas / component_var + (1.0 - betas) / INIT_STD**2
    return STEP_FRACTION / precision


@functools.partial(jax.jit, static_argnames=("n_chains", "n_levels"))
def run_sampler(target, key: jax.Array, *, n_chains: int, n_levels: int):
    """Run annealed importance sampling; return samples, log-weights and the acceptance rate."""
    # A geometric schedule in beta spends more levels where the path changes fastest.
    betas = jnp.concatenate([jnp.zeros(1), jnp.geomspace(1e-4, 1.0, n_levels)])
    step_sizes = step_size_schedule(target, betas)

    key_init, key_levels = jax.random.split(key)
    x = INIT_STD * jax.random.normal(key_init, (n_chains, target.dim))
    chain_keys = jax.random.split(key_levels, n_chains)

    def one_chain_level(x, log_weight, chain_key, level):
        beta_previous, beta = betas[level - 1], betas[level]
        _, _, log_ratio = annealed_log_prob_and_score(target, x, beta)
        log_weight = log_weight + (beta - beta_previous) * log_ratio
        x, accept = mala_step(target, x, jax.random.fold_in(chain_key, level), beta, step_sizes[level])
        return x, log_weight, accept

    def level_step(carry, level):
        x, log_weights = carry
        x, log_weights, accept = jax.vmap(one_chain_level, in_axes=(0, 0, 0, None))(
            x, log_weights, chain_keys, level
        )
        return (x, log_weights), jnp.mean(accept.astype(x.dtype))

    levels = jnp.arange(1, n_levels + 1)
    (x, log_weights), acceptance = jax.lax.scan(level_step, (x, jnp.zeros(n_chains, x.dtype)), levels)
    return x, log_weights, acceptance


def evaluate(target, samples, log_weights, test_samples, key) -> dict[str, float]:
    """Return the metrics of the chains and of their importance resampling against the test split.

    Keys starting with ``chains/`` score the chains' end points as they are,
    with the density-based metrics (ESS, ELBO, log Z) of the importance
    weights. Keys starting with ``resampled/`` score as many points drawn
    from the end points with probabilities proportional to their weights,
    which is what a user of the sampler would take as its samples.
    """
    # The importance weight is p(x) / q(x) in the extended space of the
    # whole chain, so passing log q = log p - log w gives the weight-based
    # metrics of AIS: ESS, ELBO and the log Z estimate.
    model_log_probs = target.log_prob(samples) - log_weights
    chains = evaluation.evaluate(
        target, samples, model_log_probs=model_log_probs, reference_samples=test_samples
    )
    picks = jax.random.categorical(key, log_weights, shape=(samples.shape[0],))
    resampled = evaluation.evaluate(target, samples[picks], reference_samples=test_samples)
    metrics = {f"chains/{name}": value for name, value in chains.items()}
    metrics.update({f"resampled/{name}": value for name, value in resampled.items()})
    return metrics


def draw_figure(target, samples, log_weights, path: str) -> None:
    """Draw the target's contours with the chains' end points, coloured by log-weight."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    grid = np.linspace(-50.0, 50.0, 300)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)
    log_density = np.asarray(target.log_prob(points)).reshape(xx.shape)
    # Contours every 2 nats, down to 12 nats below the highest value (about 5 stds).
    levels = np.linspace(np.max(log_density) - 12.0, np.max(log_density), 7)

    figure = Figure(figsize=(6.5, 5), layout="constrained")
    axes = figure.subplots()
    axes.contour(xx, yy, log_density, levels=levels, cmap="Greys", linewidths=0.6)
    relative = log_weights - np.max(log_weights)
    points_drawn = axes.scatter(samples[:, 0], samples[:, 1], s=3, c=np.maximum(relative, -10.0),
                                cmap="viridis")
    figure.colorbar(points_drawn, ax=axes, label="log-weight relative to the largest")
    axes.set_title("annealed Langevin (AIS with MALA): chain end points")
    axes.set_aspect("equal")
    axes.set_xlim(-50, 50)
    axes.set_ylim(-50, 50)
    figure.savefig(path, dpi=110)


def write_tables(metrics: dict[str, float], out_dir: str) -> None:
    """Write the metrics to ``metrics.json`` and as a markdown table to ``metrics.md``."""
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)
        handle.write("\n")
    rows = ["| metric | value |", "| --- | --- |"]
    rows += [f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items())]
    with open(os.path.join(out_dir, "metrics.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def main(*, n_chains: int, n_levels: int, out_dir: str, seed: int = 0, log=print) -> dict[str, float]:
    """Run the sampler, evaluate it and write the figure and metric tables to ``out_dir``.

    Returns:
        The metrics as a flat dict of floats.
    """
    os.makedirs(out_dir, exist_ok=True)
    target = DiagonalGaussianMixture.create_gmm40()

    start = time.perf_counter()
    samples, log_weights, acceptance = run_sampler(
        target, jax.random.key(seed), n_chains=n_chains, n_levels=n_levels
    )
    samples.block_until_ready()
    log(f"{n_chains} chains x {n_levels} levels in {time.perf_counter() - start:.1f} s, "
        f"mean MALA acceptance {float(jnp.mean(acceptance)):.3f}")

    test_samples = target.load_dataset("test", n_chains).samples
    metrics = evaluate(target, samples, log_weights, test_samples, jax.random.key(seed + 1))
    metrics["mean_acceptance"] = float(jnp.mean(acceptance))

    draw_figure(target, np.asarray(samples), np.asarray(log_weights),
                os.path.join(out_dir, "annealed_langevin.png"))
    write_tables(metrics, out_dir)
    return metrics


def positive_int(text: str) -> int:
    """Parse a command-line value that must be an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="example-output/annealed-langevin",
                        help="directory for the figure and the metric tables")
    parser.add_argument("--n-chains", type=positive_int, default=None, help="number of chains")
    parser.add_argument("--n-levels", type=positive_int, default=None, help="number of annealing levels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chains")
    parser.add_argument("--quick", action="store_true", help="a few levels only, to check the script runs")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Run the example from command-line arguments and print the metrics as JSON."""
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name in sizes:
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    metrics = main(**sizes, out_dir=args.out, seed=args.seed)
    json.dump(metrics, sys.stdout, indent=1, sort_keys=True)
    print()
    return metrics


if __name__ == "__main__":
    run()
