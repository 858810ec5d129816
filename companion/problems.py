"""The book's recurring test problems, with their exact answers.

Estimators are compared on problems whose expectation and gradient are known in closed form
(as in Mohamed et al. 2020, §3, and google-deepmind/mc_gradients' test functions). The same
few appear in several chapters, so they live here once:

- :func:`normal_dist`: θ = (μ, σ) ↦ N(μ, σ²), the Gaussian of Chapters 2 to 7, in the batched
  form the estimators expect; :func:`normal_square_variance`, Var[x²] under it.
- :func:`bernoulli_logit` and :func:`bernoulli_toy`: the Bernoulli toy of Tucker et al. (2017),
  E_{b~Bernoulli(σ(θ))}[(b - t)²], and :func:`bernoulli_toy_gradient`, its exact gradient
  (Chapters 3, 6 and 7).
"""

from __future__ import annotations

import numbers

import torch
from torch.distributions import Bernoulli, Normal

from ._validation import as_finite_tensor, check_finite, describe

__all__ = [
    "normal_dist",
    "normal_square_variance",
    "bernoulli_logit",
    "bernoulli_toy",
    "bernoulli_toy_gradient",
]


def _check_theta(theta, size: int) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
        raise TypeError(
            f"theta must be a floating-point tensor of shape (..., {size}), got {describe(theta)}"
        )
    if theta.dim() == 0 or theta.shape[-1] != size:
        raise ValueError(f"theta must have shape (..., {size}), got shape {tuple(theta.shape)}")
    check_finite("theta", theta.detach())
    return theta


def normal_dist(theta) -> Normal:
    """θ = (μ, σ) ↦ N(μ, σ²), batched: θ of shape ``(..., 2)`` gives batch shape ``(...)``.

    Example:
        >>> normal_dist(torch.tensor([0.5, 2.0])).stddev
        tensor(2.)
        >>> normal_dist(torch.ones(4, 2)).batch_shape  # one Gaussian per copy of θ
        torch.Size([4])
    """
    theta = _check_theta(theta, 2)
    if not (theta[..., 1] > 0).all():
        raise ValueError(
            f"theta[..., 1] is the scale σ and must be > 0, got minimum "
            f"{theta[..., 1].min().item()}"
        )
    return Normal(theta[..., 0], theta[..., 1])


def normal_square_variance(loc, scale) -> torch.Tensor:
    """Var[x²] under N(μ, σ²): 4μ²σ² + 2σ⁴ (from E x⁴ = μ⁴ + 6μ²σ² + 3σ⁴).

    Args:
        loc: μ, a number or tensor.
        scale: σ >= 0, a number or tensor broadcastable with ``loc``.

    Returns:
        A float64 tensor of the broadcast shape.

    Example:
        >>> normal_square_variance(1.0, 1.0)
        tensor(6., dtype=torch.float64)
    """
    mu = as_finite_tensor("loc", loc, dtype=torch.float64)
    sigma = as_finite_tensor("scale", scale, dtype=torch.float64)
    if (sigma < 0).any():
        raise ValueError(
            f"scale must be >= 0 (a standard deviation), got minimum {sigma.min().item()}"
        )
    try:
        torch.broadcast_shapes(mu.shape, sigma.shape)
    except RuntimeError as err:
        raise ValueError(
            f"loc and scale must broadcast together, got shapes "
            f"{tuple(mu.shape)} and {tuple(sigma.shape)}"
        ) from err
    return 4 * mu**2 * sigma**2 + 2 * sigma**4


def bernoulli_logit(theta) -> Bernoulli:
    """θ = (ℓ,) ↦ Bernoulli(σ(ℓ)), batched: θ of shape ``(..., 1)`` gives batch shape ``(...)``.

    Example:
        >>> bernoulli_logit(torch.tensor([0.0])).probs
        tensor(0.5000)
    """
    theta = _check_theta(theta, 1)
    return Bernoulli(logits=theta[..., 0])


def _check_target(target) -> float:
    if isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise TypeError(f"target must be a number, got {describe(target)}")
    if not 0.0 <= float(target) <= 1.0:
        raise ValueError(f"target must be in [0, 1], got {target}")
    return float(target)


def bernoulli_toy(target: float):
    """f(b) = (b - t)² for the Bernoulli toy E_{b~Bernoulli(p)}[(b - t)²] (Tucker et al. 2017).

    E[f] = p (1 - t)² + (1 - p) t², so d/dp E[f] = 1 - 2t: tiny when t is near 1/2, which
    makes the toy a hard test of an estimator's variance.

    Args:
        target: t in [0, 1].

    Returns:
        f, mapping b of any shape to (b - t)² of the same shape.

    Example:
        >>> bernoulli_toy(0.45)(torch.tensor([0.0, 1.0]))
        tensor([0.2025, 0.3025])
    """
    t = _check_target(target)

    def f(b):
        return (b - t) ** 2

    return f


def bernoulli_toy_gradient(logit, target: float) -> torch.Tensor:
    """d/dℓ E_{b~Bernoulli(σ(ℓ))}[(b - t)²] = σ(ℓ)(1 - σ(ℓ))(1 - 2t), exactly, in float64.

    Args:
        logit: ℓ, a number or tensor.
        target: t in [0, 1].

    Returns:
        The gradient, shape of ``logit``.

    Example:
        >>> bernoulli_toy_gradient(0.0, 0.45)  # 0.25 · 0.1
        tensor(0.0250, dtype=torch.float64)
    """
    t = _check_target(target)
    p = torch.sigmoid(as_finite_tensor("logit", logit, dtype=torch.float64))
    return p * (1 - p) * (1 - 2 * t)
