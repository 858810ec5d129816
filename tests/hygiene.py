"""Notebook hygiene rules of the book, as functions that return a list of problems.

tests/test_notebooks.py applies them to the repository and shows, on notebooks it breaks
on purpose, that each rule catches what it is meant to catch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

BOOTSTRAP_TEMPLATE = """\
# Install the companion package when it is missing or is not the version this chapter
# needs (Colab, a fresh environment), from the branch the book is published from.
import importlib, importlib.metadata, subprocess, sys
NEEDS = "{version}"
try:
    found = importlib.metadata.version("companion")
except importlib.metadata.PackageNotFoundError:
    found = None
if found != NEEDS:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--upgrade",
                    "git+{url}@{branch}"], check=True)
    importlib.invalidate_caches()
    found = importlib.metadata.version("companion")
    if found != NEEDS:
        raise RuntimeError(f"this chapter needs companion {{NEEDS}}; {branch} has {{found}}")"""
"""The first code cell of every notebook: the repository and branch from _config.yml, the
version from companion/__init__.py. The branch is the one the chapter itself is opened from
(Colab's button opens it there), so chapter and package always come from the same commit."""

EXERCISE_LABEL = re.compile(r"```\{exercise(?:-start)?\}[^\n]*\n:label: (\S+)")
SOLUTION_OF = re.compile(r"```\{solution(?:-start)?\} (\S+)")
SEED_CALL = re.compile(r"\bseed_everything\(\s*\d+\s*\)")
BUDGET_CALL = re.compile(r"\bstart_chapter\(\s*[\"'][\w-]+[\"']\s*,\s*max_checks=\s*\d+")
INSTALL_URL = re.compile(r"git\+(\S+?)@([^\"\s]+)\"")
NEEDS_VERSION = re.compile(r'^NEEDS = "([^"]+)"', re.MULTILINE)
VERSION = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)


def companion_version(root: Path = ROOT) -> str:
    """The package version, read from companion/__init__.py without importing it."""
    return VERSION.search((root / "companion" / "__init__.py").read_text()).group(1)


def load_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def bootstrap_source(config: dict) -> str:
    """The bootstrap cell's source for the repository named in ``config``."""
    repo = config["repository"]
    return BOOTSTRAP_TEMPLATE.format(
        url=repo["url"], branch=repo["branch"], version=companion_version()
    )


def toc_files(root: Path = ROOT) -> list[str]:
    """Every ``file:`` entry of _toc.yml (the root included), without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return found


def toc_problems(root: Path = ROOT) -> list[str]:
    """Notebooks in book/ missing from the toc, and toc entries with no file."""
    problems = []
    entries = toc_files(root)
    for entry in entries:
        if not any((root / f"{entry}{suffix}").exists() for suffix in (".ipynb", ".md")):
            problems.append(f"_toc.yml lists {entry}, which has no .ipynb or .md file")
    listed = {f"{entry}.ipynb" for entry in entries}
    for path in sorted((root / "book").rglob("*.ipynb")):
        rel = path.relative_to(root).as_posix()
        if ".ipynb_checkpoints" not in rel and rel not in listed:
            problems.append(f"{rel} is not listed in _toc.yml")
    return problems


def code_cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    text = cell["source"]
    return "".join(text) if isinstance(text, list) else text


def notebook_problems(path: Path, config: dict) -> list[str]:
    """Everything wrong with one notebook, as readable lines (empty when it is clean)."""
    name = path.name
    try:
        nb = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return [f"{name}: not valid JSON ({err})"]
    problems = []
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"{name}: kernelspec is {kernel!r}, expected 'python3'")
    missing_ids = sum(1 for cell in nb["cells"] if not cell.get("id"))
    if missing_ids:
        problems.append(f"{name}: {missing_ids} cell(s) without an id (nbformat 4.5)")
    cells = code_cells(nb)
    for index, cell in enumerate(cells):
        if cell.get("outputs"):
            problems.append(f"{name}: code cell {index} has stored outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"{name}: code cell {index} has an execution count")
    if not cells:
        return problems + [f"{name}: has no code cells"]
    first = source(cells[0])
    installs = INSTALL_URL.findall(first)
    needs = NEEDS_VERSION.findall(first)
    expected_url, branch = config["repository"]["url"], config["repository"]["branch"]
    if installs and installs[0][0] != expected_url:
        problems.append(
            f"{name}: bootstrap installs from {installs[0][0]}, but _config.yml says {expected_url}"
        )
    elif installs and installs[0][1] != branch:
        problems.append(
            f"{name}: bootstrap installs from branch {installs[0][1]}, but _config.yml "
            f"publishes {branch}"
        )
    elif needs and needs[0] != companion_version():
        problems.append(
            f"{name}: bootstrap needs companion {needs[0]}, but the package is "
            f"{companion_version()}"
        )
    elif first != bootstrap_source(config):
        problems.append(
            f"{name}: the first code cell is not the bootstrap cell of tests/hygiene.py"
        )
    if "hide-cell" not in cells[0].get("metadata", {}).get("tags", []):
        problems.append(f"{name}: the bootstrap cell is not tagged hide-cell")
    before = "\n".join(
        source(c)
        for c in nb["cells"][: nb["cells"].index(cells[0])]
        if c["cell_type"] == "markdown"
    )
    if "## Overview" not in before or "prerequisites" not in before.lower():
        problems.append(
            f"{name}: no Overview with learning objectives and prerequisites before the code"
        )
    headings = {
        line.strip()
        for c in nb["cells"]
        if c["cell_type"] == "markdown"
        for line in source(c).splitlines()
    }
    for heading in ("## Summary", "## Exercises"):
        if heading not in headings:
            problems.append(f"{name}: no {heading[3:]} section")
    markdown = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for label in sorted(set(EXERCISE_LABEL.findall(markdown)) - set(SOLUTION_OF.findall(markdown))):
        problems.append(f"{name}: exercise {label} has no solution")
    if not any(SEED_CALL.search(source(cell)) for cell in cells[1:3]):
        problems.append(
            f"{name}: neither of the two cells after the bootstrap calls seed_everything(<int>)"
        )
    if not any(BUDGET_CALL.search(source(cell)) for cell in cells[1:3]):
        problems.append(
            f"{name}: neither of the two cells after the bootstrap opens the chapter's "
            'false-alarm budget with start_chapter("<chapter>", max_checks=<int>)'
        )
    return problems


def _split_solutions(nb: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """(cell type, normalized line) pairs inside solutions, and the lines outside them.

    A solution runs from a cell containing ``{solution-start}`` (or a ``{solution}``
    directive) to the cell containing ``{solution-end}``; in a cell tagged
    ``reference-solution`` only the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``
    are solution (the rest is the student's stub).
    """
    inside_lines, outside_lines, inside = [], [], False
    for cell in nb["cells"]:
        text = source(cell)
        inside = inside or "{solution-start}" in text or "{solution}" in text
        # An implement-it exercise's reference solution: only its marked body is solution;
        # the signature and docstring stay in the student edition (as the stub).
        marked = "reference-solution" in cell.get("metadata", {}).get("tags", [])
        in_body = False
        for line in text.splitlines():
            line = " ".join(line.split())
            if marked:
                if line == "# BEGIN SOLUTION":
                    in_body = True
                elif line == "# END SOLUTION":
                    in_body = False
                elif in_body:
                    inside_lines.append((cell["cell_type"], line))
                else:
                    outside_lines.append(line)
            elif inside:
                inside_lines.append((cell["cell_type"], line))
            else:
                outside_lines.append(line)
        if "{solution-end}" in text or ("{solution}" in text and "{solution-start}" not in text):
            inside = False
    return inside_lines, outside_lines


def solution_lines(nb: dict, *, others: tuple[dict, ...] = (), min_length: int = 25) -> list[str]:
    """Distinctive lines of every solution of ``nb``, to look up in rendered pages.

    Code lines, and prose lines without markup (list markers stripped, straight quotes,
    which the rendered page turns into typographic ones, skipped). Lines that also occur
    outside the solutions of ``nb`` or of the ``others`` notebooks, even as part of a longer
    line, are left out. Used to show that the student edition contains no solution text
    while the full edition does.
    """
    inside, outside = _split_solutions(nb)
    for other in others:
        outside += _split_solutions(other)[1]
    # Whitespace collapsed, as in the rendered page: a line the chapter breaks differently
    # elsewhere still counts as occurring outside.
    outside_text = " ".join("\n".join(outside).split())
    found = []
    for kind, line in inside:
        if kind == "markdown":
            line = re.sub(r"^(\d+\.|-)\s+", "", line)
            if any(mark in line for mark in "$`{}*[]|:\\'\""):
                continue
        if len(line) >= min_length and line not in outside_text:
            found.append(line)
    return found
