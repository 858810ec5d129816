"""Simulate Colab: a fresh kernel without companion, whose bootstrap cell installs it from
the repository, then every chapter executed.

Colab opens a chapter from the repository's published branch and runs its first cell, the
bootstrap cell (tests/hygiene.py), which installs companion from that same branch when the
kernel lacks it or has another version. This script plays that out offline:

- the public repository is stood in for by a bare clone of this repository's committed
  state (HEAD), on the branch that _config.yml names;
- the kernel is a fresh virtual environment that sees the book's pinned packages (torch,
  NumPy, Matplotlib, scikit-learn, ipykernel, ...: more than Colab preinstalls, never less of
  what the chapters need) but not companion, which it must install;
- each chapter is taken from a checkout of that bare repository, its bootstrap cell pointed
  at the bare repository instead of the public URL (the only edit), and executed in a fresh
  kernel in an empty folder, so that nothing is imported from the checkout by accident.
  pip runs offline (no index; the environment's own setuptools builds companion).

It fails when a chapter raises, or when companion was not installed by the bootstrap (it
must come from the bare repository, at the version the chapter asks for). Prints one line
per chapter with its time.

    python scripts/simulate_colab.py [--only NAME ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hygiene import load_config, toc_files  # noqa: E402

HIDDEN = ("companion", "__editable__.companion", "__editable___companion")


def make_environment(where: Path) -> Path:
    """A virtual environment that sees this one's packages except companion; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shared = where / "preinstalled"
    shared.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.startswith(HIDDEN):
            (shared / entry.name).symlink_to(entry)
    # Added with site.addsitedir, so the packages' own .pth files are processed too.
    (site / "preinstalled.pth").write_text(f"import site; site.addsitedir({str(shared)!r})\n")
    return python


def chapter_paths(checkout: Path) -> list[Path]:
    return [
        checkout / f"{e}.ipynb" for e in toc_files(checkout) if (checkout / f"{e}.ipynb").exists()
    ]


def run_chapter(python: Path, source: Path, remote: str, public: str, workdir: Path) -> dict:
    nb = json.loads(source.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    text = "".join(first["source"])
    if public not in text:
        return {"chapter": source.stem, "error": "the bootstrap cell does not name the repository"}
    first["source"] = text.replace(public, remote)
    folder = workdir / source.stem
    folder.mkdir()
    path = folder / source.name
    path.write_text(json.dumps(nb), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "PIP_NO_INDEX": "1",  # offline: companion's dependencies are all preinstalled
        "PIP_NO_BUILD_ISOLATION": "0",  # build with the environment's own setuptools
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "MPLBACKEND": "Agg",
    }
    start = time.perf_counter()
    result = subprocess.run(
        [
            python,
            "-m",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--output",
            "executed.ipynb",
            str(path),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    row = {"chapter": source.stem, "seconds": seconds}
    if result.returncode != 0:
        row["error"] = result.stderr[-3000:]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="chapters to run (file stems)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    config = load_config()
    public, branch = config["repository"]["url"], config["repository"]["branch"]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bare = work / "public.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(bare)], check=True)
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(["git", "-C", str(bare), "branch", "-f", branch, head], check=True)
        checkout = work / "checkout"
        subprocess.run(["git", "clone", "-q", "-b", branch, str(bare), str(checkout)], check=True)
        python = make_environment(work / "env")
        found = subprocess.run([python, "-c", "import companion"], capture_output=True, cwd=work)
        if found.returncode == 0:
            print("simulate_colab: the fresh environment already has companion")
            return 1
        problems = []
        runs = work / "runs"
        runs.mkdir()
        for path in chapter_paths(checkout):
            if args.only and path.stem not in args.only:
                continue
            row = run_chapter(python, path, bare.as_uri(), public, runs)
            status = "ok" if "error" not in row else "FAILED"
            print(f"{row['chapter']:28s} {status:6s} {row.get('seconds', 0):6.1f} s")
            if "error" in row:
                problems.append(f"{row['chapter']}: {row['error']}")
        installed = subprocess.run(
            [
                python,
                "-c",
                (
                    "import importlib.metadata as m; "
                    "print(m.distribution('companion').read_text('direct_url.json'))"
                ),
            ],
            capture_output=True,
            text=True,
            cwd=work,
        )
        source = json.loads(installed.stdout or "{}") if installed.returncode == 0 else {}
        if (
            source.get("url") != bare.as_uri()
            or source.get("vcs_info", {}).get("requested_revision") != branch
        ):
            problems.append(
                f"companion was not installed by the bootstrap from {branch} of the "
                f"repository (found: {source or installed.stderr[-500:]})"
            )
        for line in problems:
            print("simulate_colab:", line)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
