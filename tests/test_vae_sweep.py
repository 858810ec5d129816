"""The learning-rate sweep of Chapter 5 (scripts/vae_sweep.py) and its committed results.

The script is re-run on its tiny setting (one epoch, two rates, two seeds, 300 images), so
that the command the chapter quotes keeps working; the committed results file must have
the structure the chapter reads, and its chosen rates must be the ones its own validation
numbers select (the rate is chosen on validation images, never on the test set).
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "companion" / "results" / "vae_sweep.json"


def _script():
    spec = importlib.util.spec_from_file_location("vae_sweep", ROOT / "scripts" / "vae_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def _restore_torch():
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


def _check_structure(results: dict, module) -> None:
    settings = results["settings"]
    assert set(results["estimators"]) == set(module.ESTIMATORS)
    for name, result in results["estimators"].items():
        assert result["train_kwargs"] == module.ESTIMATORS[name]
        assert set(result["validation"]) == {f"{r:g}" for r in settings["rates"]}
        for runs in result["validation"].values():
            assert [r["seed"] for r in runs] == settings["selection_seeds"]
        assert result["best_lr"] == module.best_rate(
            {float(lr): runs for lr, runs in result["validation"].items()}
        )
        assert [r["seed"] for r in result["test"]] == settings["final_seeds"]
        for run in result["test"]:
            assert math.isfinite(run["elbo"]) and len(run["curve"]) == settings["epochs"]


@pytest.mark.usefixtures("_restore_torch")
def test_tiny_sweep_runs_and_writes_the_results_file(tmp_path):
    module = _script()
    out = module.main(["--tiny", "--out", str(tmp_path / "sweep.json")])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["settings"]["epochs"] == 1 and results["settings"]["num_fit"] == 200
    _check_structure(results, module)


def test_committed_results_have_the_structure_the_chapter_reads():
    module = _script()
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    _check_structure(results, module)
    settings = results["settings"]
    assert results["command"] == "python scripts/vae_sweep.py"
    assert len(settings["selection_seeds"]) >= 3 and len(settings["final_seeds"]) >= 3
    assert settings["num_fit"] + settings["num_validation"] == 1497  # validation from training


def test_best_rate_never_picks_a_diverged_rate():
    module = _script()
    runs = {
        0.1: [{"elbo": -1.0}, {"elbo": None}],  # the best mean, but one run diverged
        0.01: [{"elbo": -5.0}, {"elbo": -6.0}],
    }
    assert module.best_rate(runs) == 0.01
