"""Tests of companion.montecarlo: exact replays in float64, then statistical checks.

Statistical checks go through companion.checks (|estimate - exact| <= z * stderr at a
false-alarm rate of 1e-3 per check, z = 3.29); each test seeds in its own body.
"""

import math

import pytest
import torch
from torch.distributions import Exponential, Gamma, MultivariateNormal, Normal

from companion.checks import check_close, check_mc, critical_z
from companion.montecarlo import (
    Estimate,
    antithetic_expectation,
    control_variate,
    expectation,
    running_mean,
    sample_variance,
    summarize,
)
from companion.seeding import seed_everything

# ---------------------------------------------------------------- exact layer


def test_summarize_matches_hand_computation():
    values = torch.tensor([1.0, 2.0, 4.0, 7.0], dtype=torch.float64)
    est = summarize(values)
    mean = 3.5
    s = math.sqrt(((values - mean) ** 2).sum().item() / 3)
    assert est.mean.item() == mean
    assert est.stderr.item() == pytest.approx(s / 2, rel=1e-15)
    assert est.num_samples == 4 and torch.equal(est.samples, values)


def test_summarize_keeps_trailing_shape():
    values = torch.randn(50, 2, 3, dtype=torch.float64)
    est = summarize(values)
    assert est.mean.shape == est.stderr.shape == (2, 3)
    torch.testing.assert_close(est.mean, values.mean(0))


def test_confidence_interval_is_mean_plus_minus_z_stderr():
    est = Estimate(mean=torch.tensor(1.0), stderr=torch.tensor(0.5), samples=torch.zeros(4))
    lower, upper = est.confidence_interval(0.95)
    assert lower.item() == pytest.approx(1.0 - 1.959964 * 0.5, abs=1e-6)
    assert upper.item() == pytest.approx(1.0 + 1.959964 * 0.5, abs=1e-6)
    with pytest.raises(ValueError, match="level must be in"):
        est.confidence_interval(1.0)


def test_running_mean_replays_prefix_summaries():
    values = torch.randn(200, 2, dtype=torch.float64) * 3 + 10
    run = running_mean(values)
    assert run.mean.shape == run.stderr.shape == (200, 2)
    assert torch.isnan(run.stderr[0]).all()
    for n in (2, 3, 17, 200):
        prefix = summarize(values[:n])
        torch.testing.assert_close(run.mean[n - 1], prefix.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(run.stderr[n - 1], prefix.stderr, rtol=1e-10, atol=1e-12)


def test_sample_variance_matches_bessel_corrected_variance():
    values = torch.randn(1000, dtype=torch.float64)
    est = sample_variance(values)
    torch.testing.assert_close(est.mean, values.var(unbiased=True), rtol=1e-12, atol=0)
    assert est.samples.shape == (1000,)


def test_antithetic_pairs_cancel_odd_functions_exactly():
    # For f(x) = x under N(mu, sigma^2), x' = 2 mu - x, so every pair averages to mu.
    seed_everything(0)
    est = antithetic_expectation(
        lambda x: x, Normal(torch.tensor(1.5, dtype=torch.float64), 2.0), 100
    )
    torch.testing.assert_close(est.samples, torch.full((100,), 1.5, dtype=torch.float64))


def test_control_variate_with_given_coefficient_replays_formula():
    f = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)
    g = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
    est = control_variate(f, g, control_mean=1.0, coef=2.0)
    torch.testing.assert_close(est.samples, f - 2.0 * (g - 1.0))


def test_control_variate_estimated_coefficient_is_least_squares_slope():
    # f = 3 g + 1 exactly: the optimal coefficient is 3 and the estimate has zero variance.
    g = torch.randn(100, dtype=torch.float64)
    est = control_variate(3 * g + 1, g, control_mean=0.0)
    torch.testing.assert_close(est.samples, torch.ones(100, dtype=torch.float64))


# ---------------------------------------------------------------- statistical layer


@pytest.mark.parametrize("mu, sigma", [(1.0, 2.0), (-0.5, 0.3)])
def test_expectation_of_gaussian_closed_forms(mu, sigma):
    """E[x^2], E[cos(wx)], E[exp(ax)] under N(mu, sigma^2), 10^5 draws.

    Detects a bias of 3.29 standard errors, e.g. 0.07 in E[x^2] at (1, 2).
    """
    seed_everything(0)
    dist = Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    w, a = 1.7, 0.4
    est = expectation(
        lambda x: torch.stack([x**2, torch.cos(w * x), torch.exp(a * x)], -1), dist, 100_000
    )
    exact = [
        mu**2 + sigma**2,
        math.cos(w * mu) * math.exp(-((w * sigma) ** 2) / 2),
        math.exp(a * mu + (a * sigma) ** 2 / 2),
    ]
    check_close("Gaussian closed forms", est.mean, exact, stderr=est.stderr)


def test_expectation_with_event_shape():
    """E[x x^T] = Sigma + mu mu^T for a 2-D Gaussian; 10^5 draws, Bonferroni over 4 entries."""
    seed_everything(1)
    mu = torch.tensor([1.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    est = expectation(lambda x: x[:, :, None] * x[:, None, :], MultivariateNormal(mu, cov), 100_000)
    assert est.mean.shape == (2, 2)
    check_close("E[x x^T]", est.mean, cov + torch.outer(mu, mu), stderr=est.stderr)


def test_sample_variance_stderr_gives_honest_intervals():
    """95% intervals s^2 -+ 1.96 stderr cover sigma^2 = 4 in 95% of 4,000 repetitions.

    Coverage is compared with 0.95 within 3.29 binomial standard errors (0.0113), which
    detects an interval whose width is off by about 15%.
    """
    seed_everything(2)
    values = Normal(0.0, 2.0).sample((2_000, 4_000)).double()
    est = sample_variance(values)  # one estimate per column
    lower, upper = est.confidence_interval(0.95)
    covered = ((lower <= 4.0) & (upper >= 4.0)).double()
    check_mc("coverage of variance intervals", covered, 0.95)


def test_antithetic_is_unbiased_and_has_its_theoretical_variance():
    """f(x) = exp(ax) under N(mu, sigma^2): mean exp(a mu + a^2 sigma^2 / 2) and pair variance
    (Var f + Cov(f(x), f(2 mu - x))) / 2, with Var f = e^{2a mu}(e^{2 a^2 s^2} - e^{a^2 s^2})
    and Cov = e^{2 a mu} - e^{2 a mu + a^2 s^2}. 10^5 pairs.
    """
    seed_everything(3)
    mu, sigma, a = 0.5, 1.0, 1.0
    est = antithetic_expectation(
        lambda x: torch.exp(a * x), Normal(torch.tensor(mu, dtype=torch.float64), sigma), 100_000
    )
    s2 = (a * sigma) ** 2
    var_f = math.exp(2 * a * mu) * (math.exp(2 * s2) - math.exp(s2))
    cov = math.exp(2 * a * mu) - math.exp(2 * a * mu + s2)
    check_close("antithetic mean", est.mean, math.exp(a * mu + s2 / 2), stderr=est.stderr)
    pair_var = sample_variance(est.samples)
    check_close(
        "antithetic pair variance", pair_var.mean, (var_f + cov) / 2, stderr=pair_var.stderr
    )


def test_antithetic_with_a_non_gaussian_inverse_cdf():
    """E[x^2] = 2 / rate^2 under Exponential(rate), through icdf; 10^5 pairs."""
    seed_everything(4)
    est = antithetic_expectation(
        lambda x: x**2, Exponential(torch.tensor(2.0, dtype=torch.float64)), 100_000
    )
    check_close("Exponential E[x^2]", est.mean, 0.5, stderr=est.stderr)


def test_control_variate_reaches_one_minus_rho_squared():
    """f = exp(x), g = x under N(0, 1): E[f] = e^{1/2}; optimal variance
    Var f - Cov(f, g)^2 / Var g = (e^2 - e) - e = e^2 - 2e. 10^5 draws.
    """
    seed_everything(5)
    x = torch.randn(100_000, dtype=torch.float64)
    est = control_variate(torch.exp(x), x, control_mean=0.0)
    check_close("control-variate mean", est.mean, math.exp(0.5), stderr=est.stderr)
    var = sample_variance(est.samples)
    check_close("control-variate variance", var.mean, math.e**2 - 2 * math.e, stderr=var.stderr)


def test_expectation_stderr_shrinks_as_one_over_root_n():
    """The spread of 2,000 independent estimates at N = 100 and N = 1,600 differs by 4x.

    Both spreads are sample standard deviations of Gaussian-ish means; the ratio is checked
    against sigma / sqrt(N) at each size with the variance's own standard error.
    """
    seed_everything(6)
    for n in (100, 1_600):
        means = torch.randn(n, 2_000, dtype=torch.float64).mul(3.0).mean(0)  # (2000,)
        var = sample_variance(means)
        check_close(f"Var of the mean at N={n}", var.mean, 9.0 / n, stderr=var.stderr)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "values, error, match",
    [
        (torch.tensor(1.0), ValueError, "got a scalar"),
        (torch.tensor([1.0]), ValueError, "at least 2 samples"),
        (torch.tensor([1.0, float("nan")]), ValueError, "values must be finite"),
        ("abc", TypeError, "values must be a number, array or tensor"),
        (None, TypeError, "values must be a number, array or tensor"),
    ],
)
def test_summarize_rejects_bad_values(values, error, match):
    with pytest.raises(error, match=match):
        summarize(values)
    with pytest.raises(error, match=match):
        running_mean(values)
    with pytest.raises(error, match=match):
        sample_variance(values)


def test_expectation_rejects_bad_input():
    dist = Normal(0.0, 1.0)
    with pytest.raises(TypeError, match="f must be callable"):
        expectation(3.0, dist, 10)
    with pytest.raises(TypeError, match=r"dist must be a torch\.distributions\.Distribution"):
        expectation(lambda x: x, (0.0, 1.0), 10)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2, got 1"):
        expectation(lambda x: x, dist, 1)
    with pytest.raises(TypeError, match="num_samples must be an integer"):
        expectation(lambda x: x, dist, 10.0)
    with pytest.raises(
        ValueError, match=r"one value per sample, shape \(10, ...\), got shape \(\)"
    ):
        expectation(lambda x: x.sum(), dist, 10)
    with pytest.raises(TypeError, match="f must return a tensor"):
        expectation(lambda x: 1.0, dist, 10)
    with pytest.raises(ValueError, match="f\\(x\\) must be finite"):
        expectation(lambda x: x / 0.0, dist, 10)


def test_antithetic_needs_an_inverse_cdf():
    with pytest.raises(ValueError, match=r"dist must have an inverse CDF.*Gamma"):
        antithetic_expectation(lambda x: x, Gamma(2.0, 1.0), 10)
    with pytest.raises(ValueError, match="num_pairs must be an integer >= 2"):
        antithetic_expectation(lambda x: x, Normal(0.0, 1.0), 1)


def test_control_variate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="values and control must both have shape"):
        control_variate(torch.zeros(5), torch.zeros(4), 0.0)
    with pytest.raises(ValueError, match="control_mean must be a scalar"):
        control_variate(torch.zeros(5), torch.zeros(5), [0.0, 1.0])
    with pytest.raises(ValueError, match="control_mean must be finite"):
        control_variate(torch.zeros(5), torch.zeros(5), float("nan"))


def test_critical_z_used_here_is_the_documented_one():
    assert critical_z() == pytest.approx(3.2905, abs=1e-4)
