"""Mutation tests: every kind of check the book uses fails when a known error is injected.

For each kind (Monte Carlo mean, variance, one-sided bound, agreement over many coordinates,
deterministic tolerance) the correct computation passes at a resolution below
RESOLUTION_TARGET = 10% of its scale (asserted and printed on the check's line), and the same
computation with an error injected fails with ``AssertionError``: an estimator biased by 10%
of the scale, a variance ×1.1, a bound that never tightens, a counterfeit gradient with the
right noise and mean zero, a closed form off by 10%.

Each test seeds in its body, so its outcome is fixed; the docstrings give the smallest error
each check detects (at least half the time: z standard errors), which is how far from passing
every mutation is. The slow-marked tests (about 10 s; part of every run, selectable alone
with ``-m slow``) repeat a check 2,000 times and show that the
false-alarm rate is the nominal one and that a ×1.1 bias is caught nearly always.
"""

import math

import pytest
import torch

from companion.checks import (
    check_agree,
    check_at_least,
    check_close,
    check_exceeds,
    check_mc,
    critical_z,
)
from companion.ledger import RESOLUTION_TARGET, end_chapter
from companion.montecarlo import sample_variance, summarize
from companion.quadrature import gaussian_expectation
from companion.seeding import seed_everything


@pytest.fixture(autouse=True)
def no_chapter():
    """Checks here run outside a chapter, at DEFAULT_FALSE_ALARM = 1e-3."""
    end_chapter()
    yield
    end_chapter()


def _resolved(result):
    """The check's resolution, below the audit's 10% target."""
    assert result.resolution < RESOLUTION_TARGET, result.resolution_text()
    return result.resolution


# ---------------------------------------------------------------- Monte Carlo mean

MU, SIGMA = 1.0, 2.0  # x ~ N(1, 2²): E[x²] = μ² + σ² = 5, Var[x²] = 4σ²μ² + 2σ⁴ = 48


def test_monte_carlo_mean_catches_a_bias_of_10_percent():
    """check_mc of E[x²] = 5 under N(1, 2²) from N = 10⁴ draws.

    stderr = sqrt(48 / N) = 0.069: the check detects a bias of 3.29 se = 0.23 (4.6% of 5).
    Injected: every value + 0.5 (10% of 5), 7.2 se off.
    """
    seed_everything(0)
    x = MU + SIGMA * torch.randn(10_000, dtype=torch.float64)
    result = check_mc("E[x²] under N(1, 2²)", x**2, MU**2 + SIGMA**2)
    assert _resolved(result) == pytest.approx(critical_z(1e-3) * math.sqrt(48 / 1e4) / 5, rel=0.05)
    with pytest.raises(AssertionError, match="FAILED biased E"):
        check_mc("biased E[x²]", x**2 + 0.5, MU**2 + SIGMA**2)


# ---------------------------------------------------------------- variance


def test_variance_check_catches_a_variance_10_percent_too_large():
    """sample_variance of x ~ N(1, 2²) against σ² = 4, N = 10⁴ draws.

    stderr = sqrt((m4 - σ⁴) / N) = sqrt(32 / N) = 0.057: the check detects an error of
    3.29 se = 0.19 (4.7% of 4). Injected: a sampler with variance ×1.1 (4.4), 7 se off in
    expectation (5.1 se with this seed).
    """
    seed_everything(1)
    eps = torch.randn(10_000, dtype=torch.float64)
    est = sample_variance(MU + SIGMA * eps)
    result = check_close("Var[x] = σ²", est.mean, SIGMA**2, stderr=est.stderr)
    assert _resolved(result) == pytest.approx(critical_z(1e-3) * math.sqrt(32 / 1e4) / 4, rel=0.05)
    wrong = sample_variance(MU + SIGMA * math.sqrt(1.1) * eps)
    with pytest.raises(AssertionError, match="FAILED Var"):
        check_close("Var[x] = σ², variance ×1.1", wrong.mean, SIGMA**2, stderr=wrong.stderr)


# ---------------------------------------------------------------- one-sided bound

K = 5


def _bounds(log_w: torch.Tensor) -> torch.Tensor:
    """Per draw, the importance-weighted bound log (1/K) Σ_k w_k from log-weights (R, K)."""
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])


def _never_tightens(log_w: torch.Tensor) -> torch.Tensor:
    """The mutation: a bound that returns L_1 for every K (the first weight only)."""
    return log_w[:, 0]


def test_bound_check_catches_a_bound_that_never_tightens():
    """An IWAE-like bound: log w = ε - 1/2, ε ~ N(0, 1), so E[w] = 1, log p = 0, L_1 = -1/2.

    E[L_5 - L_1] > 0 is checked on R = 10⁴ paired draws with check_exceeds: the per-draw gap
    has sd 0.92, stderr 0.0092, so the check resolves a gap of 3.09 se = 0.028, 7.9% of the
    margin it shows, the true gap of about 0.36 (39 se). The one-sided check_at_least is
    judged against the named scale |L_1| = 0.5 (the bound 0 has no size): 5.7%.
    Injected: a bound that returns L_1 for every K (the gap is exactly 0, 0 se above) and
    one that returns L_1 of an independent draw (the right noise, mean gap 0). Both pass the
    one-sided check_at_least (a bound that never tightens satisfies L_5 >= L_1), which is
    why the book pairs it with check_exceeds.
    """
    seed_everything(2)
    log_w = torch.randn(10_000, K, dtype=torch.float64) - 0.5
    l1 = log_w[:, 0]
    gap = summarize(_bounds(log_w) - l1)
    result = check_exceeds("E[L_5 - L_1] > 0", gap.mean, 0.0, stderr=gap.stderr)
    assert _resolved(result) == pytest.approx(critical_z(2e-3) * 0.0092 / 0.36, rel=0.05)
    check_at_least("E[L_5 - L_1] >= 0", gap.mean, 0.0, stderr=gap.stderr, scale=0.5)

    fresh = torch.randn(10_000, K, dtype=torch.float64) - 0.5
    for mutant in (_never_tightens(log_w), _never_tightens(fresh)):
        wrong = summarize(mutant - l1)
        check_at_least("never tightens: E[L_5 - L_1] >= 0", wrong.mean, 0.0, stderr=wrong.stderr)
        with pytest.raises(AssertionError, match=r"FAILED never tightens: .* se above"):
            check_exceeds("never tightens: E[L_5 - L_1] > 0", wrong.mean, 0.0, stderr=wrong.stderr)


# ---------------------------------------------------------------- agreement over many coordinates

P = 10_000  # coordinates of the gradient
R = 200  # draws of each estimator
THETA = 0.05  # |E[g_j]|: per coordinate, 0.05 sqrt(R / 2) = 0.5 se of a difference of means


def _gradients(num_draws: int) -> torch.Tensor:
    """Per-draw pathwise gradients of E_{x~N(θ, I)}[‖x‖²/2] in θ: g = θ + ε, shape (R, P).

    θ_j = ±0.05, so ‖θ‖ = 5 and each coordinate's signal is a twentieth of its noise.
    """
    theta = THETA * (1 - 2 * (torch.arange(P) % 2)).double()
    return theta + torch.randn(num_draws, P, dtype=torch.float64)


def _counterfeit(num_draws: int) -> torch.Tensor:
    """The mutation: each draw of the real estimator times a random sign. Per coordinate the
    noise is the real one (variance 1 + θ_j², against 1), the mean is 0."""
    signs = torch.randint(0, 2, (num_draws, 1), dtype=torch.float64) * 2 - 1
    return signs * _gradients(num_draws)


def test_agreement_check_catches_a_counterfeit_with_the_right_noise():
    """check_agree of two estimators of a 10,000-coordinate gradient, R = 200 draws each.

    The direction u is the mean of an independent run of 2,000 draws; along it the
    reference's mean projection is ‖θ‖ cos ≈ 5 x 0.91 = 4.6, and the difference of two
    mean projections has stderr sqrt(2 / R) = 0.1: the check detects a disagreement of
    3.32 se = 0.33 along u (7.2% of 4.6), Student's t at Welch's df ≈ 2R - 2 = 398 (the
    normal quantile would be 3.29). Injected: a counterfeit with the right noise and
    mean 0 (a random sign on each draw), 4.6 away (15 of its se, which the random signs
    widen to 0.34): it fails.

    The coordinate-wise check_close of the same counterfeit, Bonferroni over 10⁴
    coordinates (limit 5.33 se), passes: each coordinate is only 0.5 se off, and it would
    catch it with probability about 10⁴ x P(Z > 4.83) = 0.7%. Its resolution is over ten
    times |θ_j|. That is why agreement over many coordinates is checked with check_agree.
    """
    seed_everything(3)
    reference = _gradients(R)
    direction = sum(_gradients(500).sum(0) for _ in range(4)) / 2_000  # independent run
    result = check_agree(
        "pathwise agrees with pathwise", _gradients(R), reference, direction=direction
    )
    _resolved(result)
    assert float(result.limit) == pytest.approx(3.315, abs=0.005)  # t.isf(5e-4, ~398)
    with pytest.raises(AssertionError, match="FAILED counterfeit"):
        check_agree(
            "counterfeit agrees with pathwise", _counterfeit(R), reference, direction=direction
        )

    fake, real = summarize(_counterfeit(R)), summarize(reference)
    powerless = check_close(
        "counterfeit agrees with pathwise, coordinate by coordinate",
        fake.mean,
        real.mean,
        stderr=(fake.stderr**2 + real.stderr**2).sqrt(),
        scale=THETA,
    )
    assert powerless.passed and powerless.resolution > 10  # 5.33 sqrt(2 / R) = 10.7 |θ_j|
    z = critical_z(1e-3, P)
    offset = THETA / math.sqrt(2 / R)  # each coordinate's error, in se of the difference
    power = P * (1 - torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(z - offset)))
    assert power < 0.01


# ---------------------------------------------------------------- deterministic tolerance


def test_deterministic_check_catches_a_closed_form_10_percent_off():
    """Gauss–Hermite quadrature of E[x²] under N(1, 2²) against μ² + σ² = 5, rtol 1e-10.

    The check detects a relative error of 1e-10 (its resolution). Injected: a closed form
    ×1.1, and one off by 1e-8 relative; both fail.
    """
    seed_everything(4)  # nothing random here; seeded as every test is
    quadrature = gaussian_expectation(lambda x: x**2, loc=MU, scale=SIGMA)
    result = check_close("E[x²] by quadrature", quadrature, MU**2 + SIGMA**2, rtol=1e-10)
    assert _resolved(result) == pytest.approx(1e-10)
    for factor in (1.1, 1 + 1e-8):
        with pytest.raises(AssertionError, match="FAILED wrong closed form"):
            check_close("wrong closed form", quadrature, factor * (MU**2 + SIGMA**2), rtol=1e-10)


# ---------------------------------------------------------------- testing the tests (slow)

REPETITIONS = 2_000
NOMINAL = 0.05  # a rate large enough to measure in 2,000 repetitions


def _failures(check, repetitions=REPETITIONS):
    """How many of ``repetitions`` calls of ``check(i)`` raise AssertionError."""
    failed = 0
    for i in range(repetitions):
        try:
            check(i)
        except AssertionError:
            failed += 1
    return failed


@pytest.mark.slow
def test_the_mean_check_fails_at_its_nominal_rate_and_catches_a_bias_nearly_always():
    """2,000 check_mc of E[x²] = 5 at false_alarm 0.05, each from N = 10⁴ fresh draws.

    Correct: the failure fraction has binomial stderr sqrt(0.05 x 0.95 / 2000) = 0.0049 and
    is checked against 0.05 (it detects a miscalibration of 0.016). Biased ×1.1 (7.2 se at
    N = 10⁴): the check (limit 1.96 se) catches it with probability 1 - P(Z < 1.96 - 7.2)
    ≈ 1 - 1e-7; at least 99% of the 2,000 must fail.
    """
    seed_everything(5)
    n = 10_000
    x = MU + SIGMA * torch.randn(n, REPETITIONS, dtype=torch.float64)
    values = x**2

    def correct(i):
        check_mc("E[x²]", values[:, i], 5.0, false_alarm=NOMINAL, verbose=False)

    def biased(i):
        check_mc("E[x²] ×1.1", 1.1 * values[:, i], 5.0, false_alarm=NOMINAL, verbose=False)

    rate = _failures(correct) / REPETITIONS
    check_close(
        "false-alarm rate of check_mc at 5%",
        rate,
        NOMINAL,
        stderr=math.sqrt(NOMINAL * (1 - NOMINAL) / REPETITIONS),
    )
    caught = _failures(biased) / REPETITIONS
    assert caught >= 0.99, f"a ×1.1 bias was caught in only {caught:.1%} of checks"


@pytest.mark.slow
def test_the_agreement_check_fails_at_its_nominal_rate_and_catches_a_counterfeit():
    """2,000 check_agree of two correct 50-coordinate estimators (R = 100 draws each, a
    direction from 400 independent draws) at false_alarm 0.05: the failure fraction is
    checked against 0.05 (binomial stderr 0.0049). The counterfeit (random signs) must fail
    in at least 99% of the checks: its gap along u is about 6.7 se (caught with probability
    1 - P(Z < 1.96 - 6.7) ≈ 1 - 1e-6).
    """
    seed_everything(6)
    p, r = 50, 100
    theta = 0.2 * (1 - 2 * (torch.arange(p) % 2)).double()  # ‖θ‖ = 1.41

    def draws(n):
        return theta + torch.randn(n, p, dtype=torch.float64)

    def correct(i):
        check_agree(
            "agree",
            draws(r),
            draws(r),
            direction=draws(400).mean(0),
            false_alarm=NOMINAL,
            verbose=False,
        )

    def counterfeit(i):
        signs = torch.randint(0, 2, (r, 1), dtype=torch.float64) * 2 - 1
        check_agree(
            "counterfeit",
            signs * draws(r),
            draws(r),
            direction=draws(400).mean(0),
            false_alarm=NOMINAL,
            verbose=False,
        )

    rate = _failures(correct) / REPETITIONS
    check_close(
        "false-alarm rate of check_agree at 5%",
        rate,
        NOMINAL,
        stderr=math.sqrt(NOMINAL * (1 - NOMINAL) / REPETITIONS),
    )
    caught = _failures(counterfeit) / REPETITIONS
    assert caught >= 0.99, f"the counterfeit was caught in only {caught:.1%} of checks"
