"""Tests of companion.ledger: a chapter's false-alarm budget, and the audit log of its checks.

Every test runs outside a chapter and leaves none open (the fixture below closes any budget a
test opened), so the rest of the suite runs its checks at DEFAULT_FALSE_ALARM.
"""

import json
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
from companion.ledger import (
    CHAPTER_FALSE_ALARM,
    DEFAULT_FALSE_ALARM,
    LOG_VARIABLE,
    RESOLUTION_TARGET,
    Budget,
    current_budget,
    default_false_alarm,
    end_chapter,
    record,
    spend,
    start_chapter,
)


@pytest.fixture(autouse=True)
def no_chapter(monkeypatch):
    """No budget before the test, none after it, and no audit log unless the test names one."""
    monkeypatch.delenv(LOG_VARIABLE, raising=False)
    end_chapter()
    yield
    end_chapter()


def test_constants():
    assert DEFAULT_FALSE_ALARM == 1e-3
    assert CHAPTER_FALSE_ALARM == 1e-3
    assert RESOLUTION_TARGET == 0.1
    assert LOG_VARIABLE == "COMPANION_CHECK_LOG"


# ---------------------------------------------------------------- Budget arithmetic


def test_budget_per_check_and_spend():
    budget = Budget("ch", total=1e-3, max_checks=4)
    assert budget.per_check == 2.5e-4
    assert (budget.spent, budget.count) == (0.0, 0)
    for _ in range(4):
        budget.spend(budget.per_check, "c")
    assert budget.count == 4 and budget.spent == pytest.approx(1e-3, rel=1e-12)
    with pytest.raises(ValueError, match=r"check 'c' is check 5 of chapter ch.*max_checks=4"):
        budget.spend(1e-12, "c")
    assert budget.count == 4  # a refused check is not charged


def test_budget_refuses_to_overspend_its_total():
    budget = Budget("ch", total=0.01, max_checks=10)
    with pytest.raises(ValueError, match=r"false_alarm=0\.02 .* over its budget 0\.01"):
        budget.spend(0.02, "greedy")
    assert (budget.spent, budget.count) == (0.0, 0)
    budget.spend(0.006, "a")
    budget.spend(0.004, "b")  # exactly the total: allowed (1e-9 relative slack for rounding)
    with pytest.raises(ValueError, match="over its budget"):
        budget.spend(1e-6, "one more")
    assert budget.count == 2 and budget.spent == pytest.approx(0.01)


def test_max_checks_shares_sum_to_the_total_despite_rounding():
    budget = Budget("ch", total=1e-3, max_checks=7)  # 1e-3 / 7 is not exact in binary
    for i in range(7):
        budget.spend(budget.per_check, f"c{i}")
    assert budget.count == 7


# ---------------------------------------------------------------- chapters


def test_start_and_end_chapter():
    assert current_budget() is None
    assert default_false_alarm() == DEFAULT_FALSE_ALARM
    budget = start_chapter("01_monte_carlo", max_checks=40)
    assert current_budget() is budget
    assert (budget.chapter, budget.total, budget.max_checks) == ("01_monte_carlo", 1e-3, 40)
    assert default_false_alarm() == budget.per_check == 1e-3 / 40
    other = start_chapter("02", max_checks=5, false_alarm=0.01)  # replaces the first
    assert current_budget() is other and default_false_alarm() == 0.002
    assert end_chapter() is other
    assert current_budget() is None and end_chapter() is None
    assert default_false_alarm() == DEFAULT_FALSE_ALARM


def test_statistical_checks_run_at_the_per_check_rate_and_are_charged(capsys):
    budget = start_chapter("ch", max_checks=5, false_alarm=0.05)  # 0.01 per check
    result = check_close("close", 1.0, 1.0, stderr=0.1)
    assert result.false_alarm == 0.01
    assert float(result.limit) == pytest.approx(critical_z(0.01))
    assert check_mc("mc", [1.0, 2.0, 3.0], 2.0, verbose=False).false_alarm == 0.01
    result = check_at_least("at least", 1.0, 0.0, stderr=0.1, verbose=False)
    assert float(result.limit) == pytest.approx(critical_z(0.02))  # one-sided at 0.01
    check_exceeds("exceeds", 1.0, 0.0, stderr=0.1, verbose=False)
    check_agree("agree", [[1.0], [2.0]], [[1.0], [2.0]], direction=[1.0], verbose=False)
    assert budget.count == 5 and budget.spent == pytest.approx(0.05)
    capsys.readouterr()
    # the 6th statistical check raises before it prints anything
    with pytest.raises(ValueError, match="check 6 of chapter ch, which declared max_checks=5"):
        check_close("sixth", 1.0, 1.0, stderr=0.1)
    with pytest.raises(ValueError, match="max_checks=5"):
        check_exceeds("sixth", 1.0, 0.0, stderr=0.1)
    assert capsys.readouterr().out == ""
    assert budget.count == 5


def test_deterministic_checks_and_measurements_are_not_charged():
    from companion.checks import report

    budget = start_chapter("ch", max_checks=1)
    for _ in range(3):
        check_close("exact", 1.0, 1.0, rtol=1e-9, verbose=False)
        report("measured", 1.0, stderr=0.1, verbose=False)
    assert (budget.count, budget.spent) == (0, 0.0)
    with pytest.raises(AssertionError):  # a failing deterministic check is not charged either
        check_close("wrong", 2.0, 1.0, atol=0.1, verbose=False)
    assert budget.count == 0
    check_close("the one statistical check", 1.0, 1.0, stderr=0.1, verbose=False)
    assert budget.count == 1


def test_an_explicit_false_alarm_is_charged_and_may_not_overspend(capsys):
    budget = start_chapter("ch", max_checks=10, false_alarm=0.01)
    check_close("own rate", 1.0, 1.0, stderr=0.1, false_alarm=0.006, verbose=False)
    assert budget.spent == pytest.approx(0.006) and budget.count == 1
    with pytest.raises(ValueError, match=r"false_alarm=0\.005 would bring chapter ch"):
        check_close("too much", 1.0, 1.0, stderr=0.1, false_alarm=0.005)
    with pytest.raises(ValueError, match="over its budget"):
        check_at_least("too much", 1.0, 0.0, stderr=0.1, false_alarm=0.005)
    assert capsys.readouterr().out == ""
    assert budget.spent == pytest.approx(0.006) and budget.count == 1
    # four more at the default share 0.001 fit; the fifth would bring the total to 0.011
    for i in range(4):
        check_close(f"share {i}", 1.0, 1.0, stderr=0.1, verbose=False)
    with pytest.raises(ValueError, match="over its budget"):
        check_close("one too many", 1.0, 1.0, stderr=0.1, verbose=False)


def test_a_failing_check_is_still_charged():
    budget = start_chapter("ch", max_checks=3)
    with pytest.raises(AssertionError):
        check_close("wrong", 2.0, 1.0, stderr=0.01, verbose=False)
    assert budget.count == 1


def test_the_module_spend_charges_the_open_chapter_only():
    spend(0.5, "outside a chapter: not charged, nothing raised")
    budget = start_chapter("ch", max_checks=2, false_alarm=0.1)
    spend(0.05, "a")
    assert (budget.count, budget.spent) == (1, 0.05)
    with pytest.raises(ValueError, match="over its budget"):
        spend(0.06, "b")


# ---------------------------------------------------------------- the audit log


def test_record_appends_one_json_line_per_entry(monkeypatch, tmp_path):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    record({"label": "outside", "kind": "close", "resolution": math.inf, "x": [1, 2]})
    start_chapter("03_score_function", max_checks=2)
    record({"label": "inside", "kind": "measurement", "scale": math.nan})
    check_close("a check", 1.0, 1.0, stderr=0.1, verbose=False)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "chapter": None,
        "label": "outside",
        "kind": "close",
        "resolution": None,  # inf is not JSON: null
        "x": [1, 2],
    }
    assert lines[1] == {
        "chapter": "03_score_function",
        "label": "inside",
        "kind": "measurement",
        "scale": None,
    }
    assert lines[2]["chapter"] == "03_score_function" and lines[2]["label"] == "a check"
    assert len(lines) == 3


def test_record_writes_unicode_labels_as_text(monkeypatch, tmp_path):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    record({"label": "∇θ E[f] = E[f ∇ log p]"})
    assert "∇θ E[f] = E[f ∇ log p]" in log.read_text(encoding="utf-8")


def test_record_without_the_variable_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    record({"label": "x", "kind": "close"})
    start_chapter("ch", max_checks=1)
    check_close("a check", 1.0, 1.0, stderr=0.1, verbose=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bad input


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(chapter=None), TypeError, "chapter must be a non-empty string, got NoneType"),
        (dict(chapter=3), TypeError, "chapter must be a non-empty string, got int"),
        (dict(chapter=""), ValueError, "chapter must be a non-empty string"),
        (dict(chapter="  "), ValueError, "chapter must be a non-empty string"),
        (dict(max_checks=0), ValueError, "max_checks must be an integer >= 1, got 0"),
        (dict(max_checks=-1), ValueError, "max_checks must be an integer >= 1"),
        (dict(max_checks=2.5), TypeError, "max_checks must be an integer >= 1, got float"),
        (dict(max_checks=True), TypeError, "max_checks must be an integer >= 1, got bool"),
        (dict(max_checks=NAN), TypeError, "max_checks must be an integer"),
        (dict(max_checks="3"), TypeError, "max_checks must be an integer"),
        (dict(false_alarm=0.0), ValueError, r"false_alarm must be in \(0, 1\)"),
        (dict(false_alarm=1.0), ValueError, r"false_alarm must be in \(0, 1\)"),
        (dict(false_alarm=NAN), ValueError, "false_alarm must be in"),
        (dict(false_alarm=INF), ValueError, "false_alarm must be in"),
        (dict(false_alarm=True), TypeError, "false_alarm must be a number"),
        (dict(false_alarm="1e-3"), TypeError, "false_alarm must be a number"),
        (dict(false_alarm=None), TypeError, "false_alarm must be a number"),
    ],
)
def test_start_chapter_refuses_malformed_input(kwargs, error, match):
    args = dict(chapter="ch", max_checks=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        start_chapter(args.pop("chapter"), **args)
    assert current_budget() is None  # nothing opened


def test_max_checks_must_be_a_keyword():
    with pytest.raises(TypeError):
        start_chapter("ch", 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(chapter=None), TypeError, "chapter must be a non-empty string"),
        (dict(chapter=""), ValueError, "chapter must be a non-empty string"),
        (dict(total=0.0), ValueError, "total must be in"),
        (dict(total=NAN), ValueError, "total must be in"),
        (dict(total="x"), TypeError, "total must be a number"),
        (dict(max_checks=0), ValueError, "max_checks must be an integer >= 1"),
        (dict(max_checks=1.0), TypeError, "max_checks must be an integer"),
        (dict(spent=-0.1), ValueError, r"spent must be in \[0, total"),
        (dict(spent=0.5), ValueError, "spent must be in"),
        (dict(spent=NAN), ValueError, "spent must be in"),
        (dict(spent=None), TypeError, "spent must be a number"),
        (dict(spent=True), TypeError, "spent must be a number"),
        (dict(count=-1), ValueError, "count must be an integer >= 0"),
        (dict(count=11), ValueError, "count must be at most max_checks=10"),
        (dict(count=1.5), TypeError, "count must be an integer"),
    ],
)
def test_budget_refuses_malformed_fields(kwargs, error, match):
    args = dict(chapter="ch", total=0.01, max_checks=10)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Budget(**args)


def test_budget_accepts_a_consistent_state():
    budget = Budget("ch", total=0.01, max_checks=10, spent=0.004, count=4)
    budget.spend(0.006, "last")
    assert budget.count == 5


@pytest.mark.parametrize(
    "false_alarm, label, error, match",
    [
        (0.0, "c", ValueError, "false_alarm must be in"),
        (-0.001, "c", ValueError, "false_alarm must be in"),
        (NAN, "c", ValueError, "false_alarm must be in"),
        (INF, "c", ValueError, "false_alarm must be in"),
        (None, "c", TypeError, "false_alarm must be a number"),
        (True, "c", TypeError, "false_alarm must be a number"),
        (torch.tensor(1e-3), "c", TypeError, "false_alarm must be a number"),
        (1e-3, None, TypeError, "label must be a non-empty string"),
        (1e-3, 3, TypeError, "label must be a non-empty string"),
        (1e-3, "", ValueError, "label must be a non-empty string"),
    ],
)
def test_spend_refuses_malformed_input_in_and_outside_a_chapter(false_alarm, label, error, match):
    with pytest.raises(error, match=match):
        spend(false_alarm, label)
    budget = start_chapter("ch", max_checks=3)
    with pytest.raises(error, match=match):
        spend(false_alarm, label)
    with pytest.raises(error, match=match):
        budget.spend(false_alarm, label)
    assert (budget.count, budget.spent) == (0, 0.0)  # a refused charge changes nothing


@pytest.mark.parametrize(
    "entry, error, match",
    [
        (None, TypeError, "entry must be a dict, got NoneType"),
        ([("label", "x")], TypeError, "entry must be a dict, got list"),
        ("label", TypeError, "entry must be a dict, got str"),
        ({1: "x"}, TypeError, "entry must have string keys"),
        ({"value": torch.tensor(1.0)}, TypeError, "entry must hold JSON values only"),
        ({"value": object()}, TypeError, "entry must hold JSON values only"),
        ({"values": [math.nan]}, ValueError, "entry must hold JSON values only"),
    ],
)
def test_record_refuses_malformed_entries_with_or_without_a_log(
    monkeypatch, tmp_path, entry, error, match
):
    with pytest.raises(error, match=match):
        record(entry)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    with pytest.raises(error, match=match):
        record(entry)
    assert not log.exists()  # no half-written line


def test_expected_failures_marks_records_and_charges_nothing(tmp_path, monkeypatch):
    from companion.ledger import expected_failures

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COMPANION_CHECK_LOG", str(log))
    budget = start_chapter("ch", max_checks=2)
    with expected_failures():
        spend(1e-4, "inside")
        record({"label": "inside"})
    spend(1e-4, "outside")
    record({"label": "outside"})
    assert budget.count == 1 and budget.spent == pytest.approx(1e-4)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line.get("expected_failure", False) for line in lines] == [True, False]
