"""Tests of companion.plotting: the figures draw what they say, and bad input is refused."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from companion.montecarlo import Estimate, running_mean
from companion.plotting import (
    BOOK_STYLE,
    plot_intervals,
    plot_rate,
    plot_running_mean,
    use_book_style,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_use_book_style_sets_rcparams():
    use_book_style()
    for key, value in BOOK_STYLE.items():
        if key != "axes.prop_cycle":
            current = matplotlib.rcParams[key]
            assert current == value or list(current) == list(value)


def test_plot_running_mean_draws_mean_band_and_exact(ax):
    values = torch.randn(500, dtype=torch.float64)
    out = plot_running_mean(ax, running_mean(values), exact=0.0)
    assert out is ax
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), running_mean(values).mean.numpy())
    assert len(ax.collections) == 1 and ax.get_xscale() == "log"
    assert ax.get_lines()[1].get_ydata()[0] == 0.0


def test_every_recurring_plot_labels_both_axes(ax):
    """Symbol and axis agree: a running mean after n samples is drawn against n."""
    import matplotlib.pyplot as plt

    plot_running_mean(ax, running_mean(torch.randn(50, dtype=torch.float64)), exact=0.0)
    assert ax.get_xlabel() == "number of samples $n$"
    assert ax.get_ylabel() == r"running mean $\hat\mu_n$"
    for draw in (
        lambda a: plot_rate(a, [10, 100], [0.3, 0.1], sigma=1.0),
        lambda a: plot_intervals(a, [0.0, 2.0], [1.0, 3.0], exact=0.5),
    ):
        fig, other = plt.subplots()
        draw(other)
        assert other.get_xlabel() and other.get_ylabel()
        plt.close(fig)


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


# ---------------------------------------------------------------- adversarial input


def assert_untouched(ax):
    """Nothing drawn and nothing set: a failed call leaves the caller's axes as they were."""
    assert not ax.lines and not ax.collections and not ax.patches and not ax.images
    assert not ax.texts and ax.get_legend() is None
    assert ax.get_xscale() == ax.get_yscale() == "linear"
    assert ax.get_xlabel() == ax.get_ylabel() == ""


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (([1, 2], [1.0, NAN]), {}, ValueError, "errors must be finite"),
        (([1, INF], [1.0, 2.0]), {}, ValueError, "num_samples must be finite"),
        (([1, 2], [1.0, 2.0]), {"sigma": -1.0}, ValueError, "sigma must be > 0, got -1.0"),
        (([1, 2], [1.0, 2.0]), {"sigma": 0.0}, ValueError, "sigma must be > 0"),
        (([1, 2], [1.0, 2.0]), {"sigma": "abc"}, TypeError, "sigma must be a real number, got str"),
        (([1, 2], [1.0, 2.0]), {"sigma": NAN}, ValueError, "sigma must be finite"),
        (([1, 2], [1.0, 2.0]), {"sigma": True}, TypeError, "sigma must be a real number, got bool"),
        (([1, 2], [1.0, 2.0]), {"label": 3}, TypeError, "label must be a string, got int"),
        (([1, 2], [1.0, -2.0]), {}, ValueError, "errors must be positive"),
        (([], []), {}, ValueError, "at least one point"),
        (([[1, 2]], [[1.0, 2.0]]), {}, ValueError, r"must both have shape \(K,\)"),
        (([True, True], [1.0, 2.0]), {}, TypeError, "num_samples must be a number, array"),
        (((n for n in [1, 2]), [1.0, 2.0]), {}, TypeError, "num_samples must be a number"),
    ],
)
def test_plot_rate_refuses_bad_input_before_drawing(ax, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_rate(ax, *args, **kwargs)
    assert_untouched(ax)


@pytest.mark.parametrize(
    "lower, upper, exact, kwargs, error, match",
    [
        (
            [0.0, 2.0],
            [1.0, 1.0],
            0.5,
            {},
            ValueError,
            r"lower must be <= upper, got lower\[1\] = 2.0",
        ),
        ([0.0, NAN], [1.0, 3.0], 0.5, {}, ValueError, "lower must be finite"),
        ([0.0, 1.0], [1.0, INF], 0.5, {}, ValueError, "upper must be finite"),
        ([0.0], [1.0], NAN, {}, ValueError, "exact must be finite"),
        ([0.0], [1.0], "0.5", {}, TypeError, "exact must be a real number, got str"),
        ([0.0], [1.0], [0.5, 0.6], {}, TypeError, "exact must be a real number"),
        ([], [], 0.5, {}, ValueError, "at least one interval"),
        ([0.0], [1.0], 0.5, {"max_shown": 0}, ValueError, "max_shown must be an integer >= 1"),
        ([0.0], [1.0], 0.5, {"max_shown": 2.5}, TypeError, "max_shown must be an integer >= 1"),
    ],
)
def test_plot_intervals_refuses_bad_input_before_drawing(
    ax, lower, upper, exact, kwargs, error, match
):
    with pytest.raises(error, match=match):
        plot_intervals(ax, lower, upper, exact, **kwargs)
    assert_untouched(ax)


def test_plot_intervals_accepts_a_tensor_exact_value(ax):
    plot_intervals(ax, torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0]), torch.tensor(0.5))
    assert "covers (1)" in ax.get_legend_handles_labels()[1]


def test_plot_running_mean_refuses_bad_input_before_drawing(ax):
    values = torch.randn(50, dtype=torch.float64)
    good = running_mean(values)
    bad_mean = Estimate(
        mean=torch.tensor([0.0, NAN]), stderr=torch.tensor([NAN, 1.0]), samples=torch.zeros(2)
    )
    bad_stderr = Estimate(
        mean=torch.zeros(3), stderr=torch.tensor([NAN, 1.0, -1.0]), samples=torch.zeros(3)
    )
    cases = [
        (dict(running=good, exact=NAN), ValueError, "exact must be finite"),
        (dict(running=good, exact="zero"), TypeError, "exact must be a real number"),
        (dict(running=good, label=None), TypeError, "label must be a string"),
        (dict(running=good, level=1.5), ValueError, "level must be in"),
        (dict(running=good, level=True), TypeError, "level must be a number"),
        (dict(running=bad_mean), ValueError, "running.mean must be finite"),
        (dict(running=bad_stderr), ValueError, "running.stderr must be >= 0"),
        (
            dict(running=Estimate(torch.zeros(0), torch.zeros(0), torch.zeros(0))),
            ValueError,
            "at least one point",
        ),
        (dict(running=running_mean(values[:, None])), TypeError, "running must be an Estimate"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plot_running_mean(ax, **kwargs)
        assert_untouched(ax)


def test_plot_images_refuses_bad_input_before_drawing(ax):
    from companion.plotting import plot_images

    images = np.full((3, 6), 0.5)
    cases = [
        ((np.full((3, 6), NAN), (2, 3)), {}, ValueError, "images must be finite"),
        ((images * 3, (2, 3)), {}, ValueError, r"images must hold values in \[0, 1\]"),
        ((np.zeros((0, 6)), (2, 3)), {}, ValueError, "at least one image"),
        ((images, (True, 6)), {}, ValueError, "image_shape must be"),
        ((images, "2x3"), {}, TypeError, "image_shape must be a tuple"),
        ((images, (2, 3)), {"ncols": 0}, ValueError, "ncols must be an integer >= 1"),
        ((images, (2, 3)), {"ncols": True}, TypeError, "ncols must be an integer"),
        ((images, (2, 3)), {"pad": -1}, ValueError, "pad must be an integer >= 0"),
        ((images, (2, 3)), {"ncols": 10**12}, ValueError, "ncols=1000000000000 would need"),
        ((images, (2, 3)), {"pad": 10**7}, ValueError, "pad=10000000 would need"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plot_images(ax, *args, **kwargs)
        assert_untouched(ax)
    plot_images(ax, images, (np.int64(2), np.int64(3)))  # NumPy integers are integers
    assert ax.images[-1].get_array().shape == (4, 41)
