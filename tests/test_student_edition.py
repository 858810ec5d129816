"""The student notebooks (scripts/student_edition.py): no solution, empty stubs that run.

The transformation is tested on small notebooks made here (each kind of solution block, the
stub, the checker cell's output, the markers' errors), and on the book's chapters: every
chapter has at least two implement-it exercises laid out as the transformation expects, and
in its student notebook no line of a reference solution's body is left, while each stub,
executed with the chapter's imports, makes its checker say "not attempted" without raising.
"""

import contextlib
import io
import json
import sys

import pytest

from hygiene import ROOT, toc_files

sys.path.insert(0, str(ROOT / "scripts"))
import student_edition
from student_edition import stub_source, student_notebook

CHAPTERS = [e for e in toc_files() if (ROOT / f"{e}.ipynb").exists()]


def md(text):
    return {"cell_type": "markdown", "id": "m", "metadata": {}, "source": text}


def code(text, tags=(), outputs=()):
    return {
        "cell_type": "code",
        "id": "c",
        "metadata": {"tags": list(tags)},
        "source": text,
        "outputs": list(outputs),
        "execution_count": 1 if outputs else None,
    }


REFERENCE = '''def mean_of(x):
    """The mean of x, shape (N,) -> ()."""
    # BEGIN SOLUTION
    total = x.sum()
    return total / len(x)
    # END SOLUTION'''
OUTPUT = {"output_type": "stream", "name": "stdout", "text": "✓ passed"}


def notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_stub_keeps_signature_and_docstring_and_drops_the_body():
    stub = stub_source(REFERENCE)
    assert stub.startswith('def mean_of(x):\n    """The mean of x, shape (N,) -> ()."""\n')
    assert "total" not in stub and "len(x)" not in stub
    assert stub.rstrip().endswith(
        f'    raise NotImplementedError("{student_edition.STUB_MESSAGE}")'
    )
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError):
        namespace["mean_of"](None)


@pytest.mark.parametrize(
    "source, error",
    [
        ("def f():\n    return 1", "paired"),
        ("def f():\n    # BEGIN SOLUTION\n    return 1", "paired"),
        ("def f():\n    return 1\n    # END SOLUTION", "without # BEGIN"),
        ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION", "nested"),
    ],
)
def test_stub_refuses_missing_or_unpaired_markers(source, error):
    with pytest.raises(ValueError, match=error):
        stub_source(source)


def test_student_notebook_drops_solutions_and_stubs_references():
    book = notebook(
        md("intro"),
        code("x = 1", outputs=[OUTPUT]),
        md("```{exercise-start} E\n:label: ex-a\n```\nWrite mean_of.\n```{exercise-end}\n```"),
        md("```{solution-start} ex-a\n:class: dropdown\n```\nSecret prose of the solution."),
        code("secret_helper = 2", outputs=[OUTPUT]),
        code(REFERENCE, tags=["reference-solution"]),
        md("```{solution-end}\n```"),
        code("check_mean(mean_of)", tags=["exercise-check"], outputs=[OUTPUT]),
        md("Before.\n\n```{solution} ex-b\n:class: dropdown\nInline secret.\n```\nAfter."),
    )
    before = json.dumps(book)
    student = student_notebook(book)
    assert json.dumps(book) == before, "the book notebook was changed"
    text = json.dumps(student)
    for secret in ("Secret prose", "secret_helper", "total = x.sum()", "Inline secret"):
        assert secret not in text
    sources = [c["source"] for c in student["cells"]]
    assert sources[0] == "intro" and sources[1] == "x = 1"
    assert student["cells"][1]["outputs"] == [OUTPUT]  # ordinary outputs stay (the site)
    stub = student["cells"][3]
    assert stub["source"] == stub_source(REFERENCE) and stub["outputs"] == []
    assert stub["metadata"]["tags"] == ["student-stub"]
    check = student["cells"][4]
    assert check["source"] == "check_mean(mean_of)" and check["outputs"] == []
    assert "Before." in sources[5] and "After." in sources[5]
    clean = student_notebook(book, keep_outputs=False)
    assert all(c.get("outputs", []) == [] for c in clean["cells"])


def test_student_notebook_refuses_an_unclosed_solution():
    with pytest.raises(ValueError, match="solution-end"):
        student_notebook(notebook(md("```{solution-start} ex-a\n```"), code("x = 1")))


# ------------------------------------------------------------------ the book's chapters


def implement_it(nb):
    """(reference cell, checker cell) pairs of a chapter, in order."""
    cells = nb["cells"]
    pairs = []
    for i, cell in enumerate(cells):
        if "reference-solution" in cell.get("metadata", {}).get("tags", []):
            after = next(
                c for c in cells[i + 1 :] if "{solution-end}" not in student_edition._source(c)
            )
            pairs.append((cell, after))
    return pairs


@pytest.mark.parametrize("entry", CHAPTERS)
def test_every_chapter_has_two_implement_it_exercises_in_the_expected_layout(entry):
    nb = json.loads((ROOT / f"{entry}.ipynb").read_text())
    pairs = implement_it(nb)
    assert len(pairs) >= 2, f"{entry}: {len(pairs)} implement-it exercises, at least 2 wanted"
    for reference, check in pairs:
        stub_source(student_edition._source(reference))  # markers present and paired
        assert "exercise-check" in check["metadata"].get("tags", []), (
            f"{entry}: the cell after a reference solution's block is not its checker cell"
        )
        assert len(student_edition._source(check).strip().splitlines()) == 1


@pytest.fixture
def torch_settings():
    """A chapter's import cell sets torch's default dtype, threads and seed: restore them."""
    import torch

    dtype, threads, state = (
        torch.get_default_dtype(),
        torch.get_num_threads(),
        torch.get_rng_state(),
    )
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
    torch.set_rng_state(state)


@pytest.mark.parametrize("entry", CHAPTERS)
def test_student_notebook_has_no_solution_body_and_its_stubs_run(entry, torch_settings):
    nb = json.loads((ROOT / f"{entry}.ipynb").read_text())
    student = student_notebook(nb, keep_outputs=False)
    text = "\n".join(student_edition._source(c) for c in student["cells"])
    for reference, _ in implement_it(nb):
        source = student_edition._source(reference)
        body = source[source.index("# BEGIN SOLUTION") : source.index("# END SOLUTION")]
        lines = [line.strip() for line in body.splitlines()[1:] if len(line.strip()) > 12]
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{entry}: reference solution lines in the student notebook: {leaked}"
    # The chapter's import cell (the one after the bootstrap), then each stub and its checker.
    codes = [c for c in student["cells"] if c["cell_type"] == "code"]
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(student_edition._source(codes[1]), namespace)
    from companion.ledger import end_chapter

    end_chapter()
    stubs = [c for c in codes if "student-stub" in c["metadata"].get("tags", [])]
    assert len(stubs) == len(implement_it(nb))
    for stub in stubs:
        check = codes[codes.index(stub) + 1]
        exec(student_edition._source(stub), namespace)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(student_edition._source(check), namespace)
        assert "not attempted yet" in out.getvalue(), (entry, out.getvalue())


def test_write_sources_makes_the_student_site_sources(tmp_path, monkeypatch):
    """On a one-chapter book made here, with the execution stubbed out."""
    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/ch\n"
    )
    (root / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (root / "book" / "intro.md").write_text("# Intro\n\n```{literalinclude} ../pins.txt\n```\n")
    (root / "pins.txt").write_text("torch==2.13.0\n")  # a file a page includes
    book = notebook(
        md("```{solution-start} ex-a\n```"),
        code(REFERENCE, tags=["reference-solution"]),
        md("```{solution-end}\n```"),
        code("check(mean_of)", tags=["exercise-check"]),
    )
    (root / "book" / "ch.ipynb").write_text(json.dumps(book))

    def fake_executed(path, cache_path):
        nb = json.loads(path.read_text())
        nb["cells"][3]["outputs"] = [OUTPUT]
        return nb

    monkeypatch.setattr(student_edition, "executed", fake_executed)
    written = student_edition.write_sources(tmp_path / "out", root)
    assert [p.name for p in written] == ["ch.ipynb"]
    site = json.loads((tmp_path / "out" / "src" / "book" / "ch.ipynb").read_text())
    assert [c["source"] for c in site["cells"]] == [stub_source(REFERENCE), "check(mean_of)"]
    assert site["cells"][1]["outputs"] == []
    assert (tmp_path / "out" / "src" / "book" / "intro.md").read_text().startswith("# Intro\n")
    assert (tmp_path / "out" / "src" / "pins.txt").read_text() == "torch==2.13.0\n"
    config = (tmp_path / "out" / "src" / "_config.yml").read_text()
    assert "student edition" in config and "execute_notebooks: 'off'" in config
