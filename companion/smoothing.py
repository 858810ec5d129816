"""Random-direction gradient estimates: Gaussian smoothing (evolution strategies) and SPSA.

Finite differences along every coordinate cost 2D evaluations of f per sample. Differencing
along one random direction v instead costs 2, whatever D. With J(θ) = E_{x~p(x;θ)}[f(x)] and a
smoothing scale δ > 0, each direction v_m gives

    g_m = (f(x_m^+) - f(x_m^-)) / (2δ) · w(v_m),    x_m^± ~ p(x; θ ± δ v_m),

where the two draws share their noise (common random numbers) by default.

- ``directions="gaussian"``, v ~ N(0, I_D), w(v) = v: Gaussian smoothing, the gradient
  estimator of evolution strategies (Nesterov and Spokoiny 2017; Salimans et al. 2017). It is
  unbiased for the gradient of the *smoothed* objective J_δ(θ) = E_{v~N(0, I)}[J(θ + δ v)]:
  by Stein's lemma ∇J_δ(θ) = E[J(θ + δ v) v] / δ = E[(J(θ + δv) - J(θ - δv)) v] / (2δ).
  When J is quadratic, J_δ = J + (δ²/2) tr ∇²J, a constant, so ∇J_δ = ∇J; otherwise
  ∇J_δ - ∇J = O(δ²).
- ``directions="rademacher"``, v uniform on {-1, 1}^D, w(v) = 1 / v = v: simultaneous
  perturbation stochastic approximation (SPSA; Spall 1992), whose mean is ∇J + O(δ²).

For a linear J with gradient a and no noise in f, the total variance E|g - a|² of one
direction is (D + 1)|a|² (Gaussian) or (D - 1)|a|² (Rademacher): the cost of one estimate does
not grow with D, its variance does. Chapter 2 derives and checks this.
"""

from __future__ import annotations

import numbers

import torch

from ._validation import (
    check_allocation,
    check_bool,
    check_callable,
    check_finite,
    check_positive_int,
    describe,
    evaluate_f,
)
from .montecarlo import Estimate, summarize

__all__ = ["smoothed_gradient"]

_DIRECTIONS = ("gaussian", "rademacher")


def _check_smoothing(smoothing) -> float:
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real):
        raise TypeError(f"smoothing must be a number > 0, got {describe(smoothing)}")
    if not 0 < smoothing < float("inf"):
        raise ValueError(f"smoothing must be a finite number > 0, got {smoothing}")
    return float(smoothing)


_BATCHED = (
    "dist_fn must be batched: it receives θ of shape (D,) or (M, D) and must index the last "
    "dimension, e.g. lambda t: Normal(t, 1.0) or Normal(t[..., 0], t[..., 1]), not t[0]"
)


def _check_theta(theta) -> torch.Tensor:
    """A detached copy of θ, a finite 1-D floating tensor (the caller's tensor is not touched)."""
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
        raise TypeError(f"theta must be a 1-D floating-point tensor, got {describe(theta)}")
    if theta.dim() != 1 or theta.numel() == 0:
        raise ValueError(
            f"theta must be a 1-D tensor with at least one entry, got shape {tuple(theta.shape)}"
        )
    return check_finite("theta", theta.detach().clone())


def _make_dist(dist_fn, theta: torch.Tensor, what: str) -> torch.distributions.Distribution:
    """dist_fn(θ), refusing what is not a distribution; torch's ValueError names ``what``."""
    try:
        dist = dist_fn(theta)
    except ValueError as err:  # torch's argument validation: θ outside the constraints
        raise ValueError(f"{what} is not a valid parameter of dist_fn ({err})") from err
    if not isinstance(dist, torch.distributions.Distribution):
        raise TypeError(
            f"dist_fn(theta) must return a torch.distributions.Distribution, got {describe(dist)}"
        )
    return dist


def _draw(dist_fn, thetas: torch.Tensor, seed, smoothing: float, batch_shape) -> torch.Tensor:
    """One draw from p(x; θ_m) per row θ_m; with a seed, every call replays one stream."""
    dist = _make_dist(
        dist_fn,
        thetas,
        f"smoothing={smoothing}: θ ± δ v for some direction (use a smaller smoothing, or "
        "perturb only unconstrained parameters)",
    )
    if dist.batch_shape != (thetas.shape[0], *batch_shape):
        raise ValueError(
            f"{_BATCHED}; for θ it gave batch shape {tuple(batch_shape)}, but for "
            f"{thetas.shape[0]} perturbed copies, shape {tuple(thetas.shape)}, batch shape "
            f"{tuple(dist.batch_shape)} instead of ({thetas.shape[0]}, *batch_shape)"
        )
    if seed is None:
        x = dist.sample()
    else:
        with torch.random.fork_rng():  # the caller's stream is restored afterwards
            torch.manual_seed(seed)
            x = dist.sample()
    return x


def smoothed_gradient(
    f,
    dist_fn,
    theta,
    num_directions,
    *,
    smoothing,
    directions="gaussian",
    common_random_numbers=True,
) -> Estimate:
    """Estimate ∇θ E_{x~p(x;θ)}[f(x)] from two evaluations of f per random direction.

    With M = ``num_directions`` directions v_m and δ = ``smoothing`` (module docstring),

        g_m = (f(x_m^+) - f(x_m^-)) / (2δ) · v_m,    x_m^± ~ p(x; θ ± δ v_m)

    (for Rademacher directions 1 / v_m = v_m). Gaussian directions estimate the gradient of
    the smoothed objective J_δ(θ) = E_{v~N(0, I)}[J(θ + δv)] without bias (Nesterov and
    Spokoiny 2017, §2; Salimans et al. 2017, with mirrored pairs); Rademacher
    directions are SPSA (Spall 1992), with mean ∇J + O(δ²). Costs 2M evaluations of f,
    independent of D. The directions are drawn first, ``torch.randn((M, D))`` (Gaussian) or
    ``2 * torch.randint(0, 2, (M, D)) - 1`` (Rademacher) in θ's dtype, from the global
    generator; with ``common_random_numbers`` one seed is then drawn from it and both sides
    of every direction replay that seed in a forked generator, so the caller's stream moves
    by those draws only.

    Args:
        f: maps samples ``(M, *batch_shape, *event_shape)`` to values ``(M,)``; called twice.
        dist_fn: batched, as for the other estimators: maps θ of shape ``(..., D)`` to a
            distribution with batch shape ``(..., *batch_shape)``, e.g.
            ``lambda t: Normal(t, 0.5)`` for a vector of locations; it is called on the M
            perturbed copies θ ± δ v_m, shape ``(M, D)``, which must be valid parameters.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        num_directions: M >= 2.
        smoothing: δ > 0, the scale of the perturbations.
        directions: ``"gaussian"`` (evolution strategies) or ``"rademacher"`` (SPSA).
        common_random_numbers: share the noise of the draws x_m^+ and x_m^- (default True).

    Returns:
        An :class:`~companion.montecarlo.Estimate`: ``mean``, ``stderr`` of shape ``(D,)``,
        ``samples`` the g_m, shape ``(M, D)``.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> theta = torch.zeros(3, dtype=torch.float64)
        >>> linear = lambda x: x @ torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> est = smoothed_gradient(linear, lambda t: torch.distributions.Normal(t, 1.0),
        ...                         theta, 4, smoothing=0.1)
        >>> est.samples.shape  # with shared noise, g_m = (aᵀv_m) v_m exactly
        torch.Size([4, 3])
    """
    check_callable("f", f)
    check_callable("dist_fn", dist_fn)
    num_directions = check_positive_int("num_directions", num_directions, minimum=2)
    theta = _check_theta(theta)
    smoothing = _check_smoothing(smoothing)
    if not isinstance(directions, str) or directions not in _DIRECTIONS:
        raise ValueError(f"directions must be one of {_DIRECTIONS}, got {describe(directions)}")
    check_bool("common_random_numbers", common_random_numbers)
    dist = _make_dist(dist_fn, theta, "theta")
    per_draw = max(dist.batch_shape.numel() * dist.event_shape.numel(), theta.numel())
    check_allocation(
        "num_directions", num_directions, 3 * num_directions * per_draw * theta.element_size()
    )
    shape = (num_directions, theta.shape[0])
    if directions == "gaussian":
        v = torch.randn(shape, dtype=theta.dtype, device=theta.device)  # (M, D)
    else:
        v = (2 * torch.randint(0, 2, shape, device=theta.device) - 1).to(theta.dtype)
    seed = int(torch.randint(0, 2**62, ()).item()) if common_random_numbers else None
    with torch.no_grad():
        plus = evaluate_f(
            f,
            _draw(dist_fn, theta + smoothing * v, seed, smoothing, dist.batch_shape),
            num_directions,
        )
        minus = evaluate_f(
            f,
            _draw(dist_fn, theta - smoothing * v, seed, smoothing, dist.batch_shape),
            num_directions,
        )
    difference = (plus - minus).to(theta.dtype) / (2 * smoothing)  # (M,)
    return summarize(difference[:, None] * v)  # 1/v = v for Rademacher directions
