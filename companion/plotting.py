"""The book's figure style and the plots that recur across chapters.

Call :func:`use_book_style` once per notebook. Plot functions draw on a Matplotlib ``Axes``
that the caller owns and return it, so figures compose (``fig, axes = plt.subplots(1, 2)``).
Every argument is checked before anything is drawn: bad input (NaN or inf, non-positive
values on a log axis, shapes that disagree, a label that is not text) raises ``ValueError``
or ``TypeError`` naming the argument and leaves the axes untouched.
"""

from __future__ import annotations

import numbers

import matplotlib as mpl
import numpy as np
import torch

from ._validation import (
    as_tensor,
    check_allocation,
    check_finite,
    check_positive_int,
    check_probability,
    check_real,
    describe,
    is_boolean,
)
from .montecarlo import Estimate

__all__ = [
    "COLORS",
    "BOOK_STYLE",
    "use_book_style",
    "plot_running_mean",
    "plot_rate",
    "plot_intervals",
    "plot_images",
]


COLORS = {
    "estimate": "#1f5f9f",  # blue: Monte Carlo estimates
    "exact": "#222222",  # near-black: exact values and theory
    "band": "#8fb8de",  # light blue: standard-error bands
    "good": "#2e8b57",  # green: an interval that covers the truth
    "bad": "#c0392b",  # red: one that misses
    "accent": "#e67e22",  # orange: a second estimator
}
"""Named colours, so the same idea has the same colour in every chapter."""

BOOK_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "axes.prop_cycle": mpl.cycler(
        color=[COLORS["estimate"], COLORS["accent"], COLORS["good"], COLORS["bad"], "#7f3c8d"]
    ),
}
"""Matplotlib rcParams of the book's figures."""


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to Matplotlib's global rcParams."""
    mpl.rcParams.update(BOOK_STYLE)


def _axes(ax):
    if not isinstance(ax, mpl.axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {describe(ax)}")
    return ax


def _numpy(name, value) -> np.ndarray:
    """A finite float64 NumPy array of real values (booleans refused), or raise naming ``name``."""
    if is_boolean(value):
        raise TypeError(
            f"{name} must be a number, array or tensor of real values, got {describe(value)}"
        )
    return check_finite(name, as_tensor(name, value, dtype=torch.float64)).cpu().numpy()


def _label(label) -> str:
    if not isinstance(label, str):
        raise TypeError(f"label must be a string, got {describe(label)}")
    return label


def plot_running_mean(
    ax, running: Estimate, exact=None, *, label: str = "running mean", level: float = 0.95
):
    """Plot a running mean against n with its confidence band, and the exact value.

    The axes are labelled "number of samples n" (log scale) and "running mean μ̂_n", the
    symbols of Chapter 1's running mean; set another y label with ``ax.set_ylabel``.

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        running: the output of :func:`companion.montecarlo.running_mean` for a scalar
            quantity: ``mean`` and ``stderr`` shaped ``(N,)``, N >= 1, finite (the
            standard error of the first point, undefined, is not drawn).
        exact: the true value, a finite real number drawn as a horizontal line, or None.
        label: legend label of the running mean, a string.
        level: coverage of the band ``mean -+ z * stderr``, in (0, 1).

    Returns:
        ``ax``.
    """
    ax = _axes(ax)
    if (
        not isinstance(running, Estimate)
        or not isinstance(running.mean, torch.Tensor)
        or not isinstance(running.stderr, torch.Tensor)
        or running.mean.dim() != 1
        or running.stderr.shape != running.mean.shape
    ):
        raise TypeError(
            f"running must be an Estimate from running_mean with mean and stderr shaped (N,), "
            f"got {describe(running)}"
        )
    if running.mean.shape[0] == 0:
        raise ValueError("running must hold at least one point, got an empty running mean")
    mean = _numpy("running.mean", running.mean)
    stderr = _numpy("running.stderr", running.stderr[1:])  # stderr of one sample: undefined
    if (stderr < 0).any():
        raise ValueError(f"running.stderr must be >= 0, got minimum {stderr.min()}")
    exact = None if exact is None else check_real("exact", exact)
    label = _label(label)
    level = check_probability("level", level)
    n = np.arange(1, mean.shape[0] + 1)
    lower, upper = running.confidence_interval(level)
    lower = _numpy("lower", lower.nan_to_num())
    upper = _numpy("upper", upper.nan_to_num())
    # Everything is checked: draw.
    ax.fill_between(
        n, lower, upper, where=n > 1, color=COLORS["band"], alpha=0.5, label=f"{level:.0%} interval"
    )
    ax.plot(n, mean, color=COLORS["estimate"], lw=1.2, label=label)
    if exact is not None:
        ax.axhline(exact, color=COLORS["exact"], ls="--", lw=1, label="exact")
    ax.set_xscale("log")
    ax.set_xlabel("number of samples $n$")
    ax.set_ylabel(r"running mean $\hat\mu_n$")
    ax.legend()
    return ax


def plot_rate(ax, num_samples, errors, sigma=None, *, label: str = "measured"):
    """Log-log plot of an error measure against N, with the theory line sigma_f / sqrt(N).

    The axes are labelled "number of samples N" and "error"; set a more specific y label
    with ``ax.set_ylabel``.

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        num_samples: the sample sizes, shape ``(K,)``, K >= 1, finite and positive.
        errors: the measured errors at those sizes (e.g. the spread of estimates across
            repetitions), shape ``(K,)``, finite and positive.
        sigma: sigma_f, the standard deviation of a single sample f(x), a finite number
            > 0; draws sigma_f / sqrt(N) if given.
        label: legend label of the measured points, a string.

    Returns:
        ``ax``.
    """
    ax = _axes(ax)
    n = _numpy("num_samples", num_samples)
    e = _numpy("errors", errors)
    if n.ndim != 1 or e.shape != n.shape:
        raise ValueError(
            f"num_samples and errors must both have shape (K,), got {n.shape} and {e.shape}"
        )
    if n.shape[0] == 0:
        raise ValueError("num_samples and errors must hold at least one point, got shape (0,)")
    if (n <= 0).any():
        raise ValueError(f"num_samples must be positive for a log-log plot, got minimum {n.min()}")
    if (e <= 0).any():
        raise ValueError(f"errors must be positive for a log-log plot, got minimum {e.min()}")
    sigma = None if sigma is None else check_real("sigma", sigma, positive=True)
    label = _label(label)
    # Everything is checked: draw.
    ax.loglog(n, e, "o", color=COLORS["estimate"], label=label)
    if sigma is not None:
        grid = np.geomspace(n.min(), n.max(), 100)
        ax.loglog(
            grid, sigma / np.sqrt(grid), "--", color=COLORS["exact"], label=r"$\sigma_f/\sqrt{N}$"
        )
    ax.set_xlabel("number of samples $N$")
    ax.set_ylabel("error")
    ax.legend()
    return ax


def plot_intervals(ax, lower, upper, exact, *, max_shown: int = 100):
    """Draw confidence intervals as vertical bars, green when they cover ``exact``.

    The axes are labelled "repetition" and "interval"; name the estimated quantity with
    ``ax.set_ylabel``.

    Interval r covers when lower_r <= exact <= upper_r; the legend counts the covering and
    missing intervals among those shown.

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        lower, upper: interval ends from repeated experiments, shape ``(R,)``, R >= 1,
            finite, with lower <= upper.
        exact: the true value, a finite real number.
        max_shown: draw only the first ``max_shown`` intervals (an integer >= 1), to keep
            the figure legible.

    Returns:
        ``ax``.
    """
    ax = _axes(ax)
    lo, hi = _numpy("lower", lower), _numpy("upper", upper)
    if lo.ndim != 1 or hi.shape != lo.shape:
        raise ValueError(
            f"lower and upper must both have shape (R,), got {lo.shape} and {hi.shape}"
        )
    if lo.shape[0] == 0:
        raise ValueError("lower and upper must hold at least one interval, got shape (0,)")
    if (lo > hi).any():
        r = int(np.argmax(lo > hi))
        raise ValueError(f"lower must be <= upper, got lower[{r}] = {lo[r]} > upper[{r}] = {hi[r]}")
    exact = check_real("exact", exact)
    max_shown = check_positive_int("max_shown", max_shown)
    lo, hi = lo[:max_shown], hi[:max_shown]
    covers = (lo <= exact) & (exact <= hi)
    index = np.arange(len(lo))
    # Everything is checked: draw.
    for mask, key, text in ((covers, "good", "covers"), (~covers, "bad", "misses")):
        ax.vlines(
            index[mask],
            lo[mask],
            hi[mask],
            color=COLORS[key],
            lw=1.5,
            label=f"{text} ({mask.sum()})",
        )
    ax.axhline(exact, color=COLORS["exact"], ls="--", lw=1, label="exact")
    ax.set_xlabel("repetition")
    ax.set_ylabel("interval")
    ax.legend(loc="upper right")
    return ax


def plot_images(ax, images, image_shape, *, ncols: int = 10, pad: int = 1):
    """Tile flattened images into one grey-scale picture (white = 1), e.g. digits or samples.

    Args:
        ax: the Matplotlib ``Axes`` to draw on; its ticks are removed.
        images: shape ``(n, H * W)``, n >= 1, values in [0, 1] (pixel intensities or
            probabilities).
        image_shape: ``(H, W)``, two positive integers.
        ncols: images per row, an integer >= 1; rows are filled left to right, the last one
            padded.
        pad: pixels of black border between images, an integer >= 0.

    Returns:
        ``ax``; the tiled array, shape ``(rows * (H + pad) + pad, ncols * (W + pad) + pad)``
        with rows = ceil(n / ncols), is ``ax.images[-1].get_array()``.
    """
    ax = _axes(ax)
    x = _numpy("images", images)
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, (tuple, list)):
        raise TypeError(
            f"image_shape must be a tuple (H, W) of positive integers, got {describe(image_shape)}"
        )
    if len(image_shape) != 2 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in image_shape
    ):
        raise ValueError(f"image_shape must be (H, W) with positive integers, got {image_shape!r}")
    h, w = (int(s) for s in image_shape)
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(
            f"images must have shape (n, {h * w}) for image_shape {(h, w)}, got {x.shape}"
        )
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"images must hold at least one image, got shape {x.shape}")
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(
            f"images must hold values in [0, 1] (intensities or probabilities), "
            f"got values in [{x.min():.4g}, {x.max():.4g}]"
        )
    ncols = check_positive_int("ncols", ncols)
    pad = check_positive_int("pad", pad, minimum=0)
    rows = -(-n // ncols)
    height, width = rows * (h + pad) + pad, ncols * (w + pad) + pad
    culprit = ("pad", pad) if pad > max(h, w) else ("ncols", ncols)
    check_allocation(*culprit, 8 * height * width)
    grid = np.zeros((height, width))
    for i in range(n):  # a handful of small images: a loop is clearest
        r, c = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = x[i].reshape(h, w)
    # Everything is checked: draw.
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax
