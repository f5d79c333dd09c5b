"""The documented Python example, run verbatim."""


def test_gaussian_mixture_snippet():
    import numpy as np

    from boltzkit.targets import DiagonalGaussianMixture

    means = np.array([[-2.0, -2.0], [2.0, 2.0]])
    diag_stds = np.array([[0.8, 0.8], [0.5, 0.9]])
    logits = np.array([0.4, 0.6])
    target = DiagonalGaussianMixture(means, diag_stds, logits)
    target = DiagonalGaussianMixture.create_isotropic(means=means, std=1.0, logits=logits)
    target = DiagonalGaussianMixture.create_isotropic_uniform(
        std=1.0, n_components=40, dim=2, mean_range=(-40.0, 40.0), seed=0)
    target = DiagonalGaussianMixture.create_gmm40()
    samples = target.sample(n_samples=1000, seed=0)
    dataset = target.load_dataset(type="val", length=1000)
    dataset = target.load_dataset(type="val", length=1000, include_log_probs=True, include_scores=True)

    # What the snippet produced.
    assert samples.shape == (1000, 2)
    assert dataset.samples.shape == (1000, 2)
    assert dataset.log_probs.shape == (1000,)
    assert dataset.scores.shape == (1000, 2)
    assert len(dataset) == 1000
