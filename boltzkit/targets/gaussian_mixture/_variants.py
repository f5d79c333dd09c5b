"""The published variants of the GMM40 benchmark.

"GMM40" (40 equally weighted isotropic Gaussians in 2-D with means uniform in
``(-40, 40)``) names several different targets in the literature, because each
codebase draws its means with another random generator and some use another
standard deviation:

* ``"default"``: ``numpy.random.default_rng(seed).uniform(-40, 40, (40, 2))``
  in float64, std 1. The GMM40 of the earlier public package named boltzkit.
* ``"fab-torch"``: ``torch.manual_seed(0)`` then ``(torch.rand(40, 2) - 0.5) *
  80`` in float32, std ``softplus(1.0)``. Used by fab-torch (FAB, ICLR 2023)
  and DEM (iDEM, ICML 2024).
* ``"craft"``: the ``"fab-torch"`` means with std ``softplus(0.1)``, the CRAFT
  baseline compared in the FAB paper.
* ``"fab-jax"``: ``jax.random.uniform(PRNGKey(seed), (40, dim), minval=-1,
  maxval=1) * 40`` in float32 on the random stream of jax < 0.5
  (``jax_threefry_partitionable=False``), std 1. Used by fab-jax and "Beyond
  ELBOs" (ICML 2024) as published, and in 50-D by later papers.
* ``"fab-jax-current"``: the same expression on the default stream of
  jax >= 0.5, which gives other means.

The torch means cannot be recomputed without torch, so they ship as package
data. The legacy JAX means ship for the shapes (40, 2) and (40, 50) with seed
0. Other shapes and seeds are recomputed while JAX still offers the legacy
stream.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from importlib import resources
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit import _keys
from boltzkit._validation import check_int, check_real

# softplus(1.0) rounded to float32, which is what torch computes for the
# fab-torch scale. The CRAFT std is softplus(0.1) with the same rounding.
# NOTE: whether the CRAFT baseline stored softplus(0.1) in float32 or float64
# is unverified; the two values differ by 1.3e-8.
FAB_TORCH_STD = float(np.float32(math.log1p(math.e)))
CRAFT_STD = float(np.float32(math.log1p(math.exp(0.1))))

GMM40_VARIANTS: dict[str, str] = {
    "default": "NumPy default_rng(seed) means, std 1 (the earlier boltzkit package)",
    "fab-torch": "torch seed-0 means, std softplus(1.0) (fab-torch, iDEM)",
    "craft": "torch seed-0 means, std softplus(0.1) (the CRAFT baseline of the FAB paper)",
    "fab-jax": "JAX PRNGKey(seed) means on the jax < 0.5 stream, std 1 (fab-jax, Beyond ELBOs)",
    "fab-jax-current": "JAX PRNGKey(seed) means on the jax >= 0.5 stream, std 1",
}

_PUBLISHED = {"n_components": 40, "loc_scaling": 40.0, "seed": 0}
_DATA_FILE = "gmm40_means.json"


@functools.cache
def _stored_means() -> dict[str, np.ndarray]:
    """Load the shipped means, float32 values stored as decimal float64 numbers."""
    text = resources.files(__package__).joinpath("data", _DATA_FILE).read_text(encoding="utf-8")
    entries = json.loads(text)
    return {name: np.asarray(entry["means"], dtype=np.float64) for name, entry in entries.items()}


def stored_means(name: str) -> np.ndarray:
    """Return a copy of the shipped means called ``name`` as a float64 array.

    The names are ``"fab-torch"``, ``"fab-jax-dim2"`` and ``"fab-jax-dim50"``.
    Every value is a float32 number, widened to float64 without rounding.

    Example:
        >>> stored_means("fab-torch").shape
        (40, 2)
    """
    means = _stored_means()
    if name not in means:
        raise ValueError(f"name must be one of {', '.join(sorted(means))}, got {name!r}")
    return means[name].copy()


def jax_uniform_means(
    dim: int, n_components: int, loc_scaling: float, seed: int, *, legacy: bool
) -> np.ndarray:
    """Recompute ``jax.random.uniform(PRNGKey(seed), (n_components, dim), -1, 1) * loc_scaling``.

    The draw is made in float32 with the threefry key of ``seed``, whatever
    the x64 and default-PRNG settings are. ``legacy=True`` selects the random
    stream of jax < 0.5 (``jax_threefry_partitionable=False``) and
    ``legacy=False`` the default stream of jax >= 0.5.

    Raises:
        RuntimeError: if ``legacy=True`` and this version of JAX no longer
            has ``jax.threefry_partitionable``.

    Example:
        >>> jax_uniform_means(2, 40, 40.0, 0, legacy=False)[0].tolist()
        [35.81336212158203, 38.28639221191406]
    """
    if not hasattr(jax, "threefry_partitionable"):
        if legacy:
            raise RuntimeError(
                f"the jax < 0.5 random stream is needed for the means of shape "
                f"({n_components}, {dim}) with seed {seed}, but jax {jax.__version__} has no "
                "jax.threefry_partitionable; only the shipped shapes (40, 2) and (40, 50) "
                "with seed 0 and loc_scaling 40 are available"
            )
        setting = contextlib.nullcontext()
    else:
        setting = jax.threefry_partitionable(not legacy)
    key = _keys.as_key(seed)
    with setting:
        uniforms = jax.random.uniform(
            key, (n_components, dim), dtype=jnp.float32, minval=-1.0, maxval=1.0
        )
        means = uniforms * np.float32(loc_scaling)
    return np.asarray(means).astype(np.float64)


def _check_fixed(variant: str, **values: Any) -> None:
    """Reject settings that a variant with shipped means cannot reproduce."""
    for name, value in values.items():
        published = 2 if name == "dim" else _PUBLISHED[name]
        if value != published:
            raise ValueError(
                f"{name} must be {published} for variant {variant!r}, got {value}, because its "
                "means were drawn once with torch.manual_seed(0) in shape (40, 2) and ship as "
                "data. Use variant='default' or 'fab-jax' for other shapes and seeds"
            )


def gmm40_parameters(
    variant: str,
    dim: int,
    n_components: int,
    loc_scaling: float,
    scale: float | None,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Return the float64 means and the std of a GMM40 variant.

    Args:
        variant: a key of :data:`GMM40_VARIANTS`.
        dim: the dimension.
        n_components: the number of components.
        loc_scaling: the half-width of the box of the means.
        scale: the std of every component, or ``None`` for the variant's own.
        seed: the seed of the generator that draws the means.

    Example:
        >>> means, std = gmm40_parameters("craft", 2, 40, 40.0, None, 0)
        >>> means.shape, round(std, 7)
        ((40, 2), 0.7443967)
    """
    if not isinstance(variant, str):
        raise TypeError(
            f"variant must be a string, one of {', '.join(GMM40_VARIANTS)}, got {variant!r}"
        )
    if variant not in GMM40_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(GMM40_VARIANTS)}, got {variant!r}")
    dim = check_int("dim", dim, minimum=1)
    n_components = check_int("n_components", n_components, minimum=1)
    loc_scaling = check_real("loc_scaling", loc_scaling, positive=True)
    seed = check_int("seed", seed, minimum=0)
    if seed > _keys.MAX_SEED:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed}")
    if scale is not None:
        scale = check_real("scale", scale, positive=True)

    if variant == "default":
        rng = np.random.default_rng(seed)
        means = rng.uniform(-loc_scaling, loc_scaling, size=(n_components, dim))
        return means, 1.0 if scale is None else scale

    if variant in ("fab-torch", "craft"):
        _check_fixed(
            variant, dim=dim, n_components=n_components, loc_scaling=loc_scaling, seed=seed
        )
        default_std = FAB_TORCH_STD if variant == "fab-torch" else CRAFT_STD
        return stored_means("fab-torch"), default_std if scale is None else scale

    legacy = variant == "fab-jax"
    shipped = (n_components, loc_scaling, seed) == (40, 40.0, 0) and dim in (2, 50)
    if legacy and shipped:
        means = stored_means(f"fab-jax-dim{dim}")
    else:
        means = jax_uniform_means(dim, n_components, loc_scaling, seed, legacy=legacy)
    return means, 1.0 if scale is None else scale
