"""The environments agree: Binder pins what requirements.txt pins, and torch stays CPU-sized."""

import re
import subprocess
import sys

import pytest

from hygiene import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def pins(path):
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_every_direct_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-c ")):
            assert PIN.match(line), f"requirements.txt: {line!r} is not pinned with =="


def test_binder_pins_match_requirements():
    book, binder = pins(ROOT / "requirements.txt"), pins(ROOT / "binder" / "requirements.txt")
    assert binder, "binder/requirements.txt pins nothing"
    mismatched = {
        name: (version, book.get(name))
        for name, version in binder.items()
        if book.get(name) != version
    }
    assert mismatched == {}, f"binder vs requirements.txt: {mismatched}"


def test_binder_follows_the_constraints_too(tmp_path):
    """Binder installs binder/requirements.txt, which must pull the book's constraints.txt,
    so that transitive packages get the same pins as the book's environment: pip resolves
    the reference against the file's own folder, as repo2docker runs it."""
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "-c ../constraints.txt" in lines
    # pip reads the file with its constraint (offline: --dry-run --no-index --no-deps fails
    # only on finding packages, never on a missing constraints file).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-deps",
            "--quiet",
            "--report",
            str(tmp_path / "r.json"),
            "-r",
            str(ROOT / "binder" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
    )
    assert "constraints.txt" not in result.stderr or "No such file" not in result.stderr


def test_torch_is_the_cpu_build_everywhere():
    assert pins(ROOT / "requirements.txt")["torch"] == "2.13.0"
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in binder
    for path in (
        ROOT / "requirements.txt",
        ROOT / "binder" / "requirements.txt",
        ROOT / "constraints.txt",
    ):
        lines = [line.split("#")[0] for line in path.read_text().lower().splitlines()]
        text = "\n".join(lines)
        for name in ("torchvision", "torchaudio", "nvidia-"):
            assert name not in text, f"{path.name} pins {name}"


def _normalized(found):
    return {re.sub(r"[-_.]+", "-", name): version for name, version in found.items()}


def test_constraints_agree_with_requirements():
    """constraints.txt pins what requirements.txt pins (torch aside) at the same versions."""
    book = _normalized(pins(ROOT / "requirements.txt"))
    constraints = _normalized(pins(ROOT / "constraints.txt"))
    missing = sorted(set(book) - set(constraints) - {"torch"})
    assert missing == [], f"pinned in requirements.txt but not in constraints.txt: {missing}"
    mismatched = {
        name: (book[name], constraints[name])
        for name in book
        if name in constraints and book[name] != constraints[name]
    }
    assert mismatched == {}, f"requirements.txt vs constraints.txt: {mismatched}"


def test_the_linter_is_the_pinned_one():
    """make check runs the ruff that requirements.txt pins (its rules are in pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = pins(ROOT / "requirements.txt")["ruff"]
    try:
        installed = version("ruff")
    except PackageNotFoundError:
        pytest.skip("ruff is not installed (make install installs it)")
    assert installed == pinned, f"ruff {installed} is installed, requirements.txt pins {pinned}"
