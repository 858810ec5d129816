"""The book's figure style and the plots that recur across chapters.

Call :func:`use_book_style` once per notebook. Plot functions draw on a Matplotlib ``Axes``
that the caller owns and return it, so figures compose (``fig, axes = plt.subplots(1, 2)``).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import torch

from ._validation import as_tensor, check_probability, describe
from .montecarlo import Estimate

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
    return as_tensor(name, value, dtype=torch.float64).cpu().numpy()


def plot_running_mean(ax, running: Estimate, exact=None, *, label: str = "running mean",
                      level: float = 0.95):
    """Plot a running mean against n with its confidence band, and the exact value.

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        running: the output of :func:`companion.montecarlo.running_mean` for a scalar
            quantity: ``mean`` and ``stderr`` shaped ``(N,)``.
        exact: the true value, drawn as a horizontal line, or None.
        label: legend label of the running mean.
        level: coverage of the band ``mean -+ z * stderr``.
    """
    ax = _axes(ax)
    if not isinstance(running, Estimate) or running.mean.dim() != 1:
        raise TypeError(
            f"running must be an Estimate from running_mean with mean shaped (N,), "
            f"got {describe(running)}"
        )
    level = check_probability("level", level)
    n = np.arange(1, running.mean.shape[0] + 1)
    lower, upper = running.confidence_interval(level)
    ax.fill_between(n, _numpy("lower", lower.nan_to_num()), _numpy("upper", upper.nan_to_num()),
                    where=n > 1, color=COLORS["band"], alpha=0.5,
                    label=f"{level:.0%} interval")
    ax.plot(n, _numpy("mean", running.mean), color=COLORS["estimate"], lw=1.2, label=label)
    if exact is not None:
        ax.axhline(float(exact), color=COLORS["exact"], ls="--", lw=1, label="exact")
    ax.set_xscale("log")
    ax.set_xlabel("number of samples $N$")
    ax.legend()
    return ax


def plot_rate(ax, num_samples, errors, sigma=None, *, label: str = "measured"):
    """Log-log plot of an error measure against N, with the theory line sigma / sqrt(N).

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        num_samples: the sample sizes, shape ``(K,)``, positive.
        errors: the measured errors at those sizes (e.g. the spread of estimates across
            repetitions), shape ``(K,)``, positive.
        sigma: the standard deviation of a single sample; draws sigma / sqrt(N) if given.
        label: legend label of the measured points.
    """
    ax = _axes(ax)
    n = _numpy("num_samples", num_samples)
    e = _numpy("errors", errors)
    if n.ndim != 1 or e.shape != n.shape:
        raise ValueError(
            f"num_samples and errors must both have shape (K,), got {n.shape} and {e.shape}"
        )
    if (n <= 0).any() or (e <= 0).any():
        raise ValueError("num_samples and errors must be positive for a log-log plot")
    ax.loglog(n, e, "o", color=COLORS["estimate"], label=label)
    if sigma is not None:
        grid = np.geomspace(n.min(), n.max(), 100)
        ax.loglog(grid, float(sigma) / np.sqrt(grid), "--", color=COLORS["exact"],
                  label=r"$\sigma/\sqrt{N}$")
    ax.set_xlabel("number of samples $N$")
    ax.set_ylabel("error")
    ax.legend()
    return ax


def plot_intervals(ax, lower, upper, exact, *, max_shown: int = 100):
    """Draw confidence intervals as vertical bars, green when they cover ``exact``.

    Args:
        ax: the Matplotlib ``Axes`` to draw on.
        lower, upper: interval ends from repeated experiments, shape ``(R,)``.
        exact: the true value.
        max_shown: draw only the first ``max_shown`` intervals, to keep the figure legible.
    """
    ax = _axes(ax)
    lo, hi = _numpy("lower", lower), _numpy("upper", upper)
    if lo.ndim != 1 or hi.shape != lo.shape:
        raise ValueError(f"lower and upper must both have shape (R,), got {lo.shape} and {hi.shape}")
    lo, hi = lo[:max_shown], hi[:max_shown]
    exact = float(exact)
    covers = (lo <= exact) & (exact <= hi)
    index = np.arange(len(lo))
    for mask, key, text in ((covers, "good", "covers"), (~covers, "bad", "misses")):
        ax.vlines(index[mask], lo[mask], hi[mask], color=COLORS[key], lw=1.5,
                  label=f"{text} ({mask.sum()})")
    ax.axhline(exact, color=COLORS["exact"], ls="--", lw=1, label="exact")
    ax.set_xlabel("repetition")
    ax.legend(loc="upper right")
    return ax


def plot_images(ax, images, image_shape, *, ncols: int = 10, pad: int = 1):
    """Tile flattened images into one grey-scale picture (white = 1), e.g. digits or samples.

    Args:
        ax: the Matplotlib ``Axes`` to draw on; its ticks are removed.
        images: shape ``(n, H * W)``, values in [0, 1] (pixel intensities or probabilities).
        image_shape: ``(H, W)``.
        ncols: images per row; rows are filled left to right, the last one padded.
        pad: pixels of black border between images.

    Returns:
        ``ax``; the tiled array, shape ``(rows * (H + pad) + pad, ncols * (W + pad) + pad)``,
        is ``ax.images[-1].get_array()``.
    """
    ax = _axes(ax)
    x = _numpy("images", images)
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_shape)):
        raise ValueError(f"image_shape must be (H, W) with positive integers, got {image_shape!r}")
    h, w = image_shape
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(f"images must have shape (n, {h * w}) for image_shape {tuple(image_shape)}, "
                         f"got {x.shape}")
    if not (isinstance(ncols, int) and ncols > 0 and isinstance(pad, int) and pad >= 0):
        raise ValueError(f"ncols must be an integer > 0 and pad an integer >= 0, got {ncols}, {pad}")
    n = x.shape[0]
    rows = max(1, -(-n // ncols))
    grid = np.zeros((rows * (h + pad) + pad, ncols * (w + pad) + pad))
    for i in range(n):  # a handful of small images: a loop is clearest
        r, c = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top:top + h, left:left + w] = x[i].reshape(h, w)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax
