"""Surrogate objectives: per-sample quantities whose autograd gradient is the estimator.

An estimator of ∇θ E[f(x)] can be written as the gradient of a *surrogate*: a number that
need not equal the objective but whose gradient, taken by ordinary backpropagation, is the
estimate. Training code (the VAE of Chapter 5, the bandit of Chapter 3) averages a surrogate
over samples and calls ``backward()``; :mod:`companion.estimators` differentiates the same
surrogates with one copy of θ per sample (:func:`companion.estimators.per_sample_gradients`)
to report standard errors.

- score function (Mohamed et al. 2020, JMLR, §4): (f(x) - b).detach() * log p(x; θ),
  with x drawn by ``sample()``;
- pathwise (§5): f(x(θ, ε)) itself, with x drawn by ``rsample()``: no helper is needed;
- :func:`batched_score_gradients` differentiates the score-function surrogate of many
  independent batches of draws at once, for the variance of an estimator at small N;
- :func:`surrogate_objective` shows the true objective while differentiating the surrogate.
"""

from __future__ import annotations

import torch

from ._validation import check_callable, check_finite, describe
from .baselines import centre
from .estimators import per_sample_gradients

__all__ = ["batched_score_gradients", "score_function_surrogate", "surrogate_objective"]


def _per_sample(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.is_complex():
        raise TypeError(f"{name} must be a real tensor shaped (N, ...), got {describe(value)}")
    if value.dim() == 0:
        raise ValueError(
            f"{name} must have shape (N, ...) with samples along dimension 0, got a scalar"
        )
    check_finite(name, value.detach())
    return value


def score_function_surrogate(log_prob, f_values, baseline=None) -> torch.Tensor:
    """Per-sample score-function surrogate (f(x) - b).detach() * log p(x; θ).

    Its gradient is the REINFORCE estimate (Mohamed et al. 2020, §4; baselines §7):

        ∇θ [(f(x_n) - b_n) log p(x_n; θ)] = (f(x_n) - b_n) ∇θ log p(x_n; θ),

    because f and b are detached: the gradient flows only through the log-density.

    Args:
        log_prob: log p(x_n; θ) of samples drawn with ``sample()``, shape ``(N, ...)``,
            carrying the graph to θ.
        f_values: f(x_n), same shape; detached here.
        baseline: None; a number; a tensor broadcastable to ``f_values`` (e.g. per-sample
            b_n from an independent source); or ``"loo"``, the leave-one-out baseline
            along dimension 0 (:func:`companion.baselines.leave_one_out`).

    Returns:
        The surrogate, shape of ``log_prob``; average it and call ``backward()``.

    Example:
        >>> theta = torch.tensor(0.0, requires_grad=True)
        >>> x = torch.tensor([0.0, 1.0, 1.0])  # draws from Bernoulli(logits=theta)
        >>> log_prob = torch.distributions.Bernoulli(logits=theta).log_prob(x)
        >>> score_function_surrogate(log_prob, x, baseline=0.5).mean().backward()
        >>> theta.grad  # mean of (x - 0.5)(x - sigmoid(0)) = (0.25 + 0.25 + 0.25) / 3
        tensor(0.2500)
    """
    log_prob = _per_sample("log_prob", log_prob)
    if not log_prob.is_floating_point():
        raise TypeError(f"log_prob must be a floating-point tensor, got {describe(log_prob)}")
    # Integer or boolean f (a reward of 0 or 1) is read as a number in log_prob's dtype, so a
    # baseline of 0.5 is not truncated to 0.
    f = _per_sample("f_values", f_values).detach().to(log_prob.dtype)
    if f.shape != log_prob.shape:
        raise ValueError(
            f"f_values must have the shape of log_prob {tuple(log_prob.shape)}, "
            f"got shape {tuple(f.shape)}"
        )
    return centre(f, baseline) * log_prob


def batched_score_gradients(dist_fn, theta, x, f_values, *, baseline=None) -> torch.Tensor:
    """Per-sample score-function estimates g_n,r = (f(x_n,r) - b_n,r) ∇θ log p(x_n,r; θ).

    For R independent batches of N draws, column r of ``x`` being batch r: the baseline
    (e.g. ``"loo"``, the mean of the other N - 1 values of f in the same batch) is taken
    along dimension 0, within each batch, by :func:`score_function_surrogate`, and
    :func:`companion.estimators.per_sample_gradients` differentiates the N·R surrogates with
    one copy of θ each (the baseline is detached, so surrogate n, r depends on copy n, r
    alone). The mean over dimension 0 gives R independent N-sample estimates, whose spread
    is the estimator's variance at that N, covariances between terms included (Chapter 3).

    Args:
        dist_fn: maps copies of θ, shape ``(N·R, D)``, to a distribution of batch shape
            ``(N·R,)``, e.g. ``lambda t: Normal(t[..., 0], t[..., 1])``.
        theta: θ, a 1-D floating tensor of shape ``(D,)``.
        x: the draws, shape ``(N, R, *event_shape)``, N >= 2, drawn with ``sample()``.
        f_values: f(x), shape ``(N, R)``, finite.
        baseline: as in :func:`score_function_surrogate`.

    Returns:
        The g_n,r, shape ``(N, R, D)``.

    Example:
        >>> bern = lambda t: torch.distributions.Bernoulli(logits=t[..., 0])
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # N = 2 draws in each of R = 2 batches
        >>> g = batched_score_gradients(bern, torch.zeros(1), x, x, baseline="loo")
        >>> g[..., 0]  # (x_n - x_other)(x_n - 1/2): 1/2 where the bits differ, 0 where equal
        tensor([[0.5000, 0.0000],
                [0.5000, 0.0000]])
    """
    check_callable("dist_fn", dist_fn)
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point() or theta.dim() != 1:
        raise TypeError(f"theta must be a 1-D floating tensor of shape (D,), got {describe(theta)}")
    if not isinstance(x, torch.Tensor) or x.is_complex():
        raise TypeError(f"x must be a real tensor shaped (N, R, ...), got {describe(x)}")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(
            f"x must have shape (N, R, *event_shape) with N >= 2, got shape {tuple(x.shape)}"
        )
    check_finite("x", x.detach())
    if not isinstance(f_values, torch.Tensor) or f_values.is_complex():
        raise TypeError(f"f_values must be a real tensor of shape (N, R), got {describe(f_values)}")
    if tuple(f_values.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"f_values must be a tensor of shape (N, R) = {tuple(x.shape[:2])}, "
            f"got {describe(f_values)}"
        )
    flat = x.reshape(-1, *x.shape[2:])  # (N·R, *event_shape)

    def surrogate(copies):  # (N·R, D) ↦ (N·R,)
        dist = dist_fn(copies)
        if not isinstance(dist, torch.distributions.Distribution):
            raise TypeError(
                f"dist_fn must return a torch.distributions.Distribution, got {describe(dist)}"
            )
        try:
            log_p = dist.log_prob(flat)
        except (RuntimeError, ValueError) as err:  # a dtype or value the distribution refuses
            raise ValueError(
                f"x must hold draws of dist_fn(theta) that its log_prob accepts "
                f"({describe(x)}): {err}"
            ) from err
        if log_p.shape != flat.shape[:1]:
            raise ValueError(
                f"dist_fn(copies of theta) must have batch shape (N·R,) = ({flat.shape[0]},), "
                f"so that log_prob of the draws has that shape; got {tuple(log_p.shape)}"
            )
        log_p = log_p.reshape(x.shape[:2])
        return score_function_surrogate(log_p, f_values, baseline=baseline).reshape(-1)

    rows = per_sample_gradients(surrogate, theta.detach(), flat.shape[0]).samples
    return rows.reshape(*x.shape[:2], theta.shape[0])


def surrogate_objective(value, surrogate) -> torch.Tensor:
    """Shows ``value`` in the forward pass and differentiates ``surrogate`` in the backward.

    Implements value.detach() + (surrogate - surrogate.detach()), the trick of Pyro's ELBOs:
    the number printed or logged is the true objective, while ``backward()`` produces the
    surrogate's gradient (the estimator). ``value`` is detached so the gradient is exactly
    the surrogate's, even when ``value`` was computed with a graph; put every term that should
    be differentiated into ``surrogate``.

    Args:
        value: the objective's estimate, any shape.
        surrogate: the surrogate, same shape.

    Returns:
        A tensor equal to ``value`` whose gradient is that of ``surrogate``.

    Example:
        >>> theta = torch.tensor(3.0, requires_grad=True)
        >>> out = surrogate_objective(torch.tensor(10.0), theta**2)
        >>> out.backward(); out.item(), theta.grad.item()
        (10.0, 6.0)
    """
    for name, tensor in (("value", value), ("surrogate", surrogate)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {describe(tensor)}")
        if tensor.is_complex():
            raise TypeError(f"{name} must be real, got {describe(tensor)}")
    if not surrogate.is_floating_point():  # an integer tensor carries no gradient
        raise TypeError(f"surrogate must be a floating-point tensor, got {describe(surrogate)}")
    if value.shape != surrogate.shape:
        raise ValueError(
            f"value and surrogate must have the same shape, got "
            f"{tuple(value.shape)} and {tuple(surrogate.shape)}"
        )
    check_finite("value", value.detach())
    check_finite("surrogate", surrogate.detach())
    return value.detach() + (surrogate - surrogate.detach())
