"""boltzkit: differentiable target distributions for training and benchmarking neural samplers.

Example:
    >>> from boltzkit.targets import DiagonalGaussianMixture
    >>> target = DiagonalGaussianMixture.create_gmm40()
    >>> target.sample(4, seed=0).shape
    (4, 2)
"""

from boltzkit import datasets, targets
from boltzkit._version import __version__
from boltzkit.datasets import Dataset

__all__ = ["Dataset", "__version__", "datasets", "targets"]
