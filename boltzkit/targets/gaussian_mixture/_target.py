"""The diagonal Gaussian mixture target as a frozen dataclass and JAX pytree."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit import _keys, datasets
from boltzkit._validation import (
    as_float_array,
    check_indices,
    check_int,
    check_points,
    check_real,
    is_traced,
    wider_float,
)
from boltzkit.targets.gaussian_mixture import _functional, _moments, _variants

_log_prob = jax.jit(_functional.log_prob, static_argnames="method")
_score = jax.jit(_functional.score, static_argnames="method")
_log_prob_and_score = jax.jit(_functional.log_prob_and_score, static_argnames="method")


def _check_concrete_parameters(means, diag_stds, logits) -> None:
    """Check parameter values; skipped for tracers, whose values are unknown."""
    if not is_traced(means):
        bad = ~np.isfinite(np.asarray(means))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"means must be finite, got {np.asarray(means)[index]} at index {index}"
            )
    if not is_traced(diag_stds):
        stds = np.asarray(diag_stds)
        bad = ~(np.isfinite(stds) & (stds > 0))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"diag_stds must be finite and > 0, got {stds[index]} at index {index}; "
                "pass standard deviations, not variances or log-scales"
            )
        # XLA on the CPU flushes subnormal floats to zero, so such a std
        # would act as 0 and turn log_prob into NaN.
        smallest = np.finfo(stds.dtype).smallest_normal if stds.dtype.kind == "f" else 0.0
        subnormal = stds < smallest
        if subnormal.any():
            index = tuple(int(i) for i in np.argwhere(subnormal)[0])
            raise ValueError(
                f"diag_stds must be at least {smallest} (the smallest normal {stds.dtype} "
                f"number), got {stds[index]} at index {index}; rescale the problem or use float64"
            )
    if not is_traced(logits):
        values = np.asarray(logits)
        if np.isnan(values).any():
            raise ValueError(f"logits must not be NaN, got {values.tolist()}")
        if np.isposinf(values).any():
            raise ValueError(f"logits must not be +inf, got {values.tolist()}")
        if np.isneginf(values).all():
            raise ValueError(
                "logits must give at least one component a positive weight, "
                "but every logit is -inf"
            )


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class DiagonalGaussianMixture:
    r"""A mixture of Gaussians with diagonal covariances.

    The density is

    .. math::

        p(x) = \sum_{k=1}^{K} w_k \prod_{d=1}^{D}
        \mathcal{N}(x_d; \mu_{kd}, \sigma_{kd}^2),
        \qquad \log w = \operatorname{log\_softmax}(\text{logits}).

    A target is a frozen dataclass registered as a JAX pytree whose leaves are
    ``means``, ``diag_stds`` and ``logits``. It can be passed into jitted
    functions (a second target of the same shapes does not recompile),
    vmapped over as a stacked batch, and differentiated: ``jax.grad`` of a
    loss with respect to a target returns a target of gradients.

    The constructor checks the values it is given. JAX's own rebuilding of a
    target from its leaves, inside ``jit``, ``vmap`` or ``jax.tree.map``, skips
    the checks.

    Args:
        means: component means of shape ``(K, D)``.
        diag_stds: per-coordinate standard deviations of shape ``(K, D)``,
            finite and positive.
        logits: unnormalized log-weights of shape ``(K,)``. ``-inf`` gives a
            component weight zero; at least one logit must be finite. The
            default gives equal weights.

    Parameters may be NumPy arrays, JAX arrays or nested lists. They are
    stored as float32, or as float64 when x64 is enabled and float64 values
    are given; mixed float32 and float64 parameters are all stored in float64.

    Example:
        >>> import numpy as np
        >>> target = DiagonalGaussianMixture(
        ...     means=np.array([[-2.0, -2.0], [2.0, 2.0]]),
        ...     diag_stds=np.array([[0.8, 0.8], [0.5, 0.9]]),
        ...     logits=np.array([0.4, 0.6]))
        >>> target.n_components, target.dim
        (2, 2)
        >>> target.log_prob(np.zeros(2)).shape
        ()
    """

    means: jax.Array
    diag_stds: jax.Array
    logits: jax.Array

    def __init__(self, means: Any, diag_stds: Any, logits: Any = None) -> None:
        means = as_float_array("means", means)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(
                "means must have shape (n_components, dim) with both at least 1, got shape "
                f"{tuple(means.shape)}; pass a 2-D array, for example means[None] for one "
                "component"
            )
        n_components, dim = means.shape

        diag_stds = as_float_array("diag_stds", diag_stds)
        if diag_stds.shape != (n_components, dim):
            raise ValueError(
                f"diag_stds must have the shape of means, ({n_components}, {dim}), got shape "
                f"{tuple(diag_stds.shape)}; use create_isotropic for one std shared by all "
                "coordinates"
            )

        if logits is None:
            logits = jnp.zeros((n_components,), dtype=means.dtype)
        logits = as_float_array("logits", logits)
        if logits.shape != (n_components,):
            raise ValueError(
                f"logits must have shape (n_components,) = ({n_components},), got shape "
                f"{tuple(logits.shape)}"
            )

        _check_concrete_parameters(means, diag_stds, logits)

        dtype = wider_float(means.dtype, diag_stds.dtype, logits.dtype)
        object.__setattr__(self, "means", means.astype(dtype))
        object.__setattr__(self, "diag_stds", diag_stds.astype(dtype))
        object.__setattr__(self, "logits", logits.astype(dtype))

    def __repr__(self) -> str:
        batch = self.means.shape[:-2]
        batch_text = f", batch_shape={tuple(batch)}" if batch else ""
        return (
            f"DiagonalGaussianMixture(n_components={self.n_components}, dim={self.dim}, "
            f"dtype={self.means.dtype}{batch_text})"
        )

    # ----------------------------------------------------------------- pytree

    def tree_flatten(self):
        """Return the leaves ``(means, diag_stds, logits)`` and no auxiliary data.

        Example:
            >>> leaves, aux_data = DiagonalGaussianMixture.create_gmm40().tree_flatten()
            >>> [leaf.shape for leaf in leaves], aux_data
            ([(40, 2), (40, 2), (40,)], None)
        """
        return (self.means, self.diag_stds, self.logits), None

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        """Rebuild a target from its leaves without checking them, as JAX transforms do.

        Example:
            >>> target = DiagonalGaussianMixture.create_gmm40()
            >>> leaves, aux_data = target.tree_flatten()
            >>> DiagonalGaussianMixture.tree_unflatten(aux_data, leaves).n_components
            40
        """
        del aux_data
        target = object.__new__(cls)
        means, diag_stds, logits = children
        object.__setattr__(target, "means", means)
        object.__setattr__(target, "diag_stds", diag_stds)
        object.__setattr__(target, "logits", logits)
        return target

    # ------------------------------------------------------------- factories

    @classmethod
    def create_isotropic(
        cls, means: Any, std: Any = 1.0, logits: Any = None
    ) -> DiagonalGaussianMixture:
        """Create a mixture whose components share one std across coordinates.

        Args:
            means: component means of shape ``(K, D)``.
            std: a positive scalar shared by every component, or an array of
                shape ``(K,)`` with one std per component.
            logits: unnormalized log-weights of shape ``(K,)``; equal weights
                by default.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic(
            ...     means=[[0.0, 0.0], [4.0, 4.0]], std=0.5)
            >>> target.diag_stds.tolist()
            [[0.5, 0.5], [0.5, 0.5]]
        """
        means = as_float_array("means", means)
        if means.ndim != 2:
            raise ValueError(
                f"means must have shape (n_components, dim), got shape {tuple(means.shape)}"
            )
        std = as_float_array("std", std)
        if std.ndim == 0:
            diag_stds = jnp.broadcast_to(std, means.shape)
        elif std.shape == (means.shape[0],):
            diag_stds = jnp.broadcast_to(std[:, None], means.shape)
        else:
            raise ValueError(
                f"std must be a scalar or have shape (n_components,) = ({means.shape[0]},), "
                f"got shape {tuple(std.shape)}"
            )
        if not is_traced(std) and not np.all(np.isfinite(std) & (np.asarray(std) > 0)):
            raise ValueError(f"std must be finite and > 0, got {np.asarray(std).tolist()}")
        return cls(means, diag_stds, logits)

    @classmethod
    def create_isotropic_uniform(
        cls,
        std: float = 1.0,
        n_components: int = 40,
        dim: int = 2,
        mean_range: Sequence[float] = (-40.0, 40.0),
        seed: int = 0,
    ) -> DiagonalGaussianMixture:
        """Create an equally weighted isotropic mixture with uniformly drawn means.

        The means are ``numpy.random.default_rng(seed).uniform(low, high,
        size=(n_components, dim))`` with ``(low, high) = mean_range``, drawn
        in float64 and then stored by the dtype policy.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic_uniform(
            ...     std=1.0, n_components=3, dim=2, mean_range=(-1.0, 1.0), seed=0)
            >>> target.means.shape
            (3, 2)
        """
        std = check_real("std", std, positive=True)
        n_components = check_int("n_components", n_components, minimum=1)
        dim = check_int("dim", dim, minimum=1)
        low, high = _check_range("mean_range", mean_range)
        seed = check_int("seed", seed, minimum=0)

        means = np.random.default_rng(seed).uniform(low, high, size=(n_components, dim))
        return cls.create_isotropic(means=means, std=std)

    @classmethod
    def create_gmm40(
        cls,
        dim: int = 2,
        n_components: int = 40,
        loc_scaling: float = 40.0,
        scale: float | None = None,
        seed: int = 0,
        *,
        variant: str = "default",
    ) -> DiagonalGaussianMixture:
        """Create the GMM40 benchmark: 40 equally weighted isotropic Gaussians in 2-D.

        Papers use several different targets under this name: each codebase
        draws the 40 means with another generator and some use another std.
        ``variant`` selects one (see the "Which GMM40?" page):

        * ``"default"``: ``numpy.random.default_rng(seed).uniform(-loc_scaling,
          loc_scaling, (n_components, dim))``, std 1, the GMM40 of the earlier
          public package named boltzkit. This is :meth:`create_isotropic_uniform`.
        * ``"fab-torch"``: the torch seed-0 means of fab-torch and iDEM, std
          ``softplus(1.0)``. Only the published shape (40, 2) exists.
        * ``"craft"``: the same means with std ``softplus(0.1)``, the CRAFT
          baseline of the FAB paper.
        * ``"fab-jax"``: ``jax.random.uniform(PRNGKey(seed), (n_components,
          dim), -1, 1) * loc_scaling`` on the jax < 0.5 random stream, std 1,
          as published by fab-jax and "Beyond ELBOs"; ``dim=50`` gives the
          50-D version of later papers.
        * ``"fab-jax-current"``: the same expression on the jax >= 0.5 stream.

        Args:
            dim: the dimension.
            n_components: the number of components.
            loc_scaling: the means lie in ``(-loc_scaling, loc_scaling)``.
            scale: the std of every component; ``None`` takes the variant's.
            seed: the seed of the generator that draws the means.
            variant: one of the names above.

        Means that only another framework can draw ship with boltzkit as
        float32 numbers. Parameters are stored by the dtype policy of the
        constructor, so with x64 enabled they are float64 copies of those
        float32 numbers.

        Example:
            >>> target = DiagonalGaussianMixture.create_gmm40()
            >>> target.n_components, target.dim
            (40, 2)
            >>> fab = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
            >>> round(float(fab.diag_stds[0, 0]), 7)
            1.3132616
            >>> DiagonalGaussianMixture.create_gmm40(dim=50, variant="fab-jax").dim
            50
        """
        means, std = _variants.gmm40_parameters(
            variant, dim, n_components, loc_scaling, scale, seed
        )
        return cls.create_isotropic(means=means, std=std)

    # ------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        """The dimension ``D`` of the space.

        Example:
            >>> DiagonalGaussianMixture.create_gmm40(dim=3).dim
            3
        """
        return self.means.shape[-1]

    @property
    def n_components(self) -> int:
        """The number of components ``K``.

        Example:
            >>> DiagonalGaussianMixture.create_gmm40().n_components
            40
        """
        return self.means.shape[-2]

    @property
    def log_weights(self) -> jax.Array:
        """The normalized log-weights, ``log_softmax(logits)``, of shape ``(K,)``.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0], [1.0]], logits=[0.0, 0.0])
            >>> target.log_weights.tolist()
            [-0.6931..., -0.6931...]
        """
        return jax.nn.log_softmax(self.logits, axis=-1)

    @property
    def weights(self) -> jax.Array:
        """The component weights, ``softmax(logits)``, of shape ``(K,)``.

        Example:
            >>> import numpy as np
            >>> target = DiagonalGaussianMixture.create_isotropic(
            ...     [[0.0], [1.0]], logits=[0.0, -np.inf])
            >>> target.weights.tolist()
            [1.0, 0.0]
        """
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def logZ(self) -> float:
        """The log normalizing constant of :meth:`log_prob`: 0.0, the density is normalized.

        Example:
            >>> DiagonalGaussianMixture.create_gmm40().logZ
            0.0
        """
        return 0.0

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of the parameters.

        Example:
            >>> DiagonalGaussianMixture.create_gmm40().dtype
            dtype('float32')
        """
        return np.dtype(self.means.dtype)

    # -------------------------------------------------------------- density

    def log_prob(self, x: Any, *, method: str = "auto") -> jax.Array:
        """Return the log-density at ``x`` of shape ``(..., D)``, with shape ``(...)``.

        ``method`` is ``"auto"`` (the default), ``"direct"`` or ``"matmul"``,
        as described in ``boltzkit.targets.gaussian_mixture.functional.log_prob``;
        the same applies to :meth:`score` and :meth:`log_prob_and_score`.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=1.0)
            >>> float(target.log_prob([0.0]))
            -0.9189...
        """
        x = check_points(x, self.dim)
        method = _functional.check_method(method)
        return _log_prob(self.means, self.diag_stds, self.logits, x, method=method)

    def score(self, x: Any, *, method: str = "auto") -> jax.Array:
        """Return the gradient of :meth:`log_prob` with respect to ``x``, shaped like ``x``.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=2.0)
            >>> target.score([[4.0]]).tolist()
            [[-1.0]]
        """
        x = check_points(x, self.dim)
        method = _functional.check_method(method)
        return _score(self.means, self.diag_stds, self.logits, x, method=method)

    def log_prob_and_score(self, x: Any, *, method: str = "auto") -> tuple[jax.Array, jax.Array]:
        """Return :meth:`log_prob` and :meth:`score` at ``x``, computed in one pass.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=1.0)
            >>> value, grad = target.log_prob_and_score([[1.0]])
            >>> grad.tolist()
            [[-1.0]]
        """
        x = check_points(x, self.dim)
        method = _functional.check_method(method)
        return _log_prob_and_score(self.means, self.diag_stds, self.logits, x, method=method)

    def get_log_prob(self, x: Any) -> jax.Array:
        """Alias of :meth:`log_prob`, the name used by the earlier boltzkit package.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=1.0)
            >>> float(target.get_log_prob([0.0])) == float(target.log_prob([0.0]))
            True
        """
        return self.log_prob(x)

    def get_score(self, x: Any) -> jax.Array:
        """Alias of :meth:`score`, the name used by the earlier boltzkit package.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=1.0)
            >>> target.get_score([[1.0]]).tolist()
            [[-1.0]]
        """
        return self.score(x)

    def get_log_prob_and_score(self, x: Any) -> tuple[jax.Array, jax.Array]:
        """Alias of :meth:`log_prob_and_score`, the name used by the earlier boltzkit package.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0]], std=1.0)
            >>> target.get_log_prob_and_score([[1.0]])[1].tolist()
            [[-1.0]]
        """
        return self.log_prob_and_score(x)

    # ------------------------------------------------------------- sampling

    def sample_at(self, key: Any, indices: Any) -> jax.Array:
        """Draw the samples at ``indices`` of the stream that starts from ``key``.

        Sample ``i`` depends only on ``jax.random.fold_in(key, i)``. This is
        the building block of :meth:`sample` and :meth:`load_dataset`; it
        traces under ``jit`` with traced indices.

        Args:
            key: an int seed or a JAX key.
            indices: integer indices of any shape.

        Returns:
            An array of shape ``indices.shape + (D,)``.

        Example:
            >>> target = DiagonalGaussianMixture.create_gmm40()
            >>> bool((target.sample_at(0, [3, 4]) == target.sample(5, seed=0)[3:]).all())
            True
        """
        key = _keys.as_key(key, name="key")
        indices = check_indices("indices", indices, maximum=datasets.MAX_STREAM_LENGTH - 1)
        flat = indices.reshape(-1).astype(jnp.uint32)
        samples = _sample_indices(self, key, flat)
        return samples.reshape((*indices.shape, self.dim))

    def sample(self, n_samples: int, *, seed: Any = 0) -> jax.Array:
        """Draw ``n_samples`` exact samples.

        Sample ``i`` depends only on ``jax.random.fold_in(key, i)``, so
        ``sample(n)[:m]`` equals ``sample(m)`` exactly for ``m <= n``.

        Args:
            n_samples: the number of samples, a non-negative int.
            seed: an int in ``[0, 2**32)`` or a JAX key, typed
                (``jax.random.key``) or raw (``jax.random.PRNGKey``).

        Returns:
            An array of shape ``(n_samples, D)``.

        Example:
            >>> target = DiagonalGaussianMixture.create_gmm40()
            >>> target.sample(n_samples=1000, seed=0).shape
            (1000, 2)
        """
        n_samples = check_int("n_samples", n_samples, minimum=0)
        if n_samples > datasets.MAX_STREAM_LENGTH:
            raise ValueError(
                f"n_samples must be at most 2**32 - 1 = {datasets.MAX_STREAM_LENGTH}, got {n_samples}"
            )
        key = _keys.as_key(seed)
        return datasets.generate(self, key, 0, n_samples, include_samples=True).samples

    def load_dataset(
        self,
        type: str,
        length: int,
        include_samples: bool = True,
        include_log_probs: bool = False,
        include_scores: bool = False,
        *,
        seed: Any = 0,
        offset: int = 0,
    ) -> datasets.Dataset:
        """Return items ``[offset, offset + length)`` of a reproducible dataset split.

        Each split (``"train"``, ``"val"``, ``"test"``) is an infinite,
        deterministic stream of exact samples with its own key, so the
        splits are independent, the first ``length`` items never change when
        ``length`` grows, and any window is computed in time proportional to
        its length. Nothing is cached and no file is written. The stream
        definition is given in the documentation and pinned by tests.

        Args:
            type: ``"train"``, ``"val"`` or ``"test"``.
            length: the number of items, a non-negative int.
            include_samples: whether to return the samples.
            include_log_probs: whether to return ``log_prob`` of each sample.
            include_scores: whether to return ``score`` of each sample.
            seed: an int in ``[0, 2**32)`` or a JAX key that selects the family
                of streams.
            offset: the index of the first item.

        Returns:
            A :class:`boltzkit.datasets.Dataset`.

        Example:
            >>> target = DiagonalGaussianMixture.create_gmm40()
            >>> dataset = target.load_dataset(type="val", length=1000, include_log_probs=True)
            >>> len(dataset), dataset.samples.shape, dataset.log_probs.shape
            (1000, (1000, 2), (1000,))
        """
        key = datasets.split_key(type, seed)
        length = check_int("length", length, minimum=0)
        offset = check_int("offset", offset, minimum=0)
        datasets.check_window(offset, length)
        return datasets.generate(
            self,
            key,
            offset,
            length,
            include_samples=include_samples,
            include_log_probs=include_log_probs,
            include_scores=include_scores,
        )

    # ---------------------------------------------------------------- files

    def to_dict(self) -> dict[str, np.ndarray]:
        """Return the parameters as NumPy arrays under ``means``, ``diag_stds`` and ``logits``.

        Example:
            >>> sorted(DiagonalGaussianMixture.create_gmm40().to_dict())
            ['diag_stds', 'logits', 'means']
        """
        return {
            "means": np.asarray(self.means),
            "diag_stds": np.asarray(self.diag_stds),
            "logits": np.asarray(self.logits),
        }

    # --------------------------------------------------- exact ground truth

    def mean(self) -> Any:
        """Return the exact mean ``E[x]`` of shape ``(D,)``.

        Computed in float64 with NumPy from the stored parameters, whatever
        the x64 setting. Under ``jit``, JAX computes it in the parameters'
        dtype instead.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[0.0, 2.0], [4.0, 6.0]])
            >>> target.mean()
            array([2., 4.])
        """
        return _moments.mixture_mean(self.means, self.diag_stds, self.logits)

    def second_moment(self) -> Any:
        """Return the exact second moment ``E[x x^T]`` of shape ``(D, D)``.

        Computed like :meth:`mean`.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[1.0, 0.0]], std=2.0)
            >>> target.second_moment()
            array([[5., 0.],
                   [0., 4.]])
        """
        return _moments.mixture_second_moment(self.means, self.diag_stds, self.logits)

    def covariance(self) -> Any:
        """Return the exact covariance ``Cov[x]`` of shape ``(D, D)``.

        Computed like :meth:`mean`, around the mean so that far-away modes
        lose no precision.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[-1.0], [1.0]], std=0.5)
            >>> target.covariance()
            array([[1.25]])
        """
        return _moments.mixture_covariance(self.means, self.diag_stds, self.logits)

    def quadratic_expectation(self, A: Any, b: Any = None, s: Any = None) -> Any:
        r"""Return the exact ``E[(x + s)^T A (x + s) + b^T (x + s)]``.

        The closed form is :math:`\sum_k w_k ((\mu_k + s)^T A (\mu_k + s) +
        \operatorname{tr}(A \Sigma_k) + b^T (\mu_k + s))`, computed like
        :meth:`mean`. fab-torch uses this expectation with fixed ``A``, ``b``
        and ``s`` as a ground-truth check of importance-weighted estimates.

        Args:
            A: a ``(D, D)`` matrix, not necessarily symmetric.
            b: a ``(D,)`` vector; zero by default.
            s: a ``(D,)`` shift; zero by default.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[1.0]], std=2.0)
            >>> float(target.quadratic_expectation(A=[[1.0]], b=[3.0], s=[1.0]))
            14.0
        """
        return _moments.quadratic_expectation(
            self.means, self.diag_stds, self.logits, A=A, b=b, s=s
        )

    def responsibilities(self, x: Any) -> jax.Array:
        """Return the component probabilities ``p(k | x)`` at ``x`` of shape ``(..., D)``.

        The result has shape ``(..., K)`` and every row sums to one. It is
        computed with JAX in the wider float dtype of the target and ``x``.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[-1.0], [1.0]])
            >>> target.responsibilities([[0.0]]).tolist()
            [[0.5, 0.5]]
        """
        x = check_points(x, self.dim)
        return _responsibilities(self.means, self.diag_stds, self.logits, x)

    def marginal(self, dims: Any) -> DiagonalGaussianMixture:
        """Return the marginal distribution of the coordinates ``dims``, a diagonal mixture.

        Args:
            dims: an int or a sequence of distinct ints. Negative values
                count from the end. The marginal's coordinates follow this order.

        Example:
            >>> target = DiagonalGaussianMixture.create_isotropic([[1.0, 2.0, 3.0]])
            >>> target.marginal([2, 0]).means.tolist()
            [[3.0, 1.0]]
        """
        parameters = _moments.marginal_parameters(self.means, self.diag_stds, self.logits, dims)
        return type(self)(*parameters)

    def rescale(self, c: Any) -> DiagonalGaussianMixture:
        """Return the distribution of ``x / c`` for ``x`` drawn from this target.

        The means and standard deviations are divided by ``c``, a positive
        scalar or a ``(D,)`` vector, and the weights are unchanged. The
        log-densities satisfy ``rescaled.log_prob(x / c) = self.log_prob(x) +
        D * log(c)`` (``sum(log(c))`` for a vector). iDEM trains GMM40 in
        coordinates divided by 50: ``target.rescale(50.0)`` is that
        distribution, normalized.

        Example:
            >>> import math
            >>> target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
            >>> small = target.rescale(50.0)
            >>> x = target.sample(3, seed=0)
            >>> shift = small.log_prob(x / 50.0) - target.log_prob(x)
            >>> bool(abs(shift - 2 * math.log(50.0)).max() < 1e-4)
            True
        """
        parameters = _moments.rescale_parameters(self.means, self.diag_stds, self.logits, c)
        return type(self)(*parameters)


def _check_range(name: str, value: Any) -> tuple[float, float]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}") from None
    low = check_real(f"{name}[0]", low)
    high = check_real(f"{name}[1]", high)
    if not low < high:
        raise ValueError(f"{name} must satisfy low < high, got ({low}, {high})")
    return low, high


_responsibilities = jax.jit(_moments.responsibilities)


@jax.jit
def _sample_indices(target, key, indices):
    return _functional.sample_indices(target.means, target.diag_stds, target.logits, key, indices)
