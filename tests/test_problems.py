"""Tests of companion.problems: each closed form against an independent computation."""

import pytest
import torch

from companion.checks import check_close
from companion.estimators import score_function
from companion.problems import (
    bernoulli_logit,
    bernoulli_toy,
    bernoulli_toy_gradient,
    normal_dist,
    normal_square_variance,
)
from companion.quadrature import gaussian_expectation
from companion.seeding import seed_everything

DT = torch.float64


def test_normal_square_variance_matches_quadrature():
    """Var[x²] = E x⁴ - (E x²)² by Gauss–Hermite, exact for these polynomials."""
    for mu, sigma in ((0.0, 1.0), (1.0, 1.0), (-0.5, 2.0)):
        e4 = gaussian_expectation(lambda x: x**4, mu, sigma)
        e2 = gaussian_expectation(lambda x: x**2, mu, sigma)
        assert float(normal_square_variance(mu, sigma)) == pytest.approx(
            float(e4 - e2**2), rel=1e-12
        )


def test_bernoulli_toy_gradient_matches_autograd_of_the_exact_objective():
    logit = torch.tensor([-1.0, 0.0, 2.0], dtype=DT, requires_grad=True)
    t = 0.45
    p = torch.sigmoid(logit)
    objective = p * (1 - t) ** 2 + (1 - p) * t**2  # E[(b - t)²], enumerated
    (grad,) = torch.autograd.grad(objective.sum(), logit)
    torch.testing.assert_close(bernoulli_toy_gradient(logit.detach(), t), grad, rtol=1e-14, atol=0)


def test_the_toy_and_its_gradient_agree_with_the_score_function():
    """At ℓ = 0.4 (p ≈ 0.60; at p = 1/2 the leave-one-out estimate is nearly constant, which
    would test little), 2·10^5 draws without a baseline: the standard error is about 2.7e-4,
    so the check catches an error of 3.29 se ≈ 9e-4, under 4% of the exact 0.0240.
    """
    seed_everything(0)
    est = score_function(
        bernoulli_toy(0.45), bernoulli_logit, torch.tensor([0.4], dtype=DT), 200_000
    )
    result = check_close(
        "d/dℓ E[(b - 0.45)²] at ℓ = 0.4",
        est.mean,
        bernoulli_toy_gradient(0.4, 0.45),
        stderr=est.stderr,
    )
    assert result.resolution < 0.05


def test_dist_fns_are_batched():
    assert normal_dist(torch.ones(5, 2)).batch_shape == (5,)
    assert bernoulli_logit(torch.zeros(5, 1)).batch_shape == (5,)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: normal_dist(torch.ones(3)), ValueError, r"theta must have shape \(\.\.\., 2\)"),
        (lambda: normal_dist([0.0, 1.0]), TypeError, "theta must be a floating-point tensor"),
        (lambda: bernoulli_logit(torch.tensor(0.0)), ValueError, r"theta must have shape"),
        (lambda: bernoulli_toy(1.5), ValueError, r"target must be in \[0, 1\]"),
        (lambda: bernoulli_toy("0.5"), TypeError, "target must be a number"),
        (lambda: bernoulli_toy_gradient(float("inf"), 0.5), ValueError, "logit must be finite"),
        (lambda: normal_square_variance("a", 1.0), TypeError, "loc must be"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
