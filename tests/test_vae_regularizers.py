"""The KL-weight / warm-up / free-bits / IWAE sweep of Chapter 5 (scripts/vae_regularizers.py).

The script is re-run on its tiny setting (one epoch, one rate, two seeds, 300 images, small
k), so that the command the chapter quotes keeps working; the committed results file must
have the structure the chapter reads, and each variant's chosen setting must be the one its
own validation numbers select (chosen on validation images, never on the test set).
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "companion" / "results" / "vae_regularizers.json"


def _script():
    path = ROOT / "scripts" / "vae_regularizers.py"
    spec = importlib.util.spec_from_file_location("vae_regularizers", path)
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
    assert set(results["variants"]) == set(module.VARIANTS)
    for group, variants in results["variants"].items():
        assert set(variants) == set(module.VARIANTS[group])
        for name, result in variants.items():
            grid = module.VARIANTS[group][name]["grid"]
            selection = result["selection"]
            assert len(selection) == len(grid) * len(settings["rates"])
            for entry in selection:
                assert entry["train_kwargs"] in grid and entry["lr"] in settings["rates"]
                assert [r["seed"] for r in entry["runs"]] == settings["selection_seeds"]
            chosen = selection[module.best_setting(selection)]
            assert (result["train_kwargs"], result["lr"]) == (chosen["train_kwargs"], chosen["lr"])
            assert [r["seed"] for r in result["test"]] == settings["final_seeds"]
            for run in result["test"]:
                assert math.isfinite(run["elbo"]) and math.isfinite(run["log_p"])
                assert 0 <= run["active"] <= settings["model"]["latent_dim"] and run["kl"] >= 0
                if group == "iwae":
                    assert run["snr_pathwise"] > 0
                    assert ("snr_dreg" in run) == (
                        result["train_kwargs"].get("objective") == "iwae"
                    )


@pytest.mark.slow
@pytest.mark.usefixtures("_restore_torch")
def test_tiny_sweep_runs_and_writes_the_results_file(tmp_path):
    module = _script()
    out = module.main(["--tiny", "--out", str(tmp_path / "regularizers.json")])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["settings"]["epochs"] == 1 and results["settings"]["num_fit"] == 200
    _check_structure(results, module)


def test_committed_results_have_the_structure_the_chapter_reads():
    module = _script()
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    _check_structure(results, module)
    settings = results["settings"]
    assert results["command"] == "python scripts/vae_regularizers.py"
    assert len(settings["selection_seeds"]) >= 3 and len(settings["final_seeds"]) >= 5
    assert settings["num_fit"] + settings["num_validation"] == 1497  # validation from training


def test_best_setting_never_picks_a_diverged_setting():
    module = _script()
    selection = [
        {"runs": [{"log_p": -1.0}, {"log_p": None}]},  # the best mean, but one run diverged
        {"runs": [{"log_p": -5.0}, {"log_p": -6.0}]},
    ]
    assert module.best_setting(selection) == 1
