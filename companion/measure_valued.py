"""The measure-valued (weak-derivative) gradient of a Gaussian expectation, in its mean and scale.

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
the estimator unbiased and usually lowers its variance.

For the scale (Mohamed et al. 2020, §6, Table 1), with ε = (x - μ) / σ,

    ∂σ N(x; μ, σ²) = ((ε² - 1) / σ) N(x; μ, σ²) = (1 / σ) (p⁺(x) - p⁻(x)),

where p⁻ = N(μ, σ²) itself and p⁺ is the law of μ + σ m, m double-sided Maxwell, the density
m² exp(-m² / 2) / √(2π) on ℝ (m = ±√χ²₃). This pair is not the split of ∂σ N into its positive
and negative parts (that one splits at ε² = 1); any difference of two densities with the right
constant serves. If m is double-sided Maxwell and u ~ U(0, 1), then m u ~ N(0, 1), which
couples the two sides: ε⁻ = m u. The chapter on choosing an estimator derives and checks both.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Chi2, Weibull

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

__all__ = ["RAYLEIGH", "measure_valued_gaussian_mean", "measure_valued_gaussian_scale"]


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
    # p⁺ is the law of μ + σ w, p⁻ that of μ - σ w; c_d = 1 / (σ_d √(2π))
    constant = 1.0 / (scale.reshape(-1) * math.sqrt(2 * math.pi))
    return _coordinatewise(f, loc, scale, eps, w_plus, -w_minus, constant)


def _coordinatewise(f, loc, scale, eps, plus, minus, constant) -> Estimate:
    """g_n[d] = c_d (f(x_n⁺) - f(x_n⁻)), x_n^± = x_n with coordinate d set to μ_d + σ_d (±draw)."""
    num_samples, shape = eps.shape[0], tuple(eps.shape)
    flat_loc, flat_scale = loc.reshape(-1), scale.reshape(-1)  # (D,)
    base = flat_loc + flat_scale * eps.reshape(num_samples, -1)  # x_n, (N, D)
    plus, minus = plus.reshape(num_samples, -1), minus.reshape(num_samples, -1)  # standardized
    columns = []
    with torch.no_grad():
        for d in range(flat_loc.shape[0]):
            x_plus, x_minus = base.clone(), base.clone()
            x_plus[:, d] = flat_loc[d] + flat_scale[d] * plus[:, d]  # a draw from p⁺
            x_minus[:, d] = flat_loc[d] + flat_scale[d] * minus[:, d]  # a draw from p⁻
            difference = (
                evaluate_f(f, x_plus.reshape(shape), num_samples)
                - evaluate_f(f, x_minus.reshape(shape), num_samples)
            ).to(loc.dtype)
            columns.append(constant[d] * difference)
    return summarize(torch.stack(columns, dim=1))  # (N, D)


def _check_scale_noise(noise, shape, coupled, loc):
    """(eps, m, third) from the caller: third is u in [0, 1] when coupled, else ε⁻."""
    if not isinstance(noise, (tuple, list)) or len(noise) != 3:
        raise TypeError(f"noise must be a tuple (eps, m, u_or_eps_minus), got {describe(noise)}")
    out = []
    for name, value in zip(("eps", "m", "u" if coupled else "eps_minus"), noise):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"noise {name} must be a floating-point tensor, got {describe(value)}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"noise {name} must have shape (num_samples, *loc.shape) = {shape}, "
                f"got {tuple(value.shape)}"
            )
        out.append(check_finite(f"noise {name}", value.detach().to(loc)))
    if coupled and ((out[2] < 0) | (out[2] > 1)).any():
        raise ValueError("with coupled=True, noise u must be uniform draws in [0, 1]")
    return out


def measure_valued_gaussian_scale(
    f, loc, scale, num_samples, *, coupled=True, noise=None
) -> Estimate:
    """Measure-valued estimate of ∇σ E_{x~N(μ, diag σ²)}[f(x)], one coordinate at a time.

    For coordinate d, with x_n ~ N(μ, diag σ²) and x_n^{±} equal to x_n except for
    coordinate d, which is μ_d + σ_d m_{n,d} (m double-sided Maxwell) on the positive side and
    μ_d + σ_d ε⁻_{n,d} (ε⁻ standard normal) on the negative side (module docstring),

        g_n[d] = (f(x_n^+) - f(x_n^-)) / σ_d.

    Unbiased for any f with finite expectations (Mohamed et al. 2020, §6, Table 1); no
    derivative of f is used; 2 evaluations of f per sample and coordinate. With ``coupled``
    the negative side is ε⁻ = m u, u ~ U(0, 1), which is standard normal; for f(x) = x² this
    gives g_n = 2μ m (1 - u) + σ m² (1 - u²), variance 4μ² + 4σ² (8σ² + 16μ² uncoupled, and
    4μ² + 8σ² for the pathwise estimator's 2xε).

    Args:
        f: maps samples ``(N, *loc.shape)`` to values ``(N,)``; called 2D times, with N rows.
        loc: μ, a number or a tensor of shape ``(D,)``.
        scale: σ > 0, the same shape as ``loc`` (a standard deviation, not a variance).
        num_samples: N >= 2.
        coupled: draw the negative side as m u (default True) instead of independently.
        noise: optional ``(eps, m, third)`` to replay fixed noise, each of shape
            ``(N, *loc.shape)``: standard normal eps for the coordinates not being
            differentiated, double-sided Maxwell draws m, and third either the uniform u in
            [0, 1] (``coupled``) or the negative side's standard normal ε⁻ (not ``coupled``).
            Drawn from the global generator when None.

    Returns:
        A :class:`companion.montecarlo.Estimate` with ``mean`` and ``stderr`` of
        shape ``(D,)`` (``(1,)`` for a scalar ``loc``) and the g_n as ``samples`` ``(N, D)``.

    Example:
        >>> m = torch.tensor([-2.0, 1.0], dtype=torch.float64)  # two Maxwell draws
        >>> u = torch.tensor([0.5, 0.0], dtype=torch.float64)
        >>> est = measure_valued_gaussian_scale(lambda x: x**2, 0.0, 1.0, 2,
        ...                                     noise=(torch.zeros_like(m), m, u))
        >>> est.samples[:, 0]  # σ m² (1 - u²) at μ = 0, σ = 1
        tensor([3., 1.], dtype=torch.float64)
    """
    loc, scale = _check_parameters(loc, scale)
    check_callable("f", f)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    check_bool("coupled", coupled)
    shape = (num_samples, *loc.shape)
    check_allocation("num_samples", num_samples, 4 * num_samples * loc.numel() * 8)
    if noise is None:
        eps = torch.randn(shape, dtype=loc.dtype, device=loc.device)
        chi2 = Chi2(torch.tensor(3.0, dtype=loc.dtype, device=loc.device))
        sign = torch.randint(0, 2, shape, device=loc.device).to(loc.dtype) * 2 - 1
        m = sign * chi2.sample(shape).sqrt()  # double-sided Maxwell
        third = (
            torch.rand(shape, dtype=loc.dtype, device=loc.device)
            if coupled
            else torch.randn(shape, dtype=loc.dtype, device=loc.device)
        )
    else:
        eps, m, third = _check_scale_noise(noise, shape, coupled, loc)
    minus = m * third if coupled else third  # ε⁻ = m u ~ N(0, 1) when coupled
    return _coordinatewise(f, loc, scale, eps, m, minus, 1.0 / scale.reshape(-1))
