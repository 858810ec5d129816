"""Checkers of the implement-it exercises of Chapter 1 (Monte Carlo expectations).

- :func:`check_antithetic_estimate`: an antithetic estimator of E[f(x)], x ~ N(μ, σ²).
- :func:`check_importance_estimate`: the plain importance-sampling estimator of E_p[f] from
  draws of a proposal q.

Each builds its test problems from closed forms (the moment generating function of the
normal) and Gauss–Hermite quadrature (:func:`companion.quadrature.gaussian_expectation`).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from ..quadrature import gaussian_expectation
from ._core import Verdict, exercise

__all__ = ["check_antithetic_estimate", "check_importance_estimate"]


class _Counted:
    """Wraps f and counts the points it is evaluated at (the cost of an estimate)."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, x):
        self.count += torch.as_tensor(x).numel()
        return self.fn(x)


# The antithetic problem: f(x) = exp(a x) under N(μ, σ²), a σ = 1/2, so that antithetic pairs
# cut the variance of a pair mean by a factor of about 4.5 against two independent draws.
_LOC, _SCALE, _A = 0.3, 1.5, 1 / 3
_PAIRS, _REPEATS = 100, 400
_ODD_PAIRS = 50  # the pairs of the exact test with f(x) = x


def _exp_moments(loc, scale, a):
    """E[e^{ax}] and Var of the antithetic pair mean e^{aμ} cosh(aσε) (Chapter 1)."""
    t = a**2 * scale**2
    mean = math.exp(a * loc + t / 2)  # eq-mc-mgf
    var_pair = math.exp(2 * a * loc) * ((1 + math.exp(2 * t)) / 2 - math.exp(t))
    var_independent = math.exp(2 * a * loc) * (math.exp(2 * t) - math.exp(t)) / 2
    return mean, var_pair, var_independent


def check_antithetic_estimate(antithetic_estimate) -> Verdict:
    """Check a student's antithetic estimator of E[f(x)], x ~ N(μ, σ²).

    The student's function: ``antithetic_estimate(f, loc, scale, num_pairs) -> Tensor``, shape
    ``()``: draw ``num_pairs`` values ε_n ~ N(0, 1) with torch, form x_n = μ + σ ε_n and its
    mirror image x'_n = 2μ − x_n, and return the mean of the pair means (f(x_n) + f(x'_n))/2.
    ``f`` maps a tensor of points to the values at those points (same shape).

    What is verified, on f(x) = e^{ax} with μ = 0.3, σ = 1.5, a = 1/3 (aσ = 1/2):

    - a tensor of shape ``()``; f evaluated at exactly 2 · num_pairs points (the cost);
    - fresh draws on every call, reproducible under ``torch.manual_seed``;
    - with f(x) = x the estimate is μ exactly, whatever the draws (every pair cancels);
    - unbiased: 400 estimates from 100 pairs average to e^{aμ + a²σ²/2} (resolution about
      0.4% of the mean, at the false-alarm rate 1e-4);
    - variance at most 1.5 times the exact variance e^{2aμ}((1 + e^{2a²σ²})/2 − e^{a²σ²}) / 100
      of a correct estimate (independent pairs have about 4.5 times it).

    Mistakes it names: mirroring about 0 (x' = −x) instead of about the mean; adding the pair
    without halving it; summing the pair means instead of averaging them; independent draws
    in place of mirror images (or the same x twice), by the exact test with f(x) = x and by
    the variance; the wrong number of evaluations of f; a function that seeds itself or draws
    with numpy.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with exercise(
        "antithetic estimator", antithetic_estimate, argument="antithetic_estimate"
    ) as ex:
        mean, var_pair, var_independent = _exp_moments(_LOC, _SCALE, _A)
        f = _Counted(lambda x: torch.exp(_A * x))
        one = ex.call(f, _LOC, _SCALE, _PAIRS)
        ex.expect_tensor(one, shape=(), what="the estimate")
        if f.count != 2 * _PAIRS:
            ex.fail(
                f"your function evaluates f at {f.count} points for num_pairs = {_PAIRS}: an "
                f"antithetic estimate from num_pairs pairs evaluates f 2 · num_pairs = "
                f"{2 * _PAIRS} times, once at each x_n and once at its partner x'_n"
            )
        ex.verified(f"evaluates f 2 · num_pairs = {2 * _PAIRS} times")
        draw = lambda: ex.call(lambda x: torch.exp(_A * x), _LOC, _SCALE, _PAIRS)  # noqa: E731
        ex.expect_fresh_draws(draw, what="the estimate")
        ex.expect_reproducible(draw, what="the estimate")

        odd = ex.call(lambda x: x, _LOC, _SCALE, _ODD_PAIRS)
        ex.expect_tensor(odd, shape=(), what="the estimate for f(x) = x")
        ex.expect_close(
            odd,
            torch.tensor(_LOC, dtype=torch.float64),
            what="the estimate for f(x) = x",
            atol=1e-6 * _SCALE,
            rtol=1e-6,
            mistakes={
                "mirroring about 0 (x' = −x) instead of about the mean (x' = 2μ − x)": 0.0,
                "adding f(x) + f(x') without halving the pair": 2 * _LOC,
                "summing the pair means over the num_pairs pairs instead of averaging them": (
                    _ODD_PAIRS * _LOC
                ),
            },
            hint="with f(x) = x every pair mean (x + x')/2 equals μ whatever the draws: are "
            "x and x' made from the same ε, x' = 2μ − x?",
        )
        draws = ex.repeat(draw, _REPEATS)
        mirror0 = (mean + math.exp(-_A * _LOC + _A**2 * _SCALE**2 / 2)) / 2
        ex.expect_mean(
            draws,
            torch.tensor(mean, dtype=torch.float64),
            what=f"the estimates of E[exp(x/3)] (μ = {_LOC}, σ = {_SCALE})",
            mistakes={
                "adding f(x) + f(x') without halving the pair": 2 * mean,
                "mirroring about 0 (x' = −x) instead of about the mean": mirror0,
                "summing the pair means over the num_pairs pairs instead of averaging them": (
                    _PAIRS * mean
                ),
            },
            hint="both members of a pair have distribution N(μ, σ²), so the pair mean is unbiased",
        )
        ex.expect_variance(
            draws,
            at_most=1.5 * var_pair / _PAIRS,
            what="the estimates",
            hint=f"pairs of independent draws have {var_independent / var_pair:.1f} times the "
            "variance of antithetic pairs here: make x' from the same ε as x",
        )
    return ex.verdict


# The importance-sampling problems. A: target p = N(0, 1), proposal q = N(0.5, 0.9²),
# f(x) = e^x. B: a target that is not the standard normal, p = N(0.8, 0.9²), q = N(0.3, 1),
# f(x) = e^{x/2}, with few draws, where a hard-coded N(0, 1) target and a division by N − 1
# show. In both the weights p/q have finite variance (σ_q² > σ_p²/2), and so do the inverted
# ones q/p (3/σ_q² > 2/σ_p²).
_IS_A = dict(target=(0.0, 1.0), proposal=(0.5, 0.9), a=1.0, num_samples=50, repeats=300)
_IS_B = dict(target=(0.8, 0.9), proposal=(0.3, 1.0), a=0.5, num_samples=10, repeats=600)


def _is_values(target, proposal, a, num_samples, **_):
    """E_p[f] for f(x) = e^{ax}, and what the typical mistakes average to, by quadrature."""
    f = lambda x: torch.exp(a * x)  # noqa: E731
    log_weight = lambda x: Normal(*target).log_prob(x) - Normal(*proposal).log_prob(x)  # noqa: E731
    under_q = lambda g: float(gaussian_expectation(g, *proposal))  # noqa: E731
    under_p = lambda g: float(gaussian_expectation(g, *target))  # noqa: E731
    loc, scale = target
    exact = math.exp(a * loc + a**2 * scale**2 / 2)  # eq-mc-mgf
    linear = under_p(lambda x: log_weight(x).exp() * (f(x) - exact))  # E_q[w² (f − μ)]
    mistakes = {
        "inverted weights q(x)/p(x)": under_q(lambda x: (-log_weight(x)).exp() * f(x)),
        "no weights (the plain average of f over draws of q)": under_q(f),
        # E_p[w f] = E_q[w² f]: both mistakes average to the same value
        "drawing x from the target p (or squaring the weights)": under_p(
            lambda x: log_weight(x).exp() * f(x)
        ),
        "log-weights log p − log q used as weights (not exponentiated)": under_q(
            lambda x: log_weight(x) * f(x)
        ),
        "self-normalizing (dividing by the sum of the weights instead of N)": exact
        - linear / num_samples,
        "summing over the N samples instead of averaging": num_samples * exact,
        "dividing the sum by N − 1 instead of N": exact * num_samples / (num_samples - 1),
    }
    if (loc, scale) != (0.0, 1.0):
        mistakes["weights for N(0, 1) in place of the target p (is `target` ignored?)"] = float(
            gaussian_expectation(f)
        )
    return exact, mistakes


def _normal_text(loc, scale):
    return f"N({loc:g}, 1)" if scale == 1 else f"N({loc:g}, {scale:g}²)"


def _is_problem(ex, problem):
    """Run problem A or B: the cost, fresh and reproducible draws, unbiasedness."""
    target, proposal = Normal(*problem["target"]), Normal(*problem["proposal"])
    a, n = problem["a"], problem["num_samples"]
    exact, mistakes = _is_values(**problem)
    f = lambda x: torch.exp(a * x)  # noqa: E731
    counted = _Counted(f)
    one = ex.call(counted, target, proposal, n)
    ex.expect_tensor(one, shape=(), what="the estimate")
    if counted.count != n:
        ex.fail(
            f"your function evaluates f at {counted.count} points for num_samples = {n}: the "
            f"estimate from num_samples draws evaluates f once at each draw, {n} times"
        )
    ex.verified("evaluates f num_samples times")
    draw = lambda: ex.call(f, target, proposal, n)  # noqa: E731
    ex.expect_fresh_draws(draw, what="the estimate")
    ex.expect_reproducible(draw, what="the estimate")
    p_text, q_text = (_normal_text(*problem[key]) for key in ("target", "proposal"))
    f_text = "exp(x)" if a == 1 else f"exp({a:g}x)"
    ex.expect_mean(
        ex.repeat(draw, problem["repeats"]),
        torch.tensor(exact, dtype=torch.float64),
        what=f"the estimates of E_p[{f_text}], p = {p_text}, q = {q_text}, N = {n}",
        mistakes=mistakes,
        hint="draw from the proposal and weight by p(x)/q(x) = exp(log p(x) − log q(x)), "
        "with p the `target` you are given",
    )
    return target, proposal


def check_importance_estimate(importance_estimate) -> Verdict:
    """Check a student's importance-sampling estimator of E_p[f(x)] from draws of q.

    The student's function: ``importance_estimate(f, target, proposal, num_samples) -> Tensor``,
    shape ``()``: draw ``num_samples`` points x_n from ``proposal`` (a
    ``torch.distributions`` object), weight them by w(x_n) = p(x_n)/q(x_n), computed from
    ``log_prob`` of ``target`` and ``proposal``, evaluate f once at each draw, and return the
    plain (not self-normalized) estimate (1/N) Σ_n w(x_n) f(x_n) of eq-is-estimator.

    What is verified, on two problems: A, p = N(0, 1), q = N(0.5, 0.9²), f(x) = e^x
    (E_p[f] = e^{1/2}), N = 50; B, p = N(0.8, 0.9²), q = N(0.3, 1), f(x) = e^{x/2}
    (E_p[f] = e^{0.4 + 0.81/8}), N = 10:

    - a tensor of shape ``()``; f evaluated at exactly num_samples points; fresh draws on
      every call, reproducible under ``torch.manual_seed``;
    - unbiased: 300 estimates (A) and 600 (B) average to E_p[f] (resolution about 2.5% of
      the mean for A and 5% for B, at the false-alarm rate 1e-4);
    - not self-normalized: with f ≡ 1 the estimate is the mean weight, which varies from call
      to call, where the self-normalized ratio is exactly 1.

    Mistakes it names (the biased ones by the value their average matches, computed by
    quadrature): inverted weights q/p; no weights; draws from the target instead of the
    proposal, or squared weights; log-weights used as weights; summing instead of averaging;
    dividing by N − 1; weights for N(0, 1) whatever the target (problem B); self-normalizing
    where the plain estimator is asked; a number of evaluations of f other than
    num_samples; a function that seeds itself or draws with numpy.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with exercise(
        "importance-sampling estimator", importance_estimate, argument="importance_estimate"
    ) as ex:
        target, proposal = _is_problem(ex, _IS_A)
        ones = lambda x: torch.ones_like(x)  # noqa: E731
        n = _IS_A["num_samples"]
        constant = torch.stack([ex.call(ones, target, proposal, n) for _ in range(2)])
        if torch.allclose(constant.double(), torch.ones(2, dtype=torch.float64), atol=1e-12):
            ex.fail(
                "with f ≡ 1 your estimate is exactly 1 on every call: that is the "
                "self-normalized estimator (dividing by the sum of the weights, eq-is-snis), "
                "not the plain one asked for, (1/N) Σ w(x_n) f(x_n), whose value for f ≡ 1 "
                "is the mean weight"
            )
        ex.verified("plain, not self-normalized: with f ≡ 1 it returns the mean weight")
        _is_problem(ex, _IS_B)
    return ex.verdict
