"""Target distributions."""

from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

__all__ = ["DiagonalGaussianMixture"]
