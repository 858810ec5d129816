"""The measure-valued (weak-derivative) gradient of a Gaussian expectation in its mean.

The derivative of a density in a parameter is a signed function that integrates to zero, so
it splits into its positive and negative parts, each a probability density times a constant
(Pflug 1996; Mohamed et al. 2020, "Monte Carlo Gradient Estimation in Machine Learning",
JMLR, §6). For the mean of N(μ, σ²), with w = (x - μ) / σ,

    ∂μ N(x; μ, σ²) = (w / σ) N(x; μ, σ²) = c (p⁺(x) - p⁻(x)),   c = 1 / (σ √(2π)),

where p⁺ is the law of μ + σ w and p⁻ that of μ - σ w, with w ~ Rayleigh(1), the density
w exp(-w² / 2) on w > 0. Hence

    ∂μ E_{N(μ, σ²)}[f(x)] = c (E[f(μ + σ w)] - E[f(μ - σ w)]),

estimated by the mean of g_n = c (f(μ + σ w⁺_n) - f(μ - σ w⁻_n)). f is only evaluated: it may
be a step function. Sharing the draw, w⁻_n = w⁺_n (coupling, common random numbers), keeps
the estimator unbiased and usually lowers its variance. Chapter 7 derives and checks it.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Weibull

from ._validation import (
    as_finite_tensor,
    check_allocation,
    check_bool,
    check_callable,
    check_finite,
    check_positive_int,
    describe,
    evaluate_f,
)
from .montecarlo import Estimate, summarize

__all__ = ["RAYLEIGH", "measure_valued_gaussian_mean"]


RAYLEIGH = Weibull(scale=torch.tensor(math.sqrt(2.0)), concentration=torch.tensor(2.0))
"""Rayleigh(1) as Weibull(scale √2, concentration 2): P(w > t) = exp(-t² / 2)."""


def _check_parameters(loc, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """loc and scale as detached floating tensors of one shape, () or (D,), with scale > 0."""
    if isinstance(loc, torch.Tensor) and not loc.is_floating_point():
        raise TypeError(f"loc must be a number or a floating-point tensor, got {describe(loc)}")
    loc = as_finite_tensor("loc", loc)
    scale = as_finite_tensor("scale", scale, dtype=loc.dtype).to(loc.device)
    if loc.dim() > 1:
        raise ValueError(
            f"loc must be a number or a 1-D tensor of shape (D,), got shape {tuple(loc.shape)}"
        )
    if scale.shape != loc.shape:
        raise ValueError(
            f"scale must have the shape of loc {tuple(loc.shape)}, got shape {tuple(scale.shape)}"
        )
    if loc.numel() == 0:
        raise ValueError("loc must hold at least one entry, got an empty tensor")
    if not (scale > 0).all():
        raise ValueError(
            f"scale must be > 0 (a standard deviation), got minimum {scale.min().item()}"
        )
    return loc.clone(), scale.clone()


def _check_noise(noise, shape, coupled, loc):
    """(eps, w_plus, w_minus) from the caller, each of ``shape``; w_minus None when coupled."""
    if not isinstance(noise, (tuple, list)) or len(noise) != 3:
        raise TypeError(f"noise must be a tuple (eps, w_plus, w_minus), got {describe(noise)}")
    eps, w_plus, w_minus = noise
    if coupled and w_minus is not None:
        raise ValueError(
            "with coupled=True the negative part reuses w_plus: pass "
            "noise=(eps, w_plus, None), or coupled=False"
        )
    if not coupled and w_minus is None:
        raise ValueError("with coupled=False, noise must hold w_minus as its third entry")
    named = {"eps": eps, "w_plus": w_plus, "w_minus": w_plus if coupled else w_minus}
    out = []
    for name, value in named.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"noise {name} must be a floating-point tensor, got {describe(value)}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"noise {name} must have shape (num_samples, *loc.shape) = {shape}, "
                f"got {tuple(value.shape)}"
            )
        out.append(check_finite(f"noise {name}", value.detach().to(loc)))
    if (out[1] < 0).any() or (out[2] < 0).any():
        raise ValueError("noise w_plus and w_minus must be Rayleigh draws, >= 0")
    return out


def measure_valued_gaussian_mean(
    f, loc, scale, num_samples, *, coupled=True, noise=None
) -> Estimate:
    """Measure-valued estimate of ∇μ E_{x~N(μ, diag σ²)}[f(x)], one coordinate at a time.

    For coordinate d, with x_n ~ N(μ, diag σ²) and x_n^{±} equal to x_n except for
    coordinate d, which is μ_d ± σ_d w^{±}_{n,d} with w ~ Rayleigh(1) (module docstring),

        g_n[d] = (f(x_n^+) - f(x_n^-)) / (σ_d √(2π)).

    Unbiased for any f with finite expectations (Mohamed et al. 2020, §6): no derivative of
    f is used. Costs 2 evaluations of f per sample and per coordinate, 2D in all, like
    central finite differences, but without their O(h²) bias. With ``coupled`` the two sides
    share w (w⁻ = w⁺); for f(x) = x² this gives g_n = 4 μ w_n / √(2π), variance
    16μ²/π - 4μ² (against 8μ²/π - 2μ² + 4σ²/π uncoupled).

    Args:
        f: maps samples ``(N, *loc.shape)`` to values ``(N,)``; called 2D times, with N rows.
        loc: μ, a number or a tensor of shape ``(D,)``.
        scale: σ > 0, the same shape as ``loc`` (a standard deviation, not a variance).
        num_samples: N >= 2.
        coupled: share the Rayleigh draw between the two sides (default True).
        noise: optional ``(eps, w_plus, w_minus)`` to replay fixed noise, each of shape
            ``(N, *loc.shape)``: standard normal eps for the coordinates not being
            differentiated, Rayleigh draws w >= 0 for the two sides; w_minus must be None
            when ``coupled``. Drawn from the global generator when None.

    Returns:
        A :class:`companion.montecarlo.Estimate` with ``mean`` and ``stderr`` of
        shape ``(D,)`` (``(1,)`` for a scalar ``loc``) and the g_n as ``samples`` ``(N, D)``.

    Example:
        >>> w = torch.tensor([0.5, 2.0], dtype=torch.float64)  # two Rayleigh draws
        >>> est = measure_valued_gaussian_mean(lambda x: x**2, 1.0, 1.0, 2,
        ...                                    noise=(torch.zeros_like(w), w, None))
        >>> est.samples[:, 0] * math.sqrt(2 * math.pi) / 4  # g_n = 4 μ w_n / √(2π), μ = 1
        tensor([0.5000, 2.0000], dtype=torch.float64)
    """
    loc, scale = _check_parameters(loc, scale)
    check_callable("f", f)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    check_bool("coupled", coupled)
    shape = (num_samples, *loc.shape)
    check_allocation("num_samples", num_samples, 3 * num_samples * loc.numel() * 8)
    if noise is None:
        eps = torch.randn(shape, dtype=loc.dtype, device=loc.device)
        rayleigh = Weibull(RAYLEIGH.scale.to(loc), RAYLEIGH.concentration.to(loc))
        w_plus = rayleigh.sample(shape)
        w_minus = w_plus if coupled else rayleigh.sample(shape)
    else:
        eps, w_plus, w_minus = _check_noise(noise, shape, coupled, loc)
    flat_loc, flat_scale = loc.reshape(-1), scale.reshape(-1)  # (D,)
    base = flat_loc + flat_scale * eps.reshape(num_samples, -1)  # x_n, (N, D)
    w_plus, w_minus = w_plus.reshape(num_samples, -1), w_minus.reshape(num_samples, -1)
    constant = 1.0 / (flat_scale * math.sqrt(2 * math.pi))  # c_d = 1 / (σ_d √(2π))
    columns = []
    with torch.no_grad():
        for d in range(flat_loc.shape[0]):
            plus, minus = base.clone(), base.clone()
            plus[:, d] = flat_loc[d] + flat_scale[d] * w_plus[:, d]  # a draw from p⁺
            minus[:, d] = flat_loc[d] - flat_scale[d] * w_minus[:, d]  # a draw from p⁻
            difference = (
                evaluate_f(f, plus.reshape(shape), num_samples)
                - evaluate_f(f, minus.reshape(shape), num_samples)
            ).to(loc.dtype)
            columns.append(constant[d] * difference)
    return summarize(torch.stack(columns, dim=1))  # (N, D)
