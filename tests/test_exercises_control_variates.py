"""Tests of the checkers of the chapter on control variates: references pass, mistakes are named."""

import pytest
import torch
from torch.distributions import Bernoulli

from companion.exercises._core import ExerciseFailure
from companion.exercises.control_variates import check_rebar, check_sum_and_sample
from companion.rebar import conditional_logistic

# -- sum and sample ---------------------------------------------------------------------------


def make_sum_and_sample(
    *,
    sample_all=False,
    no_weight=False,
    uniform=False,
    renorm=False,
    drop_sum=False,
    least=False,
    enumerate_all=False,
    inplace=False,
    first_indices=False,
    twice=False,
):
    def sum_and_sample_estimate(f, logits, num_summed):
        if inplace:
            logits -= 0.0 * logits + 1.0
        probs = torch.softmax(logits, 0)
        K = probs.shape[0]
        scores = torch.eye(K, dtype=logits.dtype) - probs  # row k: ∇ log π_k
        if enumerate_all:
            return probs @ (f(torch.arange(K))[:, None] * scores)
        order = torch.argsort(probs, descending=not least)
        if first_indices:  # the first num_summed categories, whatever their probabilities
            order = torch.arange(K)
        summed, rest = order[:num_summed], order[num_summed:]
        mass = probs[rest].sum()
        total = torch.zeros(K, dtype=logits.dtype)
        if not drop_sum:
            total = probs[summed] @ (f(summed)[:, None] * scores[summed])
        if twice:  # evaluates the summed outcomes a second time: wasteful, not wrong
            f(summed)
        if sample_all:
            k = torch.multinomial(probs, 1)
        elif uniform:
            k = rest[torch.randint(len(rest), (1,))]
        else:
            k = rest[torch.multinomial(probs[rest] / mass, 1)]
        score = scores[k[0]]
        if renorm:
            score = score - (probs[rest, None] * scores[rest]).sum(0) / mass
        weight = 1.0 if no_weight else mass
        return total + weight * f(k)[0] * score

    return sum_and_sample_estimate


def test_sum_and_sample_reference_passes():
    verdict = check_sum_and_sample(make_sum_and_sample())
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample_all": True}, "sampling from all K outcomes"),
        ({"no_weight": True}, "leaving out the weight"),
        ({"uniform": True}, "uniformly"),
        ({"renorm": True}, "renormalized distribution"),
        ({"drop_sum": True}, "forgetting the summed outcomes"),
        ({"least": True}, "variance far above"),
        ({"enumerate_all": True}, "evaluated f at 6 different outcomes"),
        ({"first_indices": True}, "variance far above"),
        ({"inplace": True}, "modifies its input"),
    ],
)
def test_sum_and_sample_mistakes_are_named(kwargs, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_sum_and_sample(make_sum_and_sample(**kwargs))


def test_sum_and_sample_evaluating_an_outcome_twice_passes():
    assert check_sum_and_sample(make_sum_and_sample(twice=True)).passed


def test_sum_and_sample_wrong_shape_and_stub():
    with pytest.raises(ExerciseFailure, match="wrong shape"):
        check_sum_and_sample(lambda f, logits, m: make_sum_and_sample()(f, logits, m)[None])

    def stub(f, logits, num_summed):
        raise NotImplementedError("write your function")

    verdict = check_sum_and_sample(stub)
    assert not verdict.attempted and not verdict.passed
    with pytest.raises(TypeError, match="sum_and_sample_estimate"):
        check_sum_and_sample(3)


# -- REBAR --------------------------------------------------------------------------------------


def make_rebar(mistake=None):
    def rebar_gradients(f, theta, num_samples, temperature, eta):
        if mistake == "eta_ignored":
            eta = 1.0
        if mistake == "tau_ignored":
            temperature = 0.5
        if mistake == "tau_multiplied":
            temperature = 1.0 / temperature
        copies = theta.detach().expand(num_samples).clone().requires_grad_()
        u = torch.rand(num_samples, dtype=theta.dtype).clamp(1e-12, 1 - 1e-12)
        v = torch.rand(num_samples, dtype=theta.dtype)
        z = copies + torch.logit(u)
        x = (z > 0).to(theta.dtype)
        if mistake == "marginal":
            z_tilde = copies + torch.logit(v.clamp(1e-12, 1 - 1e-12))
        elif mistake == "no_path":
            z_tilde = conditional_logistic(copies.detach(), x, v)
        else:
            z_tilde = conditional_logistic(copies, x, v)
        c_z = f(torch.sigmoid(z / temperature))
        c_tilde = f(torch.sigmoid(z_tilde / temperature))
        log_p = Bernoulli(logits=copies).log_prob(x)
        coef = f(x) - eta * (c_z if mistake == "score_z" else c_tilde)
        if mistake != "not_detached":
            coef = coef.detach()
        correction = eta * (c_z - c_tilde)
        if mistake == "no_tilde":
            correction = eta * c_z
        if mistake == "plain":
            correction = 0.0 * c_z
        if mistake == "sign":
            correction = -correction
        (grads,) = torch.autograd.grad((coef * log_p + correction).sum(), copies)
        if mistake == "mean":
            return grads.mean()
        if mistake == "mean_expanded":
            return grads.mean().expand(num_samples).clone()
        return grads

    return rebar_gradients


def test_rebar_reference_passes():
    verdict = check_rebar(make_rebar())
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("not_detached", "not detached"),
        ("no_path", "cutting the path from θ to z̃"),
        ("no_tilde", "leaving out the term"),
        ("plain", "biased"),
        ("sign", "biased"),
        ("marginal", "variance far above"),
        ("score_z", "variance far above"),
        ("mean", "wrong shape"),
        ("mean_expanded", "per-sample values are all equal"),
        ("eta_ignored", "use its eta argument"),
        ("tau_ignored", "use its temperature argument"),
        ("tau_multiplied", "use its temperature argument"),
    ],
)
def test_rebar_mistakes_are_caught(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_rebar(make_rebar(mistake))


def test_rebar_stub_and_bad_argument():
    def stub(f, theta, num_samples, temperature, eta):
        raise NotImplementedError

    verdict = check_rebar(stub)
    assert not verdict.attempted
    with pytest.raises(TypeError, match="rebar_gradients"):
        check_rebar(None)


def test_messages_do_not_show_the_reference():
    with pytest.raises(ExerciseFailure) as info:
        check_rebar(make_rebar("no_tilde"))
    assert "conditional_logistic(copies" not in str(info.value)
    assert "autograd.grad" not in str(info.value)
