"""Surrogate objectives: per-sample quantities whose autograd gradient is the estimator.

An estimator of ∇θ E[f(x)] can be written as the gradient of a *surrogate*: a number that
need not equal the objective but whose gradient, taken by ordinary backpropagation, is the
estimate. Training code (the VAE of Chapter 5, the bandit of Chapter 3) averages a surrogate
over samples and calls ``backward()``; :mod:`companion.estimators` differentiates the same
surrogates one sample at a time to report standard errors.

- score function (Mohamed et al. 2020, JMLR, §4): (f(x) - b).detach() * log p(x; θ),
  with x drawn by ``sample()``;
- pathwise (§5): f(x(θ, ε)) itself, with x drawn by ``rsample()``;
- :func:`surrogate_objective` shows the true objective while differentiating the surrogate.

Per-sample gradients (the N x D Jacobian ∂y_n/∂θ_d of per-sample surrogates y_n, needed for
standard errors) use the double-backward trick, D + 1 backward passes for any N; when a
backward pass cannot itself be differentiated (``rsample`` of Beta, Dirichlet), they fall
back to reverse mode one sample at a time, in chunks.
"""

from __future__ import annotations

import numbers
import warnings

import torch

from ._validation import check_finite, describe
from .baselines import leave_one_out


def _per_sample(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor shaped (N, ...), got {describe(value)}")
    if value.dim() == 0:
        raise ValueError(f"{name} must have shape (N, ...) with samples along dimension 0, "
                         f"got a scalar")
    check_finite(name, value.detach())
    return value


def _baseline(baseline, f: torch.Tensor) -> torch.Tensor:
    """The baseline b as a tensor broadcastable to ``f``: None, a number, a tensor, "loo"."""
    if baseline is None:
        return torch.zeros((), dtype=f.dtype, device=f.device)
    if isinstance(baseline, str) and baseline == "loo":
        return leave_one_out(f)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        b = torch.tensor(float(baseline), dtype=f.dtype, device=f.device)
        return check_finite("baseline", b)
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(device=f.device, dtype=f.dtype)
        try:
            fits = torch.broadcast_shapes(b.shape, f.shape) == f.shape
        except RuntimeError:
            fits = False
        if fits:
            return check_finite("baseline", b)
    raise ValueError(
        "baseline must be None, a number, a tensor broadcastable to f_values "
        f"{tuple(f.shape)}, or 'loo' (leave-one-out), got {describe(baseline)}"
    )


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
    f = _per_sample("f_values", f_values).detach()
    if f.shape != log_prob.shape:
        raise ValueError(f"f_values must have the shape of log_prob {tuple(log_prob.shape)}, "
                         f"got shape {tuple(f.shape)}")
    return (f - _baseline(baseline, f)) * log_prob


def pathwise_surrogate(f_values) -> torch.Tensor:
    """Per-sample pathwise surrogate: f(x(θ, ε)) itself (Mohamed et al. 2020, §5).

    With x drawn by ``rsample()`` the graph runs θ → x → f, so the gradient of f_n is the
    pathwise estimate ∇θ f(x(θ, ε_n)). Values from ``sample()`` carry no gradient.

    Args:
        f_values: f(x_n) with the graph to θ, shape ``(N, ...)``.

    Returns:
        ``f_values`` unchanged (after checking they are finite).

    Example:
        >>> loc = torch.tensor(1.0, requires_grad=True)
        >>> x = loc + torch.tensor([-1.0, 1.0])  # rsample of Normal(loc, 1) with fixed noise
        >>> pathwise_surrogate(x**2).mean().backward(); loc.grad  # mean of 2x = 2 loc
        tensor(2.)
    """
    return _per_sample("f_values", f_values)


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
    if value.shape != surrogate.shape:
        raise ValueError(f"value and surrogate must have the same shape, got "
                         f"{tuple(value.shape)} and {tuple(surrogate.shape)}")
    return value.detach() + (surrogate - surrogate.detach())


# ---------------------------------------------------------------- per-sample gradients

_CHUNK = 64  # samples per reverse-mode chunk in the fallback (work and memory grow as _CHUNK²)


def _double_backward(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor | None:
    """The Jacobian ∂y_n/∂θ_d, shape (N, D), in D + 1 backward passes, or None if impossible.

    With weights w = 1, G(w) = ∇θ Σ_n w_n y_n = Σ_n w_n ∇θ y_n is linear in w, so
    ∂G_d/∂w_n = ∂y_n/∂θ_d: column d of the Jacobian is one backward pass of G_d to w.
    """
    w = torch.ones_like(y, requires_grad=True)
    (total,) = torch.autograd.grad((w * y).sum(), theta, create_graph=True, allow_unused=True)
    if total is None:  # y does not depend on θ: the Jacobian is zero, not an error
        return theta.new_zeros(y.shape[0], theta.shape[0])
    try:
        columns = [torch.autograd.grad(total[d], w, retain_graph=True)[0]
                   for d in range(theta.shape[0])]
    except RuntimeError:  # a once-differentiable backward cut the graph from w to G
        return None
    jac = torch.stack(columns, dim=1).to(theta.dtype)  # (N, D)
    # Rows must sum to G. A backward that is not differentiable but sits beside tracked
    # paths (e.g. an affine map of a Beta sample) silently drops its part: caught here.
    total = total.detach()
    tol = torch.finfo(jac.dtype).eps ** 0.5 * (jac.abs().sum(0) + total.abs())
    return jac if ((jac.sum(0) - total).abs() <= tol).all() else None


def _reverse_mode(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The Jacobian ∂y_n/∂θ_d by one reverse pass per sample (batched with vmap when it can)."""
    if not y.requires_grad:
        return theta.new_zeros(y.shape[0], theta.shape[0])
    eye = torch.eye(y.shape[0], dtype=y.dtype, device=y.device)
    try:
        with warnings.catch_warnings():  # vmap's "performance drop" notes are not for readers
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            (jac,) = torch.autograd.grad(y, theta, eye, retain_graph=True,
                                         is_grads_batched=True, allow_unused=True)
    except RuntimeError:  # a backward that vmap cannot batch: one sample at a time
        rows = [torch.autograd.grad(y[n], theta, retain_graph=True, allow_unused=True)[0]
                for n in range(y.shape[0])]
        jac = torch.stack([torch.zeros_like(theta) if r is None else r for r in rows])
    return theta.new_zeros(y.shape[0], theta.shape[0]) if jac is None else jac


def _per_sample_gradients(values_fn, theta: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Per-sample gradients ∂y_n/∂θ_d, shape (N, D), of the per-sample surrogates y_n.

    ``values_fn(start, stop)`` returns y_start, ..., y_{stop-1} with their graph to θ; the
    fallback calls it again on chunks (so for ``rsample`` the chunks are fresh draws).
    """
    jac = _double_backward(values_fn(0, num_samples), theta)
    if jac is None:  # correct but slower: reverse mode in chunks of _CHUNK samples
        jac = torch.cat([_reverse_mode(values_fn(s, min(s + _CHUNK, num_samples)), theta)
                         for s in range(0, num_samples, _CHUNK)])
    return jac
