"""PyTorch functions for boltzkit targets, with autograd through JAX.

:func:`to_torch` wraps a target in a :class:`TorchTarget` whose ``log_prob``,
``score`` and ``sample`` take and return ``torch.Tensor``. JAX computes every
value, and the backward pass runs JAX's vector-Jacobian product, so PyTorch
gradients equal JAX gradients. Tensors cross between the libraries by DLPack:

* Inputs: JAX reads a CPU tensor in place when its data pointer is aligned to
  64 bytes, and copies it otherwise (jax 0.10.2). Tensors that PyTorch
  allocates itself were aligned in every case checked with torch 2.13.0;
  tensors from ``torch.from_numpy`` and views at other offsets often are not.
* Outputs: a returned tensor shares the memory of the JAX array that contains
  the result, without a copy. The bridge keeps no other reference to that
  array, so writing into a returned tensor changes nothing else.
* Gradients flow to ``x`` only. The target's parameters are constants here.

This module imports without PyTorch, and :class:`TorchTarget` raises
``ImportError`` when PyTorch is missing. Install it with
``pip install "boltzkit[torch]"``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import jax

if TYPE_CHECKING:
    import torch

__all__ = ["TorchTarget", "to_torch"]

_TARGET_METHODS = ("log_prob", "score", "sample")


def _import_torch() -> tuple[ModuleType, ModuleType]:
    """Import PyTorch and the autograd Functions, or raise an ImportError that names the extra."""
    try:
        torch_module = importlib.import_module("torch")
    except ModuleNotFoundError as error:
        raise ImportError(
            "boltzkit.interop.torch requires PyTorch, which is not installed; install it with "
            'pip install "boltzkit[torch]"'
        ) from error
    autograd = importlib.import_module("boltzkit.interop._torch_autograd")
    return torch_module, autograd


class TorchTarget:
    """A target whose ``log_prob``, ``score`` and ``sample`` use ``torch.Tensor``.

    Points ``x`` must be strided, contiguous ``torch.float32`` or
    ``torch.float64`` tensors of shape ``(..., dim)`` on a device that JAX
    runs on. float64 also requires JAX's 64-bit mode
    (``jax.config.update("jax_enable_x64", True)``), because without it JAX
    would silently compute in float32. Results follow the target's dtype
    policy: they are float64 if the target or ``x`` is float64, and float32
    otherwise. Gradients have the dtype of ``x``.

    Args:
        target: a boltzkit target, such as a
            :class:`~boltzkit.targets.DiagonalGaussianMixture`.

    Raises:
        ImportError: if PyTorch is not installed.
        TypeError: if ``target`` lacks ``log_prob``, ``score``, ``sample``
            or ``dim``, or is not a JAX pytree.

    Example:
        >>> import torch
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = TorchTarget(DiagonalGaussianMixture.create_gmm40())
        >>> target.dim, target.dtype
        (2, torch.float32)
    """

    def __init__(self, target: Any) -> None:
        self._torch, self._autograd = _import_torch()
        missing = [name for name in _TARGET_METHODS if not callable(getattr(target, name, None))]
        if not isinstance(getattr(target, "dim", None), int):
            missing.append("dim")
        if missing:
            raise TypeError(
                "target must be a boltzkit target with methods log_prob, score and sample and an "
                f"int dim, got a {type(target).__name__} without {', '.join(missing)}"
            )
        # The target is an argument of jitted functions, so it must be a pytree of arrays.
        if jax.tree_util.treedef_is_leaf(jax.tree.structure(target)):
            raise TypeError(
                f"target must be registered as a JAX pytree, got a {type(target).__name__} that "
                "JAX treats as a single leaf; register it with "
                "jax.tree_util.register_pytree_node_class"
            )
        self._target = target

        # TorchDynamo cannot trace the DLPack exchange with JAX, so torch.compile
        # runs these eagerly, with a graph break around each call.
        compiler_disable = self._torch.compiler.disable
        self._log_prob_eager = compiler_disable(self._evaluate_log_prob)
        self._score_eager = compiler_disable(self._evaluate_score)
        self._sample_eager = compiler_disable(self._draw_samples)

    @property
    def target(self) -> Any:
        """The wrapped JAX target.

        Example:
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> gmm = DiagonalGaussianMixture.create_gmm40()
            >>> to_torch(gmm).target is gmm
            True
        """
        return self._target

    @property
    def dim(self) -> int:
        """The dimension ``D`` of the space.

        Example:
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> to_torch(DiagonalGaussianMixture.create_gmm40(dim=3)).dim
            3
        """
        return self._target.dim

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of the target's parameters and samples.

        Example:
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> to_torch(DiagonalGaussianMixture.create_gmm40()).dtype
            torch.float32
        """
        return getattr(self._torch, str(self._target.dtype))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the log-density at ``x`` of shape ``(..., dim)``, with shape ``(...)``.

        The result is differentiable with respect to ``x`` twice: first
        derivatives come from JAX's vector-Jacobian product of ``log_prob``
        and second derivatives from that of ``score``. A third derivative
        raises ``RuntimeError``.

        Raises:
            TypeError: if ``x`` is not a tensor, or its dtype is not float32
                or float64, or it is float64 while JAX's 64-bit mode is off.
            ValueError: if ``x`` is on a device JAX does not run on, is not
                contiguous, or its last axis is not ``dim`` long.

        Example:
            >>> import torch
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> target = to_torch(DiagonalGaussianMixture.create_isotropic([[0.0, 0.0]], std=1.0))
            >>> x = torch.tensor([[1.0, 0.0]], requires_grad=True)
            >>> value = target.log_prob(x)
            >>> value.backward(torch.ones_like(value))
            >>> round(value.item(), 4), x.grad.tolist()
            (-2.3379, [[-1.0, 0.0]])
        """
        return self._log_prob_eager(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the score, the gradient of ``log_prob`` with respect to ``x``, shaped like ``x``.

        The result is differentiable once with respect to ``x``: the backward
        pass runs JAX's Hessian-vector product. Differentiating that again
        raises ``RuntimeError``. Errors are those of :meth:`log_prob`.

        Example:
            >>> import torch
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> target = to_torch(DiagonalGaussianMixture.create_isotropic([[0.0, 0.0]], std=2.0))
            >>> target.score(torch.tensor([[4.0, -2.0]])).tolist()
            [[-1.0, 0.5]]
        """
        return self._score_eager(x)

    def sample(self, n_samples: int, *, seed: Any = 0) -> torch.Tensor:
        """Draw ``n_samples`` exact samples as a tensor of shape ``(n_samples, dim)``.

        The samples are those of ``target.sample(n_samples, seed=seed)``, in
        the target's dtype, on JAX's default device. ``seed`` is an int in
        ``[0, 2**32)`` or a JAX key.

        Example:
            >>> from boltzkit.targets import DiagonalGaussianMixture
            >>> target = to_torch(DiagonalGaussianMixture.create_gmm40())
            >>> samples = target.sample(16, seed=0)
            >>> samples.shape, samples.dtype, samples.requires_grad
            (torch.Size([16, 2]), torch.float32, False)
        """
        return self._sample_eager(n_samples, seed=seed)

    def _evaluate_log_prob(self, x: Any) -> torch.Tensor:
        self._check_points(x)
        return self._autograd.LogProbFunction.apply(x, self._target)

    def _evaluate_score(self, x: Any) -> torch.Tensor:
        self._check_points(x)
        return self._autograd.ScoreFunction.apply(x, self._target)

    def _draw_samples(self, n_samples: int, *, seed: Any) -> torch.Tensor:
        samples = self._target.sample(n_samples, seed=seed)
        return self._autograd.jax_to_tensor(samples)

    def _check_points(self, x: Any, name: str = "x") -> None:
        """Raise unless ``x`` is a tensor that JAX can read; the shape is checked by the target."""
        torch_module = self._torch
        if not isinstance(x, torch_module.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with "
                "torch.as_tensor, or call the JAX target for NumPy and JAX arrays"
            )
        if x.dtype not in (torch_module.float32, torch_module.float64):
            raise TypeError(
                f"{name} must have dtype torch.float32 or torch.float64, got {x.dtype}; "
                f"convert it with {name}.float() or {name}.double()"
            )
        if x.dtype == torch_module.float64 and not jax.config.jax_enable_x64:
            raise TypeError(
                f"{name} has dtype torch.float64 but JAX's 64-bit mode is disabled, so JAX "
                'would compute in float32; call jax.config.update("jax_enable_x64", True) at '
                f"startup, or pass {name}.float()"
            )
        if x.layout != torch_module.strided:
            raise ValueError(
                f"{name} must be a dense (strided) tensor, got layout {x.layout}; convert it "
                f"with {name}.to_dense()"
            )
        _check_device(x.device, name=name)
        if not x.is_contiguous():
            raise ValueError(
                f"{name} must be contiguous, got shape {tuple(x.shape)} with strides "
                f"{x.stride()}; pass {name}.contiguous()"
            )


def _check_device(device: torch.device, *, name: str = "x") -> None:
    """Raise ValueError unless JAX runs on the torch ``device``.

    CPU tensors are always accepted. CUDA tensors need a JAX GPU backend
    with at least ``device.index + 1`` devices.
    """
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ValueError(
            f"{name} is on device {device}, but only cpu and cuda tensors can be passed to "
            f"JAX; move it with {name}.cpu()"
        )
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        raise ValueError(
            f"{name} is on device {device}, but JAX has no GPU backend (its devices are "
            f"{jax.devices()}); move it with {name}.cpu(), or install jax with CUDA support"
        ) from None
    index = 0 if device.index is None else device.index
    if index >= len(gpus):
        raise ValueError(
            f"{name} is on device {device}, but JAX sees only {len(gpus)} GPU(s); "
            f"move it to a device JAX sees, for example {name}.to('cuda:0')"
        )


def to_torch(target: Any) -> TorchTarget:
    """Wrap a JAX target so that its ``log_prob``, ``score`` and ``sample`` use ``torch.Tensor``.

    Args:
        target: a boltzkit target.

    Returns:
        A :class:`TorchTarget`.

    Example:
        >>> import torch
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = to_torch(DiagonalGaussianMixture.create_gmm40())
        >>> x = target.sample(16, seed=0).requires_grad_()
        >>> loss = -target.log_prob(x).mean()
        >>> loss.backward()
        >>> x.grad.shape
        torch.Size([16, 2])
    """
    return TorchTarget(target)
