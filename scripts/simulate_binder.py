"""Simulate Binder: a clean environment built from binder/ as repo2docker builds it, JupyterLab
started in it, then every chapter executed there, each within Binder's 2 GB of memory.

Binder (repo2docker) copies the repository, installs ``binder/requirements.txt`` with pip
from the repository's root (the file pulls ``constraints.txt``, so every transitive package
gets the book's pin), runs ``binder/postBuild`` from the root, and starts JupyterLab, whose
kernels run each chapter from ``book/``. This script plays that out:

- the repository is copied into a temporary folder (without what ``.gitignore`` names and
  without ``.git``), so that the install and ``postBuild`` touch nothing here;
- a fresh virtual environment (no system site packages) of the Python that
  ``binder/runtime.txt`` names gets ``pip install -r binder/requirements.txt``, run from the
  copy's root with that environment's ``bin`` first on PATH; the constraints apply as on
  Binder. An index option of the file whose host cannot be reached is commented out of the
  copy first (``--extra-index {auto,keep,strip}``): Binder gets torch from PyTorch's CPU
  wheel index (``--extra-index-url https://download.pytorch.org/whl/cpu``), and a machine
  that cannot reach it takes the same pinned torch version from its configured index
  instead (pip's own configuration and ``PIP_*`` variables apply as they do for any pip
  run). Unlike Binder (``--no-cache-dir``), pip may reuse the user's wheel cache, to keep
  the run fast (``--no-cache`` turns it off);
- ``binder/postBuild`` runs as repo2docker runs it (``./binder/postBuild`` from the root);
- the installed versions are compared with the pins of ``binder/requirements.txt`` and
  ``constraints.txt`` (a difference fails; an installed package without a pin is listed),
  and companion must be the copy's, installed by ``postBuild``;
- JupyterLab is started from the environment, as Binder starts it, and must serve ``/lab``;
  its resident memory (the server alone, before any kernel) is reported;
- each chapter of ``_toc.yml`` is executed in a fresh kernel of that environment, with the
  kernel's working folder in the copy's ``book/`` (where JupyterLab starts it), a cell
  timeout from ``_config.yml``, a whole-chapter timeout (``--timeout``), no network for the
  kernel's pip (the bootstrap cell must find companion installed), and the session's HOME
  (a fresh one, shared by JupyterLab and every kernel, as in one Binder session).

Memory: each kernel's peak resident memory, the larger of two readings: the resident memory
of the kernel's process tree (summed over its processes, sampled every 0.1 s, as Binder's
limit counts every process) and ``getrusage(RUSAGE_CHILDREN)``'s peak of the kernel process
itself (exact, as in benchmarks/chapters.py, but one process only). A chapter fails when a
cell raises, when it runs past the timeout, or when its peak is over Binder's 2 GB
(2048 MB, MB meaning 2**20 bytes). Also reported, not enforced: what a kernel still holds
after its last cell (resident, and its anonymous part, which leaves out the pages of library
files that every kernel maps: JupyterLab keeps a kernel alive until it is shut down), the
server's memory, and, for two and for three chapters left open together, the worst case of
one running at its peak while the others hold their anonymous memory, plus the server (an
estimate from kernels measured one at a time), and the sum of their peaks plus the server
(an upper bound: resident memory counts a library's pages in every process that maps it,
Binder's limit once). Prints one table, with the time of each stage.

    python scripts/simulate_binder.py [--only NAME ...] [--keep DIR] [--timeout S]
        [--extra-index {auto,keep,strip}] [--no-cache]

Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 2048.0  # mybinder.org's memory limit per session, 2 GiB
OPEN_TOGETHER = 3  # chapters a reader may leave open at once in JupyterLab
INDEX_OPTION = re.compile(
    r"^\s*(--extra-index-url|--index-url|-i|--find-links|-f)(?:\s*=\s*|\s+)(\S+)\s*(#.*)?$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==\s*([^\s;#]+)")
NOT_PINNED_OK = {"pip", "setuptools", "wheel", "companion"}


# ---------------------------------------------------------------- pure parts (unit-tested)


def index_urls(text: str) -> list[str]:
    """The URLs of the index options (--index-url, --extra-index-url, --find-links) of a
    requirements file's text, in order."""
    return [m.group(2) for m in map(INDEX_OPTION.match, text.splitlines()) if m]


def strip_indexes(text: str, unreachable: set[str]) -> tuple[str, list[str]]:
    """``text`` with every index option whose URL is in ``unreachable`` commented out.

    Returns the new text and the options removed. Everything else (pins, ``-c`` and ``-r``
    references, comments) is kept byte for byte, so the constraints apply as before.

    >>> strip_indexes("--extra-index-url https://x.org\\nnumpy==2.0\\n", {"https://x.org"})[0]
    '# (unreachable here, left out) --extra-index-url https://x.org\\nnumpy==2.0\\n'
    """
    lines, removed = [], []
    for line in text.splitlines(keepends=True):
        match = INDEX_OPTION.match(line)
        if match and match.group(2) in unreachable:
            removed.append(line.strip())
            lines.append("# (unreachable here, left out) " + line.lstrip())
        else:
            lines.append(line)
    return "".join(lines), removed


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements or constraints file, names normalized."""
    return {normalize(m.group(1)): m.group(2) for m in map(PIN.match, text.splitlines()) if m}


def pin_problems(installed: dict[str, str], pins: dict[str, str]) -> tuple[list[str], list[str]]:
    """Installed versions against the pins: (packages at another version than pinned,
    installed packages that nothing pins). A local version label (``2.13.0+cpu``) matches
    its public version, as it does for pip's ``==``."""
    installed = {normalize(k): v for k, v in installed.items()}
    differ = [
        f"{name} {version} installed, pinned {pins[name]}"
        for name, version in sorted(installed.items())
        if name in pins and version.split("+")[0] != pins[name].split("+")[0]
    ]
    unpinned = sorted(n for n in installed if n not in pins and n not in NOT_PINNED_OK)
    return differ, unpinned


def runtime_version(text: str) -> str:
    """The Python version of a runtime.txt (``python-3.11`` -> ``3.11``)."""
    match = re.fullmatch(r"\s*python-(\d+\.\d+)(?:\.\d+)?\s*", text)
    if not match:
        raise ValueError(f"runtime.txt: expected python-X.Y, got {text.strip()!r}")
    return match.group(1)


def peak_mb(row: dict) -> float:
    """The peak that counts against the limit: the larger of the two readings (NaN when
    neither was taken)."""
    readings = [row.get(key, float("nan")) for key in ("tree_peak_mb", "rusage_peak_mb")]
    readings = [value for value in readings if value == value]
    return max(readings) if readings else float("nan")


def chapter_problems(rows: list[dict], limit_mb: float = LIMIT_MB) -> list[str]:
    """Why the simulation fails: a chapter that raised or timed out, a peak over the limit,
    a peak that was not measured."""
    problems = []
    for row in rows:
        peak = peak_mb(row)
        if row.get("error"):
            problems.append(f"{row['chapter']}: {row['error'].strip().splitlines()[-1]}")
        elif math.isnan(peak):  # not measured
            problems.append(f"{row['chapter']}: its memory was not measured")
        elif peak > limit_mb:
            problems.append(f"{row['chapter']}: peak {peak:.0f} MB > Binder's {limit_mb:.0f} MB")
    return problems


def kept_mb(row: dict) -> float:
    """What an idle kernel adds once its chapter has run: its anonymous memory after the last
    cell (the pages of library files are the same files for every kernel, counted once, in
    the running kernel's peak), or its resident memory where that was not read."""
    anon = row.get("kept_anon_mb", float("nan"))
    return anon if not math.isnan(anon) else row.get("kept_mb", float("nan"))


def open_together(rows: list[dict], server_mb: float, k: int = OPEN_TOGETHER) -> dict:
    """``k`` chapters left open in one session (JupyterLab keeps each kernel until it is shut
    down), two estimates, each with the server's memory added:

    - ``peaks``: the sum of the ``k`` largest peaks, an upper bound (``peaks_of`` names them);
    - ``worst``: the largest, over the choice of chapters, of one chapter running at its peak
      while ``k - 1`` others hold what they kept (:func:`kept_mb`); ``running`` and ``idle``
      name the chapters.
    """
    measured = [r for r in rows if not math.isnan(peak_mb(r)) and not math.isnan(kept_mb(r))]
    largest = sorted(measured, key=peak_mb, reverse=True)[:k]
    result = {
        "peaks": sum(map(peak_mb, largest)) + server_mb,
        "peaks_of": [r["chapter"] for r in largest],
        "worst": float("nan"),
        "running": None,
        "idle": [],
    }
    for running in measured:
        others = sorted((r for r in measured if r is not running), key=kept_mb, reverse=True)
        idle = others[: k - 1]
        total = peak_mb(running) + sum(map(kept_mb, idle)) + server_mb
        if math.isnan(result["worst"]) or total > result["worst"]:
            result.update(
                worst=total, running=running["chapter"], idle=[r["chapter"] for r in idle]
            )
    return result


def format_table(rows: list[dict], limit_mb: float = LIMIT_MB) -> str:
    """One line per chapter: time, peak memory (the larger of the two readings, then each),
    memory kept after the last cell (resident, and its anonymous part), and whether it
    passed."""
    over = {r["chapter"] for r in rows if peak_mb(r) > limit_mb}
    header = (
        f"{'chapter':<26}{'seconds':>9}{'peak MB':>9}{'tree':>7}{'rusage':>8}"
        f"{'kept MB':>9}{'anon':>7}  ok"
    )
    lines = [header, "-" * 79]
    for r in rows:
        ok = "FAILED" if r.get("error") else "OVER" if r["chapter"] in over else "ok"
        lines.append(
            f"{r['chapter']:<26}{r.get('seconds', float('nan')):>9.1f}{peak_mb(r):>9.0f}"
            f"{r.get('tree_peak_mb', float('nan')):>7.0f}"
            f"{r.get('rusage_peak_mb', float('nan')):>8.0f}"
            f"{r.get('kept_mb', float('nan')):>9.0f}"
            f"{r.get('kept_anon_mb', float('nan')):>7.0f}  {ok}"
        )
    return "\n".join(lines)


def descendants(pid: int, children_of) -> list[int]:
    """Every descendant of ``pid``, given ``children_of(pid) -> list of child pids``."""
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def ignored(patterns: list[str]):
    """A ``shutil.copytree`` ignore function for .gitignore-style name patterns (``name/``,
    ``*.egg-info/``, ``name``), applied to names at any depth."""
    names = [p.strip().rstrip("/") for p in patterns]
    names = [p for p in names if p and not p.startswith(("#", "!")) and "/" not in p]

    def ignore(_folder, entries):
        return {e for e in entries if any(fnmatch.fnmatch(e, p) for p in names)}

    return ignore


# ------------------------------------------------------------ measuring (in the new kernel)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _anon_mb(pid: int) -> float:
    """Anonymous resident memory of a process (its heap and arrays, not the pages of files
    such as shared libraries, which every kernel maps from the same files); NaN where Linux
    does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def tree_rss_mb(pid: int, include_self: bool = False) -> float:
    """Resident memory of ``pid``'s descendants (and itself), in MB."""
    pids = descendants(pid, _children) + ([pid] if include_self else [])
    return sum(map(_rss_mb, pids))


def tree_anon_mb(pid: int) -> float:
    """Anonymous resident memory of ``pid``'s descendants, in MB."""
    return sum(map(_anon_mb, descendants(pid, _children)))


class Sampler(threading.Thread):
    """Samples the resident memory of this process's descendants (the kernel) every
    ``interval`` seconds and keeps the peak."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.peak, self.kernel = interval, 0.0, None
        self.done = threading.Event()

    def run(self):
        me = os.getpid()
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, tree_rss_mb(me))
            if self.kernel is None:
                kids = _children(me)
                if kids:
                    try:
                        raw = Path(f"/proc/{kids[0]}/cmdline").read_bytes()
                        self.kernel = raw.split(b"\0")[0].decode()
                    except OSError:
                        pass


def execute_one(path: Path, cwd: Path, executed: Path, cell_timeout: int) -> dict:
    """Execute one notebook in a fresh kernel started by this process (run with the new
    environment's Python); the kernel is kept until its memory after the last cell is read."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=cell_timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "")
    )
    sampler = Sampler()
    sampler.start()
    row = {"chapter": path.stem, "error": None}
    start = time.perf_counter()
    try:
        client.execute(cwd=str(cwd), cleanup_kc=False)
        row["kept_mb"] = round(tree_rss_mb(os.getpid()), 1)
        row["kept_anon_mb"] = round(tree_anon_mb(os.getpid()), 1)
    except Exception as err:  # noqa: BLE001 (a cell raised, a timeout, a dead kernel: all fail)
        row["error"] = ANSI.sub("", f"{type(err).__name__}: {err}")
    finally:
        row["seconds"] = round(time.perf_counter() - start, 2)
        try:
            client._cleanup_kernel()  # nbclient's own shutdown of the kernel it started
        except Exception:  # noqa: BLE001 (already gone: nothing to shut down)
            pass
        sampler.done.set()
        sampler.join()
    nbformat.write(nb, executed)
    row["tree_peak_mb"] = round(sampler.peak, 1)
    row["rusage_peak_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    row["kernel_python"] = sampler.kernel
    return row


# ------------------------------------------------------------------------- the simulation


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], **kwargs)


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether the URL's host answers at all (any HTTP status counts)."""
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return True
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def find_python(version: str) -> str:
    """An interpreter of the Python version Binder uses: this one, or pythonX.Y on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return getattr(sys, "_base_executable", sys.executable)
    found = shutil.which(f"python{version}")
    if found is None:
        raise SystemExit(f"simulate_binder: binder/runtime.txt asks for Python {version}")
    return found


def build_environment(work: Path, python: str, args) -> tuple[Path, Path, dict]:
    """The copy of the repository, its environment built as repo2docker builds it; returns
    (copy, environment, times of the stages)."""
    times = {}
    copy = work / "repo"
    gitignore = (
        (ROOT / ".gitignore").read_text().splitlines() if (ROOT / ".gitignore").exists() else []
    )
    shutil.copytree(ROOT, copy, ignore=ignored([".git", *gitignore]), symlinks=True)
    requirements = copy / "binder" / "requirements.txt"
    text = requirements.read_text()
    urls = index_urls(text)
    if args.extra_index == "strip":
        unreachable = set(urls)
    elif args.extra_index == "keep":
        unreachable = set()
    else:
        unreachable = {u for u in urls if not reachable(u)}
    text, removed = strip_indexes(text, unreachable)
    requirements.write_text(text)
    for line in removed:
        print(f"simulate_binder: unreachable, left out of the install: {line}")

    env_dir = work / "env"
    start = time.perf_counter()
    run([python, "-m", "venv", env_dir], check=True)
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER")}
    environ.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        VIRTUAL_ENV=str(env_dir),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    if args.no_cache:
        environ["PIP_NO_CACHE_DIR"] = "1"
    print("simulate_binder: pip install -r binder/requirements.txt ...", flush=True)
    run(
        [
            env_dir / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            "binder/requirements.txt",
        ],
        cwd=copy,
        env=environ,
        check=True,
    )
    times["install"] = time.perf_counter() - start
    start = time.perf_counter()
    post = copy / "binder" / "postBuild"
    if post.exists():
        post.chmod(post.stat().st_mode | 0o111)  # repo2docker: chmod +x binder/postBuild
        print("simulate_binder: ./binder/postBuild ...", flush=True)
        run(["./binder/postBuild"], cwd=copy, env=environ, check=True)
    times["postBuild"] = time.perf_counter() - start
    return copy, env_dir, times


def environment_problems(copy: Path, env_dir: Path) -> list[str]:
    """Installed versions against the pins, and companion installed from the copy."""
    python = env_dir / "bin" / "python"
    listing = run(
        [python, "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    installed = {d["name"]: d["version"] for d in json.loads(listing.stdout)}
    pins = read_pins((copy / "constraints.txt").read_text())
    pins.update(read_pins((copy / "binder" / "requirements.txt").read_text()))
    differ, unpinned = pin_problems(installed, pins)
    print(f"simulate_binder: {len(installed)} packages installed; torch {installed.get('torch')}")
    if unpinned:
        print(f"simulate_binder: installed without a pin: {', '.join(unpinned)}")
    problems = [f"not at its pin: {line}" for line in differ]
    where = run(
        [python, "-c", "import companion, sys; print(companion.__file__)"],
        capture_output=True,
        text=True,
        cwd=env_dir,
    )
    if where.returncode != 0 or not Path(where.stdout.strip()).is_relative_to(copy):
        problems.append(
            f"companion is not the repository's, installed by postBuild: "
            f"{where.stdout.strip() or where.stderr.strip()[-300:]}"
        )
    return problems


def kernel_environment(env_dir: Path, home: Path) -> dict:
    """What a kernel on Binder sees: the environment first on PATH, its own HOME, and here
    no package index (the bootstrap cell must find companion installed)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def start_lab(env_dir: Path, copy: Path, home: Path) -> tuple[float, str | None]:
    """Start JupyterLab from the environment, wait for /lab, read the server's resident
    memory, stop it. Returns (MB, problem or None)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    cmd = [
        env_dir / "bin" / "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={copy}",
    ]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    environ = kernel_environment(env_dir, home)
    log = home / "lab.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(c) for c in cmd],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    problem, mb = None, float("nan")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/lab?token={token}", timeout=5
                ) as page:
                    if b"JupyterLab" not in page.read():
                        problem = "JupyterLab's /lab page is not JupyterLab"
                break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    problem = f"JupyterLab did not start:\n{log.read_text()[-2000:]}"
                    break
                time.sleep(0.5)
        time.sleep(1.0)
        mb = tree_rss_mb(server.pid, include_self=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return mb, problem


def measure_chapter(env_dir: Path, source: Path, work: Path, home: Path, args, cell_timeout):
    """Execute one chapter of the copy in a fresh process of the environment (its kernel is
    that process's only child), with the session's HOME, and return its row."""
    name = source.stem
    row_file, executed = work / f"{name}.json", work / f"{name}.ipynb"
    proc = subprocess.Popen(
        [
            str(env_dir / "bin" / "python"),
            __file__,
            "--one",
            str(source),
            "--row",
            str(row_file),
            "--executed",
            str(executed),
            "--cell-timeout",
            str(cell_timeout),
        ],
        cwd=source.parent,
        env=kernel_environment(env_dir, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    start = time.perf_counter()
    try:
        output, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # The kernel runs in a session of its own (jupyter_client starts it so): end it too.
        for pid in [proc.pid, *descendants(proc.pid, _children)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.communicate()
        return {
            "chapter": name,
            "seconds": time.perf_counter() - start,
            "error": f"more than the {args.timeout:.0f} s timeout",
        }
    if proc.returncode != 0 or not row_file.exists():
        return {
            "chapter": name,
            "seconds": time.perf_counter() - start,
            "error": f"the executing process exited with {proc.returncode}:\n{output[-3000:]}",
        }
    row = json.loads(row_file.read_text())
    kernel = row.get("kernel_python") or ""
    if row["error"] is None and not kernel.startswith(str(env_dir)):
        row["error"] = f"the kernel ran {kernel or 'an unknown Python'}, not the environment's"
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="chapters to run (file stems)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds a chapter may take (default 300)"
    )
    parser.add_argument(
        "--extra-index",
        choices=("auto", "keep", "strip"),
        default="auto",
        help="the index options of binder/requirements.txt: left out when unreachable "
        "(auto, the default), always kept, or always left out",
    )
    parser.add_argument("--no-cache", action="store_true", help="no pip cache, as on Binder")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--executed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cell-timeout", type=int, default=120, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # in the new environment: one chapter, one kernel
        row = execute_one(args.one, args.one.parent, args.executed, args.cell_timeout)
        args.row.write_text(json.dumps(row))
        return 0

    sys.path.insert(0, str(ROOT / "tests"))
    import yaml

    from hygiene import toc_files

    begin = time.perf_counter()
    python = find_python(runtime_version((ROOT / "binder" / "runtime.txt").read_text()))
    execute = yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute") or {}
    cell_timeout = int(execute.get("timeout", 30))
    unknown = set(args.only or ()) - {Path(entry).name for entry in toc_files()}
    if unknown:
        parser.error(f"--only: no such chapter in _toc.yml: {sorted(unknown)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        copy, env_dir, times = build_environment(work, python, args)
        problems = environment_problems(copy, env_dir)

        start = time.perf_counter()
        server_mb, problem = start_lab(env_dir, copy, work / "home")
        times["JupyterLab"] = time.perf_counter() - start
        if problem:
            problems.append(problem)

        runs = work / "runs"
        runs.mkdir(exist_ok=True)
        paths = [copy / f"{e}.ipynb" for e in toc_files(copy) if (copy / f"{e}.ipynb").exists()]
        if args.only:
            paths = [p for p in paths if p.stem in args.only]
        rows = []
        start = time.perf_counter()
        for path in paths:
            print(f"executing {path.stem} ...", end=" ", flush=True)
            row = measure_chapter(env_dir, path, runs, work / "home", args, cell_timeout)
            print(
                "FAILED" if row.get("error") else f"{row['seconds']:.1f} s, {peak_mb(row):.0f} MB",
                flush=True,
            )
            rows.append(row)
        times["chapters"] = time.perf_counter() - start

        print()
        print(format_table(rows))
        print(f"\nJupyterLab server alone: {server_mb:.0f} MB")
        print(
            f"chapters left open together, with the server (against {LIMIT_MB:.0f} MB; reported):"
        )
        for k in range(2, OPEN_TOGETHER + 1):
            found = open_together(rows, server_mb, k)
            print(
                f"  {k} open: {found['worst']:.0f} MB with {found['running']} running while "
                f"{', '.join(found['idle'])} keep their memory; {found['peaks']:.0f} MB "
                f"if all {k} peaked at once ({', '.join(found['peaks_of'])})"
            )
        times["total"] = time.perf_counter() - begin
        print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
        problems += chapter_problems(rows)
        for row in rows:
            if row.get("error"):
                print(f"\n{row['chapter']} failed:\n{row['error'][-3000:]}", file=sys.stderr)
        for line in problems:
            print("simulate_binder:", line)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
