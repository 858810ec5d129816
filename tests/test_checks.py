"""Tests of companion.checks: exact behaviour of the check helper, and its error rates."""

import json
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
    # z * stderr = 3.29 * 0.1 = 0.329 is 33% of max |exact| = 1
    assert line == (
        "✓ mean: 1.3000 ± 0.1000 | exact 1.0000 | 3.00 se (limit 3.29 se) | catches 33% of 1.000"
    )
    assert float(result.distance) == pytest.approx(3.0)


def test_statistical_check_fails_beyond_z_stderr_with_the_same_line(capsys):
    with pytest.raises(AssertionError) as info:
        check_close("mean", 1.34, 1.0, stderr=0.1)  # 3.4 se > 3.29 se
    printed = capsys.readouterr().out.strip()
    assert str(info.value) == printed
    assert printed == (
        "✗ FAILED mean: 1.3400 ± 0.1000 | exact 1.0000 | 3.40 se (limit 3.29 se) | "
        "catches 33% of 1.000"
    )


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
    assert capsys.readouterr().out == (
        "✓ mean of 1..4: 2.5000 ± 0.6455 | exact 2.5000 | 0.00 se (limit 3.29 se) | "
        "catches 85% of 2.500\n"
    )


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
        "✓ gap >= 0: 5.0000 ± 0.1000 | at least 0.0000 | 0.00 se short (limit 3.09 se) | "
        "catches ±0.31 (no scale)"
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


# ---------------------------------------------------------------- resolution


def test_statistical_resolution_is_per_coordinate_and_the_worst_one_is_reported():
    """Coordinate i is judged against its own |exact_i|: z·0.1 / 1 and z·0.2 / 4.

    z = 2.807 (Bonferroni over 2 coordinates at 0.01): 28% of 1 and 14% of 4. The worst is
    coordinate 0, although its absolute resolution (0.28) is the smaller one (0.56).
    """
    z = critical_z(0.01, 2)
    assert z == pytest.approx(2.807034, abs=1e-6)
    result = check_close(
        "two", [1.0, -4.1], [1.0, -4.0], stderr=[0.1, 0.2], false_alarm=0.01, verbose=False
    )
    assert result.false_alarm == 0.01
    assert result.scale is None  # none named
    assert torch.equal(result.sizes(), torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert result.absolute_resolutions().tolist() == pytest.approx([z * 0.1, z * 0.2], rel=1e-12)
    assert result.absolute_resolution() == pytest.approx(z * 0.2, rel=1e-12)  # worst, absolute
    assert result.resolution == pytest.approx(z * 0.1 / 1.0, rel=1e-12)  # worst, relative
    assert result.resolution_text() == "catches 28% of 1.000 (worst coordinate, 0)"


def test_a_vector_with_one_small_coordinate_is_reported_by_that_coordinate(capsys):
    """Three claims in one vector, exact (10, 10, 0.5), stderr 0.1 each, z = 3.588 (1e-3,
    Bonferroni over 3): the first two are resolved to z·0.1 / 10 = 3.6%, the third only to
    z·0.1 / 0.5 = 72%. The check's resolution is the third's, not the 3.6% that a size of
    max |exact| = 10 would claim for the whole vector."""
    z = critical_z(1e-3, 3)
    assert z == pytest.approx(3.587915, abs=1e-6)
    result = check_close("three claims", [10.0, 10.0, 0.5], [10.0, 10.0, 0.5], stderr=0.1)
    assert result.resolution == pytest.approx(z * 0.1 / 0.5, rel=1e-12)  # 0.7176
    assert capsys.readouterr().out.strip() == (
        "✓ three claims: [10.0000, 10.0000, 0.5000] ± [0.1000, 0.1000, 0.1000] | "
        "exact [10.0000, 10.0000, 0.5000] | max 0.00 se (limit 3.59 se) | "
        "catches 72% of 0.500 (worst coordinate, 2)"
    )
    # the named scale floors each coordinate's size: max(|exact_i|, 5) = (10, 10, 5)
    result = check_close("floored", [10.0, 10.0, 0.5], [10.0, 10.0, 0.5], stderr=0.1, scale=5)
    assert result.scale == 5.0
    assert result.sizes().tolist() == [10.0, 10.0, 5.0]
    assert result.resolution == pytest.approx(z * 0.1 / 5.0, rel=1e-12)  # 0.0718
    assert result.resolution_text() == "catches 7.2% of 5.000 (worst coordinate, 2)"
    # a scale below every |exact_i| changes nothing: a floor, not a replacement
    low = check_close("low floor", [10.0, 0.5], [10.0, 0.5], stderr=0.1, scale=0.1)
    assert low.sizes().tolist() == [10.0, 0.5]
    assert low.resolution == pytest.approx(critical_z(1e-3, 2) * 0.1 / 0.5, rel=1e-12)


def test_a_zero_coordinate_without_a_scale_makes_the_resolution_infinite(capsys):
    """exact (2, 0): coordinate 1 has no size to be judged against, so the check has no
    relative resolution, even though coordinate 0 alone would be resolved to 3.5%."""
    z = critical_z(1e-3, 2)  # 3.481
    assert z == pytest.approx(3.480756, abs=1e-6)
    result = check_close("with a zero", [2.0, 0.0], [2.0, 0.0], stderr=[0.02, 0.1])
    assert result.scale is None and result.resolution == math.inf
    assert result.sizes().tolist() == [2.0, 0.0]
    assert result.absolute_resolution() == pytest.approx(z * 0.1, rel=1e-12)  # 0.348
    assert capsys.readouterr().out.strip() == (
        "✓ with a zero: [2.0000, 0.0000] ± [0.0200, 0.1000] | exact [2.0000, 0.0000] | "
        "max 0.00 se (limit 3.48 se) | catches ±0.35 (no scale)"
    )
    # a named scale gives it one: max(0, 1) = 1, and z·0.1 / 1 = 35% is then the worst
    named = check_close("with a zero", [2.0, 0.0], [2.0, 0.0], stderr=[0.02, 0.1], scale=1.0)
    assert named.resolution == pytest.approx(z * 0.1, rel=1e-12)
    assert named.resolution_text() == "catches 35% of 1.000 (worst coordinate, 1)"
    # a deterministic vector identity with a zero entry: the same, tolerance over size
    result = check_close("identity", [0.0, 3.0], [0.0, 3.0], rtol=1e-6, atol=1e-9, verbose=False)
    assert result.resolution == math.inf and result.resolution_text() == (
        "catches ±3e-06 (no scale)"
    )
    result = check_close(
        "identity", [0.0, 3.0], [0.0, 3.0], rtol=1e-6, atol=1e-9, scale=3.0, verbose=False
    )
    assert result.resolution == pytest.approx((1e-9 + 3e-6) / 3.0, rel=1e-12)


def test_deterministic_resolution_is_the_tolerance_over_each_coordinates_size(capsys):
    result = check_close("det", [1.0, 2.0], [1.0, 2.0], rtol=0.01, atol=0.002)
    # tolerance atol + rtol |exact_i| = 0.012 and 0.022, over |exact_i| = 1 and 2: 1.2% and
    # 1.1%; the worst coordinate is 0 although its tolerance is the smaller
    assert result.false_alarm is None and result.stderr is None
    assert result.absolute_resolutions().tolist() == pytest.approx([0.012, 0.022], rel=1e-12)
    assert result.absolute_resolution() == pytest.approx(0.022, rel=1e-12)
    assert result.scale is None
    assert result.resolution == pytest.approx(0.012, rel=1e-12)
    assert capsys.readouterr().out.strip() == (
        "✓ det: [1.0000, 2.0000] | exact [1.0000, 2.0000] | max |Δ| 0.00 (tolerance 0.02) | "
        "catches 1.2% of 1.000 (worst coordinate, 0)"
    )


def test_a_named_scale_replaces_max_abs_exact(capsys):
    result = check_close("E[score] = 0", 0.01, 0.0, stderr=0.01, false_alarm=0.05, scale=2.0)
    assert result.scale == 2.0
    assert result.resolution == pytest.approx(critical_z(0.05) * 0.01 / 2.0, rel=1e-12)
    assert capsys.readouterr().out.strip() == (
        "✓ E[score] = 0: 0.0100 ± 0.0100 | exact 0.0000 | 1.00 se (limit 1.96 se) | "
        "catches 0.98% of 2.000"
    )
    # a named scale above |exact| wins; deterministic: tolerance / max(|exact|, scale)
    result = check_close("det", 3.0, 3.0, atol=0.5, scale=10, verbose=False)
    assert result.scale == 10.0 and result.resolution == pytest.approx(0.05, rel=1e-12)
    # below |exact| it is only a floor: 0.5 / 3
    result = check_close("det", 3.0, 3.0, atol=0.5, scale=1, verbose=False)
    assert result.scale == 1.0 and result.resolution == pytest.approx(0.5 / 3.0, rel=1e-12)
    assert result.resolution_text() == "catches 17% of 3.000"


def test_without_a_scale_the_resolution_is_infinite_and_absolute_on_the_line(capsys):
    result = check_close("zero", 0.0, 0.0, stderr=0.1)
    assert result.scale is None and result.resolution == math.inf
    assert result.absolute_resolution() == pytest.approx(critical_z(1e-3) * 0.1, rel=1e-12)
    assert capsys.readouterr().out.strip() == (
        "✓ zero: 0.0000 ± 0.1000 | exact 0.0000 | 0.00 se (limit 3.29 se) | "
        "catches ±0.33 (no scale)"
    )
    # significant digits, not fixed ones: a tolerance of 0.002 does not read "±0.00"
    result = check_close("det zero", 0.0, [0.0, 0.0], atol=0.002, verbose=False)
    assert result.resolution_text() == "catches ±0.002 (no scale)"


def test_check_mc_and_check_at_least_take_a_scale():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # mean 2.5, se 0.6455
    se = values.std().item() / 2
    result = check_mc("mc", values, 2.5, false_alarm=0.05, scale=25.0, verbose=False)
    assert result.resolution == pytest.approx(critical_z(0.05) * se / 25.0, rel=1e-12)
    result = check_mc("mc", values, 2.5, false_alarm=0.05, verbose=False)  # default 2.5
    assert result.resolution == pytest.approx(critical_z(0.05) * se / 2.5, rel=1e-12)

    from companion.checks import check_at_least

    z1 = critical_z(2 * 0.05)  # one-sided at 0.05
    result = check_at_least("a", 1.0, -2.0, stderr=0.1, false_alarm=0.05, verbose=False)
    assert result.scale is None and float(result.sizes()) == 2.0  # |bound|
    assert result.resolution == pytest.approx(z1 * 0.1 / 2.0, rel=1e-12)
    result = check_at_least("a", 1.0, 0.0, stderr=0.1, scale=0.5, verbose=False)
    assert result.scale == 0.5 and float(result.sizes()) == 0.5  # max(0, 0.5)
    assert result.resolution == pytest.approx(critical_z(2e-3) * 0.1 / 0.5, rel=1e-12)
    # per coordinate, as check_close: bounds (-2, 0.5) with scale 1 give sizes (2, 1)
    result = check_at_least(
        "a", [1.0, 1.0], [-2.0, 0.5], stderr=[0.4, 0.1], scale=1.0, verbose=False
    )
    z2 = critical_z(2e-3, 2)
    assert result.sizes().tolist() == [2.0, 1.0]
    assert result.resolution == pytest.approx(z2 * 0.4 / 2.0, rel=1e-12)  # 0.2 z2 > 0.1 z2
    assert result.resolution_text() == "catches 66% of 2.000 (worst coordinate, 0)"


# ---------------------------------------------------------------- degrees of freedom


def test_check_close_with_df_uses_students_t_quantile():
    """df = 1 and df = 2 have closed forms: the Cauchy quantile 1 / tan(π q), and
    (1 - 2q) / sqrt(2 q (1 - q)) for two degrees of freedom; q = false_alarm / (2 m)."""
    import numpy as np

    r = check_close("t, df 1", 1.0, 1.0, stderr=0.1, false_alarm=0.05, df=1, verbose=False)
    assert float(r.limit) == pytest.approx(1 / math.tan(math.pi * 0.025), rel=1e-10)  # 12.71
    # Bonferroni over 2 coordinates: q = 0.05 / 4 = 0.0125, t = 0.975 / sqrt(0.0246875) = 6.205
    t2 = 0.975 / math.sqrt(2 * 0.0125 * 0.9875)
    r = check_close(
        "t, df 2", [1.0, 2.0], [1.0, 2.0], stderr=0.1, false_alarm=0.05, df=2, verbose=False
    )
    assert t2 == pytest.approx(6.205347, abs=1e-6)
    assert r.limit.tolist() == pytest.approx([t2, t2], rel=1e-10)
    assert r.resolution == pytest.approx(t2 * 0.1 / 1.0, rel=1e-10)  # coordinate 0 is worst
    # 2.5 se: fails the normal limit 1.96, passes Student's 4.303 = 0.95 / sqrt(0.04875)
    with pytest.raises(AssertionError, match=r"2\.50 se \(limit 1\.96 se\)"):
        check_close("normal", 1.25, 1.0, stderr=0.1, false_alarm=0.05, verbose=False)
    r = check_close("t", 1.25, 1.0, stderr=0.1, false_alarm=0.05, df=np.float64(2.0))
    assert float(r.limit) == pytest.approx(0.95 / math.sqrt(2 * 0.025 * 0.975), rel=1e-10)
    # many degrees of freedom: the normal quantile
    r = check_close("t, df 1e12", 1.0, 1.0, stderr=0.1, false_alarm=0.05, df=1e12, verbose=False)
    assert float(r.limit) == pytest.approx(critical_z(0.05), rel=1e-9)


@pytest.mark.parametrize(
    "df, error, match",
    [
        (True, TypeError, "df must be a number >= 1, got bool"),
        ("3", TypeError, "df must be a number >= 1, got str"),
        (torch.tensor(3.0), TypeError, "df must be a number"),
        (0.5, ValueError, "df must be a finite number >= 1, got 0.5"),
        (0, ValueError, "df must be a finite number >= 1, got 0"),
        (-3.0, ValueError, "df must be a finite number >= 1"),
        (NAN, ValueError, "df must be a finite number >= 1, got nan"),
        (INF, ValueError, "df must be a finite number >= 1, got inf"),
        (10**400, ValueError, "df must be a finite number >= 1, got int 1000"),
    ],
)
def test_check_close_refuses_a_malformed_df_before_charging_the_budget(capsys, df, error, match):
    from companion.ledger import end_chapter, start_chapter

    budget = start_chapter("ch", max_checks=1)
    try:
        with pytest.raises(error, match=match):
            check_close("mean", 1.0, 1.0, stderr=0.1, df=df)
        assert budget.count == 0 and budget.spent == 0.0
    finally:
        end_chapter()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("df", [3, 3.0, "3", True])
def test_df_belongs_to_a_statistical_check(df):
    """Without stderr, df is refused (not ignored), whatever its value."""
    with pytest.raises(ValueError, match="df applies to a statistical check"):
        check_close("exact", 1.0, 1.0, rtol=0.1, df=df, verbose=False)


# ---------------------------------------------------------------- check_exceeds


def test_check_exceeds_passes_when_the_gap_is_resolved(capsys):
    from companion.checks import BoundCheckResult, check_exceeds

    result = check_exceeds("L50 > L1", 1.0, 0.4, stderr=0.1)  # 6 se above; needs 3.09
    assert isinstance(result, BoundCheckResult) and result.strict and result.passed
    assert float(result.distance) == pytest.approx(6.0)
    assert float(result.limit) == pytest.approx(critical_z(2e-3))
    # relative to the margin 1.0 - 0.4 = 0.6, not to the bound: 3.09 x 0.1 / 0.6 = 52%
    assert result.scale is None
    assert float(result.sizes()) == pytest.approx(0.6, rel=1e-12)
    assert result.resolution == pytest.approx(critical_z(2e-3) * 0.1 / 0.6, rel=1e-12)
    assert capsys.readouterr().out.strip() == (
        "✓ L50 > L1: 1.0000 ± 0.1000 | above 0.4000 | 6.00 se above (needs 3.09 se) | "
        "catches 52% of 0.600"
    )


def test_check_exceeds_fails_when_the_gap_is_within_z_stderr(capsys):
    from companion.checks import check_exceeds

    with pytest.raises(AssertionError) as info:
        check_exceeds("L5 > L1", 0.8, 0.5, stderr=0.1)  # 3.00 se < 3.09 se: not resolved
    printed = capsys.readouterr().out.strip()
    assert (
        str(info.value)
        == printed
        == (
            "✗ FAILED L5 > L1: 0.8000 ± 0.1000 | above 0.5000 | 3.00 se above (needs 3.09 se) | "
            "catches 103% of 0.300"  # 3.09 se over a margin of 3.00 se
        )
    )
    # a bound that never tightens: no gap at all, or below, or exactly equal with no noise
    for estimate, se in [(0.5, 0.1), (0.3, 0.1), (0.5, 0.0)]:
        with pytest.raises(AssertionError, match=r"FAILED .* 0\.00 se above"):
            check_exceeds("never tightens", estimate, 0.5, stderr=se, verbose=False)
    # zero noise and a real gap: resolved
    assert check_exceeds("exact gap", 0.6, 0.5, stderr=0.0, verbose=False).passed


def test_check_exceeds_resolution_is_relative_to_the_margin_of_each_coordinate():
    """z·se over the margin estimate - bound, per coordinate; the audit's 10% then asks for
    a margin of 10 z standard errors. It has no scale= to name."""
    from companion.checks import check_exceeds

    z1 = critical_z(2e-3)
    # a bound far from 0 does not make a small margin look resolved: 101 vs 100, se 0.1
    result = check_exceeds("gap", 101.0, 100.0, stderr=0.1, verbose=False)
    assert result.scale is None and float(result.sizes()) == pytest.approx(1.0)
    assert result.resolution == pytest.approx(z1 * 0.1 / 1.0, rel=1e-12)  # 31%, not 0.31%
    # a margin of exactly 10 z se is resolved to exactly 10%
    result = check_exceeds("10 z se", 10 * z1 * 0.1, 0.0, stderr=0.1, verbose=False)
    assert result.resolution == pytest.approx(0.1, rel=1e-12)
    assert result.resolution_text() == f"catches 10% of {10 * z1 * 0.1:.3f}"
    # per coordinate: margins (2, 0.5), se (0.1, 0.05): 0.05 z2 and 0.1 z2; the second is worst
    z2 = critical_z(2e-3, 2)
    result = check_exceeds("two", [2.0, 1.0], [0.0, 0.5], stderr=[0.1, 0.05], verbose=False)
    assert result.sizes().tolist() == [2.0, 0.5]
    assert result.absolute_resolutions().tolist() == pytest.approx([z2 * 0.1, z2 * 0.05])
    assert result.resolution == pytest.approx(z2 * 0.1, rel=1e-12)
    assert result.resolution_text() == "catches 33% of 0.500 (worst coordinate, 1)"
    with pytest.raises(TypeError, match="scale"):
        check_exceeds("gap", 1.0, 0.0, stderr=0.1, scale=4.0, verbose=False)


def test_check_exceeds_coordinates():
    from companion.checks import check_exceeds

    # bound 0: the margin is the gap itself
    result = check_exceeds("gap > 0", 1.0, 0.0, stderr=0.1, verbose=False)
    assert result.scale is None and float(result.sizes()) == 1.0
    assert result.resolution == pytest.approx(critical_z(2e-3) * 0.1, rel=1e-12)
    # every coordinate must be resolved, at the Bonferroni z; the line shows the smallest
    z2 = critical_z(2e-3, 2)
    result = check_exceeds("both", [1.0, z2 * 0.1 + 1e-6], 0.0, stderr=0.1, verbose=False)
    assert float(result.limit.max()) == pytest.approx(z2)
    with pytest.raises(AssertionError, match=r"min 3\.\d\d se above \(needs 3\.29 se\)"):
        check_exceeds("both", [1.0, z2 * 0.1 - 1e-3], 0.0, stderr=0.1, verbose=False)


# ---------------------------------------------------------------- check_agree


def test_check_agree_compares_mean_projections_exactly():
    """Hand-made draws, direction (3, 4)/5: projections (3, 4, 7) and (7, 6, 8, 7).

    mean a = 14/3, s_a² = 13/3 (se² 13/9); mean b = 7, s_b² = 2/3 (se² 1/6); the gap
    -7/3 over sqrt(13/9 + 1/6) = sqrt(29/18) is 1.838 se; the scale is |mean b| = 7.
    Welch's degrees of freedom: (29/18)² / ((13/9)²/2 + (1/6)²/3) = (841/324) / (341/324)
    = 841/341 = 2.466, and the limit is Student's t quantile there, not the normal one.
    """
    from scipy.stats import t

    from companion.checks import check_agree

    samples = [[5.0, 0.0], [0.0, 5.0], [5.0, 5.0]]
    reference = [[5.0, 5.0], [10.0, 0.0], [0.0, 10.0], [5.0, 5.0]]
    se = math.sqrt(29 / 18)
    df = 841 / 341
    limit = t.isf(0.05 / 2, df)  # 3.610, where the normal quantile is 1.960
    assert limit == pytest.approx(3.609871, abs=1e-6)
    result = check_agree(
        "agree", samples, reference, direction=[3.0, 4.0], false_alarm=0.05, verbose=False
    )
    assert float(result.estimate) == pytest.approx(-7 / 3, rel=1e-12)
    assert float(result.exact) == 0.0
    assert float(result.stderr) == pytest.approx(se, rel=1e-12)
    assert float(result.distance) == pytest.approx(7 / 3 / se, rel=1e-12)
    assert float(result.limit) == pytest.approx(limit, rel=1e-10)
    assert result.scale == pytest.approx(7.0, rel=1e-12)
    assert result.resolution == pytest.approx(limit * se / 7.0, rel=1e-10)
    # at 10% the normal limit, 1.64 se, would fail the 1.84 se gap; Student's, 2.58, passes
    result = check_agree(
        "agree", samples, reference, direction=[3.0, 4.0], false_alarm=0.1, verbose=False
    )
    assert float(result.limit) == pytest.approx(t.isf(0.05, df), rel=1e-10)
    assert float(result.limit) == pytest.approx(2.576235, abs=1e-6)
    # the direction's length does not matter; 1.84 se fails at 30% (t: 1.31 se)
    with pytest.raises(AssertionError, match=r"1\.84 se \(limit 1\.31 se\)"):
        check_agree(
            "agree", samples, reference, direction=[30.0, 40.0], false_alarm=0.3, verbose=False
        )


def test_check_agree_degrees_of_freedom_in_the_extreme_cases():
    """Welch's df lies between min(R_a, R_b) - 1 and R_a + R_b - 2: with one side constant
    it is the other side's R - 1; with equal variances and sizes it is 2R - 2. With both
    sides constant the gap is exact, and huge or tiny draws do not overflow the formula."""
    from scipy.stats import t

    from companion.checks import check_agree

    a = torch.tensor([[1.0], [3.0]], dtype=torch.float64)  # se² 1
    b = torch.tensor([[2.0], [2.0], [2.0]], dtype=torch.float64)  # constant: se² 0
    result = check_agree("one side constant", a, b, direction=[1.0], false_alarm=0.05)
    # df = R_a - 1 = 1: Cauchy, whose quantile is 1 / tan(π q) = 12.706 at q = 0.025
    assert float(result.limit) == pytest.approx(1 / math.tan(math.pi * 0.025), rel=1e-10)
    c = torch.tensor([[1.0], [3.0], [1.0], [3.0]], dtype=torch.float64)
    d = torch.tensor([[0.0], [2.0], [0.0], [2.0]], dtype=torch.float64)
    result = check_agree("equal", c, d, direction=[1.0], false_alarm=0.05, verbose=False)
    assert float(result.limit) == pytest.approx(t.isf(0.025, 6), rel=1e-10)  # 2R - 2 = 6
    # both constant and equal: 0 se apart, passes (0/0 is no gap)
    assert check_agree("constant", b, b, direction=[1.0], verbose=False).passed
    with pytest.raises(AssertionError):  # both constant, different: infinitely many se apart
        check_agree("constant", b + 1, b, direction=[1.0], verbose=False)
    # squares of the variances would overflow (1e200²) or underflow (1e-200²): df stays 6
    for size in (1e100, 1e-100):
        result = check_agree("huge", c * size, d * size, direction=[1.0], verbose=False)
        assert float(result.limit) == pytest.approx(t.isf(1e-3 / 2, 6), rel=1e-10)


def test_check_agree_bad_input():
    from companion.checks import check_agree

    a, b = torch.ones(3, 2), torch.ones(4, 2)
    with pytest.raises(ValueError, match="direction must be nonzero"):
        check_agree("x", a, b, direction=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"direction \(P,\)"):
        check_agree("x", a, b, direction=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="mean exactly 0 along direction"):
        check_agree("x", a, torch.zeros(4, 2), direction=[1.0, 0.0])
    with pytest.raises(ValueError, match="samples must hold at least 2"):
        check_agree("x", a[:1], b, direction=[1.0, 0.0])
    with pytest.raises(ValueError, match="reference must be finite"):
        check_agree("x", a, b * math.nan, direction=[1.0, 0.0])
    # huge directions are normalized without overflow
    result = check_agree("x", a, b, direction=[1e308, 1e308], verbose=False)
    assert result.scale == pytest.approx(math.sqrt(2), rel=1e-12)


# ---------------------------------------------------------------- report


def test_report_prints_a_measurement_and_returns_the_value(capsys):
    from companion.checks import report

    value = report("single-sample REINFORCE", 0.0312, stderr=0.1)
    assert capsys.readouterr().out == (
        "· single-sample REINFORCE: 0.0312 ± 0.1000 (a measurement, not a check)\n"
    )
    assert value.dtype == torch.float64 and float(value) == 0.0312
    value = report("a vector", torch.tensor([1.0, 2.0]))
    assert capsys.readouterr().out == "· a vector: [1.0000, 2.0000] (a measurement, not a check)\n"
    assert torch.equal(value, torch.tensor([1.0, 2.0], dtype=torch.float64))
    report("quiet", 1.0, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(label=""), ValueError, "label must be a non-empty string"),
        (dict(value=NAN), ValueError, "value must be finite"),
        (dict(value=torch.zeros(0)), ValueError, "value must hold at least one value"),
        (dict(value=True), TypeError, "value must be a real number"),
        (dict(stderr=-1.0), ValueError, "stderr must be >= 0"),
        (dict(stderr=[0.1, 0.1, 0.1]), ValueError, "stderr must broadcast"),
        (dict(verbose="yes"), TypeError, "verbose must be True or False"),
    ],
)
def test_report_refuses_malformed_input(capsys, kwargs, error, match):
    from companion.checks import report

    args = dict(label="m", value=[1.0, 2.0], stderr=0.1)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        report(args.pop("label"), args.pop("value"), **args)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- the audit log

FIELDS = {
    "chapter",
    "label",
    "kind",
    "passed",
    "resolution",
    "scale",
    "absolute_resolution",
    "false_alarm",
    "coordinates",
}


def _log_lines(path):
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_check_kind_writes_one_json_line(monkeypatch, tmp_path):
    from companion.checks import check_agree, check_at_least, check_exceeds, report
    from companion.ledger import LOG_VARIABLE, end_chapter

    end_chapter()  # outside a chapter: "chapter" is null
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    z = critical_z(0.05)
    z1 = critical_z(0.1)  # one-sided at 0.05
    check_close("close", 2.0, 2.0, stderr=0.1, false_alarm=0.05, verbose=False)
    check_close("exact", [1.0, 4.0], [1.0, 4.0], rtol=0.01, verbose=False)
    check_mc("mc", [1.0, 2.0, 3.0, 4.0], 2.5, false_alarm=0.05, verbose=False)
    check_at_least("at least", 1.0, 0.0, stderr=0.1, false_alarm=0.05, verbose=False)
    check_exceeds("exceeds", 1.0, 0.5, stderr=0.1, false_alarm=0.05, verbose=False)
    check_agree(
        "agree", [[1.0], [3.0]], [[2.0], [2.0]], direction=[1.0], false_alarm=0.05, verbose=False
    )
    report("measured", 1.0, stderr=0.1, verbose=False)
    lines = _log_lines(log)
    assert [(e["label"], e["kind"]) for e in lines] == [
        ("close", "close"),
        ("exact", "exact"),
        ("mc", "close"),
        ("at least", "at_least"),
        ("exceeds", "exceeds"),
        ("agree", "close"),
        ("measured", "measurement"),
    ]
    for entry in lines[:-1]:
        assert set(entry) == FIELDS and entry["chapter"] is None and entry["passed"] is True
    assert lines[-1] == {"chapter": None, "label": "measured", "kind": "measurement"}
    close, exact, mc, at_least, exceeds, agree = lines[:-1]
    assert close["resolution"] == pytest.approx(z * 0.1 / 2.0, rel=1e-12)
    assert close["absolute_resolution"] == pytest.approx(z * 0.1, rel=1e-12)
    assert close["scale"] is None  # none named: |exact| = 2 is the size
    assert close["false_alarm"] == 0.05 and close["coordinates"] == 1
    assert exact["false_alarm"] is None and exact["coordinates"] == 2
    assert exact["absolute_resolution"] == pytest.approx(0.04, rel=1e-12)
    # tolerance 0.01 |exact_i| over |exact_i|: 1% in each coordinate
    assert exact["resolution"] == pytest.approx(0.01, rel=1e-12) and exact["scale"] is None
    se = torch.tensor([1.0, 2.0, 3.0, 4.0]).std().item() / 2
    assert mc["absolute_resolution"] == pytest.approx(z * se, rel=1e-6)
    assert at_least["resolution"] is None and at_least["scale"] is None  # bound 0: no scale
    assert at_least["absolute_resolution"] == pytest.approx(z1 * 0.1, rel=1e-12)
    assert exceeds["resolution"] == pytest.approx(z1 * 0.1 / 0.5, rel=1e-12)  # margin 0.5
    assert exceeds["scale"] is None
    # agree: se² = 1 + 0, Welch df = R_a - 1 = 1 (Cauchy): t = 1 / tan(π 0.025) = 12.71
    t1 = 1 / math.tan(math.pi * 0.025)
    assert agree["scale"] == 2.0 and agree["resolution"] == pytest.approx(t1 * 1.0 / 2.0)


def test_a_failing_check_writes_its_line_before_raising(monkeypatch, tmp_path):
    from companion.checks import check_exceeds
    from companion.ledger import LOG_VARIABLE

    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    with pytest.raises(AssertionError):
        check_close("wrong", 1.5, 1.0, stderr=0.1, verbose=False)
    with pytest.raises(AssertionError):
        check_close("wrong exact", 1.5, 1.0, atol=0.1, verbose=False)
    with pytest.raises(AssertionError):
        check_exceeds("no gap", 1.0, 1.0, stderr=0.1, verbose=False)
    lines = _log_lines(log)
    assert [(e["label"], e["passed"]) for e in lines] == [
        ("wrong", False),
        ("wrong exact", False),
        ("no gap", False),
    ]
    assert all(set(e) == FIELDS for e in lines)


def test_no_log_without_the_variable(monkeypatch, tmp_path):
    from companion.checks import report
    from companion.ledger import LOG_VARIABLE

    monkeypatch.delenv(LOG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    check_close("close", 1.0, 1.0, stderr=0.1, verbose=False)
    check_close("exact", 1.0, 1.0, rtol=0.1, verbose=False)
    report("measured", 1.0, verbose=False)
    with pytest.raises(AssertionError):
        check_close("wrong", 2.0, 1.0, stderr=0.1, verbose=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(LOG_VARIABLE, "")  # empty: no log either
    check_close("close", 1.0, 1.0, stderr=0.1, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_expect_failure_swallows_a_failed_check_and_refuses_a_passing_one(capsys):
    """A counterfeit must be caught: the block's failure is the pass, its success the error."""
    from companion.checks import expect_failure

    with expect_failure("a 10% error is caught"):
        check_close("wrong by 10%", 1.1, 1.0, rtol=0.01)
    assert (
        capsys.readouterr().out.splitlines()[-1] == "✓ caught, as it must be: a 10% error is caught"
    )
    with (
        pytest.raises(AssertionError, match="the check inside passed, so it cannot tell"),
        expect_failure("an error that is not there"),
    ):
        check_close("right", 1.0, 1.0, rtol=0.01)


def test_expect_failure_reraises_a_bare_assert(capsys):
    """A failing bare ``assert`` is not a check that caught an error: it is raised as it is,
    not swallowed as a demonstration (even after a check inside passed)."""
    from companion.checks import expect_failure

    def block():
        check_close("right", 1.0, 1.0, rtol=0.01, verbose=False)
        assert 1 + 1 == 3

    with (
        pytest.raises(AssertionError) as info,
        expect_failure("a bare assert is not a check"),
    ):
        block()
    assert "1 + 1" in str(info.value) and "FAILED" not in str(info.value)
    mine = AssertionError("not a check")
    with pytest.raises(AssertionError) as info, expect_failure("a raised AssertionError"):
        raise mine
    assert info.value is mine  # the very exception, not a message about it
    assert "caught" not in capsys.readouterr().out


def test_expect_failure_lets_every_other_exception_through(capsys):
    """Only a failed check is swallowed. A ValueError (malformed input to a check) is raised;
    so is any other exception, even after a check inside failed by far: the block's outcome
    is that exception, not the check's failure (``except Exception`` instead of
    ``except AssertionError`` would swallow it)."""
    from companion import checks
    from companion.checks import expect_failure

    with (
        pytest.raises(ValueError, match="estimate must be finite"),
        expect_failure("malformed input is an error, not a catch"),
    ):
        check_close("nan", math.nan, 1.0, rtol=0.1)
    with pytest.raises(ValueError, match="not an assertion"), expect_failure("a ValueError"):
        raise ValueError("not an assertion")

    def fail_then_raise(error):
        try:
            check_close("wrong by 100x", 2.0, 1.0, rtol=0.01, verbose=False)  # 100 x limit
        except AssertionError as failed:
            raise error("raised after the check failed") from failed

    for error in (ValueError, RuntimeError, KeyError):
        with (
            pytest.raises(error, match="raised after the check failed"),
            expect_failure("another exception after a failed check"),
        ):
            fail_then_raise(error)
    assert "caught" not in capsys.readouterr().out
    assert checks._EXPECTED == []  # every block closed its list of failed checks


def test_expect_failure_refuses_a_check_caught_only_barely(capsys):
    """The failed check must be at least twice past its limit: max distance_i / limit_i >= 2."""
    from companion.checks import check_exceeds, expect_failure

    # 5 se against a limit of 3.29 se: 1.52 times the limit
    with (
        pytest.raises(AssertionError) as info,
        expect_failure("a near miss is not a demonstration"),
    ):
        check_close("near miss", 1.5, 1.0, stderr=0.1)
    assert str(info.value) == (
        "✗ FAILED a near miss is not a demonstration: caught only barely ('near miss' at "
        "1.52 times its limit, less than 2): under another seed it could pass"
    )
    # deterministic: |Δ| 0.19 against atol 0.1 is 1.90 times; 0.21 is 2.10 times, caught
    with (
        pytest.raises(AssertionError, match=r"'near' at 1\.90 times its limit"),
        expect_failure("1.9 times"),
    ):
        check_close("near", 1.19, 1.0, atol=0.1, verbose=False)
    with expect_failure("2.1 times"):
        check_close("far enough", 1.21, 1.0, atol=0.1, verbose=False)
    # a vector: the worst coordinate counts; a coordinate with limit 0 and |Δ| 0 (exact 0,
    # atol 0) is 0 times its limit, not 0/0, and does not hide the other's 1.5 times
    with (
        pytest.raises(AssertionError, match=r"'vector' at 1\.50 times its limit"),
        expect_failure("1.5 times"),
    ):
        check_close("vector", [0.0, 1.15], [0.0, 1.0], rtol=0.1, verbose=False)
    with expect_failure("3 times, in one of two coordinates"):
        check_close("vector", [1.0, 1.3], [1.0, 1.0], rtol=0.1, verbose=False)
    # a bound that never tightens (margin 0 se) is caught by check_exceeds: its distance is
    # the margin, which must reach the limit, so no "twice" applies
    with expect_failure("a bound that never tightens"):
        check_exceeds("never tightens", 0.5, 0.5, stderr=0.1, verbose=False)
    out = capsys.readouterr().out
    assert out.count("✓ caught, as it must be") == 3 and "1.9 times" not in out


def test_expected_failures_are_not_charged_and_are_marked_in_the_log(tmp_path, monkeypatch):
    from companion.checks import expect_failure
    from companion.ledger import end_chapter, start_chapter

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COMPANION_CHECK_LOG", str(log))
    budget = start_chapter("ch", max_checks=1)
    try:
        with expect_failure("a counterfeit"):  # 7 se: over twice the limit 3.29 se
            check_close("counterfeit", 7.0, 0.0, stderr=1.0, scale=1.0)
        assert budget.count == 0 and budget.spent == 0.0
        check_close("the real check", 0.1, 0.0, stderr=1.0, scale=1.0)  # the budget's one check
        assert budget.count == 1
    finally:
        end_chapter()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line.get("expected_failure", False) for line in lines] == [True, False]
    assert [line["passed"] for line in lines] == [False, True]
