"""Audit every check the book ran: each must catch an error of 10% of its scale.

``make bench`` executes each chapter with ``COMPANION_CHECK_LOG`` naming
``_build/checks/<chapter>.jsonl``, so every check appends one JSON line (companion.ledger).
This script reads those files and fails when

- a check's resolution (the smallest error it catches, relative to its scale) is worse than
  ``RESOLUTION_TARGET`` (10%), or it has no scale (its exact value is 0 and it named none);
- a chapter's statistical checks spend more than ``CHAPTER_FALSE_ALARM`` (10⁻³) in total
  (the Bonferroni bound on the chance that a correct chapter fails under a fresh seed);
- a chapter ran a statistical check outside its budget (no ``start_chapter``), or logged
  nothing at all.

Measurements (``companion.checks.report``) are listed but not audited; checks run inside
``companion.checks.expect_failure`` (a counterfeit shown to be caught) must have failed, and
are neither audited for resolution nor charged to the budget. It prints a table per
chapter and writes ``summary.json`` beside the logs, which the reproducibility appendix shows.

Usage:
    python scripts/audit_checks.py [LOG_DIR]      (default _build/checks)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from companion.ledger import CHAPTER_FALSE_ALARM, RESOLUTION_TARGET

ROOT = Path(__file__).resolve().parents[1]


def read_log(path: Path) -> list[dict]:
    """The JSON lines of one chapter's log."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def audit_chapter(chapter: str, entries: list[dict]) -> tuple[dict, list[str]]:
    """The chapter's summary row and its problems."""
    caught = [e for e in entries if e.get("expected_failure")]
    entries = [e for e in entries if not e.get("expected_failure")]
    checks = [e for e in entries if e["kind"] != "measurement"]
    statistical = [e for e in checks if e.get("false_alarm") is not None]
    resolutions = [e["resolution"] for e in checks if e.get("resolution") is not None]
    problems = [
        f"{chapter}: {e['label']!r} was shown as an error that must be caught, but it passed"
        for e in caught
        if e.get("passed")
    ]
    if not checks:
        problems.append(f"{chapter}: no check was logged")
    for e in checks:
        if e.get("resolution") is None:
            problems.append(
                f"{chapter}: {e['label']!r} has no scale (its exact value is 0): "
                "name one with scale="
            )
        elif e["resolution"] > RESOLUTION_TARGET:
            problems.append(
                f"{chapter}: {e['label']!r} catches only errors of "
                f"{100 * e['resolution']:.3g}% of its scale (limit "
                f"{100 * RESOLUTION_TARGET:.0f}%): use more samples, or report() it "
                "as a measurement"
            )
        if not e.get("passed", True):
            problems.append(f"{chapter}: {e['label']!r} failed")
    spent = sum(e["false_alarm"] for e in statistical)
    if spent > CHAPTER_FALSE_ALARM * (1 + 1e-9):
        problems.append(
            f"{chapter}: its checks spend a false-alarm probability of {spent:.3g}, "
            f"over {CHAPTER_FALSE_ALARM:g}"
        )
    outside = [e for e in statistical if e.get("chapter") is None]
    if outside:
        problems.append(
            f"{chapter}: {len(outside)} statistical checks ran before "
            "start_chapter opened its budget"
        )
    row = {
        "chapter": chapter,
        "checks": len(checks),
        "statistical": len(statistical),
        "measurements": len(entries) - len(checks),
        "caught": len(caught),
        "median_resolution": statistics.median(resolutions) if resolutions else None,
        "worst_resolution": max(resolutions) if resolutions else None,
        "false_alarm": spent,
    }
    return row, problems


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2g}%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log_dir", nargs="?", type=Path, default=ROOT / "_build" / "checks")
    args = parser.parse_args(argv)
    logs = sorted(args.log_dir.glob("*.jsonl"))
    if not logs:
        print(f"no check logs in {args.log_dir}: run make bench first", file=sys.stderr)
        return 1
    rows, problems = [], []
    for path in logs:
        row, found = audit_chapter(path.stem, read_log(path))
        rows.append(row)
        problems += found
    print(
        f"{'chapter':<26}{'checks':>7}{'stat.':>6}{'meas.':>6}{'median res.':>12}"
        f"{'worst res.':>11}{'false alarm':>12}"
    )
    for r in rows:
        print(
            f"{r['chapter']:<26}{r['checks']:>7}{r['statistical']:>6}{r['measurements']:>6}"
            f"{_percent(r['median_resolution']):>12}{_percent(r['worst_resolution']):>11}"
            f"{r['false_alarm']:>12.2g}"
        )
    (args.log_dir / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    for problem in problems:
        print("AUDIT:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
