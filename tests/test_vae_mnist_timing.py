"""The MNIST epoch timing that Chapter 5's MNIST section prints (scripts/vae_mnist_timing.py).

The script runs on its tiny setting (600 synthetic images, one epoch), so that the command
the chapter quotes keeps working; the committed results file must have been written by the
default setting, with the model and ``train`` call of the chapter's MNIST snippet.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "companion" / "results" / "vae_mnist_timing.json"
KEYS = {"settings", "epoch_seconds", "iwae_seconds", "peak_memory_mib", "load_average"}


def _script():
    path = ROOT / "scripts" / "vae_mnist_timing.py"
    spec = importlib.util.spec_from_file_location("vae_mnist_timing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def _restore_torch():
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


@pytest.mark.slow
@pytest.mark.usefixtures("_restore_torch")
def test_tiny_run_writes_the_structure_the_chapter_reads(tmp_path):
    out = tmp_path / "timing.json"
    _script().main(["--tiny", "--out", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result) >= KEYS
    assert len(result["epoch_seconds"]) == 1 and result["epoch_seconds"][0] > 0
    assert result["settings"]["dtype"] == "float32" and result["settings"]["threads"] == 2


def test_stored_results_come_from_the_full_setting():
    result = json.loads(RESULTS.read_text(encoding="utf-8"))
    assert set(result) >= KEYS
    settings = result["settings"]
    assert (settings["num_train"], settings["num_test"]) == (60_000, 10_000)
    assert settings["model"] == {"data_dim": 784, "latent_dim": 50, "hidden_dim": 200}
    assert settings["dtype"] == "float32" and settings["threads"] == 2
    assert (settings["batch_size"], settings["lr"], settings["iwae_k"]) == (100, 1e-3, 50)
    assert all(s > 0 for s in result["epoch_seconds"]) and result["iwae_seconds"] > 0
    assert result["command"] == "python scripts/vae_mnist_timing.py"
