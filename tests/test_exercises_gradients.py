"""Checkers of Chapter 2's implement-it exercises: the reference passes, each mistake is named.

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
from companion.exercises.gradients import check_central_difference, check_normal_gradient_samples

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "02_gradients.ipynb"
CHECKERS = {
    "normal_gradient_samples": check_normal_gradient_samples,
    "central_difference": check_central_difference,
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


# ------------------------------------------------------- per-sample gradients by hand


def by_hand(f, f_prime, loc, scale, eps, *, path_sigma=None, score=None):
    x = loc + scale * eps
    slope = f_prime(x)
    pathwise = torch.stack([slope, slope * (eps if path_sigma is None else path_sigma(x, eps))], -1)
    s = score(x, eps, scale) if score else torch.stack([eps / scale, (eps**2 - 1) / scale], -1)
    return pathwise, f(x)[:, None] * s


def normal_gradients(f, f_prime, loc, scale, eps):
    return by_hand(f, f_prime, loc, scale, eps)


def x_for_eps_in_the_path(f, f_prime, loc, scale, eps):
    return by_hand(f, f_prime, loc, scale, eps, path_sigma=lambda x, e: x)


def missing_one_over_sigma(f, f_prime, loc, scale, eps):
    return by_hand(
        f, f_prime, loc, scale, eps, score=lambda x, e, s: torch.stack([e, e**2 - 1], -1)
    )


def x_for_eps_in_the_score(f, f_prime, loc, scale, eps):
    return by_hand(
        f, f_prime, loc, scale, eps, score=lambda x, e, s: torch.stack([x / s, (x**2 - 1) / s], -1)
    )


def missing_minus_one(f, f_prime, loc, scale, eps):
    return by_hand(
        f, f_prime, loc, scale, eps, score=lambda x, e, s: torch.stack([e / s, e**2 / s], -1)
    )


def score_sign_error(f, f_prime, loc, scale, eps):
    pathwise, score = normal_gradients(f, f_prime, loc, scale, eps)
    return pathwise, -score


def f_for_f_prime(f, f_prime, loc, scale, eps):
    return normal_gradients(f, f, loc, scale, eps)


def pair_in_the_wrong_order(f, f_prime, loc, scale, eps):
    pathwise, score = normal_gradients(f, f_prime, loc, scale, eps)
    return score, pathwise


def score_without_f(f, f_prime, loc, scale, eps):  # ∇θ log p alone, not times f(x_n)
    pathwise, _ = normal_gradients(f, f_prime, loc, scale, eps)
    return pathwise, torch.stack([eps / scale, (eps**2 - 1) / scale], -1)


def sigma_for_sigma_squared(f, f_prime, loc, scale, eps):
    return by_hand(
        f, f_prime, loc, scale, eps, score=lambda x, e, s: torch.stack([e, (e**2 - 1) / s], -1)
    )


def sign_error_in_sigma(f, f_prime, loc, scale, eps):
    return by_hand(
        f, f_prime, loc, scale, eps, score=lambda x, e, s: torch.stack([e / s, (1 - e**2) / s], -1)
    )


def one_tensor(f, f_prime, loc, scale, eps):
    return torch.cat(normal_gradients(f, f_prime, loc, scale, eps), dim=1)


def modifies_eps(f, f_prime, loc, scale, eps):
    eps.mul_(1.0)
    eps += 0.0
    eps[0] = 0.0
    return normal_gradients(f, f_prime, loc, scale, eps)


def test_the_per_sample_reference_passes():
    verdict = check_normal_gradient_samples(normal_gradients)
    assert verdict.passed and verdict.attempted


def test_the_checkers_closed_forms_agree_with_autograd():
    """The checker's expected rows are the closed forms; autograd must give the same rows."""
    from torch.distributions import Normal

    from companion.estimators import per_sample_gradients

    eps = torch.randn(50, dtype=torch.float64)
    theta = torch.tensor([1.0, 0.5], dtype=torch.float64)
    f, f_prime = (lambda x: torch.cos(2 * x)), (lambda x: -2 * torch.sin(2 * x))
    pathwise, score = normal_gradients(f, f_prime, 1.0, 0.5, eps)
    x = 1.0 + 0.5 * eps
    by_autograd = per_sample_gradients(lambda t: f(t[..., 0] + t[..., 1] * eps), theta, 50)
    torch.testing.assert_close(pathwise, by_autograd.samples)
    scores = per_sample_gradients(lambda t: Normal(t[..., 0], t[..., 1]).log_prob(x), theta, 50)
    torch.testing.assert_close(score, f(x)[:, None] * scores.samples)


@pytest.mark.parametrize(
    "mutant, message",
    [
        (x_for_eps_in_the_path, "x in place of ε in the σ term"),
        (missing_one_over_sigma, "a missing 1/σ"),
        (x_for_eps_in_the_score, "x in place of ε = (x − μ)/σ"),
        (missing_minus_one, "a missing −1/σ"),
        (score_sign_error, "a sign error"),
        (f_for_f_prime, "f in place of f'"),
        (one_tensor, "should return a pair"),
        (pair_in_the_wrong_order, "the pair is in the wrong order"),
        (score_without_f, "the score without the factor f(x_n)"),
        (sigma_for_sigma_squared, "(x − μ)/σ in place of (x − μ)/σ² in ∂μ log p"),
        (sign_error_in_sigma, "a sign error in ∂σ log p"),
        (modifies_eps, "modifies its input in place"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_per_sample_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_normal_gradient_samples(mutant)


# ---------------------------------------------------------- central differences


def central(f, loc, scale, num_samples, step):
    eps = torch.randn(num_samples)
    g_loc = (f(loc + step + scale * eps) - f(loc - step + scale * eps)) / (2 * step)
    g_scale = (f(loc + (scale + step) * eps) - f(loc + (scale - step) * eps)) / (2 * step)
    return torch.stack([g_loc.mean(), g_scale.mean()])


def independent_draws(f, loc, scale, num_samples, step):
    e = torch.randn(4, num_samples)
    g_loc = (f(loc + step + scale * e[0]) - f(loc - step + scale * e[1])) / (2 * step)
    g_scale = (f(loc + (scale + step) * e[2]) - f(loc + (scale - step) * e[3])) / (2 * step)
    return torch.stack([g_loc.mean(), g_scale.mean()])


def fd_sign_error(f, loc, scale, num_samples, step):
    return -central(f, loc, scale, num_samples, step)


def divides_by_h(f, loc, scale, num_samples, step):
    return 2 * central(f, loc, scale, num_samples, step)


def swapped(f, loc, scale, num_samples, step):
    return central(f, loc, scale, num_samples, step).flip(0)


def forward_difference(f, loc, scale, num_samples, step):
    eps = torch.randn(num_samples)
    f0 = f(loc + scale * eps)
    g_loc = (f(loc + step + scale * eps) - f0) / step
    g_scale = (f(loc + (scale + step) * eps) - f0) / step
    return torch.stack([g_loc.mean(), g_scale.mean()])


def per_sample_rows(f, loc, scale, num_samples, step):  # forgets the mean: shape (N, 2)
    eps = torch.randn(num_samples)
    g_loc = (f(loc + step + scale * eps) - f(loc - step + scale * eps)) / (2 * step)
    g_scale = (f(loc + (scale + step) * eps) - f(loc + (scale - step) * eps)) / (2 * step)
    return torch.stack([g_loc, g_scale], -1)


def fd_summed(f, loc, scale, num_samples, step):
    return num_samples * central(f, loc, scale, num_samples, step)


def fd_seeds_itself(f, loc, scale, num_samples, step):
    torch.manual_seed(3)
    return central(f, loc, scale, num_samples, step)


def test_the_central_reference_passes_with_resolution():
    verdict = check_central_difference(central)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mutant, message",
    [
        (independent_draws, "common random numbers"),
        (fd_sign_error, "a sign error"),
        (divides_by_h, "dividing by h instead of 2h"),
        (swapped, "the two coordinates swapped"),
        (forward_difference, "that is a forward difference"),
        (per_sample_rows, "wrong shape"),
        (fd_summed, "summing over the N samples instead of averaging"),
        (fd_seeds_itself, "seed itself"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_central_difference_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_central_difference(mutant)


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
    assert verdict.passed and (verdict.resolution is None or verdict.resolution <= 0.1)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_student_stub_is_not_attempted(name):
    source = student_stub(reference_cells()[name])
    assert "BEGIN SOLUTION" not in source
    verdict = CHECKERS[name](define(source, name))
    assert not verdict.attempted


@pytest.mark.parametrize(
    "name, mutants",
    [
        ("normal_gradient_samples", [x_for_eps_in_the_path, missing_one_over_sigma]),
        ("central_difference", [independent_draws, divides_by_h, fd_sign_error]),
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
