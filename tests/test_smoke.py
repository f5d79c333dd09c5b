import numpy as np

from boltzkit.targets import DiagonalGaussianMixture
from tests._reference import assert_close, mixture_log_prob, mixture_score


def test_log_prob_and_score_match_reference():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(5, 3)) * 3
    stds = rng.uniform(0.5, 2.0, size=(5, 3))
    logits = rng.normal(size=5)
    x = rng.normal(size=(7, 3)) * 4
    target = DiagonalGaussianMixture(means, stds, logits)
    assert_close(target.log_prob(x), mixture_log_prob(means, stds, logits, x), rtol=1e-5, atol=1e-5)
    assert_close(target.score(x), mixture_score(means, stds, logits, x), rtol=1e-4, atol=1e-5)
