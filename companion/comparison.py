"""The table of every estimator on one problem: exact variances by quadrature, and measurements.

For x ~ N(μ, σ²) and θ = (μ, σ), every per-sample gradient estimate of the book is a function
of standard noise: the score function's is (f(x) - b) (ε, ε² - 1) / σ, the pathwise one's
f'(x) (1, ε), with x = μ + σε; finite differences evaluate f at θ ± h e_d; the measure-valued
estimator at μ ± σw (w ~ Rayleigh(1)) for μ and at μ + σm, μ + σmu (m double-sided Maxwell,
u ~ U(0, 1)) for σ. So each row's mean and per-sample variance is a one- or two-dimensional
integral. :func:`gaussian_rows_exact` computes them all by Gauss–Legendre quadrature on pieces
split at the jumps of f (a step function is integrated exactly, where Gauss–Hermite would not
converge); :func:`gaussian_rows_measured` runs the same rows with the companion's estimators;
:func:`leave_one_out_batches` measures the leave-one-out estimator at a realistic batch size,
where its terms are correlated; :func:`text_table` prints the result.
"""

from __future__ import annotations

import functools
import math

import torch
from numpy.polynomial.legendre import leggauss

from ._validation import (
    as_finite_tensor,
    check_allocation,
    check_bool,
    check_callable,
    check_positive_int,
    check_real,
    describe,
    evaluate_f,
)
from .baselines import leave_one_out
from .estimators import finite_difference, pathwise, score_function
from .measure_valued import measure_valued_gaussian_mean, measure_valued_gaussian_scale
from .montecarlo import Estimate, summarize
from .problems import normal_dist

__all__ = [
    "GAUSSIAN_ROWS",
    "gaussian_rows_exact",
    "gaussian_rows_measured",
    "leave_one_out_batches",
    "text_table",
]

GAUSSIAN_ROWS = (
    "score function",
    "+ constant b = f(E[x])",
    "+ mean baseline (oracle)",
    "+ optimal baseline (oracle)",
    "+ leave-one-out",
    "pathwise",
    "finite differences, independent",
    "finite differences, CRN",
    "measure-valued (coupled)",
)
"""The rows of the table for a Gaussian problem, in order."""

_REACH = 12.0  # N(0, 1) beyond ±12: probability 4e-33, negligible against polynomial growth


@functools.lru_cache(maxsize=8)
def _legendre(num_nodes: int):
    return leggauss(num_nodes)


def _pieces(lower: float, upper: float, breakpoints, num_nodes: int):
    """Gauss–Legendre nodes and weights on [lower, upper], one rule per piece between jumps."""
    cuts = sorted({lower, upper, *(b for b in breakpoints if lower < b < upper)})
    base_nodes, base_weights = _legendre(num_nodes)
    nodes, weights = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        nodes.append((b - a) / 2 * (torch.from_numpy(base_nodes) + 1) + a)
        weights.append((b - a) / 2 * torch.from_numpy(base_weights))
    return torch.cat(nodes), torch.cat(weights)


def _normal(g, breakpoints, num_nodes):
    """E_{ε~N(0,1)}[g(ε)], g mapping (K,) to (K, ...)."""
    eps, weights = _pieces(-_REACH, _REACH, breakpoints, num_nodes)
    weights = weights * torch.exp(-(eps**2) / 2) / math.sqrt(2 * math.pi)
    return torch.tensordot(weights, g(eps).to(torch.float64), dims=1)


def _variance(g, expect):
    return expect(lambda e: g(e) ** 2) - expect(g) ** 2


def _check_f(f, loc, scale, jumps, step, num_nodes):
    check_callable("f", f)
    loc = float(as_finite_tensor("loc", loc, dtype=torch.float64))
    scale = float(as_finite_tensor("scale", scale, dtype=torch.float64))
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (a standard deviation), got {scale}")
    if not isinstance(jumps, (tuple, list)):
        raise TypeError(f"jumps must be a tuple of numbers, got {describe(jumps)}")
    jumps = [float(as_finite_tensor("jumps", c, dtype=torch.float64)) for c in jumps]
    step = float(as_finite_tensor("step", step, dtype=torch.float64))
    if not 0 < step < scale:
        raise ValueError(f"step must be in (0, scale) so that σ - h > 0, got {step}")
    num_nodes = check_positive_int("num_nodes", num_nodes, minimum=2)
    # the largest tensor: the (m, u) grid, num_nodes nodes on each piece of each axis
    grid = (num_nodes * (len(jumps) + 1)) ** 2
    check_allocation("num_nodes", num_nodes, 8 * grid)
    return loc, scale, jumps, step, num_nodes


def gaussian_rows_exact(f, loc, scale, *, f_prime=None, jumps=(), step=0.1, num_nodes=200) -> dict:
    """Exact means and per-sample variances of every row of :data:`GAUSSIAN_ROWS` on f.

    Under x = μ + σε, ε ~ N(0, 1), with ∇θ log p = (ε, ε² - 1) / σ the score in θ = (μ, σ),
    J(θ) = E_{N(μ, σ²)}[f] and h = ``step``:

    - gradient ∇θ J = E[f ∇θ log p] (the score-function identity), and the difference quotient
      (J(θ + h e_d) - J(θ - h e_d)) / (2h) that finite differences estimate;
    - score function with a baseline b: Var[(f - b) ∇θ log p] for b = 0, f(μ), E f and the
      optimal b*_d = E[f (∂_d log p)²] / E[(∂_d log p)²]; leave-one-out as its N → ∞
      limit, the mean baseline (its value at a finite batch is
      :func:`companion.baselines.leave_one_out_variance` of the returned
      ``mean_baseline_variance``, ``var_f``, ``score_second_moment`` and ``gradient``);
    - pathwise, Var[f'(x) (1, ε)], when ``f_prime`` is given;
    - finite differences: independent draws (Var_{θ+he_d}[f] + Var_{θ-he_d}[f]) / (4h²), and
      with common random numbers Var[f(x(θ + h e_d, ε)) - f(x(θ - h e_d, ε))] / (4h²);
    - measure-valued, coupled: Var[κ (f(μ + σw) - f(μ - σw))], κ = 1 / (σ√(2π)), w ~
      Rayleigh(1), for μ, and Var[(f(μ + σm) - f(μ + σmu)) / σ], m double-sided Maxwell,
      u ~ U(0, 1), for σ.

    Every expectation is Gauss–Legendre quadrature with ``num_nodes`` nodes on each piece of
    [-12, 12] (ε), [0, 20] (w) or [-12, 12] × [0, 1] (m, u) between the jumps of f (for (m, u)
    the u pieces are cut for each m node where f(μ + σmu) jumps), so a step
    function is integrated exactly; accurate to rounding for f smooth between its jumps and
    growing at most polynomially.

    Args:
        f: maps x of shape ``(K,)`` to ``(K,)``; smooth except at ``jumps``.
        loc: μ, a number.
        scale: σ > 0, a number (a standard deviation).
        f_prime: f', same signature, or None (no pathwise row).
        jumps: the points where f jumps, a tuple of numbers.
        step: h, 0 < h < σ.
        num_nodes: nodes per piece, >= 2.

    Returns:
        A dict: ``gradient``, ``quotient``, ``b_star``, ``score_second_moment``,
        ``mean_baseline_variance``, shape ``(2,)``; ``mean_f`` and ``var_f``, numbers;
        ``rows``, name ↦ per-sample variance, shape ``(2,)``.

    Example:
        >>> exact = gaussian_rows_exact(lambda x: x**2, 1.0, 1.0, f_prime=lambda x: 2 * x)
        >>> [round(v, 6) for v in exact["rows"]["pathwise"].tolist()]  # (4σ², 4μ² + 8σ²)
        [4.0, 12.0]
    """
    loc, scale, jumps, h, k = _check_f(f, loc, scale, jumps, step, num_nodes)
    if f_prime is not None:
        check_callable("f_prime", f_prime)

    def normal(g, *params):  # E over ε, split where f(m + s ε) jumps for each (m, s)
        return _normal(g, [(c - m) / s for c in jumps for m, s in params], k)

    def fx(e):  # f(μ + σε), checked: one value per node
        return evaluate_f(f, loc + scale * e, e.shape[0]).to(torch.float64)

    def score(e):  # (K, 2)
        return torch.stack([e / scale, (e**2 - 1) / scale], dim=-1)

    base = ((loc, scale),)
    mean_f = normal(fx, *base).item()
    var_f = normal(lambda e: fx(e) ** 2, *base).item() - mean_f**2
    second = normal(lambda e: score(e) ** 2, *base)
    b_star = normal(lambda e: fx(e)[:, None] * score(e) ** 2, *base) / second
    constant = evaluate_f(f, torch.tensor([loc], dtype=torch.float64), 1).item()
    rows = {}
    for name, b in zip(GAUSSIAN_ROWS[:4], (0.0, constant, mean_f, b_star)):
        rows[name] = _variance(
            lambda e, b=b: (fx(e)[:, None] - b) * score(e), lambda g: normal(g, *base)
        )
    rows["+ leave-one-out"] = rows["+ mean baseline (oracle)"]  # the N → ∞ limit
    if f_prime is not None:

        def path(e):
            return f_prime(loc + scale * e)[:, None] * torch.stack([torch.ones_like(e), e], -1)

        rows["pathwise"] = _variance(path, lambda g: normal(g, *base))
    shifted = (((loc + h, scale), (loc - h, scale)), ((loc, scale + h), (loc, scale - h)))

    def at(m, s):
        return lambda e: evaluate_f(f, m + s * e, e.shape[0]).to(torch.float64)

    rows["finite differences, independent"] = torch.stack(
        [sum(_variance(at(*p), lambda g, p=p: normal(g, p)) for p in pair) for pair in shifted]
    ) / (4 * h**2)
    rows["finite differences, CRN"] = torch.stack(
        [
            _variance(
                lambda e, pair=pair: at(*pair[0])(e) - at(*pair[1])(e),
                lambda g, pair=pair: normal(g, *pair),
            )
            for pair in shifted
        ]
    ) / (4 * h**2)
    rows["measure-valued (coupled)"] = _measure_valued_rows(f, loc, scale, jumps, k)

    def J(p):
        return normal(at(*p), p)

    quotient = torch.stack([J(a) - J(b) for a, b in shifted]) / (2 * h)
    gradient = normal(lambda e: fx(e)[:, None] * score(e), *base)
    return dict(
        gradient=gradient,
        quotient=quotient,
        mean_f=mean_f,
        var_f=var_f,
        b_star=b_star,
        score_second_moment=second,
        mean_baseline_variance=rows["+ mean baseline (oracle)"],
        rows=rows,
    )


def _measure_valued_rows(f, loc, scale, jumps, k):
    """Per-sample variances of the coupled measure-valued estimator, (μ, σ).

    For σ the sample is (f(μ + σm) - f(μ + σmu)) / σ: the m integral is split where
    f(μ + σm) jumps, and for each m node the u integral where f(μ + σmu) jumps,
    u = (c - μ) / (σm), so a step function is integrated exactly here too.
    """
    w, weights = _pieces(0.0, 20.0, [abs(c - loc) / scale for c in jumps], k)
    weights = weights * w * torch.exp(-(w**2) / 2)  # Rayleigh(1) density
    kappa = 1 / (scale * math.sqrt(2 * math.pi))
    g = kappa * (
        evaluate_f(f, loc + scale * w, w.shape[0]) - evaluate_f(f, loc - scale * w, w.shape[0])
    )
    g = g.to(torch.float64)
    mu_row = (weights * g**2).sum() - (weights * g).sum() ** 2
    m, wm = _pieces(-_REACH, _REACH, [(c - loc) / scale for c in jumps], k)
    wm = wm * m**2 * torch.exp(-(m**2) / 2) / math.sqrt(2 * math.pi)  # double-sided Maxwell
    if jumps:  # the u pieces depend on m: one rule per m node, same number of u nodes each
        per_m = [
            _pieces(0.0, 1.0, [(c - loc) / (scale * mi) for c in jumps if mi != 0], k)
            for mi in m.tolist()
        ]
        width = max(nodes.numel() for nodes, _ in per_m)
        uu = torch.zeros(m.numel(), width, dtype=torch.float64)
        wu = torch.zeros_like(uu)
        for i, (nodes, wts) in enumerate(per_m):  # pad with zero-weight nodes at u = 0
            uu[i, : nodes.numel()], wu[i, : nodes.numel()] = nodes, wts
        mm = m[:, None].expand_as(uu)
        weights2 = wm[:, None] * wu
    else:
        u, wu = _pieces(0.0, 1.0, [], k)
        mm, uu = torch.meshgrid(m, u, indexing="ij")
        weights2 = wm[:, None] * wu[None, :]
    plus = evaluate_f(f, loc + scale * mm.reshape(-1), mm.numel()).reshape(mm.shape)
    minus = evaluate_f(f, loc + scale * (mm * uu).reshape(-1), mm.numel()).reshape(mm.shape)
    g = ((plus - minus) / scale).to(torch.float64)
    sigma_row = (weights2 * g**2).sum() - (weights2 * g).sum() ** 2
    return torch.stack([mu_row, sigma_row])


def gaussian_rows_measured(
    f, loc, scale, num_samples, *, baselines, step=0.1, differentiable_f=True, num_independent=None
) -> dict[str, Estimate]:
    """Every row of :data:`GAUSSIAN_ROWS` run on f under N(μ, σ²), θ = (μ, σ).

    Score function with each baseline of ``baselines``
    (:func:`companion.estimators.score_function`), pathwise when ``differentiable_f``, finite
    differences with independent draws and with
    common random numbers, and the coupled measure-valued estimator (μ and σ columns from
    :func:`companion.measure_valued.measure_valued_gaussian_mean` and
    :func:`~companion.measure_valued.measure_valued_gaussian_scale`, independent draws).

    Args:
        f: maps x ``(N,)`` to ``(N,)``.
        loc: μ, a number.
        scale: σ > 0, a number.
        num_samples: N >= 2 per row.
        baselines: dict, row name ↦ the ``baseline`` argument of ``score_function``.
        step: h for finite differences.
        differentiable_f: run the pathwise row.
        num_independent: N for finite differences with independent draws (default N).

    Returns:
        A dict, row name ↦ :class:`~companion.montecarlo.Estimate` with ``samples`` (N, 2).

    Example:
        >>> runs = gaussian_rows_measured(lambda x: x**2, 1.0, 1.0, 1000,
        ...                               baselines={"score function": None})
        >>> sorted(runs)[0], runs["pathwise"].samples.shape
        ('finite differences, CRN', torch.Size([1000, 2]))
    """
    check_callable("f", f)
    loc = float(as_finite_tensor("loc", loc, dtype=torch.float64))
    scale = float(as_finite_tensor("scale", scale, dtype=torch.float64))
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (a standard deviation), got {scale}")
    check_bool("differentiable_f", differentiable_f)
    if not isinstance(baselines, dict):
        raise TypeError(
            f"baselines must be a dict of row name to baseline, got {describe(baselines)}"
        )
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    check_allocation("num_samples", num_samples, 8 * 4 * num_samples)
    if num_independent is None:
        num_independent = num_samples
    else:  # refused here, under its own name (finite_difference would say num_samples)
        num_independent = check_positive_int("num_independent", num_independent, minimum=2)
        check_allocation("num_independent", num_independent, 8 * 4 * num_independent)
    # before any row runs: step, which only the finite-difference rows read
    check_real("step", step, positive=True)
    theta = torch.tensor([loc, scale], dtype=torch.float64)
    runs = {
        name: score_function(f, normal_dist, theta, num_samples, baseline=b)
        for name, b in baselines.items()
    }
    if differentiable_f:
        runs["pathwise"] = pathwise(f, normal_dist, theta, num_samples)
    runs["finite differences, independent"] = finite_difference(
        f, normal_dist, theta, num_independent, step=step, common_random_numbers=False
    )
    runs["finite differences, CRN"] = finite_difference(
        f, normal_dist, theta, num_samples, step=step
    )
    columns = [
        estimator(f, theta[0], theta[1], num_samples).samples
        for estimator in (measure_valued_gaussian_mean, measure_valued_gaussian_scale)
    ]
    runs["measure-valued (coupled)"] = summarize(torch.cat(columns, dim=1))
    return runs


def leave_one_out_batches(f, dist_fn, theta, batch_size, num_batches) -> Estimate:
    """Independent leave-one-out score-function estimates, each from a batch of N draws.

    Batch r averages g_n = (f(x_n) - b_n) ∇θ log p(x_n; θ) over its N draws, b_n the mean of
    f over the other N - 1 (Kool et al. 2019). Within a batch the g_n are correlated, so the
    variance of one batch's estimate is not the per-sample variance over N; across batches
    the estimates are independent, and ``batch_size * sample_variance(est.samples)`` measures
    N Var[ĝ_N], the quantity of :func:`companion.baselines.leave_one_out_variance`.

    Args:
        f: maps samples ``(N R, ...)`` to values ``(N R,)``.
        dist_fn: maps copies of θ, shape ``(N R, D)``, to a distribution with batch shape
            ``(N R, ...)`` (batched as for the estimators, e.g. ``normal_dist``).
        theta: θ, a 1-D floating tensor ``(D,)``.
        batch_size: N >= 2, draws (evaluations of f) per estimate.
        num_batches: R >= 2 independent batches.

    Returns:
        An :class:`~companion.montecarlo.Estimate` whose ``samples`` are the R batch
        estimates, shape ``(R, D)``.

    Example:
        >>> from companion.problems import normal_dist
        >>> est = leave_one_out_batches(lambda x: x**2, normal_dist, torch.tensor([1.0, 1.0]),
        ...                             2, 1000)
        >>> est.samples.shape
        torch.Size([1000, 2])
    """
    check_callable("f", f)
    check_callable("dist_fn", dist_fn)
    if not isinstance(theta, torch.Tensor) or not theta.is_floating_point() or theta.dim() != 1:
        raise TypeError(f"theta must be a 1-D floating-point tensor, got {describe(theta)}")
    n = check_positive_int("batch_size", batch_size, minimum=2)
    r = check_positive_int("num_batches", num_batches, minimum=2)
    check_allocation(  # N R copies of θ: both counts are the caller's, so name them both
        "batch_size * num_batches", f"{n} * {r}", n * r * max(theta.numel(), 1) * 8
    )
    copies = theta.detach().expand(n * r, -1).clone().requires_grad_()  # one θ per draw
    dist = dist_fn(copies)
    if not isinstance(dist, torch.distributions.Distribution):
        raise TypeError(
            f"dist_fn must return a torch.distributions.Distribution, got {describe(dist)}"
        )
    x = dist.sample()
    log_p = dist.log_prob(x).reshape(n * r, -1).sum(-1)  # (N R,)
    (scores,) = torch.autograd.grad(log_p.sum(), copies)  # row i: ∇θ log p(x_i; θ)
    with torch.no_grad():
        values = evaluate_f(f, x, n * r).to(theta.dtype).reshape(n, r)  # (N, R)
        centred = values - leave_one_out(values)  # f(x_n) - b_n within each batch
        g = centred[..., None] * scores.reshape(n, r, -1)  # (N, R, D)
    return summarize(g.mean(dim=0))  # (R, D): one estimate per batch


def text_table(header, rows) -> str:
    """A plain-text table: columns padded to their widest entry, a rule under the header.

    Args:
        header: the column names, a sequence of strings.
        rows: a sequence of rows, each a sequence of strings as long as ``header``.

    Returns:
        The table as one string, for ``print``.

    Example:
        >>> print(text_table(["a", "bb"], [["1", "2"]]))
        a  bb
        -  --
        1  2
    """
    if not isinstance(header, (list, tuple)) or not all(isinstance(h, str) for h in header):
        raise TypeError(f"header must be a list or tuple of strings, got {describe(header)}")
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
        raise TypeError(f"rows must be a list or tuple of rows (lists), got {describe(rows)}")
    rows = [list(map(str, row)) for row in rows]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows[{i}] must have {len(header)} entries, got {len(row)}")
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
