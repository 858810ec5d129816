"""Tests of scripts/audit_checks.py: each rule of the audit, shown failing on a log that breaks
it, and a clean log passing."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("audit_checks", ROOT / "scripts" / "audit_checks.py")
audit_checks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(audit_checks)


def _entry(label, **changes):
    entry = {
        "chapter": "ch",
        "label": label,
        "kind": "close",
        "passed": True,
        "resolution": 0.05,
        "scale": 1.0,
        "absolute_resolution": 0.05,
        "false_alarm": 1e-4,
        "coordinates": 1,
    }
    entry.update(changes)
    return entry


def _audit(tmp_path, entries, capsys):
    (tmp_path / "ch.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    code = audit_checks.main([str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_clean_log_passes_and_writes_the_summary(tmp_path, capsys):
    entries = [
        _entry("a"),
        _entry("b", resolution=0.01),
        _entry("exact", kind="exact", false_alarm=None),
        {"chapter": "ch", "label": "shown", "kind": "measurement"},
        _entry("counterfeit", passed=False, resolution=0.5, expected_failure=True),
    ]
    code, out, err = _audit(tmp_path, entries, capsys)
    assert code == 0, out + err
    (row,) = json.loads((tmp_path / "summary.json").read_text())
    assert row == {
        "chapter": "ch",
        "checks": 3,
        "statistical": 2,
        "measurements": 1,
        "caught": 1,
        "median_resolution": 0.05,
        "worst_resolution": 0.05,
        "false_alarm": pytest.approx(2e-4),
    }


@pytest.mark.parametrize(
    "entry, message",
    [
        (_entry("weak", resolution=0.11), "catches only errors of 11% of its scale"),
        (_entry("zero", resolution=None, scale=None), "has no scale"),
        (_entry("failed", passed=False), "'failed' failed"),
        (_entry("greedy", false_alarm=2e-3), "over 0.001"),
        (_entry("early", chapter=None), "ran before start_chapter"),
        (
            _entry("counterfeit", passed=True, expected_failure=True),
            "must be caught, but it passed",
        ),
    ],
)
def test_each_rule_fails_the_audit(tmp_path, entry, message, capsys):
    code, out, _ = _audit(tmp_path, [_entry("fine"), entry], capsys)
    assert code == 1
    assert message in out


def test_no_logs_is_an_error(tmp_path, capsys):
    assert audit_checks.main([str(tmp_path)]) == 1
    assert "no check logs" in capsys.readouterr().err
