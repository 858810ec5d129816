"""Control variates and conditioning for gradient estimators (Chapter 7).

A control variate φ(x) with known mean E[φ] turns per-sample gradient estimates g_n into

    g_n - β ⊙ (φ(x_n) - E[φ]),

unbiased for every β fixed independently of the draws, with the smallest variance per
coordinate at β*_d = Cov(g_d, φ_d) / Var(φ_d) (Mohamed et al. 2020, "Monte Carlo Gradient
Estimation in Machine Learning", JMLR, §7.4). Here:

- :func:`optimal_coefficient` and :func:`controlled`: β* from (pilot) draws, and the
  controlled estimate.
- :func:`delta_score_control_variate`: the delta-method control variate of the
  score-function gradient for a diagonal Gaussian, from the second-order Taylor model of f at
  the mean (Paisley, Blei and Jordan 2012, "Variational Bayesian inference with stochastic
  search", ICML).
- :func:`delta_pathwise_control_variate`: the same Taylor model for the pathwise gradient
  (Miller, Foti, D'Amour and Adams 2017, "Reducing reparameterization gradient variance",
  NeurIPS).
- :func:`enumerated_gradient` and :func:`sum_and_sample`: conditioning (Rao–Blackwellization)
  for a categorical: sum the most probable outcomes exactly, sample the rest (Liu, Regier,
  Tripuraneni, Jordan and McAuliffe 2019, "Rao-Blackwellized stochastic gradients for discrete
  distributions", ICML; Mohamed et al. 2020, §7.3).
- :class:`VarianceNormalizer`: the running centring and scaling of the learning signal of
  NVIL (Mnih and Gregor 2014, "Neural variational inference and learning in belief
  networks", ICML, §3.3).

Parameters of the Gaussian are ordered θ = (loc, scale), each of shape ``(D,)``, so every
gradient here has ``2D`` coordinates: first ∂/∂loc, then ∂/∂scale.
"""

from __future__ import annotations

import numbers

import torch
from torch.distributions import Categorical

from ._validation import (
    as_finite_tensor,
    check_allocation,
    check_callable,
    check_finite,
    check_positive_int,
    check_samples,
    describe,
    evaluate_f,
)
from .montecarlo import Estimate, summarize

__all__ = [
    "optimal_coefficient",
    "controlled",
    "delta_score_control_variate",
    "delta_pathwise_control_variate",
    "enumerated_gradient",
    "sum_and_sample",
    "VarianceNormalizer",
]


# ---------------------------------------------------------------- the coefficient


def _pair(g, phi):
    g = check_samples("g", g)
    phi = check_samples("phi", phi).to(g.dtype)
    if g.dim() > 2 or phi.shape != g.shape:
        raise ValueError(
            "g and phi must have the same shape, (N,) or (N, D), on the same draws, "
            f"got {describe(g)} and {describe(phi)}"
        )
    return g, phi


def optimal_coefficient(g, phi) -> torch.Tensor:
    """Per-coordinate estimate of β*_d = Cov(g_d, φ_d) / Var(φ_d).

    β*_d minimizes Var(g_d - β_d φ_d) = Var g_d - 2 β_d Cov(g_d, φ_d) + β_d² Var φ_d, leaving
    Var g_d (1 - ρ_d²), ρ_d the correlation (Mohamed et al. 2020, §7.4). Estimate it from
    draws *independent* of those it is applied to (a pilot batch, or the previous step's):
    a β computed from the same draws correlates with them and biases the mean at order 1/N.
    A coordinate whose φ does not vary gets β = 0.

    Args:
        g: per-sample gradient estimates, shape ``(N,)`` or ``(N, D)``, N >= 2.
        phi: the control variate on the same draws, same shape.

    Returns:
        β̂*, shape ``()`` or ``(D,)``, detached.

    Example:
        >>> g = torch.tensor([1.0, 3.0, 2.0, 6.0])
        >>> optimal_coefficient(g, g / 2)  # φ = g / 2: β* = 2 removes everything
        tensor(2.)
    """
    g, phi = _pair(g, phi)
    gc, pc = g - g.mean(dim=0), phi - phi.mean(dim=0)
    numerator, denominator = (gc * pc).sum(dim=0), (pc * pc).sum(dim=0)
    tiny = torch.finfo(g.dtype).tiny
    return torch.where(denominator > 0, numerator / denominator.clamp_min(tiny), 0.0)


def controlled(g, phi, phi_mean, beta=1.0) -> Estimate:
    """The controlled estimate: per sample g_n - β ⊙ (φ_n - E[φ]).

    Unbiased for E[g] whenever ``phi_mean`` is the exact E[φ] and β does not depend on the
    draws (a number, the delta method's β = 1, or :func:`optimal_coefficient` on separate
    draws). A wrong ``phi_mean`` shifts the mean by β ⊙ (E[φ] - phi_mean): the unit tests
    show such an error is caught by a check of the mean.

    Args:
        g: per-sample estimates, shape ``(N,)`` or ``(N, D)``, N >= 2.
        phi: the control variate on the same draws, same shape.
        phi_mean: the exact E[φ], shape ``()`` or ``(D,)`` (``g.shape[1:]``).
        beta: β, a number or a tensor of shape ``()`` or ``(D,)``; default 1.

    Returns:
        An :class:`~companion.montecarlo.Estimate` with samples ``(N, D)`` (or ``(N,)``).

    Example:
        >>> g = torch.tensor([1.0, 3.0, 2.0, 6.0])
        >>> controlled(g, g / 2, torch.tensor(1.5), 2.0).samples  # g - 2 (g/2 - 1.5) = 3
        tensor([3., 3., 3., 3.])
    """
    g, phi = _pair(g, phi)
    mean = as_finite_tensor("phi_mean", phi_mean, dtype=g.dtype)
    if mean.shape != g.shape[1:]:
        raise ValueError(
            f"phi_mean must have shape {tuple(g.shape[1:])} (one mean per coordinate of g), "
            f"got {describe(phi_mean)}"
        )
    b = as_finite_tensor("beta", beta, dtype=g.dtype)
    if b.dim() != 0 and b.shape != g.shape[1:]:
        raise ValueError(
            f"beta must be a number or have shape {tuple(g.shape[1:])}, got {describe(beta)}"
        )
    return summarize(g - b * (phi - mean))


# ---------------------------------------------------------------- the delta method


def _gaussian(loc, scale):
    if not isinstance(loc, torch.Tensor) or not loc.is_floating_point():
        raise TypeError(f"loc must be a 1-D floating-point tensor (D,), got {describe(loc)}")
    if loc.dim() != 1 or loc.numel() == 0:
        raise ValueError(f"loc must be a 1-D tensor (D,) with D >= 1, got {describe(loc)}")
    loc = check_finite("loc", loc.detach())
    scale = as_finite_tensor("scale", scale, dtype=loc.dtype)
    if scale.shape != loc.shape:
        raise ValueError(
            f"scale must have the shape of loc {tuple(loc.shape)}, got {describe(scale)}"
        )
    if not (scale > 0).all():
        raise ValueError(f"scale must be > 0 (a standard deviation), got {scale.tolist()}")
    return loc, scale


def _draws(name, value, loc):
    x = check_samples(name, value, min_samples=1).to(loc.dtype)
    if x.dim() != 2 or x.shape[1] != loc.shape[0]:
        raise ValueError(
            f"{name} must have shape (N, {loc.shape[0]}), one draw per row, got {describe(value)}"
        )
    return x


def _taylor(f, loc: torch.Tensor, diagonal: bool):
    """f(loc), ∇f(loc) (D,) and the Hessian (D, D) (its diagonal only, as a matrix, if asked)."""
    check_callable("f", f)
    if not isinstance(diagonal, bool):
        raise TypeError(f"diagonal must be True or False, got {describe(diagonal)}")

    def at(point):
        return evaluate_f(f, point[None], 1)[0]

    with torch.enable_grad():
        value = at(loc)
        try:
            grad = torch.autograd.functional.jacobian(at, loc)
            try:  # vmap over the D rows: several times faster than D backward passes
                hess = torch.autograd.functional.hessian(at, loc, vectorize=True)
            except RuntimeError:  # an operation of f that vmap does not support
                hess = torch.autograd.functional.hessian(at, loc)
        except RuntimeError as err:
            raise ValueError(f"f must be twice differentiable in x at loc ({err})") from err
    check_finite("the gradient of f at loc", grad)
    check_finite("the Hessian of f at loc", hess)
    if diagonal:
        hess = torch.diag(torch.diagonal(hess))
    return value.detach(), grad.detach(), hess.detach()


def _gaussian_score(x, loc, scale) -> torch.Tensor:
    """∇_(loc, scale) log N(x; loc, diag scale²), shape (N, 2D): ((x-μ)/σ², ((x-μ)² - σ²)/σ³)."""
    dx = x - loc
    return torch.cat([dx / scale**2, (dx**2 - scale**2) / scale**3], dim=-1)


def delta_score_control_variate(f, loc, scale, x, *, diagonal=False):
    """Delta-method control variate for the score-function gradient (Paisley et al. 2012).

    For q = N(μ, diag σ²), μ = ``loc``, σ = ``scale``, the score-function estimate of
    ∇_(μ,σ) E_q[f] is g = f(x) ∇ log q(x). The second-order Taylor model of f at μ,

        f̃(x) = f(μ) + ∇f(μ)ᵀ (x - μ) + ½ (x - μ)ᵀ H (x - μ),   H = ∇²f(μ),

    gives φ(x) = f̃(x) ∇ log q(x), with ∇ log q = ((x - μ)/σ², ((x - μ)² - σ²)/σ³), whose
    mean is the gradient of E_q[f̃] = f(μ) + ½ Σ_d H_dd σ_d² (μ held at the expansion point):

        E[φ] = (∇f(μ), diag(H) ⊙ σ).

    For a quadratic f, f̃ = f and g - φ + E[φ] is the exact gradient for every draw (β = 1
    removes all the variance). Costs one gradient and one Hessian of f at μ (D backward
    passes), shared by all draws; no evaluation of f at the draws.

    Args:
        f: maps x ``(N, D)`` to ``(N,)``, twice differentiable.
        loc: μ, a 1-D floating tensor ``(D,)`` (the expansion point).
        scale: σ > 0, shape ``(D,)``.
        x: the draws from q, shape ``(N, D)``.
        diagonal: if True, keep only the diagonal of H (cheaper to store; E[φ] is unchanged).

    Returns:
        ``(phi, phi_mean)``: φ(x_n), shape ``(N, 2D)``, and E[φ], shape ``(2D,)``, detached;
        coordinates ordered (loc, scale).

    Example:
        >>> f = lambda x: (x**2).sum(-1)
        >>> x = torch.ones(3, 2)
        >>> phi, mean = delta_score_control_variate(f, torch.zeros(2), torch.ones(2), x)
        >>> mean  # (∇f(0), diag(H) σ) = (0, 0, 2, 2)
        tensor([0., 0., 2., 2.])
    """
    loc, scale = _gaussian(loc, scale)
    x = _draws("x", x, loc)
    value, grad, hess = _taylor(f, loc, diagonal)
    dx = x - loc  # (N, D)
    f_tilde = value + dx @ grad + 0.5 * ((dx @ hess) * dx).sum(-1)  # (N,)
    phi = f_tilde[:, None] * _gaussian_score(x, loc, scale)  # (N, 2D)
    return phi, torch.cat([grad, torch.diagonal(hess) * scale])


def delta_pathwise_control_variate(f, loc, scale, eps, *, diagonal=False):
    """Delta-method control variate for the pathwise gradient (Miller et al. 2017).

    With x = μ + σ ⊙ ε, ε ~ N(0, I), the pathwise estimate of ∇_(μ,σ) E[f] is
    (∇f(x), ∇f(x) ⊙ ε). The control is the same quantity for the Taylor model f̃ of
    :func:`delta_score_control_variate`, whose gradient is ∇f̃(x) = ∇f(μ) + H (σ ⊙ ε):

        φ(ε) = (∇f(μ) + H (σ ⊙ ε), (∇f(μ) + H (σ ⊙ ε)) ⊙ ε),   E[φ] = (∇f(μ), diag(H) ⊙ σ),

    since E[ε] = 0 and E[ε ε_d] = e_d. For a quadratic f, φ equals the pathwise estimate draw
    by draw. Miller et al. keep only diag(H) (``diagonal=True``), the mean is the same.

    Args:
        f: maps x ``(N, D)`` to ``(N,)``, twice differentiable.
        loc: μ, a 1-D floating tensor ``(D,)``.
        scale: σ > 0, shape ``(D,)``.
        eps: the standard normal noise of the draws, shape ``(N, D)``.
        diagonal: if True, use diag(H) instead of H.

    Returns:
        ``(phi, phi_mean)``: shape ``(N, 2D)`` and ``(2D,)``, detached, ordered (loc, scale).

    Example:
        >>> f = lambda x: (x**2).sum(-1)
        >>> eps = torch.ones(2, 1)
        >>> phi, mean = delta_pathwise_control_variate(f, torch.zeros(1), torch.ones(1), eps)
        >>> phi  # ∇f̃(x) = 2 ε, times ε for the scale
        tensor([[2., 2.],
                [2., 2.]])
    """
    loc, scale = _gaussian(loc, scale)
    eps = _draws("eps", eps, loc)
    _, grad, hess = _taylor(f, loc, diagonal)
    slope = grad + (eps * scale) @ hess.T  # ∇f̃(x), (N, D)
    return torch.cat([slope, slope * eps], dim=-1), torch.cat([grad, torch.diagonal(hess) * scale])


# ---------------------------------------------------------------- conditioning


def _categorical(f, logits):
    check_callable("f", f)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a 1-D floating-point tensor (K,), got {describe(logits)}")
    if logits.dim() != 1 or logits.numel() < 2:
        raise ValueError(f"logits must be a 1-D tensor (K,) with K >= 2, got {describe(logits)}")
    logits = check_finite("logits", logits.detach())
    return logits, torch.softmax(logits, dim=0)


def _f_at(f, k: torch.Tensor, dtype) -> torch.Tensor:
    return evaluate_f(f, k, k.shape[0]).detach().to(dtype)


def enumerated_gradient(f, logits) -> torch.Tensor:
    """The exact ∇_logits E_{k~Cat(π)}[f(k)], π = softmax(logits), by enumerating k = 0..K-1.

    With ∂π_k/∂logits_j = π_k (1[j = k] - π_j),

        ∂/∂logits_j Σ_k π_k f(k) = π_j (f(j) - Σ_k π_k f(k)).

    Costs K evaluations of f (one call on ``arange(K)``).

    Args:
        f: maps outcomes, a long tensor ``(M,)``, to values ``(M,)``.
        logits: a 1-D finite floating tensor ``(K,)``, K >= 2.

    Returns:
        The gradient, shape ``(K,)``, detached.

    Example:
        >>> enumerated_gradient(lambda k: k.double(), torch.zeros(2, dtype=torch.float64))
        tensor([-0.2500,  0.2500], dtype=torch.float64)
    """
    logits, probs = _categorical(f, logits)
    values = _f_at(f, torch.arange(logits.shape[0], device=logits.device), logits.dtype)
    return probs * (values - probs @ values)


def sum_and_sample(f, logits, num_summed, num_samples, *, baseline=0.0) -> Estimate:
    """Rao–Blackwellized score-function estimate: sum the likeliest outcomes, sample the rest.

    With g(k) = (f(k) - b) ∇ log π_k = (f(k) - b)(e_k - π), C the ``num_summed`` most
    probable outcomes and q = π restricted to the others and renormalized (Liu et al. 2019),

        E_π[g] = Σ_{k∈C} π_k g(k) + (1 - π_C) E_{j~q}[g(j)],   π_C = Σ_{k∈C} π_k,

    so each sample g_n = Σ_{k∈C} π_k g(k) + (1 - π_C) g(j_n), j_n ~ q, is unbiased for the
    gradient (for every constant b, since Σ_k π_k (e_k - π) = 0). Its variance is
    (1 - π_C)² Var_q[g], no larger than that of the plain score function when C holds most
    of the mass. ``num_summed=0`` is the plain score-function estimator. Costs
    ``num_summed + num_samples`` evaluations of f.

    Args:
        f: maps outcomes, a long tensor ``(M,)``, to values ``(M,)``.
        logits: a 1-D finite floating tensor ``(K,)``, K >= 2.
        num_summed: |C|, an integer in [0, K - 1].
        num_samples: N >= 2 draws from q.
        baseline: b, a constant subtracted from f (a finite number).

    Returns:
        An :class:`~companion.montecarlo.Estimate`, samples ``(N, K)``, mean and stderr ``(K,)``.

    Example:
        >>> est = sum_and_sample(lambda k: k.double(), torch.zeros(4, dtype=torch.float64), 1, 8)
        >>> est.samples.shape
        torch.Size([8, 4])
    """
    logits, probs = _categorical(f, logits)
    num_outcomes = logits.shape[0]
    if isinstance(num_summed, bool) or not isinstance(num_summed, numbers.Integral):
        raise TypeError(f"num_summed must be an integer in [0, K - 1], got {describe(num_summed)}")
    if not 0 <= num_summed < num_outcomes:
        raise ValueError(
            f"num_summed must be in [0, K - 1] = [0, {num_outcomes - 1}] (at least one outcome "
            f"is sampled), got {num_summed}"
        )
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    check_allocation("num_samples", num_samples, num_samples * num_outcomes * logits.element_size())
    if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real):
        raise TypeError(f"baseline must be a finite number, got {describe(baseline)}")
    b = check_finite("baseline", torch.tensor(float(baseline), dtype=logits.dtype))
    eye = torch.eye(num_outcomes, dtype=logits.dtype, device=logits.device)
    summed = torch.zeros(num_outcomes, dtype=logits.dtype, device=logits.device)
    mask = torch.zeros(num_outcomes, dtype=torch.bool, device=logits.device)
    if num_summed:
        top = torch.topk(probs, num_summed).indices  # C: the likeliest outcomes
        mask[top] = True
        values = _f_at(f, top, logits.dtype) - b  # (|C|,)
        summed = (probs[top] * values) @ (eye[top] - probs)  # Σ_C π_k g(k), (K,)
    rest = 1 - probs[mask].sum()  # 1 - π_C
    q = Categorical(logits=logits.masked_fill(mask, float("-inf")))
    j = q.sample((num_samples,))  # (N,)
    values = _f_at(f, j, logits.dtype) - b
    return summarize(summed + rest * values[:, None] * (eye[j] - probs))


# ---------------------------------------------------------------- NVIL


class VarianceNormalizer:
    """Running centring and scaling of a learning signal, as in NVIL (Mnih and Gregor 2014).

    Each call to :meth:`update` with a batch of signals l_n (e.g. f(x_n) - b(input_n))
    updates exponential moving averages of their batch mean and variance,

        c ← α c + (1 - α) mean_n l_n,   v ← α v + (1 - α) var_n l_n,

    (α = ``decay``; the first batch initializes c and v) and returns (l_n - c) / max(1, √v).
    Subtracting c is a baseline; dividing by max(1, √v) rescales the gradient step by a
    positive number, which changes its length, not its expected direction, and only when the
    signal's sd exceeds 1. Because c includes the current batch with weight 1 - α, the
    centred signal is not exactly independent of each draw: a bias of order (1 - α)/N,
    the same compromise as in NVIL's Algorithm 1.

    Args:
        decay: α in [0, 1).

    Attributes:
        mean: c (None before the first update).
        variance: v (None before the first update).

    Example:
        >>> normalizer = VarianceNormalizer(decay=0.5)
        >>> normalizer.update(torch.tensor([1.0, 3.0]))  # c = 2, v = 2: divide by √2
        tensor([-0.7071,  0.7071])
    """

    def __init__(self, decay=0.9):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"decay must be a number in [0, 1), got {describe(decay)}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.mean: torch.Tensor | None = None
        self.variance: torch.Tensor | None = None

    def update(self, signal) -> torch.Tensor:
        """Update c and v with the batch ``signal`` (N,), N >= 1; return it normalized, detached."""
        signal = check_samples("signal", signal, min_samples=1)
        if signal.dim() != 1:
            raise ValueError(f"signal must have shape (N,), got {describe(signal)}")
        batch_mean = signal.mean()
        batch_var = signal.var() if signal.shape[0] > 1 else torch.zeros_like(batch_mean)
        if self.mean is None:
            self.mean, self.variance = batch_mean, batch_var
        else:
            a = self.decay
            self.mean = a * self.mean.to(signal) + (1 - a) * batch_mean
            self.variance = a * self.variance.to(signal) + (1 - a) * batch_var
        return (signal - self.mean) / self.variance.sqrt().clamp_min(1.0)
