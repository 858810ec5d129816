"""Black-box variational inference for Bayesian logistic regression (Mohamed et al. 2020, §8.3).

The model: weights w ∈ ℝ^D with prior N(0, prior_scale² I), labels y_i ~ Bernoulli(sigmoid(x_iᵀw)).
The approximation: q(w) = N(loc, diag(scale²)), with scale = exp(log_scale) (the survey's
log-sd parameterization). The objective, the evidence lower bound, is

    ELBO(loc, scale) = E_q[f(w)] - KL(q ‖ prior),   f(w) = Σ_i log p(y_i | x_i, w),

with the KL in closed form. Only E_q[f] needs a gradient estimator. Under q the logit
z_i = x_iᵀw is N(x_iᵀ loc, Σ_j x_ij² scale_j²), and log p(y_i | z_i) = y_i z_i - softplus(z_i),
so E_q[f] is a sum of one-dimensional Gaussian expectations, computed here EXACTLY (to near
machine precision) by Gauss–Hermite quadrature (:mod:`companion.quadrature`). The exact ELBO
and, by autograd through the quadrature, its exact gradient measure each estimator's bias
and variance without Monte Carlo error.

:func:`fit_bbvi` ascends the ELBO with one of three estimators of ∇E_q[f] (pathwise, score
function with an optional baseline, measure-valued), each optionally with the delta-method
control variate (Paisley et al. 2012; Miller et al. 2017), and logs the exact ELBO, the
variance of the gradient estimate with and without the control variate (the survey's
recommendation), and the number of evaluations of f spent. f is linear-logistic, so its
gradient and Hessian are written out (∇f(w) = Xᵀ(y - sigmoid(Xw)), H = -Xᵀ diag(π(1-π)) X with
π = sigmoid(Xw)) and the measure-valued estimator, which changes one coordinate of w at a
time, updates the logits by a rank-one term: all estimators run vectorized over samples.
The tests check them against :mod:`companion.measure_valued`,
:mod:`companion.control_variates` and autograd.

Differences from the survey's code (google-deepmind/mc_gradients): the full data set enters
every step (the survey used minibatches of 32, scaled to the data-set size), so the only
noise is the estimator's; the ELBO is logged exactly instead of from 1,000 posterior
samples; and runs are a few hundred steps instead of 5,000. Kept: q initialized at
N(0, I), the log-sd parameterization, plain gradient ascent with a cosine-decayed learning
rate, the analytic KL, and the delta control variate with coefficient 1 or with a coefficient
estimated from separate pilot draws, pooled over each parameter block as the survey's
compute_control_variate_coeff does (``cv_coefficient="pooled"``). Changed: the moving-average
baseline uses previous steps only (the survey's moving average includes the current batch,
which biases it slightly).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from numpy.polynomial.legendre import leggauss

from ._validation import (
    as_finite_tensor,
    check_allocation,
    check_finite,
    check_positive_int,
    check_real,
    describe,
)
from .control_variates import optimal_coefficient
from .measure_valued import RAYLEIGH
from .quadrature import MAX_NODES

# ESTIMATORS is not exported: companion.ESTIMATORS is the training module's tuple
__all__ = ["LogisticRegressionPosterior", "fit_bbvi"]

ESTIMATORS = ("pathwise", "score", "measure_valued")
_BASELINES = (None, "moving_average", "leave_one_out")
_CONTROL_VARIATES = (None, "delta")
_OPTIMIZERS = ("sgd", "adam")
_DIAGNOSTIC_SEED_OFFSET = 7_919  # seeds the generator of the variance measurements
_MAX_SEED = 2**64 - _DIAGNOSTIC_SEED_OFFSET  # torch seeds are below 2**64, both generators'
_T_MAX, _Z_MAX = 9.0, 40.0  # truncation of the exact expectation (φ(9), exp(-40) < 1e-17)


class LogisticRegressionPosterior:
    """The posterior of Bayesian logistic regression, with its exact Gaussian-q ELBO.

    Args:
        X: features, shape ``(n, D)`` (include a column of ones for an intercept).
        y: labels in {0, 1}, shape ``(n,)``.
        prior_scale: the prior's standard deviation, > 0: w ~ N(0, prior_scale² I).
        num_nodes: Gauss–Legendre nodes per side of the exact expectation (2 to 300).

    Example:
        >>> X = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
        >>> post = LogisticRegressionPosterior(X, torch.tensor([1.0, 0.0]))
        >>> post.log_likelihood(torch.zeros(3, 2)).shape  # f at 3 weight vectors
        torch.Size([3])
    """

    def __init__(self, X, y, prior_scale=1.0, *, num_nodes: int = 64):
        if isinstance(X, torch.Tensor) and not X.is_floating_point():
            raise TypeError(f"X must be a floating-point tensor, got {describe(X)}")
        X = as_finite_tensor("X", X, dtype=torch.float64)
        if X.dim() != 2 or X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"X must have shape (n, D) with n, D >= 1, got {tuple(X.shape)}")
        y = as_finite_tensor("y", y, dtype=torch.float64)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        if not ((y == 0) | (y == 1)).all():
            raise ValueError("y must hold labels 0 and 1 only")
        self.prior_scale = check_real("prior_scale", prior_scale, positive=True)
        num_nodes = check_positive_int("num_nodes", num_nodes, minimum=2)
        if num_nodes > MAX_NODES:
            raise ValueError(f"num_nodes must be at most {MAX_NODES}, got {num_nodes}")
        self.X, self.y = X, y
        self.num_data, self.dim = X.shape
        nodes, weights = leggauss(num_nodes)  # Gauss–Legendre on [-1, 1]
        self._nodes, self._weights = torch.from_numpy(nodes), torch.from_numpy(weights)

    def _weights_tensor(self, w) -> torch.Tensor:
        """w as a float64 tensor (its graph kept), checked: real, finite, shape (..., D)."""
        if isinstance(w, torch.Tensor):
            if w.is_complex() or w.dtype == torch.bool:
                raise TypeError(f"w must be a real tensor, got {describe(w)}")
            check_finite("w", w.detach())
        else:
            w = as_finite_tensor("w", w, dtype=torch.float64)
        if w.dim() < 1 or w.shape[-1] != self.dim:
            raise ValueError(f"w must have shape (..., {self.dim}), got {tuple(w.shape)}")
        return w.to(torch.float64)

    # f and ∇f without the checks of w, for the estimators' own (finite, well-shaped) draws
    def _f(self, w: torch.Tensor) -> torch.Tensor:
        z = w @ self.X.T  # (..., n)
        return z @ self.y - F.softplus(z).sum(-1)

    def _grad_f(self, w: torch.Tensor) -> torch.Tensor:
        return (self.y - torch.sigmoid(w @ self.X.T)) @ self.X

    def log_likelihood(self, w) -> torch.Tensor:
        """f(w) = Σ_i [y_i x_iᵀw - softplus(x_iᵀw)], batched: w ``(..., D)`` -> ``(...)``."""
        return self._f(self._weights_tensor(w))

    def log_joint(self, w) -> torch.Tensor:
        """log p(y, w) = f(w) + log N(w; 0, prior_scale² I), batched: ``(..., D)`` -> ``(...)``."""
        w = self._weights_tensor(w)
        s = self.prior_scale
        log_prior = -0.5 * (w / s).pow(2).sum(-1) - self.dim * (
            math.log(s) + 0.5 * math.log(2 * math.pi)
        )
        return self._f(w) + log_prior

    def grad_log_likelihood(self, w) -> torch.Tensor:
        """∇f(w) = Xᵀ(y - sigmoid(Xw)), batched: ``(..., D)`` -> ``(..., D)``."""
        return self._grad_f(self._weights_tensor(w))

    def hessian_log_likelihood(self, w) -> torch.Tensor:
        """H(w) = -Xᵀ diag(π(1 - π)) X, π = sigmoid(Xw), for one w ``(D,)`` -> ``(D, D)``."""
        w = self._weights_tensor(w)
        if w.dim() != 1:
            raise ValueError(
                f"w must have shape ({self.dim},), one weight vector, got {tuple(w.shape)}"
            )
        pi = torch.sigmoid(self.X @ w)
        return -(self.X.T * (pi * (1 - pi))) @ self.X

    def _check_q(self, loc, scale):
        out = []
        for name, value in (("loc", loc), ("scale", scale)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
            if value.shape != (self.dim,):
                raise ValueError(f"{name} must have shape ({self.dim},), got {tuple(value.shape)}")
            if not torch.isfinite(value.detach()).all():
                raise ValueError(f"{name} must be finite")
            out.append(value.to(torch.float64))
        if not (out[1].detach() > 0).all():
            raise ValueError("scale must be > 0 (a standard deviation)")
        return out

    def expected_log_likelihood(self, loc, scale) -> torch.Tensor:
        """E_q[f(w)] exactly: Σ_i [y_i m_i - E softplus(z_i)], z_i ~ N(m_i, v_i), by quadrature.

        m = X loc and v_i = Σ_j X_ij² scale_j², the logit's mean and variance under q. With
        softplus(z) = max(z, 0) + r(z), r(z) = log(1 + exp(-|z|)), and u_i = m_i / √v_i,
        E max(z_i, 0) = m_i Φ(u_i) + √v_i N(u_i; 0, 1) in closed form, and E r(z_i) by
        Gauss–Legendre in t = (z - m_i)/√v_i on each side of the kink t₀ = -u_i, over
        |t| <= 9 and |z| <= 40 (outside, the normal density or r is below 1e-17).
        Differentiable in loc and scale (autograd). Plain Gauss–Hermite on softplus converges
        slowly when v_i is large (its complex poles lie π/√v_i from the real t axis), hence
        the split.
        """
        loc, scale = self._check_q(loc, scale)
        m = self.X @ loc  # (n,)
        s = ((self.X**2) @ scale**2).sqrt()  # √v_i, the sd of the logit z_i under q, (n,)
        ratio = m / s
        relu = m * torch.special.ndtr(ratio) + s * torch.exp(-0.5 * ratio**2) / math.sqrt(
            2 * math.pi
        )
        kink = (-ratio).clamp(-_T_MAX, _T_MAX)  # (n,)
        low = torch.maximum(torch.full_like(m, -_T_MAX), kink - _Z_MAX / s)
        high = torch.minimum(torch.full_like(m, _T_MAX), kink + _Z_MAX / s)
        total = 0.0
        for a, b in ((low, kink), (kink, high)):  # the two sides of the kink
            half = (b - a) / 2  # (n,)
            t = (a + b)[:, None] / 2 + half[:, None] * self._nodes  # (n, K)
            z = m[:, None] + s[:, None] * t
            values = torch.log1p(torch.exp(-z.abs())) * torch.exp(-0.5 * t**2)
            total = total + half * (values @ self._weights) / math.sqrt(2 * math.pi)
        return m @ self.y - (relu + total).sum()

    def kl(self, loc, scale) -> torch.Tensor:
        """KL(N(loc, diag scale²) ‖ N(0, prior_scale² I)) in closed form."""
        loc, scale = self._check_q(loc, scale)
        s0 = self.prior_scale
        return (math.log(s0) - scale.log() + (scale**2 + loc**2) / (2 * s0**2) - 0.5).sum()

    def elbo(self, loc, scale) -> torch.Tensor:
        """The exact ELBO, E_q[f] - KL(q ‖ prior), a scalar (differentiable)."""
        return self.expected_log_likelihood(loc, scale) - self.kl(loc, scale)

    def elbo_grad(self, loc, scale) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact gradient of the ELBO in (loc, scale), by autograd through the quadrature."""
        loc, scale = self._check_q(loc, scale)
        loc, scale = loc.detach().requires_grad_(), scale.detach().requires_grad_()
        return torch.autograd.grad(self.elbo(loc, scale), (loc, scale))

    def expected_log_likelihood_grad(self, loc, scale) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact gradient of E_q[f] in (loc, scale): what every estimator estimates."""
        loc, scale = self._check_q(loc, scale)
        loc, scale = loc.detach().requires_grad_(), scale.detach().requires_grad_()
        return torch.autograd.grad(self.expected_log_likelihood(loc, scale), (loc, scale))


# ---------------------------------------------------------------- estimators, vectorized
# Each returns per-sample gradients of E_q[f] in (loc, log_scale), shape (R, N, 2D): R
# independent replicates of an N-sample estimate. g_log_scale = scale ⊙ g_scale (chain rule).


def _taylor(post, loc):
    """f(loc), ∇f(loc) and H(loc): the delta method's second-order model of f around loc."""
    return post.log_likelihood(loc), post.grad_log_likelihood(loc), post.hessian_log_likelihood(loc)


def _pathwise(post, loc, scale, noise, taylor):
    eps = noise[0]  # (R, N, D)
    grad = post._grad_f(loc + scale * eps)  # ∇f(w_n), (R, N, D)
    g = torch.cat([grad, grad * eps * scale], -1)
    if taylor is None:
        return g, None
    _, a, hess = taylor
    model_grad = a + (scale * eps) @ hess  # ∇f̃(w_n) = a + H (w_n - loc)
    phi = torch.cat([model_grad, model_grad * eps * scale], -1)
    phi_mean = torch.cat([a, hess.diagonal() * scale**2])  # (∇f(loc), diag(H) scale ⊙ scale)
    return g, phi - phi_mean


def _score_terms(post, loc, scale, noise, taylor):
    """f(w_n), the score ∇log q(w_n) in (loc, log_scale), and f̃(w_n) with E[f̃ score]."""
    eps = noise[0]
    values = post._f(loc + scale * eps)  # (R, N)
    score = torch.cat([eps / scale, eps**2 - 1], -1)  # (R, N, 2D)
    if taylor is None:
        return values, score, None, None
    f0, a, hess = taylor
    delta = scale * eps
    model = f0 + delta @ a + 0.5 * ((delta @ hess) * delta).sum(-1)  # f̃(w_n)
    return values, score, model, torch.cat([a, hess.diagonal() * scale**2])


def _mv_differences(post, loc, scale, eps, new_plus, new_minus, taylor):
    """f(x⁺) - f(x⁻) for each coordinate d, x^± = w_n with w_nd replaced by new_±[n, d].

    Rank-one update of the logits: z^± = z_n + X[:, d] (new_± - w_nd). Returns (R, N, D)
    for f and, when ``taylor`` is given, the same for the Taylor model f̃.
    """
    w = loc + scale * eps  # (R, N, D)
    z = w @ post.X.T  # (R, N, n)
    xy = post.y @ post.X  # Σ_i y_i X_id, (D,): the linear part of f changes by (new - w_nd) xy_d
    out = []
    for new in (new_plus, new_minus):
        zz = z[..., None, :] + (new - w)[..., None] * post.X.T  # (R, N, D, n)
        out.append(new * xy - F.softplus(zz).sum(-1))  # f(x^±) up to terms shared by ±
    diff = out[0] - out[1]
    if taylor is None:
        return diff, None
    _, a, hess = taylor
    delta = scale * eps
    slope = a + delta @ hess  # ∂f̃/∂w_d at w_n, (R, N, D)
    t_plus, t_minus = new_plus - w, new_minus - w
    model = (t_plus - t_minus) * slope + 0.5 * hess.diagonal() * (t_plus**2 - t_minus**2)
    return diff, model


def _measure_valued(post, loc, scale, noise, taylor):
    eps, w_plus, m, u = noise
    c_loc = 1.0 / (scale * math.sqrt(2 * math.pi))  # ∂μ N = c (p⁺ - p⁻), Rayleigh sides
    d_loc, t_loc = _mv_differences(
        post, loc, scale, eps, loc + scale * w_plus, loc - scale * w_plus, taylor
    )
    # ∂σ N = (1/σ)(p⁺ - p⁻): p⁺ double-sided Maxwell, p⁻ the normal itself (ε⁻ = m u, coupled)
    d_scale, t_scale = _mv_differences(
        post, loc, scale, eps, loc + scale * m, loc + scale * m * u, taylor
    )
    g = torch.cat([c_loc * d_loc, d_scale], -1)  # g_log_scale = scale · (1/scale) Δf
    if taylor is None:
        return g, None
    _, a, hess = taylor
    phi = torch.cat([c_loc * t_loc, t_scale], -1)
    return g, phi - torch.cat([a, hess.diagonal() * scale**2])


def _draw(estimator, shape, dtype, generator):
    eps = torch.randn(shape, dtype=dtype, generator=generator)
    if estimator != "measure_valued":
        return (eps,)
    uniform = torch.rand((3, *shape), dtype=dtype, generator=generator)
    w_plus = RAYLEIGH.scale.item() * (-torch.log1p(-uniform[0])).sqrt()  # Rayleigh(1)
    # double-sided Maxwell: ±√χ²₃, χ²₃ the squared norm of three standard normals
    chi = torch.randn((3, *shape), dtype=dtype, generator=generator).pow(2).sum(0).sqrt()
    m = torch.where(uniform[1] < 0.5, -chi, chi)
    return eps, w_plus, m, uniform[2]


def _cost_per_sample(estimator, dim):
    """Evaluations of f per sample: 1 (pathwise, with its gradient; score), 4D (measure-valued:
    2 per coordinate for the mean and 2 for the scale)."""
    return 4 * dim if estimator == "measure_valued" else 1


def _gradients(post, estimator, loc, scale, noise, taylor, beta, baselines):
    """Estimates of ∇E_q[f] in (loc, log_scale), shape (R, 2D), with and without the CV.

    ``beta`` is a number or a tensor (2D,) (one coefficient per coordinate).
    ``baselines`` = (b for the controlled signal, b for the plain signal): "leave_one_out",
    a moving-average value (a number or a tensor broadcastable to (R, 1 or 2D)), or None.
    Also returns the step means of the plain and of the controlled signal, shape (R, 1 or
    2D) (None where there is none), which the moving-average baseline tracks.
    """
    if estimator != "score":
        g, phi = (_pathwise if estimator == "pathwise" else _measure_valued)(
            post, loc, scale, noise, taylor
        )
        plain = g.mean(-2)
        if phi is None:
            return plain, plain, None, None
        return plain - beta * phi.mean(-2), plain, None, None
    values, score, model, phi_mean = _score_terms(post, loc, scale, noise, taylor)
    values = values[..., None]  # (R, N, 1)
    plain = _score_with_baseline(values, score, baselines[1])
    if taylor is None:
        return plain, plain, values.mean(-2), None
    # (f - β f̃ - b) ∇log q + β E[f̃ ∇log q]: φ = f̃ ∇log q, the baseline acts on f - β f̃
    beta = torch.as_tensor(beta, dtype=values.dtype)
    signal = values - beta * model[..., None]  # (R, N, 1) or (R, N, 2D)
    controlled = _score_with_baseline(signal, score, baselines[0]) + beta * phi_mean
    return controlled, plain, values.mean(-2), signal.mean(-2)


def _per_sample(post, estimator, loc, scale, noise, taylor):
    """Per-sample g_n and φ_n - E φ, shape (R, N, 2D), without baseline: for the pilot β."""
    if estimator == "pathwise":
        return _pathwise(post, loc, scale, noise, taylor)
    if estimator == "measure_valued":
        return _measure_valued(post, loc, scale, noise, taylor)
    values, score, model, phi_mean = _score_terms(post, loc, scale, noise, taylor)
    return values[..., None] * score, model[..., None] * score - phi_mean


def _pooled_coefficient(g, phi, dim, eps=1e-3):
    """One β per parameter block, Σ_d Cov(g_d, φ_d) / (Σ_d Var φ_d + eps), expanded to (2D,).

    g and φ: pilot per-sample values ``(..., P, 2D)`` in (loc, log_scale); returns
    ``(..., 2D)``. Moments with divisor P, as in the survey's compute_control_variate_coeff.
    """
    gc, pc = g - g.mean(-2, keepdim=True), phi - phi.mean(-2, keepdim=True)
    blocks = []
    for part in (slice(0, dim), slice(dim, 2 * dim)):
        cov = (gc[..., part] * pc[..., part]).mean(-2).sum(-1, keepdim=True)
        var = (pc[..., part] ** 2).mean(-2).sum(-1, keepdim=True)
        blocks.append((cov / (var + eps)).expand(*cov.shape[:-1], dim))
    return torch.cat(blocks, -1)


def _score_with_baseline(signal, score, baseline):
    """mean_n (signal_n - b_n) ∇log q(w_n); signal (R, N, K), score (R, N, 2D), K = 1 or 2D."""
    if isinstance(baseline, str):  # leave-one-out: b_n = mean of the other N - 1 signals
        n = signal.shape[-2]
        baseline = (signal.sum(-2, keepdim=True) - signal) / (n - 1)
    elif baseline is None:
        baseline = 0.0
    return ((signal - baseline) * score).mean(-2)


class _Diverged(Exception):
    """Raised inside fit_bbvi when the parameters or a gradient stop being finite."""


def _check_options(estimator, baseline, control_variate, optimizer, num_samples):
    for name, value, valid in (
        ("estimator", estimator, ESTIMATORS),
        ("baseline", baseline, _BASELINES),
        ("control_variate", control_variate, _CONTROL_VARIATES),
        ("optimizer", optimizer, _OPTIMIZERS),
    ):
        if not (value is None or isinstance(value, str)) or value not in valid:
            raise ValueError(f"{name} must be one of {valid}, got {describe(value)}")
    if baseline is not None and estimator != "score":
        raise ValueError(f"baseline applies to estimator='score' only, got estimator={estimator!r}")
    if baseline == "leave_one_out" and num_samples < 2:
        raise ValueError(f"baseline='leave_one_out' needs num_samples >= 2, got {num_samples}")


def fit_bbvi(
    posterior,
    estimator,
    *,
    num_samples,
    lr,
    num_steps,
    seed,
    control_variate=None,
    baseline=None,
    log_every=10,
    optimizer="sgd",
    cosine_decay=True,
    cv_coefficient=1.0,
    cv_pilot_samples=25,
    baseline_decay=0.9,
    variance_replicates=20,
) -> dict:
    """Maximize the ELBO over q = N(loc, diag exp(log_scale)²) by stochastic gradient ascent.

    Starts at loc = 0, log_scale = 0 (q = the prior at prior_scale 1), as the survey's code.
    Each step estimates ∇E_q[f] from ``num_samples`` draws with ``estimator``, adds the exact
    gradient of -KL, and takes a step on (loc, log_scale): plain gradient ascent with the
    learning rate lr·cos(π t / (2 T)) (``cosine_decay``, the survey's schedule) or Adam.

    Control variate "delta": φ is the estimator applied to the second-order Taylor model f̃
    of f at the current loc, whose expectation is known, (∇f(loc), diag(H) ⊙ scale²) in
    (loc, log_scale); the step uses g - β (φ - E φ) with β = ``cv_coefficient`` (1, as the
    survey's equal-sample runs). For the score function, the baseline then acts on f - β f̃.

    Baselines (score only): "moving_average" b = exponential average (``baseline_decay``)
    of the step means of the signal from PREVIOUS steps, so the estimate stays unbiased
    (the survey's snt.MovingAverage also folds in the current step's mean);
    "leave_one_out" b_n = mean of the other N - 1 signals.

    Evaluations of f (the budget axis): per sample 1 for pathwise (which also uses ∇f) and
    for the score function, 4D for measure-valued (two per coordinate for the mean, two for
    the scale); the delta control variate adds 1 per step (f, ∇f and H at loc), and an
    estimated β the pilot draws (P per step, at the estimator's cost per sample). Gradients
    and Hessians are NOT counted: the pathwise estimator needs ∇f at every draw, and the
    delta control variate needs ∇f and H at loc once per step; for this f, H = -Xᵀ diag(.) X
    costs O(n D²) operations, about D evaluations of f (each O(n D)).

    Logged every ``log_every`` steps (and at 0 and ``num_steps``): the exact ELBO, and the
    variance of the step's gradient estimate (total over the 2D coordinates of (loc,
    log_scale)), estimated from ``variance_replicates`` fresh N-sample estimates at the current
    parameters (these diagnostic draws are not counted as evaluations), with the control
    variate and, on the same draws, without it (NaN when there is none). A run whose ELBO
    becomes non-finite stops; its remaining entries are NaN and ``diverged`` is True. A run
    that diverged or whose last logged ELBO is below its starting ELBO is ``failed``: report
    it apart (a finite ELBO of -10⁹ is not a result to take a median of).

    Args:
        posterior: a :class:`LogisticRegressionPosterior`.
        estimator: "pathwise", "score" or "measure_valued".
        num_samples: N, draws per step (>= 2 for leave-one-out).
        lr: learning rate > 0.
        num_steps: T >= 1.
        seed: integer seed in [0, 2**64 - 7919) of a private torch.Generator (the global
            one is untouched).
        control_variate: None or "delta".
        baseline: None, "moving_average" or "leave_one_out" (score only).
        log_every: logging period in steps.
        optimizer: "sgd" (the survey's) or "adam".
        cosine_decay: multiply lr by cos(π t / (2 T)).
        cv_coefficient: β of the control variate: a number; "estimated", one coefficient
            per coordinate, β̂*_d = Cov(g_d, φ_d)/Var φ_d
            (:func:`companion.control_variates.optimal_coefficient`); or "pooled", one
            coefficient per parameter block (loc, log_scale),
            β̂ = Σ_d Cov(g_d, φ_d) / (Σ_d Var φ_d + 10⁻³), moments with divisor P: the
            survey's compute_control_variate_coeff (its estimate_cv_coeff=True), far
            steadier than the per-coordinate one from a few draws. Both are computed from
            ``cv_pilot_samples`` separate draws at each step (so the step stays unbiased),
            counted as evaluations.
        cv_pilot_samples: P >= 2 pilot draws for an estimated β.
        baseline_decay: decay of the moving average, in (0, 1).
        variance_replicates: R >= 2 fresh estimates per variance measurement, from a
            generator of their own (seeded with seed + 7919), so that logging never changes
            the training draws; 0 skips the measurement (variances NaN), for fast tuning.

    Returns:
        dict with tensors ``step`` (L,) int64, ``elbo``, ``variance``, ``variance_without_cv``,
        ``evaluations`` (L,) float64 (cumulative evaluations of f at each logged step), the
        final ``loc`` and ``scale`` (D,), ``diverged`` and ``failed`` (bool) and ``seconds``
        (wall time).

    Example:
        >>> from companion.data import load_breast_cancer
        >>> post = LogisticRegressionPosterior(*load_breast_cancer())
        >>> h = fit_bbvi(post, "pathwise", num_samples=5, lr=1e-3, num_steps=20, seed=0)
        >>> h["elbo"].shape, bool(h["elbo"][-1] > h["elbo"][0])
        (torch.Size([3]), True)
    """
    if not isinstance(posterior, LogisticRegressionPosterior):
        raise TypeError(
            f"posterior must be a LogisticRegressionPosterior, got {describe(posterior)}"
        )
    num_samples = check_positive_int("num_samples", num_samples)
    _check_options(estimator, baseline, control_variate, optimizer, num_samples)
    lr = check_real("lr", lr, positive=True)
    num_steps = check_positive_int("num_steps", num_steps)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {describe(seed)}")
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {_MAX_SEED}), got {seed}")
    log_every = check_positive_int("log_every", log_every)
    if not isinstance(cosine_decay, bool):
        raise TypeError(f"cosine_decay must be True or False, got {describe(cosine_decay)}")
    estimate_beta = isinstance(cv_coefficient, str)
    if estimate_beta and cv_coefficient not in ("estimated", "pooled"):
        raise ValueError(
            f"cv_coefficient must be a number, 'estimated' or 'pooled', got {cv_coefficient!r}"
        )
    beta = None if estimate_beta else check_real("cv_coefficient", cv_coefficient)
    pilot = check_positive_int("cv_pilot_samples", cv_pilot_samples, minimum=2)
    pilot = pilot if (estimate_beta and control_variate) else 0
    decay = check_real("baseline_decay", baseline_decay)
    if not 0 < decay < 1:
        raise ValueError(f"baseline_decay must be in (0, 1), got {decay}")
    replicates = check_positive_int("variance_replicates", variance_replicates, minimum=0)
    if replicates == 1:
        raise ValueError("variance_replicates must be 0 (no variance logged) or >= 2, got 1")
    # refuse impossible sizes before allocating: the largest tensor of one estimate holds,
    # per draw, the logits of the n data points (for each of the D coordinates when
    # measure-valued); the history holds 5 numbers per logged step
    dim, num_data = posterior.dim, posterior.num_data
    per_draw = 8 * (dim * num_data if estimator == "measure_valued" else dim + num_data)
    check_allocation("num_samples", num_samples, num_samples * per_draw)
    check_allocation(
        "variance_replicates", variance_replicates, replicates * num_samples * per_draw
    )
    check_allocation("cv_pilot_samples", cv_pilot_samples, pilot * per_draw)
    check_allocation("num_steps", num_steps, 5 * 8 * (num_steps // log_every + 2))

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)  # the training draws
    # the diagnostic draws come from their own stream: logging never changes the trajectory
    diagnostic_gen = torch.Generator().manual_seed(seed + _DIAGNOSTIC_SEED_OFFSET)
    dtype = torch.float64
    params = torch.zeros(2 * dim, dtype=dtype)  # (loc, log_scale)
    adam_m, adam_v = torch.zeros_like(params), torch.zeros_like(params)
    per_sample = _cost_per_sample(estimator, dim)
    cost = (num_samples + pilot) * per_sample + (control_variate is not None)
    moving = [None, None]  # moving averages of the controlled and the plain signal
    logged = list(range(0, num_steps, log_every)) + [num_steps]
    rows, diverged = [], False

    def gradients(loc, scale, reps, generator):
        taylor = _taylor(posterior, loc) if control_variate else None
        coefficient = beta
        if pilot:  # β* from a separate pilot batch (the survey's 25 draws): stays unbiased
            pilot_noise = _draw(estimator, (1, pilot, dim), dtype, generator)
            g, phi = _per_sample(posterior, estimator, loc, scale, pilot_noise, taylor)
            if not (torch.isfinite(g).all() and torch.isfinite(phi).all()):
                raise _Diverged
            if cv_coefficient == "pooled":
                coefficient = _pooled_coefficient(g[0], phi[0], dim)
            else:
                coefficient = optimal_coefficient(g[0], phi[0])
        noise = _draw(estimator, (reps, num_samples, dim), dtype, generator)
        b = moving if baseline == "moving_average" else (baseline, baseline)
        b = [0.0 if v is None else v for v in b] if baseline == "moving_average" else b
        return _gradients(posterior, estimator, loc, scale, noise, taylor, coefficient, b)

    for t in range(num_steps + 1):
        loc, log_scale = params[:dim], params[dim:]
        scale = log_scale.exp()
        try:
            if not (
                torch.isfinite(params).all() and torch.isfinite(scale).all() and (scale > 0).all()
            ):
                raise _Diverged
            if t in logged:
                elbo = float(posterior.elbo(loc, scale))
                if not math.isfinite(elbo):
                    raise _Diverged
                var = var_plain = math.nan
                if replicates:
                    with_cv, without, _, _ = gradients(loc, scale, replicates, diagnostic_gen)
                    var = float(with_cv.var(0).sum())
                    var_plain = float(without.var(0).sum()) if control_variate else math.nan
                rows.append((t, elbo, var, var_plain, t * cost))
            if t == num_steps:
                break
            g, _, plain_mean, signal_mean = gradients(loc, scale, 1, gen)
            if not torch.isfinite(g).all():
                raise _Diverged
        except _Diverged:
            diverged = True
            break
        if baseline == "moving_average":  # update AFTER use: b never depends on this step's draws
            for i, value in enumerate((signal_mean, plain_mean)):
                if value is not None:
                    v = value[0]  # (1,) or (2D,): one average per coordinate when β is
                    moving[i] = v if moving[i] is None else decay * moving[i] + (1 - decay) * v
        grad = g[0] - torch.cat(
            [loc / posterior.prior_scale**2, scale**2 / posterior.prior_scale**2 - 1]
        )
        rate = lr * math.cos(math.pi * t / (2 * num_steps)) if cosine_decay else lr
        if optimizer == "adam":
            adam_m.mul_(0.9).add_(0.1 * grad)
            adam_v.mul_(0.999).add_(0.001 * grad**2)
            step = adam_m / (1 - 0.9 ** (t + 1)) / ((adam_v / (1 - 0.999 ** (t + 1))).sqrt() + 1e-8)
        else:
            step = grad
        params = params + rate * step
    nan = math.nan
    while len(rows) < len(logged):
        rows.append((logged[len(rows)], nan, nan, nan, logged[len(rows)] * cost))
    columns = list(zip(*rows))
    failed = diverged or not columns[1][-1] >= columns[1][0]
    return {
        "step": torch.tensor(columns[0], dtype=torch.int64),
        "elbo": torch.tensor(columns[1], dtype=dtype),
        "variance": torch.tensor(columns[2], dtype=dtype),
        "variance_without_cv": torch.tensor(columns[3], dtype=dtype),
        "evaluations": torch.tensor(columns[4], dtype=dtype),
        "loc": params[:dim].clone(),
        "scale": params[dim:].exp(),
        "diverged": diverged,
        "failed": failed,
        "seconds": time.perf_counter() - start,
    }
