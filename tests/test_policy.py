"""Tests of companion.policy: group advantages, the per-output surrogate, KL estimators, clipping.

Exact layer: hand-computed advantages; the identity r_i - mean r = (N-1)/N (r_i - mean_{j≠i} r_j);
the surrogate's gradient against A_i Σ_t ∇ log π / n_i; the expected update of each group
estimator against the true gradient by enumerating every group of a categorical "bandit"
(K outcomes, N draws); E[k3] = KL by enumeration. Statistical layer: sampled RLOO updates
average to the exact gradient (|mean - exact| <= z · stderr, z for a false-alarm rate of 1e-3
over the coordinates), and the same test rejects the mean-centred advantage, whose expected
update is shrunk by (N-1)/N (a 25% error at N = 4).
"""

import itertools

import pytest
import torch
from torch.distributions import Categorical

from companion.checks import critical_z
from companion.policy import (
    grpo_advantages,
    per_token_kl,
    ppo_clip_surrogate,
    rloo_advantages,
    sequence_surrogate,
)
from companion.seeding import seed_everything

DT = torch.float64


# --- advantages -----------------------------------------------------------------------------


def test_rloo_advantages_by_hand():
    r = torch.tensor([3.0, 1.0, 2.0], dtype=DT)
    torch.testing.assert_close(rloo_advantages(r), torch.tensor([1.5, -1.5, 0.0], dtype=DT))


def test_grpo_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=DT)  # mean 1/4, sample sd 1/2
    torch.testing.assert_close(
        grpo_advantages(r, eps=0.0), torch.tensor([1.5, -0.5, -0.5, -0.5], dtype=DT)
    )
    torch.testing.assert_close(
        grpo_advantages(r, eps=0.5), torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=DT)
    )
    torch.testing.assert_close(
        grpo_advantages(r, scale=False), torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=DT)
    )


def test_mean_centred_is_scaled_rloo():
    """r_i - mean r = (N-1)/N (r_i - mean_{j≠i} r_j), for groups along dimension 0."""
    seed_everything(0)
    for n in (2, 3, 8):
        r = torch.randn(n, 5, 7, dtype=DT)
        torch.testing.assert_close(
            grpo_advantages(r, scale=False), (n - 1) / n * rloo_advantages(r), rtol=1e-12, atol=0
        )


def test_grpo_divides_by_the_sample_standard_deviation():
    seed_everything(1)
    r = torch.randn(6, 10, dtype=DT)
    expected = (r - r.mean(0)) / (r.std(0, correction=1) + 1e-4)
    torch.testing.assert_close(grpo_advantages(r), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("eps", [0.0, 1e-4, 1.0])
def test_all_equal_groups_get_exactly_zero_advantages(eps):
    """A group whose rewards are all equal has advantages exactly 0, even with eps = 0 and
    rewards (0.1) whose mean is not exactly representable; other groups are unaffected."""
    r = torch.tensor([[0.1, 1.0, 0.0], [0.1, 0.0, 0.0], [0.1, 0.0, 0.0]], dtype=DT)
    a = grpo_advantages(r, eps=eps)
    assert (a[:, 0] == 0).all() and (a[:, 2] == 0).all()
    assert torch.isfinite(a).all() and a[0, 1] > 0
    assert (grpo_advantages(r, scale=False)[:, [0, 2]] == 0).all()


def test_integer_and_boolean_rewards_are_numbers():
    expected = rloo_advantages(torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(rloo_advantages(torch.tensor([1, 0, 0])), expected)
    torch.testing.assert_close(rloo_advantages(torch.tensor([True, False, False])), expected)
    torch.testing.assert_close(
        grpo_advantages(torch.tensor([1, 0, 0])), grpo_advantages(torch.tensor([1.0, 0.0, 0.0]))
    )


def test_advantages_are_detached():
    r = torch.tensor([1.0, 0.0, 2.0], dtype=DT, requires_grad=True)
    assert not rloo_advantages(r).requires_grad
    assert not grpo_advantages(r).requires_grad


@pytest.mark.parametrize("function", [rloo_advantages, grpo_advantages])
@pytest.mark.parametrize(
    "rewards, error",
    [
        (torch.tensor([1.0]), ValueError),  # a group of one
        (torch.ones(1, 5), ValueError),  # five groups of one
        (torch.tensor(1.0), ValueError),  # a scalar
        ([1.0, 0.0], TypeError),  # not a tensor
        (torch.zeros(2, dtype=torch.complex128), TypeError),
        (torch.tensor([1.0, float("nan")]), ValueError),
        (torch.tensor([1.0, float("inf")]), ValueError),
    ],
)
def test_advantages_refuse_bad_rewards(function, rewards, error):
    with pytest.raises(error, match="rewards"):
        function(rewards)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"eps": -1e-4}, ValueError),
        ({"eps": float("inf")}, ValueError),
        ({"eps": float("nan")}, ValueError),
        ({"eps": True}, TypeError),
        ({"eps": "0.1"}, TypeError),
        ({"scale": 1}, TypeError),
        ({"scale": None}, TypeError),
    ],
)
def test_grpo_refuses_bad_options(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        grpo_advantages(torch.tensor([1.0, 0.0]), **kwargs)


# --- the surrogate --------------------------------------------------------------------------


def _sequences():
    """Three outputs of lengths 3, 1, 2 (T = 3), token log-probs that depend on θ."""
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=DT, requires_grad=True)
    base = torch.tensor([[1.0, 2.0, 3.0], [0.5, 9.0, 9.0], [2.0, 1.0, 9.0]], dtype=DT)
    logp = -base * theta.exp()[None, :]  # (N, T); padding entries are arbitrary
    mask = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    return theta, logp, mask


@pytest.mark.parametrize(
    "norm, n_i",
    [("none", [1.0, 1.0, 1.0]), ("sequence", [3.0, 1.0, 2.0]), ("constant", [5.0, 5.0, 5.0])],
)
def test_sequence_surrogate_gradient(norm, n_i):
    """∇ mean_i s_i = (1/N) Σ_i A_i Σ_t m_it ∇ log π_it / n_i, padding ignored."""
    theta, logp, mask = _sequences()
    adv = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    max_length = 5 if norm == "constant" else None
    s = sequence_surrogate(logp, adv, mask, length_norm=norm, max_length=max_length)
    (grad,) = torch.autograd.grad(s.mean(), theta, retain_graph=True)
    expected = torch.zeros(3, dtype=DT)
    for i in range(3):
        for t in range(3):
            if mask[i, t]:
                (g,) = torch.autograd.grad(logp[i, t], theta, retain_graph=True)
                expected += adv[i] * g / n_i[i] / 3
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-15)
    values = adv * (logp * mask).sum(-1) / torch.tensor(n_i, dtype=DT)
    torch.testing.assert_close(s, values, rtol=1e-12, atol=0)


def test_sequence_surrogate_ignores_padding_values():
    theta, logp, mask = _sequences()
    adv = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    scrambled = torch.where(mask, logp, torch.full_like(logp, -1e6))
    torch.testing.assert_close(
        sequence_surrogate(scrambled, adv, mask), sequence_surrogate(logp, adv, mask)
    )


def test_sequence_surrogate_batch_shapes():
    logp = -torch.rand(4, 2, 3, 5, dtype=DT)  # (N, *batch, T)
    mask = torch.ones(4, 2, 3, 5, dtype=torch.bool)
    assert sequence_surrogate(logp, torch.randn(4, 2, 3, dtype=DT), mask).shape == (4, 2, 3)


@pytest.mark.parametrize(
    "change, error, name",
    [
        ({"advantages": torch.zeros(2, dtype=DT)}, ValueError, "advantages"),
        ({"advantages": torch.zeros(3, 1, dtype=DT)}, ValueError, "advantages"),
        ({"mask": torch.ones(3, 3)}, TypeError, "mask"),
        ({"mask": torch.ones(3, 2, dtype=torch.bool)}, ValueError, "mask"),
        ({"mask": torch.zeros(3, 3, dtype=torch.bool)}, ValueError, "mask"),
        ({"token_log_probs": torch.zeros(3, dtype=DT)}, ValueError, "token_log_probs"),
        ({"token_log_probs": [[0.0] * 3] * 3}, TypeError, "token_log_probs"),
        ({"token_log_probs": torch.full((3, 3), float("nan"))}, ValueError, "token_log_probs"),
        ({"length_norm": "token"}, ValueError, "length_norm"),
        ({"length_norm": "constant"}, TypeError, "max_length"),
        ({"length_norm": "constant", "max_length": 2}, ValueError, "max_length"),
        ({"length_norm": "constant", "max_length": 0}, ValueError, "max_length"),
        ({"length_norm": "constant", "max_length": 4.0}, TypeError, "max_length"),
        ({"max_length": 4}, ValueError, "max_length"),
    ],
)
def test_sequence_surrogate_refuses_bad_input(change, error, name):
    _, logp, mask = _sequences()
    kwargs = {"token_log_probs": logp, "advantages": torch.ones(3, dtype=DT), "mask": mask}
    kwargs.update(change)
    with pytest.raises(error, match=name):
        sequence_surrogate(**kwargs)


# --- expected updates, exactly and by sampling ----------------------------------------------

LOGITS = torch.tensor([0.4, -0.3, 0.1, 0.0], dtype=DT)
REWARD = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=DT)  # a verifiable 0/1 reward per outcome


def _exact_expected_update(advantage, n):
    """E[(1/N) Σ_i A_i ∇ log π(x_i)] by summing over all K^N groups, for a categorical."""
    probs = torch.softmax(LOGITS, 0)
    scores = torch.eye(len(LOGITS), dtype=DT) - probs  # row k: ∇ log softmax(θ)_k
    mean = torch.zeros(len(LOGITS), dtype=DT)
    for ks in itertools.product(range(len(LOGITS)), repeat=n):
        a = advantage(REWARD[list(ks)])
        mean += torch.prod(probs[list(ks)]) * (a[:, None] * scores[list(ks)]).mean(0)
    return mean


def _true_gradient():
    theta = LOGITS.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.softmax(theta, 0) @ REWARD, theta)
    return grad


@pytest.mark.parametrize("n", [2, 3, 4])
def test_expected_updates_by_enumeration(n):
    """RLOO is unbiased, the mean-centred advantage gives (N-1)/N ∇J, and GRPO gives w ∇J
    with w = E[A_1 | r_1 = 1] - E[A_1 | r_1 = 0] (one prompt: no change of direction)."""
    grad = _true_gradient()
    torch.testing.assert_close(_exact_expected_update(rloo_advantages, n), grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        _exact_expected_update(lambda r: grpo_advantages(r, scale=False), n),
        (n - 1) / n * grad,
        rtol=1e-12,
        atol=0,
    )
    grpo = _exact_expected_update(grpo_advantages, n)
    p = (torch.softmax(LOGITS, 0) @ REWARD).item()
    w = 0.0
    for rs in itertools.product([0.0, 1.0], repeat=n):
        prob = p ** sum(rs[1:]) * (1 - p) ** (n - 1 - sum(rs[1:]))
        w += prob * grpo_advantages(torch.tensor(rs, dtype=DT))[0].item() * (2 * rs[0] - 1)
    torch.testing.assert_close(grpo, w * grad, rtol=1e-12, atol=1e-15)


def _sampled_updates(advantage, n, num_groups):
    """One update per group of N draws, shape (R, K); their sum is the surrogate's gradient."""
    logits = LOGITS.clone().requires_grad_(True)
    dist = Categorical(logits=logits)
    x = dist.sample((n, num_groups))  # (N, R)
    log_prob = dist.log_prob(x)[..., None]  # (N, R, T = 1)
    mask = torch.ones_like(log_prob, dtype=torch.bool)
    surrogate = sequence_surrogate(log_prob, advantage(REWARD[x]), mask)  # (N, R)
    # per-group gradients in closed form, A_i (e_{x_i} - π), checked against the surrogate's total
    scores = torch.eye(len(LOGITS), dtype=DT)[x] - torch.softmax(LOGITS, 0)  # (N, R, K)
    a = advantage(REWARD[x])
    per_group = (a[..., None] * scores).mean(0)  # (R, K)
    (total,) = torch.autograd.grad(surrogate.mean(0).sum(), logits)
    torch.testing.assert_close(total, per_group.sum(0), rtol=1e-10, atol=1e-10)
    return per_group


def test_sampled_rloo_updates_are_unbiased():
    """|mean - ∇J| <= z se per coordinate (Bonferroni over K = 4 at 1e-3); 2e5 groups of
    N = 4 resolve z · se ≈ 0.004, a tenth of the smallest |∇J| coordinate."""
    seed_everything(2)
    g = _sampled_updates(rloo_advantages, 4, 200_000)
    mean, se = g.mean(0), g.std(0) / g.shape[0] ** 0.5
    z = critical_z(1e-3, len(LOGITS))
    assert ((mean - _true_gradient()).abs() <= z * se).all()


def test_sampled_test_rejects_the_mean_centred_advantage():
    """The same test, on the mean-centred advantage (expected update (N-1)/N ∇J): caught."""
    seed_everything(3)
    g = _sampled_updates(lambda r: grpo_advantages(r, scale=False), 4, 200_000)
    mean, se = g.mean(0), g.std(0) / g.shape[0] ** 0.5
    z = critical_z(1e-3, len(LOGITS))
    assert ((mean - _true_gradient()).abs() > z * se).any()
    assert ((mean - 0.75 * _true_gradient()).abs() <= z * se).all()


# --- KL estimators --------------------------------------------------------------------------


def test_per_token_kl_formulas():
    logp = torch.log(torch.tensor([0.5, 0.2], dtype=DT))
    ref = torch.log(torch.tensor([0.25, 0.4], dtype=DT))
    log_w = ref - logp
    torch.testing.assert_close(per_token_kl(logp, ref, kind="k1"), -log_w)
    torch.testing.assert_close(per_token_kl(logp, ref, kind="k2"), log_w**2 / 2)
    torch.testing.assert_close(per_token_kl(logp, ref), log_w.exp() - log_w - 1)
    assert (per_token_kl(logp, ref) >= 0).all()
    assert per_token_kl(logp, logp).abs().max() == 0


def test_k1_and_k3_are_unbiased_by_enumeration():
    """Σ_v π(v) k(v) = KL(π ‖ π_ref) for k1 and k3 (exact), not for k2."""
    logp = torch.log_softmax(torch.tensor([0.3, -1.0, 0.8], dtype=DT), 0)
    ref = torch.log_softmax(torch.tensor([0.0, 0.5, -0.2], dtype=DT), 0)
    kl = (logp.exp() * (logp - ref)).sum()
    for kind in ("k1", "k3"):
        torch.testing.assert_close((logp.exp() * per_token_kl(logp, ref, kind=kind)).sum(), kl)
    assert abs((logp.exp() * per_token_kl(logp, ref, kind="k2")).sum() - kl) > 1e-3


def test_k3_gradient_at_fixed_tokens():
    """∇θ k3 = (1 - ρ) ∇θ log π, ρ = π_ref / π."""
    theta = torch.tensor([0.3, -1.0, 0.8], dtype=DT, requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 0.5, -0.2], dtype=DT), 0)
    logp = torch.log_softmax(theta, 0)
    (grad,) = torch.autograd.grad(per_token_kl(logp, ref)[1], theta, retain_graph=True)
    (score,) = torch.autograd.grad(logp[1], theta)
    rho = (ref[1] - logp[1]).exp().detach()
    torch.testing.assert_close(grad, (1 - rho) * score)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"kind": "k4"}, ValueError, "kind"),
        ({"ref_log_probs": torch.zeros(3, dtype=DT)}, ValueError, "ref_log_probs"),
        ({"ref_log_probs": [0.0, 0.0]}, TypeError, "ref_log_probs"),
        ({"log_probs": torch.tensor([0.0, float("nan")])}, ValueError, "log_probs"),
        ({"log_probs": torch.tensor([0, 0])}, TypeError, "log_probs"),
    ],
)
def test_per_token_kl_refuses_bad_input(kwargs, error, name):
    args = {"log_probs": torch.zeros(2, dtype=DT), "ref_log_probs": torch.zeros(2, dtype=DT)}
    args.update(kwargs)
    with pytest.raises(error, match=name):
        per_token_kl(**args)


# --- PPO clipping ---------------------------------------------------------------------------


def test_ppo_clip_values_and_gradients():
    logp = torch.log(torch.tensor([0.6, 0.6, 0.3, 0.3], dtype=DT)).requires_grad_(True)
    old = torch.log(torch.tensor([0.4, 0.4, 0.4, 0.4], dtype=DT))  # ratios 1.5, 1.5, 0.75, 0.75
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=DT)
    s = ppo_clip_surrogate(logp, old, adv, clip=0.2)
    torch.testing.assert_close(s, torch.tensor([1.2, -1.5, 0.75, -0.8], dtype=DT))
    (grad,) = torch.autograd.grad(s.sum(), logp)
    # d(w A)/d log π = w A where the unclipped branch is active, 0 where the clipped one is
    torch.testing.assert_close(grad, torch.tensor([0.0, -1.5, 0.75, 0.0], dtype=DT))


def test_ppo_clip_is_the_policy_gradient_at_the_old_policy():
    theta = torch.tensor([0.2, -0.4, 0.1], dtype=DT, requires_grad=True)
    logp = torch.log_softmax(theta, 0)[[0, 2, 2]]
    adv = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    (g_clip,) = torch.autograd.grad(
        ppo_clip_surrogate(logp, logp.detach(), adv).sum(), theta, retain_graph=True
    )
    (g_pg,) = torch.autograd.grad((adv * logp).sum(), theta)
    torch.testing.assert_close(g_clip, g_pg)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"clip": 0.0}, ValueError, "clip"),
        ({"clip": 1.0}, ValueError, "clip"),
        ({"clip": True}, TypeError, "clip"),
        ({"clip": "0.2"}, TypeError, "clip"),
        ({"old_log_probs": torch.zeros(3, dtype=DT)}, ValueError, "old_log_probs"),
        ({"advantages": torch.zeros(3, dtype=DT)}, ValueError, "advantages"),
        ({"advantages": [1.0, 1.0]}, TypeError, "advantages"),
        ({"log_probs": torch.tensor([0.0, float("inf")])}, ValueError, "log_probs"),
    ],
)
def test_ppo_clip_refuses_bad_input(kwargs, error, name):
    args = {
        "log_probs": torch.zeros(2, dtype=DT),
        "old_log_probs": torch.zeros(2, dtype=DT),
        "advantages": torch.ones(2, dtype=DT),
    }
    args.update(kwargs)
    with pytest.raises(error, match=name):
        ppo_clip_surrogate(**args)
