"""Checkers of the implement-it exercises of the chapter on control variates and conditioning.

- :func:`check_sum_and_sample`: a "sum and sample" (Rao–Blackwellized) score-function
  estimate of the gradient of E_{k~Categorical(softmax(logits))}[f(k)] (Liu et al. 2019).
- :func:`check_rebar`: per-sample REBAR gradients for one Bernoulli variable
  (Tucker et al. 2017).

Both compare the student's function with answers computed here: exact enumeration for the
categorical, reference draws of REBAR and of its typical mistakes for the Bernoulli.
"""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli

from ..rebar import conditional_logistic
from ._core import Verdict, _z, exercise

__all__ = ["check_sum_and_sample", "check_rebar"]

# -- sum and sample --------------------------------------------------------------------------
# K = 6 categories, probabilities well spread and NOT sorted: summing the first num_summed
# indices instead of the most probable outcomes must not pass by accident
_LOGITS = (0.2, -1.5, 1.5, -0.3, 1.0, -0.8)
_VALUES = (2.0, -1.0, 3.0, 0.5, -2.5, 4.0)  # f(k), so that no coordinate of the gradient is 0
_NUM_SUMMED, _SS_REPEATS = 2, 3000


def _sum_and_sample_targets(logits, values, num_summed):
    """Exact mean and per-coordinate variance of the estimator and of its typical mistakes."""
    probs = torch.softmax(logits, 0)  # π, (K,)
    K = probs.shape[0]
    scores = torch.eye(K, dtype=logits.dtype) - probs  # row k: ∇ log π_k = e_k − π
    g = values[:, None] * scores  # (K, K): row k is f(k) ∇ log π_k
    order = torch.argsort(probs, descending=True)
    summed, rest = order[:num_summed], order[num_summed:]
    mass = probs[rest].sum()  # 1 − π_S
    exact_sum = probs[summed] @ g[summed]  # Σ_{k∈S} π_k g_k
    cond = probs[rest] / mass  # the distribution of the sampled outcome, given k ∉ S
    mean_rest = cond @ g[rest]
    var = mass**2 * (cond @ (g[rest] - mean_rest) ** 2)  # per coordinate
    exact = probs @ g  # the gradient, by enumeration
    log_mass_grad = (probs[rest, None] * scores[rest]).sum(0) / mass  # ∇ log(1 − π_S)
    mistakes = {
        "sampling from all K outcomes instead of those not summed": exact_sum + mass * (probs @ g),
        "leaving out the weight 1 − π_S of the sampled term": exact_sum + mean_rest,
        "sampling the remaining outcomes uniformly instead of in proportion to π_k": exact_sum
        + mass * g[rest].mean(0),
        "using the score of the renormalized distribution π_k / (1 − π_S) for the sampled "
        "outcome": exact_sum
        + mass * (cond @ (values[rest, None] * (scores[rest] - log_mass_grad))),
        "forgetting the summed outcomes (keeping only the sampled term)": mass * mean_rest,
    }
    # summing the least probable outcomes instead: unbiased, larger variance
    return exact, var, mistakes


def _name_mistake(ex, draws, expected, mistakes, scale, what):
    """Fail naming a mistake whose mean matches ``draws``; tolerant of coordinates with se 0.

    A coordinate that a mistaken estimator gets exactly (zero variance) has standard error 0,
    where a plain z-test cannot match it up to rounding: the standard error is floored at
    1e-9 of ``scale``. Does nothing when the draws are consistent with ``expected``.
    """
    mean = draws.double().mean(0)
    se = (draws.double().std(0) / draws.shape[0] ** 0.5).clamp_min(1e-9 * scale)
    z = _z(ex.false_alarm, max(1, expected.numel()))
    if bool(((mean - expected).abs() <= z * se).all()):
        return
    for label, wrong in mistakes.items():
        if bool(((mean - wrong).abs() <= z * se).all()):
            i = int(((mean - expected).abs() / se).argmax())
            ex.fail(
                f"biased: {what} average {mean[i].item():.4g} (coordinate {i}) over "
                f"{draws.shape[0]} independent calls, where the expected value is "
                f"{expected[i].item():.4g}. The average matches what {label} gives"
            )


def check_sum_and_sample(sum_and_sample_estimate) -> Verdict:
    """Check a student's sum-and-sample estimator of a categorical gradient.

    The student's function: ``sum_and_sample_estimate(f, logits, num_summed) -> Tensor (K,)``,
    one estimate of ∇ E_{k~Categorical(softmax(logits))}[f(k)] that sums the ``num_summed``
    most probable outcomes exactly and samples one outcome from the others, with its
    probability renormalized; ``f`` maps a long tensor of outcomes ``(M,)`` to ``(M,)``.

    What is verified: the shape (K,); f evaluated at no more than ``num_summed + 1`` different
    outcomes per call (evaluating the same outcome twice is allowed);
    fresh draws on each call and reproducibility under torch.manual_seed; unbiasedness (the
    mean of 3,000 calls against the gradient by enumeration, resolution under 10% of its
    norm); the variance (at most 1.2 times the exact variance of the estimator).

    Mistakes it names: sampling from all K outcomes; leaving out the weight 1 − π_S;
    sampling the rest uniformly; using the score of the renormalized distribution; dropping
    the summed outcomes; summing the least probable outcomes, or the first ``num_summed``
    indices (unbiased, caught by the variance: the categories are not sorted by probability);
    enumerating everything (caught by the count of different outcomes).

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ExerciseFailure naming the mistake.
    """
    with exercise(
        "sum and sample", sum_and_sample_estimate, argument="sum_and_sample_estimate"
    ) as ex:
        logits = torch.tensor(_LOGITS, dtype=torch.float64)
        values = torch.tensor(_VALUES, dtype=torch.float64)
        exact, var, mistakes = _sum_and_sample_targets(logits, values, _NUM_SUMMED)
        seen = set()  # the different outcomes at which f was evaluated

        def f(k):
            if not isinstance(k, torch.Tensor) or k.dtype != torch.long:
                ex.fail(
                    f"f takes a long tensor of outcomes (M,), got "
                    f"{type(k).__name__ if not isinstance(k, torch.Tensor) else k.dtype}"
                )
            seen.update(k.reshape(-1).tolist())
            return values[k]

        one = ex.call(f, logits, _NUM_SUMMED)
        ex.expect_tensor(one, shape=(logits.shape[0],), what="the estimate")
        if len(seen) > _NUM_SUMMED + 1:
            ex.fail(
                f"your function evaluated f at {len(seen)} different outcomes for one estimate; "
                f"sum and sample with num_summed={_NUM_SUMMED} needs only {_NUM_SUMMED + 1} "
                f"(the summed outcomes and one sampled outcome), not all of them"
            )
        ex.verified(
            f"evaluates f at no more than num_summed + 1 = {_NUM_SUMMED + 1} different outcomes"
        )

        def make():
            return ex.call(f, logits, _NUM_SUMMED)

        ex.expect_reproducible(make, what="the estimate")
        draws = ex.repeat(make, _SS_REPEATS)
        # two calls may draw the same outcome by chance: look for fresh draws over all of them
        if torch.unique(draws, dim=0).shape[0] < 2:
            ex.fail(
                "the estimate is the same on every call: does your function seed itself "
                "(torch.manual_seed inside it) or reuse a fixed outcome?"
            )
        ex.verified("the estimate uses fresh draws on each call")
        _name_mistake(ex, draws, exact, mistakes, exact.norm().item(), "the estimates")
        ex.expect_mean(
            draws,
            exact,
            what="the estimates",
            scale=exact.norm().item(),
            mistakes=mistakes,
            hint="the summed outcomes enter with weights π_k, the sampled one with weight "
            "1 − π_S, drawn in proportion to π_k among the outcomes not summed",
        )
        ex.expect_variance(
            draws,
            at_most=1.2 * var + 1e-12,
            what="the estimates",
            hint="sum the num_summed MOST probable outcomes (the categories are not sorted: "
            "find them from the probabilities); summing others leaves more probability to the "
            "sampled term",
        )
    return ex.verdict


# -- REBAR ------------------------------------------------------------------------------------
_TARGET, _THETA, _TAU, _ETA = 0.1, 0.0, 0.5, 1.0
_REBAR_SAMPLES, _REFERENCE_SAMPLES = 100_000, 200_000
_TAU_PROBE, _ETA_PROBE, _PROBE_SAMPLES = 0.3, 0.5, 20_000  # a second setting: τ and η are used
_LOGISTIC_VARIANCE = torch.pi**2 / 3  # Var L of the standard logistic


def _toy(x):
    return (x - _TARGET) ** 2


def _rebar_reference(num, mistake=None):
    """Per-sample REBAR gradients on the toy, or those of a typical mistake, (num,)."""
    copies = torch.full((num,), _THETA, dtype=torch.float64, requires_grad=True)
    u = torch.rand(num, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    v = torch.rand(num, dtype=torch.float64)
    z = copies + torch.logit(u)
    x = (z > 0).double()
    if mistake == "marginal":
        z_tilde = copies + torch.logit(v.clamp(1e-12, 1 - 1e-12))
    elif mistake == "no_path":
        z_tilde = conditional_logistic(copies.detach(), x, v)
    else:
        z_tilde = conditional_logistic(copies, x, v)
    c_z, c_tilde = _toy(torch.sigmoid(z / _TAU)), _toy(torch.sigmoid(z_tilde / _TAU))
    log_p = Bernoulli(logits=copies).log_prob(x)
    coef = _toy(x) - _ETA * c_tilde
    if mistake != "not_detached":
        coef = coef.detach()
    if mistake == "score_z":
        coef = (_toy(x) - _ETA * c_z).detach()
    correction = _ETA * c_z if mistake in ("no_tilde", "no_path") else _ETA * (c_z - c_tilde)
    if mistake == "no_relaxed":
        correction = torch.zeros_like(c_z)
    (grads,) = torch.autograd.grad((coef * log_p + correction).sum(), copies)
    return grads


def check_rebar(rebar_gradients) -> Verdict:
    """Check a student's per-sample REBAR gradients for one Bernoulli variable.

    The student's function: ``rebar_gradients(f, theta, num_samples, temperature, eta) ->
    Tensor (num_samples,)``, independent per-sample REBAR estimates of
    d/dθ E_{x~Bernoulli(sigmoid(θ))}[f(x)], θ a 0-dim float64 tensor, f mapping ``(N,)``
    bits or relaxed bits in [0, 1] to ``(N,)``.

    What is verified, on f(x) = (x − 0.1)² at θ = 0, τ = 0.5, η = 1: the shape; inputs left
    unchanged; fresh and reproducible draws; per-sample values that are not all equal;
    unbiasedness (100,000 samples against the exact gradient (1 − 2t) π (1 − π) = 0.2,
    resolution about 1% of it); the variance (at most 1.2 times REBAR's, measured here from
    200,000 reference draws). Then that ``eta`` and ``temperature`` are used: at η = 0 every
    per-sample value is plain REINFORCE, f(x)(x − π), so it is −π f(0) or (1 − π) f(1) exactly;
    and at τ = 0.3 the relaxed inputs y passed to f are sigmoid(z/τ) with z = θ + L, so that
    τ logit(y) has the logistic's variance π²/3 (within 10%).

    Mistakes it names: the coefficient f(x) − η c(z̃) not detached; the path of z̃ cut (z̃
    computed from a detached θ); the term −η ∇c(z̃) left out; the relaxed terms left out
    altogether (plain REINFORCE with baseline η c(z̃), caught by its variance); z̃ drawn from
    the logistic ignoring x, or c(z) used in place of c(z̃) in the coefficient (both unbiased,
    caught by their variance); ``eta`` ignored; ``temperature`` ignored, or multiplied
    instead of divided (sigmoid(z τ)); the batch mean returned for every sample.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ExerciseFailure naming the mistake.
    """
    with exercise(
        "REBAR for one Bernoulli variable", rebar_gradients, argument="rebar_gradients"
    ) as ex:
        theta = torch.tensor(_THETA, dtype=torch.float64)
        pi = torch.sigmoid(theta)
        exact = ((1 - 2 * _TARGET) * pi * (1 - pi)).item()
        small = ex.call(_toy, theta, 8, _TAU, _ETA)
        ex.expect_tensor(small, shape=(8,), what="the per-sample gradients")

        def make():
            return ex.call(_toy, theta, 8, _TAU, _ETA)

        ex.expect_fresh_draws(make, what="the per-sample gradients")
        ex.expect_reproducible(make, what="the per-sample gradients")
        draws = ex.call(_toy, theta, _REBAR_SAMPLES, _TAU, _ETA)
        ex.expect_tensor(draws, shape=(_REBAR_SAMPLES,), what="the per-sample gradients")
        if bool((draws == draws[0]).all()):
            ex.fail(
                "the per-sample values are all equal: return one gradient per sample (shape "
                "(num_samples,)), not their average repeated"
            )
        reference = _rebar_reference(_REFERENCE_SAMPLES)
        mistakes = {
            label: _rebar_reference(_REFERENCE_SAMPLES, key).mean()
            for label, key in (
                ("a coefficient f(x) − η c(z̃) that is not detached", "not_detached"),
                (
                    (
                        "leaving out the term −η ∇c(z̃), or cutting the path from θ to z̃ "
                        "(z̃ computed from a detached θ)"
                    ),
                    "no_tilde",
                ),
            )
        }
        ex.expect_mean(
            draws,
            torch.tensor(exact, dtype=torch.float64),
            what="the per-sample gradients",
            mistakes=mistakes,
            hint="REBAR is unbiased for every η and τ: check the three terms of eq. "
            "(f(x) − η c(z̃)) ∇ log p(x) + η ∇c(z) − η ∇c(z̃)",
        )
        ex.expect_variance(
            draws,
            at_most=1.2 * reference.var().item(),
            what="the per-sample gradients",
            hint="is z̃ drawn from z given x (conditional_logistic), and is c(z̃), not c(z), "
            "in the coefficient of the score?",
        )
        ex.verified(
            f"the variance is that of REBAR (reference {reference.var().item():.4f}, "
            f"{_REFERENCE_SAMPLES:,} draws)"
        )
        _check_eta_used(ex, theta, pi)
        _check_temperature_used(ex, theta)
    return ex.verdict


def _check_eta_used(ex, theta, pi):
    """At η = 0 each per-sample value is f(x)(x − π): −π f(0) or (1 − π) f(1), exactly."""
    values = ex.call(_toy, theta, 1000, _TAU, 0.0)
    ex.expect_tensor(values, shape=(1000,), what="the per-sample gradients at η = 0")
    bits = torch.tensor([0.0, 1.0], dtype=torch.float64)
    allowed = (torch.stack([-pi, 1 - pi]) * _toy(bits)).to(values.dtype)
    off = (values.detach()[:, None] - allowed).abs().min(-1).values
    if bool((off > 1e-9).any()):
        i = int(off.argmax())
        ex.fail(
            f"at eta = 0 REBAR is plain REINFORCE, f(x) ∇ log p(x), so each per-sample value "
            f"must be −π f(0) = {allowed[0].item():.4g} or (1 − π) f(1) = "
            f"{allowed[1].item():.4g}; yours include {values[i].item():.4g}. Does your "
            f"function use its eta argument to scale the control variate c?"
        )
    ex.verified("at η = 0 every per-sample value is plain REINFORCE's: eta is used")


def _check_temperature_used(ex, theta):
    """At τ = 0.3 the relaxed inputs y = sigmoid(z/τ) give τ logit(y) = z, of variance π²/3."""
    relaxed = []

    def f(y):
        flat = y.detach().reshape(-1)
        relaxed.append(flat[(flat > 0) & (flat < 1)].double())  # bits are exactly 0 or 1
        return _toy(y)

    ex.call(f, theta, _PROBE_SAMPLES, _TAU_PROBE, _ETA_PROBE)
    y = torch.cat(relaxed) if relaxed else torch.zeros(0, dtype=torch.float64)
    if y.numel() < _PROBE_SAMPLES:
        ex.fail(
            f"with num_samples={_PROBE_SAMPLES} your function passed only {y.numel()} relaxed "
            f"inputs strictly between 0 and 1 to f; REBAR evaluates f at sigmoid(z/τ) and "
            f"sigmoid(z̃/τ) for every sample"
        )
    ratio = (_TAU_PROBE * torch.logit(y)).var().item() / _LOGISTIC_VARIANCE
    if not 0.9 < ratio < 1.1:
        ex.fail(
            f"at temperature {_TAU_PROBE} the relaxed inputs y your function passes to f do not "
            f"look like sigmoid(z / τ) with z = θ + L: τ·logit(y) has variance {ratio:.3g} times "
            f"the logistic's π²/3. Does your function use its temperature argument, and divide "
            f"z by it?"
        )
    ex.verified(
        f"at τ = {_TAU_PROBE} the relaxed inputs are sigmoid(z/τ): temperature is used "
        f"(τ·logit(y) has {ratio:.3f} times the logistic variance)"
    )
