"""Tests of companion.surrogates: the surrogates' autograd gradients are the estimators.

Exact layer only: on the same draws (re-seeded), backward() through the averaged surrogate
gives the mean of the estimator's per-sample estimates, to float64 rounding.
"""

import pytest
import torch
from torch.distributions import Normal

from companion.baselines import leave_one_out
from companion.estimators import pathwise, score_function
from companion.seeding import seed_everything
from companion.surrogates import score_function_surrogate, surrogate_objective

DT = torch.float64
THETA = torch.tensor([0.5, 1.5], dtype=DT)


def normal(t):
    return Normal(t[..., 0], t[..., 1])


def square(x):
    return x**2


def test_score_function_surrogate_formula():
    log_prob = torch.tensor([-1.0, -2.0, -0.5], dtype=DT)
    f = torch.tensor([1.0, 2.0, 6.0], dtype=DT)
    torch.testing.assert_close(score_function_surrogate(log_prob, f), f * log_prob)
    torch.testing.assert_close(score_function_surrogate(log_prob, f, 1.0), (f - 1) * log_prob)
    torch.testing.assert_close(
        score_function_surrogate(log_prob, f, "loo"),
        (f - torch.tensor([4.0, 3.5, 1.5], dtype=DT)) * log_prob,
    )
    per_sample = torch.tensor([0.0, 1.0, 2.0], dtype=DT)
    torch.testing.assert_close(
        score_function_surrogate(log_prob, f, per_sample), (f - per_sample) * log_prob
    )


@pytest.mark.parametrize("baseline", [None, "loo", 2.0])
def test_score_function_surrogate_gradient_is_the_estimator(baseline):
    seed_everything(0)
    est = score_function(square, normal, THETA, 1_000, baseline=baseline)
    seed_everything(0)
    theta = THETA.clone().requires_grad_(True)
    dist = normal(theta)
    x = dist.sample((1_000,))
    score_function_surrogate(dist.log_prob(x), square(x), baseline).mean().backward()
    torch.testing.assert_close(theta.grad, est.mean, rtol=1e-12, atol=1e-12)


def test_score_function_surrogate_blocks_the_gradient_through_f():
    theta = torch.tensor(2.0, dtype=DT, requires_grad=True)
    log_prob = torch.zeros(3, dtype=DT) * theta  # no gradient through log p
    f = theta * torch.ones(3, dtype=DT)  # f depends on θ, but is detached in the surrogate
    score_function_surrogate(log_prob, f).sum().backward()
    assert theta.grad == 0.0


def test_pathwise_surrogate_gradient_is_the_estimator():
    """The pathwise surrogate is f(x(θ, ε)) itself: its gradient is the estimator's mean."""
    seed_everything(1)
    est = pathwise(square, normal, THETA, 1_000)
    seed_everything(1)
    theta = THETA.clone().requires_grad_(True)
    square(normal(theta).rsample((1_000,))).mean().backward()
    torch.testing.assert_close(theta.grad, est.mean, rtol=1e-12, atol=1e-12)


def test_surrogate_objective_shows_the_value_and_differentiates_the_surrogate():
    theta = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    value = (theta**3).detach() + theta * 0  # carries a graph: must not leak into the gradient
    surrogate = 5 * theta
    out = surrogate_objective(value, surrogate)
    torch.testing.assert_close(out.detach(), torch.tensor([1.0, 8.0], dtype=DT))
    out.sum().backward()
    torch.testing.assert_close(theta.grad, torch.full((2,), 5.0, dtype=DT))


def test_loo_surrogate_uses_the_leave_one_out_helper():
    f = torch.randn(10, dtype=DT)
    log_prob = torch.randn(10, dtype=DT)
    torch.testing.assert_close(
        score_function_surrogate(log_prob, f, "loo"), (f - leave_one_out(f)) * log_prob
    )


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((torch.zeros(3), [1.0, 2.0, 3.0]), TypeError, "f_values must be a real tensor"),
        ((1.0, torch.zeros(3)), TypeError, "log_prob must be a real tensor"),
        (
            (torch.zeros(3), torch.zeros(3, dtype=torch.complex64)),
            TypeError,
            "f_values must be a real tensor",
        ),
        (
            (torch.zeros(3, dtype=torch.long), torch.zeros(3)),
            TypeError,
            "log_prob must be a floating-point tensor",
        ),
        ((torch.tensor(0.0), torch.tensor(0.0)), ValueError, "log_prob must have shape"),
        (
            (torch.zeros(3), torch.zeros(4)),
            ValueError,
            r"f_values must have the shape of log_prob \(3,\)",
        ),
        (
            (torch.zeros(3), torch.tensor([0.0, float("inf"), 1.0])),
            ValueError,
            "f_values must be finite",
        ),
        (
            (torch.zeros(3), torch.zeros(3), "mean"),
            ValueError,
            "baseline must be None, a number.*'loo'",
        ),
        (
            (torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.complex64)),
            ValueError,
            "baseline must be None",
        ),
        ((torch.zeros(3), torch.zeros(3), torch.zeros(4)), ValueError, "baseline must be None"),
        ((torch.zeros(3), torch.zeros(3), True), ValueError, "baseline must be None"),
        ((torch.zeros(3), torch.zeros(3), float("nan")), ValueError, "baseline must be finite"),
    ],
)
def test_score_function_surrogate_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        score_function_surrogate(*args)


def test_other_surrogates_reject_bad_input():
    with pytest.raises(TypeError, match="value must be a tensor"):
        surrogate_objective(1.0, torch.zeros(()))
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(\)"):
        surrogate_objective(torch.zeros(2), torch.zeros(()))


def test_integer_rewards_are_not_truncated_by_a_fractional_baseline():
    """f in {0, 1} as int64 with b = 0.5: (f - b) must be ±0.5, not f - 0 (truncated)."""
    log_prob = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    out = score_function_surrogate(log_prob, torch.tensor([0, 1, 1]), baseline=0.5)
    torch.testing.assert_close(out, torch.tensor([-0.5, 1.0, 1.5], dtype=DT))
