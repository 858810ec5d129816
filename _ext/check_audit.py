"""Sphinx extension: the ``check-audit`` directive, the table of the book's checks.

``make test`` logs every check each chapter runs and audits them (``scripts/audit_checks.py``),
writing ``_build/checks/summary.json``. This directive renders that summary as a table: per
chapter the number of checks, how many are statistical and how many numbers are only
measurements, the median and worst resolution (the smallest error a check catches, relative to
its scale) and the chapter's total false-alarm probability. A build that ran no audit shows a
sentence saying so instead of a stale table.
"""

import json
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

SUMMARY = Path("_build") / "checks" / "summary.json"
COLUMNS = (
    "chapter",
    "checks",
    "statistical",
    "measurements",
    "median resolution",
    "worst resolution",
    "false-alarm probability",
)


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.2g}%"


def _cells(row: dict) -> list[str]:
    return [
        row["chapter"],
        str(row["checks"]),
        str(row["statistical"]),
        str(row["measurements"]),
        _percent(row["median_resolution"]),
        _percent(row["worst_resolution"]),
        f"{row['false_alarm']:.2g}",
    ]


def _table(rows: list[dict]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(COLUMNS))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in COLUMNS)
    head, body = nodes.thead(), nodes.tbody()
    for cells, part in [(list(COLUMNS), head)] + [(_cells(r), body) for r in rows]:
        line = nodes.row()
        for text in cells:
            line += nodes.entry("", nodes.paragraph(text=text))
        part += line
    group += head
    group += body
    return table


class CheckAudit(SphinxDirective):
    """Render ``_build/checks/summary.json`` (relative to the book's root) as a table."""

    def run(self):
        path = Path(self.env.srcdir) / SUMMARY
        if not path.exists():
            text = (
                "No audit of the checks has been run for this build: make test writes it "
                "(scripts/audit_checks.py)."
            )
            return [nodes.paragraph(text=text)]
        self.env.note_dependency(str(path))
        return [_table(json.loads(path.read_text()))]


def setup(app):
    app.add_directive("check-audit", CheckAudit)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
