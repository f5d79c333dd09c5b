"""Mixtures of Gaussians with diagonal covariances, including the GMM40 benchmark."""

from boltzkit.targets.gaussian_mixture import _functional as functional
from boltzkit.targets.gaussian_mixture._target import DiagonalGaussianMixture
from boltzkit.targets.gaussian_mixture._variants import GMM40_VARIANTS

__all__ = ["GMM40_VARIANTS", "DiagonalGaussianMixture", "functional"]
