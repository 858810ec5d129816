"""Checkers of Chapter 3's implement-it exercises: the reference passes, each mistake is named.

Each typical mistake is a small mutant of the reference solution; the checker must refuse it
with a message that names the mistake. The notebook's own reference cells are run through
the checkers too, and so are the student edition's stubs (not attempted, no error).
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from companion.exercises import ExerciseFailure
from companion.exercises.score_function import check_gamma_score, check_leave_one_out_gradient

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "03_score_function.ipynb"
CHECKERS = {
    "leave_one_out_gradient": check_leave_one_out_gradient,
    "gamma_score": check_gamma_score,
}


def reference_cells() -> dict[str, str]:
    """The notebook's reference-solution cells, by the name of the function each defines."""
    cells = json.loads(CHAPTER.read_text())["cells"]
    sources = {}
    for cell in cells:
        if "reference-solution" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            sources[re.search(r"^def (\w+)\(", source, re.MULTILINE).group(1)] = source
    return sources


def student_stub(source: str) -> str:
    """The student edition's stub: the lines from BEGIN to END SOLUTION become a raise."""
    match = re.search(r"^( *)# BEGIN SOLUTION\n.*?^ *# END SOLUTION\n?", source, re.S | re.M)
    indent = match.group(1)
    return (
        source[: match.start()]
        + f'{indent}raise NotImplementedError("write your solution here")\n'
        + source[match.end() :]
    )


def define(source: str, name: str):
    namespace = {"torch": torch, "math": math}
    exec(source, namespace)
    return namespace[name]


def solution_lines(source: str) -> list[str]:
    body = re.search(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", source, re.S).group(1)
    return [line.split("#")[0].strip() for line in body.splitlines() if line.split("#")[0].strip()]


# ----------------------------------------------------------- leave-one-out estimator


def surrogate_gradient(f, dist_fn, theta, num_samples, *, baseline, draw="sample", scale=1.0):
    theta = theta.detach().clone().requires_grad_(True)
    dist = dist_fn(theta)
    x = getattr(dist, draw)((num_samples,))
    values = f(x).detach()
    surrogate = ((values - baseline(values)) * dist.log_prob(x)).sum() / scale
    (grad,) = torch.autograd.grad(surrogate, theta)
    return grad


def others(values):  # b_n = mean of the other N − 1 values
    return (values.sum() - values) / (len(values) - 1)


def leave_one_out(f, dist_fn, theta, num_samples):
    return surrogate_gradient(f, dist_fn, theta, num_samples, baseline=others, scale=num_samples)


def includes_the_draw(f, dist_fn, theta, num_samples):
    return surrogate_gradient(
        f, dist_fn, theta, num_samples, baseline=lambda v: v.mean(), scale=num_samples
    )


def no_baseline(f, dist_fn, theta, num_samples):
    return surrogate_gradient(
        f, dist_fn, theta, num_samples, baseline=lambda v: 0.0, scale=num_samples
    )


def divides_by_n(f, dist_fn, theta, num_samples):
    return surrogate_gradient(
        f, dist_fn, theta, num_samples, baseline=lambda v: (v.sum() - v) / len(v), scale=num_samples
    )


def loo_sign_error(f, dist_fn, theta, num_samples):
    return -leave_one_out(f, dist_fn, theta, num_samples)


def averages_over_n_minus_one(f, dist_fn, theta, num_samples):
    return surrogate_gradient(
        f, dist_fn, theta, num_samples, baseline=others, scale=num_samples - 1
    )


def with_rsample(f, dist_fn, theta, num_samples):
    return surrogate_gradient(
        f, dist_fn, theta, num_samples, baseline=others, draw="rsample", scale=num_samples
    )


def loo_seeds_itself(f, dist_fn, theta, num_samples):
    torch.manual_seed(2)
    return leave_one_out(f, dist_fn, theta, num_samples)


def loo_summed(f, dist_fn, theta, num_samples):
    return surrogate_gradient(f, dist_fn, theta, num_samples, baseline=others, scale=1.0)


def backward_on_theta(f, dist_fn, theta, num_samples):  # returns theta.grad after .backward()
    theta.requires_grad_(True)
    dist = dist_fn(theta)
    x = dist.sample((num_samples,))
    values = f(x).detach()
    ((values - others(values)) * dist.log_prob(x)).mean().backward()
    return theta.grad


def backward_then_restored(f, dist_fn, theta, num_samples):  # the same, requires_grad reset
    grad = backward_on_theta(f, dist_fn, theta, num_samples).clone()
    theta.requires_grad_(False)
    return grad


def per_sample_terms(f, dist_fn, theta, num_samples):  # returns (N, D): forgot the mean
    return leave_one_out(f, dist_fn, theta, num_samples).expand(num_samples, -1)


def test_the_leave_one_out_reference_passes_with_resolution():
    threads = torch.get_num_threads()
    verdict = check_leave_one_out_gradient(leave_one_out)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1
    assert torch.get_num_threads() == threads  # the checker runs on one thread, then restores


def test_the_exact_variance_is_the_chapters_formula():
    """N Var of the leave-one-out estimate on the Bernoulli problem, by enumeration of all 2^N."""
    import itertools

    from companion.exercises.score_function import _LOGIT, _N_SMALL, _SHIFT, _bernoulli_problem

    grad, n_var, _ = _bernoulli_problem()
    prob = torch.sigmoid(torch.tensor(_LOGIT, dtype=torch.float64))
    f = lambda x: (x - 0.2) ** 2 + _SHIFT  # noqa: E731
    estimates, weights = [], []
    for bits in itertools.product([0.0, 1.0], repeat=_N_SMALL):
        x = torch.tensor(bits, dtype=torch.float64)
        values = f(x)
        estimates.append(((values - others(values)) * (x - prob)).mean())
        weights.append(torch.where(x == 1, prob, 1 - prob).prod())
    estimates, weights = torch.stack(estimates), torch.stack(weights)
    torch.testing.assert_close(weights @ estimates, grad[0])
    variance = weights @ estimates**2 - (weights @ estimates) ** 2
    torch.testing.assert_close(_N_SMALL * variance, n_var[0])


@pytest.mark.parametrize(
    "mutant, message",
    [
        (includes_the_draw, "a baseline that includes the draw itself"),
        (no_baseline, "variance far above"),
        (divides_by_n, "divides by N instead of N − 1"),
        (loo_sign_error, "a sign error"),
        (averages_over_n_minus_one, "averaging over N − 1 instead of N"),
        (with_rsample, "rsample()"),
        (loo_seeds_itself, "seed itself"),
        (per_sample_terms, "wrong shape"),
        (loo_summed, "summing over the N samples instead of averaging"),
        (backward_on_theta, "switched requires_grad to True"),
        (backward_then_restored, "leaves a gradient in theta.grad"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_leave_one_out_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_leave_one_out_gradient(mutant)


# -------------------------------------------------------------------- gamma score


def score_terms(x, concentration, rate):
    a = torch.as_tensor(concentration, dtype=x.dtype)
    r = torch.as_tensor(rate, dtype=x.dtype)
    return a, r, torch.log(x)


def gamma(x, concentration, rate):
    a, r, log_x = score_terms(x, concentration, rate)
    return torch.stack([torch.log(r) + log_x - torch.digamma(a), a / r - x], -1)


def lgamma_for_digamma(x, concentration, rate):
    a, r, log_x = score_terms(x, concentration, rate)
    return torch.stack([torch.log(r) + log_x - torch.lgamma(a), a / r - x], -1)


def missing_log_rate(x, concentration, rate):
    a, r, log_x = score_terms(x, concentration, rate)
    return torch.stack([log_x - torch.digamma(a), a / r - x], -1)


def missing_alpha(x, concentration, rate):
    a, r, log_x = score_terms(x, concentration, rate)
    return torch.stack([torch.log(r) + log_x - torch.digamma(a), 1 / r - x], -1)


def rate_as_scale(x, concentration, rate):
    a, r, log_x = score_terms(x, concentration, rate)
    return torch.stack([-torch.log(r) + log_x - torch.digamma(a), -a / r + x / r**2], -1)


def gamma_sign_error(x, concentration, rate):
    return -gamma(x, concentration, rate)


def gamma_swapped(x, concentration, rate):
    return gamma(x, concentration, rate).flip(-1)


def gamma_transposed(x, concentration, rate):
    return gamma(x, concentration, rate).T


def gamma_in_float32(x, concentration, rate):  # torch.tensor of a Python float is float32
    a, r = torch.tensor(concentration), torch.tensor(rate)
    return torch.stack([torch.log(r) + torch.log(x) - torch.digamma(a), a / r - x], -1)


def gamma_float32_result(x, concentration, rate):
    return gamma(x, concentration, rate).float()


@pytest.mark.parametrize("answer", [gamma_in_float32, gamma_float32_result])
def test_float32_rounding_of_a_correct_gamma_score_passes(answer):
    assert check_gamma_score(answer).passed


def test_the_gamma_reference_passes_with_resolution():
    verdict = check_gamma_score(gamma)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mutant, message",
    [
        (lgamma_for_digamma, "lgamma(α) in place of its derivative digamma(α)"),
        (missing_log_rate, "a missing log λ"),
        (missing_alpha, "a missing α in the rate coordinate"),
        (rate_as_scale, "λ treated as a scale"),
        (gamma_sign_error, "a sign error"),
        (gamma_swapped, "the two coordinates swapped"),
        (gamma_transposed, "wrong shape"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_gamma_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_gamma_score(mutant)


# ------------------------------------------------------------------------ both


@pytest.mark.parametrize("name", sorted(CHECKERS))
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused_naming_the_argument(name, bad):
    with pytest.raises(TypeError, match=name):
        CHECKERS[name](bad)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_stub_is_not_attempted(name, capsys):
    def stub(*args):
        raise NotImplementedError("write your solution here")

    verdict = CHECKERS[name](stub)
    assert not verdict.attempted and not verdict.passed
    assert "not attempted yet" in capsys.readouterr().out


def test_the_notebook_has_one_reference_per_checker():
    assert sorted(reference_cells()) == sorted(CHECKERS)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_reference_passes(name):
    verdict = CHECKERS[name](define(reference_cells()[name], name))
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_student_stub_is_not_attempted(name):
    source = student_stub(reference_cells()[name])
    assert "BEGIN SOLUTION" not in source
    verdict = CHECKERS[name](define(source, name))
    assert not verdict.attempted


@pytest.mark.parametrize(
    "name, mutants",
    [
        ("leave_one_out_gradient", [includes_the_draw, loo_sign_error, with_rsample]),
        ("gamma_score", [lgamma_for_digamma, missing_log_rate, gamma_sign_error]),
    ],
)
def test_messages_never_show_the_reference_code(name, mutants):
    lines = solution_lines(reference_cells()[name])
    messages = [CHECKERS[name](define(reference_cells()[name], name)).message]
    for mutant in mutants:
        with pytest.raises(ExerciseFailure) as failure:
            CHECKERS[name](mutant)
        messages.append(str(failure.value))
    for message in messages:
        assert not any(line in message for line in lines)
