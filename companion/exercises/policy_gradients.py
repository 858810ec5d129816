"""Checkers of the implement-it exercises of the policy-gradient chapter.

Three exercises, each the object of one section of the chapter written by hand:

- :func:`check_rloo_advantages`: the leave-one-out advantages of a group of N outputs
  per prompt (RLOO);
- :func:`check_k3_estimator`: the per-token k3 estimator of the KL penalty to a reference
  policy;
- :func:`check_reinforce_surrogate`: the per-output surrogate whose gradient is REINFORCE for
  a sequence, with the advantage held fixed.

Each checker runs the student's function on problems with known answers (a Bernoulli
bandit whose gradient is π(1 - π), categorical policies whose KL is computed exactly by
``torch.distributions.kl_divergence``, fixed groups and tokens compared with the companion's
tested :mod:`companion.policy`) and either prints what it verified or raises
:class:`~companion.exercises.ExerciseFailure` naming the mistake.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch
from torch.distributions import Categorical, kl_divergence

from ..policy import grpo_advantages, per_token_kl, rloo_advantages, sequence_surrogate
from ._core import exercise

__all__ = ["check_rloo_advantages", "check_k3_estimator", "check_reinforce_surrogate"]

_DTYPE = torch.float64
_BANDIT_PROB = 0.3  # π of the Bernoulli bandit: reward x ~ Bernoulli(π), θ its logit
_BANDIT_GROUP = 4  # N outputs per group
_BANDIT_GROUPS = 8000  # independent groups: resolution about 2.6% of π(1 - π)


# -- RLOO --------------------------------------------------------------------------------------
def _include_self(r):  # the group mean, r_i included
    return r - r.mean(dim=0, keepdim=True)


def _grpo(r):
    return grpo_advantages(r, eps=0.0)


def _others_over_n(r):  # the others' sum divided by N
    return r - (r.sum(dim=0, keepdim=True) - r) / r.shape[0]


def _all_over_n_minus_1(r):  # every reward, r_i included, divided by N - 1
    return r - r.sum(dim=0, keepdim=True) / (r.shape[0] - 1)


def _last_axis(r):  # leave-one-out along the last dimension
    n = r.shape[-1]
    return r - (r.sum(dim=-1, keepdim=True) - r) / (n - 1)


_RLOO_MISTAKES = {
    "a baseline that includes the draw itself (the group mean with r_i in it)": _include_self,
    "GRPO's division by the group's standard deviation": _grpo,
    "no baseline at all (A_i = r_i)": lambda r: r,
    "dividing the others' sum by N instead of N − 1": _others_over_n,
    "dividing the sum of all N rewards, r_i included, by N − 1": _all_over_n_minus_1,
    "the leave-one-out mean taken along the wrong axis (the outputs of a group run "
    "along dimension 0)": _last_axis,
    "a sign error (the others' mean minus r_i)": lambda r: -rloo_advantages(r),
}

# Two mistakes with the same mean on the bandit (advantages that do not depend on r_i give
# estimates of mean 0): told apart by the exact values on fixed groups.
_ZERO_MEAN_MISTAKES = {
    "A_i = 0 (the advantages left out)": torch.zeros_like,
    "the mean of the others alone (the r_i term left out)": lambda r: (
        (r.sum(dim=0, keepdim=True) - r) / (r.shape[0] - 1)
    ),
}
_ZERO_MEAN_LABEL = (
    "an advantage that does not depend on r_i (A_i = 0, or the mean of the others alone, "
    "the r_i term left out)"
)


def _bandit_mean(advantage) -> float:
    """E[(1/N) Σ_i A_i (x_i - π)], x_i ~ Bernoulli(π), exactly, over the 2^N reward patterns."""
    total = 0.0
    for pattern in itertools.product((0.0, 1.0), repeat=_BANDIT_GROUP):
        x = torch.tensor(pattern, dtype=_DTYPE)
        prob = math.prod(_BANDIT_PROB if v else 1 - _BANDIT_PROB for v in pattern)
        total += prob * float((advantage(x) * (x - _BANDIT_PROB)).mean())
    return total


def check_rloo_advantages(rloo_advantage):
    """Check a student's leave-one-out (RLOO) advantages of groups of outputs.

    The student's function: ``rloo_advantage(rewards) -> Tensor``, with ``rewards`` of shape
    ``(N, *batch)`` (N >= 2 outputs of one prompt along dimension 0, any number of batch
    dimensions, float64) and the result of the same shape, A_i = r_i - (1/(N-1)) Σ_{j≠i} r_j.

    What is verified:

    - the result is a finite floating tensor of the rewards' shape, and the rewards are left
      unchanged;
    - unbiasedness of the gradient it gives: on a Bernoulli bandit (reward x ~ Bernoulli(0.3),
      θ the logit, score x - π), the group estimate (1/N) Σ_i A_i (x_i - π) over 8000
      independent groups of N = 4 averages to ∂θ E[x] = π(1 - π) = 0.21 (two-sided z-test,
      resolution about 2.6% of 0.21);
    - its variance there is at most 1.3 times RLOO's (exact by enumeration), which a missing
      baseline exceeds;
    - exact values (relative 1e-9) on fixed groups: one success among four, and real rewards
      of shapes (5, 3) and (4, 2, 3).

    Mistakes it names: a baseline that includes the draw itself (the group mean, (N-1)/N
    times the answer), GRPO's division by the standard deviation, no baseline, the others'
    sum divided by N, the sum of all N rewards divided by N - 1, the wrong axis, a sign
    error, A_i = 0, the others' mean alone (the r_i term left out; on the bandit the last
    two give the same mean and are named together); and, from the framework, modifying the
    rewards in place, a wrong shape, NaN or inf.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when ``rloo_advantage`` is not
        callable.
    """
    with exercise("RLOO advantages", rloo_advantage, argument="rloo_advantage") as ex:
        n, groups, p = _BANDIT_GROUP, _BANDIT_GROUPS, _BANDIT_PROB
        x = (torch.rand(n, groups, dtype=_DTYPE) < p).to(_DTYPE)  # 0/1 rewards, (N, groups)
        adv = ex.call(x)
        ex.expect_tensor(adv, shape=(n, groups), what="the advantage tensor of (N, groups) rewards")
        estimates = (adv.detach() * (x - p)).mean(dim=0)  # (groups,), one per group
        ex.expect_mean(
            estimates,
            torch.tensor(p * (1 - p), dtype=_DTYPE),
            what="the group estimates (1/N) Σ_i A_i ∇θ log π(x_i) on a Bernoulli bandit",
            mistakes={label: _bandit_mean(fn) for label, fn in _RLOO_MISTAKES.items()}
            | {_ZERO_MEAN_LABEL: 0.0},
            hint="A_i = r_i − (the mean reward of the other N − 1 outputs of its group)",
        )
        rloo_var = float(((rloo_advantages(x) * (x - p)).mean(dim=0)).var())
        ex.expect_variance(
            estimates,
            at_most=1.3 * rloo_var,
            what="the group estimates",
            hint="does every output get a baseline, the mean reward of the other outputs?",
        )
        one_success = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=_DTYPE)
        real_2d = torch.randn(5, 3, dtype=_DTYPE)
        real_3d = torch.randn(4, 2, 3, dtype=_DTYPE)
        for r, what in (
            (one_success, "the advantage tensor of rewards (1, 0, 0, 0)"),
            (real_2d, "the advantage tensor of 3 groups of 5 real rewards, shape (5, 3)"),
            (real_3d, "the advantage tensor of rewards of shape (4, 2, 3)"),
        ):
            value = ex.call(r.clone())
            ex.expect_tensor(value, shape=tuple(r.shape), what=what)
            ex.expect_close(
                value,
                rloo_advantages(r),
                what=what,
                rtol=1e-9,
                atol=1e-12,
                mistakes={
                    label: fn(r) for label, fn in (_RLOO_MISTAKES | _ZERO_MEAN_MISTAKES).items()
                },
                hint="A_i = r_i − (the mean reward of the other N − 1 outputs of its group)",
            )
    return ex.verdict


# -- k3 ----------------------------------------------------------------------------------------
def _k3_mistakes(logp, ref):
    log_nu = ref - logp
    return {
        "k1 = −log ν (unbiased, but negative at some tokens)": -log_nu,
        "the ratio inverted, ν = π_θ/π_ref instead of π_ref/π_θ": torch.expm1(-log_nu) + log_nu,
        "k2 = (log ν)²/2": log_nu**2 / 2,
        "ν − log ν, without the − 1": log_nu.exp() - log_nu,
        "ν + log ν − 1 (the sign of log ν)": log_nu.exp() + log_nu - 1,
    }


def _k3_policies():
    """π_θ and π_ref over 6 tokens, KL(π_θ ‖ π_ref) about 0.2."""
    logits = torch.tensor([1.0, 0.3, -0.5, 0.0, -1.2, 0.6], dtype=_DTYPE)
    ref_logits = torch.tensor([0.2, 0.8, 0.1, -0.6, -0.3, 0.0], dtype=_DTYPE)
    return Categorical(logits=logits), Categorical(logits=ref_logits)


def check_k3_estimator(k3):
    """Check a student's per-token k3 estimator of KL(π_θ ‖ π_ref).

    The student's function: ``k3(log_probs, ref_log_probs) -> Tensor``, with ``log_probs``
    = log π_θ(o_t | c, o_<t) and ``ref_log_probs`` = log π_ref(o_t | c, o_<t) at sampled
    tokens, two float64 tensors of one shape (any), and the result of that shape:
    k3_t = ν_t - log ν_t - 1 with ν_t = π_ref / π_θ at the token.

    What is verified:

    - a finite floating tensor of the inputs' shape, for shapes (20000,) and (2, 3); the
      inputs are left unchanged;
    - unbiasedness: at 20000 tokens drawn from a categorical π_θ over 6 tokens, the mean of
      k3 is KL(π_θ ‖ π_ref) (exact, ``torch.distributions.kl_divergence``; two-sided z-test,
      resolution about 2% of the KL);
    - nonnegativity at every sampled token;
    - exact values (relative 1e-9) at six fixed pairs of log-probabilities;
    - the gradient reaches log π_θ (the penalty is differentiated in training).

    Mistakes it names: k1 = -log ν (unbiased but negative at some tokens), the ratio
    inverted (π_θ/π_ref), k2 = (log ν)²/2, a missing -1, the sign of log ν; detaching or
    ``.item()`` (the gradient does not reach θ); from the framework, in-place changes of the
    inputs, a wrong shape, NaN or inf.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when ``k3`` is not callable.
    """
    with exercise("k3 estimator of the KL penalty", k3, argument="k3") as ex:
        policy, ref = _k3_policies()
        num = 20_000
        tokens = policy.sample((num,))
        logp, ref_logp = policy.log_prob(tokens), ref.log_prob(tokens)  # (num,), (num,)
        values = ex.call(logp, ref_logp)
        ex.expect_tensor(values, shape=(num,), what="k3 at 20000 sampled tokens")
        kl = kl_divergence(policy, ref)
        support = torch.arange(6)
        lp_all, ref_all = policy.log_prob(support), ref.log_prob(support)
        probs = lp_all.exp()
        ex.expect_mean(
            values.detach()[:, None],
            kl[None],
            what="k3 at tokens drawn from π_θ",
            mistakes={
                label: (probs * wrong).sum()[None]
                for label, wrong in _k3_mistakes(lp_all, ref_all).items()
            },
            hint="its mean must be KL(π_θ ‖ π_ref) = Σ_v π_θ(v) log(π_θ(v)/π_ref(v))",
        )
        if (values.detach() < 0).any():
            worst = values.detach().min().item()
            hint = ""
            if torch.allclose(values.detach(), logp - ref_logp, rtol=1e-9, atol=1e-12):
                hint = ": this is k1 = −log ν, unbiased but not k3"
            ex.fail(
                f"k3 must be >= 0 at every token (ν − 1 >= log ν), but your values go down to "
                f"{worst:.4g}{hint}"
            )
        ex.verified("k3 >= 0 at every sampled token")
        fixed = torch.tensor([0.5, 0.25, 0.1, 0.6, 0.05, 0.9], dtype=_DTYPE).log()
        fixed_ref = torch.tensor([0.25, 0.5, 0.3, 0.55, 0.4, 0.02], dtype=_DTYPE).log()
        for lp, rl in ((fixed, fixed_ref), (fixed.reshape(2, 3), fixed_ref.reshape(2, 3))):
            value = ex.call(lp.clone(), rl.clone())
            what = f"k3 at fixed log-probabilities of shape {tuple(lp.shape)}"
            ex.expect_tensor(value, shape=tuple(lp.shape), what=what)
            ex.expect_close(
                value,
                per_token_kl(lp, rl, kind="k3"),
                what=what,
                rtol=1e-9,
                atol=1e-12,
                mistakes=_k3_mistakes(lp, rl),
            )
        lp = fixed.clone().requires_grad_(True)
        ex.expect_grad(
            ex.call(lp, fixed_ref.clone()), lp, what="your k3 (as a function of log π_θ)"
        )
    return ex.verdict


# -- the REINFORCE surrogate -------------------------------------------------------------------
@contextlib.contextmanager
def _backward_errors(ex):
    """Turn an error of autograd while differentiating the student's surrogate into a verdict."""
    try:
        yield
    except RuntimeError as err:
        ex.fail(
            f"differentiating your surrogate raised RuntimeError: {err}. Does your function "
            f"modify a tensor in place after using it (e.g. mask.logical_not_(), x += 1)? "
            f"Use out-of-place operations"
        )


def _surrogate_problem():
    """Three outputs of up to 3 tokens from a 4-token softmax table θ (3, 4), one padded."""
    theta = torch.tensor(
        [[0.3, -0.2, 0.5, 0.0], [-0.4, 0.1, 0.2, 0.6], [0.0, 0.7, -0.3, 0.1]], dtype=_DTYPE
    )
    tokens = torch.tensor([[2, 1, 3], [0, 3, 0], [1, 1, 2]])  # (N, T)
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    return theta, tokens, mask


def _token_log_probs(theta, tokens):  # log π(o_t) from row t of θ, (N, T)
    return torch.log_softmax(theta, dim=-1)[torch.arange(tokens.shape[1]), tokens]


def check_reinforce_surrogate(reinforce_surrogate):
    """Check a student's per-output REINFORCE surrogate A_i Σ_t log π_θ(o_it | c, o_i,<t).

    The student's function: ``reinforce_surrogate(token_log_probs, advantages, mask) ->
    Tensor`` of shape ``(N,)``, with ``token_log_probs`` of shape ``(N, T)`` (log-probability
    of each token of each output, carrying the graph to θ; padding entries hold arbitrary
    finite values), ``advantages`` of shape ``(N,)`` (possibly computed from θ, e.g. by a
    learned baseline) and ``mask`` of shape ``(N, T)``, True at real tokens. Its gradient,
    summed over outputs, must be Σ_i A_i Σ_t m_it ∇θ log π_θ(o_it | …): the advantage is a
    fixed weight. Its value is checked too, not only its gradient: surrogate_i = A_i Σ_t m_it
    log π_θ(o_it | …).

    What is verified:

    - a finite floating tensor of shape (N,) that carries the graph to θ; inputs unchanged;
    - its value (relative 1e-9) on three outputs of lengths 3, 2 and 1 from a small softmax
      policy, with junk log-probabilities at the padding;
    - its gradient with respect to θ (relative 1e-9), with advantages that depend on θ, so
      that a gradient through the advantage shows;
    - unbiasedness of the resulting estimator on a one-token policy over 4 tokens with
      rewards (1, 0, 0.5, 2) and RLOO advantages over groups of 4: the gradient averages to
      ∇θ E[r] (exact, by autograd through the enumerated sum; 4000 groups, per-coordinate
      z-tests with Bonferroni, resolution about 8% of the gradient's largest entry).

    Mistakes it names: the advantage not detached (a gradient through A), the padding
    tokens counted, GRPO's per-output average over tokens (1/|o_i|), a sign error (a loss
    instead of the objective), the advantage left out, the ratio form A_i exp(S_i − ⊥S_i)
    (right gradient, value A_i); from the framework, ``.detach()`` of
    the log-probabilities (the gradient does not reach θ), in-place changes, a wrong shape.

    Returns:
        The :class:`~companion.exercises.Verdict`; raises ``ExerciseFailure`` naming the
        mistake when the function is wrong, ``TypeError`` when ``reinforce_surrogate`` is not
        callable.
    """
    with exercise(
        "REINFORCE surrogate for sequences", reinforce_surrogate, argument="reinforce_surrogate"
    ) as ex:
        table, tokens, mask = _surrogate_problem()
        theta = table.clone().requires_grad_(True)
        clean = _token_log_probs(theta, tokens)  # (N, T)
        junk = torch.tensor(-7.0, dtype=_DTYPE)  # what sits at the padding
        logp = torch.where(mask, clean, junk + 0 * clean)
        baseline = theta.sum() / 10  # a "learned baseline" that depends on θ
        rewards = torch.tensor([1.0, -0.5, 2.0], dtype=_DTYPE)
        adv = rewards - baseline  # requires grad
        value = ex.call(logp, adv, mask.clone())  # a copy: the graph of logp holds mask
        ex.expect_tensor(value, shape=(3,), what="the surrogate of 3 outputs")
        with _backward_errors(ex):
            ex.expect_grad(value, theta, what="the surrogate")
        a, lp = adv.detach(), logp.detach()
        length = mask.sum(-1)
        summed = torch.where(mask, lp, 0.0).sum(-1)
        wrong_values = {
            "counting the padding tokens (use the mask)": a * lp.sum(-1),
            "GRPO's average over each output's tokens (1/|o_i|)": a * summed / length,
            "a sign error (the loss −A log π instead of the objective)": -a * summed,
            "the advantage left out": summed,
            "the ratio form A_i exp(S_i − ⊥S_i), S_i = Σ_t log π (its gradient is right, but "
            "its value is A_i, and this exercise checks the value A_i S_i as well)": a,
        }
        ex.expect_close(
            value,
            sequence_surrogate(lp, a, mask, length_norm="none"),
            what="the surrogate's value",
            rtol=1e-9,
            atol=1e-12,
            mistakes=wrong_values,
        )
        with _backward_errors(ex):
            (grad,) = torch.autograd.grad(value.sum(), theta)
        theta_ref = table.clone().requires_grad_(True)
        ref_lp = _token_log_probs(theta_ref, tokens)
        right = sequence_surrogate(ref_lp, a, mask, length_norm="none").sum()
        (expected,) = torch.autograd.grad(right, theta_ref)
        theta_b = table.clone().requires_grad_(True)  # the same objective, gradient through A
        adv_b = rewards - theta_b.sum() / 10
        summed_b = torch.where(mask, _token_log_probs(theta_b, tokens), 0.0).sum(-1)
        (through_a,) = torch.autograd.grad((adv_b * summed_b).sum(), theta_b)
        ex.expect_close(
            grad,
            expected,
            what="the gradient of the surrogate's sum with respect to θ",
            rtol=1e-9,
            atol=1e-12,
            mistakes={
                "letting the gradient flow through the advantage (detach it: "
                "A is a weight, not part of the objective)": through_a
            },
            hint="it should be Σ_i A_i Σ_t ∇θ log π_θ(o_it), A_i held fixed",
        )
        _check_unbiased(ex)
    return ex.verdict


def _check_unbiased(ex) -> None:
    """The student's surrogate, with RLOO advantages, is unbiased on a one-token policy."""
    logits = torch.tensor([0.4, -0.3, 0.1, -0.8], dtype=_DTYPE)
    reward = torch.tensor([1.0, 0.0, 0.5, 2.0], dtype=_DTYPE)
    n, groups = 4, 4000
    theta = logits.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad((torch.softmax(theta, -1) * reward).sum(), theta)
    draws = Categorical(logits=logits).sample((n, groups))  # (N, groups)
    copies = logits.expand(groups, -1).clone().requires_grad_(True)  # one θ per group
    logp = torch.log_softmax(copies, -1)[torch.arange(groups), draws]  # (N, groups)
    adv = rloo_advantages(reward[draws])  # (N, groups)
    logp_flat = logp.T.reshape(groups * n, 1)  # one output of one token per row
    adv_flat = adv.T.reshape(groups * n)
    mask = torch.ones(groups * n, 1, dtype=torch.bool)
    value = ex.call(logp_flat, adv_flat, mask)
    ex.expect_tensor(value, shape=(groups * n,), what="the surrogate of 16000 outputs")
    with _backward_errors(ex):
        (grad,) = torch.autograd.grad(value.sum() / n, copies)  # (groups, 4): one per group
    ex.expect_mean(
        grad,
        exact,
        what="the gradient estimates (1/N) Σ_i ∇θ surrogate_i, RLOO advantages, groups of 4",
        scale=exact.abs().max(),
    )
