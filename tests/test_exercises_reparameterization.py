"""The checkers of the reparameterization chapter's implement-it exercises.

Each reference solution passes (with a resolution of 10% or better), each typical mistake,
written as a mutant, is refused with a message that names it, a stub is "not attempted", and
the notebook's reference cells (and their student stubs) give the same verdicts.
"""

import json
import re
from pathlib import Path

import pytest
import torch

from companion.exercises import ExerciseFailure
from companion.exercises.reparameterization import check_pathwise_normal, check_weibull_rsample

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "04_reparameterization.ipynb"


# ------------------------------------------------------------------ the Weibull sampler
def weibull(scale, concentration, num_samples):
    u = torch.rand(num_samples, *scale.shape, dtype=scale.dtype)
    return scale * (-torch.log1p(-u)) ** (1 / concentration)


def weibull_as_rate(scale, concentration, num_samples):
    u = torch.rand(num_samples, *scale.shape, dtype=scale.dtype)
    return (-torch.log1p(-u)) ** (1 / concentration) / scale


def weibull_power_kappa(scale, concentration, num_samples):
    u = torch.rand(num_samples, *scale.shape, dtype=scale.dtype)
    return scale * (-torch.log1p(-u)) ** concentration


def weibull_precedence(scale, concentration, num_samples):  # ** 1/κ: the power 1, then / κ
    u = torch.rand(num_samples, *scale.shape, dtype=scale.dtype)
    return scale * (-torch.log1p(-u)) ** 1 / concentration


def weibull_sample(scale, concentration, num_samples):
    return torch.distributions.Weibull(scale, concentration).sample((num_samples,))


def weibull_detached(scale, concentration, num_samples):
    return weibull(scale, concentration.detach(), num_samples)


def weibull_unbatched_noise(scale, concentration, num_samples):
    u = torch.rand(num_samples, 1, dtype=scale.dtype)  # one u for the whole batch
    return scale * (-torch.log1p(-u)) ** (1 / concentration)


def weibull_transposed(scale, concentration, num_samples):
    u = torch.rand(*scale.shape, num_samples, dtype=scale.dtype)
    return scale[:, None] * (-torch.log1p(-u)) ** (1 / concentration[:, None])


def weibull_one_draw(scale, concentration, num_samples):
    u = torch.rand(*scale.shape, dtype=scale.dtype).expand(num_samples, *scale.shape)
    return scale * (-torch.log1p(-u)) ** (1 / concentration)


def weibull_seeded(scale, concentration, num_samples):
    torch.manual_seed(1)
    return weibull(scale, concentration, num_samples)


def weibull_numpy(scale, concentration, num_samples):
    import numpy as np

    u = torch.as_tensor(np.random.default_rng().random((num_samples, *scale.shape)))
    return scale * (-torch.log1p(-u)) ** (1 / concentration)


def weibull_straight_through(scale, concentration, num_samples):
    # the right law, but a gradient that is not the path derivative
    x = weibull(scale.detach(), concentration.detach(), num_samples)
    return x + (scale - scale.detach()) + (concentration - concentration.detach())


def weibull_in_place(scale, concentration, num_samples):
    scale.data.mul_(1.0 + 1e-3)
    return weibull(scale, concentration, num_samples)


def test_weibull_reference_passes():
    verdict = check_weibull_rsample(weibull)
    assert verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1
    assert any("path derivative" in line or "∂x_n/∂κ" in line for line in verdict.lines)


def test_weibull_float32_noise_passes():
    def float32_noise(scale, concentration, num_samples):  # u in float32, the other tail
        u = torch.rand(num_samples, *scale.shape, dtype=torch.float32)
        return scale * (-torch.log(u)) ** (1 / concentration)

    assert check_weibull_rsample(float32_noise).passed


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (weibull_as_rate, "using λ as a rate"),
        (weibull_power_kappa, "power κ instead of 1/κ"),
        (weibull_precedence, "** 1/κ without parentheses"),
        (weibull_sample, "gradient does not reach θ"),
        (weibull_detached, "gradient does not reach θ"),
        (weibull_unbatched_noise, "one u shared by every coordinate"),
        (weibull_transposed, "wrong shape"),
        (weibull_one_draw, "draws of one call are all the same"),
        (weibull_seeded, "seed itself"),
        (weibull_numpy, "not reproducible"),
        (weibull_straight_through, "path derivative"),
        (weibull_in_place, "modifies its input"),
    ],
)
def test_weibull_mistakes_are_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_weibull_rsample(mutant)


# --------------------------------------------------------- pathwise gradients, normal
def pathwise(f, mu, sigma, num_samples):
    theta = torch.stack([mu, sigma]).expand(num_samples, 2).clone().requires_grad_(True)
    eps = torch.randn(num_samples, dtype=theta.dtype)
    x = theta[:, 0] + theta[:, 1] * eps
    (g,) = torch.autograd.grad(f(x).sum(), theta)
    return g


def pathwise_no_eps(f, mu, sigma, num_samples):
    g = pathwise(f, mu, sigma, num_samples)
    return torch.stack([g[:, 0], g[:, 0]], dim=-1)


def pathwise_x_for_eps(f, mu, sigma, num_samples):
    x = (mu + sigma * torch.randn(num_samples, dtype=mu.dtype)).requires_grad_(True)
    (d,) = torch.autograd.grad(f(x).sum(), x)
    return torch.stack([d, d * x.detach()], dim=-1)


def pathwise_two_noises(f, mu, sigma, num_samples):
    x = (mu + sigma * torch.randn(num_samples, dtype=mu.dtype)).requires_grad_(True)
    (d,) = torch.autograd.grad(f(x).sum(), x)
    return torch.stack([d, d * torch.randn(num_samples, dtype=mu.dtype)], dim=-1)


def score_function(f, mu, sigma, num_samples):
    eps = torch.randn(num_samples, dtype=mu.dtype)
    fx = f(mu + sigma * eps)
    return torch.stack([fx * eps / sigma, fx * (eps**2 - 1) / sigma], dim=-1)


def shared_theta(f, mu, sigma, num_samples):
    theta = torch.stack([mu, sigma]).requires_grad_(True)
    x = theta[0] + theta[1] * torch.randn(num_samples, dtype=mu.dtype)
    (g,) = torch.autograd.grad(f(x).mean(), theta)
    return g.expand(num_samples, 2)


def pathwise_swapped(f, mu, sigma, num_samples):
    return pathwise(f, mu, sigma, num_samples).flip(-1)


def pathwise_of_the_average(f, mu, sigma, num_samples):  # one θ per draw, but f's average
    theta = torch.stack([mu, sigma]).expand(num_samples, 2).clone().requires_grad_(True)
    x = theta[:, 0] + theta[:, 1] * torch.randn(num_samples, dtype=theta.dtype)
    (g,) = torch.autograd.grad(f(x).mean(), theta)
    return g


def pathwise_times_n(f, mu, sigma, num_samples):
    return num_samples * pathwise(f, mu, sigma, num_samples)


def pathwise_mean_only(f, mu, sigma, num_samples):
    return pathwise(f, mu, sigma, num_samples).mean(0)


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (pathwise_no_eps, "dropping the factor ∂x/∂σ = ε"),
        (pathwise_x_for_eps, "using x in place of ε"),
        (pathwise_two_noises, "drawing the ε of the σ-component apart"),
        (score_function, "variance far above"),
        (shared_theta, "wrong reduction"),
        (pathwise_mean_only, "wrong shape"),
        (pathwise_swapped, "the two columns swapped"),
        (pathwise_of_the_average, "every row divided by N"),
        (pathwise_times_n, "every row multiplied by N"),
    ],
)
def test_pathwise_mistakes_are_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_pathwise_normal(mutant)


def test_pathwise_reference_passes():
    verdict = check_pathwise_normal(pathwise)
    assert verdict.passed and verdict.resolution <= 0.1


# ------------------------------------------------------------------------ common rules
@pytest.mark.parametrize("checker", [check_weibull_rsample, check_pathwise_normal])
def test_a_stub_is_not_attempted(checker):
    def stub(*args):
        raise NotImplementedError("write your function here")

    verdict = checker(stub)
    assert not verdict.attempted and not verdict.passed


@pytest.mark.parametrize("checker", [check_weibull_rsample, check_pathwise_normal])
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused(checker, bad):
    argument = checker.__code__.co_varnames[0]
    with pytest.raises(TypeError, match=argument):
        checker(bad)


def test_verdicts_do_not_change_the_callers_random_stream():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_weibull_rsample(weibull)
    assert torch.equal(torch.rand(3), expected)


def test_messages_never_show_the_reference_code():
    reference_lines = ["log1p", "** (1 / concentration)", "autograd.grad", "requires_grad_"]
    messages = [check_weibull_rsample(weibull).message, check_pathwise_normal(pathwise).message]
    for checker, mutant in [
        (check_weibull_rsample, weibull_as_rate),
        (check_pathwise_normal, pathwise_no_eps),
    ]:
        with pytest.raises(ExerciseFailure) as err:
            checker(mutant)
        messages.append(str(err.value))
    for message in messages:
        assert not any(code in message for code in reference_lines), message


# ------------------------------------------------------------- the notebook's cells
def reference_cells():
    nb = json.loads(NOTEBOOK.read_text())
    return [
        "".join(cell["source"])
        for cell in nb["cells"]
        if "reference-solution" in cell.get("metadata", {}).get("tags", [])
    ]


def stub_of(source):
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if line.strip() == "# BEGIN SOLUTION":
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("write your function here")')
            inside = True
        elif line.strip() == "# END SOLUTION":
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def run_cells(sources):
    namespace = {"torch": torch}
    for source in sources:
        exec(source, namespace)
    return namespace


CHECKERS = {"weibull_rsample": check_weibull_rsample, "pathwise_normal": check_pathwise_normal}


def test_the_notebook_has_the_reference_cells():
    defined = run_cells(reference_cells())
    assert set(CHECKERS) <= set(defined)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_reference_passes(name):
    verdict = CHECKERS[name](run_cells(reference_cells())[name])
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_student_stub_is_not_attempted(name):
    stubs = [stub_of(source) for source in reference_cells()]
    assert all("BEGIN SOLUTION" not in stub for stub in stubs)
    verdict = CHECKERS[name](run_cells(stubs)[name])
    assert not verdict.attempted
