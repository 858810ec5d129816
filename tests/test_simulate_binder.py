"""The pure parts of scripts/simulate_binder.py (make test-launch runs the simulation itself):
the requirements rewriting, the pins check, and the table and thresholds, each shown failing
on an injected measurement."""

import importlib.util
import math

import pytest

from hygiene import ROOT

_SPEC = importlib.util.spec_from_file_location(
    "simulate_binder", ROOT / "scripts" / "simulate_binder.py"
)
sb = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sb)

CPU = "https://download.pytorch.org/whl/cpu"


def row(chapter, peak, error=None, seconds=5.0, rusage=None):
    return {
        "chapter": chapter,
        "seconds": seconds,
        "tree_peak_mb": peak,
        "rusage_peak_mb": peak if rusage is None else rusage,
        "kept_mb": peak / 2,
        "error": error,
    }


def test_the_unreachable_index_is_left_out_and_nothing_else_changes():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert sb.index_urls(text) == [CPU]
    new, removed = sb.strip_indexes(text, {CPU})
    assert removed == [f"--extra-index-url {CPU}"]
    assert sb.index_urls(new) == []
    # The constraints and every pin are still there, line for line.
    assert "-c ../constraints.txt" in new.splitlines()
    assert sb.read_pins(new) == sb.read_pins(text)
    assert len(new.splitlines()) == len(text.splitlines())


def test_a_reachable_index_is_kept_and_option_spellings_are_recognized():
    text = f"--extra-index-url={CPU}\n-i https://pypi.org/simple\n--find-links /w  # local\nx==1\n"
    assert sb.index_urls(text) == [CPU, "https://pypi.org/simple", "/w"]
    assert sb.strip_indexes(text, set()) == (text, [])
    new, removed = sb.strip_indexes(text, {"https://pypi.org/simple"})
    assert removed == ["-i https://pypi.org/simple"]
    assert sb.index_urls(new) == [CPU, "/w"]


def test_pins_are_compared_by_normalized_name_and_public_version():
    pins = sb.read_pins("-c x.txt\ntorch==2.13.0\nJinja2==3.1.6  # a comment\nnumpy==2.4.6\n")
    assert pins == {"torch": "2.13.0", "jinja2": "3.1.6", "numpy": "2.4.6"}
    installed = {"torch": "2.13.0+cpu", "jinja2": "3.1.6", "NumPy": "2.4.6", "pip": "23.2.1"}
    assert sb.pin_problems(installed, pins) == ([], [])
    # Injected drift: a transitive package at another version, and one nothing pins.
    differ, unpinned = sb.pin_problems({**installed, "Jinja2": "3.1.5", "extra_pkg": "1"}, pins)
    assert differ == ["jinja2 3.1.5 installed, pinned 3.1.6"]
    assert unpinned == ["extra-pkg"]


def test_runtime_version():
    assert sb.runtime_version((ROOT / "binder" / "runtime.txt").read_text()) == "3.11"
    assert sb.runtime_version("python-3.12.4\n") == "3.12"
    with pytest.raises(ValueError, match=r"runtime\.txt"):
        sb.runtime_version("3.11")


def test_chapters_within_the_limit_pass():
    rows = [row("a", 400.0), row("b", 900.0, rusage=950.0), row("c", 2047.0)]
    assert sb.chapter_problems(rows) == []
    assert sb.peak_mb(rows[1]) == 950.0  # the larger reading counts


def test_an_injected_peak_over_two_gigabytes_fails():
    rows = [row("a", 400.0), row("big", 1000.0, rusage=2100.0)]
    problems = sb.chapter_problems(rows)
    assert problems == ["big: peak 2100 MB > Binder's 2048 MB"]
    assert sb.LIMIT_MB == 2048.0
    table = sb.format_table(rows)
    assert "OVER" in table.splitlines()[-1] and table.splitlines()[-2].endswith("ok")


def test_an_injected_failing_chapter_or_a_missing_measurement_fails():
    rows = [
        row("broken", 300.0, error="CellExecutionError: ...\nZeroDivisionError: division by zero"),
        {"chapter": "slow", "seconds": 301.0, "error": "more than the 300 s timeout"},
        {"chapter": "blind", "seconds": 3.0, "error": None},
    ]
    problems = sb.chapter_problems(rows)
    assert problems == [
        "broken: ZeroDivisionError: division by zero",
        "slow: more than the 300 s timeout",
        "blind: its memory was not measured",
    ]
    assert math.isnan(sb.peak_mb(rows[2]))
    lines = sb.format_table(rows).splitlines()
    assert [line.split()[-1] for line in lines[2:]] == ["FAILED", "FAILED", "ok"]


def test_chapters_open_together_one_running_while_the_others_keep_their_memory():
    rows = [row("a", 400.0), row("b", 900.0), row("c", 600.0), row("d", 700.0)]
    rows[0]["kept_anon_mb"] = 180.0  # the anonymous part counts where it was read
    rows.append({"chapter": "e", "seconds": 1.0, "error": "x"})  # no measurement: left out
    assert sb.kept_mb(rows[0]) == 180.0 and sb.kept_mb(rows[1]) == 450.0
    found = sb.open_together(rows, server_mb=100.0, k=3)
    assert found["peaks_of"] == ["b", "d", "c"]
    assert found["peaks"] == 900.0 + 700.0 + 600.0 + 100.0
    # b running at its peak while d and c (the largest kept) stay open: the worst case.
    assert (found["running"], found["idle"]) == ("b", ["d", "c"])
    assert found["worst"] == 900.0 + 350.0 + 300.0 + 100.0
    assert sb.open_together(rows, 100.0, k=2)["worst"] == 900.0 + 350.0 + 100.0
    # An injected pair that overflows Binder's 2 GB together, though each fits alone.
    big = [row("x", 1500.0), row("y", 1200.0)]
    assert sb.chapter_problems(big) == []
    assert sb.open_together(big, 80.0, k=2)["worst"] > sb.LIMIT_MB


def test_descendants_walks_the_whole_process_tree():
    tree = {1: [2, 3], 2: [4], 3: [], 4: [5], 5: []}
    assert sorted(sb.descendants(1, lambda pid: tree.get(pid, []))) == [2, 3, 4, 5]
    assert sb.descendants(3, lambda pid: tree.get(pid, [])) == []


def test_the_copy_leaves_out_what_gitignore_names():
    ignore = sb.ignored([".git", ".venv/", "*.egg-info/", "# comment", "!keep", "a/b"])
    entries = [".git", ".venv", "companion.egg-info", "book", "keep", "a", "README.md"]
    assert ignore("any", entries) == {".git", ".venv", "companion.egg-info"}
