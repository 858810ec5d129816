"""The student edition (make book-student) has every exercise and no solution.

Runs after both builds: `make test` builds the book and the student edition first.
A line of each solution (code, or prose without markup) is looked up in the text of the
rendered pages: it must be in the full edition (which shows the lookup works) and nowhere
in the student edition, nor in its notebooks (the pages' downloads, and the notebooks to hand
out, _build/student/notebooks), which have the implement-it exercises' stubs instead.
"""

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hygiene import ROOT, solution_lines, toc_files

FULL = ROOT / "_build" / "html"
STUDENT = ROOT / "_build" / "student" / "_build" / "html"
CHAPTERS = [entry for entry in toc_files() if (ROOT / f"{entry}.ipynb").exists()]
NOTEBOOKS = {entry: json.loads((ROOT / f"{entry}.ipynb").read_text()) for entry in CHAPTERS}


def lines_of(entry: str) -> list[str]:
    """Solution lines of one chapter that occur nowhere outside the solutions of any chapter."""
    others = tuple(nb for name, nb in NOTEBOOKS.items() if name != entry)
    return solution_lines(NOTEBOOKS[entry], others=others)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def page_text(path: Path) -> str:
    """The text of an HTML page, whitespace collapsed to single spaces."""
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return " ".join("".join(parser.parts).split())


@pytest.fixture(scope="module", autouse=True)
def builds():
    for path in (FULL, STUDENT):
        if not (path / "index.html").exists():
            pytest.skip(f"{path.relative_to(ROOT)} is missing: run make book and make book-student")


@pytest.mark.parametrize("entry", CHAPTERS)
def test_solutions_are_in_the_full_edition_only(entry):
    lines = lines_of(entry)
    assert lines, f"{entry}: no solution lines to look up"
    full, student = page_text(FULL / f"{entry}.html"), page_text(STUDENT / f"{entry}.html")
    missing = [line for line in lines if line not in full]
    assert not missing, (
        f"solution lines not found in the full edition (lookup broken?): {missing[:3]}"
    )
    leaked = [line for line in lines if line in student]
    assert not leaked, f"{entry}: solution text in the student edition: {leaked[:3]}"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_exercises_stay_in_the_student_edition(entry):
    full, student = (FULL / f"{entry}.html").read_text(), (STUDENT / f"{entry}.html").read_text()
    assert full.count('class="exercise') == student.count('class="exercise')
    assert 'class="solution' not in student


def test_no_solution_text_anywhere_in_the_student_site():
    lines = {line for entry in CHAPTERS for line in lines_of(entry)}
    for page in STUDENT.rglob("*.html"):
        text = page_text(page)
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{page.relative_to(STUDENT)}: {leaked[:2]}"


def notebook_text(path: Path) -> str:
    """The sources of a notebook's cells, whitespace collapsed to single spaces."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return " ".join(" ".join("".join(c["source"]) for c in cells).split())


@pytest.mark.parametrize("entry", CHAPTERS)
def test_the_student_notebooks_have_stubs_and_no_solution(entry):
    """Both the site's download (with outputs) and the notebook to hand out (without)."""
    lines = lines_of(entry)
    name = Path(entry).name
    download = STUDENT / "_sources" / f"{entry}.ipynb"
    handout = ROOT / "_build" / "student" / "notebooks" / f"{name}.ipynb"
    for path in (download, handout):
        assert path.exists(), f"{path.relative_to(ROOT)} is missing"
        text = notebook_text(path)
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{path.relative_to(ROOT)}: solution text {leaked[:2]}"
        assert text.count("raise NotImplementedError(") >= 2, f"{path.name}: no stubs"
    cells = json.loads(handout.read_text())["cells"]
    assert all(not c.get("outputs") for c in cells), f"{handout.name} has outputs"


def test_the_download_button_gives_the_student_notebook():
    page = (STUDENT / f"{CHAPTERS[0]}.html").read_text()
    assert f"_sources/{CHAPTERS[0]}.ipynb" in page
