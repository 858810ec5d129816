"""Checkers of the implement-it exercises of Chapter 2 (gradients of expectations).

- :func:`check_normal_gradient_samples`: the per-sample pathwise and score-function
  gradients of E[f(x)], x ~ N(μ, σ²), with respect to θ = (μ, σ), written by hand.
- :func:`check_central_difference`: the central finite-difference estimator of that gradient
  with common random numbers.

Both use the chapter's cosine example, f(x) = cos(ωx), whose expectation and difference
quotients have closed forms (eq-grad-cos, eq-grad-cos-quotient); variances come from
Gauss–Hermite quadrature (:func:`companion.quadrature.gaussian_expectation`).
"""

from __future__ import annotations

import math

import torch

from ..quadrature import gaussian_expectation
from ._core import Verdict, exercise

__all__ = ["check_normal_gradient_samples", "check_central_difference"]

_OMEGA, _LOC, _SCALE = 2.0, 1.0, 0.5


def _f(x):
    return torch.cos(_OMEGA * x)


def _f_prime(x):
    return -_OMEGA * torch.sin(_OMEGA * x)


def _pair(*columns):
    return torch.stack(columns, dim=-1)


def check_normal_gradient_samples(normal_gradient_samples) -> Verdict:
    """Check a student's per-sample pathwise and score-function gradients of a normal.

    The student's function: ``normal_gradient_samples(f, f_prime, loc, scale, eps)`` returning
    a pair ``(pathwise, score)`` of tensors, each of shape ``(N, 2)``: for the noise ``eps``,
    shape ``(N,)``, and x_n = μ + σ ε_n, row n of ``pathwise`` is ∇θ f(x(θ, ε_n)) =
    (f'(x_n), f'(x_n) ε_n) (eq-grad-pathwise) and row n of ``score`` is
    f(x_n) ∇θ log p_θ(x_n) (eq-grad-score), with θ = (μ, σ); written by hand, from ``f``,
    its derivative ``f_prime`` and the noise, without autograd.

    What is verified, with f(x) = cos(2x), μ = 1, σ = 0.5 and 1000 fixed draws of ε (exact
    comparisons, to a relative 1e-6): the pair's type, order and shapes; each row of both
    tensors; that ``eps`` is left unchanged.

    Mistakes it names: the pair returned as (score, pathwise); pathwise, x in place of ε in
    the σ term (∂x/∂σ = ε), f in place of f', the coordinates swapped; score function, a
    missing 1/σ, x in place of ε = (x − μ)/σ, x − μ not divided by σ² (or divided by σ), a
    missing −1/σ in the σ-coordinate, a sign error (in both coordinates or in the σ one),
    f' in place of f, the score alone without the factor f(x_n), the coordinates swapped.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with exercise(
        "per-sample gradients of a normal",
        normal_gradient_samples,
        argument="normal_gradient_samples",
    ) as ex:
        eps = torch.randn(1000, dtype=torch.float64)
        result = ex.call(_f, _f_prime, _LOC, _SCALE, eps)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            ex.fail(
                "your function should return a pair (pathwise, score) of tensors of shape "
                f"(N, 2), got {type(result).__name__}"
            )
        pathwise, score = result
        for value, what in (
            (pathwise, "the pathwise matrix"),
            (score, "the score-function matrix"),
        ):
            ex.expect_tensor(value, shape=(len(eps), 2), what=what)
        x, s = _LOC + _SCALE * eps, _SCALE
        fx, dfx = _f(x), _f_prime(x)
        score_mu, score_sigma = eps / s, (eps**2 - 1) / s
        exact_pathwise = _pair(dfx, dfx * eps)
        exact_score = fx[:, None] * _pair(score_mu, score_sigma)
        swapped = [
            torch.allclose(mine.detach().double(), theirs, rtol=1e-4, atol=1e-6)
            for mine, theirs in ((pathwise, exact_score), (score, exact_pathwise))
        ]
        if any(swapped):
            ex.fail(
                "the pair is in the wrong order: your first matrix is the score-function one "
                "(or your second the pathwise one); return (pathwise, score)"
            )
        ex.expect_close(
            pathwise,
            exact_pathwise,
            what="the matrix of pathwise gradients (f'(x), f'(x) ε)",
            rtol=1e-6,
            atol=1e-9,
            mistakes={
                "x in place of ε in the σ term (the path's derivative ∂x/∂σ is ε)": _pair(
                    dfx, dfx * x
                ),
                "f in place of f'": _pair(fx, fx * eps),
                "the two coordinates swapped": _pair(dfx * eps, dfx),
            },
            hint="differentiate f(μ + σε) with respect to μ and to σ, with ε held fixed",
        )
        ex.expect_close(
            score,
            exact_score,
            what="the matrix of score-function terms f(x) ∇θ log p_θ(x)",
            rtol=1e-6,
            atol=1e-9,
            mistakes={
                "a missing 1/σ in the score": fx[:, None] * _pair(eps, eps**2 - 1),
                "x in place of ε = (x − μ)/σ": fx[:, None] * _pair(x / s, (x**2 - 1) / s),
                "x − μ not divided by σ² in ∂μ log p": fx[:, None] * _pair(x - _LOC, score_sigma),
                "(x − μ)/σ in place of (x − μ)/σ² in ∂μ log p": fx[:, None]
                * _pair(eps, score_sigma),
                "a missing −1/σ in ∂σ log p": fx[:, None] * _pair(score_mu, eps**2 / s),
                "a sign error": -fx[:, None] * _pair(score_mu, score_sigma),
                "a sign error in ∂σ log p": fx[:, None] * _pair(score_mu, -score_sigma),
                "f' in place of f": dfx[:, None] * _pair(score_mu, score_sigma),
                "the score without the factor f(x_n)": _pair(score_mu, score_sigma),
                "the two coordinates swapped": fx[:, None] * _pair(score_sigma, score_mu),
            },
            hint="differentiate log p_θ(x) = −(x − μ)²/(2σ²) − log σ − log(2π)/2 with x fixed",
        )
    return ex.verdict


_H, _FD_SAMPLES, _FD_REPEATS = 0.2, 100, 300


def _fd_problem():
    """The exact central quotients in μ and σ, and per-sample variances with and without CRN."""
    damping = lambda s: math.exp(-(_OMEGA**2) * s**2 / 2)  # noqa: E731
    quotient = torch.tensor(
        [
            -math.sin(_OMEGA * _H) / _H * math.sin(_OMEGA * _LOC) * damping(_SCALE),
            math.cos(_OMEGA * _LOC) * (damping(_SCALE + _H) - damping(_SCALE - _H)) / (2 * _H),
        ],
        dtype=torch.float64,
    )  # eq-grad-cos-quotient, and its analogue in σ

    def crn(e):  # g_n for one shared ε_n, both coordinates, (K, 2)
        return _pair(
            (_f(_LOC + _H + _SCALE * e) - _f(_LOC - _H + _SCALE * e)) / (2 * _H),
            (_f(_LOC + (_SCALE + _H) * e) - _f(_LOC + (_SCALE - _H) * e)) / (2 * _H),
        )

    var_crn = gaussian_expectation(lambda e: crn(e) ** 2) - gaussian_expectation(crn) ** 2

    def var_f(loc, scale):  # σ_f² under N(loc, scale²)
        m1, m2 = gaussian_expectation(lambda x: _pair(_f(x), _f(x) ** 2), loc, scale)
        return m2 - m1**2

    var_independent = torch.stack(
        [
            var_f(_LOC + _H, _SCALE) + var_f(_LOC - _H, _SCALE),
            var_f(_LOC, _SCALE + _H) + var_f(_LOC, _SCALE - _H),
        ]
    ) / (4 * _H**2)  # eq-grad-fd-var-indep
    return quotient, var_crn, var_independent


def check_central_difference(central_difference) -> Verdict:
    """Check a student's central finite-difference gradient with common random numbers.

    The student's function: ``central_difference(f, loc, scale, num_samples, step) -> Tensor``
    of shape ``(2,)``, the estimate of ∇θ E[f(x)], x ~ N(μ, σ²), θ = (μ, σ): draw
    ``num_samples`` values ε_n ~ N(0, 1) with torch and average, for each coordinate d,
    g_n[d] = (f(x_n⁺) − f(x_n⁻))/(2h) (eq-grad-fd), where x_n^± is the draw at θ ± h e_d made
    from the same ε_n (common random numbers): μ ± h + σ ε_n, and μ + (σ ± h) ε_n.

    What is verified, with f(x) = cos(2x), μ = 1, σ = 0.5, h = 0.2:

    - a tensor of shape ``(2,)``; f evaluated at exactly 2D · num_samples = 4 · num_samples
      points; fresh draws on every call, reproducible under ``torch.manual_seed``;
    - unbiased for the exact central quotients: 300 estimates from 100 samples average to
      them (resolution about 5% of the smaller coordinate, at the false-alarm rate 1e-4);
    - variance at most 1.5 times that of a correct estimate (by quadrature); independent
      draws at θ + h e_d and θ − h e_d have 4 to 5 times it.

    Mistakes it names: a sign error; dividing by h instead of 2h; the coordinates swapped;
    summing the g_n instead of averaging them; independent draws in place of common random
    numbers; a forward difference, or any other number of evaluations of f; a function that
    seeds itself or draws with numpy.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with exercise(
        "central finite differences", central_difference, argument="central_difference"
    ) as ex:
        quotient, var_crn, var_independent = _fd_problem()
        count = [0]

        def counted(x):
            count[0] += torch.as_tensor(x).numel()
            return _f(x)

        one = ex.call(counted, _LOC, _SCALE, _FD_SAMPLES, _H)
        ex.expect_tensor(one, shape=(2,), what="the estimate")
        if count[0] != 4 * _FD_SAMPLES:
            extra = (
                ": that is a forward difference, D + 1 = 3 per sample; the central one "
                "evaluates f at θ + h e_d and θ − h e_d for each coordinate"
                if count[0] == 3 * _FD_SAMPLES
                else ""
            )
            ex.fail(
                f"your function evaluates f at {count[0]} points for num_samples = "
                f"{_FD_SAMPLES}, where central differences in D = 2 coordinates evaluate it "
                f"2D · num_samples = {4 * _FD_SAMPLES} times{extra}"
            )
        ex.verified(f"evaluates f 2D · num_samples = {4 * _FD_SAMPLES} times")
        draw = lambda: ex.call(_f, _LOC, _SCALE, _FD_SAMPLES, _H)  # noqa: E731
        ex.expect_fresh_draws(draw, what="the estimate")
        ex.expect_reproducible(draw, what="the estimate")
        draws = ex.repeat(draw, _FD_REPEATS)
        ex.expect_mean(
            draws,
            quotient,
            what="the estimates of the central quotients (J(θ + h e_d) − J(θ − h e_d))/(2h)",
            mistakes={
                "a sign error (f(x⁻) − f(x⁺))": -quotient,
                "dividing by h instead of 2h": 2 * quotient,
                "the two coordinates swapped": quotient.flip(0),
                "summing over the N samples instead of averaging": _FD_SAMPLES * quotient,
            },
            hint="each coordinate moves θ by ± h along that coordinate only",
        )
        ratio = (var_independent / var_crn).min().item()
        ex.expect_variance(
            draws,
            at_most=1.5 * var_crn / _FD_SAMPLES,
            what="the estimates",
            hint=f"independent draws at θ + h e_d and θ − h e_d have {ratio:.1f} times this "
            "variance or more: reuse the same ε_n for both (common random numbers)",
        )
    return ex.verdict
