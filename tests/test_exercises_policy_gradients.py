"""Tests of the checkers of the policy-gradient chapter: references pass, mistakes are named."""

import contextlib
import io
import json
import sys

import pytest
import torch

from companion.exercises._core import ExerciseFailure
from companion.exercises.policy_gradients import (
    check_k3_estimator,
    check_reinforce_surrogate,
    check_rloo_advantages,
)
from companion.ledger import end_chapter
from hygiene import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from student_edition import stub_source

CHAPTER = ROOT / "book" / "policy_gradients.ipynb"
CHECKERS = {
    "leave_one_out_advantages": check_rloo_advantages,
    "k3_penalty": check_k3_estimator,
    "reinforce_surrogate": check_reinforce_surrogate,
}

# -- RLOO -------------------------------------------------------------------------------------


def make_rloo(mistake=None):
    def leave_one_out_advantages(rewards):
        n = rewards.shape[0]
        if mistake == "inplace":
            rewards -= 0.0
            rewards[0] += 1.0
        if mistake == "self":
            return rewards - rewards.mean(dim=0, keepdim=True)
        if mistake == "grpo":
            centred = rewards - rewards.mean(dim=0, keepdim=True)
            return centred / rewards.std(dim=0, keepdim=True).clamp_min(1e-12)
        if mistake == "none":
            return rewards.clone()
        if mistake == "over_n":
            return rewards - (rewards.sum(dim=0, keepdim=True) - rewards) / n
        if mistake == "all_over_n_minus_1":
            return rewards - rewards.sum(dim=0, keepdim=True) / (n - 1)
        if mistake == "axis":
            m = rewards.shape[-1]
            return rewards - (rewards.sum(dim=-1, keepdim=True) - rewards) / (m - 1)
        if mistake == "shape":
            return (rewards - (rewards.sum(dim=0, keepdim=True) - rewards) / (n - 1))[0]
        right = rewards - (rewards.sum(dim=0, keepdim=True) - rewards) / (n - 1)
        others = (rewards.sum(dim=0, keepdim=True) - rewards) / (n - 1)
        bandit = rewards.dim() == 2 and rewards.shape[1] > 100  # the checker's bandit groups
        if mistake == "sign":
            return -right
        if mistake == "zero":
            return torch.zeros_like(rewards)
        if mistake == "others":
            return others
        if mistake == "zero_off_the_bandit":  # right on the bandit, 0 on the fixed groups
            return right if bandit else torch.zeros_like(rewards)
        if mistake == "others_off_the_bandit":
            return right if bandit else others
        return right

    return leave_one_out_advantages


def test_rloo_reference_passes():
    verdict = check_rloo_advantages(make_rloo())
    assert verdict.passed and verdict.attempted and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("self", "baseline that includes the draw itself"),
        ("grpo", "GRPO's division by the group's standard deviation"),
        ("none", "variance far above"),
        ("over_n", "dividing the others' sum by N instead of N − 1"),
        ("all_over_n_minus_1", "the sum of all N rewards, r_i included"),
        ("axis", "wrong axis"),
        ("shape", "wrong shape"),
        ("inplace", "modifies its input"),
        ("sign", "a sign error"),
        ("zero", r"A_i = 0, or the mean of the others alone"),
        ("others", r"A_i = 0, or the mean of the others alone"),
        ("zero_off_the_bandit", r"A_i = 0 \(the advantages left out\)"),
        ("others_off_the_bandit", r"the mean of the others alone \(the r_i term left out\)"),
    ],
)
def test_rloo_mistakes_are_named(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_rloo_advantages(make_rloo(mistake))


# -- k3 ---------------------------------------------------------------------------------------


def make_k3(mistake=None):
    def k3_penalty(log_probs, ref_log_probs):
        log_nu = ref_log_probs - log_probs
        if mistake == "k1":
            return -log_nu
        if mistake == "inverted":
            return torch.exp(-log_nu) + log_nu - 1
        if mistake == "k2":
            return log_nu**2 / 2
        if mistake == "no_minus_one":
            return torch.exp(log_nu) - log_nu
        if mistake == "detached":
            return (torch.exp(log_nu) - log_nu - 1).detach()
        if mistake == "item":
            return torch.tensor((torch.exp(log_nu) - log_nu - 1).tolist(), dtype=log_nu.dtype)
        if mistake == "sum":
            return (torch.exp(log_nu) - log_nu - 1).sum()
        return torch.exp(log_nu) - log_nu - 1

    return k3_penalty


def test_k3_reference_passes():
    verdict = check_k3_estimator(make_k3())
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("k1", "k1 = −log ν"),
        ("inverted", "the ratio inverted"),
        ("k2", r"k2 = \(log ν\)²/2"),
        ("no_minus_one", "without the − 1"),
        ("detached", "the gradient does not reach θ"),
        ("item", "the gradient does not reach θ"),
        ("sum", "wrong shape"),
    ],
)
def test_k3_mistakes_are_named(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_k3_estimator(make_k3(mistake))


# -- the REINFORCE surrogate --------------------------------------------------------------------


def make_surrogate(mistake=None):
    def reinforce_surrogate(token_log_probs, advantages, mask):
        if mistake == "mask_in_place_no_op":  # changes nothing, but in place
            mask.logical_not_().logical_not_()
        adv = advantages if mistake == "not_detached" else advantages.detach()
        masked = torch.where(mask, token_log_probs, torch.zeros_like(token_log_probs))
        if mistake == "no_mask":
            masked = token_log_probs
        summed = masked.sum(dim=-1)
        if mistake == "per_token_mean":
            return adv * summed / mask.sum(dim=-1)
        if mistake == "sign":
            return -adv * summed
        if mistake == "no_advantage":
            return summed
        if mistake == "detach_logp":
            return adv * summed.detach()
        if mistake == "mean":
            return (adv * summed).mean()
        if mistake == "ratio":  # right gradient, value A_i
            return adv * torch.exp(summed - summed.detach())
        if mistake == "mask_in_place_after_use":  # the student's own graph saved the mask
            mask.logical_not_().logical_not_()
        return adv * summed

    return reinforce_surrogate


def test_surrogate_reference_passes():
    verdict = check_reinforce_surrogate(make_surrogate())
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("not_detached", "flow through the advantage"),
        ("no_mask", "counting the padding tokens"),
        ("per_token_mean", "GRPO's average over each output's tokens"),
        ("sign", "a sign error"),
        ("no_advantage", "the advantage left out"),
        ("detach_logp", "the gradient does not reach θ"),
        ("mean", "wrong shape"),
        ("ratio", r"the ratio form A_i exp\(S_i − ⊥S_i\)"),
    ],
)
def test_surrogate_mistakes_are_named(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_reinforce_surrogate(make_surrogate(mistake))


def test_surrogate_an_in_place_no_op_on_the_mask_does_not_break_the_checker():
    """The student gets a copy of the mask: the checker's own graph does not see the change."""
    assert check_reinforce_surrogate(make_surrogate("mask_in_place_no_op")).passed
    with pytest.raises(ExerciseFailure, match="modify a tensor in place after using it"):
        check_reinforce_surrogate(make_surrogate("mask_in_place_after_use"))


def test_rloo_fallback_hint_states_the_definition_not_a_guess():
    def halved(rewards):  # half the right advantage: no mistake of the list
        n = rewards.shape[0]
        return 0.5 * (rewards - (rewards.sum(dim=0, keepdim=True) - rewards) / (n - 1))

    with pytest.raises(ExerciseFailure, match="the mean reward of the other N − 1 outputs") as err:
        check_rloo_advantages(halved)
    assert "must not depend on r_i" not in str(err.value)


# -- every checker: stubs, bad arguments, messages, speed ---------------------------------------


@pytest.mark.parametrize("checker", list(CHECKERS.values()), ids=list(CHECKERS))
def test_a_stub_is_not_attempted(checker):
    def stub(*args):
        raise NotImplementedError("write this function")

    verdict = checker(stub)
    assert not verdict.attempted and not verdict.passed


@pytest.mark.parametrize("checker", list(CHECKERS.values()), ids=list(CHECKERS))
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused_by_name(checker, bad):
    name = checker.__code__.co_varnames[0]
    with pytest.raises(TypeError, match=name):
        checker(bad)


def test_messages_do_not_show_the_reference():
    failures = []
    for checker, fn in (
        (check_rloo_advantages, make_rloo("self")),
        (check_k3_estimator, make_k3("inverted")),
        (check_reinforce_surrogate, make_surrogate("not_detached")),
    ):
        with pytest.raises(ExerciseFailure) as info:
            checker(fn)
        failures.append(str(info.value))
    for text in failures:
        for code in ("keepdim", "sum(dim", "torch.exp", "torch.where", ".detach()"):
            assert code not in text


def test_verdicts_are_reproducible_and_leave_the_callers_stream_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = check_rloo_advantages(make_rloo()).message
    assert torch.equal(torch.random.get_rng_state(), state)
    assert check_rloo_advantages(make_rloo()).message == first


# -- the notebook's reference cells and its student stubs ---------------------------------------


@pytest.fixture(scope="module")
def chapter():
    """The chapter's import cell executed, and its reference-solution cells' sources."""
    nb = json.loads(CHAPTER.read_text())
    source = lambda cell: "".join(cell["source"])  # noqa: E731
    codes = [c for c in nb["cells"] if c["cell_type"] == "code"]
    references = [source(c) for c in codes if "reference-solution" in c["metadata"].get("tags", [])]
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(source(codes[1]), namespace)
    end_chapter()
    yield namespace, references
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def test_the_notebook_has_the_three_reference_cells(chapter):
    _, references = chapter
    defined = [ref.split("def ", 1)[1].split("(", 1)[0] for ref in references]
    assert set(CHECKERS) <= set(defined)


def test_the_notebooks_reference_solutions_pass_their_checkers(chapter):
    base, references = chapter
    for ref in references:
        namespace = dict(base)
        exec(ref, namespace)
        name = ref.split("def ", 1)[1].split("(", 1)[0]
        if name in CHECKERS:
            verdict = CHECKERS[name](namespace[name])
            assert verdict.passed, name
            assert verdict.resolution is None or verdict.resolution <= 0.1


def test_the_student_stubs_are_not_attempted(chapter):
    base, references = chapter
    for ref in references:
        namespace = dict(base)
        exec(stub_source(ref), namespace)
        name = ref.split("def ", 1)[1].split("(", 1)[0]
        if name in CHECKERS:
            verdict = CHECKERS[name](namespace[name])
            assert not verdict.attempted and not verdict.passed, name
