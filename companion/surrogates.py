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
- :func:`surrogate_objective` shows the true objective while differentiating the surrogate.
"""

from __future__ import annotations

import torch

from ._validation import check_finite, describe
from .baselines import centre

__all__ = ["score_function_surrogate", "surrogate_objective"]


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
