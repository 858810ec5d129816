"""Notebook hygiene: the repository obeys the rules, and each rule catches its violation."""

import copy
import json
import shutil

import pytest
import yaml

from hygiene import (
    ROOT,
    bootstrap_source,
    companion_version,
    load_config,
    notebook_problems,
    toc_problems,
)

NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    assert notebook_problems(path, load_config()) == []


def test_toc_and_book_folder_agree():
    assert toc_problems() == []


# ------------------------------------------------ each rule catches its violation


@pytest.fixture
def good_notebook():
    return json.loads(NOTEBOOKS[0].read_text())


def _write(tmp_path, nb, name="chapter.ipynb"):
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def test_a_clean_copy_passes(tmp_path, good_notebook):
    assert notebook_problems(_write(tmp_path, good_notebook), load_config()) == []


def test_stored_outputs_are_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][1]
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["42\n"]}]
    cell["execution_count"] = 3
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert any("has stored outputs" in p for p in problems)
    assert any("has an execution count" in p for p in problems)


def test_a_wrong_bootstrap_url_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    config = load_config()
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][0]
    cell["source"] = bootstrap_source(config).replace(
        config["repository"]["url"], "https://github.com/someone-else/fork"
    )
    problems = notebook_problems(_write(tmp_path, nb), config)
    assert problems == [
        (
            f"chapter.ipynb: bootstrap installs from https://github.com/someone-else/fork,"
            f" but _config.yml says {config['repository']['url']}"
        )
    ]


def test_a_missing_bootstrap_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    first = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"][0]
    del nb["cells"][first]
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert any("not the bootstrap cell" in p for p in problems)


def test_a_missing_seed_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = text.replace("seed_everything(", "print(")
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert any("seed_everything" in p for p in problems)


def test_a_missing_false_alarm_budget_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = text.replace("start_chapter(", "print(")
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert any("start_chapter" in p for p in problems)


def test_a_wrong_kernel_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    nb["metadata"]["kernelspec"]["name"] = "julia-1.9"
    assert any("kernelspec" in p for p in notebook_problems(_write(tmp_path, nb), load_config()))


def _copy_book(tmp_path):
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    return tmp_path


def test_a_notebook_missing_from_the_toc_is_caught(tmp_path):
    root = _copy_book(tmp_path)
    assert toc_problems(root) == []
    shutil.copy(NOTEBOOKS[0], root / "book" / "stray.ipynb")
    assert toc_problems(root) == ["book/stray.ipynb is not listed in _toc.yml"]


def test_a_toc_entry_without_a_file_is_caught(tmp_path):
    root = _copy_book(tmp_path)
    toc = (root / "_toc.yml").read_text()
    (root / "_toc.yml").write_text(
        toc.replace("- file: book/notation", "- file: book/notation\n      - file: book/ghost")
    )
    assert toc_problems(root) == ["_toc.yml lists book/ghost, which has no .ipynb or .md file"]


def test_an_exercise_without_a_solution_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    nb["cells"].append(
        {
            "cell_type": "markdown",
            "id": "orphan-exercise",
            "metadata": {},
            "source": (
                "```{exercise-start}\n:label: ex-orphan\n```\nProve it.\n```{exercise-end}\n```"
            ),
        }
    )
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert problems == ["chapter.ipynb: exercise ex-orphan has no solution"]


def test_a_bootstrap_needing_another_version_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    config = load_config()
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][0]
    cell["source"] = bootstrap_source(config).replace(
        f'NEEDS = "{companion_version()}"', 'NEEDS = "0.0.1"'
    )
    problems = notebook_problems(_write(tmp_path, nb), config)
    assert problems == [
        (
            f"chapter.ipynb: bootstrap needs companion 0.0.1, but the package is "
            f"{companion_version()}"
        )
    ]


def test_a_bootstrap_installing_from_another_branch_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    config = load_config()
    branch = config["repository"]["branch"]
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][0]
    cell["source"] = bootstrap_source(config).replace(f"@{branch}", "@v0.1.0")
    problems = notebook_problems(_write(tmp_path, nb), config)
    assert problems == [
        f"chapter.ipynb: bootstrap installs from branch v0.1.0, but _config.yml publishes {branch}"
    ]


def test_a_visible_bootstrap_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    [c for c in nb["cells"] if c["cell_type"] == "code"][0]["metadata"]["tags"] = []
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert problems == ["chapter.ipynb: the bootstrap cell is not tagged hide-cell"]


def test_a_chapter_without_objectives_summary_or_exercises_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = (
                text.replace("## Overview", "## Intro")
                .replace("## Summary", "## Recap")
                .replace("## Exercises", "## Problems")
            )
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert problems == [
        "chapter.ipynb: no Overview with learning objectives and prerequisites before the code",
        "chapter.ipynb: no Summary section",
        "chapter.ipynb: no Exercises section",
    ]


def test_the_release_version_agrees_everywhere():
    """The notebooks need <version>; the package and the citation file say the same."""
    version = companion_version()
    import companion

    assert companion.__version__ == version
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(citation["version"]) == version


def test_a_cell_without_an_id_is_caught(tmp_path, good_notebook):
    nb = copy.deepcopy(good_notebook)
    del nb["cells"][3]["id"]
    problems = notebook_problems(_write(tmp_path, nb), load_config())
    assert problems == ["chapter.ipynb: 1 cell(s) without an id (nbformat 4.5)"]
