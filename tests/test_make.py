"""The build machinery: Makefile targets, the student edition's configuration, and the one
execution of each chapter (benchmarks/chapters.py) whose outputs the book build reuses."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_cache import get_cache

from hygiene import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import chapters
import check_cached_build
import check_pdf
import student_config

MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args, **kwargs):
    return subprocess.run([MAKE, *args], cwd=ROOT, capture_output=True, text=True, **kwargs)


@needs_make
def test_pdf_says_what_it_needs_when_tex_is_missing(tmp_path):
    # An empty PATH hides any TeX installation; STAMP= skips the environment setup.
    result = _make("-s", "pdf", "STAMP=", env={"PATH": str(tmp_path)})
    assert result.returncode != 0
    assert "make pdf needs LaTeX: latexmk and xelatex" in result.stdout
    assert "apt-get install latexmk texlive-xetex" in result.stdout


@needs_make
def test_help_lists_every_documented_target():
    result = _make("-s", "help")
    targets = (
        "book",
        "check",
        "test",
        "book-student",
        "pdf",
        "bench",
        "lab",
        "clean",
        "test-launch",
    )
    for target in targets:
        assert f"make {target} " in result.stdout


@needs_make
def test_make_test_executes_each_chapter_once_then_builds_from_the_cache():
    # A dry run prints the commands of make test and of the targets it calls, in order.
    lines = _make("-n", "test", "STAMP=").stdout.splitlines()

    def index(text):
        found = [i for i, line in enumerate(lines) if text in line]
        assert len(found) == 1, f"{text!r} in {len(found)} commands of make test, not once"
        return found[0]

    builds = [
        i for i, line in enumerate(lines) if "jupyter-book build" in line and "pdflatex" not in line
    ]
    assert len(builds) == 2 and all("--all" in lines[i] for i in builds)
    # The PDF (when TeX is installed) comes last, from the same cache.
    pdf = [i for i, line in enumerate(lines) if "--builder pdflatex" in line]
    assert all(i > max(builds) for i in pdf)
    check = index("ruff format --check")
    bench = index("benchmarks/chapters.py")
    guard = index("scripts/check_cached_build.py")
    site = index("pytest tests/site")
    assert check < bench < min(builds) and max(builds) < guard < site
    assert not [line for line in lines if "nbval" in line]


def test_make_check_runs_no_notebook(pytestconfig):
    # pytest (make check) collects companion/ and tests/ only, with no notebook plugin.
    assert pytestconfig.getini("testpaths") == ["companion", "tests"]
    assert not [option for option in pytestconfig.getini("addopts") if "nbval" in option]


# ------------------------------------------------------------ the student edition


def test_student_config_removes_solutions_and_shares_the_cache():
    book = yaml.safe_load((ROOT / "_config.yml").read_text())
    before = json.dumps(book, sort_keys=True)
    student = student_config.student_config(book)
    assert json.dumps(book, sort_keys=True) == before, "the book's configuration was changed"
    assert student["title"] == f"{book['title']} (student edition)"
    assert student["sphinx"]["config"]["student_edition"] is True
    # its sources are the student notebooks: each page's download is one of them
    assert student["sphinx"]["config"]["html_copy_source"] is True
    assert student["launch_buttons"] == {}
    assert student["execute"]["cache"] == str(ROOT / "_build" / ".jupyter_cache")
    assert student["execute"]["execute_notebooks"] == "off"  # outputs come with the notebooks
    extensions = student["sphinx"]["local_extensions"]
    assert extensions.keys() == book["sphinx"]["local_extensions"].keys()
    for name, path in extensions.items():
        assert (ROOT / "_ext" / f"{name}.py").exists() and path == str(ROOT / "_ext")
    # the sources live elsewhere: every path to the repository's files is absolute and exists
    settings = student["sphinx"]["config"]
    for path in (
        student["bibtex_bibfiles"]
        + settings["html_static_path"]
        + settings["latex_additional_files"]
    ):
        assert Path(path).is_absolute() and Path(path).is_relative_to(ROOT), path
        assert Path(path).exists() or Path(path).name == "_vendor", path


def test_student_config_writes_a_valid_jupyter_book_config(tmp_path):
    from jupyter_book.config import validate_yaml

    output = tmp_path / "student.yml"
    assert student_config.main([str(output)]) == 0
    written = yaml.safe_load(output.read_text())
    assert written == student_config.student_config(
        yaml.safe_load((ROOT / "_config.yml").read_text())
    )
    validate_yaml(written, raise_on_errors=True)


# ------------------------------------------------------- one execution per chapter


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


def _cached(cache_path, path):
    try:
        return get_cache(cache_path).match_cache_notebook(nbformat.read(path, as_version=4))
    except KeyError:
        return None


@pytest.mark.slow
def test_bench_fails_loudly_on_an_error_and_caches_nothing(tmp_path, capfd):
    bad = _notebook(tmp_path / "bad.ipynb", "x = 1", "assert x == 2, 'x is not two'", "print(x)")
    cache_path = tmp_path / "cache"
    options = [
        "--cache",
        str(cache_path),
        "--skip-engine",
        "--json",
        str(tmp_path / "b.json"),
        "--checks-dir",
        str(tmp_path / "checks"),
    ]
    code = chapters.main(["--notebooks", str(bad), *options])
    _, err = capfd.readouterr()
    assert code == 1
    # The failing cell and its traceback are shown, and the failure is named at the end.
    assert "assert x == 2, 'x is not two'" in err and "AssertionError: x is not two" in err
    assert "failed (tracebacks above): bad" in err
    assert _cached(cache_path, bad) is None
    (row,) = json.loads((tmp_path / "b.json").read_text())["chapters"]
    assert "AssertionError: x is not two" in row["error"] and row["peak_mb"] > 0


def test_store_caches_an_executed_chapter_where_the_build_finds_it(tmp_path):
    source = _notebook(tmp_path / "chapter.ipynb", "x = 21", "print(2 * x)")
    executed = nbformat.read(source, as_version=4)  # as if executed: outputs, counts
    executed.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    executed.cells[2].execution_count = 2
    nbformat.write(executed, tmp_path / "executed.ipynb")
    pk = chapters.store(tmp_path / "cache", source, tmp_path / "executed.ipynb", 1.25)
    cache = get_cache(tmp_path / "cache")
    record = _cached(tmp_path / "cache", source)  # the lookup myst-nb makes when it builds
    assert record.pk == pk and record.data["execution_seconds"] == 1.25
    _, merged = cache.merge_match_into_notebook(nbformat.read(source, as_version=4))
    assert merged.cells[2].outputs[0]["text"] == "42\n"
    # Executing it again replaces the record instead of adding another.
    chapters.store(tmp_path / "cache", source, tmp_path / "executed.ipynb", 1.5)
    assert len(cache.list_cache_records()) == 1


def test_store_refuses_a_chapter_edited_while_it_ran(tmp_path):
    source = _notebook(tmp_path / "chapter.ipynb", "x = 1")
    executed = tmp_path / "executed.ipynb"
    shutil.copy(source, executed)
    assert chapters.store(tmp_path / "cache", source, executed, 1.0) > 0
    _notebook(source, "x = 2")  # the code changed: the build would not find it cached
    with pytest.raises(RuntimeError, match="does not match what was executed"):
        chapters.store(tmp_path / "cache", source, executed, 1.0)


# ------------------------------------------------- the build executed nothing


BOOK = ["book/01_a.ipynb", "book/02_b.ipynb"]


def test_a_build_that_took_every_chapter_from_the_cache_passes(tmp_path):
    log = "\n".join(
        [
            "Using jupyter-cache at: /x/_build/.jupyter_cache",
            f"\x1b[01m{tmp_path}/book/01_a.ipynb: Using cached notebook: ID=3\x1b[39;49;00m",
            "book/02_b.ipynb: Using cached notebook: ID=4 [mystnb]",
        ]
    )
    assert check_cached_build.problems(log, [tmp_path / p for p in BOOK], root=tmp_path) == []


def test_a_build_that_executed_or_skipped_a_chapter_fails(tmp_path):
    log = "\n".join(
        [
            f"{tmp_path}/book/01_a.ipynb: Executing notebook using local CWD [mystnb]",
            f"{tmp_path}/book/01_a.ipynb: Executed notebook in 2.31 seconds [mystnb]",
            f"{tmp_path}/book/01_a.ipynb: Cached executed notebook: ID=5 [mystnb]",
        ]
    )
    assert check_cached_build.problems(log, [tmp_path / p for p in BOOK], root=tmp_path) == [
        "executed book/01_a.ipynb",
        "did not take book/02_b.ipynb from the cache",
    ]
    failed = f"{tmp_path}/book/02_b.ipynb: WARNING: Executing notebook failed: CellExecutionError"
    assert check_cached_build.problems(failed, [tmp_path / BOOK[1]], root=tmp_path) == [
        "executed book/02_b.ipynb"
    ]


def test_the_guard_reads_logs_and_names_the_problem(tmp_path, capsys):
    log = tmp_path / "book.log"
    log.write_text("nothing was read\n")
    assert check_cached_build.main([str(log)]) == 1
    err = capsys.readouterr().err
    assert "the build did not take book/" in err and "benchmarks/chapters.py" in err


@pytest.mark.slow
@needs_make
def test_make_lab_starts_a_server_as_any_user_without_a_browser(tmp_path):
    """make lab on a chosen port, without a browser; as root (this container, a cloud VM) it
    must add --allow-root, or JupyterLab refuses to start. The server must answer on /api."""
    with socket.socket() as sock:  # a free port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [
            MAKE,
            "-s",
            "lab",
            "STAMP=",
            f"LAB_PORT={port}",
            "LAB_BROWSER=no",
            "LAB_ARGS=--ServerApp.ip=127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as r:
                    answer = r.read().decode()
            except OSError:
                time.sleep(0.5)
        if answer is None:
            os.killpg(proc.pid, signal.SIGTERM)
            output = proc.communicate(timeout=30)[0].decode(errors="replace")
            pytest.fail(f"make lab did not answer on port {port}:\n{output[-2000:]}")
        assert '"version"' in answer
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


GOOD_LOG = "Output written on gradients-through-randomness.pdf (200 pages).\n"


def _toc(titles):
    return "".join(
        f"\\contentsline {{chapter}}{{\\numberline {{{i}}}{t}}}{{{i}}}{{chapter.{i}}}%\n"
        for i, t in enumerate(titles, 1)
    )


def test_check_pdf_passes_a_complete_pdf_and_reads_sphinx_hyphens():
    titles = check_pdf.chapter_titles()
    assert titles[0] == "Monte Carlo expectations"
    toc = _toc(t.replace("-", r"\sphinxhyphen {}") for t in titles)
    assert check_pdf.pdf_problems(GOOD_LOG, toc, titles) == []


@pytest.mark.parametrize(
    ("log", "drop", "exists", "expected"),
    [
        ("", False, True, "no gradients-through-randomness.pdf was written"),
        (GOOD_LOG, False, False, "no gradients-through-randomness.pdf was written"),
        (GOOD_LOG + "! LaTeX Error: File `bbm.sty' not found.\n", False, True, "bbm.sty"),
        (GOOD_LOG + "! Argument of \\Hy@tempa has an extra }.\n", False, True, "Hy@tempa"),
        (
            GOOD_LOG + "Missing character: There is no ℓ (U+2113) in font DejaVu Sans Mono\n",
            False,
            True,
            "LaTeX font: Missing character: There is no ℓ",
        ),
        (GOOD_LOG, True, True, "chapter not in the PDF: Monte Carlo expectations"),
        (
            GOOD_LOG + "LaTeX Warning: Hyper reference `book/02_gradients:ex-grad-bernoulli' on "
            "page 17\n5 undefined on input line 13386.\n",
            False,
            True,
            "unresolved reference: book/02_gradients:ex-grad-bernoulli",
        ),
    ],
)
def test_check_pdf_catches_each_kind_of_failure(log, drop, exists, expected):
    """Each failure seen while making the PDF work (a missing package, a citation in a
    caption, a glyph the font lacks, a chapter left out) is reported."""
    titles = check_pdf.chapter_titles()
    toc = _toc(titles[1:] if drop else titles)
    problems = check_pdf.pdf_problems(log, toc, titles, exists)
    assert any(expected in p for p in problems), problems
