"""Deterministic expectations by quadrature: the independent numbers the checks compare with.

Monte Carlo checks need an exact value to aim at. When no closed form is at hand, a
one-dimensional expectation is computed to near machine precision by Gaussian quadrature:

- :func:`gaussian_expectation`: E_{x~N(μ, σ²)}[g(x)] = Σ_k w_k g(μ + σ t_k), with the
  probabilists' Gauss–Hermite nodes t_k and weights w_k (normalized to sum to 1). With K
  nodes it is exact for polynomials of degree < 2K and converges geometrically for smooth g
  (Chapters 1, 3, 4 and 7).
- :func:`rayleigh_expectation`: E_{w~Rayleigh(1)}[g(w)], the law behind the measure-valued
  derivative of a Gaussian mean (Chapter 7), by Gauss–Legendre on [0, upper].

Neither is accurate for a g with jumps (a step function): integrate those in closed form.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from ._validation import (
    as_finite_tensor,
    check_callable,
    check_finite,
    check_positive_int,
    describe,
)

__all__ = ["MAX_NODES", "gauss_hermite", "gaussian_expectation", "rayleigh_expectation"]


MAX_NODES = 300
"""The most nodes accepted: NumPy's Gauss–Hermite rule loses its weights to underflow from
about 370 nodes on (NaN or zero weights), and 300 nodes integrate polynomials of degree < 600."""


def _check_nodes(num_nodes) -> int:
    num_nodes = check_positive_int("num_nodes", num_nodes, minimum=2)
    if num_nodes > MAX_NODES:
        raise ValueError(f"num_nodes must be at most {MAX_NODES}, got {num_nodes}")
    return num_nodes


def _apply(g, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k g(x)_k for g returning one row per node, shape (K, ...)."""
    values = g(x)
    if not isinstance(values, torch.Tensor) or values.dim() == 0 or values.shape[0] != x.shape[0]:
        raise ValueError(
            f"g must return one row per node, a tensor of shape ({x.shape[0]}, ...), "
            f"got {describe(values)}"
        )
    if values.is_complex():
        raise TypeError(f"g must return real values, got {describe(values)}")
    values = check_finite("g(x)", values.detach().to(torch.float64))
    return torch.tensordot(weights, values, dims=1)


def gauss_hermite(num_nodes: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes t_k and weights w_k with Σ_k w_k h(t_k) ≈ E_{ε~N(0,1)}[h(ε)], in float64.

    The probabilists' Gauss–Hermite rule (weight function exp(-t²/2)), weights divided by
    √(2π) so that they sum to 1. Exact for polynomials h of degree < 2K.

    Args:
        num_nodes: K, 2 <= K <= :data:`MAX_NODES`.

    Returns:
        ``(nodes, weights)``, each of shape ``(K,)``.

    Example:
        >>> nodes, weights = gauss_hermite(3)
        >>> round(float((weights * nodes**2).sum()), 14)  # E[ε²] = 1, exact with 3 nodes
        1.0
    """
    num_nodes = _check_nodes(num_nodes)
    nodes, weights = _hermite_rule(num_nodes)
    # fresh tensors on every call: the cached arrays must not be modified by callers
    nodes, weights = torch.tensor(nodes), torch.tensor(weights)
    if not (torch.isfinite(weights).all() and abs(float(weights.sum()) - 1) < 1e-10):
        raise ValueError(
            f"num_nodes={num_nodes}: the Gauss–Hermite weights are not accurate "
            "in float64 at this size; use fewer nodes"
        )
    return nodes, weights


@functools.lru_cache(maxsize=16)
def _hermite_rule(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The rule of :func:`gauss_hermite`, cached: an eigenvalue problem of size K, which costs
    far more than the quadrature itself at a few hundred nodes."""
    nodes, weights = hermegauss(num_nodes)
    nodes.setflags(write=False)
    weights = weights / math.sqrt(2 * math.pi)
    weights.setflags(write=False)
    return nodes, weights


def gaussian_expectation(g, loc=0.0, scale=1.0, *, num_nodes: int = 80) -> torch.Tensor:
    """E_{x~N(loc, scale²)}[g(x)] by Gauss–Hermite quadrature, in float64.

    Implements Σ_k w_k g(loc + scale t_k) with the nodes and weights of :func:`gauss_hermite`.
    ``loc`` and ``scale`` may be tensors (a grid of Gaussians): g then receives x of shape
    ``(K, *shape)``, shape the broadcast shape of loc and scale.

    Args:
        g: maps x, shape ``(K, *shape)``, to values ``(K, ...)``, one row per node.
        loc: μ, a number or tensor.
        scale: σ > 0, a number or tensor (a standard deviation).
        num_nodes: K.

    Returns:
        The expectation, shape ``g(x).shape[1:]``.

    Example:
        >>> round(float(gaussian_expectation(lambda x: x**2, loc=1.0, scale=2.0)), 12)  # μ² + σ²
        5.0
    """
    check_callable("g", g)
    loc = as_finite_tensor("loc", loc, dtype=torch.float64)
    scale = as_finite_tensor("scale", scale, dtype=torch.float64)
    if not (scale > 0).all():
        raise ValueError(
            f"scale must be > 0 (a standard deviation), got minimum {scale.min().item()}"
        )
    try:
        shape = torch.broadcast_shapes(loc.shape, scale.shape)
    except RuntimeError as err:
        raise ValueError(
            f"loc and scale must broadcast together, got shapes "
            f"{tuple(loc.shape)} and {tuple(scale.shape)}"
        ) from err
    nodes, weights = gauss_hermite(num_nodes)
    x = loc + scale * nodes.reshape(-1, *([1] * len(shape)))  # (K, *shape)
    return _apply(g, x, weights)


def rayleigh_expectation(g, *, num_nodes: int = 200, upper: float = 20.0) -> torch.Tensor:
    """E_{w~Rayleigh(1)}[g(w)] = ∫_0^∞ g(w) w exp(-w²/2) dw, by Gauss–Legendre on [0, upper].

    The tail beyond ``upper`` holds probability exp(-upper²/2) (about 1e-87 at the default
    20), negligible for any g that grows at most polynomially.

    Args:
        g: maps w, shape ``(K,)``, to values ``(K, ...)``.
        num_nodes: K Gauss–Legendre nodes.
        upper: the truncation point, > 0.

    Returns:
        The expectation, shape ``g(w).shape[1:]``.

    Example:
        >>> round(float(rayleigh_expectation(lambda w: w**2)), 12)  # E[w²] = 2
        2.0
    """
    check_callable("g", g)
    num_nodes = _check_nodes(num_nodes)
    if isinstance(upper, bool) or not isinstance(upper, (int, float)) or not 0 < upper < 1e3:
        raise ValueError(f"upper must be a number in (0, 1000), got {describe(upper)}")
    nodes, weights = leggauss(num_nodes)  # on [-1, 1]
    w = torch.from_numpy(upper / 2 * (nodes + 1))
    density = w * torch.exp(-(w**2) / 2)
    return _apply(g, w, torch.from_numpy(upper / 2 * weights) * density)
