"""Samples of discrete variables that gradients can pass through (Chapter 6).

A categorical sample is a step function of its logits, so its pathwise gradient is zero
almost everywhere. Three ways around it, each built on ``torch.distributions``:

- Gumbel-max: argmax_k (logits_k + G_k), G_k ~ Gumbel(0, 1), is an exact categorical sample.
- Gumbel-softmax / Concrete: softmax((logits + G) / temperature) relaxes the argmax into a
  point of the simplex that is differentiable in the logits; as temperature -> 0 it becomes
  the one-hot Gumbel-max sample. The temperature is a dial: high temperatures bias the
  gradient, low ones inflate its variance.
- Straight-through: forward the discrete sample, backpropagate as if it were its mean.
  Biased, cheap, and often good enough.

Samples run along dimension 0: logits ``(*batch, K)`` give samples ``(num_samples, *batch, K)``.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch.distributions import (Bernoulli, OneHotCategorical, RelaxedBernoulli,
                                 RelaxedOneHotCategorical)
from torch.distributions.utils import clamp_probs

from ._validation import check_finite, check_positive_int, describe


def _check_logits(logits, *, min_categories: int | None) -> torch.Tensor:
    """Logits as given (gradients kept); ``min_categories`` None means Bernoulli logits."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {describe(logits)}")
    if min_categories is None and logits.numel() == 0:
        raise ValueError("logits must hold at least one element, got an empty tensor")
    if min_categories is not None and (logits.dim() == 0 or logits.shape[-1] < min_categories):
        raise ValueError(
            f"logits must have shape (*batch, K) with K >= {min_categories} categories, "
            f"got shape {tuple(logits.shape)}"
        )
    check_finite("logits", logits.detach())
    return logits


def _check_temperature(temperature, logits: torch.Tensor) -> torch.Tensor:
    """A positive finite scalar temperature as a tensor in the logits' dtype (gradients kept)."""
    expected = "temperature must be a positive number or a 0-dim floating-point tensor"
    if isinstance(temperature, torch.Tensor):
        if temperature.dim() != 0 or not temperature.is_floating_point():
            raise TypeError(f"{expected}, got {describe(temperature)}")
    elif isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"{expected}, got {describe(temperature)}")
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    if not (torch.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be positive and finite, got {float(t)}")
    return t


def gumbel_noise(shape, generator: torch.Generator | None = None, *, dtype=None,
                 device=None) -> torch.Tensor:
    """Standard Gumbel noise G = -log(-log U), U ~ Uniform(0, 1), shaped ``shape``.

    If U ~ Uniform(0, 1) then P(-log(-log U) <= g) = P(U <= exp(-e^-g)) = exp(-e^-g), the
    Gumbel(0, 1) CDF (inverse-CDF sampling). U is clamped to [eps, 1 - eps], eps the
    machine epsilon of ``dtype``, as ``torch.distributions`` does: ``torch.rand`` can
    return exactly 0, where G = -inf (U = 1 would give +inf), and infinite scores make
    softmax and its gradient NaN (inf - inf). The clamp truncates G to about [-2.8, 15.9]
    in float32 ([-3.6, 36] in float64), changing any probability by at most about eps.

    Example:
        >>> gumbel_noise((2, 3)).shape
        torch.Size([2, 3])
    """
    try:
        shape = torch.Size(shape)
    except TypeError as err:
        raise TypeError(f"shape must be a sequence of integers, got {describe(shape)}") from err
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    u = clamp_probs(torch.rand(shape, generator=generator, dtype=dtype, device=device))
    return -torch.log(-torch.log(u))


def gumbel_max_sample(logits: torch.Tensor, num_samples: int, *,
                      noise: torch.Tensor | None = None) -> torch.Tensor:
    """Exact categorical samples by the Gumbel-max trick: k = argmax_j (logits_j + G_j).

    Why it works: logits_j + G_j has CDF F_j(x) = exp(-e^{l_j - x}) and density
    e^{l_j - x} F_j(x). Index k wins when every other score is below x_k, so with
    Z = sum_j e^{l_j} and t = e^{-x},
    P(argmax = k) = int e^{l_k - x} prod_j F_j(x) dx = int_0^inf e^{l_k} e^{-t Z} dt
    = e^{l_k} / Z = softmax(logits)_k.
    The argmax is piecewise constant in the logits: it carries no gradient (Maddison,
    Mnih, Teh 2017, "The Concrete Distribution", ICLR; Jang, Gu, Poole 2017).

    Args:
        logits: unnormalized log-probabilities, shape ``(*batch, K)``, K >= 2.
        num_samples: number of independent samples, >= 1.
        noise: optional Gumbel(0, 1) noise ``(num_samples, *batch, K)``, to replay fixed
            noise in tests and figures; drawn with :func:`gumbel_noise` when None.

    Returns:
        Category indices, int64, shape ``(num_samples, *batch)``.

    Example:
        >>> logits = torch.tensor([0.0, 1.0, 2.0])
        >>> noise = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> gumbel_max_sample(logits, 2, noise=noise)
        tensor([0, 2])
    """
    logits = _check_logits(logits, min_categories=2).detach()
    num_samples = check_positive_int("num_samples", num_samples)
    shape = (num_samples, *logits.shape)
    if noise is None:
        noise = gumbel_noise(shape, dtype=logits.dtype, device=logits.device)
    elif not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor, got {describe(noise)}")
    elif tuple(noise.shape) != shape:
        raise ValueError(
            f"noise must have shape (num_samples, *batch, K) = {shape}, got {tuple(noise.shape)}"
        )
    return (logits + check_finite("noise", noise.detach())).argmax(dim=-1)  # (S, *batch)


def gumbel_softmax_sample(logits: torch.Tensor, temperature, num_samples: int, *,
                          hard: bool = False) -> torch.Tensor:
    """Relaxed one-hot (Concrete / Gumbel-softmax) samples y = softmax((logits + G) / temperature).

    y lies inside the simplex and is differentiable in the logits (a reparameterized
    sample). Its argmax is the Gumbel-max sample, distributed as softmax(logits) at every
    temperature; as temperature -> 0, y -> one_hot(argmax) and as temperature -> inf,
    y -> 1/K. Drawn with ``RelaxedOneHotCategorical(temperature, logits=logits).rsample``
    (Maddison, Mnih, Teh 2017, "The Concrete Distribution", ICLR; Jang, Gu, Poole 2017,
    "Categorical Reparameterization with Gumbel-Softmax", ICLR, Sec. 2).

    With ``hard=True``, the straight-through Gumbel-softmax (Jang et al. 2017, Sec. 2.2):
    the value is one_hot(argmax y) exactly, the gradient is that of y, as in
    hard - y.detach() + y. Biased for the discrete objective.

    Args:
        logits: shape ``(*batch, K)``, K >= 2.
        temperature: a positive finite number or 0-dim tensor (may require grad).
        num_samples: number of independent samples, >= 1.
        hard: return the straight-through one-hot sample instead of y.

    Returns:
        Samples, shape ``(num_samples, *batch, K)``, in the logits' dtype.

    Example:
        >>> y = gumbel_softmax_sample(torch.zeros(2, 3), 0.5, 4)
        >>> y.shape, bool(torch.allclose(y.sum(-1), torch.ones(4, 2)))
        (torch.Size([4, 2, 3]), True)
        >>> h = gumbel_softmax_sample(torch.zeros(2, 3), 0.5, 4, hard=True)
        >>> bool((h.sum(-1) == 1).all() and ((h == 0) | (h == 1)).all())
        True
    """
    logits = _check_logits(logits, min_categories=2)
    temperature = _check_temperature(temperature, logits)
    num_samples = check_positive_int("num_samples", num_samples)
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be True or False, got {describe(hard)}")
    dist = RelaxedOneHotCategorical(temperature, logits=logits)
    soft = dist.rsample((num_samples,))  # (S, *batch, K)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    # Same gradient as hard - soft.detach() + soft, but the value is one-hot exactly:
    # soft - soft.detach() is exactly 0, while (1 - s) + s can round away from 1.
    return one_hot + (soft - soft.detach())


def relaxed_bernoulli_sample(logits: torch.Tensor, temperature, num_samples: int) -> torch.Tensor:
    """Relaxed Bernoulli (binary Concrete) samples y = sigmoid((logits + L) / temperature).

    L = log U - log(1 - U) is standard logistic noise, the difference of two Gumbels, so
    y > 1/2 exactly when logits + L > 0, which has probability sigmoid(logits) at every
    temperature; y -> that Bernoulli sample as temperature -> 0 and y -> 1/2 as it grows.
    Drawn with ``RelaxedBernoulli(temperature, logits=logits).rsample`` (Maddison, Mnih,
    Teh 2017, "The Concrete Distribution", ICLR; the binary case).

    Args:
        logits: shape ``(*batch)``, at least one element.
        temperature: a positive finite number or 0-dim tensor.
        num_samples: number of independent samples, >= 1.

    Returns:
        Samples in (0, 1), shape ``(num_samples, *batch)``.

    Example:
        >>> y = relaxed_bernoulli_sample(torch.tensor([0.0, 2.0]), 0.5, 3)
        >>> y.shape, bool(((y > 0) & (y < 1)).all())
        (torch.Size([3, 2]), True)
    """
    logits = _check_logits(logits, min_categories=None)
    temperature = _check_temperature(temperature, logits)
    num_samples = check_positive_int("num_samples", num_samples)
    return RelaxedBernoulli(temperature, logits=logits).rsample((num_samples,))


def straight_through_bernoulli(logits: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Straight-through Bernoulli samples: value b ~ Bernoulli(p), gradient that of p.

    Implements b - p.detach() + p with p = sigmoid(logits) (Bengio, Léonard, Courville 2013,
    "Estimating or Propagating Gradients Through Stochastic Neurons"), so the gradient of
    E[f(b)] is estimated by f'(b) dp/dlogits. This is BIASED: it is exact when f is linear
    in b, but for f(b) = (b - t)^2 the mean is 2(p - t) p(1 - p) against the true
    (1 - 2t) p(1 - p), off by (2p - 1) p(1 - p). Chapter 6 measures the bias.

    Args:
        logits: shape ``(*batch)``, at least one element.
        num_samples: number of independent samples, >= 1.

    Returns:
        Samples equal to 0 or 1, shape ``(num_samples, *batch)``, differentiable in logits.

    Example:
        >>> logits = torch.zeros(3, requires_grad=True)
        >>> b = straight_through_bernoulli(logits, 2)
        >>> bool(((b == 0) | (b == 1)).all())
        True
        >>> b.sum().backward(); logits.grad  # 2 samples x sigmoid'(0) = 2 x 0.25
        tensor([0.5000, 0.5000, 0.5000])
    """
    logits = _check_logits(logits, min_categories=None)
    num_samples = check_positive_int("num_samples", num_samples)
    dist = Bernoulli(logits=logits)
    b = dist.sample((num_samples,))  # (S, *batch), no gradient
    p = dist.probs  # sigmoid(logits), with gradient
    return b + (p - p.detach())  # value exactly b (see gumbel_softmax_sample)


def straight_through_categorical(logits: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Straight-through categorical samples: value one-hot b ~ Cat(p), gradient that of p.

    Implements b - p.detach() + p with p = softmax(logits) (Bengio, Léonard, Courville 2013,
    "Estimating or Propagating Gradients Through Stochastic Neurons"): the gradient of
    E[f(b)] is estimated by J_p^T grad f(b). BIASED unless f is linear in b; for
    f(x) = ||x - t||^2 the bias is J_p^T 2p, with J_p^T v = p * (v - p . v).

    Args:
        logits: shape ``(*batch, K)``, K >= 2.
        num_samples: number of independent samples, >= 1.

    Returns:
        One-hot samples, shape ``(num_samples, *batch, K)``, differentiable in logits.

    Example:
        >>> b = straight_through_categorical(torch.zeros(4), 5)
        >>> b.shape, bool((b.sum(-1) == 1).all())
        (torch.Size([5, 4]), True)
    """
    logits = _check_logits(logits, min_categories=2)
    num_samples = check_positive_int("num_samples", num_samples)
    dist = OneHotCategorical(logits=logits)
    b = dist.sample((num_samples,))  # (S, *batch, K), no gradient
    p = dist.probs  # softmax(logits), with gradient
    return b + (p - p.detach())
