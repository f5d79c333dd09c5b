"""Plots render with the Agg backend, and their axes contain what they should."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from scipy.stats import norm

from boltzkit import plot
from boltzkit.targets import DiagonalGaussianMixture

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


def save_png(figure, path):
    figure.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 1000


def scatter_offsets(ax):
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(collections) == 1
    return np.asarray(collections[0].get_offsets())


def test_contours_with_samples(tmp_path, gmm40):
    samples = np.asarray(gmm40.sample(300, seed=0))
    ax = plot.plot_log_prob_contours(gmm40, samples, grid_size=60)
    assert ax.get_xlabel() == "x[0]"
    assert ax.get_ylabel() == "x[1]"
    np.testing.assert_allclose(scatter_offsets(ax), samples, rtol=1e-6)
    low = float(np.min(np.asarray(gmm40.means)[:, 0])) - 4.0
    assert ax.get_xlim()[0] == pytest.approx(low, rel=1e-5)
    save_png(ax.figure, tmp_path / "contours.png")


def test_contours_use_given_axes_and_max_points(gmm40):
    figure, ax = plt.subplots()
    returned = plot.plot_log_prob_contours(gmm40, gmm40.sample(50, seed=1), ax, grid_size=20, max_points=10)
    assert returned is ax
    assert scatter_offsets(ax).shape == (10, 2)
    assert len(figure.axes) == 1


def test_marginals_overlay_exact_density(tmp_path):
    target = DiagonalGaussianMixture([[0.0, 5.0], [3.0, -5.0]], [[1.0, 2.0], [0.5, 1.0]], [0.0, 1.0])
    samples = target.sample(2000, seed=2)
    axes = plot.plot_marginals(target, samples, grid_size=50)
    assert len(axes) == 2
    weights = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    for d, ax in enumerate(axes):
        lines = ax.get_lines()
        assert len(lines) == 1
        xs, ys = lines[0].get_data()
        expected = weights[0] * norm.pdf(xs, [0.0, 5.0][d], [1.0, 2.0][d]) + weights[1] * norm.pdf(
            xs, [3.0, -5.0][d], [0.5, 1.0][d]
        )
        np.testing.assert_allclose(ys, expected, rtol=1e-4, atol=1e-7)
        heights = np.array([patch.get_height() for patch in ax.patches])
        widths = np.array([patch.get_width() for patch in ax.patches])
        assert len(heights) == 50
        # A density histogram over the plotted range has area one when no sample falls outside.
        assert np.sum(heights * widths) == pytest.approx(1.0, rel=1e-6)
        assert ax.get_xlabel() == f"x[{d}]"
    save_png(axes[0].figure, tmp_path / "marginals.png")


def test_pair_grid_uses_exact_pair_marginals(tmp_path):
    target = DiagonalGaussianMixture.create_gmm40(dim=3)
    samples = target.sample(200, seed=3)
    axes = plot.plot_pair_grid(target, samples, grid_size=30, bins=20)
    assert axes.shape == (3, 3)
    assert not axes[0, 1].axison
    assert axes[2, 0].get_xlabel() == "x[0]"
    assert axes[2, 0].get_ylabel() == "x[2]"
    np.testing.assert_allclose(scatter_offsets(axes[2, 0]), np.asarray(samples)[:, [0, 2]], rtol=1e-6)
    assert len(axes[1, 1].get_lines()) == 1
    save_png(axes[0, 0].figure, tmp_path / "pairs.png")


def test_marginal_mixture_selects_columns():
    target = DiagonalGaussianMixture.create_gmm40(dim=4)
    marginal = plot.marginal_mixture(target, [3, 1])
    np.testing.assert_array_equal(np.asarray(marginal.means), np.asarray(target.means)[:, [3, 1]])
    np.testing.assert_array_equal(np.asarray(marginal.logits), np.asarray(target.logits))


def test_log_prob_histograms(tmp_path, gmm40):
    reference = gmm40.sample(500, seed=4)
    broad = DiagonalGaussianMixture(gmm40.means, gmm40.diag_stds * 3.0, gmm40.logits)
    ax = plot.plot_log_prob_histograms(gmm40, broad.sample(500, seed=5), reference, bins=25)
    assert len(ax.patches) == 50
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["target samples", "model samples"]
    assert ax.get_xlabel() == "target log density"
    save_png(ax.figure, tmp_path / "log_probs.png")


def test_plots_reject_bad_input(gmm40):
    with pytest.raises(ValueError, match=r"samples must have shape \(n_samples, 2\)"):
        plot.plot_log_prob_contours(gmm40, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dims must be coordinates below the target's dim 2"):
        plot.plot_marginals(gmm40, dims=[2])
    with pytest.raises(ValueError, match="dims must name two coordinates"):
        plot.plot_log_prob_contours(gmm40, dims=[0])
    with pytest.raises(TypeError, match="target must be a DiagonalGaussianMixture"):
        plot.plot_marginals(object())
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="one Axes per coordinate"):
        plot.plot_marginals(gmm40, axes=axes)
