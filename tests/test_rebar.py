"""Tests of companion.rebar: the conditional logistic sampler and the REBAR estimator.

Exact layer in float64 (sign of z̃, the closed form against the naive inverse CDF, replayed
noise against a hand-derived per-sample gradient); statistical layer at a false-alarm rate of
1e-3 per test (Kolmogorov–Smirnov for distributions, companion.checks for means).
"""

import math

import pytest
import torch
from scipy import stats

from companion.checks import check_mc
from companion.rebar import (
    _rebar_surrogate,
    _relax_surrogate,
    conditional_logistic,
    rebar_bernoulli,
    relax_bernoulli,
)
from companion.relaxations import mse_against_reference
from companion.seeding import seed_everything

FALSE_ALARM = 1e-3
LOGITS = torch.tensor([-1.5, -0.2, 0.0, 0.7, 2.0], dtype=torch.float64)


def logistic_cdf(x, loc):
    return 1 / (1 + torch.exp(-(x - loc)))


def test_conditional_logistic_matches_the_inverse_cdf_and_the_sign_of_b():
    seed_everything(0)
    v = torch.rand(1000, 5, dtype=torch.float64)
    b = (torch.rand(1000, 5, dtype=torch.float64) < 0.5).double()
    z = conditional_logistic(LOGITS, b, v)
    assert ((z > 0) == (b > 0)).all()
    pi = torch.sigmoid(LOGITS)
    u = b * (1 - pi + v * pi) + (1 - b) * v * (1 - pi)  # the naive form of the docstring
    torch.testing.assert_close(z, LOGITS + torch.logit(u), rtol=1e-9, atol=1e-9)


def test_conditional_logistic_is_differentiable_along_the_conditional_path():
    logits = LOGITS.clone().requires_grad_()
    v, b = torch.full((5,), 0.3, dtype=torch.float64), torch.tensor([1.0, 0, 1, 0, 1]).double()
    conditional_logistic(logits, b, v).sum().backward()
    pi = torch.sigmoid(LOGITS)
    # b = 1: z̃ = log(1 + v / ((1 - v)(1 - π))), dz̃/dθ = π w / (1 + w), w = v / ((1 - v)(1 - π))
    w = 0.3 / (0.7 * (1 - pi))
    up = pi * w / (1 + w)
    # b = 0 by symmetry: z̃(θ, v) = -z̃_up(-θ, 1 - v), so dz̃/dθ = (1 - π) w' / (1 + w')
    w0 = 0.7 / (0.3 * pi)
    down = (1 - pi) * w0 / (1 + w0)
    torch.testing.assert_close(logits.grad, torch.where(b > 0, up, down), rtol=1e-10, atol=0)


def test_marginalizing_over_b_gives_the_unconditional_logistic():
    """b ~ Bernoulli(π), then z̃ | b: z̃ must be logistic(θ, 1), the law of z = θ + L that the
    Gumbel-softmax (binary Concrete) relaxes; and z̃ | b must be z | b. KS tests, 2 x 10^4 draws
    each (a shift of 0.03 in location is detected); Bonferroni over 5 + 2 tests."""
    seed_everything(1)
    n, theta = 20_000, torch.tensor(0.7, dtype=torch.float64)
    pi = torch.sigmoid(theta)
    b = (torch.rand(n, dtype=torch.float64) < pi).double()
    z = conditional_logistic(theta, b, torch.rand(n, dtype=torch.float64))
    cdf = lambda x: logistic_cdf(torch.as_tensor(x), theta).numpy()  # noqa: E731
    assert stats.kstest(z.numpy(), cdf).pvalue > FALSE_ALARM / 3
    for bit in (0.0, 1.0):  # the conditional law: the logistic truncated to one side of 0
        zb = z[b == bit].numpy()
        low = float(logistic_cdf(torch.tensor(0.0, dtype=torch.float64), theta))

        def cond(x, bit=bit, low=low):
            return (cdf(x) - low) / (1 - low) if bit else cdf(x) / low

        assert stats.kstest(zb, cond).pvalue > FALSE_ALARM / 3
    # and a shifted location is caught: the test has teeth
    assert stats.kstest(z.numpy() + 0.1, cdf).pvalue < FALSE_ALARM


def quadratic_problem():
    """f(b) = ||x - W b||² on n = 5 bits, and its exact gradient from the closed form
    E f = ||x - W π||² + Σ_i ||W_i||² π_i (1 - π_i)."""
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(4, generator=gen, dtype=torch.float64)

    def f(b):
        return ((x - b @ W.T) ** 2).sum(-1)

    th = LOGITS.clone().requires_grad_()
    pi = torch.sigmoid(th)
    value = ((x - W @ pi) ** 2).sum() + (W**2).sum(0) @ (pi * (1 - pi))
    (grad,) = torch.autograd.grad(value, th)
    return f, grad


@pytest.mark.parametrize("eta, temperature", [(1.0, 0.5), (2.0, 0.1), (0.0, 1.0)])
def test_rebar_is_unbiased(eta, temperature):
    """The mean of 10^5 REBAR samples agrees with the exact gradient (Bonferroni over 5
    coordinates, 1e-3 per test); its resolution is printed by check_mc."""
    seed_everything(4)
    f, grad = quadratic_problem()
    est = rebar_bernoulli(f, LOGITS, 100_000, temperature=temperature, eta=eta)
    check_mc("REBAR mean", est.samples, grad, false_alarm=FALSE_ALARM)


def test_a_rebar_without_the_correction_term_is_caught():
    """Dropping -η ∇c(z̃) makes the estimator biased; the same check must fail."""
    seed_everything(5)
    f, grad = quadratic_problem()
    u = torch.rand(100_000, 5, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    v = torch.rand(100_000, 5, dtype=torch.float64)
    copies = LOGITS.expand(100_000, -1).clone().requires_grad_()
    z_tilde_free = _rebar_surrogate(f, copies, u, v, torch.tensor(0.5), 1.0)
    (good,) = torch.autograd.grad(z_tilde_free.sum(), copies)
    check_mc("REBAR on replayed noise", good, grad, false_alarm=FALSE_ALARM)
    copies = LOGITS.expand(100_000, -1).clone().requires_grad_()
    z = copies + torch.logit(u)
    b = (z > 0).double()
    from torch.distributions import Bernoulli

    c_tilde = f(torch.sigmoid(conditional_logistic(copies, b, v) / 0.5))
    wrong = (f(b) - c_tilde).detach() * Bernoulli(logits=copies).log_prob(b).sum(-1)
    wrong = wrong + f(torch.sigmoid(z / 0.5))  # the -∇c(z̃) term left out
    (bad,) = torch.autograd.grad(wrong.sum(), copies)
    with pytest.raises(AssertionError):
        check_mc("REBAR without the correction", bad, grad, false_alarm=FALSE_ALARM, verbose=False)


def test_rebar_replays_its_formula_for_a_linear_f():
    """For f(b) = a·b, per sample: (a·b - η a·s(z̃/τ)) (b - π)
    + η a ⊙ (s'(z/τ) dz/dθ - s'(z̃/τ) dz̃/dθ) / τ, s the sigmoid and dz/dθ = 1."""
    seed_everything(6)
    a = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    u = torch.rand(50, 5, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    v = torch.rand(50, 5, dtype=torch.float64)
    copies = LOGITS.expand(50, -1).clone().requires_grad_()
    (g,) = torch.autograd.grad(
        _rebar_surrogate(lambda y: y @ a, copies, u, v, 0.5, 1.5).sum(), copies
    )
    th = LOGITS.clone().requires_grad_()
    z = th + torch.logit(u)
    b = (z > 0).double()
    zt = conditional_logistic(th.expand(50, -1), b, v)
    pi = torch.sigmoid(LOGITS)
    s, st = torch.sigmoid(z.detach() / 0.5), torch.sigmoid(zt.detach() / 0.5)
    # dz̃/dθ per row and coordinate, by the closed form of the test above
    vv = v
    w1 = vv / ((1 - vv) * (1 - pi))
    w0 = (1 - vv) / (vv * pi)
    dzt_rows = torch.where(b > 0, pi * w1 / (1 + w1), (1 - pi) * w0 / (1 + w0))
    expected = (b @ a - 1.5 * st @ a)[:, None] * (b - pi) + 1.5 * a * (
        s * (1 - s) - st * (1 - st) * dzt_rows
    ) / 0.5
    torch.testing.assert_close(g, expected, rtol=1e-9, atol=1e-12)


def test_mse_against_reference_is_unbiased_and_finds_the_bias():
    """Samples with bias 0.3 and variance 1, a reference with variance 4: the estimate of
    MSE_B = 0.09 + 1/B averages to it over 2000 repetitions (check_mc)."""
    seed_everything(7)
    reps, n, m, batch = 2000, 50, 40, 4
    g = 1.3 + torch.randn(reps, n, dtype=torch.float64)
    r = 1.0 + 2 * torch.randn(reps, m, dtype=torch.float64)
    est = torch.stack(
        [mse_against_reference(g[i, :, None], r[i, :, None], batch) for i in range(reps)]
    )
    check_mc("mse_against_reference", est, 0.09 + 1 / batch, false_alarm=FALSE_ALARM)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conditional_logistic([0.0], torch.ones(1), torch.ones(1)), TypeError, "logits"),
        (
            lambda: conditional_logistic(torch.zeros(1), torch.full((1,), 0.5), torch.ones(1)),
            ValueError,
            "x must",
        ),
        (
            lambda: conditional_logistic(torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)),
            ValueError,
            "v must",
        ),
        (
            lambda: conditional_logistic(torch.zeros(2), torch.ones(3), torch.ones(2)),
            ValueError,
            "broadcast",
        ),
        (
            lambda: conditional_logistic(
                torch.zeros(2), torch.ones(2, dtype=torch.int64), torch.ones(2)
            ),
            TypeError,
            "x must",
        ),
        (lambda: rebar_bernoulli("f", torch.zeros(2), 4), TypeError, "f must be callable"),
        (lambda: rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(2, 2), 4), ValueError, "1-D"),
        (
            lambda: rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(2), 1),
            ValueError,
            "num_samples",
        ),
        (
            lambda: rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(2), 4, temperature=0.0),
            ValueError,
            "temperature",
        ),
        (
            lambda: rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(2), 4, eta=math.nan),
            ValueError,
            "eta",
        ),
        (
            lambda: rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(2), 4, eta="1"),
            TypeError,
            "eta",
        ),
        (
            lambda: mse_against_reference(torch.zeros(3, 2), torch.zeros(3, 3), 2),
            ValueError,
            "reference",
        ),
        (
            lambda: mse_against_reference(torch.zeros(3, 2), torch.zeros(3, 2), 0),
            ValueError,
            "batch",
        ),
        (
            lambda: mse_against_reference(torch.zeros(1, 2), torch.zeros(3, 2), 2),
            ValueError,
            "samples must hold",
        ),
        (
            lambda: mse_against_reference(torch.zeros(3, 2), torch.zeros(1, 2), 2),
            ValueError,
            "reference must hold",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_parts_recombine_to_the_estimator_on_the_same_noise():
    """g(η) = a - η c, sample by sample, on replayed noise (the same draws of u and v)."""
    f, _ = quadratic_problem()
    seed_everything(7)
    a, c = rebar_bernoulli(f, LOGITS, 50, temperature=0.4, parts=True)
    seed_everything(7)
    g = rebar_bernoulli(f, LOGITS, 50, temperature=0.4, eta=0.7)
    torch.testing.assert_close(a.samples - 0.7 * c.samples, g.samples, rtol=1e-10, atol=1e-12)


def test_marginal_ztilde_is_unbiased_but_noisier():
    """z̃ drawn ignoring x keeps REBAR unbiased, with a larger variance: the comparison of
    variances, not a check of the mean, is what detects the missing conditioning."""
    f, grad = quadratic_problem()
    seed_everything(8)
    cond = rebar_bernoulli(f, LOGITS, 20_000, temperature=0.5)
    marg = rebar_bernoulli(f, LOGITS, 20_000, temperature=0.5, conditional=False)
    check_mc("REBAR with a marginal z̃ is unbiased", marg.samples, grad, false_alarm=FALSE_ALARM)
    v_cond = ((cond.samples - cond.mean) ** 2).sum(-1)
    v_marg = ((marg.samples - marg.mean) ** 2).sum(-1)
    se = math.sqrt(v_cond.var() / len(v_cond) + v_marg.var() / len(v_marg))
    assert v_marg.mean() - v_cond.mean() > 4 * se


# ---------------------------------------------------------------- RELAX

STRICT = 1e-6  # false-alarm rate of the RELAX tests


def toy(t=0.45, logit=0.3):
    """Grathwohl et al.'s toy: f(x) = (x - t)², one bit, π = sigmoid(logit);
    d/dlogit E f = π (1 - π) ((1 - t)² - t²) = π (1 - π) (1 - 2t)."""
    logits = torch.tensor([logit], dtype=torch.float64)
    pi = torch.sigmoid(logits)
    return (lambda x: ((x - t) ** 2).sum(-1)), logits, pi * (1 - pi) * (1 - 2 * t)


def zero_linear(n):
    net = torch.nn.Linear(n, 1).double()
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    return net, (lambda y: net(y)[:, 0])


def test_relax_with_the_relaxed_f_as_control_is_rebar():
    """control = η f(relaxed bits) reproduces REBAR sample by sample on the same noise."""
    f, _ = quadratic_problem()
    seed_everything(21)
    rebar = rebar_bernoulli(f, LOGITS, 50, temperature=0.4, eta=0.7)
    seed_everything(21)
    relax = relax_bernoulli(f, LOGITS, lambda y: 0.7 * f(y), 50, temperature=0.4)
    torch.testing.assert_close(relax.samples, rebar.samples, rtol=1e-12, atol=1e-12)


def test_relax_is_unbiased_with_a_fixed_neural_control():
    """A random two-layer network as the control, n = 5 bits, 10^5 samples."""
    f, grad = quadratic_problem()
    seed_everything(22)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).double()
    est = relax_bernoulli(f, LOGITS, lambda y: 10 * net(y)[:, 0], 100_000, temperature=0.3)
    check_mc("RELAX, fixed network", est.samples, grad, false_alarm=STRICT)


def test_relax_with_the_coefficient_not_held_constant_is_caught():
    """Letting θ flow through c(z̃) in the coefficient of ∇ log p(x) biases the estimator;
    the check that passes the correct surrogate on the same noise fails."""
    f, grad = quadratic_problem()
    seed_everything(23)
    u = torch.rand(20_000, 5, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    v = torch.rand(20_000, 5, dtype=torch.float64)

    def control(y):
        return f(y)

    def rows(surrogate):
        copies = LOGITS.expand(20_000, -1).clone().requires_grad_()
        (g,) = torch.autograd.grad(surrogate(copies).sum(), copies)
        return g

    good = rows(lambda c: _relax_surrogate(f, control, c, u, v, 0.5))
    check_mc("RELAX on replayed noise", good, grad, false_alarm=STRICT)

    def wrong(copies):
        z = copies + torch.logit(u)
        x = (z > 0).double()
        c_tilde = control(torch.sigmoid(conditional_logistic(copies, x, v) / 0.5))
        log_p = torch.distributions.Bernoulli(logits=copies).log_prob(x).sum(-1)
        return (f(x) - c_tilde) * log_p + control(torch.sigmoid(z / 0.5)) - c_tilde

    with pytest.raises(AssertionError):
        check_mc("RELAX, coefficient not constant", rows(wrong), grad, false_alarm=STRICT)


def test_relax_variance_loss_is_the_mean_squared_norm_and_its_gradient():
    """L = mean_n ||g_n||² on the draws of the estimate, and dL/dψ (autograd through
    create_graph) equals a central difference of L in ψ on replayed noise."""
    f, _ = quadratic_problem()
    psi = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    seed_everything(24)
    est, loss = relax_bernoulli(f, LOGITS, lambda y: psi * f(y), 30, variance_loss=True)
    torch.testing.assert_close(loss.detach(), (est.samples**2).sum(-1).mean())
    (dpsi,) = torch.autograd.grad(loss, psi)
    h, values = 1e-5, []
    for value in (0.6 + h, 0.6 - h):
        seed_everything(24)
        values.append(
            relax_bernoulli(f, LOGITS, lambda y, p=value: p * f(y), 30, variance_loss=True)[1]
        )
    torch.testing.assert_close(dpsi, (values[0] - values[1]).detach() / (2 * h), rtol=1e-6, atol=0)


def test_relax_variance_loss_trains_the_temperature_too():
    f, _ = quadratic_problem()
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    _, loss = relax_bernoulli(f, LOGITS, f, 8, temperature=tau, variance_loss=True)
    (dtau,) = torch.autograd.grad(loss, tau)
    assert torch.isfinite(dtau) and dtau != 0


@pytest.mark.parametrize("t", [0.45, 0.499])
def test_training_the_control_keeps_relax_unbiased_and_cuts_its_variance(t):
    """The toy E[(x - t)²]: a linear control started at zero (RELAX = REINFORCE there),
    trained for 40 steps of sign descent on the variance loss (32 samples each). Before and
    after, the mean of 2 x 10^4 samples agrees with π(1 - π)(1 - 2t); the variance falls by
    far more than the asserted factor 10 (a thousand-fold or more with this seed), far beyond
    the few percent relative standard error of each measured variance."""
    f, logits, grad = toy(t)
    seed_everything(25)
    net, control = zero_linear(1)
    before = relax_bernoulli(f, logits, control, 20_000)
    for step in range(40):  # sign descent, step 0.04 · 0.9^k (no torch.optim: its first
        # step imports torch._dynamo, seconds that this test need not spend)
        _, loss = relax_bernoulli(f, logits, control, 32, variance_loss=True)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for param, step_grad in zip(net.parameters(), grads):
                param -= 0.04 * 0.9**step * step_grad.sign()
    after = relax_bernoulli(f, logits, control, 20_000)
    scale = 0.025  # errors judged against the gradient at t = 0.45 (0.0244), also at 0.499
    for est in (before, after):
        check_mc("RELAX on the toy", est.samples, grad, false_alarm=STRICT, scale=scale)
    assert after.samples.var() * 10 < before.samples.var()


def test_relax_is_unbiased_on_the_toy_with_a_fixed_control():
    """A fixed affine control c(y) = 0.25 + 0.01 (y - 0.5), near f's mean, at t = 0.499:
    exact gradient π(1 - π)/500, resolved to a few percent of itself."""
    f, logits, grad = toy(0.499)
    seed_everything(26)
    est = relax_bernoulli(f, logits, lambda y: 0.25 + 0.01 * (y[:, 0] - 0.5), 100_000)
    check_mc("RELAX, toy, fixed control", est.samples, grad, false_alarm=STRICT)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: relax_bernoulli(lambda x: x.sum(-1), torch.zeros(2), 3, 4), TypeError, "control"),
        (
            lambda: relax_bernoulli(lambda x: x.sum(-1), torch.zeros(2, 2), lambda y: y, 4),
            ValueError,
            "logits",
        ),
        (
            lambda: relax_bernoulli(lambda x: x.sum(-1), torch.zeros(2), lambda y: y, 4),
            ValueError,
            "control must map",
        ),
        (
            lambda: relax_bernoulli(lambda x: x.sum(-1), torch.zeros(2), lambda y: y[:, 0], 1),
            ValueError,
            "num_samples",
        ),
        (
            lambda: relax_bernoulli(
                lambda x: x.sum(-1), torch.zeros(2), lambda y: y[:, 0], 4, temperature=-1.0
            ),
            ValueError,
            "temperature",
        ),
        (
            lambda: relax_bernoulli(
                lambda x: x.sum(-1), torch.zeros(2), lambda y: y[:, 0], 4, temperature=torch.ones(2)
            ),
            ValueError,
            "temperature",
        ),
        (
            lambda: relax_bernoulli(
                lambda x: x.sum(-1), torch.zeros(2), lambda y: y[:, 0], 4, variance_loss=1
            ),
            TypeError,
            "variance_loss",
        ),
        (
            lambda: relax_bernoulli(lambda x: x.sum(-1), torch.zeros(2), lambda y: y[:, 0] / 0, 4),
            ValueError,
            "control",
        ),
        (lambda: relax_bernoulli(None, torch.zeros(2), lambda y: y[:, 0], 4), TypeError, "f must"),
    ],
)
def test_relax_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
