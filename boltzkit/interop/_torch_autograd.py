"""PyTorch autograd Functions that evaluate a target in JAX.

Tensors cross between the libraries by DLPack. The public module
:mod:`boltzkit.interop.torch` checks the tensors before they arrive here, and
imports this module only once PyTorch is known to be installed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import torch


def tensor_to_jax(tensor: torch.Tensor) -> jax.Array:
    """Convert a strided CPU or CUDA tensor to a JAX array on the same device.

    JAX reads the tensor's memory in place when it can. On CPU that needs a
    data pointer aligned to 64 bytes (jax 0.10.2); JAX copies other tensors.
    """
    return jnp.from_dlpack(tensor.detach())


def jax_to_tensor(array: jax.Array) -> torch.Tensor:
    """Convert a JAX array to a tensor that shares its memory.

    The array is waited for first, so that the computation has finished
    reading its inputs when the tensor is returned.
    """
    array.block_until_ready()
    return torch.from_dlpack(array)


@jax.jit
def _log_prob(target, x):
    return target.log_prob(x)


@jax.jit
def _score(target, x):
    return target.score(x)


@jax.jit
def _log_prob_with_pullback(target, x):
    return jax.vjp(target.log_prob, x)


@jax.jit
def _score_with_pullback(target, x):
    return jax.vjp(target.score, x)


@jax.jit
def _apply_pullback(pullback, cotangent):
    (grad,) = pullback(cotangent)
    return grad


class LogProbFunction(torch.autograd.Function):
    """``target.log_prob(x)`` whose backward pass is JAX's vector-Jacobian product.

    When ``x`` requires grad, the forward pass runs ``jax.vjp`` and keeps its
    pullback, which contains JAX's residuals. Under ``create_graph=True`` the
    gradient is built from :class:`ScoreFunction` instead, so that second
    derivatives come from JAX's Hessian-vector product.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, target: Any) -> torch.Tensor:
        x_jax = tensor_to_jax(x)
        if ctx.needs_input_grad[0]:
            values, ctx.pullback = _log_prob_with_pullback(target, x_jax)
        else:
            values = _log_prob(target, x_jax)
        ctx.target = target
        # The residuals may share x's memory, so saving x makes PyTorch raise
        # if x is modified in place before the backward pass.
        ctx.save_for_backward(x)
        return jax_to_tensor(values)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the gradient grad_output * score(x) must itself
            # be differentiable with respect to both factors.
            scores = ScoreFunction.apply(x, ctx.target)
            grad_x = grad_output.unsqueeze(-1) * scores
            return grad_x.to(x.dtype), None
        cotangent = tensor_to_jax(grad_output.contiguous())
        return jax_to_tensor(_apply_pullback(ctx.pullback, cotangent)), None


class ScoreFunction(torch.autograd.Function):
    """``target.score(x)`` whose backward pass is JAX's Hessian-vector product.

    The backward pass is not differentiable itself: under
    ``create_graph=True`` its result is passed through
    :class:`ThirdDerivativeGuard`, so a third derivative of ``log_prob``
    raises instead of silently missing a term.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, target: Any) -> torch.Tensor:
        x_jax = tensor_to_jax(x)
        if ctx.needs_input_grad[0]:
            scores, ctx.pullback = _score_with_pullback(target, x_jax)
        else:
            scores = _score(target, x_jax)
        ctx.save_for_backward(x)
        return jax_to_tensor(scores)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        cotangent = tensor_to_jax(grad_output.detach().contiguous())
        grad_x = jax_to_tensor(_apply_pullback(ctx.pullback, cotangent))
        if torch.is_grad_enabled():
            grad_x = ThirdDerivativeGuard.apply(grad_x, x, grad_output)
        return grad_x, None


class ThirdDerivativeGuard(torch.autograd.Function):
    """Identity on a Hessian-vector product whose backward pass raises RuntimeError.

    Its inputs include the tensors the product depends on, so the result
    requires grad whenever a derivative through it would be needed.
    """

    @staticmethod
    def forward(ctx: Any, product: torch.Tensor, x: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
        del ctx, x, cotangent
        return product.view_as(product)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[None, None, None]:
        raise RuntimeError(
            "TorchTarget.score can be differentiated only once, so third derivatives of "
            "log_prob are not supported; compute them with jax.jacfwd on the JAX target"
        )
