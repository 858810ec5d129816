"""Tests of companion.plotting: the figures draw what they say, and bad input is refused."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from companion.montecarlo import running_mean
from companion.plotting import BOOK_STYLE, plot_intervals, plot_rate, plot_running_mean, use_book_style


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_use_book_style_sets_rcparams():
    use_book_style()
    for key, value in BOOK_STYLE.items():
        if key != "axes.prop_cycle":
            assert matplotlib.rcParams[key] == value or list(matplotlib.rcParams[key]) == list(value)


def test_plot_running_mean_draws_mean_band_and_exact(ax):
    values = torch.randn(500, dtype=torch.float64)
    out = plot_running_mean(ax, running_mean(values), exact=0.0)
    assert out is ax
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), running_mean(values).mean.numpy())
    assert len(ax.collections) == 1 and ax.get_xscale() == "log"
    assert ax.get_lines()[1].get_ydata()[0] == 0.0


def test_plot_rate_draws_points_and_theory(ax):
    n = np.array([10, 100, 1000])
    plot_rate(ax, n, 2.0 / np.sqrt(n), sigma=2.0)
    points, theory = ax.get_lines()
    np.testing.assert_allclose(theory.get_ydata(), 2.0 / np.sqrt(theory.get_xdata()))
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_plot_intervals_colours_by_coverage(ax):
    plot_intervals(ax, [0.0, 2.0, -1.0], [1.0, 3.0, 0.5], exact=0.5)
    labels = ax.get_legend_handles_labels()[1]
    assert "covers (2)" in labels and "misses (1)" in labels


def test_bad_input(ax):
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_rate("axes", [1, 2], [1, 2])
    with pytest.raises(ValueError, match="must both have shape"):
        plot_rate(ax, [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        plot_rate(ax, [0, 2], [1, 2])
    with pytest.raises(TypeError, match="running must be an Estimate"):
        plot_running_mean(ax, torch.zeros(3))
    with pytest.raises(ValueError, match="lower and upper"):
        plot_intervals(ax, [0.0], [1.0, 2.0], exact=0.0)


def test_plot_images_tiles_in_reading_order(ax):
    from companion.plotting import plot_images

    images = np.stack([np.full(6, v) for v in (0.2, 0.4, 0.6)])  # three 2x3 images
    plot_images(ax, images, (2, 3), ncols=2, pad=1)
    grid = ax.images[-1].get_array()
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1)
    np.testing.assert_allclose(grid[1:3, 1:4], 0.2)  # row 0, column 0
    np.testing.assert_allclose(grid[1:3, 5:8], 0.4)  # row 0, column 1
    np.testing.assert_allclose(grid[4:6, 1:4], 0.6)  # row 1, column 0
    assert grid[4:6, 5:8].max() == 0.0 and grid[0].max() == 0.0  # padding and the empty slot
    with pytest.raises(ValueError, match=r"images must have shape \(n, 6\)"):
        plot_images(ax, np.zeros((2, 5)), (2, 3))
    with pytest.raises(ValueError, match="image_shape"):
        plot_images(ax, images, (2, -3))
