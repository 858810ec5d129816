"""Monte Carlo estimates of expectations, with their standard errors.

The estimator of mu = E_{x~p}[f(x)] from N independent draws is the sample mean

    mu_hat = (1/N) sum_n f(x_n),                     E[mu_hat] = mu            (unbiased)
    Var[mu_hat] = Var[f(x)] / N,                     stderr = s / sqrt(N)      (the 1/sqrt(N) rate)

with s the sample standard deviation (Bessel-corrected). By the central limit theorem
mu_hat +- z * stderr is an approximate confidence interval. Chapter 1 derives all of this.

Every function here returns an :class:`Estimate`, whose ``samples`` are the independent
per-sample values the mean and standard error were computed from, so later code can
re-summarize, plot or test them. Samples always run along dimension 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import torch

from ._validation import (
    as_finite_tensor,
    as_tensor,
    check_allocation,
    check_bool,
    check_callable,
    check_distribution,
    check_finite,
    check_positive_int,
    check_probability,
    check_samples,
    describe,
    evaluate_f,
)

__all__ = [
    "Estimate",
    "summarize",
    "expectation",
    "running_mean",
    "sample_variance",
    "antithetic_expectation",
    "stratified_expectation",
    "control_variate",
    "importance_sampling",
    "effective_sample_size",
]


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: ``mean`` and ``stderr`` shaped ``shape``, from ``samples``.

    Attributes:
        mean: the sample mean, shape ``(*shape)``.
        stderr: its standard error s / sqrt(N), shape ``(*shape)``.
        samples: the N independent per-sample values, shape ``(N, *shape)``.
    """

    mean: torch.Tensor
    stderr: torch.Tensor
    samples: torch.Tensor

    def __post_init__(self):
        # Types and shapes only: a record may hold NaN (running_mean's first stderr is
        # undefined); values are checked where an Estimate is consumed.
        for name in ("mean", "stderr", "samples"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
        if self.stderr.shape != self.mean.shape:
            raise ValueError(
                f"stderr must have the shape of mean {tuple(self.mean.shape)}, got "
                f"shape {tuple(self.stderr.shape)}"
            )
        shape = self.samples.shape
        if len(shape) == 0 or (shape[1:] != self.mean.shape and shape != self.mean.shape):
            raise ValueError(
                f"samples must have shape (N, *mean.shape), mean.shape = "
                f"{tuple(self.mean.shape)} (or mean's shape, for a running mean), "
                f"got shape {tuple(shape)}"
            )

    @property
    def num_samples(self) -> int:
        """N, the number of independent samples behind the estimate."""
        return self.samples.shape[0]

    def confidence_interval(self, level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
        """Normal-approximation interval ``mean -+ z * stderr`` with coverage ``level``.

        z is the two-sided normal quantile, 1.96 for ``level=0.95``. Returns ``(lower, upper)``,
        each shaped like ``mean``.
        """
        level = check_probability("level", level)
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return self.mean - z * self.stderr, self.mean + z * self.stderr


def summarize(values) -> Estimate:
    """Mean and standard error of independent per-sample values.

    Implements mu_hat = (1/N) sum_n v_n and stderr = s / sqrt(N), s the Bessel-corrected
    sample standard deviation.

    Args:
        values: shape ``(N, *shape)``, N >= 2 independent samples along dimension 0.

    Returns:
        An :class:`Estimate` with ``mean`` and ``stderr`` shaped ``(*shape)``.

    Example:
        >>> summarize(torch.tensor([1.0, 2.0, 3.0])).mean
        tensor(2.)
    """
    samples = check_samples("values", values)
    n = samples.shape[0]
    mean = samples.mean(dim=0)
    centred = samples - mean  # two passes: as accurate as Tensor.std, and faster over dim 0
    stderr = ((centred * centred).sum(dim=0) / (n - 1) / n).sqrt()
    return Estimate(mean=mean, stderr=stderr, samples=samples)


def expectation(f, dist: torch.distributions.Distribution, num_samples: int) -> Estimate:
    """Monte Carlo estimate of E_{x~dist}[f(x)] from ``num_samples`` independent draws.

    Args:
        f: maps samples shaped ``(num_samples, *batch_shape, *event_shape)`` to values shaped
            ``(num_samples, *shape)`` (usually ``(num_samples,)``).
        dist: any ``torch.distributions.Distribution``; draws use the global torch generator,
            so seed with :func:`companion.seeding.seed_everything`.
        num_samples: N >= 2.

    Returns:
        An :class:`Estimate` of shape ``(*shape)``.

    Example:
        >>> est = expectation(lambda x: x**2, torch.distributions.Normal(1.0, 2.0), 10_000)
        >>> est.mean  # close to 1 + 4 = 5  # doctest: +SKIP
    """
    check_callable("f", f)
    check_distribution("dist", dist)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    _check_draws("num_samples", num_samples, dist)
    with torch.no_grad():
        x = dist.sample((num_samples,))
        values = evaluate_f(f, x, num_samples, scalar=False)
    return summarize(values)


def _check_draws(name: str, count: int, dist, per_count: int = 1) -> None:
    """Refuse, before drawing, ``count`` draws of ``dist`` that cannot fit in memory."""
    per_draw = dist.batch_shape.numel() * dist.event_shape.numel() * per_count
    check_allocation(name, count, count * per_draw * 8)


def running_mean(values) -> Estimate:
    """Running means and standard errors after n = 1, ..., N samples, for convergence plots.

    Entry n - 1 of ``mean`` is (1/n) sum_{m<=n} v_m and of ``stderr`` is s_n / sqrt(n), with
    s_n the Bessel-corrected standard deviation of the first n values (NaN at n = 1, where
    it is undefined). Computed in one pass with cumulative sums, in float64.

    Args:
        values: shape ``(N, *shape)``, N >= 2.

    Returns:
        An :class:`Estimate` whose ``mean`` and ``stderr`` are shaped ``(N, *shape)``;
        ``samples`` are the input values.
    """
    samples = check_samples("values", values)
    v = samples.double()
    n = torch.arange(1, v.shape[0] + 1, dtype=torch.float64, device=v.device)
    n = n.reshape(-1, *([1] * (v.dim() - 1)))  # (N, 1, ..., 1) to broadcast over shape
    mean = v.cumsum(0) / n
    # Var_n = (sum v^2 - n mean^2) / (n - 1); centred on the overall mean for stability.
    centred = v - v.mean(dim=0)
    sq = (centred**2).cumsum(0)
    centred_mean = centred.cumsum(0) / n
    var = (sq - n * centred_mean**2) / (n - 1)
    stderr = (var.clamp_min(0) / n).sqrt()
    stderr[0] = float("nan")
    return Estimate(mean=mean.to(samples.dtype), stderr=stderr.to(samples.dtype), samples=samples)


def sample_variance(values) -> Estimate:
    """Estimate Var[v] with a standard error, for checking variances against theory.

    The unbiased sample variance s^2 is the mean of the U-statistic kernel; its standard
    error uses the large-N formula Var[s^2] ~ (m4 - s^4) / N, where m4 is the fourth
    central sample moment. That formula is first order in 1/N: where m4 = s^4 (a symmetric
    two-point distribution, e.g. Bernoulli(1/2)) the first-order term vanishes and the
    returned stderr is close to 0, although s^2 still varies at order 1/N. There, check the
    variance across repeated estimates instead.

    Args:
        values: shape ``(N, *shape)``, N >= 2.

    Returns:
        An :class:`Estimate` of shape ``(*shape)``; ``samples`` are the squared deviations
        (N / (N - 1)) (v_n - mean)^2, whose mean is s^2.
    """
    samples = check_samples("values", values)
    n = samples.shape[0]
    deviations = samples - samples.mean(dim=0)
    squared = deviations**2 * (n / (n - 1))
    variance = squared.mean(dim=0)
    fourth = (deviations**4).mean(dim=0)
    stderr = ((fourth - variance**2).clamp_min(0) / n).sqrt()
    return Estimate(mean=variance, stderr=stderr, samples=squared)


def antithetic_expectation(f, dist: torch.distributions.Distribution, num_pairs: int) -> Estimate:
    """Antithetic estimate of E_{x~dist}[f(x)]: pairs x = F^-1(u), x' = F^-1(1 - u).

    Each pair contributes its mean f_bar_n = (f(x_n) + f(x'_n)) / 2, so that
    Var[f_bar] = (Var[f(x)] + Cov[f(x), f(x')]) / 2, smaller than Var[f(x)] / 2 (two plain
    draws) exactly when the covariance is negative, as for monotone f.

    Args:
        f: as in :func:`expectation`; called once on a batch of ``2 * num_pairs`` samples.
        dist: a distribution with an inverse CDF (``icdf``), e.g. Normal, Exponential, Uniform.
        num_pairs: number of antithetic pairs, >= 2.

    Returns:
        An :class:`Estimate` whose ``samples`` are the ``num_pairs`` pair means f_bar_n.
    """
    check_callable("f", f)
    check_distribution("dist", dist)
    num_pairs = check_positive_int("num_pairs", num_pairs, minimum=2)
    _check_draws("num_pairs", num_pairs, dist, per_count=2)
    shape = (num_pairs, *dist.batch_shape, *dist.event_shape)
    with torch.no_grad():
        dtype = dist.mean.dtype if dist.mean.is_floating_point() else torch.get_default_dtype()
        u = torch.rand(shape, dtype=dtype, device=dist.mean.device)
        try:
            x = torch.cat([dist.icdf(u), dist.icdf(1 - u)])  # (2 * num_pairs, ...)
        except NotImplementedError as err:
            raise ValueError(
                f"dist must have an inverse CDF (icdf) for antithetic sampling, "
                f"got {type(dist).__name__}, which has none"
            ) from err
        values = evaluate_f(f, x, 2 * num_pairs, scalar=False)
    return summarize((values[:num_pairs] + values[num_pairs:]) / 2)


def stratified_expectation(
    f, dist: torch.distributions.Distribution, num_strata: int, num_per_stratum: int
) -> Estimate:
    """Stratified estimate of E_{x~dist}[f(x)]: K equal-probability strata, proportional allocation.

    Stratum k holds x = F^-1((k + v) / K), v ~ U(0, 1), probability 1/K; each of the K
    strata gets ``num_per_stratum`` = m independent draws (N = K m evaluations in all). The
    estimate is mu_hat = (1/K) sum_k mu_hat_k, mu_hat_k the mean of stratum k, with

        Var[mu_hat] = (1/N) sum_k (1/K) sigma_k^2 <= sigma_f^2 / N,

    sigma_k^2 = Var[f(x) | stratum k]: the between-strata part of sigma_f^2 is removed
    (Chapter 1, eq-mc-strat-var; Owen 2013, ch. 8).

    Args:
        f: as in :func:`expectation`; called once on a batch of ``K * m`` samples.
        dist: a distribution with an inverse CDF (``icdf``), e.g. Normal, Uniform.
        num_strata: K >= 1.
        num_per_stratum: m >= 2 draws per stratum.

    Returns:
        An :class:`Estimate` whose ``samples`` are the m replicate means
        (1/K) sum_k f(x_{k,r}), r = 1..m, independent and each unbiased, so that ``stderr``
        is the exact standard error's estimate.

    Example:
        >>> est = stratified_expectation(torch.exp, torch.distributions.Uniform(0.0, 1.0), 10, 100)
        >>> est.mean  # close to e - 1  # doctest: +SKIP
    """
    check_callable("f", f)
    check_distribution("dist", dist)
    num_strata = check_positive_int("num_strata", num_strata)
    num_per_stratum = check_positive_int("num_per_stratum", num_per_stratum, minimum=2)
    _check_draws("num_per_stratum", num_per_stratum, dist)
    _check_draws("num_strata", num_strata, dist)
    per_draw = dist.batch_shape.numel() * dist.event_shape.numel()
    check_allocation(  # both counts are the caller's: name them both
        "num_strata * num_per_stratum",
        f"{num_strata} * {num_per_stratum}",
        num_strata * num_per_stratum * per_draw * 8,
    )
    inner = (*dist.batch_shape, *dist.event_shape)
    with torch.no_grad():
        dtype = dist.mean.dtype if dist.mean.is_floating_point() else torch.get_default_dtype()
        k = torch.arange(num_strata, dtype=dtype, device=dist.mean.device)
        k = k.reshape(1, num_strata, *([1] * len(inner)))  # (1, K, 1, ...)
        v = torch.rand((num_per_stratum, num_strata, *inner), dtype=dtype, device=k.device)
        u = ((k + v) / num_strata).clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)
        try:
            x = dist.icdf(u.reshape(num_per_stratum * num_strata, *inner))
        except NotImplementedError as err:
            raise ValueError(
                f"dist must have an inverse CDF (icdf) for stratified sampling, "
                f"got {type(dist).__name__}, which has none"
            ) from err
        values = evaluate_f(f, x, num_per_stratum * num_strata, scalar=False)
    values = values.reshape(num_per_stratum, num_strata, *values.shape[1:])
    return summarize(values.mean(dim=1))  # (m, ...): one mean over the strata per replicate


def control_variate(values, control, control_mean, coef=None) -> Estimate:
    """Control-variate estimate of E[f]: the mean of f_n - beta (phi_n - E[phi]).

    With the optimal coefficient beta* = Cov[f, phi] / Var[phi] the variance drops by the
    factor 1 - rho^2, rho the correlation of f and phi. When ``coef`` is None, beta* is
    estimated from the same samples (a bias of order 1/N, negligible next to the standard
    error).

    Args:
        values: f(x_n), shape ``(N,)``.
        control: phi(x_n) on the same draws, shape ``(N,)``.
        control_mean: the exact E[phi], a number.
        coef: the coefficient beta, or None for the estimated optimum.

    Returns:
        An :class:`Estimate` of shape ``()`` whose ``samples`` are f_n - beta (phi_n - E[phi]).
    """
    f = check_samples("values", values)
    g = check_samples("control", control)
    if f.dim() != 1 or g.shape != f.shape:
        raise ValueError(
            f"values and control must both have shape (N,), got {tuple(f.shape)} "
            f"and {tuple(g.shape)}"
        )
    mean_g = as_finite_tensor("control_mean", control_mean, dtype=f.dtype)
    if mean_g.dim() != 0:
        raise ValueError(f"control_mean must be a scalar, got shape {tuple(mean_g.shape)}")
    if isinstance(coef, bool):
        raise TypeError(f"coef must be a number or a 0-dim tensor, got {describe(coef)}")
    if coef is None:
        gc = g - g.mean()
        coef = ((f - f.mean()) * gc).sum() / (gc**2).sum().clamp_min(torch.finfo(f.dtype).tiny)
    coef = check_finite("coef", as_tensor("coef", coef, dtype=f.dtype))
    if coef.dim() != 0:
        raise ValueError(
            f"coef must be a scalar (one coefficient for every sample), got shape "
            f"{tuple(coef.shape)}"
        )
    return summarize(f - coef * (g - mean_g))


def _weights(weights, num_samples: int | None = None) -> torch.Tensor:
    """Importance weights shaped (N,): finite, >= 0, not all 0 (N = ``num_samples`` if given)."""
    w = check_samples("weights", weights, min_samples=1 if num_samples is None else 2)
    if w.dim() != 1:
        raise ValueError(f"weights must have shape (N,), got shape {tuple(w.shape)}")
    if num_samples is not None and w.shape[0] != num_samples:
        raise ValueError(
            f"weights must have one entry per value, shape ({num_samples},), "
            f"got shape {tuple(w.shape)}"
        )
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0, got minimum {w.min().item()}")
    if not (w > 0).any():
        raise ValueError("weights must not all be 0 (no draw carries any weight)")
    return w


def importance_sampling(values, weights, *, self_normalized: bool = False) -> Estimate:
    """Importance-sampling estimate of E_p[f] from draws x_n ~ q and weights w_n = p(x_n)/q(x_n).

    Plain (``self_normalized=False``), with normalized densities p and q (Chapter 1,
    eq-is-estimator; unbiased when q > 0 wherever p f != 0):

        mu_hat_IS = (1/N) sum_n w_n f(x_n),     stderr from the N values w_n f(x_n).

    Self-normalized (``self_normalized=True``; p and q may be known only up to constants,
    eq-is-snis; consistent, with a bias of order 1/N):

        mu_hat_SN = sum_n w_n f(x_n) / sum_n w_n,
        stderr = sqrt(sum_n w_n^2 (f(x_n) - mu_hat_SN)^2) / sum_n w_n   (delta method),

    up to the Bessel factor sqrt(N / (N - 1)). Both standard errors are honest only when
    E_q[w^2 f^2] is finite: with weights of infinite variance they are meaningless.

    Args:
        values: f(x_n) at the draws x_n ~ q, shape ``(N, *shape)``, N >= 2, finite.
        weights: w_n, shape ``(N,)``, finite, >= 0, not all 0; any positive multiple will
            do when ``self_normalized``.
        self_normalized: divide by sum_n w_n (True) or by N (False), a bool.

    Returns:
        An :class:`Estimate` of shape ``(*shape)``. Plain: ``samples`` are w_n f(x_n).
        Self-normalized: ``samples`` are the linearized values
        mu_hat_SN + (w_n / w_bar)(f(x_n) - mu_hat_SN), w_bar the mean weight, whose mean is
        mu_hat_SN and whose standard error is the delta-method one above.

    Example:
        >>> q = torch.distributions.Normal(0.0, 2.0)
        >>> x = q.sample((10_000,))
        >>> w = (torch.distributions.Normal(0.0, 1.0).log_prob(x) - q.log_prob(x)).exp()
        >>> importance_sampling(x**2, w, self_normalized=True).mean  # close to 1  # doctest: +SKIP
    """
    f = check_samples("values", values)
    w = _weights(weights, f.shape[0]).to(f.dtype)
    self_normalized = check_bool("self_normalized", self_normalized)
    w = w.reshape(-1, *([1] * (f.dim() - 1)))  # (N, 1, ...) to broadcast over shape
    if not self_normalized:
        return summarize(w * f)
    w = w / w.mean()  # scale-free: only ratios of weights matter
    mean = (w * f).mean(dim=0)  # = sum w f / sum w
    return summarize(mean + w * (f - mean))


def effective_sample_size(weights) -> torch.Tensor:
    """Kish's effective sample size of importance weights, (sum_n w_n)^2 / sum_n w_n^2.

    Between 1 (one weight carries everything) and N (equal weights); invariant to scaling
    the weights. For N draws with normalized weights, ESS / N -> 1 / E_q[w^2] as N grows
    (Chapter 1, eq-is-ess; Kish 1965, Kong 1992): when E_q[w^2] is infinite, ESS / N -> 0.

    Args:
        weights: w_n, shape ``(N,)``, N >= 1, finite, >= 0, not all 0.

    Returns:
        The ESS, a 0-dim tensor in [1, N].

    Example:
        >>> effective_sample_size(torch.tensor([1.0, 1.0, 2.0]))
        tensor(2.6667)
    """
    w = _weights(weights)
    w = w / w.max()  # scale-free, and safe from overflow in w^2
    return w.sum() ** 2 / (w**2).sum()
