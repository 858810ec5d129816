"""Throughput of the vectorized gradient estimators against a per-sample autograd loop.

Problem: θ = (μ, σ), x ~ N(μ, σ²), f(x) = x², so ∇θ E[f] = (2μ, 2σ). The vectorized
estimators (:func:`companion.estimators.score_function` and ``pathwise``) compute all N
per-sample gradients with the double-backward trick; the reference loop builds one small
graph per sample and calls ``torch.autograd.grad`` once per sample, which is what a direct
implementation of "one gradient per draw" does. The loop is timed on fewer samples and its
time per sample is extrapolated to N (it is linear in N), as the table says.

Usage:
    python benchmarks/estimator_throughput.py [--num-samples N] [--loop-samples M]
                                              [--repeats R] [--json PATH]

Standard library and torch only; a few seconds on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from companion.estimators import pathwise, score_function

THETA = (1.0, 1.0)  # (μ, σ)


def normal(theta):
    return torch.distributions.Normal(theta[0], theta[1])


def square(x):
    return x**2


def best_time(fn, repeats: int) -> float:
    """Smallest wall-clock time of ``repeats`` calls, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def loop_score_function(theta: torch.Tensor, num_samples: int) -> torch.Tensor:
    """g_n = f(x_n) ∇θ log p(x_n; θ), one graph and one backward pass per sample."""
    rows = []
    for _ in range(num_samples):
        t = theta.detach().clone().requires_grad_(True)
        dist = normal(t)
        x = dist.sample()
        (grad,) = torch.autograd.grad(dist.log_prob(x), t)
        rows.append(square(x) * grad)
    return torch.stack(rows)


def loop_pathwise(theta: torch.Tensor, num_samples: int) -> torch.Tensor:
    """g_n = ∇θ f(x(θ, ε_n)), one graph and one backward pass per sample."""
    rows = []
    for _ in range(num_samples):
        t = theta.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(square(normal(t).rsample()), t)
        rows.append(grad)
    return torch.stack(rows)


def measure(num_samples: int, loop_samples: int, repeats: int) -> list[dict]:
    theta = torch.tensor(THETA)
    cases = [
        ("score_function", lambda: score_function(normal, theta, square, num_samples),
         lambda: loop_score_function(theta, loop_samples)),
        ("pathwise", lambda: pathwise(normal, theta, square, num_samples),
         lambda: loop_pathwise(theta, loop_samples)),
    ]
    score_function(normal, theta, square, 1_000)  # warm-up: allocator, autograd engine
    pathwise(normal, theta, square, 1_000)
    rows = []
    for name, vectorized, loop in cases:
        vec_s = best_time(vectorized, repeats)
        loop_s = best_time(loop, 1)
        per_sample = loop_s / loop_samples
        rows.append({
            "estimator": name,
            "num_samples": num_samples,
            "vectorized_seconds": vec_s,
            "vectorized_samples_per_second": num_samples / vec_s,
            "loop_samples_timed": loop_samples,
            "loop_seconds_timed": loop_s,
            "loop_seconds_extrapolated": per_sample * num_samples,
            "loop_samples_per_second": 1 / per_sample,
            "speedup": per_sample * num_samples / vec_s,
        })
    return rows


def print_table(rows: list[dict]) -> None:
    n = rows[0]["num_samples"]
    m = rows[0]["loop_samples_timed"]
    print(f"∇θ E[x²] under N(μ, σ²), θ = {THETA}, N = {n:,} samples; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = f"{'estimator':<16}{'vectorized s':>14}{'samples/s':>14}"
    header += f"{'loop s (extrap.)':>19}{'loop samples/s':>16}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['estimator']:<16}{r['vectorized_seconds']:>14.3f}"
              f"{r['vectorized_samples_per_second']:>14.3g}"
              f"{r['loop_seconds_extrapolated']:>19.1f}{r['loop_samples_per_second']:>16.3g}"
              f"{r['speedup']:>9.0f}x")
    print(f"Loop times are measured on {m:,} samples and extrapolated linearly to {n:,}; "
          "vectorized times are the best of the repeats.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=1_000_000,
                        help="samples for the vectorized estimators (default 10^6)")
    parser.add_argument("--loop-samples", type=int, default=2_000,
                        help="samples timed in the per-sample loop (default 2,000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of each vectorized timing; the best is kept (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    for option, value, minimum in (("--num-samples", args.num_samples, 2),
                                   ("--loop-samples", args.loop_samples, 1),
                                   ("--repeats", args.repeats, 1)):
        if value < minimum:
            parser.error(f"{option} must be at least {minimum}, got {value}")
    rows = measure(args.num_samples, args.loop_samples, args.repeats)
    print_table(rows)
    if args.json:
        result = {"problem": "grad of E[x^2] under Normal(mu, sigma), theta=(1, 1)",
                  "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "python": platform.python_version(), "results": rows}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
