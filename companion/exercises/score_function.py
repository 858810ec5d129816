"""Checkers of the implement-it exercises of Chapter 3 (the log-derivative trick).

- :func:`check_leave_one_out_gradient`: the score-function estimator with the leave-one-out
  baseline.
- :func:`check_gamma_score`: the score of a gamma distribution, written by hand.

The test problems have exact answers: the chapter's f = x² under a normal; a Bernoulli,
enumerated (the gradient, and the variance of the leave-one-out estimator by
:func:`companion.baselines.leave_one_out_variance` from enumerated moments); the gamma's
score is compared with autograd through ``torch.distributions.Gamma.log_prob``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.distributions import Gamma

from ..baselines import leave_one_out_variance
from ..estimators import per_sample_gradients
from ..problems import bernoulli_logit, bernoulli_toy, normal_dist
from ._core import Verdict, exercise

__all__ = ["check_leave_one_out_gradient", "check_gamma_score"]

# The Bernoulli problem: logit θ = 0.5, f(x) = (x − 0.2)² shifted by a constant that the
# leave-one-out baseline removes exactly and the plain estimator does not; N = 4 draws, where
# a baseline that includes the draw itself biases the estimate by a quarter.
_LOGIT, _TARGET, _SHIFT = 0.5, 0.2, 30.0
_N_SMALL, _R_SMALL = 4, 600
_N_NORMAL, _R_NORMAL = 250, 400


def _bernoulli_problem(num_samples: int = _N_SMALL):
    """Exact gradient, N Var of the leave-one-out estimate, per-sample Var without baseline.

    By enumeration of x ∈ {0, 1} under Bernoulli(sigmoid(θ)), whose logit score is x − π.
    """
    prob = torch.sigmoid(torch.tensor(_LOGIT, dtype=torch.float64))
    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    p = torch.stack([1 - prob, prob])
    f = bernoulli_toy(_TARGET)(x) + _SHIFT
    score = x - prob
    mean_f = p @ f
    grad = p @ (f * score)  # eq-sf-gradient, by enumeration
    mean_baseline_var = p @ ((f - mean_f) * score) ** 2 - grad**2
    n_var = leave_one_out_variance(
        mean_baseline_var, p @ (f - mean_f) ** 2, p @ score**2, grad, num_samples
    )
    plain_var = p @ (f * score) ** 2 - grad**2
    return grad.reshape(1), n_var.reshape(1), plain_var.reshape(1)


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread, then restore: the many tiny calls of a checker gain nothing
    from a second thread, and on a busy machine a parallel kernel (Bernoulli's log_prob) can
    wait milliseconds for it on every call."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_leave_one_out_gradient(leave_one_out_gradient) -> Verdict:
    """Check a student's score-function estimator with the leave-one-out baseline.

    The student's function: ``leave_one_out_gradient(f, dist_fn, theta, num_samples)`` returns
    a tensor of shape ``(D,)``, the estimate (1/N) Σ_n (f(x_n) − b_n) ∇θ log p(x_n; θ) with
    b_n = (1/(N − 1)) Σ_{m≠n} f(x_m), from N = ``num_samples`` draws of ``dist_fn(theta)``
    made with ``sample()``; ``theta`` has shape ``(D,)`` and ``f`` maps the draws, shape
    ``(N,)``, to their values ``(N,)``.

    What is verified:

    - on x ~ N(1, 1), θ = (μ, σ), f = x², N = 250: a tensor of shape ``(2,)``; ``theta``
      left unchanged (a fresh copy on every call, without a gradient left in ``.grad``);
      fresh draws, reproducible under ``torch.manual_seed``; 400 estimates average to the
      gradient (2, 2) (resolution about 7% of it, at the false-alarm rate 1e-4);
    - on x ~ Bernoulli(sigmoid(θ)), θ = 0.5 (the logit), f(x) = (x − 0.2)² + 30, N = 4: 600
      estimates average to the exact gradient (by enumeration; resolution about 8%), and
      their variance is at most 1.5 times the exact variance of the leave-one-out estimator,
      eq-sf-loo-var (the constant 30 changes nothing for it; without a baseline the
      variance is thousands of times larger).

    Mistakes it names: a baseline that includes the draw itself (the plain sample mean, a
    bias of −∇J/N); a sign error; averaging over N − 1 instead of N; summing instead of
    averaging; ``.backward()`` on the given ``theta`` (its requires_grad switched, or a
    gradient left in ``theta.grad``); no baseline, or one that divides by N instead of N − 1
    and so does not remove a constant shift of f (by the variance); draws made with
    ``rsample()`` (the estimate is then 0 for the normal); a function that seeds itself or
    draws with numpy.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with (
        _one_thread(),
        exercise(
            "leave-one-out score-function estimator",
            leave_one_out_gradient,
            argument="leave_one_out_gradient",
        ) as ex,
    ):
        square = lambda x: x**2  # noqa: E731
        theta = torch.tensor([1.0, 1.0], dtype=torch.float64)

        def draw():  # a fresh copy of θ on every call: nothing the function does to it stays
            mine = theta.clone()
            estimate = ex.call(square, normal_dist, mine, _N_NORMAL)
            if mine.grad is not None:
                ex.fail(
                    "your function leaves a gradient in theta.grad: it calls .backward() on "
                    "the θ it is given, whose .grad accumulates from call to call; take the "
                    "gradient of a copy, theta.detach().requires_grad_(True), with "
                    "torch.autograd.grad"
                )
            return estimate

        first = draw()
        ex.expect_tensor(first, shape=(2,), what="the estimate")
        if bool((first.detach().abs() < 1e-8).all()):  # 1e-8 of the gradient's size, 2
            ex.fail(
                "your estimate is 0 up to rounding: the terms (f(x_n) − b_n) ∇θ log p(x_n; θ) "
                "cancel, as they do when the draws are made with rsample(), where "
                "log p(x_n; θ) at x_n = μ + σε_n no longer varies with θ as the score does; "
                "draw with sample()"
            )
        ex.expect_fresh_draws(draw, what="the estimate")
        ex.expect_reproducible(draw, what="the estimate")
        ex.expect_mean(
            ex.repeat(draw, _R_NORMAL),
            torch.tensor([2.0, 2.0], dtype=torch.float64),
            what=f"the estimates of ∇θ E[x²] = (2μ, 2σ) under N(1, 1), N = {_N_NORMAL}",
            mistakes={
                "a sign error": torch.tensor([-2.0, -2.0]),
                "summing over the N samples instead of averaging": torch.tensor(
                    [2.0 * _N_NORMAL, 2.0 * _N_NORMAL]
                ),
            },
            hint="draw with sample(), and differentiate only log p(x_n; θ)",
        )

        grad, n_var, plain_var = _bernoulli_problem()
        toy = bernoulli_toy(_TARGET)
        f = lambda x: toy(x) + _SHIFT  # noqa: E731
        n, logit = _N_SMALL, torch.tensor([_LOGIT], dtype=torch.float64)
        draws = ex.repeat(lambda: ex.call(f, bernoulli_logit, logit.clone(), n), _R_SMALL)
        ex.expect_mean(
            draws,
            grad,
            what="the estimates of the gradient for a Bernoulli logit, N = 4",
            mistakes={
                "a baseline that includes the draw itself (the mean of all N values)": grad
                * (n - 1)
                / n,
                "a sign error": -grad,
                "averaging over N − 1 instead of N": grad * n / (n - 1),
                "summing over the N samples instead of averaging": grad * n,
            },
            hint="b_n must leave out draw n, so that it is independent of x_n",
        )
        ratio = (plain_var / n_var).min().item()
        ex.expect_variance(
            draws,
            at_most=1.5 * n_var / n,
            what="the estimates at N = 4",
            hint=f"these values of f carry a constant {_SHIFT:g}, which the leave-one-out "
            f"baseline removes exactly; without a baseline the variance is {ratio:.0f} times "
            "larger, and a baseline that divides by N instead of N − 1 leaves part of the "
            "constant in",
        )
    return ex.verdict


# The gamma problem: shape α (concentration) and rate λ, at two points of θ = (α, λ).
_GAMMA_POINTS = ((2.5, 1.5), (0.7, 3.0))
_GAMMA_DRAWS = 20_000


def _gamma_autograd_score(x, alpha, rate):
    """∇_(α, λ) log Gamma(x; α, λ) per draw, by autograd, shape (N, 2)."""
    theta = torch.tensor([alpha, rate], dtype=torch.float64)
    return per_sample_gradients(
        lambda t: Gamma(t[..., 0], t[..., 1]).log_prob(x), theta, len(x)
    ).samples


def check_gamma_score(gamma_score) -> Verdict:
    """Check a student's score of the gamma distribution, written by hand.

    The student's function: ``gamma_score(x, concentration, rate) -> Tensor`` of shape
    ``(N, 2)``: for draws ``x``, a float64 tensor of shape ``(N,)``, of Gamma(α, λ) with
    density λ^α x^{α−1} e^{−λx} / Γ(α), row n is (∂α log p(x_n), ∂λ log p(x_n)), written by
    hand (``torch.digamma`` is allowed, autograd is not needed). ``concentration`` (α) and
    ``rate`` (λ) are Python floats: ``torch.as_tensor(alpha, dtype=x.dtype)`` turns them into
    tensors of the dtype of ``x`` (``torch.digamma`` takes a tensor).

    What is verified:

    - at α = 2.5, λ = 1.5, on 20 000 draws: a tensor of shape ``(N, 2)``, its input left
      unchanged; the scores average to zero (eq-sf-score-mean), judged against their own
      standard deviations √trigamma(α) and √α/λ (resolution about 3%, at the false-alarm rate
      1e-4);
    - at α = 2.5, λ = 1.5 and at α = 0.7, λ = 3: every row equals autograd's gradient of
      ``torch.distributions.Gamma.log_prob`` (to 1e-6, absolute or relative: float32
      rounding passes).

    Mistakes it names: lgamma in place of its derivative digamma; a missing
    log λ; a missing α in the rate coordinate; λ treated as a scale (Gamma(α, scale λ)); a
    sign error; the coordinates swapped.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when it is not callable.
    """
    with exercise("the score of a gamma distribution", gamma_score, argument="gamma_score") as ex:
        (alpha, rate), _ = _GAMMA_POINTS
        x = Gamma(torch.tensor(alpha, dtype=torch.float64), rate).sample((_GAMMA_DRAWS,))
        scores = ex.call(x, alpha, rate)
        ex.expect_tensor(scores, shape=(_GAMMA_DRAWS, 2), what="the matrix of scores")
        a, r = torch.tensor(alpha, dtype=torch.float64), torch.tensor(rate, dtype=torch.float64)
        psi, lgam = torch.digamma(a), torch.lgamma(a)
        sd = torch.stack([torch.polygamma(1, a).sqrt(), a.sqrt() / r])  # √ Fisher information
        ex.expect_mean(
            scores,
            torch.zeros(2, dtype=torch.float64),
            what=f"the scores at α = {alpha}, λ = {rate}",
            scale=sd,
            mistakes={
                "lgamma(α) in place of its derivative digamma(α)": torch.stack(
                    [psi - lgam, torch.zeros(())]
                ),
                "a missing log λ": torch.stack([-r.log(), torch.zeros(())]),
                "a missing α in the rate coordinate (1/λ − x)": torch.stack(
                    [torch.zeros(()), (1 - a) / r]
                ),
                "λ treated as a scale (the density of Gamma(α, scale λ))": torch.stack(
                    [-2 * r.log(), -a / r + a / r**3]
                ),
            },
            hint="a score has mean zero (eq-sf-score-mean); E[log x] = digamma(α) − log λ "
            "and E[x] = α/λ",
        )
        for alpha, rate in _GAMMA_POINTS:
            x = Gamma(torch.tensor(alpha, dtype=torch.float64), rate).sample((1000,))
            value = ex.call(x, alpha, rate)
            ex.expect_tensor(value, shape=(1000, 2), what="the matrix of scores")
            exact = _gamma_autograd_score(x, alpha, rate)
            a = torch.tensor(alpha, dtype=torch.float64)
            psi = torch.digamma(a)
            mistakes = {
                "lgamma(α) in place of its derivative digamma(α)": torch.stack(
                    [exact[:, 0] + psi - torch.lgamma(a), exact[:, 1]], -1
                ),
                "a missing log λ": torch.stack([exact[:, 0] - math.log(rate), exact[:, 1]], -1),
                "a missing α in the rate coordinate": torch.stack([exact[:, 0], 1 / rate - x], -1),
                "a sign error": -exact,
                "the two coordinates swapped": exact.flip(-1),
            }
            ex.expect_close(
                value,
                exact,
                what=f"the matrix of scores at α = {alpha}, λ = {rate}",
                rtol=1e-6,
                atol=1e-6,  # the scores are of order 1; every named mistake is off by 0.1 or more
                mistakes=mistakes,
                hint="differentiate α log λ + (α − 1) log x − λx − log Γ(α) in α and in λ",
            )
    return ex.verdict
