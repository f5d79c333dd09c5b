"""The same diagonal Gaussian mixture built with each peer library.

TFP-JAX and distrax use ``MixtureSameFamily`` of ``Categorical(logits)`` and
``MultivariateNormalDiag``; NumPyro uses ``MixtureSameFamily`` of
``Categorical(logits)`` and ``Normal(...).to_event(1)``. A peer that is not
installed gives ``None``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

import jax
import jax.numpy as jnp


def _tfp_distribution(means, stds, logits):
    from tensorflow_probability.substrates import jax as tfp

    tfd = tfp.distributions
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits),
                                 tfd.MultivariateNormalDiag(loc=means, scale_diag=stds))


def _distrax_distribution(means, stds, logits):
    import distrax

    return distrax.MixtureSameFamily(distrax.Categorical(logits=logits),
                                     distrax.MultivariateNormalDiag(means, stds))


def _numpyro_distribution(means, stds, logits):
    import numpyro.distributions as dist

    return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(means, stds).to_event(1))


_BUILDERS = {"tfp": _tfp_distribution, "distrax": _distrax_distribution, "numpyro": _numpyro_distribution}
_PACKAGES = {"tfp": "tfp-nightly", "distrax": "distrax", "numpyro": "numpyro"}


def versions() -> dict[str, str | None]:
    """Return the installed version of each peer package, or None."""
    found = {}
    for package in _PACKAGES.values():
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def functions(name: str, target) -> dict[str, Callable] | None:
    """Return jitted (points, key) -> output functions of peer ``name``, or None if it is missing."""
    build = _BUILDERS[name]
    params = (target.means, target.diag_stds, target.logits)
    try:
        build(*params)
    except ImportError:
        return None

    def log_prob(x):
        return build(*params).log_prob(x)

    def score(x):
        return jax.grad(lambda y: jnp.sum(log_prob(y)))(x)

    def sample(n, key):
        distribution = build(*params)
        if name == "numpyro":
            return distribution.sample(key, (n,))
        return distribution.sample(seed=key, sample_shape=(n,))

    def dataset(x, key):
        samples = sample(x.shape[0], key)
        values, pullback = jax.vjp(log_prob, samples)
        return samples, values, pullback(jnp.ones_like(values))[0]

    return {
        "log_prob": jax.jit(lambda x, key: log_prob(x)),
        "score": jax.jit(lambda x, key: score(x)),
        "sample": jax.jit(lambda x, key: sample(x.shape[0], key)),
        "dataset": jax.jit(dataset),
    }
