"""The ledger of a chapter's checks: its false-alarm budget, and the audit log.

A chapter runs dozens of statistical checks. If each fails a correct formula with probability
α, the chapter fails with probability up to K α (Bonferroni). Deterministic checks (a
tolerance, not a standard error) cannot fail by chance and are not counted. So a chapter
declares its budget once, in its seeding cell::

    start_chapter("01_monte_carlo", max_checks=40)

and every check that does not name its own rate then runs at α = 10⁻³ / 40: a correct chapter
fails under a fresh seed with probability at most :data:`CHAPTER_FALSE_ALARM` = 10⁻³. A check
that names its own rate spends that rate instead; a check that would overspend the budget
raises ``ValueError`` before it runs, so the promise cannot be broken silently. Outside a
chapter (tests, a reader's own code) there is no budget and the default rate is
:data:`DEFAULT_FALSE_ALARM`.

When the environment variable :data:`LOG_VARIABLE` names a file, every check and measurement
appends one JSON line to it (label, kind, whether it passed, its resolution relative to its
scale, its false-alarm rate). ``make test`` audits these lines (``scripts/audit_checks.py``):
a check whose resolution is worse than :data:`RESOLUTION_TARGET` of its scale fails the audit.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from contextlib import contextmanager
from dataclasses import dataclass

from ._validation import check_positive_int, check_probability, describe, is_boolean

__all__ = [
    "CHAPTER_FALSE_ALARM",
    "LOG_VARIABLE",
    "RESOLUTION_TARGET",
    "Budget",
    "start_chapter",
    "end_chapter",
    "current_budget",
    "default_false_alarm",
    "spend",
    "record",
    "expected_failures",
]

DEFAULT_FALSE_ALARM = 1e-3
"""Per-check probability that a true formula fails its check, outside a chapter."""

CHAPTER_FALSE_ALARM = 1e-3
"""The probability that a correct chapter fails any of its checks under a fresh seed."""

RESOLUTION_TARGET = 0.1
"""The audit's limit: a check must catch an error of 10% of its scale."""

LOG_VARIABLE = "COMPANION_CHECK_LOG"
"""The environment variable naming the file that checks append their JSON lines to."""


@dataclass
class Budget:
    """A chapter's false-alarm budget: ``total`` spread over at most ``max_checks`` checks.

    Attributes:
        chapter: the chapter's name, written into every log line.
        total: the chapter's false-alarm probability, in (0, 1).
        max_checks: the most checks the chapter may run.
        spent: the false-alarm rates spent so far (their sum bounds the chapter's).
        count: the checks run so far.
    """

    chapter: str
    total: float
    max_checks: int
    spent: float = 0.0
    count: int = 0

    def __post_init__(self):
        _check_name("chapter", self.chapter)
        self.total = check_probability("total", self.total)
        self.max_checks = check_positive_int("max_checks", self.max_checks)
        if is_boolean(self.spent) or not isinstance(self.spent, numbers.Real):
            raise TypeError(f"spent must be a number >= 0, got {describe(self.spent)}")
        if not 0 <= self.spent <= self.total * (1 + 1e-9):
            raise ValueError(f"spent must be in [0, total={self.total}], got {self.spent}")
        self.spent = float(self.spent)
        self.count = check_positive_int("count", self.count, minimum=0)
        if self.count > self.max_checks:
            raise ValueError(
                f"count must be at most max_checks={self.max_checks}, got {self.count}"
            )

    @property
    def per_check(self) -> float:
        """The default rate of one check, total / max_checks."""
        return self.total / self.max_checks

    def spend(self, false_alarm: float, label: str) -> None:
        """Account for one check at ``false_alarm``; raise ValueError when over budget."""
        false_alarm = check_probability("false_alarm", false_alarm)
        _check_name("label", label)
        if self.count + 1 > self.max_checks:
            raise ValueError(
                f"check {label!r} is check {self.count + 1} of chapter {self.chapter}, which "
                f"declared max_checks={self.max_checks} in start_chapter: raise max_checks"
            )
        # A relative slack of 1e-9 absorbs the rounding of total / max_checks sums.
        if self.spent + false_alarm > self.total * (1 + 1e-9):
            raise ValueError(
                f"check {label!r} at false_alarm={false_alarm:.3g} would bring chapter "
                f"{self.chapter}'s false alarms to {self.spent + false_alarm:.3g}, over its "
                f"budget {self.total:.3g}"
            )
        self.spent += false_alarm
        self.count += 1


_STATE: dict = {"budget": None, "expected_failures": False}


def start_chapter(
    chapter: str, *, max_checks: int, false_alarm: float = CHAPTER_FALSE_ALARM
) -> Budget:
    """Open a chapter's budget: its checks together fail a correct chapter w.p. <= false_alarm.

    Args:
        chapter: the chapter's name (its file name without extension), for the audit log.
        max_checks: the most statistical checks the chapter runs, >= 1; each one's default
            false-alarm rate becomes false_alarm / max_checks.
        false_alarm: the chapter's total, in (0, 1).

    Returns:
        The new :class:`Budget` (also in force for every later check, until the next call).

    Example:
        >>> budget = start_chapter("example", max_checks=50)
        >>> budget.per_check
        2e-05
        >>> end_chapter() is budget  # back to no budget
        True
    """
    _check_name("chapter", chapter)
    max_checks = check_positive_int("max_checks", max_checks)
    false_alarm = check_probability("false_alarm", false_alarm)
    budget = Budget(chapter=chapter, total=false_alarm, max_checks=max_checks)
    _STATE["budget"] = budget
    return budget


def end_chapter() -> Budget | None:
    """Close the chapter's budget (checks then run at :data:`DEFAULT_FALSE_ALARM`); return it."""
    budget, _STATE["budget"] = _STATE["budget"], None
    return budget


def current_budget() -> Budget | None:
    """The budget of the chapter in progress, or None outside a chapter."""
    return _STATE["budget"]


def default_false_alarm() -> float:
    """The rate of a check that names none: the chapter's per-check share, or the default."""
    budget = _STATE["budget"]
    return DEFAULT_FALSE_ALARM if budget is None else budget.per_check


@contextmanager
def expected_failures():
    """Within this block checks are demonstrations that must fail (a counterfeit caught).

    They are not charged to the chapter's budget (their failing is the point, not a false
    alarm), and their log lines carry ``"expected_failure": true``, which the audit requires
    to have failed. :func:`companion.checks.expect_failure` is the way to use it.
    """
    before = _STATE["expected_failures"]
    _STATE["expected_failures"] = True
    try:
        yield
    finally:
        _STATE["expected_failures"] = before


def spend(false_alarm: float, label: str) -> None:
    """Charge one check to the chapter's budget, if a chapter is open.

    Args:
        false_alarm: the check's false-alarm rate, in (0, 1).
        label: the check's label, a non-empty string (named in the error when over budget).

    Raises:
        ValueError: the check would exceed the chapter's ``max_checks`` or its total.
    """
    false_alarm = check_probability("false_alarm", false_alarm)
    _check_name("label", label)
    if _STATE["budget"] is not None and not _STATE["expected_failures"]:
        _STATE["budget"].spend(false_alarm, label)


def record(entry: dict) -> None:
    """Append ``entry`` (plus the chapter's name) as one JSON line to the audit log, if any.

    Args:
        entry: a dict with string keys and JSON values (a non-finite float is written as
            null); checked whether or not a log is named, so a bad entry fails in tests too.
    """
    if not isinstance(entry, dict):
        raise TypeError(f"entry must be a dict, got {describe(entry)}")
    if not all(isinstance(key, str) for key in entry):
        raise TypeError(f"entry must have string keys, got {sorted(map(repr, entry))}")
    budget = _STATE["budget"]
    line = {"chapter": None if budget is None else budget.chapter, **entry}
    if _STATE["expected_failures"]:
        line["expected_failure"] = True
    line = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in line.items()
    }
    try:
        text = json.dumps(line, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise type(err)(f"entry must hold JSON values only: {err}") from err
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


def _check_name(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a non-empty string, got {describe(value)}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value
