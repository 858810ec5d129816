"""The learning-rate sweep behind Chapter 5's comparison of gradient estimators.

Each estimator (score function, score function with the leave-one-out baseline, pathwise,
sticking the landing) trains the chapter's VAE (L = 8, H = 128, S = 2 draws per image,
batches of 100, Adam, float64) at each learning rate of a small grid, with several seeds.
The rate is chosen WITHOUT the test set: the training images are split once into a fitting
part and a validation part, and each estimator gets the rate with the best mean validation
ELBO over the selection seeds. Then every estimator is trained at its chosen rate on all the
training images with fresh seeds and scored on the test images: the numbers and learning
curves the chapter plots, and against which it checks its own live runs.

Cost is equal per step: every estimator evaluates the decoder S times per image per step,
with the same batches, epochs and S.

Usage (the committed results file was written by the default settings)::

    python scripts/vae_sweep.py                      # writes companion/results/vae_sweep.json
    python scripts/vae_sweep.py --tiny --out x.json  # seconds: the test's setting

The ELBO reported for a trained model is ``model.elbo(x, num_particles=EVAL_PARTICLES)``
averaged over the images, x binarized once with ``TEST_BINARIZATION_SEED``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from companion.data import binarize, load_digits
from companion.seeding import SEED_OFFSET_VARIABLE, seed_everything
from companion.training import TEST_BINARIZATION_SEED, train
from companion.vae import VAE

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "companion" / "results" / "vae_sweep.json"
ESTIMATORS = {
    "score function": {"estimator": "score_function"},
    "score function + LOO": {"estimator": "score_function", "baseline": "loo"},
    "pathwise": {"estimator": "pathwise"},
    "sticking the landing": {"estimator": "stl"},
}
"""The chapter's names for the estimators, and their arguments to ``train``."""
MODEL = {"data_dim": 64, "latent_dim": 8, "hidden_dim": 128}
SPLIT_SEED = 1  # seeds the permutation that splits the training images into fit / validation
EVAL_PARTICLES = 20  # draws of z per image when a trained model is scored


def split_training(train_x: torch.Tensor, num_val: int, seed: int = SPLIT_SEED):
    """(fit, validation): a fixed random split of the training images; the test set is untouched."""
    perm = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))
    return train_x[perm[num_val:]], train_x[perm[:num_val]]


def score(model: VAE, grey: torch.Tensor) -> float:
    """Mean ELBO (EVAL_PARTICLES draws of z) over ``grey`` binarized once, in nats per image."""
    x = binarize(grey, seed=TEST_BINARIZATION_SEED)
    with torch.no_grad():
        return model.elbo(x, num_particles=EVAL_PARTICLES).mean().item()


def run(kwargs: dict, lr: float, seed: int, fit_x, eval_x, epochs: int) -> dict:
    """Train one model from seed ``seed``; its learning curves and final ELBO on ``eval_x``.

    A run whose ELBO becomes non-finite (a diverged run) is recorded with ``elbo`` None.
    """
    seed_everything(seed)
    model = VAE(**MODEL)
    try:
        history = train(
            model,
            fit_x,
            eval_x,
            epochs=epochs,
            batch_size=100,
            lr=lr,
            num_particles=2,
            progress=False,
            **kwargs,
        )
        final = score(model, eval_x)
    except ValueError:  # History refuses non-finite curves: the run diverged
        return {"seed": seed, "elbo": None, "curve": None, "train_curve": None, "seconds": None}
    return {
        "seed": seed,
        "elbo": round(final, 4) if math.isfinite(final) else None,
        "curve": [round(v, 3) for v in history.test_elbo],
        "train_curve": [round(v, 3) for v in history.train_elbo],
        "seconds": round(sum(history.seconds), 2),
    }


def best_rate(sweep: dict) -> float:
    """The rate with the highest mean validation ELBO; a rate with a diverged run never wins."""

    def mean(runs):
        values = [r["elbo"] for r in runs]
        return -math.inf if None in values else sum(values) / len(values)

    return float(max(sweep, key=lambda lr: mean(sweep[lr])))


def sweep(
    *,
    rates,
    seeds: int,
    final_seeds: int,
    epochs: int,
    num_val: int,
    num_train: int | None = None,
    estimators=tuple(ESTIMATORS),
    log=print,
) -> dict:
    """Run the whole protocol and return the results as a JSON-ready dict."""
    torch.set_default_dtype(torch.float64)
    data = load_digits(dtype=torch.float64)
    train_x = data.train_x if num_train is None else data.train_x[:num_train]
    test_x = data.test_x
    fit_x, val_x = split_training(train_x, num_val)
    began = time.perf_counter()
    results = {}
    for name in estimators:
        kwargs = ESTIMATORS[name]
        grid = {}
        for lr in rates:
            grid[lr] = [run(kwargs, lr, s, fit_x, val_x, epochs) for s in range(seeds)]
            log(f"{name:<22} lr={lr:<7g} validation ELBO {[r['elbo'] for r in grid[lr]]}")
        chosen = best_rate(grid)
        final = [run(kwargs, chosen, 1000 + s, train_x, test_x, epochs) for s in range(final_seeds)]
        log(f"{name:<22} chosen lr={chosen:g}: test ELBO {[r['elbo'] for r in final]}")
        results[name] = {
            "train_kwargs": kwargs,
            "validation": {
                f"{lr:g}": [
                    {"seed": r["seed"], "elbo": r["elbo"], "curve": r["curve"]} for r in grid[lr]
                ]
                for lr in rates
            },
            "best_lr": chosen,
            "test": final,
        }
    return {
        "command": "python " + " ".join(["scripts/vae_sweep.py", *sys.argv[1:]]),
        "settings": {
            "model": MODEL,
            "rates": list(rates),
            "selection_seeds": list(range(seeds)),
            "final_seeds": [1000 + s for s in range(final_seeds)],
            "epochs": epochs,
            "batch_size": 100,
            "num_particles": 2,
            "num_fit": fit_x.shape[0],
            "num_validation": val_x.shape[0],
            "num_test": test_x.shape[0],
            "split_seed": SPLIT_SEED,
            "eval_particles": EVAL_PARTICLES,
            "dtype": "float64",
            "seed_offset": os.environ.get(SEED_OFFSET_VARIABLE, ""),
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
        "seconds": round(time.perf_counter() - began, 1),
        "estimators": results,
    }


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]
    )
    parser.add_argument("--seeds", type=int, default=3, help="selection seeds per rate")
    parser.add_argument("--final-seeds", type=int, default=10, help="seeds at the chosen rate")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-val", type=int, default=297, help="validation images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--tiny", action="store_true", help="1 epoch, 2 rates, 2 seeds, 300 images: a smoke test"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = dict(
        rates=args.rates,
        seeds=args.seeds,
        final_seeds=args.final_seeds,
        epochs=args.epochs,
        num_val=args.num_val,
    )
    if args.tiny:
        options.update(
            rates=[1e-2, 1e-3], seeds=2, final_seeds=2, epochs=1, num_val=100, num_train=300
        )
    results = sweep(**options)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {results['seconds']} s")
    return args.out


if __name__ == "__main__":
    main()
