"""Per-chapter execution time and peak kernel memory, and the estimators' throughput.

Each chapter listed in _toc.yml is executed from scratch in its own child process (a fresh
Jupyter kernel, exactly what a reader or the test suite runs), timing the execution and
reading the kernel's peak resident memory from ``getrusage(RUSAGE_CHILDREN)`` of that child.
Then ``estimator_throughput.py`` measures the vectorized estimators against a per-sample
autograd loop. Prints a table, optionally writes JSON, and with ``--check`` exits non-zero
when a chapter exceeds the book's budget (30 s a chapter, 60 s for the VAE chapter,
3 minutes for the whole book, 1.5 GB of kernel memory).

    python benchmarks/chapters.py [--json PATH] [--check] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = {"default": 30.0, "05_vae": 60.0}
BOOK_BUDGET_S = 180.0
MEMORY_BUDGET_MB = 1536.0


def chapters() -> list[Path]:
    """The notebooks of the table of contents, in reading order."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hygiene import toc_files

    return [ROOT / f"{entry}.ipynb" for entry in toc_files() if (ROOT / f"{entry}.ipynb").exists()]


def run_one(path: Path) -> dict:
    """Execute one notebook in this process; the kernel is our only child process."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    return {"chapter": path.stem, "seconds": round(seconds, 2), "peak_mb": round(peak_kb / 1024, 1)}


def measure(path: Path) -> dict:
    """Run :func:`run_one` in a fresh interpreter so each kernel's peak memory is its own."""
    out = subprocess.run([sys.executable, __file__, "--one", str(path)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def budget(row: dict) -> float:
    return BUDGET_S.get(row["chapter"], BUDGET_S["default"])


def print_table(rows: list[dict]) -> None:
    print(f"{'chapter':<26}{'seconds':>9}{'budget':>8}{'peak MB':>9}")
    print("-" * 52)
    for row in rows:
        print(f"{row['chapter']:<26}{row['seconds']:>9.1f}{budget(row):>8.0f}{row['peak_mb']:>9.0f}")
    total = sum(row["seconds"] for row in rows)
    print(f"{'whole book':<26}{total:>9.1f}{BOOK_BUDGET_S:>8.0f}")


def over_budget(rows: list[dict]) -> list[str]:
    problems = [f"{r['chapter']}: {r['seconds']:.1f} s > {budget(r):.0f} s" for r in rows
                if r["seconds"] > budget(r)]
    problems += [f"{r['chapter']}: {r['peak_mb']:.0f} MB > {MEMORY_BUDGET_MB:.0f} MB" for r in rows
                 if r["peak_mb"] > MEMORY_BUDGET_MB]
    total = sum(r["seconds"] for r in rows)
    if total > BOOK_BUDGET_S:
        problems.append(f"whole book: {total:.1f} s > {BOOK_BUDGET_S:.0f} s")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="chapters to run (file stems)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    paths = [p for p in chapters() if not args.only or p.stem in args.only]
    rows = [measure(path) for path in paths]
    print_table(rows)
    result = {"python": platform.python_version(), "machine": platform.machine(),
              "chapters": rows, "throughput": None}
    if not args.skip_throughput:
        sys.path.insert(0, str(Path(__file__).parent))
        import estimator_throughput

        print()
        result["throughput"] = estimator_throughput.measure(1_000_000, 2_000, 3)
        estimator_throughput.print_table(result["throughput"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    problems = over_budget(rows)
    for problem in problems:
        print("over budget:", problem)
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
