"""Check that a book build executed no notebook: it took every chapter from jupyter-cache.

`make test` executes each chapter once, in benchmarks/chapters.py, which stores the executed
notebooks in the book's jupyter-cache (_build/.jupyter_cache). The builds of the book and
of the student edition that follow must take every chapter from that cache. This reads the
log of such a build (run with --all, so that every page is read again) and fails when
myst-nb executed a notebook, or when a chapter of the table of contents was not taken from
the cache.

    python scripts/check_cached_build.py LOG [LOG ...] [--executes-nothing LOG ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# myst-nb 1.x's messages, one line per notebook (myst_nb/core/execute/cache.py):
#   book/x.ipynb: Using cached notebook: ID=3 [mystnb]
#   book/x.ipynb: Executing notebook using local CWD [mystnb]
#   book/x.ipynb: Executed notebook in 2.31 seconds [mystnb]
#   book/x.ipynb: WARNING: Executing notebook failed: CellExecutionError [mystnb.exec]
CACHED = re.compile(r"^(?P<path>.+?\.ipynb): Using cached notebook: ID=\d+")
EXECUTED = re.compile(r"^(?P<path>.+?\.ipynb): (?:WARNING: )?Execut(?:ing|ed) notebook")


def chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks of the table of contents."""
    sys.path.insert(0, str(root / "tests"))
    from hygiene import toc_files

    return [root / f"{e}.ipynb" for e in toc_files(root) if (root / f"{e}.ipynb").exists()]


def _notebooks(pattern: re.Pattern, log: str) -> list[Path]:
    found = []
    for line in ANSI.sub("", log).splitlines():
        match = pattern.match(line.strip())
        if match:
            found.append(Path(match.group("path")))
    return found


def problems(log: str, notebooks: list[Path], root: Path = ROOT) -> list[str]:
    """What is wrong with one build's log: notebooks executed, chapters not from the cache."""

    def name(path: Path) -> str:
        path = path if path.is_absolute() else root / path
        return path.resolve().relative_to(root.resolve()).as_posix()

    found = [f"executed {name(p)}" for p in dict.fromkeys(_notebooks(EXECUTED, log))]
    cached = {name(p) for p in _notebooks(CACHED, log)}
    found += [
        f"did not take {name(p)} from the cache"
        for p in notebooks
        if name(p) not in cached and f"executed {name(p)}" not in found
    ]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="logs of jupyter-book build --all")
    parser.add_argument(
        "--executes-nothing",
        nargs="*",
        type=Path,
        default=[],
        metavar="LOG",
        help="logs of builds that execute nothing (the student edition): only an executed "
        "notebook is a problem there",
    )
    args = parser.parse_args(argv)
    notebooks, failed = chapters(), False
    for log in args.executes_nothing:
        found = [p for p in problems(log.read_text(errors="replace"), []) if "executed" in p]
        for problem in found:
            print(f"{log}: the build {problem}", file=sys.stderr)
        if not found:
            print(f"{log}: no notebook executed")
        failed = failed or bool(found)
    for log in args.logs:
        found = problems(log.read_text(errors="replace"), notebooks)
        for problem in found:
            print(f"{log}: the build {problem}", file=sys.stderr)
        if not found:
            print(f"{log}: all {len(notebooks)} chapters from the cache, none executed")
        failed = failed or bool(found)
    if failed:
        print(
            "Each chapter is executed once, by benchmarks/chapters.py (make bench), which caches "
            "it for the build. A chapter edited since, or a cache that does not match it, makes "
            "the build execute it a second time.",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
