"""Baselines for the score-function estimator: constants subtracted from f that cut variance.

For any b that does not depend on the sample x, E[b ∇θ log p(x; θ)] = b E[score] = 0, so

    g = (f(x) - b) ∇θ log p(x; θ)

is unbiased for every such b, while its variance depends on b. This is the simplest control
variate (Mohamed et al. 2020, "Monte Carlo Gradient Estimation in Machine Learning", JMLR,
§7). Chapter 3 compares the constant, mean, optimal and leave-one-out baselines.
"""

from __future__ import annotations

import numbers

import torch

from ._validation import check_finite, check_samples, describe


def leave_one_out(values) -> torch.Tensor:
    """Leave-one-out baseline: each sample's baseline is the mean of the *other* samples.

    Implements b_n = (sum_m v_m - v_n) / (N - 1) along dimension 0. Because b_n does not
    depend on x_n, (f(x_n) - b_n) ∇θ log p(x_n; θ) stays unbiased (Kool et al. 2019,
    "Buy 4 REINFORCE samples, get a baseline for free!"; Mohamed et al. 2020, §7).

    Args:
        values: f(x_n), shape ``(N, *shape)``, N >= 2.

    Returns:
        The baselines b_n, shape ``(N, *shape)``, detached (a baseline carries no gradient).

    Example:
        >>> leave_one_out(torch.tensor([1.0, 2.0, 6.0]))
        tensor([4.0000, 3.5000, 1.5000])
    """
    v = check_samples("values", values)  # (N, *shape), detached
    return (v.sum(dim=0) - v) / (v.shape[0] - 1)


def optimal_baseline(f_values, scores) -> torch.Tensor:
    """Per-coordinate optimal constant baseline b*_d = E[f s_d²] / E[s_d²], from samples.

    Derivation: with s = ∇θ log p(x; θ) and E[s] = 0, coordinate d of the estimator,
    (f - b_d) s_d, has mean E[f s_d] for every b_d and second moment

        E[(f - b_d)² s_d²] = E[f² s_d²] - 2 b_d E[f s_d²] + b_d² E[s_d²],

    a parabola in b_d whose minimum is at b*_d = E[f s_d²] / E[s_d²]. So b* minimizes the
    variance of each coordinate separately (Mohamed et al. 2020, §7). The expectations are
    replaced by sample means; a coordinate whose scores are all zero gets b*_d = 0.

    Using b* estimated from the same samples as the gradient adds a bias of order 1/N;
    estimate it from independent draws (or the previous step's) when that matters.

    Args:
        f_values: f(x_n), shape ``(N,)``, N >= 2.
        scores: ∇θ log p(x_n; θ), shape ``(N, D)``, on the same draws.

    Returns:
        b*, shape ``(D,)``, detached.

    Example:
        >>> f = torch.tensor([1.0, 2.0, 3.0])
        >>> s = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
        >>> optimal_baseline(f, s)  # (1 + 2 + 12) / (1 + 1 + 4) = 2.5; no signal in column 2
        tensor([2.5000, 0.0000])
    """
    f = check_samples("f_values", f_values)
    s = check_samples("scores", scores)
    if f.dim() != 1 or s.dim() != 2 or s.shape[0] != f.shape[0]:
        raise ValueError(
            "f_values must have shape (N,) and scores shape (N, D) on the same draws, got "
            f"{describe(f_values)} and {describe(scores)}"
        )
    s2 = s**2  # (N, D)
    numerator = (f[:, None] * s2).mean(dim=0)
    denominator = s2.mean(dim=0)
    tiny = torch.finfo(s2.dtype).tiny
    return torch.where(denominator > 0, numerator / denominator.clamp_min(tiny),
                       torch.zeros_like(numerator))


def _centred(f: torch.Tensor, baseline, theta: torch.Tensor) -> torch.Tensor:
    """f - b shaped to multiply the scores (N, D): (N, 1), or (N, D) for per-coordinate b."""
    if isinstance(baseline, str) and baseline == "loo":
        return (f - leave_one_out(f))[:, None]
    if baseline is None:
        return f[:, None]
    if isinstance(baseline, torch.Tensor) or (
            isinstance(baseline, numbers.Real) and not isinstance(baseline, bool)):
        b = torch.as_tensor(baseline).detach().to(device=f.device, dtype=f.dtype)
        if b.dim() == 0 or b.shape == theta.shape:
            return f[:, None] - check_finite("baseline", b)
    raise ValueError(
        "baseline must be None, a number, a tensor shaped like theta "
        f"{tuple(theta.shape)} (one constant per coordinate), or 'loo' (leave-one-out), "
        f"got {describe(baseline)}"
    )
