"""The distributions of companion: complete, current metadata, the right files, and a wheel
that works once installed (a smoke test: three modules' doctests; ``make check`` runs
them all against the source).

The wheel and the source distribution are built from a copy of the files the package needs
(so the working tree is not touched), offline, with the environment's setuptools. The wheel
is installed into a folder of its own, and a fresh interpreter, with that folder first on its
path, imports companion from there and runs doctests of the installed modules.
"""

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import tomllib

from hygiene import ROOT

PACKAGE_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "companion").glob("*.py"))


def _build(tmp_path, kind):
    src = tmp_path / "src"
    if not src.exists():
        shutil.copytree(
            ROOT / "companion", src / "companion", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in ("pyproject.toml", "MANIFEST.in", "LICENSE", "README.md"):
            shutil.copy(ROOT / name, src / name)
    out = tmp_path / kind
    out.mkdir()
    code = f"import sys; from setuptools import build_meta as b; print(b.build_{kind}(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("wheel"), "wheel")


def test_the_wheel_holds_the_package_and_current_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = email.message_from_string(
            zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    assert set(PACKAGE_FILES) <= names
    assert "companion/results/vae_sweep.json" in names  # read by the VAE chapter
    assert not any(n.startswith(("tests/", "book/", "benchmarks/")) for n in names)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["License-Expression"] == "MIT"  # an SPDX expression, not a table
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert meta.get_all("Classifier") == project["classifiers"]
    assert meta.get_all("Provides-Extra") == ["test"]
    requires = meta.get_all("Requires-Dist")
    assert [r for r in requires if "extra ==" not in r] == project["dependencies"]
    assert any(r.startswith("pytest") and 'extra == "test"' in r for r in requires)
    # The package's own description, not the book's README (which is about `make book`).
    assert meta.get_payload().startswith("# companion")
    assert "make book" not in meta.get_payload()


def test_the_sdist_holds_the_package_and_no_orphaned_tests(tmp_path):
    sdist = _build(tmp_path, "sdist")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert set(PACKAGE_FILES) <= names
    assert {"pyproject.toml", "LICENSE", "companion/README.md"} <= names
    # Tests that import conftest.py and hygiene.py must not ship without them: none ship.
    assert not any(n.startswith("tests/") for n in names), sorted(names)


@pytest.mark.slow
def test_the_installed_wheel_imports_and_passes_its_doctests(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import companion; print(companion.__file__, companion.__version__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(target)), where  # the installed copy, not the repository's
    doctests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--doctest-modules",
            "--pyargs",
            "companion.montecarlo",
            "companion.estimators",
            "companion.checks",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert doctests.returncode == 0, doctests.stdout[-3000:]
