"""Checkers of Chapter 1's implement-it exercises: the reference passes, each mistake is named.

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
from torch.distributions import Normal

from companion.exercises import ExerciseFailure
from companion.exercises.monte_carlo import check_antithetic_estimate, check_importance_estimate

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "01_monte_carlo.ipynb"
CHECKERS = {
    "antithetic_estimate": check_antithetic_estimate,
    "importance_estimate": check_importance_estimate,
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


# ------------------------------------------------------------------ antithetic estimator


def antithetic(f, loc, scale, num_pairs):
    eps = torch.randn(num_pairs)
    x = loc + scale * eps
    return ((f(x) + f(2 * loc - x)) / 2).mean()


def independent_pairs(f, loc, scale, num_pairs):
    x, y = loc + scale * torch.randn(2, num_pairs)
    return ((f(x) + f(y)) / 2).mean()


def mirrored_about_zero(f, loc, scale, num_pairs):
    x = loc + scale * torch.randn(num_pairs)
    return ((f(x) + f(-x)) / 2).mean()


def not_halved(f, loc, scale, num_pairs):
    x = loc + scale * torch.randn(num_pairs)
    return (f(x) + f(2 * loc - x)).mean()


def twice_the_pairs(f, loc, scale, num_pairs):
    return antithetic(f, loc, scale, 2 * num_pairs)


def pair_means(f, loc, scale, num_pairs):  # forgets the final mean: shape (num_pairs,)
    x = loc + scale * torch.randn(num_pairs)
    return (f(x) + f(2 * loc - x)) / 2


def summed_pair_means(f, loc, scale, num_pairs):  # sums where the mean is asked
    x = loc + scale * torch.randn(num_pairs)
    return ((f(x) + f(2 * loc - x)) / 2).sum()


def seeds_itself(f, loc, scale, num_pairs):
    torch.manual_seed(0)
    return antithetic(f, loc, scale, num_pairs)


def draws_with_numpy(f, loc, scale, num_pairs):
    import numpy as np

    x = loc + scale * torch.as_tensor(np.random.default_rng().standard_normal(num_pairs))
    return ((f(x) + f(2 * loc - x)) / 2).mean()


def test_the_antithetic_reference_passes_with_resolution():
    verdict = check_antithetic_estimate(antithetic)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mutant, message",
    [
        (independent_pairs, "are x and x' made from the same ε"),
        (mirrored_about_zero, "mirroring about 0"),
        (not_halved, "without halving"),
        (twice_the_pairs, "evaluates f at 400 points"),
        (pair_means, "wrong shape"),
        (summed_pair_means, "summing the pair means over the num_pairs pairs"),
        (seeds_itself, "seed itself"),
        (draws_with_numpy, "not reproducible under torch.manual_seed"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_antithetic_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_antithetic_estimate(mutant)


def one_draw_for_every_pair(f, loc, scale, num_pairs):  # torch.randn(1), broadcast
    x = loc + scale * torch.randn(1).expand(num_pairs)
    return ((f(x) + f(2 * loc - x)) / 2).mean()


def test_the_variance_test_catches_what_the_others_miss():
    """One draw shared by every pair: unbiased, exact for f(x) = x, num_pairs times the variance."""
    with pytest.raises(ExerciseFailure, match="variance far above"):
        check_antithetic_estimate(one_draw_for_every_pair)


# ------------------------------------------------------------- importance sampling


def importance(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    w = (target.log_prob(x) - proposal.log_prob(x)).exp()
    return (w * f(x)).mean()


def inverted_weights(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    w = (proposal.log_prob(x) - target.log_prob(x)).exp()
    return (w * f(x)).mean()


def no_weights(f, target, proposal, num_samples):
    return f(proposal.sample((num_samples,))).mean()


def self_normalized(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    w = (target.log_prob(x) - proposal.log_prob(x)).exp()
    return (w * f(x)).sum() / w.sum()


def draws_from_target(f, target, proposal, num_samples):
    x = target.sample((num_samples,))
    w = (target.log_prob(x) - proposal.log_prob(x)).exp()
    return (w * f(x)).mean()


def log_weights(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    return ((target.log_prob(x) - proposal.log_prob(x)) * f(x)).mean()


def squared_weights(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    w = (target.log_prob(x) - proposal.log_prob(x)).exp()
    return (w**2 * f(x)).mean()


def summed(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    return ((target.log_prob(x) - proposal.log_prob(x)).exp() * f(x)).sum()


def divides_by_n_minus_one(f, target, proposal, num_samples):
    x = proposal.sample((num_samples,))
    return ((target.log_prob(x) - proposal.log_prob(x)).exp() * f(x)).sum() / (num_samples - 1)


def ignores_target(f, target, proposal, num_samples):  # weights for N(0, 1), whatever p is
    x = proposal.sample((num_samples,))
    w = (Normal(0.0, 1.0).log_prob(x) - proposal.log_prob(x)).exp()
    return (w * f(x)).mean()


def half_the_samples(f, target, proposal, num_samples):
    return importance(f, target, proposal, num_samples // 2)


def importance_seeds_itself(f, target, proposal, num_samples):
    torch.manual_seed(1)
    return importance(f, target, proposal, num_samples)


def test_the_importance_reference_passes_with_resolution():
    verdict = check_importance_estimate(importance)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mutant, message",
    [
        (inverted_weights, "inverted weights q(x)/p(x)"),
        (no_weights, "no weights"),
        (self_normalized, "self-normalized"),
        (draws_from_target, "drawing x from the target p"),
        (squared_weights, "(or squaring the weights)"),
        (log_weights, "not exponentiated"),
        (summed, "summing over the N samples instead of averaging"),
        (divides_by_n_minus_one, "dividing the sum by N − 1"),
        (ignores_target, "weights for N(0, 1) in place of the target p"),
        (half_the_samples, "evaluates f at 25 points for num_samples = 50"),
        (importance_seeds_itself, "seed itself"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_importance_mistake_is_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_importance_estimate(mutant)


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
        ("antithetic_estimate", [independent_pairs, mirrored_about_zero, not_halved]),
        ("importance_estimate", [inverted_weights, no_weights, self_normalized]),
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
