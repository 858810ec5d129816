"""Tests of companion.relaxations: exact replays in float64, then statistical checks.

Distributions of category indices are tested with chi-square goodness of fit at a
false-alarm rate of 1e-3 per test (Bonferroni over rows); means go through companion.checks
(|estimate - exact| <= z * stderr, 1e-3 per check). Each test seeds in its own body.

The relaxed Bernoulli and the straight-through categorical are torch's
(``RelaxedBernoulli``, ``OneHotCategoricalStraightThrough``); Chapter 6 relies on their
formulas (the binary Concrete's threshold and per-sample gradient, the straight-through
gradient identity and its bias), so those are tested here on torch's samplers.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch.distributions import OneHotCategoricalStraightThrough, RelaxedBernoulli

from companion.checks import check_mc, critical_z
from companion.montecarlo import summarize
from companion.relaxations import (
    gumbel_max_sample,
    gumbel_noise,
    gumbel_softmax_sample,
    straight_through_bernoulli,
)
from companion.seeding import seed_everything

FALSE_ALARM = 1e-3
LOGITS = torch.tensor([1.0, -0.5, 0.3, 2.0, 0.0], dtype=torch.float64)  # K = 5, non-uniform
BATCHED = torch.tensor(
    [[0.0, 0.0, 0.0, 0.0, 3.0], [-1.0, 1.0, -2.0, 0.5, 0.0], [2.0, 2.0, 1.0, -1.0, 0.0]]
)  # (3, 5), float32


def assert_categorical(indices, probs, false_alarm=FALSE_ALARM):
    """Chi-square test that int indices (N, *batch) follow probs (*batch, K); Bonferroni."""
    rows = probs.reshape(-1, probs.shape[-1])
    flat = indices.reshape(indices.shape[0], -1)
    for r in range(rows.shape[0]):
        counts = torch.bincount(flat[:, r], minlength=rows.shape[1]).double()
        pvalue = stats.chisquare(counts.numpy(), (indices.shape[0] * rows[r]).numpy()).pvalue
        assert pvalue > false_alarm / rows.shape[0], f"row {r}: chi-square p-value {pvalue:.2e}"


# ---------------------------------------------------------------- exact layer


def test_gumbel_max_replays_argmax_of_logits_plus_noise():
    seed_everything(0)
    logits = torch.randn(3, 4, dtype=torch.float64)
    noise = torch.randn(6, 3, 4, dtype=torch.float64)
    k = gumbel_max_sample(logits, 6, noise=noise)
    assert k.shape == (6, 3) and k.dtype == torch.int64
    assert torch.equal(k, torch.argmax(logits + noise, dim=-1))


def test_gumbel_max_and_concrete_share_the_argmax_under_shared_noise():
    # Both draw U ~ rand(S, *batch, K) clamped to [eps, 1 - eps] and set G = -log(-log U);
    # dividing by a temperature does not move the argmax.
    for temperature in (2.0, 0.1):
        seed_everything(0)
        k = gumbel_max_sample(LOGITS, 500)
        seed_everything(0)
        y = gumbel_softmax_sample(LOGITS, temperature, 500)
        assert torch.equal(k, y.argmax(-1))


def test_hard_gumbel_softmax_is_one_hot_with_the_soft_gradient():
    seed_everything(1)
    logits = torch.randn(2, 4, dtype=torch.float64)
    weights = torch.randn(50, 2, 4, dtype=torch.float64)
    grads, values = [], []
    for hard in (True, False):
        leaf = logits.clone().requires_grad_()
        seed_everything(1)  # same noise, so the same soft sample underneath
        y = gumbel_softmax_sample(leaf, 0.5, 50, hard=hard)
        (weights * y).sum().backward()
        grads.append(leaf.grad)
        values.append(y.detach())
    hard_y, soft_y = values
    assert torch.equal(hard_y, F.one_hot(soft_y.argmax(-1), 4).double())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_straight_through_bernoulli_gradient_replays_f_prime_times_sigmoid_prime():
    # Per-sample gradient of f(b) = (b - t)^2 is f'(b) p (1 - p) = 2 (b - t) p (1 - p).
    seed_everything(2)
    eta = torch.tensor([-1.0, 0.0, 0.7, 3.0], dtype=torch.float64, requires_grad=True)
    b = straight_through_bernoulli(eta, 1)[0]
    assert ((b == 0) | (b == 1)).all()
    ((b - 0.6) ** 2).sum().backward()
    p = torch.sigmoid(eta.detach())
    torch.testing.assert_close(eta.grad, 2 * (b.detach() - 0.6) * p * (1 - p), rtol=1e-12, atol=0)


def test_torch_straight_through_categorical_is_one_hot_with_the_softmax_jacobian():
    """The straight-through identity of Chapter 6 (eq-dl-st-bias), on torch's sampler."""
    seed_everything(3)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = OneHotCategoricalStraightThrough(logits=logits).rsample((7,))
    assert b.shape == (7, 3, 4)
    assert torch.equal(b.detach(), F.one_hot(b.detach().argmax(-1), 4).double())
    v = torch.randn(4, dtype=torch.float64)
    (b * v).sum().backward()  # linear f: J_p^T v per sample, whatever the sample
    p = torch.softmax(logits.detach(), -1)
    expected = 7 * p * (v - (p @ v)[..., None])  # 7 samples, each J_p^T v
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-12)


def test_samples_live_where_they_should_and_noise_follows_its_generator():
    seed_everything(4)
    y = gumbel_softmax_sample(torch.zeros(2, 3), 0.3, 10)
    assert y.shape == (10, 2, 3) and (y > 0).all()
    torch.testing.assert_close(y.sum(-1), torch.ones(10, 2))
    a = gumbel_noise((100,), torch.Generator().manual_seed(5), dtype=torch.float64)
    b = gumbel_noise((100,), torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(a, b) and a.dtype == torch.float64 and torch.isfinite(a).all()


def test_torch_relaxed_bernoulli_has_the_per_sample_gradient_of_chapter_6():
    """y = sigmoid((θ + L) / τ) gives dy/dθ = y (1 - y) / τ for each draw, exactly: the
    per-sample gradient 2 (y - t) y (1 - y) / τ that Chapter 6 averages."""
    seed_everything(14)
    tau = 0.7
    theta = torch.tensor([-1.0, 0.0, 0.3, 2.0], dtype=torch.float64).repeat(50, 1)
    theta.requires_grad_(True)
    y = RelaxedBernoulli(torch.tensor(tau, dtype=torch.float64), logits=theta).rsample()
    assert ((y > 0) & (y < 1)).all()
    ((y - 0.499) ** 2).sum().backward()
    y = y.detach()
    torch.testing.assert_close(
        theta.grad, 2 * (y - 0.499) * y * (1 - y) / tau, rtol=1e-10, atol=1e-15
    )


# ---------------------------------------------------------------- statistical layer


def test_gumbel_noise_is_standard_gumbel():
    """Kolmogorov-Smirnov against Gumbel(0, 1), 10^5 draws, p > 1e-3: detects a shift of ~0.02."""
    seed_everything(6)
    pvalue = stats.kstest(gumbel_noise((100_000,), dtype=torch.float64).numpy(), "gumbel_r").pvalue
    assert pvalue > FALSE_ALARM


@pytest.mark.parametrize("logits", [LOGITS, BATCHED])
def test_gumbel_max_follows_softmax(logits):
    """Chi-square on 10^5 samples, false alarm 1e-3 (Bonferroni over rows); detects a change
    of about 0.01 in a probability near 0.2."""
    seed_everything(7)
    assert_categorical(gumbel_max_sample(logits, 100_000), torch.softmax(logits.double(), -1))


@pytest.mark.parametrize("temperature", [1.0, 0.01])
def test_concrete_argmax_follows_softmax_at_any_temperature(temperature):
    """argmax of the Concrete sample is the Gumbel-max sample: chi-square on 10^5 samples."""
    seed_everything(8)
    y = gumbel_softmax_sample(LOGITS, temperature, 100_000)
    assert_categorical(y.argmax(-1), torch.softmax(LOGITS, -1))


def test_concrete_approaches_one_hot_as_temperature_falls():
    """E[max_k y_k] rises strictly over temperatures 2, 1, 0.5, 0.1, 0.01, each step by more
    than z = 3.48 (Bonferroni over 4 steps) standard errors of the difference; 2 x 10^4 draws
    each. Measured: 0.437, 0.622, 0.789, 0.957, 0.9956."""
    seed_everything(9)
    means = [
        summarize(gumbel_softmax_sample(LOGITS, t, 20_000).max(-1).values)
        for t in (2.0, 1.0, 0.5, 0.1, 0.01)
    ]
    z = critical_z(FALSE_ALARM, 4)
    for lo, hi in zip(means, means[1:]):
        assert hi.mean - lo.mean > z * (lo.stderr**2 + hi.stderr**2).sqrt()
    assert means[-1].mean > 0.99  # within 1% of one-hot at temperature 0.01


def test_concrete_approaches_uniform_as_temperature_grows():
    """E[y] -> 1/K: expanding softmax(s / tau), s = logits + G, to first order gives
    tau (y_k - 1/K) -> (s_k - mean(s)) / K, whose mean is (l_k - mean(l)) / K (G cancels);
    the second-order term, ((l_k - l.)^2 - mean_j (l_j - l.)^2) / (2 K tau), is <= 1.3e-4
    (0.1 standard errors) at tau = 1000. 2 x 10^4 draws; detects a bias of
    6e-3 in tau (y - 1/K), i.e. 6e-6 in E[y]."""
    seed_everything(10)
    tau, k = 1000.0, LOGITS.shape[0]
    y = gumbel_softmax_sample(LOGITS, tau, 20_000)
    check_mc("tau (E[y] - 1/K) at tau = 1000", tau * (y - 1 / k), (LOGITS - LOGITS.mean()) / k)


def test_torch_relaxed_bernoulli_threshold_is_bernoulli_and_high_temperature_is_one_half():
    """torch's RelaxedBernoulli is the binary Concrete y = sigmoid((logits + L) / tau) of
    Chapter 6: P(y > 1/2) = sigmoid(logits) at every temperature (2 x 10^4 draws, detects
    ~0.012); tau (y - 1/2) -> (logits + L) / 4 with E[L] = 0 at tau = 1000 (detects ~0.012)."""
    seed_everything(11)
    logits = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)

    def relaxed(tau):
        temperature = torch.tensor(tau, dtype=torch.float64)
        return RelaxedBernoulli(temperature, logits=logits).rsample((20_000,))

    for tau in (1.0, 0.1):
        above = (relaxed(tau) > 0.5).double()
        check_mc(f"P(y > 1/2) at tau = {tau}", above, torch.sigmoid(logits))
    check_mc("tau (E[y] - 1/2) at tau = 1000", 1000.0 * (relaxed(1000.0) - 0.5), logits / 4)


def test_straight_through_bernoulli_is_measurably_biased():
    """d/d eta E[(b - t)^2], b ~ Bernoulli(sigmoid(eta)), eta = 1, t = 0.6: by enumeration
    (1 - 2t) p (1 - p) = -0.0393; straight-through's mean is 2 (p - t) p (1 - p) = +0.0515, a
    bias (2p - 1) p (1 - p) = 0.0909 with the wrong sign. 10^4 draws (stderr 0.0018):
    measured 0.050 +- 0.0018, 50 standard errors from the truth."""
    seed_everything(12)
    leaf = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(leaf)
    (p * (1 - 0.6) ** 2 + (1 - p) * (0 - 0.6) ** 2).backward()  # enumerate b in {0, 1}
    exact, p = leaf.grad, p.detach()
    torch.testing.assert_close(exact, (1 - 2 * 0.6) * p * (1 - p), rtol=1e-12, atol=0)
    eta = torch.full((10_000,), 1.0, dtype=torch.float64, requires_grad=True)
    b = straight_through_bernoulli(eta, 1)[0]  # one sample per copy of eta: per-sample grads
    ((b - 0.6) ** 2).sum().backward()
    check_mc("straight-through mean", eta.grad, 2 * (p - 0.6) * p * (1 - p))
    grad = summarize(eta.grad)
    assert (grad.mean - exact).abs() > critical_z(FALSE_ALARM) * grad.stderr


def test_torch_straight_through_categorical_is_measurably_biased():
    """f(x) = ||x - t||^2 on one-hot x: exact gradient J^T(-2t) by enumeration of the K
    outcomes, straight-through mean J^T 2(p - t), bias J^T 2p with J^T v = p (v - p.v)
    (eq-dl-st-bias), on torch's OneHotCategoricalStraightThrough.
    2 x 10^4 draws, Bonferroni over K = 5; measured bias 0.209 +- 0.002 in coordinate 3."""
    seed_everything(13)
    t = torch.tensor([0.0, 1.0, 0.5, 0.2, 0.0], dtype=torch.float64)
    leaf = LOGITS.clone().requires_grad_()
    f_of_each = ((torch.eye(5, dtype=torch.float64) - t) ** 2).sum(-1)  # f(e_k), (K,)
    (torch.softmax(leaf, -1) @ f_of_each).backward()
    exact, p = leaf.grad, torch.softmax(LOGITS, -1)
    torch.testing.assert_close(exact, p * (-2 * t - p @ (-2 * t)), rtol=1e-12, atol=1e-15)
    logits = LOGITS.repeat(20_000, 1).requires_grad_()  # (N, K): per-sample gradients
    ((OneHotCategoricalStraightThrough(logits=logits).rsample() - t) ** 2).sum().backward()
    v = 2 * (p - t)
    check_mc("straight-through categorical mean", logits.grad, p * (v - p @ v))
    grad = summarize(logits.grad)
    assert ((grad.mean - exact).abs() > critical_z(FALSE_ALARM, 5) * grad.stderr).any()


# ---------------------------------------------------------------- bad input

CALLS = {  # name -> call with (logits, num_samples, temperature)
    "gumbel_max": lambda l, n=3, t=1.0: gumbel_max_sample(l, n),
    "gumbel_softmax": lambda l, n=3, t=1.0: gumbel_softmax_sample(l, t, n),
    "st_bernoulli": lambda l, n=3, t=1.0: straight_through_bernoulli(l, n),
}
BAD_LOGITS = [
    ([0.0, 1.0], TypeError, "logits must be a floating-point tensor, got list"),
    (torch.tensor([0, 1]), TypeError, "logits must be a floating-point tensor.*int64"),
    (torch.tensor([0.0, float("nan")]), ValueError, "logits must be finite"),
]
BAD_TEMPERATURE = [
    (0.0, ValueError, "temperature must be positive and finite, got 0.0"),
    (-1.0, ValueError, "positive and finite, got -1.0"),
    (float("inf"), ValueError, "positive and finite, got inf"),
    ("1", TypeError, "temperature must be a positive number.*got str"),
    (True, TypeError, "temperature must be a positive number"),
    (torch.ones(2), TypeError, r"0-dim floating-point tensor, got a tensor of shape \(2,\)"),
]


@pytest.mark.parametrize("name", CALLS)
def test_logits_and_num_samples_are_checked(name):
    call, categorical = CALLS[name], name in ("gumbel_max", "gumbel_softmax")
    for logits, error, match in BAD_LOGITS:
        with pytest.raises(error, match=match):
            call(logits)
    for logits in [torch.tensor(1.0), torch.zeros(3, 1)] if categorical else [torch.zeros(0)]:
        with pytest.raises(
            ValueError,
            match="K >= 2 categories, got shape"
            if categorical
            else "logits must hold at least one element",
        ):
            call(logits)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        call(torch.zeros(3), 0)
    with pytest.raises(TypeError, match="num_samples must be an integer >= 1, got float"):
        call(torch.zeros(3), 2.0)


@pytest.mark.parametrize("temperature, error, match", BAD_TEMPERATURE)
def test_temperature_must_be_a_positive_finite_scalar(temperature, error, match):
    with pytest.raises(error, match=match):
        gumbel_softmax_sample(torch.zeros(3), temperature, 4)


def test_noise_hard_shape_and_generator_are_checked():
    with pytest.raises(ValueError, match=r"noise must have shape .* = \(2, 3\), got \(2, 4\)"):
        gumbel_max_sample(torch.zeros(3), 2, noise=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="noise must be a floating-point tensor, got list"):
        gumbel_max_sample(torch.zeros(3), 1, noise=[[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="noise must be finite"):
        gumbel_max_sample(torch.zeros(3), 1, noise=torch.tensor([[0.0, float("inf"), 0.0]]))
    with pytest.raises(TypeError, match="hard must be True or False, got str"):
        gumbel_softmax_sample(torch.zeros(3), 1.0, 2, hard="yes")
    with pytest.raises(TypeError, match="shape must be a sequence of integers, got float"):
        gumbel_noise(2.5)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        gumbel_noise((2,), 0)


# ---------------------------------------------------------------- adversarial input


@pytest.mark.parametrize("name", CALLS)
def test_bad_input_leaves_the_logits_untouched(name):
    logits = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    before = logits.detach().clone()
    for n in (0, 2.0, True, "3", 10**12):
        with pytest.raises((TypeError, ValueError), match="num_samples"):
            CALLS[name](logits, n)
    assert torch.equal(logits.detach(), before) and logits.grad is None


@pytest.mark.parametrize("name", CALLS)
def test_impossible_num_samples_is_refused_before_allocating(name):
    with pytest.raises(ValueError, match=r"num_samples=1000000000000 would need about .* GiB"):
        CALLS[name](torch.zeros(3), 10**12)


@pytest.mark.parametrize("hard", ["no", "False", 0, 1, None])
def test_hard_must_be_a_bool(hard):
    with pytest.raises(TypeError, match="hard must be True or False"):
        gumbel_softmax_sample(torch.zeros(3), 1.0, 2, hard=hard)


def test_a_temperature_too_small_for_the_dtype_is_refused_not_nan():
    # 1e-50 is 0 in float32; 1e-40 is a float32 subnormal, and (logits + G) / 1e-40 overflows.
    with pytest.raises(
        ValueError,
        match=r"temperature must be positive and finite in the "
        r"logits' dtype torch.float32, got 1e-50",
    ):
        gumbel_softmax_sample(torch.zeros(3), 1e-50, 2)
    seed_everything(15)
    state = torch.random.get_rng_state()
    with pytest.raises(ValueError, match=r"temperature=.* is too small for torch\.float32 logits"):
        gumbel_softmax_sample(torch.tensor([0.0, 1.0, 2.0]), 1e-40, 50)
    assert torch.equal(torch.random.get_rng_state(), state)  # refused before drawing
    # just above the threshold: finite samples (scores up to about 16 / 1e-37 = 1.6e38)
    assert torch.isfinite(gumbel_softmax_sample(torch.tensor([0.0, 1.0, 2.0]), 1e-37, 1000)).all()
    # float64 has room: the same temperature gives one-hot samples, not NaN.
    y = gumbel_softmax_sample(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), 1e-40, 50)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(shape=(-1, 2)), ValueError, r"shape must hold sizes >= 0, got \(-1, 2\)"),
        (dict(shape=(True, 2)), TypeError, "shape must be a sequence of integers"),
        (dict(shape=(2.0,)), TypeError, "shape must be a sequence of integers"),
        (dict(shape="23"), TypeError, "shape must be a sequence of integers, got str"),
        (dict(shape=3), TypeError, "shape must be a sequence of integers, got int"),
        (dict(shape=(10**7, 10**7)), ValueError, r"shape=\(10000000, 10000000\) would need about"),
        (dict(shape=(2,), dtype=torch.int64), TypeError, "dtype must be a floating torch.dtype"),
        (dict(shape=(2,), dtype="float32"), TypeError, "dtype must be a floating torch.dtype"),
        (dict(shape=(2,), device="nowhere"), ValueError, "device must name a torch device"),
        (dict(shape=(2,), device=0.5), TypeError, "device must be a torch.device"),
        (
            dict(shape=(2,), device="meta", generator=torch.Generator()),
            ValueError,
            "generator must be on the output's device",
        ),
    ],
)
def test_gumbel_noise_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        gumbel_noise(**kwargs)


def test_gumbel_noise_accepts_any_sequence_of_integers():
    assert gumbel_noise([2, 3]).shape == (2, 3)
    assert gumbel_noise(torch.Size([0, 3])).shape == (0, 3)
    assert gumbel_noise((np.int64(2),), dtype=torch.float64).dtype == torch.float64


def test_noise_on_another_device_is_refused():
    with pytest.raises(ValueError, match="noise must be on the logits' device"):
        gumbel_max_sample(torch.zeros(3), 2, noise=torch.zeros(2, 3, device="meta"))
