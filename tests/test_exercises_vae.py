"""The checkers of Chapter 5's implement-it exercises (companion.exercises.vae).

For each checker: the reference solution (the notebook's, written again here) passes with a
resolution of 10% or better; each typical mistake, written as a small mutant, is refused
with a message naming it; a stub raising NotImplementedError is "not attempted" and does not
raise; the messages never contain the reference's code; a non-callable argument raises a
TypeError naming it.
"""

import inspect
import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from companion.exercises._core import ExerciseFailure
from companion.exercises.vae import check_iwae_bound, check_reparameterized_elbo


def reparameterized_elbo(x, loc, scale, decoder):
    """The reference: (B,) one-draw estimates of log p(x|z) + log p(z) − log q(z|x)."""
    z = loc + scale * torch.randn_like(loc)  # (B, L): differentiable in loc and scale
    log_q = Normal(loc, scale).log_prob(z).sum(-1)  # (B,)
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)  # (B,)
    return decoder(z).log_prob(x) + log_prior - log_q


def iwae_bound(log_w):
    """The reference: L_k = logsumexp over the k draws (dim 0) minus log k, shape (B,)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# ---------------------------------------------------------------- mutants of the ELBO


def _elbo_parts(x, loc, scale, decoder, *, rsample=True):
    q = Normal(loc, scale)
    z = q.rsample() if rsample else q.sample()
    return (
        decoder(z).log_prob(x),
        Normal(0.0, 1.0).log_prob(z).sum(-1),
        q.log_prob(z).sum(-1),
    )


def elbo_wrong_kl_sign(x, loc, scale, decoder):
    lik, prior, log_q = _elbo_parts(x, loc, scale, decoder)
    return lik - prior + log_q


def elbo_no_kl(x, loc, scale, decoder):
    lik, _, _ = _elbo_parts(x, loc, scale, decoder)
    return lik


def elbo_no_entropy(x, loc, scale, decoder):
    lik, prior, _ = _elbo_parts(x, loc, scale, decoder)
    return lik + prior


def elbo_no_prior(x, loc, scale, decoder):
    lik, _, log_q = _elbo_parts(x, loc, scale, decoder)
    return lik - log_q


def elbo_with_sample(x, loc, scale, decoder):
    lik, prior, log_q = _elbo_parts(x, loc, scale, decoder, rsample=False)
    return lik + prior - log_q


def elbo_detached_noise_path(x, loc, scale, decoder):
    z = (loc + scale * torch.randn_like(loc)).detach()
    return (
        decoder(z).log_prob(x)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(loc, scale).log_prob(z).sum(-1)
    )


def elbo_analytic_kl_with_sample(x, loc, scale, decoder):
    q = Normal(loc, scale)
    return decoder(q.sample()).log_prob(x) - kl_divergence(q, Normal(0.0, 1.0)).sum(-1)


def elbo_analytic_kl(x, loc, scale, decoder):  # correct: the closed-form KL is accepted
    q = Normal(loc, scale)
    return decoder(q.rsample()).log_prob(x) - kl_divergence(q, Normal(0.0, 1.0)).sum(-1)


def elbo_not_summed(x, loc, scale, decoder):
    z = loc + scale * torch.randn_like(loc)
    log_q = Normal(loc, scale).log_prob(z)  # (B, L): not summed over the latent coordinates
    return decoder(z).log_prob(x)[:, None] + Normal(0.0, 1.0).log_prob(z) - log_q


def elbo_batch_mean(x, loc, scale, decoder):
    return reparameterized_elbo(x, loc, scale, decoder).mean()


def elbo_fixed_seed(x, loc, scale, decoder):
    torch.manual_seed(0)
    return reparameterized_elbo(x, loc, scale, decoder)


def elbo_in_place(x, loc, scale, decoder):
    x += 0.0 * x + 1e-3  # modifies its input
    return reparameterized_elbo(x, loc, scale, decoder)


def elbo_item(x, loc, scale, decoder):
    return torch.tensor([v.item() for v in reparameterized_elbo(x, loc, scale, decoder)])


def _closed_form_kl_slip(slip):
    """A closed-form KL with one slip: ``log_scale`` (log σ for log σ²), ``half`` (no ½),
    ``minus_one`` (no −1)."""

    def estimate(x, loc, scale, decoder):
        z = loc + scale * torch.randn_like(loc)
        log_var = torch.log(scale) if slip == "log_scale" else torch.log(scale**2)
        inner = scale**2 + loc**2 - log_var - (0.0 if slip == "minus_one" else 1.0)
        kl = (1.0 if slip == "half" else 0.5) * inner.sum(-1)
        return decoder(z).log_prob(x) - kl

    return estimate


def elbo_score_function(x, loc, scale, decoder):  # the right value, a REINFORCE gradient
    with torch.no_grad():
        z = loc + scale * torch.randn_like(loc)
    log_q = Normal(loc, scale).log_prob(z).sum(-1)
    log_w = decoder(z).log_prob(x) + Normal(0.0, 1.0).log_prob(z).sum(-1) - log_q
    surrogate = log_w.detach() * log_q
    return log_w + surrogate - surrogate.detach()


def elbo_shared_noise(x, loc, scale, decoder):  # one ε for every row
    z = loc + scale * torch.randn(loc.shape[-1], dtype=loc.dtype)
    return (
        decoder(z).log_prob(x)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(loc, scale).log_prob(z).sum(-1)
    )


def elbo_loc_detached(x, loc, scale, decoder):
    z = loc.detach() + scale * torch.randn_like(loc)
    return (
        decoder(z).log_prob(x)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(loc, scale).log_prob(z).sum(-1)
    )


def elbo_scale_detached(x, loc, scale, decoder):
    z = loc + scale.detach() * torch.randn_like(loc)
    return (
        decoder(z).log_prob(x)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(loc, scale).log_prob(z).sum(-1)
    )


def elbo_antithetic(x, loc, scale, decoder):  # correct: an antithetic pair, averaged per row
    eps = torch.randn_like(loc)
    halves = []
    for sign in (1.0, -1.0):
        z = loc + sign * scale * eps
        halves.append(
            decoder(z).log_prob(x)
            + Normal(0.0, 1.0).log_prob(z).sum(-1)
            - Normal(loc, scale).log_prob(z).sum(-1)
        )
    return 0.5 * (halves[0] + halves[1])


def elbo_sticking_the_landing(x, loc, scale, decoder):  # correct: STL's value and gradient
    z = loc + scale * torch.randn_like(loc)
    log_q = Normal(loc.detach(), scale.detach()).log_prob(z).sum(-1)
    return decoder(z).log_prob(x) + Normal(0.0, 1.0).log_prob(z).sum(-1) - log_q


def test_reference_elbo_passes_with_resolution():
    verdict = check_reparameterized_elbo(reparameterized_elbo)
    assert verdict.passed and verdict.attempted and verdict.resolution <= 0.1
    assert check_reparameterized_elbo(elbo_analytic_kl).passed


@pytest.mark.parametrize("answer", [elbo_antithetic, elbo_sticking_the_landing])
def test_other_unbiased_pathwise_answers_pass(answer):
    verdict = check_reparameterized_elbo(answer)
    assert verdict.passed and verdict.resolution <= 0.1


@pytest.mark.parametrize(
    "mutant, match",
    [
        (elbo_wrong_kl_sign, "wrong sign of the KL"),
        (elbo_no_kl, "leaving out the KL term"),
        (elbo_no_entropy, "leaving out the entropy term"),
        (elbo_no_prior, "leaving out the prior term"),
        (elbo_with_sample, "sample\\(\\) or detaching"),
        (elbo_detached_noise_path, "sample\\(\\) or detaching"),
        (elbo_analytic_kl_with_sample, "sample\\(\\) or detaching"),
        (elbo_not_summed, "wrong shape.*latent coordinates"),
        (elbo_batch_mean, "wrong shape.*not their mean"),
        (elbo_fixed_seed, "same on every call"),
        (elbo_in_place, "modifies its input"),
        (elbo_item, "gradient does not reach loc"),
        (_closed_form_kl_slip("log_scale"), "log σ where it needs log σ²"),
        (_closed_form_kl_slip("half"), "without its factor ½"),
        (_closed_form_kl_slip("minus_one"), "without its −1"),
        (elbo_score_function, "variance far above.*score-function \\(REINFORCE\\)"),
        (elbo_shared_noise, "one ε for all rows"),
        (elbo_loc_detached, "z cut from loc"),
        (elbo_scale_detached, "z cut from scale"),
    ],
)
def test_elbo_mistakes_are_named(mutant, match):
    with pytest.raises(ExerciseFailure, match=match) as info:
        check_reparameterized_elbo(mutant)
    assert "randn_like" not in str(info.value) and "logsumexp(" not in str(info.value)


# ---------------------------------------------------------------- mutants of the IWAE bound


def iwae_no_log_k(log_w):
    return torch.logsumexp(log_w, dim=0)


def iwae_mean_of_logs(log_w):
    return log_w.mean(0)


def iwae_wrong_axis(log_w):
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])


def iwae_wrong_axis_k(log_w):
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[0])


def iwae_naive(log_w):
    return torch.log(torch.exp(log_w).mean(0))


def iwae_detached(log_w):
    return iwae_bound(log_w.detach())


def iwae_in_place(log_w):
    log_w -= log_w.max()
    return iwae_bound(log_w)


def iwae_global_shift(log_w):  # one shift for the whole tensor: underflows for low columns
    top = log_w.max()
    return torch.log(torch.exp(log_w - top).mean(0)) + top


def iwae_float32(log_w):
    return torch.logsumexp(log_w.float(), dim=0) - math.log(log_w.shape[0])


def test_reference_iwae_passes():
    verdict = check_iwae_bound(iwae_bound)
    assert verdict.passed and verdict.attempted


@pytest.mark.parametrize(
    "mutant, match",
    [
        (iwae_no_log_k, "leaving out −log k"),
        (iwae_mean_of_logs, "mean of the log weights"),
        (iwae_wrong_axis, "wrong reduction axis"),
        (iwae_wrong_axis_k, "wrong reduction axis"),
        (iwae_naive, "overflow or underflow"),
        (iwae_detached, "gradient does not reach log_w"),
        (iwae_global_shift, "underflow for some data points.*own maximum"),
        (iwae_float32, "float32.*compute in float64"),
        (iwae_in_place, "modifies its input"),
    ],
)
def test_iwae_mistakes_are_named(mutant, match):
    with pytest.raises(ExerciseFailure, match=match) as info:
        check_iwae_bound(mutant)
    assert "logsumexp(log_w" not in str(info.value)


def _stub(*args):
    raise NotImplementedError("write this function")


@pytest.mark.parametrize("checker", [check_reparameterized_elbo, check_iwae_bound])
def test_stub_is_not_attempted_and_does_not_raise(checker, capsys):
    verdict = checker(_stub)
    assert not verdict.attempted and not verdict.passed
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "checker, name",
    [
        (check_reparameterized_elbo, "reparameterized_elbo"),
        (check_iwae_bound, "importance_weighted_bound"),
    ],
)
def test_non_callable_is_refused_by_name(checker, name):
    with pytest.raises(TypeError, match=name):
        checker("not a function")


def test_messages_never_show_the_reference_code():
    for fn in (reparameterized_elbo, iwae_bound):
        body = inspect.getsource(fn).splitlines()[-1].strip()
        for mutant in (elbo_no_kl, iwae_no_log_k):
            checker = check_reparameterized_elbo if fn is reparameterized_elbo else check_iwae_bound
            if (fn is reparameterized_elbo) != (mutant is elbo_no_kl):
                continue
            with pytest.raises(ExerciseFailure) as info:
                checker(mutant)
            assert body not in str(info.value)


def test_checkers_leave_the_callers_random_stream_alone():
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    check_reparameterized_elbo(reparameterized_elbo)
    check_iwae_bound(iwae_bound)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_independent_test_of_the_linear_gaussian_facts():
    """The checker's exact ELBO is the Monte Carlo mean of log w with many draws."""
    from companion.exercises.vae import _linear_gaussian

    x, loc, scale, decoder, facts = _linear_gaussian()
    torch.manual_seed(0)
    q = Independent(Normal(loc, scale), 1)
    z = q.sample((400_000,))
    log_w = decoder(z).log_prob(x) + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z)
    se = log_w.std() / math.sqrt(len(log_w))
    assert abs(log_w.mean() - facts["elbo"]) < 5 * se


# ---------------------------------------------------------------- the notebook's own cells

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "05_vae.ipynb"
CHECKERS = {
    "reparameterized_elbo": check_reparameterized_elbo,
    "importance_weighted_bound": check_iwae_bound,
}


def _reference_cells() -> dict:
    sources = {}
    for cell in json.loads(CHAPTER.read_text(encoding="utf-8"))["cells"]:
        if "reference-solution" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            sources[re.search(r"^def (\w+)\(", source, re.MULTILINE).group(1)] = source
    return sources


def _namespace():
    return {"torch": torch, "math": math, "Normal": Normal}


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_notebooks_reference_passes_and_its_stub_is_not_attempted(name):
    source = _reference_cells()[name]
    namespace = _namespace()
    exec(source, namespace)
    assert CHECKERS[name](namespace[name]).passed
    match = re.search(r"^( *)# BEGIN SOLUTION\n.*?^ *# END SOLUTION\n?", source, re.S | re.M)
    stub = (
        source[: match.start()]
        + f'{match.group(1)}raise NotImplementedError("write your solution here")\n'
        + source[match.end() :]
    )
    namespace = _namespace()
    exec(stub, namespace)
    verdict = CHECKERS[name](namespace[name])
    assert not verdict.attempted and not verdict.passed
    assert set(_reference_cells()) == set(CHECKERS)
