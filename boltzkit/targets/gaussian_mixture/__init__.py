"""Mixtures of Gaussians with diagonal covariances, including the GMM40 benchmark."""

from boltzkit.targets.gaussian_mixture import _functional as functional
from boltzkit.targets.gaussian_mixture._target import DiagonalGaussianMixture

__all__ = ["DiagonalGaussianMixture", "functional"]
