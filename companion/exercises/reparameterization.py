"""Checkers of the implement-it exercises of the reparameterization chapter.

- :func:`check_weibull_rsample`: a Weibull sampler by the inverse CDF, differentiable in its
  scale and concentration (``ex-rp-weibull``).
- :func:`check_pathwise_normal`: per-sample pathwise gradients of E[f(x)], x ~ N(μ, σ²),
  with respect to (μ, σ) (``ex-rp-pathwise-normal``).

Each builds its test problem from closed forms (the Weibull distribution function and
moments, the Gaussian expectations of a trigonometric polynomial) and from
:func:`companion.quadrature.gaussian_expectation`, and judges the student's function with the
tests of :mod:`companion.exercises._core` (false-alarm rate 1e-4 each, resolution at most 10%).
"""

from __future__ import annotations

import contextlib
import math

import torch

from ..quadrature import gaussian_expectation
from ._core import Verdict, exercise

__all__ = ["check_weibull_rsample", "check_pathwise_normal"]


@contextlib.contextmanager
def _one_thread():
    """Run the student's small tensor operations on one thread, restoring the setting after.

    A checker calls the function hundreds of times on tensors of a few hundred numbers, where
    a second thread only adds waiting (seconds, on a busy machine, instead of a fraction).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Two Weibull laws at once, as a batch: scales λ and concentrations κ.
_SCALE = (2.0, 0.5)
_CONCENTRATION = (1.5, 0.7)
_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)  # the distribution function is tested at these quantiles
_WEIBULL_CALLS, _WEIBULL_DRAWS = 400, 100


def _weibull_cdf(q, scale, concentration):
    return 1 - torch.exp(-((q / scale) ** concentration))


def check_weibull_rsample(weibull_rsample) -> Verdict:
    """Check a student's Weibull sampler by the inverse CDF.

    The student's function: ``weibull_rsample(scale, concentration, num_samples) -> x``, with
    ``scale`` (λ) and ``concentration`` (κ) positive tensors of one shape ``(*batch,)`` (they
    may require grad) and ``x`` of shape ``(num_samples, *batch)``, draws of the Weibull law
    F(x) = 1 − exp(−(x/λ)^κ), differentiable in λ and κ along the inverse-CDF path
    x = λ(−log(1 − u))^{1/κ}.

    What is verified, on the batch λ = (2, 0.5), κ = (1.5, 0.7), in float64:

    - the result is a finite floating tensor of shape ``(num_samples, 2)``; the inputs are
      left unchanged; fresh draws on each call, reproducible under ``torch.manual_seed``;
    - the law: over 400 calls of 100 draws, the fractions of draws below the 10%, 25%, 50%,
      75% and 90% quantiles of each law (a z-test per level and law, Bonferroni over the 10;
      it catches an error of about 7% of the probability at the 10% level, less above), and
      the mean λ Γ(1 + 1/κ) (resolution about 3%), and the independence of the two
      coordinates (both below their medians in a quarter of the draws, resolution about 3%);
    - the gradient reaches λ and κ, and equals the path derivative exactly (to 1e-6):
      ∂x/∂λ = x/λ and ∂x/∂κ = −(x/κ) log(x/λ), summed over the draws.

    Mistakes it names: one u for all the draws of a call; λ used as a rate (x/λ in place of
    λ x); the exponent κ in place of 1/κ; ``** 1/κ`` without parentheses; a gradient that
    does not reach θ (``sample()``, ``.detach()``, ``torch.no_grad()``); a gradient that is
    not the path derivative; one u shared by the coordinates of the batch; wrong shape;
    seeding inside the function; numpy's or Python's random numbers; modifying an input in
    place.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with (
        _one_thread(),
        exercise(
            "Weibull sampler by the inverse CDF", weibull_rsample, argument="weibull_rsample"
        ) as ex,
    ):
        scale = torch.tensor(_SCALE, dtype=torch.float64, requires_grad=True)
        concentration = torch.tensor(_CONCENTRATION, dtype=torch.float64, requires_grad=True)
        x = ex.call(scale, concentration, 1000)
        ex.expect_tensor(x, shape=(1000, 2), what="the draws")
        if bool((x.detach() < 0).any()):
            ex.fail("some draws are negative, but a Weibull variable is positive")
        if bool((x.detach() == x.detach()[0]).all()):
            ex.fail(
                "the draws of one call are all the same: draw a fresh u for each of the "
                "num_samples draws"
            )
        for what, wrt in (("λ (scale)", scale), ("κ (concentration)", concentration)):
            ex.expect_grad(x, wrt, what=f"the draws, with respect to {what}")

        lam, kap = scale.detach(), concentration.detach()

        def draw():
            return ex.call(lam, kap, _WEIBULL_DRAWS)

        ex.expect_fresh_draws(draw, what="the draws")
        ex.expect_reproducible(draw, what="the draws")

        draws = ex.repeat(draw, times=_WEIBULL_CALLS).double()  # (R, n, 2)
        mean = lam * torch.exp(torch.lgamma(1 + 1 / kap))  # E[x] = λ Γ(1 + 1/κ)
        law_hint = "the draws do not follow the Weibull law: x = F⁻¹(u) with u ~ U(0, 1)"
        precedence = (
            "writing ** 1/κ without parentheses (raising to the power 1, then dividing by κ)"
        )
        ex.expect_mean(
            draws.mean(1),
            mean,
            what="the mean of the draws",
            mistakes={
                "using λ as a rate (dividing by λ instead of multiplying)": mean / lam**2,
                "raising to the power κ instead of 1/κ": lam * torch.exp(torch.lgamma(1 + kap)),
                precedence: lam / kap,  # x = λ E/κ with E ~ Exp(1)
            },
            hint=law_hint,
        )
        levels = torch.tensor(_LEVELS, dtype=torch.float64)[:, None]  # (5, 1)
        quantiles = lam * (-torch.log1p(-levels)) ** (1 / kap)  # (5, 2)
        below = (draws[:, :, None, :] <= quantiles).double().mean(1)  # (R, 5, 2)
        rate = _weibull_cdf(quantiles, 1 / lam, kap)  # λ used as a rate: x/λ = (λ² x)/λ
        inverted = 1 - torch.exp(-((quantiles / lam) ** (1 / kap)))  # exponent κ for 1/κ
        ex.expect_mean(
            below,
            levels.expand(-1, 2),
            what="the fractions of draws below the quantiles",
            mistakes={
                "using λ as a rate (dividing by λ instead of multiplying)": rate,
                "raising to the power κ instead of 1/κ": inverted,
                precedence: 1 - torch.exp(-quantiles * kap / lam),
            },
            hint=law_hint,
        )

        medians = lam * math.log(2) ** (1 / kap)  # (2,)
        both_below = (draws <= medians).all(-1).double().mean(1)  # (R,)
        ex.expect_mean(
            both_below,
            torch.tensor(0.25, dtype=torch.float64),
            what="the fraction of draws with both coordinates below their medians",
            mistakes={"one u shared by every coordinate of the batch": 0.5},
            hint="the coordinates of the batch must be independent draws",
        )

        # the path derivative, exactly, on the draws the student returned
        grad_scale, grad_conc = torch.autograd.grad(x.sum(), (scale, concentration))
        xd = x.detach().double()
        log_ratio = torch.where(xd > 0, torch.log(xd.clamp_min(1e-300) / lam), 0.0)
        ex.expect_close(
            grad_scale,
            (xd / lam).sum(0),
            what="Σ_n ∂x_n/∂λ",
            rtol=1e-6,
            hint="the path derivative is ∂x/∂λ = x/λ",
        )
        ex.expect_close(
            grad_conc,
            (-(xd / kap) * log_ratio).sum(0),
            what="Σ_n ∂x_n/∂κ",
            rtol=1e-6,
            atol=1e-8,
            hint="the path derivative is ∂x/∂κ = −(x/κ) log(x/λ)",
        )
    return ex.verdict


# The test function of the pathwise exercise: f(x) = sin x + x²/2, at μ = 0.5, σ = 0.8.
_MU, _SIGMA = 0.5, 0.8
_PATHWISE_CALLS, _PATHWISE_DRAWS = 400, 50


def _f(x):
    return torch.sin(x) + 0.5 * x**2


def _df(x):
    return torch.cos(x) + x


def _gaussian_moments(g):
    """Mean and variance of g(ε) (shape (K, 2) per node), ε ~ N(0, 1), by quadrature."""
    mean = gaussian_expectation(g, num_nodes=80)
    return mean, gaussian_expectation(lambda e: g(e) ** 2, num_nodes=80) - mean**2


def check_pathwise_normal(pathwise_normal) -> Verdict:
    """Check a student's per-sample pathwise gradients for a normal distribution.

    The student's function: ``pathwise_normal(f, mu, sigma, num_samples) -> g``, with ``f``
    elementwise and differentiable, mapping draws ``(num_samples,)`` to values
    ``(num_samples,)``, ``mu`` and ``sigma`` 0-dim tensors, and ``g`` of shape
    ``(num_samples, 2)``: row n is ∇_(μ,σ) f(x(θ, ε_n)) along the path x = μ + σ ε_n,
    ε_n ~ N(0, 1), that is f'(x_n) (1, ε_n).

    What is verified, with f(x) = sin x + x²/2 at (μ, σ) = (0.5, 0.8), in float64:

    - the result is a finite floating tensor ``(num_samples, 2)`` whose rows differ (one
      gradient per draw); fresh draws on each call, reproducible under ``torch.manual_seed``;
    - unbiasedness: over 400 calls of 50 draws, the mean of the rows against the exact
      gradient (e^{−σ²/2} cos μ + μ, σ(1 − e^{−σ²/2} sin μ)) (resolution about 1.5% and 7%);
    - the variance of a call's mean row is at most 1.2 times the pathwise estimator's, known
      exactly by Gauss–Hermite quadrature (the score-function estimator's is about 13 times
      larger here).

    Mistakes it names: the σ-component without the factor ε (∂x/∂σ = ε forgotten); x in
    place of ε in the σ-component; the ε of the σ-component drawn apart from the ε of x;
    the two columns swapped; rows divided by N (the gradient of the average) or multiplied
    by N; the rows all equal (one θ shared by all draws: the gradient of their sum or
    average, repeated); the score-function estimator (its variance); wrong shape; seeding
    inside the function; numpy's random numbers.

    Not tested: the independence of the rows. Rows made from dependent noise (antithetic
    pairs ε and −ε, say) have the right mean, and can pass.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with (
        _one_thread(),
        exercise(
            "pathwise gradients for a normal distribution",
            pathwise_normal,
            argument="pathwise_normal",
        ) as ex,
    ):
        mu = torch.tensor(_MU, dtype=torch.float64)
        sigma = torch.tensor(_SIGMA, dtype=torch.float64)
        g = ex.call(_f, mu, sigma, _PATHWISE_DRAWS)
        ex.expect_tensor(g, shape=(_PATHWISE_DRAWS, 2), what="the per-sample gradients")
        if bool((g.detach() == g.detach()[0]).all()):
            ex.fail(
                "wrong reduction: every row of the per-sample gradients is the same. Return one "
                "gradient per draw (row n is the gradient of f(x_n) alone: give every draw its "
                "own copy of θ), not the gradient of the average repeated"
            )

        def call():
            return ex.call(_f, mu, sigma, _PATHWISE_DRAWS)

        ex.expect_fresh_draws(call, what="the per-sample gradients")
        ex.expect_reproducible(call, what="the per-sample gradients")
        means = ex.repeat(lambda: call().mean(0), times=_PATHWISE_CALLS)  # (R, 2)

        def path(e):  # (g_μ, g_σ) = f'(x) (1, ε), x = μ + σε
            d = _df(_MU + _SIGMA * e)
            return torch.stack([d, d * e], dim=-1)

        exact, variance = _gaussian_moments(path)
        d_mean = gaussian_expectation(lambda e: _df(_MU + _SIGMA * e), num_nodes=80)
        dx_mean = gaussian_expectation(
            lambda e: _df(_MU + _SIGMA * e) * (_MU + _SIGMA * e), num_nodes=80
        )
        n = _PATHWISE_DRAWS
        ex.expect_mean(
            means,
            exact,
            what="the mean per-sample gradient",
            mistakes={
                "dropping the factor ∂x/∂σ = ε in the σ-component": torch.stack([d_mean, d_mean]),
                "using x in place of ε in the σ-component": torch.stack([d_mean, dx_mean]),
                "drawing the ε of the σ-component apart from the ε of x": torch.stack(
                    [d_mean, torch.zeros_like(d_mean)]
                ),
                "the two columns swapped (column 0 is ∂/∂μ, column 1 is ∂/∂σ)": exact.flip(0),
                "every row divided by N (the gradient of the average of f over the draws, "
                "where row n is the gradient of f(x_n) alone)": exact / n,
                "every row multiplied by N (a sum over the N draws where none is asked)": exact * n,
            },
            hint="the pathwise gradient of one draw is f'(x)(∂x/∂μ, ∂x/∂σ) = f'(x)(1, ε)",
        )
        ex.expect_variance(
            means,
            at_most=1.2 * variance / _PATHWISE_DRAWS,
            what="the mean rows of one call",
            hint="is it the score-function estimator, or does it add noise to the path?",
        )
        ex.verified(
            f"exact variance of one per-sample gradient: "
            f"({variance[0]:.4g}, {variance[1]:.4g}), by quadrature"
        )
    return ex.verdict
