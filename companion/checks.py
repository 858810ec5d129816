"""Numerical checks: every formula the book derives is compared with an independent number.

A check compares an ``estimate`` with an ``exact`` value and prints one line::

    ✓ E[x²] under N(1, 2²): 5.0171 ± 0.0289 | exact 5.0000 | 0.59 se (limit 3.29 se)

When the estimate is random (Monte Carlo), give its standard error: the check passes when
|estimate - exact| <= z * stderr, where z is the two-sided normal quantile for the chosen
false-alarm rate, Bonferroni-corrected over the compared coordinates (z = 3.29 for one
coordinate at the default rate 1e-3). A true formula then fails with probability at most
``false_alarm``; a wrong one is caught once its error is several standard errors wide.

When the estimate is deterministic (quadrature, autograd, a closed form), give explicit
``rtol``/``atol`` instead, with the usual meaning |estimate - exact| <= atol + rtol |exact|.

A failed check raises ``AssertionError`` carrying the same line, so an executed notebook,
nbval and the book build all fail loudly. Malformed input (a label that is not text, NaN,
shapes that do not broadcast, an empty comparison, a negative tolerance or standard error,
a flag that is not a bool) raises ``ValueError`` or ``TypeError`` naming the argument
instead: a check never passes by accident.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from statistics import NormalDist

import torch

from ._validation import (
    as_tensor,
    check_bool,
    check_finite,
    check_positive_int,
    check_probability,
    describe,
    is_boolean,
)
from .montecarlo import summarize

__all__ = [
    "DEFAULT_FALSE_ALARM",
    "critical_z",
    "CheckResult",
    "BoundCheckResult",
    "check_close",
    "check_mc",
    "check_at_least",
]


DEFAULT_FALSE_ALARM = 1e-3
"""Per-check probability that a true formula fails its check."""


def critical_z(false_alarm: float = DEFAULT_FALSE_ALARM, num_comparisons: int = 1) -> float:
    """Two-sided normal quantile z with P(|Z| > z) = false_alarm / num_comparisons.

    Dividing the rate by the number of compared coordinates (Bonferroni) keeps the chance
    that *any* of them fails at most ``false_alarm``. With q = false_alarm / (2 m), m =
    ``num_comparisons``, z is computed as the lower-tail quantile z = -Φ⁻¹(q) rather than
    Φ⁻¹(1 - q), because 1 - q rounds to 1 for q < 1e-16: this is accurate to about 1e-15
    relative for every q down to the smallest positive double (z = 37.05 at q = 1e-300).

    Args:
        false_alarm: the total false-alarm rate, in (0, 1).
        num_comparisons: m, the number of compared coordinates, an integer >= 1.

    Returns:
        z > 0 as a float.

    Raises:
        ValueError: false_alarm / (2 num_comparisons) underflows to 0 (below about 5e-324).

    Example:
        >>> round(critical_z(0.05), 2)
        1.96
        >>> round(critical_z(1e-300), 2)  # q = 5e-301
        37.07
    """
    false_alarm = check_probability("false_alarm", false_alarm)
    num_comparisons = check_positive_int("num_comparisons", num_comparisons)
    try:
        q = false_alarm / 2 / num_comparisons
    except OverflowError:  # an integer too large for a float
        q = 0.0
    if q == 0.0:
        m = (
            str(num_comparisons)
            if num_comparisons < 10**20
            else f"a {len(str(num_comparisons))}-digit integer"
        )
        raise ValueError(
            f"false_alarm / (2 num_comparisons) = {false_alarm} / (2 x {m}) underflows to 0: "
            f"use a larger false_alarm or fewer num_comparisons"
        )
    return -NormalDist().inv_cdf(q)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``str(result)`` is the line the check printed.

    Attributes:
        label: what was checked.
        estimate, exact: the compared values (float64, broadcast to a common shape).
        stderr: the estimate's standard error, or None for a deterministic check.
        distance: |estimate - exact| / stderr (standard errors apart) for a statistical
            check, |estimate - exact| for a deterministic one; same shape as ``estimate``.
        limit: the largest allowed distance: z, or the tolerance atol + rtol |exact|.
        passed: whether every coordinate is within its limit.
    """

    label: str
    estimate: torch.Tensor
    exact: torch.Tensor
    stderr: torch.Tensor | None
    distance: torch.Tensor
    limit: torch.Tensor
    passed: bool

    def __post_init__(self):
        _check_label(self.label)
        for name in ("estimate", "exact", "stderr", "distance", "limit"):
            value = getattr(self, name)
            if name == "stderr" and value is None:
                continue
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
            if value.shape != self.estimate.shape:
                raise ValueError(
                    f"{name} must have the shape of estimate "
                    f"{tuple(self.estimate.shape)}, got shape {tuple(value.shape)}"
                )
            if name != "distance":  # a nonzero gap over a zero stderr is infinitely far
                check_finite(name, value.detach())
            if name != "estimate" and name != "exact" and not (value >= 0).all():
                raise ValueError(f"{name} must be >= 0, got minimum {value.min().item()}")
        check_bool("passed", self.passed)

    def _ipython_display_(self):
        # The check already printed its line; a check on a cell's last line shows it once.
        pass

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗ FAILED"
        if self.stderr is not None:
            value = f"{_fmt(self.estimate)} ± {_fmt(self.stderr)}"
            worst = f"{self.distance.max().item():.2f} se (limit {self.limit.max().item():.2f} se)"
            if self.distance.numel() > 1:
                worst = "max " + worst
        else:
            value = _fmt(self.estimate)
            worst = f"|Δ| {_fmt(self.distance.max(), 2)} (tolerance {_fmt(self.limit.max(), 2)})"
            if self.distance.numel() > 1:
                worst = "max " + worst
        return f"{mark} {self.label}: {value} | exact {_fmt(self.exact)} | {worst}"


def _fmt(t: torch.Tensor, digits: int = 4) -> str:
    """Compact text for a scalar or a short vector; long tensors are summarized."""
    t = t.detach().cpu()
    if t.numel() == 1:
        x = t.item()
        return f"{x:.{digits}g}" if (abs(x) >= 1e4 or 0 < abs(x) < 1e-3) else f"{x:.{digits}f}"
    if t.numel() <= 6:
        return "[" + ", ".join(_fmt(v, digits) for v in t.flatten()) + "]"
    return f"<{t.numel()} values, {_fmt(t.min(), digits)}..{_fmt(t.max(), digits)}>"


def check_close(
    label: str,
    estimate,
    exact,
    *,
    stderr=None,
    false_alarm: float = DEFAULT_FALSE_ALARM,
    rtol: float | None = None,
    atol: float | None = None,
    verbose: bool = True,
) -> CheckResult:
    """Compare ``estimate`` with ``exact``; print one line; raise AssertionError on failure.

    Args:
        label: what is being checked, a non-empty string, e.g. ``"E[cos(ωx)] under N(μ, σ²)"``.
        estimate: a real number, array or tensor, shape ``(*shape)``, finite.
        exact: the reference value, finite; ``estimate`` and ``exact`` broadcast together to
            the compared shape, which must hold at least one value.
        stderr: the estimate's standard error, finite and >= 0, broadcastable to that
            shape, or None.
        false_alarm: with ``stderr``: the probability in (0, 1) that a correct estimate fails.
        rtol, atol: without ``stderr``: the tolerance atol + rtol |exact| (at least one),
            finite numbers >= 0.
        verbose: print the line (True, the default, as in the book) or not (False).

    Returns:
        The :class:`CheckResult`, when the check passes.

    Raises:
        AssertionError: the check failed; the message is the printed line.
        ValueError, TypeError: malformed input (shapes, non-finite values, tolerances).
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    false_alarm = check_probability("false_alarm", false_alarm)
    est = _values("estimate", estimate)
    ref = _values("exact", exact).to(est.device)
    try:
        est, ref = torch.broadcast_tensors(est, ref)
    except RuntimeError as err:
        raise ValueError(
            f"exact must broadcast to the shape of estimate {tuple(est.shape)}, "
            f"got shape {tuple(ref.shape)}"
        ) from err
    _check_not_empty(est, "estimate and exact")
    gap = (est - ref).abs()
    if stderr is not None:
        if rtol is not None or atol is not None:
            raise ValueError(
                "give either stderr (a statistical check) or rtol/atol (a deterministic "
                f"check), not both; got stderr and rtol={rtol}, atol={atol}"
            )
        se = _stderr(stderr).to(est.device)
        try:
            se = torch.broadcast_to(se, est.shape)
        except RuntimeError as err:
            raise ValueError(
                f"stderr must broadcast to the shape of estimate {tuple(est.shape)}, "
                f"got shape {tuple(se.shape)}"
            ) from err
        z = critical_z(false_alarm, est.numel())
        # 0/0 (an exact estimate with zero stderr) is zero standard errors away.
        distance = torch.where(gap == 0, torch.zeros_like(gap), gap / se)
        limit = torch.full_like(gap, z)
    else:
        if rtol is None and atol is None:
            raise ValueError(
                "a check needs stderr (for a random estimate) or rtol/atol (for a "
                "deterministic one); got neither"
            )
        rtol_v = _tolerance("rtol", rtol)
        atol_v = _tolerance("atol", atol)
        se = None
        distance = gap
        limit = atol_v + rtol_v * ref.abs()
    result = CheckResult(
        label=label,
        estimate=est,
        exact=ref,
        stderr=se,
        distance=distance,
        limit=limit,
        passed=bool((distance <= limit).all()),
    )
    if verbose:
        print(result)
    if not result.passed:
        raise AssertionError(str(result))
    return result


def _tolerance(name: str, value) -> float:
    """None (0.0) or a finite real number >= 0 (an infinite tolerance would pass anything)."""
    if value is None:
        return 0.0
    if is_boolean(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {describe(value)}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a number >= 0 and finite, got {value}")
    return float(value)


def _check_label(label) -> str:
    if not isinstance(label, str):
        raise TypeError(f"label must be a non-empty string, got {describe(label)}")
    if not label.strip():
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    return label


def _values(name: str, value) -> torch.Tensor:
    """A finite float64 tensor of real numbers; booleans are refused (True is not a number)."""
    if is_boolean(value):
        raise TypeError(f"{name} must be a real number, array or tensor, got {describe(value)}")
    return check_finite(name, as_tensor(name, value, dtype=torch.float64))


def _stderr(value) -> torch.Tensor:
    se = _values("stderr", value)
    if (se < 0).any():
        raise ValueError(f"stderr must be >= 0, got minimum {se.min().item()}")
    return se


def _check_not_empty(tensor: torch.Tensor, names: str) -> None:
    # torch's all() of nothing is True: an empty comparison would pass without checking.
    if tensor.numel() == 0:
        raise ValueError(
            f"{names} must hold at least one value to compare, got shape {tuple(tensor.shape)}"
        )


def check_mc(
    label: str, values, exact, *, false_alarm: float = DEFAULT_FALSE_ALARM, verbose: bool = True
) -> CheckResult:
    """Check that the mean of independent per-sample ``values`` estimates ``exact``.

    Shorthand for ``check_close(label, m.mean, exact, stderr=m.stderr)`` with
    ``m = summarize(values)``.

    Args:
        label: what is being checked, a non-empty string.
        values: shape ``(N, *shape)``, N >= 2 independent finite samples along dimension 0
            (booleans count as 0 and 1: an indicator's mean is a probability).
        exact: broadcastable to ``(*shape)``.
        false_alarm, verbose: as in :func:`check_close`.
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    false_alarm = check_probability("false_alarm", false_alarm)
    estimate = summarize(values)
    return check_close(
        label,
        estimate.mean,
        exact,
        stderr=estimate.stderr,
        false_alarm=false_alarm,
        verbose=verbose,
    )


@dataclass(frozen=True)
class BoundCheckResult(CheckResult):
    """The outcome of :func:`check_at_least`; ``exact`` holds the bound, ``distance`` the
    shortfall max(bound - estimate, 0) / stderr, ``limit`` the one-sided z."""

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗ FAILED"
        worst = (
            f"{self.distance.max().item():.2f} se short (limit {self.limit.max().item():.2f} se)"
        )
        if self.distance.numel() > 1:
            worst = "max " + worst
        return (
            f"{mark} {self.label}: {_fmt(self.estimate)} ± {_fmt(self.stderr)} | "
            f"at least {_fmt(self.exact)} | {worst}"
        )


def check_at_least(
    label: str,
    estimate,
    bound,
    *,
    stderr,
    false_alarm: float = DEFAULT_FALSE_ALARM,
    verbose: bool = True,
) -> CheckResult:
    """One-sided check that a random ``estimate`` of a mean is not below ``bound``.

    For inequalities such as E[L_5] >= E[L_1] between bounds: passes when
    estimate >= bound - z * stderr, z the one-sided normal quantile with
    P(Z > z) = false_alarm / (number of coordinates) (z = 3.09 for one coordinate at 1e-3).
    A true inequality fails with probability at most ``false_alarm``; a violation is caught
    once the estimate is a few standard errors below the bound. Prints one line.

    Args:
        label: what is being checked, a non-empty string, e.g. ``"E[L_5 - L_1] >= 0"``.
        estimate: shape ``(*shape)``, finite; bound: finite, broadcastable with it; stderr:
            the estimate's standard error, finite and >= 0, broadcastable to the shape of
            the two, which must hold at least one value.
        false_alarm: the one-sided false-alarm rate, in (0, 0.5).
        verbose: print the line (True) or not (False).

    Returns:
        The :class:`BoundCheckResult`, when the check passes; raises AssertionError otherwise.
    """
    false_alarm = check_probability("false_alarm", false_alarm)
    if false_alarm >= 0.5:
        raise ValueError(
            f"false_alarm must be in (0, 0.5) for a one-sided check, got {false_alarm}"
        )
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    est = _values("estimate", estimate)
    ref = _values("bound", bound).to(est.device)
    se = _stderr(stderr).to(est.device)
    try:
        est, ref = torch.broadcast_tensors(est, ref)
    except RuntimeError as err:
        raise ValueError(
            f"bound must broadcast to the shape of estimate {tuple(est.shape)}, "
            f"got shape {tuple(ref.shape)}"
        ) from err
    try:
        se = torch.broadcast_to(se, est.shape)
    except RuntimeError as err:
        raise ValueError(
            f"stderr must broadcast to the shape {tuple(est.shape)} of estimate "
            f"and bound, got shape {tuple(se.shape)}"
        ) from err
    _check_not_empty(est, "estimate, bound and stderr")
    z = critical_z(2 * false_alarm, est.numel())  # two-sided at 2α = one-sided at α
    short = (ref - est).clamp_min(0)
    distance = torch.where(short == 0, torch.zeros_like(short), short / se)
    limit = torch.full_like(short, z)
    result = BoundCheckResult(
        label=label,
        estimate=est,
        exact=ref,
        stderr=se,
        distance=distance,
        limit=limit,
        passed=bool((distance <= limit).all()),
    )
    if verbose:
        print(result)
    if not result.passed:
        raise AssertionError(str(result))
    return result
