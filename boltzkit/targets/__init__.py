"""Target distributions, built-in targets by name, and parameter files."""

from boltzkit.targets._builtin import BUILTIN_TARGETS
from boltzkit.targets._files import load_target, save_target
from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

__all__ = ["BUILTIN_TARGETS", "DiagonalGaussianMixture", "load_target", "save_target"]
