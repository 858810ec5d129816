"""The checkers of the discrete chapter's implement-it exercises.

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
from companion.exercises.discrete import _argmax_law, check_gumbel_max, check_gumbel_softmax
from companion.relaxations import gumbel_noise

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "06_discrete.ipynb"


def noise(logits, num_samples):
    return gumbel_noise((num_samples, logits.shape[-1]), dtype=logits.dtype)


# -------------------------------------------------------------------- the argmax laws
def test_argmax_law_is_softmax_for_the_gumbel_max_trick():
    logits = torch.tensor([1.0, 0.0, 0.5, -1.0], dtype=torch.float64)
    assert torch.allclose(_argmax_law(logits, 1.0), torch.softmax(logits, -1), atol=1e-12)


@pytest.mark.parametrize(("sign", "pick"), [(-1.0, "max"), (1.0, "min"), (-1.0, "min")])
def test_argmax_law_of_the_mistakes_agrees_with_monte_carlo(sign, pick):
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, 0.5, -1.0], dtype=torch.float64)
    scores = logits + sign * gumbel_noise((400_000, 4), dtype=torch.float64)
    k = scores.argmax(-1) if pick == "max" else scores.argmin(-1)
    freq = torch.bincount(k, minlength=4).double() / k.numel()
    law = _argmax_law(logits, sign, pick)
    se = (law * (1 - law) / k.numel()).sqrt()
    assert ((freq - law).abs() <= 4.5 * se).all(), (freq, law)  # 4.5 se: false alarm ~3e-5


# ---------------------------------------------------------------------- Gumbel-max
def gumbel_max(logits, num_samples):
    return (logits + noise(logits, num_samples)).argmax(dim=-1)


def gm_subtracted(logits, num_samples):
    return (logits - noise(logits, num_samples)).argmax(dim=-1)


def gm_probabilities(logits, num_samples):
    return (torch.softmax(logits, -1) + noise(logits, num_samples)).argmax(dim=-1)


def gm_argmin(logits, num_samples):
    return (logits + noise(logits, num_samples)).argmin(dim=-1)


def gm_wrong_axis(logits, num_samples):
    return (logits + noise(logits, num_samples)).argmax(dim=0)


def gm_one_noise(logits, num_samples):
    return (logits + noise(logits, 1)).argmax(dim=-1).expand(num_samples)


def gm_seeded(logits, num_samples):
    torch.manual_seed(3)
    return gumbel_max(logits, num_samples)


def gm_numpy(logits, num_samples):
    import numpy as np

    g = torch.as_tensor(np.random.default_rng().gumbel(size=(num_samples, logits.shape[-1])))
    return (logits + g).argmax(dim=-1)


def gm_float(logits, num_samples):
    return gumbel_max(logits, num_samples).double()


def gm_in_place(logits, num_samples):
    logits.add_(0.5)
    return gumbel_max(logits, num_samples)


def test_gumbel_max_reference_passes():
    verdict = check_gumbel_max(gumbel_max)
    assert verdict.passed and verdict.resolution <= 0.1


def test_gumbel_max_by_hand_passes():
    def by_hand(logits, num_samples):  # float32 uniforms, not clamped: u = 0 has probability 2^-24
        u = torch.rand(num_samples, logits.shape[-1])
        return (logits - torch.log(-torch.log(u))).argmax(dim=-1)

    assert check_gumbel_max(by_hand).passed


def test_gumbel_max_accepts_any_integer_dtype():
    """The statement promises it: int64 as argmax returns, int32 and the others too."""

    def as_int32(logits, num_samples):
        return gumbel_max(logits, num_samples).to(torch.int32)

    assert check_gumbel_max(as_int32).passed
    with pytest.raises(ExerciseFailure, match="any integer dtype is accepted"):
        check_gumbel_max(lambda logits, n: gumbel_max(logits, n) > 0)  # bool, not indices


def test_gumbel_max_fallback_hint_asks_rather_than_tells():
    def normal_noise(logits, num_samples):  # not Gumbel: no mistake of the list
        return (logits + torch.randn(num_samples, logits.shape[-1], dtype=logits.dtype)).argmax(-1)

    with pytest.raises(ExerciseFailure, match=re.escape("Is it added to the logits?")) as err:
        check_gumbel_max(normal_noise)
    assert "log(−log u)" not in str(err.value)


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (gm_subtracted, "subtracting the Gumbel noise"),
        (gm_probabilities, "adding the noise to the probabilities"),
        (gm_argmin, "argmin instead of the argmax"),
        (gm_wrong_axis, "wrong shape"),
        (gm_one_noise, "samples of one call are all the same"),
        (gm_seeded, "seed itself"),
        (gm_numpy, "not reproducible"),
        (gm_float, "integer category indices"),
        (gm_in_place, "modifies its input"),
    ],
)
def test_gumbel_max_mistakes_are_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_gumbel_max(mutant)


# ------------------------------------------------------------------ Gumbel-softmax
def gumbel_softmax(logits, temperature, num_samples):
    return torch.softmax((logits + noise(logits, num_samples)) / temperature, dim=-1)


def gs_subtracted(logits, temperature, num_samples):
    return torch.softmax((logits - noise(logits, num_samples)) / temperature, dim=-1)


def gs_times_tau(logits, temperature, num_samples):
    return torch.softmax((logits + noise(logits, num_samples)) * temperature, dim=-1)


def gs_no_tau(logits, temperature, num_samples):
    return torch.softmax(logits + noise(logits, num_samples), dim=-1)


def gs_logits_only(logits, temperature, num_samples):
    return torch.softmax(logits / temperature + noise(logits, num_samples), dim=-1)


def gs_wrong_axis(logits, temperature, num_samples):
    return torch.softmax((logits + noise(logits, num_samples)) / temperature, dim=0)


def gs_detached(logits, temperature, num_samples):
    return gumbel_softmax(logits.detach(), temperature, num_samples)


def gs_hard(logits, temperature, num_samples):  # the straight-through value
    y = gumbel_softmax(logits, temperature, num_samples)
    hard = torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return hard + y - y.detach()


def gs_unclamped(logits, temperature, num_samples):
    u = torch.rand(num_samples, logits.shape[-1], dtype=logits.dtype)
    u[0, 0] = 0.0  # as torch.rand can return, with probability 2^-24 per draw in float32
    return torch.softmax((logits - torch.log(-torch.log(u))) / temperature, dim=-1)


def gs_one_noise(logits, temperature, num_samples):
    return gumbel_softmax(logits, temperature, 1).expand(num_samples, -1)


def gs_seeded(logits, temperature, num_samples):
    torch.manual_seed(3)
    return gumbel_softmax(logits, temperature, num_samples)


def gs_unnormalized(logits, temperature, num_samples):
    return torch.exp((logits + noise(logits, num_samples)) / temperature)


def test_gumbel_softmax_reference_passes():
    verdict = check_gumbel_softmax(gumbel_softmax)
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (gs_subtracted, "subtracting the Gumbel noise"),
        (gs_times_tau, "multiplying by the temperature instead of dividing"),
        (gs_no_tau, "ignoring the temperature"),
        (gs_logits_only, "dividing only the logits by τ"),
        (gs_wrong_axis, "softmax is taken over the wrong axis"),
        (gs_detached, "gradient does not reach θ"),
        (gs_hard, "one-hot vectors"),
        (gs_unclamped, "exactly 0"),
        (gs_one_noise, "samples of one call are all the same"),
        (gs_seeded, "seed itself"),
        (gs_unnormalized, "do not sum to 1"),
    ],
)
def test_gumbel_softmax_mistakes_are_named(mutant, message):
    with pytest.raises(ExerciseFailure, match=re.escape(message)):
        check_gumbel_softmax(mutant)


# ------------------------------------------------------------------------ common rules
@pytest.mark.parametrize("checker", [check_gumbel_max, check_gumbel_softmax])
def test_a_stub_is_not_attempted(checker):
    def stub(*args):
        raise NotImplementedError("write your function here")

    verdict = checker(stub)
    assert not verdict.attempted and not verdict.passed


@pytest.mark.parametrize("checker", [check_gumbel_max, check_gumbel_softmax])
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused(checker, bad):
    argument = checker.__code__.co_varnames[0]
    with pytest.raises(TypeError, match=argument):
        checker(bad)


def test_messages_never_show_the_reference_code():
    code = ["argmax(dim=-1)", "softmax((logits", "/ temperature", "gumbel_noise("]
    messages = [check_gumbel_max(gumbel_max).message, check_gumbel_softmax(gumbel_softmax).message]
    for checker, mutant in [
        (check_gumbel_max, gm_subtracted),
        (check_gumbel_softmax, gs_times_tau),
    ]:
        with pytest.raises(ExerciseFailure) as err:
            checker(mutant)
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
    namespace = {"torch": torch, "gumbel_noise": gumbel_noise}
    for source in sources:
        exec(source, namespace)
    return namespace


CHECKERS = {"gumbel_max": check_gumbel_max, "gumbel_softmax": check_gumbel_softmax}


def test_the_notebook_has_the_reference_cells():
    assert set(CHECKERS) <= set(run_cells(reference_cells()))


def test_the_rebar_exercise_has_moved():
    """It is in the control-variates chapter now; this chapter names it and links there (a
    cross-chapter {ref} to an exercise does not resolve in the PDF)."""
    text = NOTEBOOK.read_text()
    assert "ex-dl-rebar" not in text and "REBAR exercise of {doc}`control_variates`" in text


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
