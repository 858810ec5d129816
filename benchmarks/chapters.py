"""Execute every chapter once: its errors, time and memory, and the book's execution cache.

This is the one execution of each chapter that `make test` does. Each chapter listed in
_toc.yml is executed from scratch in its own child process (a fresh Jupyter kernel, what a
reader runs) by jupyter-cache's executor, the one the book build uses, with the build's
settings from _config.yml (the cell timeout; no errors allowed). For each chapter it

- fails, printing the traceback, when a cell raises (and does not cache that chapter);
- records the wall time and the kernel's peak resident memory, read from
  ``getrusage(RUSAGE_CHILDREN)`` of that child process, against the book's budget (20 s a
  chapter, 40 s for the VAE chapter, 150 s for the whole book, 1.5 GB of kernel
  memory); with ``--check`` a chapter over budget fails the run;
- stores the executed notebook in the book's jupyter-cache (``_build/.jupyter_cache``), so
  that ``jupyter-book build`` finds every chapter cached and executes none of them again
  (``scripts/check_cached_build.py`` checks the build's log for that).

Then ``estimator_engine.py`` times companion's estimators against the plain vectorized
surrogate and measures their memory against the size of θ (reported, not enforced). Prints
the tables and optionally writes JSON.

    python benchmarks/chapters.py [--json PATH] [--check] [--only NAME ...] [--no-cache]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"  # where jupyter-book looks (myst-nb's default)
BUDGET_S = {"default": 20.0, "05_vae": 40.0}
BOOK_BUDGET_S = 150.0
MEMORY_BUDGET_MB = 1536.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def chapters() -> list[Path]:
    """The notebooks of the table of contents, in reading order."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hygiene import toc_files

    return [ROOT / f"{entry}.ipynb" for entry in toc_files() if (ROOT / f"{entry}.ipynb").exists()]


def settings() -> dict:
    """The book build's execution settings (_config.yml, myst-nb's defaults where it is
    silent), so that this execution is the one the build would make."""
    import yaml

    execute = yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute") or {}
    return {
        "timeout": execute.get("timeout", 30),
        "allow_errors": execute.get("allow_errors", False),
        "run_in_temp": execute.get("run_in_temp", False),
    }


def run_one(path: Path, executed: Path, log: Path | None = None, seed_offset: int = 0) -> dict:
    """Execute one notebook in this process (the kernel is our only child process).

    Writes the executed notebook to ``executed`` and returns the chapter's row; ``error``
    holds the traceback when a cell raised (or the kernel died), else None. With ``log``,
    every check the chapter runs appends its JSON line there (companion.ledger); with a
    ``seed_offset``, the chapter's seed is shifted by it (companion.seeding). The kernel
    inherits both through its environment.
    """
    import os

    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        os.environ["COMPANION_CHECK_LOG"] = str(log)
    if seed_offset:
        os.environ["COMPANION_SEED_OFFSET"] = str(seed_offset)

    options = settings()
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as temp:
        cwd = temp if options.pop("run_in_temp") else str(path.parent)
        start = time.perf_counter()
        result = single_nb_execution(nb, cwd=cwd, **options)
        seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    nbformat.write(nb, executed)
    error = None
    if result.err is not None:  # a cell's error says which cell and how; else the whole trace
        cell_error = type(result.err).__name__ == "CellExecutionError"
        error = ANSI.sub("", str(result.err) if cell_error else result.exc_string).strip()
    return {
        "chapter": path.stem,
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_kb / 1024, 1),
        "error": error,
    }


def measure(
    path: Path, workdir: Path, log: Path | None = None, seed_offset: int = 0
) -> tuple[dict, Path]:
    """Run :func:`run_one` in a fresh interpreter so each kernel's peak memory is its own.

    Returns the row and the path of the executed notebook.
    """
    executed, row_file = workdir / f"{path.stem}.ipynb", workdir / f"{path.stem}.json"
    extra = ["--log", str(log)] if log is not None else []
    extra += ["--seed-offset", str(seed_offset)] if seed_offset else []
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            str(path),
            "--executed",
            str(executed),
            "--row",
            str(row_file),
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not row_file.exists():
        error = f"the process executing it exited with status {proc.returncode}:\n{proc.stderr}"
        return {
            "chapter": path.stem,
            "seconds": float("nan"),
            "peak_mb": float("nan"),
            "error": error,
        }, executed
    return json.loads(row_file.read_text()), executed


def store(cache_path: Path, source: Path, executed: Path, seconds: float) -> int:
    """Put an executed notebook into the jupyter-cache at ``cache_path``; return its record id.

    jupyter-book matches a notebook to a cache record by a hash of its code cells and
    kernelspec, so the record serves the build as long as the chapter's code is unchanged.
    Raises RuntimeError when the chapter on disk does not match the record (it was edited
    while it ran): the book build would then execute it again.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache_path.mkdir(parents=True, exist_ok=True)
    cache = get_cache(cache_path)
    record = cache.cache_notebook_bundle(
        CacheBundleIn(
            nbformat.read(executed, as_version=4), str(source), data={"execution_seconds": seconds}
        ),
        check_validity=False,
        overwrite=True,
    )
    try:
        matched = cache.match_cache_notebook(nbformat.read(source, as_version=4))
    except KeyError:
        matched = None
    if matched is None or matched.pk != record.pk:
        raise RuntimeError(
            f"{source.name} on disk does not match what was executed (edited "
            "while it ran?); the book build would execute it again"
        )
    return record.pk


def budget(row: dict) -> float:
    return BUDGET_S.get(row["chapter"], BUDGET_S["default"])


def print_table(rows: list[dict]) -> None:
    print(f"{'chapter':<26}{'seconds':>9}{'budget':>8}{'peak MB':>9}")
    print("-" * 52)
    for row in rows:
        status = "  FAILED" if row.get("error") else ""
        print(
            f"{row['chapter']:<26}{row['seconds']:>9.1f}{budget(row):>8.0f}"
            f"{row['peak_mb']:>9.0f}{status}"
        )
    total = sum(row["seconds"] for row in rows)
    print(f"{'whole book':<26}{total:>9.1f}{BOOK_BUDGET_S:>8.0f}")


def over_budget(rows: list[dict]) -> list[str]:
    problems = [
        f"{r['chapter']}: {r['seconds']:.1f} s > {budget(r):.0f} s"
        for r in rows
        if r["seconds"] > budget(r)
    ]
    problems += [
        f"{r['chapter']}: {r['peak_mb']:.0f} MB > {MEMORY_BUDGET_MB:.0f} MB"
        for r in rows
        if r["peak_mb"] > MEMORY_BUDGET_MB
    ]
    total = sum(r["seconds"] for r in rows)
    if total > BOOK_BUDGET_S:
        problems.append(f"whole book: {total:.1f} s > {BOOK_BUDGET_S:.0f} s")
    return problems


def execute_all(
    paths: list[Path], cache_path: Path | None, checks_dir: Path | None = None
) -> list[dict]:
    """Execute each notebook once, print each failure's traceback, cache each success; with
    ``checks_dir``, each chapter's checks are logged to ``checks_dir/<chapter>.jsonl``."""
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for path in paths:
            print(
                f"executing {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}",
                end=" ... ",
                flush=True,
            )
            log = None if checks_dir is None else checks_dir / f"{path.stem}.jsonl"
            row, executed = measure(path, Path(workdir), log)
            if row["error"] is None and cache_path is not None:
                try:
                    row["cache_record"] = store(cache_path, path, executed, row["seconds"])
                except RuntimeError as err:
                    row["error"] = str(err)
            if row["error"] is None:
                print(f"{row['seconds']:.1f} s, {row['peak_mb']:.0f} MB", flush=True)
            else:
                print("FAILED", flush=True)
                print(f"\n{path.name} failed:\n{row['error']}\n", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def first_failure(error: str) -> str:
    """The failed check's line (✗ FAILED ...) from a traceback, or the traceback's last line."""
    if error.startswith("audit: "):
        return error
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    for line in lines:
        if "✗ FAILED" in line:
            return line[line.index("✗ FAILED") :]
    return lines[-1] if lines else error


def _audit_module():
    """scripts/audit_checks.py, imported by path (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "audit_checks", ROOT / "scripts" / "audit_checks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_seeds(paths: list[Path], num_seeds: int) -> int:
    """Execute every chapter under seed offsets 1..num_seeds (nothing cached); report failures.

    A run fails when a cell raises (a check failed) or when its checks fail the audit under
    that seed (a resolution worse than 10%, an overspent budget): resolutions depend on the
    draws, so the audit is repeated for every seed.
    """
    audit = _audit_module()
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        for offset in range(1, num_seeds + 1):
            for path in paths:
                log = Path(workdir) / f"{path.stem}-{offset}.jsonl"
                row, _ = measure(path, Path(workdir), log, offset)
                if row["error"] is None:
                    _, problems = audit.audit_chapter(path.stem, audit.read_log(log))
                    if problems:
                        row["error"] = "audit: " + "; ".join(problems)
                status = "ok" if row["error"] is None else "FAILED"
                print(
                    f"seed offset {offset:3d}  {path.stem:<26} {row['seconds']:6.1f} s  {status}",
                    flush=True,
                )
                if row["error"] is not None:
                    failures.append((offset, path.stem, first_failure(row["error"])))
    runs = num_seeds * len(paths)
    print(
        f"\n{runs - len(failures)} passed, {len(failures)} failed "
        f"({len(paths)} chapters x {num_seeds} seeds)"
    )
    for offset, chapter, line in failures:
        print(f"  seed offset {offset}, {chapter}: {line}")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="chapters to run (file stems)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        metavar="PATH",
        help="the jupyter-cache to store executed chapters in (default: the "
        "book's, _build/.jupyter_cache)",
    )
    parser.add_argument("--no-cache", action="store_true", help="store nothing")
    parser.add_argument(
        "--skip-engine",
        action="store_true",
        help="skip the estimators' engine benchmark (benchmarks/estimator_engine.py)",
    )
    parser.add_argument("--notebooks", nargs="+", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--checks-dir",
        type=Path,
        default=ROOT / "_build" / "checks",
        help="log every chapter's checks here, one JSON-lines file each (default _build/checks)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="execute every chapter under K other seeds instead (make seeds); nothing cached",
    )
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed-offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--executed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        args.row.write_text(
            json.dumps(run_one(args.one, args.executed, args.log, args.seed_offset))
        )
        return 0
    paths = args.notebooks or [p for p in chapters() if not args.only or p.stem in args.only]
    if args.only and len(paths) != len(set(args.only)):
        parser.error(f"--only: no such chapter among {[p.stem for p in chapters()]}")
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be at least 1, got {args.seeds}")
        return run_seeds([p.resolve() for p in paths], args.seeds)
    if args.checks_dir is not None and not args.only:
        # A full run starts from an empty log directory: a stale log (a renamed chapter, a
        # test's notebook) must not reach the audit.
        for stale in args.checks_dir.glob("*.jsonl"):
            stale.unlink()
    rows = execute_all(
        [p.resolve() for p in paths], None if args.no_cache else args.cache, args.checks_dir
    )
    print()
    print_table(rows)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "chapters": rows,
        "engine": None,
    }
    failed = [row["chapter"] for row in rows if row["error"]]
    if not args.skip_engine and not failed:
        sys.path.insert(0, str(Path(__file__).parent))
        import estimator_engine

        print()
        times = estimator_engine.measure_times(100_000, 5)
        memory = estimator_engine.measure_memory()
        estimator_engine.print_tables(times, memory)
        # Reported, not enforced: timings on a shared machine are a benchmark, not a test.
        for line in estimator_engine.failures(times, memory):
            print("engine target missed:", line)
        result["engine"] = {"times": times, "memory": memory}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    problems = over_budget(rows)
    for problem in problems:
        print("over budget:", problem)
    if failed:
        print(f"failed (tracebacks above): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
