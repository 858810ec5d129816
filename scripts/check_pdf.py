"""Check the PDF that `make pdf` built: it exists, LaTeX reported no error, no missing
character and no unresolved reference, and every chapter of the table of contents is in it.

Reads ``_build/latex/gradients-through-randomness.log`` (xelatex's log of the last pass) and
the ``.toc`` file LaTeX wrote for the PDF's table of contents. A chapter counts as present
when its title (the first heading of its notebook or page, as listed in _toc.yml) is a
chapter entry of that table of contents. Prints the page count.

    python scripts/check_pdf.py [LATEX_DIR]          (default _build/latex)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAME = "gradients-through-randomness"
PAGES = re.compile(rf"Output written on {NAME}\.pdf \((\d+) pages?")
UNDEFINED = re.compile(r"(?:Hyper r|R)eference `([^']+)' on page \d+ undefined")
CHAPTER = re.compile(r"\\contentsline\s*\{chapter\}\{(?:\\numberline\s*\{[^}]*\})?(.*)\}\{\d+\}")


def chapter_titles(root: Path = ROOT) -> list[str]:
    """The first heading of every file in _toc.yml except the root page, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    titles = []
    for name in files:
        path = root / f"{name}.ipynb"
        if path.exists():
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        else:
            text = (root / f"{name}.md").read_text(encoding="utf-8")
        heading = next(line for line in text.splitlines() if line.startswith("# "))
        titles.append(heading[2:].strip())
    return titles


def _plain(tex: str) -> str:
    """A LaTeX title as text: Sphinx's hyphen macro, braces and spacing removed."""
    tex = re.sub(r"\\sphinxhyphen\s*(?:\{\})?", "-", tex)
    tex = re.sub(r"\\[A-Za-z]+\s*", "", tex)
    return " ".join(tex.replace("{", "").replace("}", "").split())


def pdf_problems(log: str, toc: str, titles: list[str], pdf_exists: bool = True) -> list[str]:
    """Everything wrong with a built PDF, from xelatex's log and the .toc file."""
    problems = []
    if not pdf_exists or not PAGES.search(log):
        problems.append(f"no {NAME}.pdf was written")
    errors = [line for line in log.splitlines() if line.startswith("! ")]
    problems += [f"LaTeX error: {line[2:]}" for line in errors]
    missing = sorted({line.strip() for line in log.splitlines() if "Missing character" in line})
    problems += [f"LaTeX font: {line}" for line in missing]
    # A reference LaTeX could not resolve prints as "??" in the PDF.
    # (TeX breaks its log lines at 79 characters, even inside a number: join them back.)
    unresolved = sorted(set(UNDEFINED.findall("".join(log.splitlines()))))
    problems += [f"unresolved reference: {ref}" for ref in unresolved]
    in_pdf = {_plain(m.group(1)) for m in CHAPTER.finditer(toc)}
    problems += [f"chapter not in the PDF: {t}" for t in titles if _plain(t) not in in_pdf]
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("latex_dir", nargs="?", type=Path, default=ROOT / "_build" / "latex")
    args = parser.parse_args(argv)
    log_path, toc_path = args.latex_dir / f"{NAME}.log", args.latex_dir / f"{NAME}.toc"
    if not log_path.exists():
        print(f"check_pdf: {log_path} not found; run make pdf first")
        return 1
    log = log_path.read_text(encoding="utf-8", errors="replace")
    toc = toc_path.read_text(encoding="utf-8", errors="replace") if toc_path.exists() else ""
    titles = chapter_titles()
    problems = pdf_problems(log, toc, titles, (args.latex_dir / f"{NAME}.pdf").exists())
    for line in problems:
        print("check_pdf:", line)
    if problems:
        return 1
    pages = PAGES.search(log).group(1)
    print(
        f"check_pdf: {NAME}.pdf, {pages} pages, {len(titles)} chapters and appendices, "
        "no LaTeX error, no missing character, no unresolved reference"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
