"""Tests of the importance-sampling, effective-sample-size and stratified estimators of
companion.montecarlo (Chapter 1): exact replays in float64, then statistical checks.

Statistical checks go through companion.checks at a false-alarm rate of 1e-3 per check;
each test seeds in its own body and states the smallest error it catches.
"""

import math

import pytest
import torch
from torch.distributions import Exponential, Normal, Uniform

from companion.checks import check_close, check_mc
from companion.montecarlo import (
    effective_sample_size,
    importance_sampling,
    sample_variance,
    stratified_expectation,
    summarize,
)
from companion.seeding import seed_everything


def _gaussian_draws(num_samples, proposal_scale):
    """x ~ q = N(0, proposal_scale²) and w = p/q for p = N(0, 1)."""
    q = Normal(torch.tensor(0.0, dtype=torch.float64), proposal_scale)
    x = q.sample((num_samples,))
    w = (Normal(0.0, 1.0).log_prob(x) - q.log_prob(x)).exp()
    return x, w


# ---------------------------------------------------------------- exact layer


def test_plain_importance_sampling_is_the_mean_of_weighted_values():
    values = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    est = importance_sampling(values, weights)
    ref = summarize(values * weights)
    torch.testing.assert_close(est.mean, ref.mean)
    torch.testing.assert_close(est.stderr, ref.stderr)


def test_self_normalized_replays_ratio_and_delta_method_stderr():
    values = torch.tensor([1.0, 2.0, 4.0, -1.0], dtype=torch.float64)
    weights = torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=torch.float64)
    est = importance_sampling(values, weights, self_normalized=True)
    mean = (weights * values).sum() / weights.sum()
    n = len(values)
    delta = ((weights**2 * (values - mean) ** 2).sum()).sqrt() / weights.sum()
    torch.testing.assert_close(est.mean, mean, rtol=1e-14, atol=0)
    torch.testing.assert_close(est.stderr, delta * math.sqrt(n / (n - 1)), rtol=1e-12, atol=0)
    # only ratios of weights matter
    scaled = importance_sampling(values, 1e6 * weights, self_normalized=True)
    torch.testing.assert_close(scaled.mean, est.mean)
    torch.testing.assert_close(scaled.stderr, est.stderr)


def test_self_normalized_with_equal_weights_is_plain_monte_carlo():
    values = torch.randn(20, 3, dtype=torch.float64)
    est = importance_sampling(
        values, torch.full((20,), 3.0, dtype=torch.float64), self_normalized=True
    )
    ref = summarize(values)
    torch.testing.assert_close(est.mean, ref.mean)
    torch.testing.assert_close(est.stderr, ref.stderr)


def test_effective_sample_size_is_kish_formula_and_scale_free():
    w = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
    assert effective_sample_size(w).item() == pytest.approx(16 / 6, rel=1e-15)
    assert effective_sample_size(1e300 * w).item() == pytest.approx(16 / 6, rel=1e-15)
    assert effective_sample_size(torch.ones(7)).item() == pytest.approx(7.0)
    assert effective_sample_size(torch.tensor([0.0, 5.0, 0.0])).item() == pytest.approx(1.0)


def test_stratified_replicates_hold_one_draw_per_stratum():
    # f = the stratum index of u: each replicate mean is exactly the mean index (K-1)/2.
    k = 7
    est = stratified_expectation(lambda u: torch.floor(u * k), Uniform(0.0, 1.0), k, 5)
    assert est.samples.shape == (5,)
    torch.testing.assert_close(est.samples, torch.full((5,), (k - 1) / 2, dtype=est.samples.dtype))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: importance_sampling(torch.ones(3), torch.ones(4)), ValueError, "weights"),
        (lambda: importance_sampling(torch.ones(3), -torch.ones(3)), ValueError, ">= 0"),
        (lambda: importance_sampling(torch.ones(3), torch.zeros(3)), ValueError, "all be 0"),
        (lambda: importance_sampling(torch.ones(3), torch.ones(3, 1)), ValueError, r"\(N,\)"),
        (
            lambda: importance_sampling(torch.ones(3), torch.ones(3), self_normalized=1),
            TypeError,
            "self_normalized",
        ),
        (lambda: importance_sampling(torch.ones(1), torch.ones(1)), ValueError, "values"),
        (lambda: effective_sample_size(torch.tensor([1.0, math.nan])), ValueError, "weights"),
        (lambda: effective_sample_size("w"), TypeError, "weights"),
        (
            lambda: stratified_expectation(torch.exp, Uniform(0.0, 1.0), 0, 2),
            ValueError,
            "num_strata",
        ),
        (
            lambda: stratified_expectation(torch.exp, Uniform(0.0, 1.0), 3, 1),
            ValueError,
            "num_per_stratum",
        ),
        (lambda: stratified_expectation(1.0, Uniform(0.0, 1.0), 3, 2), TypeError, "f"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- statistical layer


def test_plain_importance_sampling_is_unbiased():
    """E_q[w f] = E_p[f] = 1 for f = x² under q = N(0, 2²); catches a bias of about 1%."""
    seed_everything(11)
    x, w = _gaussian_draws(200_000, 2.0)
    est = importance_sampling(x**2, w)
    check_close("plain IS of E_p[x²]", est.mean, 1.0, stderr=est.stderr)


def test_second_moment_of_gaussian_weights():
    """E_q[w²] = σ_q²/√(2σ_q² − 1) (bounded weights at σ_q = 2); catches about 1%."""
    seed_everything(12)
    x, w = _gaussian_draws(200_000, 2.0)
    check_mc("E_q[w²]", w**2, 4.0 / math.sqrt(7.0))
    ess = effective_sample_size(w) / len(w)
    assert abs(ess.item() - math.sqrt(7.0) / 4.0) < 0.01  # ESS/N → 1/E_q[w²]


def test_self_normalized_stderr_is_honest_over_repetitions():
    """The delta-method standard error matches the spread of repeated estimates.

    400 independent SNIS estimates at N = 2000 (q = N(0, 2²), f = x², unnormalized p):
    their z-scores must have mean 0 and variance 1; catches a stderr off by about 25%.
    """
    seed_everything(13)
    scores = []
    for _ in range(400):
        x, w = _gaussian_draws(2000, 2.0)
        est = importance_sampling(x**2, 7.0 * w, self_normalized=True)  # unnormalized
        scores.append((est.mean - 1.0) / est.stderr)
    scores = torch.stack(scores)
    check_mc("mean z-score of SNIS", scores, 0.0, scale=1.0)
    var = sample_variance(scores)
    check_close("variance of SNIS z-scores", var.mean, 1.0, stderr=var.stderr)


def test_stratified_variance_formula_for_exp_on_the_unit_interval():
    """Var of a replicate mean = (1/K²) Σ_k σ_k², σ_k² = e^{2k/K} v_K; catches about 2%."""
    seed_everything(14)
    k = 8
    est = stratified_expectation(torch.exp, Uniform(0.0, 1.0), k, 100_000)
    check_close("stratified estimate of e − 1", est.mean, math.e - 1, stderr=est.stderr)
    v = k * (math.exp(2 / k) - 1) / 2 - k**2 * (math.exp(1 / k) - 1) ** 2
    exact = v * sum(math.exp(2 * j / k) for j in range(k)) / k**2
    var = sample_variance(est.samples)
    check_close("Var of a replicate mean", var.mean, exact, stderr=var.stderr)


def test_stratified_with_a_non_uniform_inverse_cdf():
    """Exponential(1) strata: E[x] = 1; catches about 1%."""
    seed_everything(15)
    est = stratified_expectation(
        lambda x: x, Exponential(torch.tensor(1.0, dtype=torch.float64)), 10, 50_000
    )
    check_close("stratified E[x] under Exponential(1)", est.mean, 1.0, stderr=est.stderr)
