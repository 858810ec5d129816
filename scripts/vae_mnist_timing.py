"""How long one MNIST epoch takes on two CPU cores, measured on synthetic MNIST-shaped data.

Chapter 5's MNIST section suggests training ``VAE(data_dim=784, latent_dim=50,
hidden_dim=200)`` in float32 with ``train(..., batch_size=100, lr=1e-3)``. The book's build
has no network, so this script times that exact call on *synthetic* images of MNIST's shape
(60,000 training and 10,000 test images of 784 grey levels drawn uniformly in [0, 1]; the
cost of a step does not depend on the pixel values), with torch limited to two threads,
the cores of a Binder session (on a machine shared with other programs the times grow
with its load, which the results file records). One epoch includes what ``train`` does
after each pass: the test ELBO of the 10,000 test images. It then times the
importance-weighted bound L_50 (``iwae_bound``) of the 10,000 test images and records the
process's peak resident memory.

Usage::

    python scripts/vae_mnist_timing.py    # writes companion/results/vae_mnist_timing.json
    python scripts/vae_mnist_timing.py --tiny --out x.json  # seconds: the test's setting
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from companion.training import train  # noqa: E402
from companion.vae import VAE, iwae_bound  # noqa: E402

RESULTS = ROOT / "companion" / "results" / "vae_mnist_timing.json"


def measure(*, num_train: int, num_test: int, epochs: int, threads: int, k: int) -> dict:
    """Train ``epochs`` epochs of the MNIST snippet's model on synthetic data; time each.

    Returns a dict with the settings, the seconds of each epoch, the seconds of L_k on the
    test images and the peak resident memory of the process in MiB.
    """
    load_before = os.getloadavg()[0]  # other programs competing for the cores
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    train_x = torch.rand(num_train, 784)  # (n, 784) grey levels, MNIST's shape
    test_x = torch.rand(num_test, 784)
    model = VAE(data_dim=784, latent_dim=50, hidden_dim=200)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        train(model, train_x, test_x, epochs=1, batch_size=100, lr=1e-3, progress=False)
        seconds.append(round(time.perf_counter() - start, 2))
    binary = torch.bernoulli(test_x)
    start = time.perf_counter()
    with torch.no_grad():
        bound = iwae_bound(model, binary, k=k)
    bound_seconds = time.perf_counter() - start
    assert bool(torch.isfinite(bound).all())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "settings": {
            "num_train": num_train,
            "num_test": num_test,
            "epochs": epochs,
            "threads": threads,
            "dtype": "float32",
            "model": {"data_dim": 784, "latent_dim": 50, "hidden_dim": 200},
            "batch_size": 100,
            "lr": 1e-3,
            "iwae_k": k,
        },
        "epoch_seconds": seconds,
        "iwae_seconds": round(bound_seconds, 2),
        "peak_memory_mib": round(peak_mib, 1),
        # the 1-minute load average before and after: on a shared machine, above the number
        # of threads, the times are longer than on an idle one
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="600/100 images, one epoch, k = 5")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.tiny:
        result = measure(num_train=600, num_test=100, epochs=1, threads=2, k=5)
    else:
        result = measure(num_train=60_000, num_test=10_000, epochs=2, threads=2, k=50)
    result["command"] = "python scripts/vae_mnist_timing.py" + (" --tiny" if args.tiny else "")
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
