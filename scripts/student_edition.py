"""Write the student edition's sources: the chapters without solutions, with empty stubs.

An implement-it exercise has, in the book, a reference solution: a code cell tagged
``reference-solution`` inside the exercise's collapsed solution, whose function body lies
between a line ``# BEGIN SOLUTION`` and a line ``# END SOLUTION``, followed (after the
solution) by a cell tagged ``exercise-check`` that calls the exercise's checker. The student
notebook of a chapter is the book's notebook with

- every solution removed (gated ``{solution-start}`` ... ``{solution-end}`` blocks with the
  cells inside them, and ``{solution}`` directives inside Markdown cells), except that each
  reference-solution cell stays where its solution was, with the lines from ``# BEGIN
  SOLUTION`` to ``# END SOLUTION`` replaced by ``raise NotImplementedError(...)``: the
  student sees the signature and docstring, writes the body, and runs the checker below;
- the outputs of the stubs and of the checker cells cleared (the checker then says "not
  attempted yet" when run on the stub, and nothing else).

This script writes two things under ``_build/student/``:

- ``src/``: the sources of the student site (``make book-student`` builds them): the student
  notebooks *with* the outputs of the book's executed chapters (taken from the book's
  execution cache, where ``make bench`` or ``make book`` put them; a chapter not found there
  is executed first and cached), the Markdown pages, the table of contents and the student
  configuration, which executes nothing and ships each notebook as the page's download;
- ``notebooks/``: the student notebooks without outputs, to hand out or open in JupyterLab.

    python scripts/student_edition.py [--output _build/student]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from student_config import student_config  # noqa: E402

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
STUB_MESSAGE = "write this function, then run the checker below"
SOLUTION_DIRECTIVE = re.compile(r"(?ms)^(?P<fence>`{3,}|:{3,})\{solution\}.*?^(?P=fence)[ \t]*$\n?")


def _source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def stub_source(source: str) -> str:
    """The reference solution's source with its marked body replaced by a stub.

    Raises:
        ValueError: the markers are missing, unpaired or nested.
    """
    out, inside = [], False
    found = 0
    for line in source.splitlines(keepends=True):
        begin = BEGIN.match(line.rstrip("\n"))
        if begin:
            if inside:
                raise ValueError("nested # BEGIN SOLUTION")
            inside, found = True, found + 1
            out.append(f'{begin.group("indent")}raise NotImplementedError("{STUB_MESSAGE}")\n')
            continue
        if END.match(line.rstrip("\n")):
            if not inside:
                raise ValueError("# END SOLUTION without # BEGIN SOLUTION")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside or not found:
        raise ValueError("a reference-solution cell needs paired # BEGIN/# END SOLUTION lines")
    return "".join(out).rstrip("\n")


def student_notebook(nb: dict, *, keep_outputs: bool = True) -> dict:
    """The student notebook of a book notebook (a new dict; ``nb`` is left unchanged)."""
    nb = copy.deepcopy(nb)
    cells, inside = [], False
    for cell in nb["cells"]:
        text = _source(cell)
        if "{solution-start}" in text:
            inside = True
        if inside:
            if cell["cell_type"] == "code" and "reference-solution" in _tags(cell):
                stub = copy.deepcopy(cell)
                stub["source"] = stub_source(text)
                stub["outputs"], stub["execution_count"] = [], None
                tags = [t for t in _tags(stub) if t != "reference-solution"] + ["student-stub"]
                stub["metadata"]["tags"] = tags
                cells.append(stub)
            if "{solution-end}" in text:
                inside = False
            continue
        if cell["cell_type"] == "markdown" and "{solution}" in text:
            cell = copy.deepcopy(cell)
            cell["source"] = SOLUTION_DIRECTIVE.sub("", text)
        if cell["cell_type"] == "code" and ("exercise-check" in _tags(cell) or not keep_outputs):
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    if inside:
        raise ValueError("a {solution-start} without {solution-end}")
    nb["cells"] = cells
    return nb


def executed(path: Path, cache_path: Path) -> dict:
    """The book notebook at ``path`` with its outputs from the execution cache.

    A chapter missing from the cache is executed (and cached) first, as make bench does.
    """
    import nbformat
    from jupyter_cache import get_cache

    nb = nbformat.read(path, as_version=4)
    cache = get_cache(cache_path)
    try:
        _, merged = cache.merge_match_into_notebook(nb)
    except KeyError:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import chapters

        rows = chapters.execute_all([path.resolve()], cache_path)
        if rows[0]["error"] is not None:
            raise RuntimeError(f"{path.name} failed to execute") from None
        _, merged = get_cache(cache_path).merge_match_into_notebook(nb)
    return json.loads(nbformat.writes(merged))


INCLUDE = re.compile(r"^`{3,}\{(?:literal)?include\}\s+(?P<path>\S+)", re.MULTILINE)


def _copy_included(page: Path, target: Path, root: Path) -> None:
    """Copy the files a page includes (``{include}``, ``{literalinclude}``) to where the
    page's copy finds them by the same relative path."""
    for match in INCLUDE.finditer(page.read_text(encoding="utf-8")):
        source = (page.parent / match.group("path")).resolve()
        if not source.is_relative_to(root.resolve()):
            raise ValueError(f"{page.name} includes {match.group('path')}, outside the book")
        copy = (target.parent / match.group("path")).resolve()
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)


def _write(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_sources(output: Path, root: Path = ROOT) -> list[Path]:
    """Write ``output/src`` and ``output/notebooks``; return the student notebooks written."""
    from hygiene import toc_files

    config = yaml.safe_load((root / "_config.yml").read_text())
    src, notebooks = output / "src", output / "notebooks"
    for folder in (src, notebooks):
        if folder.exists():
            shutil.rmtree(folder)
    src.mkdir(parents=True)
    shutil.copy2(root / "_toc.yml", src / "_toc.yml")
    config = student_config(config, root)
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    # The reproducibility appendix renders the audit of the book's checks from here.
    summary = root / "_build" / "checks" / "summary.json"
    if summary.exists():
        (src / "_build" / "checks").mkdir(parents=True)
        shutil.copy2(summary, src / "_build" / "checks" / "summary.json")
    written = []
    cache_path = Path(config["execute"].get("cache") or root / "_build" / ".jupyter_cache")
    for entry in toc_files(root):
        for suffix in (".md", ".ipynb"):
            path = root / f"{entry}{suffix}"
            if not path.exists():
                continue
            target = src / f"{entry}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".md":
                shutil.copy2(path, target)
                _copy_included(path, target, root)
                continue
            book = json.loads(path.read_text(encoding="utf-8"))
            _write(student_notebook(book, keep_outputs=False), notebooks / path.name)
            _write(student_notebook(executed(path, cache_path)), target)
            written.append(notebooks / path.name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    written = write_sources(args.output.resolve())
    print(
        f"wrote the student edition's sources to {args.output / 'src'} and "
        f"{len(written)} student notebooks to {args.output / 'notebooks'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
