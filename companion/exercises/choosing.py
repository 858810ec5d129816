"""Checkers of the implement-it exercises of the chapter on choosing an estimator.

- :func:`check_measure_valued_mean`: the measure-valued (weak-derivative) estimator of
  ∂μ E_{N(μ, σ²)}[f(x)], from the Rayleigh decomposition of ∂μ N(x; μ, σ²);
- :func:`check_equal_cost_variance`: the variance of an estimator per evaluation of f, the
  measure by which the chapter compares estimators at equal cost.

The test problems come from closed forms (the gradient 2μ of E[x²], the Gaussian density
at the step of 1[x > c], the coupled variance (16/π - 4)μ² of the chapter) and from the
companion's tested estimators (:mod:`companion.estimators`, :mod:`companion.measure_valued`).
"""

from __future__ import annotations

import math

import torch

from ..estimators import finite_difference, score_function
from ..measure_valued import RAYLEIGH, measure_valued_gaussian_mean
from ..problems import normal_dist
from ._core import exercise

__all__ = ["check_measure_valued_mean", "check_equal_cost_variance"]

_DTYPE = torch.float64
_SQRT_2PI = math.sqrt(2 * math.pi)
_RAYLEIGH_MEAN = math.sqrt(math.pi / 2)  # E[w], w ~ Rayleigh(1)
_HALF_NORMAL_MEAN = math.sqrt(2 / math.pi)  # E[|ε|], ε ~ N(0, 1)
_HALF_SCALE = (
    "Rayleigh draws of scale 1/√2 in place of scale 1 (w = √(−log u), or "
    "Weibull(scale=1, concentration=2), which have P(w > t) = e^{−t²})"
)


def _square(x):
    return x**2


def _step_at(c):
    return lambda x: (x > c).to(x.dtype)


def _square_means(mu, sigma) -> dict[str, float]:
    """E[g] on f = x² under each named mistake: g = k · 4 μ s w for a constant k, a scale s."""
    right = 1 / (sigma * _SQRT_2PI)  # κ
    return {
        "a sign error between the two parts (f(μ − σw) − f(μ + σw))": -2 * mu,
        "a missing constant κ = 1/(σ√(2π))": 4 * mu * sigma * _RAYLEIGH_MEAN,
        "a missing 1/√(2π) in κ": 4 * mu * _RAYLEIGH_MEAN,
        "a missing 1/σ in κ": 2 * mu * sigma,
        "a wrong power of σ (σ² in κ, or the points μ ± w without σ)": 2 * mu / sigma,
        "half-normal draws |ε| in place of Rayleigh draws w": 4
        * mu
        * sigma
        * right
        * _HALF_NORMAL_MEAN,
        _HALF_SCALE: math.sqrt(2) * mu,  # 4 μ σ κ E[w]/√2 = 2μ/√2
    }


def _step_means(mu, sigma, c) -> dict[str, float]:
    """E[g] on f = 1[x > c], c >= μ, under each named mistake: κ' P(s w > c - μ)."""
    z = (c - mu) / sigma
    tail = math.exp(-(z**2) / 2)  # P(w > z)
    kappa = 1 / (sigma * _SQRT_2PI)
    return {
        "a sign error between the two parts (f(μ − σw) − f(μ + σw))": -kappa * tail,
        "a missing constant κ = 1/(σ√(2π))": tail,
        "a missing 1/√(2π) in κ": tail / sigma,
        "a missing 1/σ in κ": tail / _SQRT_2PI,
        "σ² in κ": kappa * tail / sigma,
        "the points μ ± w without the factor σ": kappa * math.exp(-((c - mu) ** 2) / 2),
        "half-normal draws |ε| in place of Rayleigh draws w": kappa * 2 * (1 - _phi(z)),
        _HALF_SCALE: kappa * math.exp(-(z**2)),  # κ P(w > √2 z)
    }


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


_COUPLED_VARIANCE = 16 / math.pi - 4  # (eq-choose-mvd-square) at μ = σ = 1
_UNCOUPLED_VARIANCE = 12 / math.pi - 2  # independent draws on the two sides, μ = σ = 1


def _variance_hint(points: list, num_samples: int, mu: float) -> str:
    """A hint for a variance above the coupled estimator's, from where f was evaluated.

    ``points``: the tensors of points the student's function evaluated f at, one per call.
    The coupled estimator evaluates f at the 2N points μ ± σ w_n, symmetric about μ.
    """
    pts = torch.cat([p.reshape(-1) for p in points]) if points else torch.zeros(0)
    if pts.numel() != 2 * num_samples:
        return (
            f"your function evaluated f at {pts.numel()} points for {num_samples} samples, "
            f"where the measure-valued estimator evaluates it at the two points μ ± σ w_n of "
            f"each sample: is it another estimator of the same gradient (the score function, "
            f"say)? Those can be unbiased too, but here their variance is above the coupled "
            f"measure-valued estimator's 16/π − 4 ≈ {_COUPLED_VARIANCE:.2f}"
        )
    deviations = (pts - mu).sort().values
    if not torch.allclose(deviations, -deviations.flip(0), rtol=1e-4, atol=1e-5):
        return (
            f"do the two sides share one Rayleigh draw w_n? Independent draws have variance "
            f"8/π − 2 + 4/π ≈ {_UNCOUPLED_VARIANCE:.2f} here, the coupled estimator 16/π − 4 ≈ "
            f"{_COUPLED_VARIANCE:.2f}"
        )
    return (
        f"the coupled estimator has variance 16/π − 4 ≈ {_COUPLED_VARIANCE:.2f} here: is each "
        f"sample κ (f(μ + σ w_n) − f(μ − σ w_n)), with w_n ~ Rayleigh(1)?"
    )


def check_measure_valued_mean(mvd_mean):
    """Check a student's measure-valued estimator of ∂μ E_{x~N(μ, σ²)}[f(x)].

    The student's function: ``mvd_mean(f, mu, sigma, num_samples) -> Tensor`` of shape
    ``(num_samples,)``, the per-sample estimates g_n = κ (f(μ + σ w_n) - f(μ - σ w_n)) with
    κ = 1/(σ√(2π)) and one Rayleigh(1) draw w_n shared by the two sides; ``f`` maps points
    of shape ``(n,)`` to values ``(n,)``; ``mu``, ``sigma`` are Python floats.

    What is verified:

    - a finite floating tensor of shape (num_samples,); fresh draws on each call, and
      reproducible under ``torch.manual_seed``;
    - unbiased on f(x) = x² at μ = 1, σ = 0.5 (exact 2μ; 20000 samples, two-sided z-test,
      resolution about 1.4% of the answer) and on the step f(x) = 1[x > 1] at μ = 0.5,
      σ = 1.5 (exact: the density of N(μ, σ²) at 1; resolution about 0.7%);
    - on x² at μ = σ = 1 the variance is at most 1.3 times the coupled (16/π - 4)μ², which
      independent draws on the two sides, (8/π - 2)μ² + 4σ²/π, exceed.

    Mistakes it names: a sign error between the two parts, a missing κ, a missing 1/√(2π),
    a missing 1/σ, σ² in κ, the points μ ± w without σ, half-normal draws in place of
    Rayleigh ones, Rayleigh draws of scale 1/√2 (w = √(−log u), or Weibull(scale=1,
    concentration=2); means √2 μ on x² and κ e^{−z²} on the step), independent (uncoupled)
    draws on the two sides (the points μ ± σ w_n are not symmetric about μ), another
    estimator altogether, e.g. the score function (f not evaluated at 2N points); from the
    framework, a wrong shape, NaN or inf, the same draws every call (seeding inside), draws
    from numpy.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when ``mvd_mean`` is not callable.
    """
    with exercise(
        "measure-valued gradient of a Gaussian mean", mvd_mean, argument="mvd_mean"
    ) as ex:
        num = 20_000
        mu, sigma = 1.0, 0.5
        g = ex.call(_square, mu, sigma, num)
        ex.expect_tensor(g, shape=(num,), what="the tensor of per-sample estimates")
        ex.expect_fresh_draws(
            lambda: ex.call(_square, mu, sigma, 100), what="the tensor of estimates"
        )
        ex.expect_reproducible(
            lambda: ex.call(_square, mu, sigma, 100), what="the tensor of estimates"
        )
        ex.expect_mean(
            g.detach().to(_DTYPE)[:, None],
            torch.tensor([2 * mu], dtype=_DTYPE),
            what="the estimates of ∂μ E[x²] at μ = 1, σ = 0.5",
            mistakes={k: torch.tensor([v]) for k, v in _square_means(mu, sigma).items()},
            hint="g_n = κ (f(μ + σ w_n) − f(μ − σ w_n)), κ = 1/(σ√(2π)), w_n ~ Rayleigh(1)",
        )
        mu_s, sigma_s, c = 0.5, 1.5, 1.0
        g = ex.call(_step_at(c), mu_s, sigma_s, num)
        ex.expect_tensor(g, shape=(num,), what="the tensor of estimates on the step")
        density = math.exp(-(((c - mu_s) / sigma_s) ** 2) / 2) / (sigma_s * _SQRT_2PI)
        ex.expect_mean(
            g.detach().to(_DTYPE)[:, None],
            torch.tensor([density], dtype=_DTYPE),
            what="the estimates of ∂μ P(x > 1) at μ = 0.5, σ = 1.5",
            mistakes={k: torch.tensor([v]) for k, v in _step_means(mu_s, sigma_s, c).items()},
            hint="the exact value is the density of N(μ, σ²) at 1",
        )
        points = []

        def recorded_square(x):  # x², recording where the student evaluates it
            points.append(torch.as_tensor(x).detach().to(_DTYPE).clone())
            return x**2

        g = ex.call(recorded_square, 1.0, 1.0, num)
        ex.expect_tensor(g, shape=(num,), what="the tensor of estimates at μ = σ = 1")
        ex.expect_variance(
            g.detach().to(_DTYPE),
            at_most=1.3 * _COUPLED_VARIANCE,
            what="the estimates of ∂μ E[x²] at μ = σ = 1",
            hint=_variance_hint(points, num, mu=1.0),
        )
    return ex.verdict


# -- equal cost --------------------------------------------------------------------------------
def _stacked_mvd(f, num_samples):
    """Measure-valued ∂μ E[f] at μ = σ = 1, both sides in one call of f with 2N points."""
    w = RAYLEIGH.sample((num_samples,)).to(_DTYPE)
    values = f(torch.cat([1.0 + w, 1.0 - w]))  # (2N,)
    return ((values[:num_samples] - values[num_samples:]) / _SQRT_2PI)[:, None]  # (N, 1)


_THETA = torch.tensor([1.0, 1.0], dtype=_DTYPE)  # θ = (μ, σ)

_ESTIMATORS = {  # name: (estimator(f, num_samples) -> (N, D), D); the first tells apart the
    # mistakes that agree when every call of f has N points
    "measure-valued in μ, both sides in one call of f": (_stacked_mvd, 1),
    "the score function in θ = (μ, σ)": (
        lambda f, n: score_function(f, normal_dist, _THETA, n).samples,
        2,
    ),
    "measure-valued in μ": (
        lambda f, n: (
            measure_valued_gaussian_mean(
                f, torch.tensor(1.0, dtype=_DTYPE), torch.tensor(1.0, dtype=_DTYPE), n
            ).samples
        ),
        1,
    ),
    "finite differences with CRN in θ = (μ, σ)": (
        lambda f, n: finite_difference(f, normal_dist, _THETA, n, step=0.1).samples,
        2,
    ),
}


def check_equal_cost_variance(equal_cost_variance):
    """Check a student's variance per evaluation of f, the chapter's measure of equal cost.

    The student's function: ``equal_cost_variance(estimator, f, num_samples) -> Tensor`` of
    shape ``(D,)``. It runs ``estimator(f_counted, num_samples)`` once, where the estimator
    returns per-sample gradient estimates of shape ``(num_samples, D)`` and calls its f on
    batches of points of shape ``(n,)`` (n evaluations each), counts the evaluations of f
    during that run, and returns the per-coordinate sample variance of the estimates times
    the evaluations per sample (total evaluations / ``num_samples``): the variance of an
    estimate that spends one evaluation of f.

    What is verified, for four estimators on f(x) = x² under N(1, 1) (a measure-valued
    estimator in μ that evaluates both sides in one call of f, 2 evaluations per sample; the
    score function in (μ, σ), 1; the companion's measure-valued estimator in μ, 2, in two
    calls; finite differences with common random numbers in (μ, σ), 4), 4000 samples each:

    - a finite floating tensor of shape (D,); the estimator run exactly once;
    - the value (relative 1e-3, so the population variance, dividing by N, is accepted),
      computed by the checker from the very estimates and evaluations of that run.

    Mistakes it names: the per-sample variance without the cost (counting samples, not
    evaluations), the standard deviation in place of the variance, counting calls of f
    instead of the points it evaluates, the total evaluations instead of the evaluations per
    sample, dividing by the evaluations, the variance of the mean (divided by N); running the
    estimator more than once; from the framework, a wrong shape, NaN or inf.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when ``equal_cost_variance`` is not
        callable.
    """
    with exercise(
        "variance per evaluation of f", equal_cost_variance, argument="equal_cost_variance"
    ) as ex:
        num = 4000
        results = {}
        for name, (estimator, dim) in _ESTIMATORS.items():
            runs = []

            def recorded(f, num_samples, estimator=estimator, runs=runs):
                counts = {"points": 0, "calls": 0}

                def counted(x):
                    counts["points"] += x.shape[0]
                    counts["calls"] += 1
                    return f(x)

                samples = estimator(counted, num_samples)
                runs.append((samples.detach().clone(), counts))
                return samples

            value = ex.call(recorded, _square, num)
            if len(runs) != 1:
                ex.fail(
                    f"your function ran the estimator {len(runs)} times for {name}: run it "
                    f"once, and count the evaluations of f during that run"
                )
            samples, counts = runs[0]
            ex.expect_tensor(value, shape=(dim,), what=f"the result for {name}")
            var = samples.var(dim=0)
            per_sample = counts["points"] / num
            ex.expect_close(
                value,
                var * per_sample,
                what=f"the variance per evaluation for {name}",
                rtol=1e-3,
                atol=1e-12,
                mistakes={
                    "the per-sample variance, not multiplied by the evaluations per sample "
                    "(counting samples, not evaluations of f)": var,
                    "the standard deviation in place of the variance": var.sqrt() * per_sample,
                    "counting the calls of f instead of the points it evaluates": var
                    * counts["calls"]
                    / num,
                    "the total number of evaluations instead of the evaluations per sample": var
                    * counts["points"],
                    "dividing by the evaluations per sample instead of multiplying": var
                    / per_sample,
                    "the variance of the mean estimate (divided by num_samples)": var
                    * per_sample
                    / num,
                },
            )
            results[name] = (value.detach()[0].item(), per_sample)
        summary = "; ".join(
            f"{name} {v:.3g} ({e:g} evaluations per sample)" for name, (v, e) in results.items()
        )
        ex.verified(f"your results on x² at μ = σ = 1, coordinate μ: {summary}")
    return ex.verdict
