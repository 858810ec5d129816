"""Samples of discrete variables that gradients can pass through (Chapter 6).

A categorical sample is a step function of its logits, so its pathwise gradient is zero
almost everywhere. Three ways around it, each built on ``torch.distributions``:

- Gumbel-max (:func:`gumbel_max_sample`, on :func:`gumbel_noise`): argmax_k (logits_k + G_k),
  G_k ~ Gumbel(0, 1), is an exact categorical sample.
- Gumbel-softmax / Concrete (:func:`gumbel_softmax_sample`): softmax((logits + G) /
  temperature) relaxes the argmax into a point of the simplex that is differentiable in the
  logits; as temperature -> 0 it becomes the one-hot Gumbel-max sample. The temperature is a
  dial: high temperatures bias the gradient, low ones inflate its variance. ``hard=True``
  gives the straight-through Gumbel-softmax.
- Straight-through (:func:`straight_through_bernoulli`): forward the discrete sample,
  backpropagate as if it were its mean. Biased, cheap, and often good enough.

Where torch already has the sampler, call torch's. The relaxed Bernoulli (binary Concrete)
y = sigmoid((logits + L) / temperature), L standard logistic, is
``torch.distributions.RelaxedBernoulli(temperature, logits=logits).rsample((n,))``. The
straight-through categorical, value one-hot b ~ Cat(softmax(logits)) and gradient that of
p = softmax(logits) (b - p.detach() + p), is
``torch.distributions.OneHotCategoricalStraightThrough(logits=logits).rsample((n,))``.

Choosing the temperature without the exact gradient (:func:`mse_against_reference`): the mean
squared error of an average of B samples of a biased estimator is estimated, without bias,
against held-out draws of any unbiased estimator (e.g. REINFORCE with leave-one-out).

Samples run along dimension 0: logits ``(*batch, K)`` give samples ``(num_samples, *batch, K)``.
Bad input (logits that are not a finite floating tensor, a temperature that is not a positive
finite scalar, a count that is not a positive integer or would not fit in memory, a flag
that is not a bool) raises ``ValueError`` or ``TypeError`` naming the argument.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, RelaxedOneHotCategorical
from torch.distributions.utils import clamp_probs

from ._validation import (
    check_allocation,
    check_bool,
    check_device,
    check_finite,
    check_positive_int,
    check_samples,
    describe,
)
from .montecarlo import summarize

__all__ = [
    "gumbel_noise",
    "gumbel_max_sample",
    "gumbel_softmax_sample",
    "straight_through_bernoulli",
    "mse_against_reference",
]


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
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be positive and finite, got {value}")
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    if not (torch.isfinite(t) and t > 0):  # e.g. 1e-50 is 0 in float32
        raise ValueError(
            f"temperature must be positive and finite in the logits' dtype "
            f"{logits.dtype}, got {value}, which is {float(t)} there"
        )
    return t


def _check_scores_fit(logits: torch.Tensor, temperature: torch.Tensor) -> None:
    """Refuse a temperature so small that (logits + G) / temperature overflows the dtype.

    torch scores a Concrete draw as s = (log softmax(logits) + G) / temperature, with G in
    [-log(-log eps), -log(-log(1 - eps))] after the clamp (eps the machine epsilon); an
    infinite s makes the sample NaN (inf - inf). Checked before drawing, so a refused call
    leaves the random generator where it was.
    """
    if logits.numel() == 0:
        return
    finfo = torch.finfo(logits.dtype)
    g_low, g_high = -math.log(-math.log(finfo.eps)), -math.log(-math.log1p(-finfo.eps))
    normalized = torch.log_softmax(logits.detach(), dim=-1)
    largest = max(abs(normalized.min().item() + g_low), abs(normalized.max().item() + g_high))
    if largest / float(temperature) > finfo.max / 2:  # a factor 2 of room for rounding
        raise ValueError(
            f"temperature={float(temperature)} is too small for {logits.dtype} logits: the "
            f"scores (logits + G) / temperature, up to {largest:.3g} / temperature, overflow "
            f"and the samples would be NaN; use a larger temperature (or float64 logits)"
        )


def _check_samples_fit(num_samples: int, logits: torch.Tensor) -> None:
    """Refuse a num_samples whose (num_samples, *logits.shape) output cannot fit in memory."""
    check_allocation(
        "num_samples", num_samples, num_samples * logits.numel() * logits.element_size()
    )


def gumbel_noise(
    shape, generator: torch.Generator | None = None, *, dtype=None, device=None
) -> torch.Tensor:
    """Standard Gumbel noise G = -log(-log U), U ~ Uniform(0, 1), shaped ``shape``.

    If U ~ Uniform(0, 1) then P(-log(-log U) <= g) = P(U <= exp(-e^-g)) = exp(-e^-g), the
    Gumbel(0, 1) CDF (inverse-CDF sampling). U is clamped to [eps, 1 - eps], eps the
    machine epsilon of ``dtype``, as ``torch.distributions`` does: ``torch.rand`` can
    return exactly 0, where G = -inf (U = 1 would give +inf), and infinite scores make
    softmax and its gradient NaN (inf - inf). The clamp truncates G to about [-2.8, 15.9]
    in float32 ([-3.6, 36] in float64), changing any probability by at most about eps.

    Args:
        shape: the output shape, a sequence of integers >= 0 (a tuple, a list, a
            ``torch.Size``).
        generator: a ``torch.Generator`` on the output's device, or None for the global one.
        dtype: a floating ``torch.dtype``, or None for ``torch.get_default_dtype()``.
        device: a ``torch.device`` or device string, or None for the default device.

    Returns:
        G, shape ``shape``, finite, in ``dtype``.

    Example:
        >>> gumbel_noise((2, 3)).shape
        torch.Size([2, 3])
    """
    if isinstance(shape, (str, bytes, torch.Tensor)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"shape must be a sequence of integers, got {describe(shape)}")
    shape = tuple(shape)
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"shape must be a sequence of integers, got {describe(shape)}")
        if size < 0:
            raise ValueError(f"shape must hold sizes >= 0, got {shape}")
    shape = torch.Size(int(size) for size in shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {describe(dtype)}")
    if device is not None:
        if not isinstance(device, (str, torch.device)):
            raise TypeError(
                f"device must be a torch.device, a device string or None, got {describe(device)}"
            )
        device = check_device("device", device)
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {describe(generator)}"
            )
        target = device if device is not None else torch.empty(0).device
        if generator.device.type != target.type:
            raise ValueError(
                f"generator must be on the output's device ({target}), "
                f"got a generator on {generator.device}"
            )
    check_allocation("shape", tuple(shape), shape.numel() * dtype.itemsize)
    u = clamp_probs(torch.rand(shape, generator=generator, dtype=dtype, device=device))
    return -torch.log(-torch.log(u))


def gumbel_max_sample(
    logits: torch.Tensor, num_samples: int, *, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Exact categorical samples by the Gumbel-max trick: k = argmax_j (logits_j + G_j).

    Why it works: logits_j + G_j has CDF F_j(x) = exp(-e^{l_j - x}) and density
    e^{l_j - x} F_j(x). Index k wins when every other score is below x_k, so with
    Z = sum_j e^{l_j} and t = e^{-x},
    P(argmax = k) = int e^{l_k - x} prod_j F_j(x) dx = int_0^inf e^{l_k} e^{-t Z} dt
    = e^{l_k} / Z = softmax(logits)_k.
    The argmax is piecewise constant in the logits: it carries no gradient (Maddison,
    Mnih, Teh 2017, "The Concrete Distribution", ICLR; Jang, Gu, Poole 2017).

    Args:
        logits: unnormalized log-probabilities, a finite floating tensor of shape
            ``(*batch, K)``, K >= 2.
        num_samples: number of independent samples, an integer >= 1.
        noise: optional Gumbel(0, 1) noise ``(num_samples, *batch, K)``, a finite floating
            tensor on the logits' device, to replay fixed noise in tests and figures; drawn
            with :func:`gumbel_noise` when None.

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
        _check_samples_fit(num_samples, logits)
        noise = gumbel_noise(shape, dtype=logits.dtype, device=logits.device)
    elif not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor, got {describe(noise)}")
    elif tuple(noise.shape) != shape:
        raise ValueError(
            f"noise must have shape (num_samples, *batch, K) = {shape}, got {tuple(noise.shape)}"
        )
    elif noise.device != logits.device:
        raise ValueError(
            f"noise must be on the logits' device ({logits.device}), got {noise.device}"
        )
    return (logits + check_finite("noise", noise.detach())).argmax(dim=-1)  # (S, *batch)


def gumbel_softmax_sample(
    logits: torch.Tensor, temperature, num_samples: int, *, hard: bool = False
) -> torch.Tensor:
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
        logits: a finite floating tensor of shape ``(*batch, K)``, K >= 2.
        temperature: a positive finite number or 0-dim floating tensor (may require grad).
        num_samples: number of independent samples, an integer >= 1.
        hard: True for the straight-through one-hot sample instead of y; False (default)
            for y.

    Returns:
        Samples, shape ``(num_samples, *batch, K)``, in the logits' dtype.

    Raises:
        ValueError: also when the temperature is so small that the scores
            (logits + G) / temperature overflow the logits' dtype (the samples would be NaN).

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
    hard = check_bool("hard", hard)
    _check_samples_fit(num_samples, logits)
    _check_scores_fit(logits, temperature)
    dist = RelaxedOneHotCategorical(temperature, logits=logits)
    soft = dist.rsample((num_samples,))  # (S, *batch, K)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    # Same gradient as hard - soft.detach() + soft, but the value is one-hot exactly:
    # soft - soft.detach() is exactly 0, while (1 - s) + s can round away from 1.
    return one_hot + (soft - soft.detach())


def straight_through_bernoulli(logits: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Straight-through Bernoulli samples: value b ~ Bernoulli(p), gradient that of p.

    Implements b - p.detach() + p with p = sigmoid(logits) (Bengio, Léonard, Courville 2013,
    "Estimating or Propagating Gradients Through Stochastic Neurons"), so the gradient of
    E[f(b)] is estimated by f'(b) dp/dlogits. This is BIASED: it is exact when f is linear
    in b, but for f(b) = (b - t)^2 the mean is 2(p - t) p(1 - p) against the true
    (1 - 2t) p(1 - p), off by (2p - 1) p(1 - p). Chapter 6 measures the bias.

    Args:
        logits: a finite floating tensor of shape ``(*batch)``, at least one element.
        num_samples: number of independent samples, an integer >= 1.

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
    _check_samples_fit(num_samples, logits)
    dist = Bernoulli(logits=logits)
    b = dist.sample((num_samples,))  # (S, *batch), no gradient
    p = dist.probs  # sigmoid(logits), with gradient
    return b + (p - p.detach())  # value exactly b (see gumbel_softmax_sample)


def mse_against_reference(samples, reference, batch: int) -> torch.Tensor:
    """Unbiased estimate of MSE_B = ||E[g] - ∇F||² + tr Var[g] / B, without knowing ∇F.

    ``samples`` are N independent single-sample gradients g_n of one estimator (biased or
    not), ``reference`` M independent draws r_m of an *unbiased* estimator of ∇F, independent
    of the g_n. With means ḡ, r̄ and Bessel-corrected variances s_g², s_r² (per coordinate),
    E||ḡ - r̄||² = ||E[g] - ∇F||² + tr Var[g] / N + tr Var[r] / M, so

        MSE_B ≈ ||ḡ - r̄||² - Σ s_g² / N - Σ s_r² / M + Σ s_g² / B

    is unbiased for the MSE of an average of B samples (Chapter 6, eq-dl-mse). It can come out
    negative when the bias is below the noise. Used to choose a temperature (or REBAR's η, τ)
    from held-out draws: the exact gradient, an oracle no user has, never enters.

    Args:
        samples: the g_n, a finite floating tensor ``(N, *D)``, N >= 2.
        reference: the r_m, a finite floating tensor ``(M, *D)``, M >= 2.
        batch: B, the number of samples averaged in one estimate, an integer >= 1.

    Returns:
        The estimate, a 0-dim tensor.

    Example:
        >>> g = torch.tensor([[1.0], [3.0]]); r = torch.tensor([[2.0], [2.0]])
        >>> mse_against_reference(g, r, 1)  # (2 - 2)² - 2/2 - 0 + 2/1
        tensor(1.)
    """
    est = summarize(check_samples("samples", samples))
    ref = summarize(check_samples("reference", reference))
    if est.mean.shape != ref.mean.shape:
        raise ValueError(
            f"reference must have shape (M, *D) with D = {tuple(est.mean.shape)} as in "
            f"samples, got shape {tuple(ref.samples.shape)}"
        )
    batch = check_positive_int("batch", batch)
    gap2 = ((est.mean - ref.mean) ** 2 - est.stderr**2 - ref.stderr**2).sum()
    return gap2 + (est.stderr**2).sum() * est.num_samples / batch
