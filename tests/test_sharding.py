"""Sharded evaluation and per-device dataset ranges equal the single-device results.

The check runs in a subprocess because ``--xla_force_host_platform_device_count``
must be set before JAX is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from boltzkit.targets import DiagonalGaussianMixture

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")

    devices = jax.devices()
    assert len(devices) == 8, devices
    mesh = Mesh(np.array(devices), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))

    rng = np.random.default_rng(0)
    large = DiagonalGaussianMixture(
        rng.normal(size=(6, 24)).astype(np.float32),
        rng.uniform(0.5, 1.5, size=(6, 24)).astype(np.float32),
    )
    for target in (DiagonalGaussianMixture.create_gmm40(), large):
        x = np.asarray(target.sample(8 * 1024 + 8 * 3, seed=1)) + 0.5
        single = jax.device_put(x, devices[0])
        sharded = jax.device_put(x, rows)
        assert len(sharded.sharding.device_set) == 8

        score = jax.jit(lambda t, points: jax.grad(lambda p: jnp.sum(t.log_prob(p)))(points))
        both = jax.jit(lambda t, points: t.log_prob_and_score(points))
        for fn in (score, both):
            expected = fn(target, single)
            actual = fn(target, sharded)
            for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=2e-6, atol=1e-6)

    # A dataset generated as per-device index ranges.
    target = DiagonalGaussianMixture.create_gmm40()
    per_device = 1000
    total = 8 * per_device
    key = jax.random.key(7)
    indices = jax.device_put(np.arange(total, dtype=np.uint32), rows)
    sampled = jax.jit(lambda t, k, i: t.sample_at(k, i))(target, key, indices)
    assert len(sampled.sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(sampled), np.asarray(target.sample(total, seed=key)))

    whole = target.load_dataset("train", total, include_log_probs=True, include_scores=True, seed=3)
    for index, device in enumerate(devices):
        with jax.default_device(device):
            part = target.load_dataset("train", per_device, include_log_probs=True,
                                       include_scores=True, seed=3, offset=index * per_device)
        assert part.samples.devices() == {device}
        window = slice(index * per_device, (index + 1) * per_device)
        np.testing.assert_array_equal(np.asarray(part.samples), np.asarray(whole.samples[window]))
        np.testing.assert_array_equal(np.asarray(part.log_probs), np.asarray(whole.log_probs[window]))
        np.testing.assert_array_equal(np.asarray(part.scores), np.asarray(whole.scores[window]))
    print("sharding ok")
    """
)


def test_sharded_evaluation_and_dataset_ranges():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "sharding ok" in completed.stdout
