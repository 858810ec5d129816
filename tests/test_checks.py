"""Tests of companion.checks: exact behaviour of the check helper, and its error rates."""

import math

import pytest
import torch

from companion.checks import DEFAULT_FALSE_ALARM, CheckResult, check_close, check_mc, critical_z
from companion.montecarlo import summarize


def test_critical_z_matches_normal_quantiles():
    assert critical_z(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert critical_z(1e-3) == pytest.approx(3.290527, abs=1e-6)
    # Bonferroni over 10 coordinates at 0.05 is the single-coordinate z at 0.005.
    assert critical_z(0.05, 10) == pytest.approx(critical_z(0.005), abs=1e-12)


def test_statistical_check_passes_within_z_stderr_and_prints_one_line(capsys):
    result = check_close("mean", 1.3, 1.0, stderr=0.1)  # 3 se < 3.29 se
    line = capsys.readouterr().out.strip()
    assert isinstance(result, CheckResult) and result.passed
    assert line.count("\n") == 0
    assert line.startswith("✓ mean: 1.3000 ± 0.1000 | exact 1.0000 | 3.00 se (limit 3.29 se)")
    assert float(result.distance) == pytest.approx(3.0)


def test_statistical_check_fails_beyond_z_stderr_with_the_same_line(capsys):
    with pytest.raises(AssertionError) as info:
        check_close("mean", 1.34, 1.0, stderr=0.1)  # 3.4 se > 3.29 se
    printed = capsys.readouterr().out.strip()
    assert str(info.value) == printed
    assert "FAILED mean" in printed and "3.40 se" in printed


def test_false_alarm_sets_the_limit():
    check_close("loose", 1.25, 1.0, stderr=0.1, verbose=False)  # 2.5 se < 3.29 se at 1e-3
    with pytest.raises(AssertionError):
        check_close("tight", 1.25, 1.0, stderr=0.1, false_alarm=0.05, verbose=False)  # > 1.96 se


def test_vector_check_uses_bonferroni_over_coordinates():
    z4 = critical_z(DEFAULT_FALSE_ALARM, 4)
    est = torch.tensor([0.0, 0.0, 0.0, (z4 - 0.01) * 0.1])
    result = check_close("vector", est, 0.0, stderr=0.1, verbose=False)
    assert float(result.limit.max()) == pytest.approx(z4)
    with pytest.raises(AssertionError):
        check_close("vector", est + 0.002, 0.0, stderr=0.1, verbose=False)


def test_deterministic_check_uses_rtol_and_atol():
    check_close("exact", 1.0 + 1e-9, 1.0, rtol=1e-8, verbose=False)
    check_close("exact", [1.0, 100.5], [1.0, 100.0], rtol=1e-2, verbose=False)
    with pytest.raises(AssertionError, match=r"\|Δ\|"):
        check_close("exact", 1.1, 1.0, atol=0.05, verbose=False)


def test_zero_stderr_and_exact_equality_pass():
    assert check_close("deterministic", 2.0, 2.0, stderr=0.0, verbose=False).passed
    with pytest.raises(AssertionError):
        check_close("deterministic", 2.0, 2.1, stderr=0.0, verbose=False)


def test_check_mc_summarizes_samples(capsys):
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    result = check_mc("mean of 1..4", values, 2.5)
    assert float(result.estimate) == 2.5
    assert float(result.stderr) == pytest.approx(values.std().item() / 2)
    assert "mean of 1..4: 2.5000 ± 0.6455" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(estimate=float("nan"), exact=1.0, stderr=0.1), ValueError, "estimate must be finite"),
        (dict(estimate=1.0, exact=float("inf"), stderr=0.1), ValueError, "exact must be finite"),
        (dict(estimate=1.0, exact=1.0, stderr=-0.1), ValueError, "stderr must be >= 0"),
        (dict(estimate=1.0, exact=1.0), ValueError, "got neither"),
        (dict(estimate=1.0, exact=1.0, stderr=0.1, rtol=0.1), ValueError, "not both"),
        (dict(estimate=[1.0, 2.0], exact=[1.0, 2.0, 3.0], rtol=0.1), ValueError, "broadcast"),
        (
            dict(estimate=[1.0, 2.0], exact=1.0, stderr=[0.1, 0.1, 0.1]),
            ValueError,
            "stderr must broadcast",
        ),
        (dict(estimate="1.0", exact=1.0, rtol=0.1), TypeError, "estimate must be a number"),
        (dict(estimate=1.0, exact=1.0, rtol=-1.0), ValueError, "rtol must be a number >= 0"),
        (
            dict(estimate=1.0, exact=1.0, stderr=0.1, false_alarm=1.5),
            ValueError,
            "false_alarm must be in",
        ),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_close("bad", **kwargs, verbose=False)


def test_label_must_be_text():
    with pytest.raises(TypeError, match="label must be a non-empty string"):
        check_close(3, 1.0, 1.0, rtol=0.1)


def _distances(bias_factor, num_samples, repetitions, seed):
    """|mean - exact| / stderr for `repetitions` independent checks of E[x^2] = 5 under N(1, 2^2).

    The estimate is multiplied by `bias_factor` to inject a relative bias.
    """
    torch.manual_seed(seed)
    x = torch.distributions.Normal(1.0, 2.0).sample((num_samples, repetitions)).double()
    est = summarize(x**2)  # one check per column: mean and stderr shaped (repetitions,)
    return (bias_factor * est.mean - 5.0).abs() / est.stderr


def test_false_alarm_rate_is_near_its_target():
    """Test the tests: correct estimates fail at the advertised rate.

    20,000 checks at a 5% false-alarm rate; the observed failure fraction has binomial
    standard error 0.0015, so it is compared with 0.05 within 3.29 such standard errors
    (the t-vs-normal and skewness corrections at N = 1,000 are below 0.001).
    """
    repetitions = 20_000
    distances = _distances(1.0, 1_000, repetitions, seed=0)
    rate = (distances > critical_z(0.05)).double().mean().item()
    binomial_se = math.sqrt(0.05 * 0.95 / repetitions)
    check_close("false-alarm rate at 5%", rate, 0.05, stderr=binomial_se)


def test_injected_bias_is_caught():
    """Test the tests: a 10% relative error (x1.1) fails the check almost every time.

    With N = 10,000 the stderr of E[x^2] is sqrt(48 / N) = 0.069, so a bias of 0.5 is
    7.2 standard errors, far past the 3.29 limit; the smallest bias this check detects
    half of the time is 3.29 * 0.069 = 0.23, a 4.5% relative error.
    """
    distances = _distances(1.1, 10_000, 200, seed=1)
    caught = (distances > critical_z(DEFAULT_FALSE_ALARM)).double().mean().item()
    assert caught == 1.0, f"bias x1.1 caught in only {caught:.1%} of checks"


# ---------------------------------------------------------------- one-sided checks


def test_check_at_least_is_one_sided(capsys):
    from companion.checks import BoundCheckResult, check_at_least

    z1 = critical_z(2 * DEFAULT_FALSE_ALARM)  # one-sided 1e-3: 3.09
    assert z1 == pytest.approx(3.090232, abs=1e-6)
    result = check_at_least("gap >= 0", 5.0, 0.0, stderr=0.1)  # far above: 0 se short
    assert result.passed and float(result.distance) == 0.0
    assert isinstance(result, BoundCheckResult) and isinstance(result, CheckResult)
    assert capsys.readouterr().out.strip() == (
        "✓ gap >= 0: 5.0000 ± 0.1000 | at least 0.0000 | 0.00 se short (limit 3.09 se)"
    )
    check_at_least("just below", -0.30, 0.0, stderr=0.1, verbose=False)  # 3.0 se < 3.09
    with pytest.raises(AssertionError, match=r"FAILED below: -0.3200 .* 3.20 se short"):
        check_at_least("below", -0.32, 0.0, stderr=0.1, verbose=False)
    # Bonferroni over coordinates, as check_close.
    result = check_at_least("vector", torch.tensor([1.0, -0.3]), 0.0, stderr=0.1, verbose=False)
    assert float(result.limit.max()) == pytest.approx(critical_z(2 * DEFAULT_FALSE_ALARM, 2))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(estimate=float("nan"), bound=0.0, stderr=0.1), ValueError, "estimate must be finite"),
        (dict(estimate=1.0, bound=0.0, stderr=-0.1), ValueError, "stderr must be >= 0"),
        (dict(estimate=[1.0, 2.0], bound=[0.0, 0.0, 0.0], stderr=0.1), ValueError, "broadcast"),
        (dict(estimate=1.0, bound=0.0, stderr=[0.1, 0.1]), ValueError, "stderr must broadcast"),
        (dict(estimate=1.0, bound=0.0, stderr=0.1, false_alarm=0.6), ValueError, "one-sided"),
    ],
)
def test_check_at_least_bad_input(kwargs, error, match):
    from companion.checks import check_at_least

    with pytest.raises(error, match=match):
        check_at_least("bad", **kwargs, verbose=False)


def test_check_at_least_false_alarm_rate():
    """Test the test: estimates whose mean equals the bound fail at the one-sided rate.

    4,000 checks at a 5% rate, each of a mean of N = 1,000 draws with exact mean 0 against
    the bound 0; the failure fraction (binomial se 0.0034) must match 0.05.
    """
    from companion.checks import check_at_least

    torch.manual_seed(2)
    est = summarize(torch.randn(1_000, 4_000, dtype=torch.float64))
    fails = 0
    for mean, se in zip(est.mean.tolist(), est.stderr.tolist()):
        try:
            check_at_least("mean >= 0", mean, 0.0, stderr=se, false_alarm=0.05, verbose=False)
        except AssertionError:
            fails += 1
    check_close(
        "one-sided false-alarm rate at 5%",
        fails / 4_000,
        0.05,
        stderr=math.sqrt(0.05 * 0.95 / 4_000),
    )


def test_a_check_on_the_last_line_of_a_cell_is_not_shown_twice():
    """The check prints its line; IPython's display of the returned result adds nothing."""
    from IPython.core.interactiveshell import InteractiveShell

    result = check_close("displayed", 1.0, 1.0, rtol=0.1, verbose=False)
    assert InteractiveShell.instance().display_formatter.format(result) == ({}, {})


# ---------------------------------------------------------------- adversarial input


def test_critical_z_works_down_to_tiny_false_alarm_rates():
    from scipy.stats import norm

    for rate, m in [(1e-20, 1), (1e-300, 1), (1e-300, 1000), (1e-307, 7)]:
        assert critical_z(rate, m) == pytest.approx(norm.isf(rate / (2 * m)), rel=1e-13)
    assert critical_z(1e-300) == pytest.approx(37.0657878807721, rel=1e-12)
    # the checks accept such rates too
    check_close("tiny rate", 1.0, 1.0, stderr=0.1, false_alarm=1e-300, verbose=False)
    check_mc("tiny rate", [1.0, 2.0, 3.0], 2.0, false_alarm=1e-300, verbose=False)
    from companion.checks import check_at_least

    check_at_least("tiny rate", 1.0, 1.0, stderr=0.1, false_alarm=1e-300, verbose=False)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (
            (5e-324,),
            ValueError,
            r"false_alarm / \(2 num_comparisons\) = 5e-324 / \(2 x 1\) underflows",
        ),
        ((1e-3, 10**400), ValueError, "a 401-digit integer.* underflows"),
        ((0.0,), ValueError, r"false_alarm must be in \(0, 1\)"),
        ((float("nan"),), ValueError, "false_alarm must be in"),
        ((True,), TypeError, "false_alarm must be a number"),
        (("0.05",), TypeError, "false_alarm must be a number"),
        ((0.05, True), TypeError, "num_comparisons must be an integer >= 1, got bool"),
        ((0.05, 2.0), TypeError, "num_comparisons must be an integer >= 1, got float"),
        ((0.05, 0), ValueError, "num_comparisons must be an integer >= 1, got 0"),
        ((0.05, "3"), TypeError, "num_comparisons must be an integer"),
    ],
)
def test_critical_z_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        critical_z(*args)


def test_critical_z_accepts_numpy_integers():
    import numpy as np

    assert critical_z(0.05, np.int64(10)) == critical_z(0.05, 10)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(label=""), ValueError, "label must be a non-empty string"),
        (dict(label="   "), ValueError, "label must be a non-empty string"),
        (dict(label=None), TypeError, "label must be a non-empty string, got NoneType"),
        (dict(label=b"mean"), TypeError, "label must be a non-empty string, got bytes"),
        (
            dict(estimate=True),
            TypeError,
            "estimate must be a real number, array or tensor, got bool",
        ),
        (dict(estimate=[True, False]), TypeError, "estimate must be a real number"),
        (dict(exact=torch.tensor(True)), TypeError, "exact must be a real number"),
        (dict(estimate=1 + 2j), TypeError, "estimate must be"),
        (dict(estimate=torch.tensor([INF])), ValueError, "estimate must be finite"),
        (dict(estimate=torch.zeros(0)), ValueError, "estimate and exact must hold at least one"),
        (dict(estimate=torch.zeros(1), exact=torch.zeros(0)), ValueError, "at least one value"),
        (
            dict(estimate=torch.zeros(2, 3), exact=torch.zeros(2)),
            ValueError,
            "exact must broadcast",
        ),
        (dict(stderr=NAN), ValueError, "stderr must be finite"),
        (dict(stderr=INF), ValueError, "stderr must be finite"),
        (dict(stderr=True), TypeError, "stderr must be a real number"),
        (dict(stderr="0.1"), TypeError, "stderr must be a number"),
        (dict(rtol=NAN), ValueError, "rtol must be a number >= 0 and finite, got nan"),
        (dict(rtol=INF), ValueError, "rtol must be a number >= 0 and finite, got inf"),
        (dict(atol=-1e-9), ValueError, "atol must be a number >= 0"),
        (dict(atol=True), TypeError, "atol must be a number >= 0, got bool"),
        (dict(atol="0.1"), TypeError, "atol must be a number >= 0, got str"),
        (dict(atol=1e-3, rtol=None, false_alarm=2.0), ValueError, "false_alarm must be in"),
        (dict(verbose="no"), TypeError, "verbose must be True or False, got str"),
        (dict(verbose=0), TypeError, "verbose must be True or False, got int"),
        (dict(verbose=None), TypeError, "verbose must be True or False"),
    ],
)
def test_check_close_refuses_everything_malformed(capsys, kwargs, error, match):
    args = dict(label="mean", estimate=torch.tensor([1.0, 2.0]), exact=1.5, stderr=1.0)
    if "rtol" in kwargs or "atol" in kwargs:
        args.pop("stderr")
    args.update(kwargs)
    estimate = args["estimate"]
    before = estimate.clone() if isinstance(estimate, torch.Tensor) else None
    with pytest.raises(error, match=match):
        check_close(args.pop("label"), args.pop("estimate"), args.pop("exact"), **args)
    assert capsys.readouterr().out == ""  # nothing printed: no half-made check line
    if before is not None:  # the caller's tensor is unchanged
        assert torch.equal(estimate, before)


def test_checks_accept_numpy_numbers_as_tolerances():
    import numpy as np

    assert check_close("np tolerance", 1.0, 1.0 + 1e-9, rtol=np.float32(1e-6), verbose=False).passed


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(label=3), TypeError, "label must be a non-empty string, got int"),
        (dict(values=(v for v in [1.0, 2.0])), TypeError, "values must be a number"),
        (dict(values=[1.0]), ValueError, "at least 2 samples"),
        (dict(values=torch.zeros(5, 0)), ValueError, "at least one value"),
        (dict(values=[1.0, NAN]), ValueError, "values must be finite"),
        (dict(exact="a"), TypeError, "exact must be a number"),
        (dict(verbose="yes"), TypeError, "verbose must be True or False"),
        (dict(false_alarm=-0.1), ValueError, "false_alarm must be in"),
    ],
)
def test_check_mc_refuses_everything_malformed(kwargs, error, match):
    args = dict(label="mean", values=[1.0, 2.0, 3.0], exact=2.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        check_mc(args.pop("label"), args.pop("values"), args.pop("exact"), **args)


def test_check_mc_counts_booleans_as_indicators():
    result = check_mc("P(x > 0)", torch.tensor([True, False, True, False]), 0.5, verbose=False)
    assert float(result.estimate) == 0.5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(label=""), ValueError, "label must be a non-empty string"),
        (dict(verbose=1), TypeError, "verbose must be True or False"),
        (dict(bound=True), TypeError, "bound must be a real number"),
        (dict(stderr=NAN), ValueError, "stderr must be finite"),
        (dict(stderr=None), TypeError, "stderr must be a number"),
        (dict(estimate=torch.zeros(0)), ValueError, "must hold at least one value"),
        (dict(false_alarm=1e-300), None, None),
    ],
)
def test_check_at_least_refuses_everything_malformed(kwargs, error, match):
    from companion.checks import check_at_least

    args = dict(label="gap", estimate=1.0, bound=0.0, stderr=0.1, verbose=False)
    args.update(kwargs)

    def call():
        return check_at_least(args.pop("label"), args.pop("estimate"), args.pop("bound"), **args)

    if error is None:
        assert call().passed
    else:
        with pytest.raises(error, match=match):
            call()
