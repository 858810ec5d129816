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

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist

import torch

from . import ledger
from ._validation import (
    as_tensor,
    check_bool,
    check_finite,
    check_positive_int,
    check_probability,
    check_samples,
    describe,
    is_boolean,
)
from .ledger import DEFAULT_FALSE_ALARM
from .montecarlo import summarize

__all__ = [
    "DEFAULT_FALSE_ALARM",
    "critical_z",
    "CheckResult",
    "BoundCheckResult",
    "check_close",
    "check_mc",
    "check_at_least",
    "check_exceeds",
    "check_agree",
    "expect_failure",
    "report",
]


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
        false_alarm: the probability that a correct estimate fails (None: deterministic).
        scale: the floor the caller named under each coordinate's size |exact_i| (for a
            coordinate whose exact value is 0 or small), or None.
        resolution: the smallest error the check catches, relative to the size it is
            judged against, worst coordinate: z · stderr_i / max(|exact_i|, scale) for a
            statistical check (an error that large is caught at least half the time, one
            1.3 times larger about 90% of the time) or the tolerance over the same size for
            a deterministic one; inf where a size is 0.
    """

    label: str
    estimate: torch.Tensor
    exact: torch.Tensor
    stderr: torch.Tensor | None
    distance: torch.Tensor
    limit: torch.Tensor
    passed: bool
    false_alarm: float | None = None
    scale: float | None = None
    resolution: float = math.inf

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
        if self.false_alarm is not None:
            check_probability("false_alarm", self.false_alarm)
        if self.scale is not None:
            _scale(self.scale, self.estimate)
        resolution = self.resolution
        if is_boolean(resolution) or not isinstance(resolution, numbers.Real):
            raise TypeError(f"resolution must be a number >= 0 or inf, got {describe(resolution)}")
        if not resolution >= 0:  # NaN too
            raise ValueError(f"resolution must be a number >= 0 or inf, got {resolution}")

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
        return (
            f"{mark} {self.label}: {value} | exact {_fmt(self.exact)} | {worst} | "
            f"{self.resolution_text()}"
        )

    def absolute_resolutions(self) -> torch.Tensor:
        """The smallest error caught in each coordinate, in the units of the estimate."""
        return self.limit if self.stderr is None else self.limit * self.stderr

    def absolute_resolution(self) -> float:
        """The smallest error caught, in the units of the estimate (worst coordinate)."""
        return float(self.absolute_resolutions().max())

    def sizes(self) -> torch.Tensor:
        """What each coordinate's resolution is relative to: |exact|, floored by the scale."""
        size = self.exact.abs()
        return size if self.scale is None else size.clamp_min(self.scale)

    def resolution_text(self) -> str:
        """ "catches 1.2% of 2.500" at the worst coordinate; absolute where a size is 0."""
        if not math.isfinite(self.resolution):
            # significant digits: a tolerance of 0.002 must not read "±0.00"
            return f"catches ±{self.absolute_resolution():.2g} (no scale)"
        ratio = self.absolute_resolutions() / self.sizes()
        worst = int(ratio.flatten().argmax())
        pct = 100 * self.resolution
        pct_text = f"{pct:.0f}" if pct >= 100 else f"{pct:.2g}"
        text = f"catches {pct_text}% of {_fmt(self.sizes().flatten()[worst], 3)}"
        return text + (f" (worst coordinate, {worst})" if ratio.numel() > 1 else "")


def _scale(scale, reference: torch.Tensor) -> float | None:
    """The caller's scale (a finite number > 0), or max |reference|, or None when that is 0."""
    if scale is None:
        size = float(reference.abs().max()) if reference.numel() else 0.0
        return size if size > 0 else None
    if is_boolean(scale) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a number > 0, got {describe(scale)}")
    try:
        size = float(scale)
    except OverflowError:  # an integer too large for a float
        size = math.inf
    if not (math.isfinite(size) and size > 0):
        raise ValueError(f"scale must be a finite number > 0, got {describe(scale)}")
    return size


def _rate(false_alarm) -> float:
    """The caller's rate, checked, or the chapter's per-check share (ledger)."""
    if false_alarm is None:
        return ledger.default_false_alarm()
    return check_probability("false_alarm", false_alarm)


def _finish(result: CheckResult, kind: str, verbose: bool) -> CheckResult:
    """Print the line, write the audit record, raise on failure."""
    if verbose:
        print(result)
    ledger.record(
        {
            "label": result.label,
            "kind": kind,
            "passed": result.passed,
            "resolution": result.resolution,
            "scale": result.scale,
            "absolute_resolution": result.absolute_resolution(),
            "false_alarm": result.false_alarm,
            "coordinates": result.estimate.numel(),
        }
    )
    if not result.passed:
        if _EXPECTED:  # inside expect_failure: the block's failed checks, for its verdict
            _EXPECTED[-1].append(result)
        raise AssertionError(str(result))
    return result


_EXPECTED: list[list[CheckResult]] = []
"""One list per open expect_failure block: the checks that failed inside it."""


def _with_resolution(result: CheckResult, scale) -> CheckResult:
    """``result`` with its named scale and its relative resolution filled in.

    Each coordinate's resolution is relative to its own size, |exact_i|, floored by the
    named ``scale``; the check's resolution is the worst coordinate's. A coordinate of size 0
    (exact 0, no scale) has no relative resolution: the check's is then inf.
    """
    from dataclasses import replace

    named = None if scale is None else _scale(scale, result.exact)
    result = replace(result, scale=named)
    sizes = result.sizes()
    if not (sizes > 0).all():
        return result
    return replace(result, resolution=float((result.absolute_resolutions() / sizes).max()))


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
    false_alarm: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    scale=None,
    df: float | None = None,
    verbose: bool = True,
) -> CheckResult:
    """Compare ``estimate`` with ``exact``; print one line; raise AssertionError on failure.

    The line ends with the check's resolution, the smallest error it catches relative to a
    scale (see :class:`CheckResult`): a check that cannot catch a 10% error is too weak to
    be called one, and ``make test`` audits every check of the book for that.

    Args:
        label: what is being checked, a non-empty string, e.g. ``"E[cos(ωx)] under N(μ, σ²)"``.
        estimate: a real number, array or tensor, shape ``(*shape)``, finite.
        exact: the reference value, finite; ``estimate`` and ``exact`` broadcast together to
            the compared shape, which must hold at least one value.
        stderr: the estimate's standard error, finite and >= 0, broadcastable to that
            shape, or None.
        false_alarm: with ``stderr``: the probability in (0, 1) that a correct estimate fails;
            default: the chapter's per-check share of its budget (:mod:`companion.ledger`),
            or :data:`DEFAULT_FALSE_ALARM` outside a chapter. It is charged to the budget.
        rtol, atol: without ``stderr``: the tolerance atol + rtol |exact| (at least one),
            finite numbers >= 0.
        scale: a number > 0, the size below which an error is judged against ``scale``
            rather than against the coordinate's own |exact_i| (the resolution of coordinate
            i is z · stderr_i / max(|exact_i|, scale)). Name one when an exact value is 0 or
            small for a reason (e.g. the size of the gradient being compared).
        df: with ``stderr``: the degrees of freedom of the standard error's estimate; the
            limit is then Student's t quantile, not the normal one (for a standard error
            estimated from few samples, where the normal limit would fail more often than
            ``false_alarm``). Default None: the normal quantile (N large).
        verbose: print the line (True, the default, as in the book) or not (False).

    Returns:
        The :class:`CheckResult`, when the check passes.

    Raises:
        AssertionError: the check failed; the message is the printed line.
        ValueError, TypeError: malformed input (shapes, non-finite values, tolerances).
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    false_alarm = _rate(false_alarm)
    _scale(scale, torch.ones(1))  # refuse a bad scale before anything is computed
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
        z = (
            critical_z(false_alarm, est.numel())
            if df is None
            else _t_quantile(false_alarm, est.numel(), df)
        )
        ledger.spend(false_alarm, label)
        # 0/0 (an exact estimate with zero stderr) is zero standard errors away.
        distance = torch.where(gap == 0, torch.zeros_like(gap), gap / se)
        limit = torch.full_like(gap, z)
    else:
        if df is not None:
            raise ValueError(f"df applies to a statistical check (with stderr), got df={df}")
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
        false_alarm=None if se is None else false_alarm,
    )
    return _finish(_with_resolution(result, scale), "close" if se is not None else "exact", verbose)


def _t_quantile(false_alarm: float, num_comparisons: int, df) -> float:
    """Two-sided Student t quantile at false_alarm / num_comparisons, df degrees of freedom."""
    from scipy.stats import t  # scipy comes with scikit-learn, a dependency

    if is_boolean(df) or not isinstance(df, numbers.Real):
        raise TypeError(f"df must be a number >= 1, got {describe(df)}")
    try:
        number, shown = float(df), df
    except OverflowError:  # an integer too large for a float: 10**400
        number, shown = math.inf, describe(df)
    if not (math.isfinite(number) and number >= 1):
        raise ValueError(f"df must be a finite number >= 1, got {shown}")
    return float(t.isf(false_alarm / (2 * num_comparisons), number))


def _tolerance(name: str, value) -> float:
    """None (0.0) or a finite real number >= 0 (an infinite tolerance would pass anything)."""
    if value is None:
        return 0.0
    if is_boolean(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not number >= 0 or number == math.inf:
        shown = describe(value) if isinstance(value, numbers.Integral) else value  # 10**400
        raise ValueError(f"{name} must be a number >= 0 and finite, got {shown}")
    return number


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
    label: str,
    values,
    exact,
    *,
    false_alarm: float | None = None,
    scale=None,
    verbose: bool = True,
) -> CheckResult:
    """Check that the mean of independent per-sample ``values`` estimates ``exact``.

    Shorthand for ``check_close(label, m.mean, exact, stderr=m.stderr)`` with
    ``m = summarize(values)``.

    Args:
        label: what is being checked, a non-empty string.
        values: shape ``(N, *shape)``, N >= 2 independent finite samples along dimension 0
            (booleans count as 0 and 1: an indicator's mean is a probability).
        exact: broadcastable to ``(*shape)``.
        false_alarm, scale, verbose: as in :func:`check_close`.
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    false_alarm = _rate(false_alarm)
    estimate = summarize(values)
    return check_close(
        label,
        estimate.mean,
        exact,
        stderr=estimate.stderr,
        false_alarm=false_alarm,
        scale=scale,
        verbose=verbose,
    )


@dataclass(frozen=True)
class BoundCheckResult(CheckResult):
    """The outcome of :func:`check_at_least` or :func:`check_exceeds`; ``exact`` holds the
    bound, ``limit`` the one-sided z. For :func:`check_at_least` ``distance`` is the shortfall
    max(bound - estimate, 0) / stderr; for :func:`check_exceeds` it is the margin
    (estimate - bound) / stderr, which must reach the limit (``strict`` is then True)."""

    strict: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_bool("strict", self.strict)

    def sizes(self) -> torch.Tensor:
        """For :func:`check_exceeds`, the margin |estimate - bound| of each coordinate: the
        gap the check claims to resolve; otherwise as for :class:`CheckResult`."""
        if self.strict:
            return (self.estimate - self.exact).abs()
        return super().sizes()

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗ FAILED"
        many = "min " if self.distance.numel() > 1 else ""
        if self.strict:
            worst = (
                f"{many}{self.distance.min().item():.2f} se above "
                f"(needs {self.limit.max().item():.2f} se)"
            )
            relation = "above"
        else:
            many = "max " if many else ""
            worst = (
                f"{many}{self.distance.max().item():.2f} se short "
                f"(limit {self.limit.max().item():.2f} se)"
            )
            relation = "at least"
        return (
            f"{mark} {self.label}: {_fmt(self.estimate)} ± {_fmt(self.stderr)} | "
            f"{relation} {_fmt(self.exact)} | {worst} | {self.resolution_text()}"
        )


def _one_sided(label, estimate, bound, stderr, false_alarm, scale):
    """Checked (label, est, ref, se, z, α) of a one-sided check, α charged to the budget."""
    false_alarm = _rate(false_alarm)
    if false_alarm >= 0.5:
        raise ValueError(
            f"false_alarm must be in (0, 0.5) for a one-sided check, got {false_alarm}"
        )
    label = _check_label(label)
    _scale(scale, torch.ones(1))
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
    ledger.spend(false_alarm, label)
    return label, est, ref, se, z, false_alarm


def check_at_least(
    label: str,
    estimate,
    bound,
    *,
    stderr,
    false_alarm: float | None = None,
    scale=None,
    verbose: bool = True,
) -> CheckResult:
    """One-sided check that a random ``estimate`` of a mean is not below ``bound``.

    For inequalities such as E[L_5] >= E[L_1] between bounds: passes when
    estimate >= bound - z * stderr, z the one-sided normal quantile with
    P(Z > z) = false_alarm / (number of coordinates) (z = 3.09 for one coordinate at 1e-3).
    A true inequality fails with probability at most ``false_alarm``; a violation larger
    than z * stderr (the resolution) is caught at least half the time. A bound that holds
    trivially (an L_k that never tightens passes E[L_k] >= E[L_1]) passes too: pair it
    with :func:`check_exceeds` where the gap must be there. Prints one line.

    Args:
        label: what is being checked, a non-empty string, e.g. ``"E[L_5 - L_1] >= 0"``.
        estimate: shape ``(*shape)``, finite; bound: finite, broadcastable with it; stderr:
            the estimate's standard error, finite and >= 0, broadcastable to the shape of
            the two, which must hold at least one value.
        false_alarm: the one-sided false-alarm rate, in (0, 0.5); default as in
            :func:`check_close`.
        scale: a floor under each coordinate's size |bound_i|, as in :func:`check_close`.
        verbose: print the line (True) or not (False).

    Returns:
        The :class:`BoundCheckResult`, when the check passes; raises AssertionError otherwise.
    """
    verbose = check_bool("verbose", verbose)
    label, est, ref, se, z, false_alarm = _one_sided(
        label, estimate, bound, stderr, false_alarm, scale
    )
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
        false_alarm=false_alarm,
    )
    return _finish(_with_resolution(result, scale), "at_least", verbose)


def check_exceeds(
    label: str,
    estimate,
    bound,
    *,
    stderr,
    false_alarm: float | None = None,
    verbose: bool = True,
) -> CheckResult:
    """One-sided check that ``estimate`` is resolved *above* ``bound``: the inequality has power.

    Passes when estimate - bound >= z * stderr for every coordinate, z the one-sided quantile
    (as in :func:`check_at_least`). Where a derivation says a gap exists (L_50 > L_1, a
    variance reduced by a baseline), this shows it is there: a bound that never tightens,
    or a variance that did not drop, fails. If the gap is truly 0 the check fails with
    probability at least 1 - false_alarm, so it cannot pass by chance.

    Its resolution is z · stderr relative to the margin estimate - bound itself (worst
    coordinate), so the audit's 10% asks for a margin of at least 10 z standard errors: a
    correct inequality then fails by chance with probability about Φ(-9z), negligible. (A
    true gap of only a few standard errors would fail often; ``false_alarm`` bounds the
    chance of passing when there is no gap, not that.)

    Args:
        label: what is being checked, a non-empty string, e.g. ``"E[L_50 - L_1] > 0"``.
        estimate, bound, stderr, false_alarm, verbose: as in :func:`check_at_least`.

    Returns:
        The :class:`BoundCheckResult` (``strict``), when the check passes.
    """
    verbose = check_bool("verbose", verbose)
    label, est, ref, se, z, false_alarm = _one_sided(
        label, estimate, bound, stderr, false_alarm, None
    )
    margin = est - ref
    distance = torch.where(margin == 0, torch.zeros_like(margin), margin / se)
    limit = torch.full_like(margin, z)
    result = BoundCheckResult(
        label=label,
        estimate=est,
        exact=ref,
        stderr=se,
        distance=distance.clamp_min(0),
        limit=limit,
        passed=bool((distance >= limit).all()),
        false_alarm=false_alarm,
        strict=True,
    )
    return _finish(_with_resolution(result, None), "exceeds", verbose)


def check_agree(
    label: str,
    samples,
    reference,
    *,
    direction,
    false_alarm: float | None = None,
    verbose: bool = True,
) -> CheckResult:
    """Check that two estimators of a many-coordinate mean agree, with power, along a direction.

    Agreement coordinate by coordinate (Bonferroni over P coordinates) has no power when each
    coordinate's signal is below its noise: an estimator with the right noise and the wrong
    mean passes. Projecting both onto a unit direction u (for example the mean of an
    independent run of the reference estimator) concentrates the signal: with a_r = g_r · u
    and b_r = h_r · u, the check is check_close(mean a - mean b, 0, stderr
    sqrt(s_a²/R_a + s_b²/R_b)) with scale |mean b|, the size of the reference along u. A
    counterfeit with mean 0 is then |mean b| away, caught when the resolution is below 1
    (random signs also inflate its standard error). The limit is Student's t quantile with
    Welch's degrees of freedom: R draws are usually few.
    u must not depend on ``samples`` or ``reference``, or the projection is biased.

    Args:
        label: what is being checked, a non-empty string.
        samples: independent draws of the estimator under test, shape ``(R_a, P)``, R_a >= 2.
        reference: independent draws of the reference estimator, shape ``(R_b, P)``.
        direction: u, shape ``(P,)``, nonzero (normalized here).
        false_alarm, verbose: as in :func:`check_close`.

    Returns:
        The :class:`CheckResult` of the projected comparison.
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    false_alarm = _rate(false_alarm)
    a = check_samples("samples", samples)
    b = check_samples("reference", reference).to(a.device)
    u = _values("direction", direction).to(a.device)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or u.shape != (a.shape[1],):
        raise ValueError(
            "samples and reference must have shapes (R_a, P) and (R_b, P) and direction (P,), "
            f"got {tuple(a.shape)}, {tuple(b.shape)} and {tuple(u.shape)}"
        )
    size = u.abs().max() if u.numel() else torch.zeros(())
    if size == 0:
        raise ValueError("direction must be nonzero")
    u = u / size  # first to the largest coordinate: the norm of huge values would overflow
    u = u / u.norm()
    pa, pb = summarize(a.double() @ u), summarize(b.double() @ u)
    va, vb = pa.stderr**2, pb.stderr**2
    stderr = (va + vb).sqrt()
    # Welch-Satterthwaite: the standard error comes from R_a + R_b draws, few enough that
    # Student's t, not the normal, gives the limit its false-alarm rate. Written with the
    # shares of the variance, so that squares of huge or tiny variances neither overflow nor
    # underflow (0/0); with no variance at all (constant projections) the gap is exact and
    # the quantile does not matter: the normal one.
    total = va + vb
    df = None
    if total > 0:
        wa, wb = va / total, vb / total
        df = max(float(1 / (wa**2 / (a.shape[0] - 1) + wb**2 / (b.shape[0] - 1))), 1.0)
    scale = float(pb.mean.abs())
    if scale == 0:
        raise ValueError("the reference has mean exactly 0 along direction: choose another")
    return check_close(
        label,
        pa.mean - pb.mean,
        0.0,
        stderr=stderr,
        false_alarm=false_alarm,
        scale=scale,
        df=df,
        verbose=verbose,
    )


def expect_failure(what: str):
    """A check that must fail: show that a counterfeit is caught, or that an error is.

    ::

        with expect_failure("the counterfeit (random signs) is caught"):
            check_agree("counterfeit and pathwise agree", counterfeit, pathwise, direction=u)

    The block must fail a check of this module, by at least twice its limit (a near miss
    could pass under another seed); then the line prints and the failure is swallowed:
    ``✓ caught, as it must be: <what>``. If the block completes, the check had no power
    against the error it was shown, and ``expect_failure`` raises AssertionError; so it does
    when the failure is barely past the limit, and a bare ``assert`` (not a check) that
    fails inside is raised as it is. Checks inside are not charged to the chapter's budget,
    and their audit lines are marked as expected failures
    (:func:`companion.ledger.expected_failures`).

    Args:
        what: what must be caught, a non-empty string.
    """
    if not isinstance(what, str):
        raise TypeError(f"what must be a non-empty string, got {describe(what)}")
    if not what.strip():
        raise ValueError(f"what must be a non-empty string, got {what!r}")
    return _expect_failure(what)  # checked now, not when the block is entered


def _times_limit(result: CheckResult) -> float:
    """How far past its limit a failed check is, worst coordinate: max distance_i / limit_i.

    A coordinate at distance 0 counts 0, not 0/0 (a deterministic check's limit is 0 where
    atol = 0 and exact_i = 0): a NaN would hide a near miss in another coordinate.
    """
    d = result.distance
    return float(torch.where(d == 0, torch.zeros_like(d), d / result.limit).max())


@contextmanager
def _expect_failure(what: str):
    _EXPECTED.append([])
    try:
        with ledger.expected_failures():
            try:
                yield
            except AssertionError:
                failed = _EXPECTED[-1]
                if not failed:  # a bare assert, not a check: not what this block is for
                    raise
                # Caught with a margin: at least twice the limit, so that under another seed
                # the error would not slip through (a near miss is not a demonstration).
                weak = [
                    r for r in failed if not getattr(r, "strict", False) and _times_limit(r) < 2
                ]
                if weak:
                    raise AssertionError(
                        f"✗ FAILED {what}: caught only barely ({weak[0].label!r} at "
                        f"{_times_limit(weak[0]):.2f} times its "
                        "limit, less than 2): under another seed it could pass"
                    ) from None
                print(f"✓ caught, as it must be: {what}")
                return
    finally:
        _EXPECTED.pop()
    raise AssertionError(f"✗ FAILED {what}: the check inside passed, so it cannot tell")


def report(label: str, value, *, stderr=None, verbose: bool = True) -> torch.Tensor:
    """Print a measurement that is not a check: a number shown, not a claim tested.

    For demonstrations that are too noisy on purpose (a single small batch, an estimator at
    its worst) the book prints the number with this line instead of calling it a check::

        · single-sample REINFORCE on the toy: 0.0312 ± 0.1 (a measurement, not a check)

    The audit log records it as a measurement, so it is neither counted nor audited.

    Args:
        label: what was measured, a non-empty string.
        value: a finite number or tensor.
        stderr: its standard error, or None.
        verbose: print the line.

    Returns:
        ``value`` as a float64 tensor.
    """
    label = _check_label(label)
    verbose = check_bool("verbose", verbose)
    value = _values("value", value)
    _check_not_empty(value, "value")
    text = _fmt(value)
    if stderr is not None:
        se = _stderr(stderr)
        try:
            torch.broadcast_to(se, value.shape)
        except RuntimeError as err:
            raise ValueError(
                f"stderr must broadcast to the shape of value {tuple(value.shape)}, "
                f"got shape {tuple(se.shape)}"
            ) from err
        text += f" ± {_fmt(se)}"
    if verbose:
        print(f"· {label}: {text} (a measurement, not a check)")
    ledger.record({"label": label, "kind": "measurement"})
    return value
