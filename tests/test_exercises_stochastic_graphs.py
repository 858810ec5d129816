"""The checkers of the stochastic-graphs chapter's implement-it exercises.

Each reference solution passes (with a resolution of 10% or better), each typical mistake,
written as a mutant, is refused with a message that names it, a stub is "not attempted", and
the notebook's reference cells (and their student stubs) give the same verdicts.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from companion.exercises import ExerciseFailure
from companion.exercises.stochastic_graphs import (
    _exact_gradient,
    _graph_moments,
    check_magic_box,
    check_two_node_surrogate,
)
from companion.graphs import Cost, Node, graph_gradient

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "stochastic_graphs.ipynb"


# ------------------------------------------------------------ the two-node surrogate
def surrogate(theta, num_samples, *, kind="causal"):
    mu, w = theta[0], theta[1]
    x = (
        Normal(mu, 1.0).sample((num_samples,))
        if kind == "sample"
        else (Normal(mu, 1.0).rsample((num_samples,)))
    )
    node_z = Bernoulli(logits=w * (x.detach() if kind == "x detached" else x))
    z = node_z.sample()
    c1, c2 = (x - 1) ** 2, z * (x + 1)
    log_p = node_z.log_prob(z)
    weight = {
        "causal": c2.detach(),
        "naive": (c1 + c2).detach(),
        "not detached": c2,
        "sign": -c2.detach(),
        "no score": 0.0 * c2.detach(),
        "upstream": c1.detach(),
    }.get(kind, c2.detach())
    return c1 + c2 + log_p * weight


def mutant(kind):
    def two_node_surrogate(theta, num_samples):
        return surrogate(theta, num_samples, kind=kind)

    return two_node_surrogate


def test_the_exact_gradient_agrees_with_the_companions_graph():
    """The checker's quadrature against companion.graphs on the same graph (2 × 10⁵ draws)."""
    theta = torch.tensor([0.3, 0.8], dtype=torch.float64)
    exact = _exact_gradient(theta)

    def causal(x, z, pi):
        c2 = z * (x + 1)
        return torch.stack([2 * (x - 1) + z + (z - pi) * 0.8 * c2, (z - pi) * x * c2], -1)

    mean, _ = _graph_moments(causal, theta)
    assert torch.allclose(mean, exact, rtol=1e-10)
    nodes = [
        Node("x", lambda p: Normal(p["mu"], 1.0), reparameterize=True),
        Node("z", lambda p, x: Bernoulli(logits=p["w"] * x), parents=("x",)),
    ]
    costs = [
        Cost("c1", lambda p, x: (x - 1.0) ** 2, parents=("x",)),
        Cost("c2", lambda p, x, z: z * (x + 1.0), parents=("x", "z")),
    ]
    torch.manual_seed(0)
    params = {"mu": theta[0], "w": theta[1]}
    est = graph_gradient(params, nodes, costs, 200_000)
    assert ((est.mean - exact).abs() <= 4.5 * est.stderr).all(), (est.mean, exact)


def test_surrogate_reference_passes():
    verdict = check_two_node_surrogate(surrogate)
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("x detached", "detaching x inside log p(z | x)"),
        ("not detached", "not detaching the cost in the score term"),
        ("sign", "the score term of z with the wrong sign"),
        ("naive", "weighting the score of z by the upstream cost c₁ too, c₁ + c₂"),
        ("upstream", "weighting the score of z by the upstream cost c₁ instead of"),
        ("sample", "does not reach μ"),
        ("no score", "is the score term of z missing"),
    ],
)
def test_surrogate_mistakes_are_named(kind, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_two_node_surrogate(mutant(kind))


def test_the_fallback_hints_ask_rather_than_tell():
    """A mistake the checker does not know gets questions, not the surrogate written out."""

    def halved(theta, num_samples):  # the score term of z at half its weight
        mu, w = theta[0], theta[1]
        x = Normal(mu, 1.0).rsample((num_samples,))
        node_z = Bernoulli(logits=w * x)
        z = node_z.sample()
        c1, c2 = (x - 1) ** 2, z * (x + 1)
        return c1 + c2 + 0.5 * node_z.log_prob(z) * c2.detach()

    with pytest.raises(ExerciseFailure, match=re.escape("only those downstream of z?")) as err:
        check_two_node_surrogate(halved)
    assert "⊥(" not in str(err.value)


def test_surrogate_wrong_shape_and_seeding_are_named():
    with pytest.raises(ExerciseFailure, match="wrong shape"):
        check_two_node_surrogate(lambda theta, n: surrogate(theta, n).mean())

    def seeded(theta, num_samples):
        torch.manual_seed(2)
        return surrogate(theta, num_samples)

    with pytest.raises(ExerciseFailure, match="seed itself"):
        check_two_node_surrogate(seeded)

    def in_place(theta, num_samples):
        theta.data.add_(0.1)
        return surrogate(theta, num_samples)

    with pytest.raises(ExerciseFailure, match="modifies its input"):
        check_two_node_surrogate(in_place)


# ------------------------------------------------------------------ the magic box
def magic_box(log_prob_sum):
    return torch.exp(log_prob_sum - log_prob_sum.detach())


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (torch.exp, "exp(Λ) without the stop-gradient"),
        (lambda lam: torch.exp(lam - lam), "Λ − Λ cancels"),
        (lambda lam: torch.exp(lam.detach() - lam), "stop-gradient on the wrong term"),
        (lambda lam: 1 + lam - lam.detach(), "right to first order only"),
        (lambda lam: torch.exp(lam) / torch.exp(lam.detach()), "overflows"),
        (
            lambda lam: torch.exp(lam.clamp(-50, 50)) / torch.exp(lam.detach().clamp(-50, 50)),
            "clamping Λ before the exponential",
        ),
        (lambda lam: torch.exp(lam.sum() - lam.sum().detach()), "wrong shape"),
        (lambda lam: torch.ones_like(lam), "gradient does not reach θ"),
    ],
)
def test_magic_box_mistakes_are_named(box, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_magic_box(box)


def test_magic_box_reference_passes_and_in_place_is_caught():
    verdict = check_magic_box(magic_box)
    assert verdict.passed and verdict.resolution is None  # exact checks only

    def in_place(lam):
        lam.mul_(2.0)
        return magic_box(lam)

    with pytest.raises(ExerciseFailure, match="modifies its input"):
        check_magic_box(in_place)


# ------------------------------------------------------------------------ common rules
@pytest.mark.parametrize("checker", [check_two_node_surrogate, check_magic_box])
def test_a_stub_is_not_attempted(checker):
    def stub(*args):
        raise NotImplementedError("write your function here")

    verdict = checker(stub)
    assert not verdict.attempted and not verdict.passed


@pytest.mark.parametrize("checker", [check_two_node_surrogate, check_magic_box])
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused(checker, bad):
    argument = checker.__code__.co_varnames[0]
    with pytest.raises(TypeError, match=argument):
        checker(bad)


def test_the_thread_setting_is_restored():
    threads = torch.get_num_threads()
    check_magic_box(magic_box)
    with pytest.raises(TypeError):
        check_magic_box(None)
    assert torch.get_num_threads() == threads


def test_messages_never_show_the_reference_code():
    code = ["log_prob(z) *", "c2.detach()", "rsample(", "log_prob_sum.detach()"]
    messages = [check_two_node_surrogate(surrogate).message, check_magic_box(magic_box).message]
    for checker, wrong in [
        (check_two_node_surrogate, mutant("not detached")),
        (check_magic_box, torch.exp),
    ]:
        with pytest.raises(ExerciseFailure) as err:
            checker(wrong)
        messages.append(str(err.value))
    for message in messages:
        assert not any(c in message for c in code), message


# ------------------------------------------------------------- the notebook's cells
def reference_cells():
    nb = json.loads(NOTEBOOK.read_text())
    return [
        "".join(cell["source"])
        for cell in nb["cells"]
        if "reference-solution" in cell.get("metadata", {}).get("tags", [])
    ]


def stub_of(source):
    out, inside = [], False
    for line in source.splitlines():
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
    namespace = {"torch": torch, "Normal": Normal, "Bernoulli": Bernoulli}
    for source in sources:
        exec(source, namespace)
    return namespace


CHECKERS = {"two_node_surrogate": check_two_node_surrogate, "magic_box": check_magic_box}


def test_the_notebook_has_the_reference_cells():
    assert set(CHECKERS) <= set(run_cells(reference_cells()))


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_reference_passes(name):
    verdict = CHECKERS[name](run_cells(reference_cells())[name])
    assert verdict.passed
    assert verdict.resolution is None or verdict.resolution <= 0.1


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_student_stub_is_not_attempted(name):
    stubs = [stub_of(source) for source in reference_cells()]
    assert all("BEGIN SOLUTION" not in stub for stub in stubs)
    verdict = CHECKERS[name](run_cells(stubs)[name])
    assert not verdict.attempted
