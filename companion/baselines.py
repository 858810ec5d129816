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

from ._validation import (
    as_finite_tensor,
    check_finite,
    check_positive_int,
    check_samples,
    describe,
)

__all__ = ["leave_one_out", "leave_one_out_variance", "optimal_baseline", "centre"]


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


def leave_one_out_variance(
    mean_baseline_variance, f_variance, score_second_moment, gradient, num_samples
) -> torch.Tensor:
    """N times the variance of the leave-one-out estimator, covariances between terms included.

    With b_n the mean of the other N - 1 values of f, the estimator averages
    g_n = (f(x_n) - b_n) ∇θ log p(x_n; θ). Per coordinate d (Chapter 3, eq-sf-loo-var),

        N Var[mean_n g_n,d] = Var[(f - E f) ∂_d log p]
                              + (Var[f] E[(∂_d log p)²] + (∂_d E f)²) / (N - 1):

    each term has variance Var[(f - E f) ∂_d log p] + Var[f] E[(∂_d log p)²] / (N - 1), and
    every pair of terms has covariance (∂_d E f)² / (N - 1)², N (N - 1) pairs in all. As
    N grows it tends to the per-sample variance with the exact mean baseline b = E[f], not
    to that of the optimal constant b*_d (Kool et al. 2019, "Buy 4 REINFORCE samples, get a
    baseline for free!"). All inputs broadcast together.

    Args:
        mean_baseline_variance: Var[(f - E f) ∂_d log p], >= 0, shape ``(D,)`` or a number.
        f_variance: Var[f(x)], >= 0, a number (or broadcastable).
        score_second_moment: E[(∂_d log p)²], >= 0, shape ``(D,)`` or a number.
        gradient: the exact gradient ∂_d E[f], shape ``(D,)`` or a number.
        num_samples: N >= 2, the number of draws (evaluations of f) in one estimate.

    Returns:
        N Var[ĝ_loo], float64, the broadcast shape; compare it with a constant baseline's
        per-sample variance: both are the variance of an N-sample estimate, times N.

    Example:
        >>> # f = x², x ~ N(1, 1), coordinate μ: Var = 18, Var[f] = 6, E[(∂_μ log p)²] = 1
        >>> leave_one_out_variance(18.0, 6.0, 1.0, 2.0, 2).item()  # 18 + (6 + 4) / 1
        28.0
    """
    values = {}
    for name, value in (
        ("mean_baseline_variance", mean_baseline_variance),
        ("f_variance", f_variance),
        ("score_second_moment", score_second_moment),
        ("gradient", gradient),
    ):
        tensor = as_finite_tensor(name, value, dtype=torch.float64)
        if name != "gradient" and not (tensor >= 0).all():
            raise ValueError(f"{name} must be >= 0 (a variance or second moment), got {value}")
        values[name] = tensor
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in values.values()))
    except RuntimeError as err:
        raise ValueError(
            "mean_baseline_variance, f_variance, score_second_moment and gradient must "
            f"broadcast together, got shapes {[tuple(t.shape) for t in values.values()]}"
        ) from err
    v = {k: t.expand(shape) for k, t in values.items()}
    penalty = v["f_variance"] * v["score_second_moment"] + v["gradient"] ** 2
    return v["mean_baseline_variance"] + penalty / (num_samples - 1)


def optimal_baseline(f_values, scores, *, leave_one_out=False) -> torch.Tensor:
    """Per-coordinate optimal constant baseline b*_d = E[f s_d²] / E[s_d²], from samples.

    Derivation: with s = ∇θ log p(x; θ) and E[s] = 0, coordinate d of the estimator,
    (f - b_d) s_d, has mean E[f s_d] for every b_d and second moment

        E[(f - b_d)² s_d²] = E[f² s_d²] - 2 b_d E[f s_d²] + b_d² E[s_d²],

    a parabola in b_d whose minimum is at b*_d = E[f s_d²] / E[s_d²]. So b* minimizes the
    variance of each coordinate separately (Mohamed et al. 2020, §7). The expectations are
    replaced by sample means along dimension 0; a coordinate whose scores are all zero gets
    b*_d = 0. Independent batches along further dimensions get one b* each.

    Using b* estimated from the same samples as the gradient adds a bias of order 1/N;
    estimate it from independent draws (or the previous step's) when that matters, and
    count those draws: they are evaluations of f too. Or, at no extra cost, leave each
    draw out of its own baseline: with ``leave_one_out=True`` draw n gets

        b*_{-n,d} = sum_{m != n} f_m s_{m,d}² / sum_{m != n} s_{m,d}²,

    a function of the other draws only, hence independent of x_n, so that
    (f_n - b*_{-n,d}) s_{n,d} stays unbiased (Chapter 3; the same argument as for
    :func:`leave_one_out`). As N grows it tends to b*_d.

    Args:
        f_values: f(x_n), shape ``(N, *batch)``, N >= 2.
        scores: ∇θ log p(x_n; θ), shape ``(N, *batch, D)``, on the same draws.
        leave_one_out: if True, return one baseline per draw, each computed without it.

    Returns:
        b*, shape ``(*batch, D)``, detached; with ``leave_one_out=True`` the per-draw
        b*_{-n}, shape ``(N, *batch, D)``.

    Example:
        >>> f = torch.tensor([1.0, 2.0, 3.0])
        >>> s = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
        >>> optimal_baseline(f, s)  # (1 + 2 + 12) / (1 + 1 + 4) = 2.5; no signal in column 2
        tensor([2.5000, 0.0000])
        >>> optimal_baseline(f, s, leave_one_out=True)[:, 0]  # (2 + 12)/5, (1 + 12)/5, 3/2
        tensor([2.8000, 2.6000, 1.5000])
    """
    f = check_samples("f_values", f_values)
    s = check_samples("scores", scores)
    if not isinstance(leave_one_out, bool):
        raise TypeError(f"leave_one_out must be True or False, got {describe(leave_one_out)}")
    if s.dim() != f.dim() + 1 or s.shape[:-1] != f.shape:
        raise ValueError(
            "f_values must have shape (N, *batch) and scores shape (N, *batch, D) on the same "
            f"draws, got {describe(f_values)} and {describe(scores)}"
        )
    s2 = s**2  # (N, *batch, D)
    fs2 = f[..., None] * s2
    numerator, denominator = fs2.sum(dim=0), s2.sum(dim=0)
    if leave_one_out:  # drop draw n from both sums
        numerator, denominator = numerator - fs2, denominator - s2
        # subtracting one large term can leave rounding where the others sum to zero
        denominator = torch.where(denominator > 1e-12 * s2.sum(dim=0), denominator, 0.0)
    tiny = torch.finfo(s2.dtype).tiny
    return torch.where(
        denominator > 0, numerator / denominator.clamp_min(tiny), torch.zeros_like(numerator)
    )


def centre(f_values, baseline, *, num_coordinates=None) -> torch.Tensor:
    """f - b for every accepted form of a baseline b: the one parser of baselines.

    The score-function estimator multiplies f - b by the score; any b that does not depend
    on the draw it multiplies keeps it unbiased (module docstring).

    Args:
        f_values: f(x_n), shape ``(N, *shape)``, samples along dimension 0; detached here.
        baseline: None (b = 0); a number; ``"loo"``, the leave-one-out baseline along
            dimension 0 (:func:`leave_one_out`, N >= 2); or a tensor. Without
            ``num_coordinates`` a tensor must broadcast to ``f_values`` (for example
            per-sample b_n of shape ``(N, *shape)``). With ``num_coordinates=D`` (the
            estimators of :mod:`companion.estimators`, where ``f_values`` has shape ``(N,)``)
            a tensor is a scalar or has shape ``(D,)``, one constant per coordinate of θ.

    Returns:
        f - b, shape of ``f_values``; shape ``(N, D)`` for a per-coordinate baseline.

    Example:
        >>> centre(torch.tensor([1.0, 2.0, 6.0]), "loo")  # f_n - mean of the others
        tensor([-3.0000, -1.5000,  4.5000])
        >>> centre(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), num_coordinates=2)
        tensor([[1., 0.],
                [2., 1.]])
    """
    if not isinstance(f_values, torch.Tensor) or not f_values.is_floating_point():
        raise TypeError(
            f"f_values must be a floating-point tensor shaped (N, ...), got {describe(f_values)}"
        )
    f = check_finite("f_values", f_values.detach())
    if num_coordinates is not None:
        num_coordinates = check_positive_int("num_coordinates", num_coordinates)
    if num_coordinates is not None and f.dim() != 1:
        raise ValueError(
            f"f_values must have shape (N,) with num_coordinates, got shape {tuple(f.shape)}"
        )
    if baseline is None:
        return f
    if isinstance(baseline, str) and baseline == "loo":
        return f - leave_one_out(f)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return f - check_finite("baseline", torch.tensor(float(baseline), dtype=f.dtype))
    if isinstance(baseline, torch.Tensor) and not baseline.is_complex():
        b = check_finite("baseline", baseline.detach().to(device=f.device, dtype=f.dtype))
        if num_coordinates is not None:
            if b.dim() == 0:
                return f - b
            if b.shape == (num_coordinates,):
                return f[:, None] - b  # (N, D)
        elif _broadcasts(b.shape, f.shape):
            return f - b
    expected = (
        f"a tensor of shape ({num_coordinates},), one constant per coordinate of theta"
        if num_coordinates is not None
        else f"a tensor broadcastable to f_values {tuple(f.shape)}"
    )
    raise ValueError(
        f"baseline must be None, a number, {expected}, or 'loo' (leave-one-out), "
        f"got {describe(baseline)}"
    )


def _broadcasts(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False
