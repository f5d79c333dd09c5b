"""Train a flow matching model on GMM40 data, then sample it and score it against the test split.

The training data is streamed from the ``train`` split by index ranges: step
``s`` trains on items ``[s * batch_size, (s + 1) * batch_size)``, so a run
resumed at step ``s`` sees exactly the batches it would have seen without the
interruption, and no dataset is held in memory or written to disk.

The model is a small MLP velocity field ``v(y, t)`` trained with conditional
flow matching on the straight path ``y_t = (1 - t) y_0 + t y_1`` from a
standard normal ``y_0`` to the data ``y_1`` rescaled by ``1 / DATA_SCALE``.
Samples come from integrating ``dy/dt = v(y, t)`` with a fixed-step RK4
scheme. The same integration, augmented with the exact divergence of ``v``
(two Jacobian-vector products in 2-D), gives the model's log-density, so the
evaluation also includes the density-based metrics (ESS, ELBO, EUBO, the log Z
error), not only the sample-based ones.

Run::

    python examples/train_flow_matching.py --out example-output/flow-matching

It writes ``flow_matching.png`` (the target's log-density contours with test
samples beside model samples), ``metrics.json`` and ``metrics.md``. With
``--quick`` it trains for a few steps only, to check that everything runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from boltzkit import evaluation
from boltzkit.targets import DiagonalGaussianMixture

# GMM40's means lie in [-40, 40]^2. Dividing by this scale brings the data to
# about [-2, 2]^2, which matches a standard normal base and an MLP with
# unit-scale initialization. Each mode then has a std of 1 / DATA_SCALE.
DATA_SCALE = 20.0

FULL = {"steps": 3000, "batch_size": 1024, "n_eval": 4000, "ode_steps": 32}
QUICK = {"steps": 10, "batch_size": 64, "n_eval": 64, "ode_steps": 4}


# ----------------------------------------------------------------- the model


def init_mlp(key: jax.Array, sizes: list[int]) -> list[dict[str, jax.Array]]:
    """Return the layers of an MLP with LeCun-normal weights and zero biases."""
    layers = []
    for key_layer, n_in, n_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:],
                                      strict=True):
        weight = jax.random.normal(key_layer, (n_in, n_out)) / math.sqrt(n_in)
        layers.append({"weight": weight, "bias": jnp.zeros(n_out)})
    return layers


def time_features(t: jax.Array, n_frequencies: int = 8) -> jax.Array:
    """Return sin and cos features of the time ``t`` in [0, 1], of shape ``(2 * n_frequencies,)``."""
    frequencies = jnp.pi * 2.0 ** jnp.arange(n_frequencies, dtype=t.dtype)
    angles = t * frequencies
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])


def space_features(y: jax.Array, n_frequencies: int = 4) -> jax.Array:
    """Return ``y`` with sin and cos features of each coordinate, of shape ``(2 + 4 * n_frequencies,)``.

    The modes are narrow compared with the spread of the data, and periodic
    features let a small MLP resolve them with fewer training steps.
    """
    angles = (y[:, None] * (2.0 ** jnp.arange(n_frequencies, dtype=y.dtype))[None, :]).reshape(-1)
    return jnp.concatenate([y, jnp.sin(angles), jnp.cos(angles)])


def velocity(params: list[dict[str, jax.Array]], y: jax.Array, t: jax.Array) -> jax.Array:
    """Return the velocity ``v(y, t)`` of one point ``y`` of shape ``(2,)`` at a scalar time ``t``."""
    h = jnp.concatenate([space_features(y), time_features(t)])
    for layer in params[:-1]:
        h = jax.nn.gelu(h @ layer["weight"] + layer["bias"])
    return h @ params[-1]["weight"] + params[-1]["bias"]


def flow_matching_loss(params, data: jax.Array, key: jax.Array) -> jax.Array:
    """Return the conditional flow matching loss on a batch of rescaled data of shape ``(n, 2)``."""
    key_noise, key_time = jax.random.split(key)
    y0 = jax.random.normal(key_noise, data.shape)
    t = jax.random.uniform(key_time, (data.shape[0],))
    yt = (1.0 - t)[:, None] * y0 + t[:, None] * data
    predicted = jax.vmap(velocity, in_axes=(None, 0, 0))(params, yt, t)
    return jnp.mean(jnp.sum((predicted - (data - y0)) ** 2, axis=-1))


def make_train_step(optimizer: optax.GradientTransformation):
    """Return the jitted update ``(params, opt_state, data, key) -> (params, opt_state, loss)``."""

    @jax.jit
    def train_step(params, opt_state, data, key):
        loss, grads = jax.value_and_grad(flow_matching_loss)(params, data, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


# -------------------------------------------------------------- integration


def _divergence(params, y, t):
    """Return the exact divergence of ``v(., t)`` at ``y``, one JVP per coordinate."""
    def column(direction):
        return jax.jvp(lambda point: velocity(params, point, t), (y,), (direction,))[1]

    jacobian_columns = jax.vmap(column)(jnp.eye(y.shape[-1], dtype=y.dtype))
    return jnp.trace(jacobian_columns)


def _augmented_field(params, state, t):
    """Return the time derivative of ``(y, log-density change)`` along the flow."""
    y, _ = state
    return velocity(params, y, t), -_divergence(params, y, t)


def integrate(params, y: jax.Array, t_start: float, t_end: float, n_steps: int):
    """Integrate one point from ``t_start`` to ``t_end`` with RK4 and track its log-density.

    Returns:
        ``(y_end, delta)`` where ``log q_end(y_end) = log q_start(y) + delta``.
    """
    h = (t_end - t_start) / n_steps

    def rk4_step(state, index):
        t = t_start + index * h
        k1 = _augmented_field(params, state, t)
        k2 = _augmented_field(params, jax.tree.map(lambda s, k: s + 0.5 * h * k, state, k1), t + 0.5 * h)
        k3 = _augmented_field(params, jax.tree.map(lambda s, k: s + 0.5 * h * k, state, k2), t + 0.5 * h)
        k4 = _augmented_field(params, jax.tree.map(lambda s, k: s + h * k, state, k3), t + h)
        state = jax.tree.map(
            lambda s, a, b, c, d: s + h / 6.0 * (a + 2.0 * b + 2.0 * c + d), state, k1, k2, k3, k4
        )
        return state, None

    start = (y, jnp.zeros((), y.dtype))
    (y_end, delta), _ = jax.lax.scan(rk4_step, start, jnp.arange(n_steps, dtype=y.dtype))
    return y_end, delta


def _standard_normal_log_prob(y: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(y**2, axis=-1) - 0.5 * y.shape[-1] * math.log(2.0 * math.pi)


def sample_with_log_q(params, key: jax.Array, n: int, n_steps: int):
    """Return ``n`` model samples in data units and the model's log-density at each."""

    @jax.jit
    def run(params, y0):
        y1, delta = jax.vmap(integrate, in_axes=(None, 0, None, None, None))(params, y0, 0.0, 1.0, n_steps)
        log_q = _standard_normal_log_prob(y0) + delta - y0.shape[-1] * math.log(DATA_SCALE)
        return y1 * DATA_SCALE, log_q

    return run(params, jax.random.normal(key, (n, 2)))


def log_q_of(params, x: jax.Array, n_steps: int) -> jax.Array:
    """Return the model's log-density at points ``x`` in data units, by integrating back to t = 0."""

    @jax.jit
    def run(params, y1):
        y0, delta = jax.vmap(integrate, in_axes=(None, 0, None, None, None))(params, y1, 1.0, 0.0, n_steps)
        # Integrating backwards, delta = log q_0(y_0) - log q_1(y_1).
        return _standard_normal_log_prob(y0) - delta - y1.shape[-1] * math.log(DATA_SCALE)

    return run(params, x / DATA_SCALE)


# ---------------------------------------------------------------- training


def train(target, *, steps: int, batch_size: int, seed: int = 0, learning_rate: float = 2e-3,
          log_every: int = 500, log=print):
    """Train the velocity field on the ``train`` split, streamed by index ranges."""
    key_init, key_train = jax.random.split(jax.random.key(seed))
    params = init_mlp(key_init, [2 + 16 + 16, 256, 256, 256, 2])
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=learning_rate, warmup_steps=max(1, steps // 20), decay_steps=steps
    )
    optimizer = optax.adam(schedule)
    opt_state = optimizer.init(params)
    train_step = make_train_step(optimizer)

    losses = []
    for step in range(steps):
        # Items [step * batch_size, (step + 1) * batch_size) of the train stream.
        batch = target.load_dataset("train", batch_size, offset=step * batch_size).samples
        params, opt_state, loss = train_step(
            params, opt_state, batch / DATA_SCALE, jax.random.fold_in(key_train, step)
        )
        losses.append(loss)
        if log_every and (step + 1) % log_every == 0:
            log(f"step {step + 1}/{steps}: loss {float(np.mean(losses[-log_every:])):.4f}")
    return params, np.asarray(jnp.stack(losses))


# -------------------------------------------------------------- evaluation


def evaluate(target, samples, log_q_samples, test_samples, log_q_test) -> dict[str, float]:
    """Return the evaluation metrics of the model against the target and its test split."""
    return evaluation.evaluate(
        target,
        samples,
        model_log_probs=log_q_samples,
        reference_samples=test_samples,
        reference_model_log_probs=log_q_test,
    )


def draw_figure(target, test_samples, samples, path: str) -> None:
    """Draw the target's log-density contours with test samples beside model samples."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    grid = np.linspace(-50.0, 50.0, 300)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)
    log_density = np.asarray(target.log_prob(points)).reshape(xx.shape)
    # Contours every 2 nats, down to 12 nats below the highest value (about 5 stds).
    levels = np.linspace(np.max(log_density) - 12.0, np.max(log_density), 7)

    figure = Figure(figsize=(10, 5), layout="constrained")
    for axes, points_shown, title in zip(
        figure.subplots(1, 2, sharex=True, sharey=True),
        (test_samples, samples),
        ("GMM40 test samples", "flow matching samples"),
        strict=True,
    ):
        axes.contour(xx, yy, log_density, levels=levels, cmap="Greys",
                     linewidths=0.6)
        axes.scatter(points_shown[:, 0], points_shown[:, 1], s=2, alpha=0.5, color="tab:blue")
        axes.set_title(title)
        axes.set_aspect("equal")
        axes.set_xlim(-50, 50)
        axes.set_ylim(-50, 50)
    figure.savefig(path, dpi=110)


def write_tables(metrics: dict[str, Any], out_dir: str) -> None:
    """Write the metrics to ``metrics.json`` and as a markdown table to ``metrics.md``."""
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)
        handle.write("\n")
    rows = ["| metric | value |", "| --- | --- |"]
    rows += [f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items())]
    with open(os.path.join(out_dir, "metrics.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def main(*, steps: int, batch_size: int, n_eval: int, ode_steps: int, out_dir: str,
         seed: int = 0, log=print) -> dict[str, float]:
    """Train, sample and evaluate; write the figure and metric tables to ``out_dir``.

    Returns:
        The metrics as a flat dict of floats.
    """
    os.makedirs(out_dir, exist_ok=True)
    target = DiagonalGaussianMixture.create_gmm40()

    start = time.perf_counter()
    params, losses = train(target, steps=steps, batch_size=batch_size, seed=seed,
                           log_every=max(1, steps // 8), log=log)
    log(f"trained {steps} steps in {time.perf_counter() - start:.1f} s, "
        f"final loss {float(np.mean(losses[-max(1, steps // 20):])):.4f}")

    start = time.perf_counter()
    samples, log_q_samples = sample_with_log_q(params, jax.random.key(seed + 1), n_eval, ode_steps)
    test_samples = target.load_dataset("test", n_eval).samples
    log_q_test = log_q_of(params, test_samples, ode_steps)
    log(f"sampled and evaluated log q in {time.perf_counter() - start:.1f} s")

    metrics = evaluate(target, samples, log_q_samples, test_samples, log_q_test)
    metrics["train_steps"] = float(steps)
    metrics["final_loss"] = float(np.mean(losses[-max(1, steps // 20):]))

    draw_figure(target, np.asarray(test_samples), np.asarray(samples),
                os.path.join(out_dir, "flow_matching.png"))
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
    parser.add_argument("--out", default="example-output/flow-matching",
                        help="directory for the figure and the metric tables")
    parser.add_argument("--steps", type=positive_int, default=None, help="training steps")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="items per training step")
    parser.add_argument("--n-eval", type=positive_int, default=None,
                        help="model samples and test items used for the evaluation")
    parser.add_argument("--ode-steps", type=positive_int, default=None, help="RK4 steps of the sampler")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the noise")
    parser.add_argument("--quick", action="store_true", help="a few steps only, to check the script runs")
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
