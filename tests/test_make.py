"""Makefile targets that can be checked without building anything."""

import shutil
import subprocess

import pytest

from hygiene import ROOT

MAKE = shutil.which("make")


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_pdf_says_what_it_needs_when_tex_is_missing(tmp_path):
    # An empty PATH hides any TeX installation; STAMP= skips the environment setup.
    result = subprocess.run([MAKE, "-s", "pdf", "STAMP="], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": str(tmp_path)})
    assert result.returncode != 0
    assert "make pdf needs LaTeX: latexmk and xelatex" in result.stdout
    assert "apt-get install latexmk texlive-xetex" in result.stdout


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_help_lists_every_documented_target():
    result = subprocess.run([MAKE, "-s", "help"], cwd=ROOT, capture_output=True, text=True)
    for target in ("book", "test", "book-student", "pdf", "bench", "lab", "clean"):
        assert f"make {target}" in result.stdout
