"""Estimators of ∇θ E_{x~p(x;θ)}[f(x)] that report per-sample estimates and a standard error.

Three estimators, one return type (Mohamed et al. 2020, "Monte Carlo Gradient Estimation in
Machine Learning", JMLR 21):

- :func:`score_function`: (f(x) - b) ∇θ log p(x; θ), any distribution, any f (§4; baselines
  §7). Chapter 3.
- :func:`pathwise`: ∇θ f(x(θ, ε)) through ``rsample()``, for differentiable f (§5). Chapter 4.
- :func:`finite_difference`: central differences over θ ± h e_d; any distribution and f,
  bias O(h²). The honest baseline of Chapter 2.

Each returns a :class:`GradientEstimate` whose ``samples`` row n is the per-sample estimate
g_n, so ``mean`` is their average, ``stderr`` the standard error, and variances can be
measured from the rows. Everything is vectorized over samples: per-sample gradients (an N x D
Jacobian) come from the double-backward trick of :mod:`companion.surrogates`, with a chunked
reverse-mode fallback for backward passes that cannot be differentiated (Beta, Dirichlet).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from ._validation import check_callable, check_finite, check_positive_int, describe
from .baselines import _centred
from .montecarlo import Estimate
from .surrogates import _per_sample_gradients


@dataclass(frozen=True)
class GradientEstimate(Estimate):
    """A Monte Carlo gradient estimate: ``mean`` and ``stderr`` shaped like θ.

    Attributes:
        mean: the estimate of ∇θ E[f(x)], shape ``(D,)``.
        stderr: its standard error, shape ``(D,)``.
        samples: the per-sample estimates g_n, one row per draw, shape ``(N, D)``.
    """


# ---------------------------------------------------------------- input checks


def _check_theta(theta) -> torch.Tensor:
    """A detached copy of θ: the caller's tensor and its ``.grad`` are never touched."""
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
        raise TypeError(f"theta must be a 1-D floating-point tensor, got {describe(theta)}")
    if theta.dim() != 1 or theta.numel() == 0:
        raise ValueError(f"theta must be a 1-D tensor with at least one entry, got shape "
                         f"{tuple(theta.shape)}")
    return check_finite("theta", theta.detach().clone())


def _make_dist(dist_fn, theta: torch.Tensor) -> torch.distributions.Distribution:
    dist = dist_fn(theta)
    if not isinstance(dist, torch.distributions.Distribution):
        raise TypeError("dist_fn(theta) must return a torch.distributions.Distribution, "
                        f"got {describe(dist)}")
    return dist


def _evaluate(f, x: torch.Tensor, num_samples: int, dtype: torch.dtype) -> torch.Tensor:
    """f(x), checked to be a finite tensor of shape (num_samples,); keeps its graph."""
    values = f(x)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"f must return a tensor of shape ({num_samples},), one value per "
                        f"sample, got {describe(values)}")
    if values.shape != (num_samples,):
        raise ValueError(f"f must return one value per sample, shape ({num_samples},), got "
                         f"shape {tuple(values.shape)} for samples of shape {tuple(x.shape)}")
    check_finite("f(x)", values.detach())
    return values if values.is_floating_point() else values.to(dtype)


def _check_common(dist_fn, theta, f, num_samples):
    check_callable("dist_fn", dist_fn)
    check_callable("f", f)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    return _check_theta(theta), num_samples


def _summarize(samples: torch.Tensor) -> GradientEstimate:
    """Mean and standard error s / sqrt(N) of the per-sample estimates ``(N, D)``."""
    check_finite("the per-sample gradient estimates", samples)
    stderr = samples.std(dim=0, unbiased=True) / samples.shape[0] ** 0.5
    return GradientEstimate(mean=samples.mean(dim=0), stderr=stderr, samples=samples)


# ---------------------------------------------------------------- estimators


def score_function(dist_fn, theta, f, num_samples, baseline=None) -> GradientEstimate:
    """Score-function (REINFORCE, log-derivative) estimate of ∇θ E_{x~p(x;θ)}[f(x)].

    Mohamed et al. 2020, §4 (baselines §7): ∇θ E[f(x)] = E[(f(x) - b) ∇θ log p(x; θ)] for
    any b independent of x, estimated by the mean of

        g_n = (f(x_n) - b_n) ∇θ log p(x_n; θ),    x_n ~ p(x; θ) drawn with ``sample()``.

    f need not be differentiable and x may be discrete; no gradient flows through x or f.

    Args:
        dist_fn: maps θ to a ``torch.distributions.Distribution`` (any batch/event shape;
            the log-density of a draw is summed over its batch dimensions).
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)``.
        num_samples: N >= 2.
        baseline: None (b = 0); a number; a tensor of shape ``(D,)``, one constant per
            coordinate (e.g. :func:`companion.baselines.optimal_baseline` from independent
            draws); or ``"loo"``, b_n = mean of the other samples' f, which keeps the estimate
            unbiased. With ``"loo"`` the g_n are weakly dependent (each b_n uses the other
            draws), so ``stderr`` is the usual large-N approximation.

    Returns:
        A :class:`GradientEstimate`: ``mean`` and ``stderr`` of shape ``(D,)``, ``samples``
        the g_n, shape ``(N, D)``.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[0], t[1])
        >>> est = score_function(normal, torch.tensor([1.0, 1.0]), lambda x: x**2, 100_000)
        >>> est.samples.shape
        torch.Size([100000, 2])
        >>> est.mean  # ∇(μ² + σ²) = (2μ, 2σ) = (2, 2)  # doctest: +SKIP
        tensor([1.9910, 2.0057])
    """
    theta, num_samples = _check_common(dist_fn, theta, f, num_samples)
    with torch.no_grad():
        dist = _make_dist(dist_fn, theta)
        x = dist.sample((num_samples,))  # (N, *batch_shape, *event_shape), no path to θ
        values = _evaluate(f, x, num_samples, theta.dtype).detach()  # (N,)
    centred = _centred(values, baseline, theta)  # (N, 1) or (N, D)

    def log_prob(start, stop):  # log p(x_n; θ) for n in [start, stop), summed over batch dims
        lp = _make_dist(dist_fn, theta).log_prob(x[start:stop])
        return lp.reshape(stop - start, -1).sum(dim=1)

    with torch.enable_grad():
        theta.requires_grad_(True)
        scores = _per_sample_gradients(log_prob, theta, num_samples)  # (N, D)
    return _summarize(centred * scores)


def pathwise(dist_fn, theta, f, num_samples) -> GradientEstimate:
    """Pathwise (reparameterization) estimate of ∇θ E_{x~p(x;θ)}[f(x)].

    Mohamed et al. 2020, §5: write x = x(θ, ε) with ε ~ p(ε) independent of θ (what
    ``rsample()`` does); then ∇θ E[f(x)] = E[∇θ f(x(θ, ε))], estimated by the mean of

        g_n = ∇θ f(x(θ, ε_n)).

    Needs ``dist_fn(theta).has_rsample`` and f differentiable in x. For Beta and Dirichlet
    (implicit reparameterization) the backward pass of ``rsample`` cannot be differentiated
    again, so the fast double-backward route fails; the estimate then falls back to reverse
    mode one sample at a time in chunks of 64 draws (correct, slower), calling f on chunks
    and redrawing the samples. f must therefore act on each sample separately. The same
    fallback is taken when only part of the graph is affected (e.g. an affine map of a Beta
    draw), detected because the per-sample rows no longer sum to the batch gradient.

    Args:
        dist_fn: maps θ to a ``torch.distributions.Distribution`` with ``rsample``.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)``; a coordinate
            of θ that f does not depend on gets a zero gradient.
        num_samples: N >= 2.

    Returns:
        A :class:`GradientEstimate` with ``mean``, ``stderr`` of shape ``(D,)`` and the
        per-sample g_n as ``samples``, shape ``(N, D)``.

    Raises:
        ValueError: the distribution has no reparameterized sampler.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[0], t[1])
        >>> est = pathwise(normal, torch.tensor([1.0, 1.0]), lambda x: x**2, 1_000)
        >>> est.mean  # ∇(μ² + σ²) = (2, 2); g_n = (2x_n, 2x_n ε_n)  # doctest: +SKIP
        tensor([2.0578, 2.1738])
        >>> est.stderr.shape
        torch.Size([2])
    """
    theta, num_samples = _check_common(dist_fn, theta, f, num_samples)
    dist = _make_dist(dist_fn, theta)
    if not dist.has_rsample:
        raise ValueError(
            f"dist_fn(theta) returned a {type(dist).__name__}, which has no reparameterized "
            "sampler (has_rsample is False); use score_function, which works for any "
            "distribution, or finite_difference"
        )

    def values(start, stop):  # f(x(θ, ε_n)) for fresh draws, with the graph to θ
        x = _make_dist(dist_fn, theta).rsample((stop - start,))
        return _evaluate(f, x, stop - start, theta.dtype)

    with torch.enable_grad():
        theta.requires_grad_(True)
        grads = _per_sample_gradients(values, theta, num_samples)  # (N, D)
    return _summarize(grads)


def _values_at(dist_fn, theta, f, num_samples, seed) -> torch.Tensor:
    """f(x_n) for x_n ~ p(x; θ); with a seed, the draws replay the same random stream."""
    dist = _make_dist(dist_fn, theta)
    if seed is None:
        return _evaluate(f, dist.sample((num_samples,)), num_samples, theta.dtype)
    # fork_rng restores the global state afterwards: the caller's stream moves on only by
    # the one draw that chose the seed.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x = dist.sample((num_samples,))
    return _evaluate(f, x, num_samples, theta.dtype)


def finite_difference(dist_fn, theta, f, num_samples, step=1e-3,
                      common_random_numbers=True) -> GradientEstimate:
    """Central finite-difference estimate of ∇θ E_{x~p(x;θ)}[f(x)], one coordinate at a time.

    For each coordinate d, with e_d the d-th unit vector and step h,

        g_n[d] = (f(x_n^{θ + h e_d}) - f(x_n^{θ - h e_d})) / (2h),

    where x_n^{θ'} is a draw from p(x; θ'), by ``sample()``: any distribution and any f. The
    mean estimates the difference quotient (E_{θ+he_d}[f] - E_{θ-he_d}[f]) / (2h), whose bias
    as a gradient is O(h²) (zero when E[f] is quadratic in θ). With
    ``common_random_numbers=True`` all 2D evaluations replay one random stream (one seed drawn
    from the global generator), so the noise is shared and cancels in the difference, a
    coupling of the kind in Mohamed et al. 2020, §7; with False each evaluation gets fresh
    noise and the variance grows like Var[f] / (2h²). The denominator is the realized
    (θ + h e_d)_d - (θ - h e_d)_d, so rounding of θ ± h does not bias the quotient.

    Args:
        dist_fn: maps θ to a ``torch.distributions.Distribution``.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)``; called 2D times.
        num_samples: N >= 2.
        step: h > 0; θ ± h e_d must be valid parameters of ``dist_fn``.
        common_random_numbers: share the noise across all 2D evaluations (default True).

    Returns:
        A :class:`GradientEstimate`: ``mean``, ``stderr`` of shape ``(D,)``, ``samples`` the
        g_n, shape ``(N, D)``.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[0], t[1])
        >>> theta = torch.tensor([1.0, 1.0], dtype=torch.float64)
        >>> est = finite_difference(normal, theta, lambda x: x**2, 1_000, step=0.1)
        >>> est.mean  # with shared noise g_n = (2x_n, 2x_n ε_n), as pathwise  # doctest: +SKIP
        tensor([2.0280, 2.1130], dtype=torch.float64)
    """
    theta, num_samples = _check_common(dist_fn, theta, f, num_samples)
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a number > 0, got {describe(step)}")
    if not 0 < step < float("inf"):
        raise ValueError(f"step must be a finite number > 0, got {step}")
    if not isinstance(common_random_numbers, bool):
        raise TypeError(f"common_random_numbers must be True or False, got "
                        f"{describe(common_random_numbers)}")
    seed = int(torch.randint(0, 2**62, ()).item()) if common_random_numbers else None
    columns = []
    with torch.no_grad():
        for d in range(theta.shape[0]):
            shift = torch.zeros_like(theta)
            shift[d] = step
            plus, minus = theta + shift, theta - shift
            difference = (_values_at(dist_fn, plus, f, num_samples, seed)
                          - _values_at(dist_fn, minus, f, num_samples, seed))  # (N,)
            columns.append(difference / (plus[d] - minus[d]))
    return _summarize(torch.stack(columns, dim=1))
