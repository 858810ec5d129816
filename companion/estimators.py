"""Estimators of ∇θ E_{x~p(x;θ)}[f(x)] that report per-sample estimates and a standard error.

Three estimators, one argument order ``(f, dist_fn, theta, num_samples)`` and one return type,
:class:`companion.montecarlo.Estimate` (Mohamed et al. 2020, "Monte Carlo Gradient Estimation
in Machine Learning", JMLR 21):

- :func:`score_function`: (f(x) - b) ∇θ log p(x; θ), any distribution, any f (§4; baselines
  §7). Chapter 3.
- :func:`pathwise`: ∇θ f(x(θ, ε)) through ``rsample()``, for differentiable f (§5). Chapter 4.
- :func:`finite_difference`: central differences over θ ± h e_d; any distribution and f,
  bias O(h²). The honest baseline of Chapter 2.

The estimate's ``samples`` row n is the per-sample estimate g_n, so ``mean`` is their average
and ``stderr`` the standard error. The per-sample gradients come from
:func:`per_sample_gradients`: θ is expanded into N copies, one per draw, so that a single
backward pass of Σ_n y_n gives every row ∂y_n/∂θ at once (the copies share θ's value; only
their gradients differ). That is why ``dist_fn`` is *batched*: it maps θ of shape ``(..., D)``
to a distribution whose batch shape starts with θ's leading dimensions, e.g.
``lambda t: Normal(t[..., 0], t[..., 1])``.

Two families are the exception: for ``MultivariateNormal`` and ``LowRankMultivariateNormal``
N copies of θ would mean N triangular solves (and Cholesky factors) of one small matrix,
which torch's batched linear algebra does one matrix at a time, several times slower than
the plain surrogate. Their per-sample gradients with respect to the distribution's own
parameters ψ have a closed form that uses each matrix once (see ``_gaussian_rows``), and
the chain rule to θ needs only ∂ψ/∂θ, which autograd computes once through ``dist_fn``. The
draws are the ones ``rsample`` and ``sample`` make, so in well-conditioned cases the rows
equal the engine's to rounding (tested in float64).
"""

from __future__ import annotations

import numbers
import warnings

import torch

from . import _gaussian_rows as gaussian_rows
from ._validation import (
    check_allocation,
    check_bool,
    check_callable,
    check_finite,
    check_positive_int,
    describe,
    evaluate_f,
)
from .baselines import centre
from .montecarlo import Estimate, summarize

__all__ = ["score_function", "pathwise", "finite_difference", "per_sample_gradients"]


_BATCHED_HINT = (
    "dist_fn must be batched: it receives θ of shape (D,) or (N, D) and must index "
    "the last dimension, e.g. lambda t: Normal(t[..., 0], t[..., 1]), not t[0]"
)


# ---------------------------------------------------------------- input checks


def _check_theta(theta) -> torch.Tensor:
    """A detached copy of θ: the caller's tensor and its ``.grad`` are never touched."""
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
        raise TypeError(f"theta must be a 1-D floating-point tensor, got {describe(theta)}")
    if theta.dim() != 1 or theta.numel() == 0:
        raise ValueError(
            f"theta must be a 1-D tensor with at least one entry, got shape {tuple(theta.shape)}"
        )
    return check_finite("theta", theta.detach().clone())


def _make_dist(dist_fn, theta: torch.Tensor) -> torch.distributions.Distribution:
    try:
        dist = dist_fn(theta)
    except ValueError as err:  # torch's argument validation: θ outside the constraints
        raise ValueError(
            f"dist_fn(theta) refused theta of shape {tuple(theta.shape)}, "
            f"first row {theta.reshape(-1, theta.shape[-1])[0].tolist()}: is "
            f"theta a valid parameter of the distribution? ({err})"
        ) from err
    if not isinstance(dist, torch.distributions.Distribution):
        raise TypeError(
            f"dist_fn(theta) must return a torch.distributions.Distribution, got {describe(dist)}"
        )
    return dist


def _copies_dist(dist_fn, copies: torch.Tensor) -> torch.distributions.Distribution:
    """dist_fn on N identical copies of a θ that dist_fn has already accepted.

    torch's argument validation is switched off for this one call (and restored): it would
    check the same parameter N times, and for matrix parameters (a batch of N Cholesky
    factors) that costs more than the estimate. The estimators call it only after
    ``_check_dist_fn`` has built ``dist_fn(theta)`` with validation as the caller set it, and
    only to draw from the distribution or to score its own draws, so nothing is left
    unchecked. The switch is torch's process-wide default, restored in ``finally``.
    """
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        return _make_dist(dist_fn, copies)
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


def _check_dist_fn(dist_fn, theta: torch.Tensor, *, reparameterized: bool = False, dist=None):
    """dist_fn(θ), after checking that dist_fn treats copies of θ separately.

    On m = 3 copies (2 when D = 3, so that m cannot be mistaken for D) the batch shape must be
    (m, *batch_shape), and what the estimator differentiates in row 1 (the log-density of a
    fixed draw; with ``reparameterized``, the draw ``rsample`` makes) must not depend on copies
    0 and 2: an exact,
    structural test, so a dist_fn that reduces over θ (``t.norm()``, ``t.sum()``) or reads
    a row of it (``t[0]``) is caught even when the shapes come out right. The probe's draws
    come from a forked generator: the caller's random stream is not moved. ``dist``, when
    given, is dist_fn(θ) already built.
    """
    if dist is None:
        dist = _make_dist(dist_fn, theta)
    m = 2 if theta.shape[0] == 3 else 3
    try:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            copies = theta.expand(m, -1).requires_grad_(True)
            probe = _make_dist(dist_fn, copies)
            if probe.batch_shape != (m, *dist.batch_shape) or probe.event_shape != dist.event_shape:
                raise ValueError(
                    f"{_BATCHED_HINT}; for θ of shape {tuple(theta.shape)} it gave batch shape "
                    f"{tuple(dist.batch_shape)}, but for {m} copies, shape ({m}, "
                    f"{theta.shape[0]}), batch shape {tuple(probe.batch_shape)} instead of "
                    f"({m}, *batch_shape)"
                )
            outputs = []
            if reparameterized and dist.has_rsample and not _is_discrete(dist):
                row = probe.rsample().reshape(m, -1)[1]  # pathwise's path, in row 1
                # Unequal weights: a plain sum of a simplex draw (Dirichlet) is constant.
                weights = torch.linspace(1.0, 2.0, row.numel(), dtype=row.dtype)
                outputs.append((row * weights).sum())
            elif not reparameterized:
                try:  # the score function's path: the log-density of fixed draws
                    outputs.append(_flat_log_prob(probe, dist.sample((m,)), m)[1])
                except NotImplementedError:  # a custom distribution without log_prob
                    pass
            for output in outputs:
                if not output.requires_grad:
                    continue  # no graph at all: refused later with its own message
                (grad,) = torch.autograd.grad(output, copies, retain_graph=True, allow_unused=True)
                if grad is not None and _leaks(torch.cat([grad[:1], grad[2:]])):
                    raise ValueError(
                        f"{_BATCHED_HINT}; row 1 of dist_fn on {m} copies of θ depends on the "
                        "other copies (does dist_fn reduce over θ, e.g. t.sum() or t.norm() "
                        "without dim=-1, or read t[0]?)"
                    )
    except RuntimeError as err:  # e.g. t[1] broadcast against t[..., 0]
        raise ValueError(f"{_BATCHED_HINT}; on {m} copies of θ it raised: {err}") from err
    return dist


def _is_discrete(dist) -> bool:
    """Whether the support is discrete (False for a custom distribution that declares none)."""
    try:
        return bool(getattr(dist.support, "is_discrete", False))
    except NotImplementedError:
        return False


def _leaks(grad: torch.Tensor) -> bool:
    """A finite nonzero gradient where none should flow (NaN from 0·inf is not a leak)."""
    return bool((torch.isfinite(grad) & (grad != 0)).any())


def _check_size(num_samples: int, theta: torch.Tensor, dist) -> None:
    """Refuse, before allocating, N draws or an (N, D) gradient that cannot fit in memory."""
    per_draw = max(dist.batch_shape.numel() * dist.event_shape.numel(), theta.numel())
    check_allocation("num_samples", num_samples, num_samples * per_draw * theta.element_size())


def _check_common(f, dist_fn, theta, num_samples):
    check_callable("f", f)
    check_callable("dist_fn", dist_fn)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    return _check_theta(theta), num_samples


def _flat_log_prob(dist, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log p(x_n; θ_n) summed over the batch dimensions of one draw: shape (N,)."""
    return dist.log_prob(x).reshape(num_samples, -1).sum(dim=1)


# ---------------------------------------------------------------- the engine


def per_sample_gradients(fn, theta, num_samples) -> Estimate:
    """Per-sample gradients ∂y_n/∂θ of per-sample values y_n, by N copies of θ and one backward.

    θ is expanded into copies θ_1 = ... = θ_N (shape ``(N, D)``, no memory of its own) and
    ``fn`` computes y_n from row n. Because y_n depends on θ_n alone,

        ∂(Σ_m y_m) / ∂θ_n = ∂y_n / ∂θ_n,

    so one backward pass of the sum gives all N rows, at the cost of the ordinary batch
    gradient and with memory linear in N·D. The premise "y_n depends on row n only" is
    tested: one more backward pass differentiates y_j for the middle row j and refuses the
    result if any other row's gradient is non-zero (an ``fn`` that centres, normalizes or
    sums along the samples); mixing that row j does not take part in goes unnoticed. Rows
    that are all zero are returned as they are (no warning, unlike :func:`pathwise`).

    Args:
        fn: maps copies of θ, shape ``(N, D)``, to values ``(N,)`` with a graph to them; it
            may draw fresh noise (e.g. ``dist_fn(t).rsample()``), each row its own.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        num_samples: N >= 2.

    Returns:
        An :class:`~companion.montecarlo.Estimate` whose ``samples`` are the rows ∂y_n/∂θ,
        shape ``(N, D)``, with their ``mean`` and ``stderr``, shape ``(D,)``.

    Example:
        >>> theta = torch.tensor([1.0, 2.0])
        >>> est = per_sample_gradients(lambda t: t[:, 0] * t[:, 1] * torch.arange(3.0), theta, 3)
        >>> est.samples  # row n: n · (θ₂, θ₁)
        tensor([[0., 0.],
                [2., 1.],
                [4., 2.]])
    """
    check_callable("fn", fn)
    theta = _check_theta(theta)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    return summarize(_rows(fn, theta, num_samples, what="fn(theta)"))


def _rows(
    fn, theta: torch.Tensor, num_samples: int, *, what: str, probe: bool = True
) -> torch.Tensor:
    """The engine of :func:`per_sample_gradients`: the rows ∂y_n/∂θ, shape ``(N, D)``.

    ``what`` names fn in error messages. ``probe=False`` skips the extra backward pass that
    checks that value n depends on copy n only, for callers that have checked it another way,
    on three rows (:func:`pathwise` tests f; both estimators test ``dist_fn`` in
    ``_check_dist_fn``).
    """
    check_allocation("num_samples", num_samples, num_samples * theta.numel() * theta.element_size())
    with torch.enable_grad():
        copies = theta.expand(num_samples, -1).requires_grad_(True)  # (N, D), a view of θ
        values = fn(copies)
        _check_values(values, num_samples, what)
        if not values.requires_grad:
            raise ValueError(
                f"{what} returned values that do not depend on theta: the "
                "gradient would be a silent zero (was theta detached?)"
            )
        if probe:
            _probe_rows(values, copies, what)
        (grads,) = torch.autograd.grad(values.sum(), copies, allow_unused=True)
    if grads is None:
        raise ValueError(
            f"{what} returned values that do not depend on theta: the "
            "gradient would be a silent zero (was theta detached?)"
        )
    return _check_rows_finite(grads, what)


def _check_rows_finite(grads: torch.Tensor, what: str) -> torch.Tensor:
    """Refuse per-sample gradients with NaN or inf, naming the first bad draw."""
    bad = None if torch.isfinite(grads.sum()) else ~torch.isfinite(grads).all(dim=1)
    if bad is not None and bad.any():
        n = int(bad.nonzero()[0])
        raise ValueError(
            f"the gradient of {what} is not finite for {int(bad.sum())} of "
            f"{grads.shape[0]} draws (first: draw {n}, gradient {grads[n].tolist()}); "
            f"in {grads.dtype} the draw may be at the edge of the support: try "
            "float64 theta"
        )
    return grads


def _dist_and_jacobian(dist_fn, theta: torch.Tensor, *, reparameterized: bool):
    """dist_fn(θ), checked on copies of θ, and ∂ψ/∂θ when the rows have a closed form.

    See :mod:`companion._gaussian_rows`: for MultivariateNormal and LowRankMultivariateNormal
    the per-sample gradients with respect to the distribution's parameters ψ are cheap in
    closed form, where N copies of θ would factor N identical matrices. ``dist_fn`` is
    checked on three copies of θ (:func:`_check_dist_fn`) either way, so that what it must
    be does not depend on the family. It is called on a θ that requires grad, for the
    Jacobian; if it fails there (e.g. it converts θ to NumPy), on θ without, and the engine
    runs. The Jacobian is None where the engine runs.
    """
    leaf = theta.clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            dist = _make_dist(dist_fn, leaf)
    except RuntimeError:
        leaf = dist = None
    dist = _check_dist_fn(dist_fn, theta, reparameterized=reparameterized, dist=dist)
    if leaf is None or not gaussian_rows.supports(dist, theta.numel()):
        return dist, None
    try:
        with torch.enable_grad():
            jac = gaussian_rows.jacobian(gaussian_rows.parameters(dist), leaf)
    except RuntimeError:
        jac = None
    return dist, jac


def _check_closed_form_size(num_samples: int, theta: torch.Tensor, jac) -> None:
    """Refuse, before allocating, N rows of ∂ℓ/∂ψ that cannot fit in memory."""
    if jac is not None:
        size = num_samples * jac.shape[0] * theta.element_size()
        check_allocation("num_samples", num_samples, size)


def _probe_rows(values: torch.Tensor, copies: torch.Tensor, what: str) -> None:
    """Refuse values where y_j depends on a copy other than j (one extra backward pass).

    One row is probed, the middle one: mixing that treats all rows alike (centring,
    normalizing, a softmax over the batch) or runs along them (prefix or suffix sums) is
    caught; mixing confined to other rows is not.
    """
    j = values.shape[0] // 2
    (probe,) = torch.autograd.grad(values[j], copies, retain_graph=True, allow_unused=True)
    if probe is not None and _leaks(torch.cat([probe[:j], probe[j + 1 :]])):
        raise ValueError(_mixing(what, j))


def _mixing(what: str, j: int) -> str:
    return (
        f"{what} must act on each sample separately: value n may depend on draw n only, "
        f"but value {j} depends on other draws (e.g. the values are centred or normalized "
        "over the batch); per-sample gradients and their standard error would be wrong"
    )


def _check_rowwise(f, x: torch.Tensor) -> None:
    """Refuse an f whose value in row 1 of a 3-row batch has a gradient in rows 0 or 2.

    A structural test on three draws of the batch, with no tolerance: it accepts an f with
    noise inside (dropout, a stochastic reward) or with batch-size-dependent rounding, and
    catches mixing through the gradient alone (x.mean() - x.mean().detach()). It costs f on
    three rows and one small backward pass.
    """
    rows = x.detach()[: min(3, x.shape[0])].clone().requires_grad_(True)
    with torch.enable_grad():
        y = evaluate_f(f, rows, rows.shape[0])
        if not y.requires_grad:
            return  # no path at all: refused by the caller with its own message
        (grad,) = torch.autograd.grad(y[1], rows, allow_unused=True)
    if grad is not None and _leaks(torch.cat([grad[:1], grad[2:]])):
        raise ValueError(_mixing("f", 1))


def _check_values(values, num_samples: int, what: str) -> None:
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(
            f"{what} must be a floating-point tensor of shape ({num_samples},), "
            f"got {describe(values)}"
        )
    if values.shape != (num_samples,):
        raise ValueError(
            f"{what} must hold one value per copy of theta, shape "
            f"({num_samples},), got shape {tuple(values.shape)}"
        )
    check_finite(what, values.detach())


# ---------------------------------------------------------------- estimators


def score_function(f, dist_fn, theta, num_samples, *, baseline=None) -> Estimate:
    """Score-function (REINFORCE, log-derivative) estimate of ∇θ E_{x~p(x;θ)}[f(x)].

    Mohamed et al. 2020, §4 (baselines §7): ∇θ E[f(x)] = E[(f(x) - b) ∇θ log p(x; θ)] for
    any b independent of x, estimated by the mean of

        g_n = (f(x_n) - b_n) ∇θ log p(x_n; θ),    x_n ~ p(x; θ) drawn with ``sample()``.

    f need not be differentiable and x may be discrete; no gradient flows through x or f.

    Args:
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)`` (booleans and
            integers are read as numbers).
        dist_fn: maps θ of shape ``(..., D)`` to a ``torch.distributions.Distribution`` with
            batch shape ``(..., *batch_shape)``, e.g. ``lambda t: Normal(t[..., 0], t[..., 1])``;
            the log-density of a draw is summed over ``batch_shape``.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        num_samples: N >= 2.
        baseline: None (b = 0); a number; a tensor of shape ``(D,)``, one constant per
            coordinate (e.g. :func:`companion.baselines.optimal_baseline` from independent
            draws); or ``"loo"``, b_n = mean of the other samples' f, which keeps the estimate
            unbiased. With ``"loo"`` the g_n are weakly dependent (each b_n uses the other
            draws), so ``stderr`` is the usual large-N approximation.

    Returns:
        An :class:`~companion.montecarlo.Estimate`: ``mean`` and ``stderr`` of shape ``(D,)``,
        ``samples`` the g_n, shape ``(N, D)``.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[..., 0], t[..., 1])
        >>> est = score_function(lambda x: x**2, normal, torch.tensor([1.0, 1.0]), 100_000)
        >>> est.samples.shape
        torch.Size([100000, 2])
        >>> est.mean  # ∇(μ² + σ²) = (2μ, 2σ) = (2, 2)  # doctest: +SKIP
        tensor([1.9910, 2.0057])
    """
    theta, num_samples = _check_common(f, dist_fn, theta, num_samples)
    dist, jac = _dist_and_jacobian(dist_fn, theta, reparameterized=False)
    _check_size(num_samples, theta, dist)
    _check_closed_form_size(num_samples, theta, jac)
    with torch.no_grad():
        x = dist.sample((num_samples,))  # (N, *batch_shape, *event_shape), no path to θ
        values = evaluate_f(f, x, num_samples).to(theta.dtype)  # (N,)
    centred = centre(values, baseline, num_coordinates=theta.shape[0])  # (N,) or (N, D)
    what = "log p(x; θ) of dist_fn(theta)"
    if jac is not None:  # rows ∂ log p/∂ψ in closed form, times ∂ψ/∂θ
        rows = gaussian_rows.score_rows(dist, x, jac).to(theta.dtype)
        scores = _check_rows_finite(rows, what)
    else:
        scores = _rows(
            lambda t: _flat_log_prob(_copies_dist(dist_fn, t), x, num_samples),
            theta,
            num_samples,
            what=what,
            probe=False,
        )
    return summarize(centred[:, None] * scores if centred.dim() == 1 else centred * scores)


def pathwise(f, dist_fn, theta, num_samples) -> Estimate:
    """Pathwise (reparameterization) estimate of ∇θ E_{x~p(x;θ)}[f(x)].

    Mohamed et al. 2020, §5: write x = x(θ, ε) with ε ~ p(ε) independent of θ (what
    ``rsample()`` does); then ∇θ E[f(x)] = E[∇θ f(x(θ, ε))], estimated by the mean of

        g_n = ∇θ f(x(θ, ε_n)).

    Needs ``dist_fn(theta).has_rsample`` and f differentiable in x. Every family with
    ``rsample`` works, implicit ones (Gamma, Beta, Dirichlet) included, at the cost of one
    batch gradient (see :func:`per_sample_gradients`; the two multivariate normal families
    take a closed form, see the module's docstring); VonMises has no ``rsample`` in torch.
    f must act on each sample separately, and ``dist_fn`` on each copy of θ separately: both
    are tested on three rows by the gradient of one row (so mixing through values or through
    gradients is caught; mixing confined to rows the test does not see is not). An f that
    returns integers or booleans, or detaches x, and a ``dist_fn`` that detaches θ, are
    refused: their pathwise gradient is a silent zero. When every per-sample gradient is
    exactly 0 (``torch.floor``, ``torch.round``; or a ReLU with every draw where it is flat,
    which may be right) the estimate comes with a warning.

    Args:
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)``,
            differentiably; a coordinate of θ that f does not depend on gets a zero gradient.
        dist_fn: maps θ of shape ``(..., D)`` to a distribution with ``rsample`` and batch
            shape ``(..., *batch_shape)``, e.g. ``lambda t: Normal(t[..., 0], t[..., 1])``.
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        num_samples: N >= 2.

    Returns:
        An :class:`~companion.montecarlo.Estimate` with ``mean``, ``stderr`` of shape ``(D,)``
        and the per-sample g_n as ``samples``, shape ``(N, D)``.

    Raises:
        ValueError: the distribution has no reparameterized sampler, or the draws or f's
            values do not depend on θ.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[..., 0], t[..., 1])
        >>> est = pathwise(lambda x: x**2, normal, torch.tensor([1.0, 1.0]), 1_000)
        >>> est.mean  # ∇(μ² + σ²) = (2, 2); g_n = (2x_n, 2x_n ε_n)  # doctest: +SKIP
        tensor([2.0578, 2.1738])
        >>> est.stderr.shape
        torch.Size([2])
    """
    theta, num_samples = _check_common(f, dist_fn, theta, num_samples)
    dist, jac = _dist_and_jacobian(dist_fn, theta, reparameterized=True)
    if not dist.has_rsample:
        raise ValueError(
            f"dist_fn(theta) returned a {type(dist).__name__}, which has no reparameterized "
            "sampler (has_rsample is False); use score_function, which works for any "
            "distribution, or finite_difference"
        )
    if _is_discrete(dist):
        raise ValueError(
            f"dist_fn(theta) returned a {type(dist).__name__}, whose support is discrete: its "
            "rsample is a straight-through surrogate, a biased estimator, not the pathwise "
            "one; use score_function, or per_sample_gradients to compute the "
            "straight-through estimate deliberately"
        )
    _check_size(num_samples, theta, dist)
    _check_closed_form_size(num_samples, theta, jac)

    def values(copies):  # f(x(θ_n, ε_n)), one fresh draw per copy of θ
        x = _copies_dist(dist_fn, copies).rsample()  # (N, *batch_shape, *event_shape)
        if not x.requires_grad:
            raise ValueError(
                "dist_fn(theta).rsample() returned draws without a graph to "
                "theta (did dist_fn detach theta, or build the distribution "
                "from constants?); the pathwise gradient would be a silent zero"
            )
        return _f_on_draws(f, x, num_samples).to(theta.dtype)

    if jac is not None:  # ∇f(x_n) by one backward pass, then the closed form in ψ
        x, noise = gaussian_rows.draw(dist, num_samples)
        x.requires_grad_(True)
        with torch.enable_grad():
            y = _f_on_draws(f, x, num_samples)
            (grad_x,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        if grad_x is None:  # y has a graph, but not to x
            raise ValueError(
                "f returned values that do not depend on theta: the gradient would be a "
                "silent zero (was theta detached?)"
            )
        rows = gaussian_rows.path_rows(dist, noise, grad_x.to(x.dtype), jac).to(theta.dtype)
        est = summarize(_check_rows_finite(rows, "f"))
    else:
        est = summarize(_rows(values, theta, num_samples, what="f", probe=False))
    if not (est.mean.any() or est.stderr.any() or est.samples.any()):
        warnings.warn(
            "every per-sample pathwise gradient is exactly 0, so the estimate is 0 with "
            "standard error 0: right if f is flat wherever it was drawn, wrong if f is "
            "piecewise constant (floor, round, sign, a step), whose expectation can still "
            "move with θ; score_function or finite_difference estimate that",
            stacklevel=2,
        )
    return est


def _f_on_draws(f, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """f(x) with a graph to x, after checking that f has one and acts on each row alone."""
    y = evaluate_f(f, x, num_samples)
    if not y.requires_grad:
        raise ValueError(
            "f(x) has no differentiable path from x (f detached x, or returned integers "
            "or booleans, e.g. a step function): its pathwise gradient would be a silent "
            "zero, not ∇θ E[f]; use score_function or finite_difference"
        )
    _check_rowwise(f, x)
    return y


def _values_at(f, dist_fn, theta, num_samples, seed, step, d) -> torch.Tensor:
    """f(x_n) for x_n ~ p(x; θ); with a seed, the draws replay the same random stream."""
    try:
        dist = _make_dist(dist_fn, theta)
    except ValueError as err:  # torch's parameter validation: θ ± h e_d is out of range
        raise ValueError(
            f"step={step}: θ ± h e_{d} is not a valid parameter of dist_fn ({err})"
        ) from err
    if seed is None:
        return evaluate_f(f, dist.sample((num_samples,)), num_samples).to(theta.dtype)
    # fork_rng restores the global state afterwards: the caller's stream moves on only by
    # the one draw that chose the seed.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x = dist.sample((num_samples,))
    return evaluate_f(f, x, num_samples).to(theta.dtype)


def _check_step(step, theta: torch.Tensor) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a number > 0, got {describe(step)}")
    if not 0 < step < float("inf"):
        raise ValueError(f"step must be a finite number > 0, got {step}")
    plus, minus = theta + step, theta - step
    if (plus == minus).any() or not torch.isfinite(plus - minus).all():
        d = int(((plus == minus) | ~torch.isfinite(plus - minus)).nonzero()[0])
        raise ValueError(
            f"step={step} cannot be resolved at theta[{d}] = {theta[d].item()} in "
            f"{theta.dtype}: θ + h and θ - h round to the same number; use a larger step"
        )
    return float(step)


_SCHEMES = ("central", "forward")


def finite_difference(
    f, dist_fn, theta, num_samples, *, step=1e-3, common_random_numbers=True, scheme="central"
) -> Estimate:
    """Central (or forward) finite-difference estimate of ∇θ E_{x~p(x;θ)}[f(x)], per coordinate.

    For each coordinate d, with e_d the d-th unit vector and step h,

        g_n[d] = (f(x_n^{θ + h e_d}) - f(x_n^{θ - h e_d})) / (2h),

    where x_n^{θ'} is a draw from p(x; θ'), by ``sample()``: any distribution and any f. The
    mean estimates the difference quotient (E_{θ+he_d}[f] - E_{θ-he_d}[f]) / (2h), whose bias
    as a gradient is O(h²) (zero when E[f] is quadratic in θ). With
    ``common_random_numbers=True`` all 2D evaluations replay one random stream (one seed drawn
    from the global generator; the global stream itself is restored), so the noise is shared
    and cancels in the difference, a coupling of the kind in Mohamed et al. 2020, §7; with
    False each evaluation gets fresh noise and the variance grows like Var[f] / (2h²). The
    denominator is the realized (θ + h e_d)_d - (θ - h e_d)_d, so rounding of θ ± h does not
    bias the quotient. Costs 2D evaluations of f per sample.

    With ``scheme="forward"`` the difference is one-sided,

        g_n[d] = (f(x_n^{θ + h e_d}) - f(x_n^{θ})) / h,

    whose mean has bias h ∂²_d E[f] / 2 + O(h²), of order h instead of h²; the evaluation at θ
    is shared by the D coordinates, so it costs D + 1 evaluations of f per sample.

    Args:
        f: maps samples ``(N, *batch_shape, *event_shape)`` to values ``(N,)``; called 2D times.
        dist_fn: maps θ to a ``torch.distributions.Distribution`` (called on single θ's, so
            the batched form ``t[..., 0]`` of the other estimators works too).
        theta: θ, a 1-D floating tensor of shape ``(D,)``; copied, never modified.
        num_samples: N >= 2.
        step: h > 0, resolvable in θ's dtype; θ ± h e_d must be valid parameters of ``dist_fn``.
        common_random_numbers: share the noise across all 2D evaluations (default True).
        scheme: ``"central"`` (default, bias O(h²)) or ``"forward"`` (bias O(h)).

    Returns:
        An :class:`~companion.montecarlo.Estimate`: ``mean``, ``stderr`` of shape ``(D,)``,
        ``samples`` the g_n, shape ``(N, D)``.

    Example:
        >>> from companion.seeding import seed_everything
        >>> _ = seed_everything(0)
        >>> normal = lambda t: torch.distributions.Normal(t[..., 0], t[..., 1])
        >>> theta = torch.tensor([1.0, 1.0], dtype=torch.float64)
        >>> est = finite_difference(lambda x: x**2, normal, theta, 1_000, step=0.1)
        >>> est.mean  # with shared noise g_n = (2x_n, 2x_n ε_n), as pathwise  # doctest: +SKIP
        tensor([2.0280, 2.1130], dtype=torch.float64)
    """
    theta, num_samples = _check_common(f, dist_fn, theta, num_samples)
    step = _check_step(step, theta)
    check_bool("common_random_numbers", common_random_numbers)
    if not isinstance(scheme, str) or scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {describe(scheme)}")
    _check_size(num_samples, theta, _make_dist(dist_fn, theta))
    seed = int(torch.randint(0, 2**62, ()).item()) if common_random_numbers else None
    columns = []
    with torch.no_grad():
        if scheme == "forward":  # f at θ, one evaluation shared by the D coordinates
            at_theta = _values_at(f, dist_fn, theta, num_samples, seed, step, 0)
        for d in range(theta.shape[0]):
            shift = torch.zeros_like(theta)
            shift[d] = step
            plus = theta + shift
            high = _values_at(f, dist_fn, plus, num_samples, seed, step, d)  # drawn first
            if scheme == "central":
                minus = theta - shift
                low = _values_at(f, dist_fn, minus, num_samples, seed, step, d)
            else:
                minus, low = theta, at_theta
            difference = high - low  # (N,)
            columns.append(difference / (plus[d] - minus[d]))
    est = summarize(torch.stack(columns, dim=1))
    zero = [d for d in range(theta.shape[0]) if not est.samples[:, d].any()]
    if zero:
        warnings.warn(
            f"every per-sample finite difference in coordinate(s) {zero} is exactly 0: either "
            f"E[f] does not depend on them, or f is piecewise constant and step={step} is too "
            "small for a draw to cross a jump (the estimate is then 0 with standard error 0); "
            "use a larger step or score_function",
            stacklevel=2,
        )
    return est
