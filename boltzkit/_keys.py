"""Seeds and keys.

Every random stream in boltzkit starts from a typed threefry key. The
implementation is pinned so that a user's choice of default PRNG does not
change the numbers.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit._validation import is_traced

KEY_IMPL = "threefry2x32"
MAX_SEED = 2**32 - 1


def as_key(seed: Any, *, name: str = "seed") -> jax.Array:
    """Turn an int seed, a typed key or a raw ``uint32[2]`` key into a typed key.

    Args:
        seed: an integer in ``[0, 2**32)``, a scalar typed key such as
            ``jax.random.key(0)``, or a raw key such as ``jax.random.PRNGKey(0)``.
        name: the argument name used in error messages.

    Returns:
        A scalar typed key.
    """
    if isinstance(seed, bool | np.bool_):
        raise TypeError(f"{name} must be an int or a JAX key, got {seed!r}")

    if isinstance(seed, numbers.Integral):
        seed = int(seed)
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"{name} must be an int in [0, 2**32), got {seed}")
        return jax.random.key(seed, impl=KEY_IMPL)

    if isinstance(seed, jax.Array | np.ndarray):
        if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
            if seed.shape != ():
                raise ValueError(
                    f"{name} must be a single key of shape (), got a key array of shape "
                    f"{seed.shape}; pass one key, for example keys[0]"
                )
            return seed
        if seed.dtype == np.uint32 and seed.shape == (2,):
            return jax.random.wrap_key_data(seed, impl=KEY_IMPL)
        if seed.shape == () and jnp.issubdtype(seed.dtype, jnp.integer) and not is_traced(seed):
            return as_key(int(seed), name=name)
        raise TypeError(
            f"{name} must be an int, a typed key from jax.random.key or a raw uint32 key of "
            f"shape (2,) from jax.random.PRNGKey, got an array of dtype {seed.dtype} and "
            f"shape {seed.shape}"
        )

    raise TypeError(
        f"{name} must be an int or a JAX key, got {seed!r} of type {type(seed).__name__}"
    )
