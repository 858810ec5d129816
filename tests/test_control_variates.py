"""Tests of companion.control_variates.

Exact layer in float64: closed forms (the optimal coefficient, the controlled samples, the
Gaussian score against autograd, the delta-method means against Gauss–Hermite quadrature, a
quadratic f whose variance the delta method removes entirely, the enumerated gradient against
autograd, sum-and-sample with one outcome left to sample). Statistical layer: means checked
with check_mc at a false-alarm rate of 1e-6 per test (Bonferroni over coordinates inside
check_mc), each test seeded in its body; an injected error (a wrong control mean, a biased
control) is shown to fail the same check.
"""

import math

import pytest
import torch
from torch.distributions import Normal

from companion.checks import check_mc
from companion.control_variates import (
    VarianceNormalizer,
    _gaussian_score,
    controlled,
    delta_pathwise_control_variate,
    delta_score_control_variate,
    enumerated_gradient,
    optimal_coefficient,
    sum_and_sample,
)
from companion.quadrature import gauss_hermite
from companion.seeding import seed_everything

FALSE_ALARM = 1e-6
DT = torch.float64
A_COEF = torch.tensor([1.5, -0.7, 2.0], dtype=DT)
LOC = torch.tensor([0.3, -0.5, 0.8], dtype=DT)
SCALE = torch.tensor([0.7, 1.2, 0.4], dtype=DT)


def logistic_f(x):
    """Σ_d log sigmoid(a_d x_d) + 0.3 x_0 x_1: smooth, not quadratic, with a coupling term."""
    return torch.nn.functional.logsigmoid(x * A_COEF).sum(-1) + 0.3 * x[..., 0] * x[..., 1]


def exact_gradient(loc=LOC, scale=SCALE):
    """∇_(μ,σ) E[logistic_f] under N(μ, diag σ²): separable terms by 80-node Gauss–Hermite
    (differentiated by autograd), the coupling term in closed form E = 0.3 μ_0 μ_1."""
    nodes, weights = gauss_hermite(80)
    mu, sd = loc.clone().requires_grad_(), scale.clone().requires_grad_()
    x = mu + sd * nodes[:, None]  # (K, D)
    value = (weights[:, None] * torch.nn.functional.logsigmoid(x * A_COEF)).sum()
    value = value + 0.3 * mu[0] * mu[1]
    return torch.cat(torch.autograd.grad(value, (mu, sd)))


def score_gradients(x, loc=LOC, scale=SCALE):
    return logistic_f(x)[:, None] * _gaussian_score(x, loc, scale)


def pathwise_gradients(eps, loc=LOC, scale=SCALE):
    x = (loc + scale * eps).requires_grad_()
    (grad,) = torch.autograd.grad(logistic_f(x).sum(), x)
    return torch.cat([grad, grad * eps], dim=-1)


# ---------------------------------------------------------------- the coefficient


def test_optimal_coefficient_matches_its_formula_per_coordinate():
    seed_everything(0)
    g = torch.randn(200, 3, dtype=DT)
    phi = 0.5 * g + torch.randn(200, 3, dtype=DT)
    phi[:, 2] = 1.0  # no variation: beta = 0
    beta = optimal_coefficient(g, phi)
    gc, pc = g - g.mean(0), phi - phi.mean(0)
    expected = (gc * pc).sum(0) / (pc * pc).sum(0)
    torch.testing.assert_close(beta[:2], expected[:2], rtol=1e-12, atol=0)
    assert beta[2] == 0
    assert optimal_coefficient(g[:, 0], phi[:, 0]).shape == ()


def test_optimal_coefficient_minimizes_the_sample_variance():
    seed_everything(1)
    g, phi = torch.randn(500, dtype=DT), torch.randn(500, dtype=DT)
    phi = phi + 0.8 * g
    beta = optimal_coefficient(g, phi)
    var = [(g - b * phi).var() for b in (beta - 0.01, beta, beta + 0.01)]
    assert var[1] < var[0] and var[1] < var[2]


def test_controlled_replays_its_formula():
    seed_everything(2)
    g, phi = torch.randn(10, 2, dtype=DT), torch.randn(10, 2, dtype=DT)
    mean, beta = torch.tensor([0.1, -0.2], dtype=DT), torch.tensor([2.0, 0.5], dtype=DT)
    est = controlled(g, phi, mean, beta)
    torch.testing.assert_close(est.samples, g - beta * (phi - mean), rtol=0, atol=0)
    torch.testing.assert_close(controlled(g, phi, mean).samples, g - phi + mean)


# ---------------------------------------------------------------- the delta method


def test_gaussian_score_matches_autograd():
    seed_everything(3)
    x = LOC + SCALE * torch.randn(4, 3, dtype=DT)
    mu, sd = LOC.clone().requires_grad_(), SCALE.clone().requires_grad_()
    rows = []
    for n in range(4):
        rows.append(torch.cat(torch.autograd.grad(Normal(mu, sd).log_prob(x[n]).sum(), (mu, sd))))
    torch.testing.assert_close(_gaussian_score(x, LOC, SCALE), torch.stack(rows))


@pytest.mark.parametrize("which", ["score", "pathwise"])
def test_delta_mean_is_exact_by_quadrature(which):
    """D = 1, f(x) = log sigmoid(1.5 x) (not quadratic): E[φ] from 80-node Gauss–Hermite
    equals the closed form phi_mean (φ is a polynomial in x times at most a quadratic, so the
    rule is exact up to rounding)."""
    f = lambda x: torch.nn.functional.logsigmoid(1.5 * x).sum(-1)  # noqa: E731
    loc, scale = torch.tensor([0.4], dtype=DT), torch.tensor([0.9], dtype=DT)
    nodes, weights = gauss_hermite(80)
    if which == "score":
        phi, mean = delta_score_control_variate(f, loc, scale, loc + scale * nodes[:, None])
    else:
        phi, mean = delta_pathwise_control_variate(f, loc, scale, nodes[:, None])
    torch.testing.assert_close(weights @ phi, mean, rtol=1e-10, atol=1e-12)
    # and the closed form itself: f'(μ) and f''(μ) σ
    s = torch.sigmoid(1.5 * loc)
    expected = torch.cat([1.5 * (1 - s), -(1.5**2) * s * (1 - s) * scale])
    torch.testing.assert_close(mean, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("diagonal", [False, True])
def test_delta_score_control_variate_has_its_mean_and_leaves_the_gradient_unchanged(diagonal):
    """10^5 draws, D = 3: the mean of φ is phi_mean, and g - (φ - E φ) averages to the exact
    gradient (quadrature); with the full Hessian the controlled estimate is far less noisy."""
    seed_everything(4)
    x = LOC + SCALE * torch.randn(100_000, 3, dtype=DT)
    phi, mean = delta_score_control_variate(logistic_f, LOC, SCALE, x, diagonal=diagonal)
    check_mc("E[phi] (score, delta)", phi, mean, false_alarm=FALSE_ALARM, verbose=False)
    g = score_gradients(x)
    est = controlled(g, phi, mean)
    grad = exact_gradient()
    check_mc("controlled score gradient", est.samples, grad, false_alarm=FALSE_ALARM, verbose=False)
    if not diagonal:  # a strong control here: the variance drops by over 10x (~180x)
        assert est.samples.var(0).sum() * 10 < g.var(0).sum()


def test_delta_pathwise_control_variate_has_its_mean_and_leaves_the_gradient_unchanged():
    seed_everything(5)
    eps = torch.randn(100_000, 3, dtype=DT)
    phi, mean = delta_pathwise_control_variate(logistic_f, LOC, SCALE, eps)
    check_mc("E[phi] (pathwise, delta)", phi, mean, false_alarm=FALSE_ALARM, verbose=False)
    g = pathwise_gradients(eps)
    est = controlled(g, phi, mean)
    check_mc("controlled pathwise", est.samples, exact_gradient(), false_alarm=FALSE_ALARM)
    assert est.samples.var(0).sum() * 5 < g.var(0).sum()  # about 17x here


def quadratic():
    """f(x) = xᵀ A x + bᵀ x: E = μᵀ A μ + Σ_d A_dd σ_d² + bᵀ μ, so
    ∇_μ = (A + Aᵀ) μ + b and ∇_σ = 2 diag(A) σ."""
    gen = torch.Generator().manual_seed(6)
    A = torch.randn(3, 3, generator=gen, dtype=DT)
    b = torch.randn(3, generator=gen, dtype=DT)

    def f(x):
        return ((x @ A) * x).sum(-1) + x @ b

    return f, torch.cat([(A + A.T) @ LOC + b, 2 * torch.diagonal(A) * SCALE])


def test_the_delta_method_removes_all_variance_for_a_quadratic_f():
    """f̃ = f: with β = 1 every controlled sample equals the exact gradient (score and
    pathwise), a check with no statistical slack."""
    f, grad = quadratic()
    seed_everything(7)
    eps = torch.randn(50, 3, dtype=DT)
    x = LOC + SCALE * eps
    phi, mean = delta_score_control_variate(f, LOC, SCALE, x)
    g = f(x)[:, None] * _gaussian_score(x, LOC, SCALE)
    est = controlled(g, phi, mean, 1.0)
    torch.testing.assert_close(est.samples, grad.expand(50, -1), rtol=1e-10, atol=1e-10)
    assert est.stderr.max() < 1e-10 < g.std(0).min()
    phi, mean = delta_pathwise_control_variate(f, LOC, SCALE, eps)
    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(f(xr).sum(), xr)
    est = controlled(torch.cat([gx, gx * eps], -1), phi, mean)
    torch.testing.assert_close(est.samples, grad.expand(50, -1), rtol=1e-10, atol=1e-10)


def test_a_wrong_control_mean_is_caught():
    """Injected errors fail the mean check that the correct control passes: (1) phi_mean
    shifted by 10% of the gradient's norm; (2) a biased control, the score CV whose mean
    leaves out the second-order term diag(H) σ (the mean of the first-order Taylor model)."""
    seed_everything(8)
    x = LOC + SCALE * torch.randn(100_000, 3, dtype=DT)
    phi, mean = delta_score_control_variate(logistic_f, LOC, SCALE, x)
    g, grad = score_gradients(x), exact_gradient()
    check_mc("correct", controlled(g, phi, mean).samples, grad, false_alarm=FALSE_ALARM)
    shifted = mean + 0.1 * grad.norm()
    with pytest.raises(AssertionError):
        check_mc("shifted", controlled(g, phi, shifted).samples, grad, false_alarm=FALSE_ALARM)
    biased = torch.cat([mean[:3], torch.zeros(3, dtype=DT)])
    with pytest.raises(AssertionError):
        check_mc("biased", controlled(g, phi, biased).samples, grad, false_alarm=FALSE_ALARM)


def test_a_coefficient_from_pilot_draws_keeps_the_estimate_unbiased():
    """β̂* from separate draws (a pilot of 1000), applied to 10^5 fresh ones."""
    seed_everything(9)
    x = LOC + SCALE * torch.randn(1000, 3, dtype=DT)
    phi, mean = delta_score_control_variate(logistic_f, LOC, SCALE, x)
    beta = optimal_coefficient(score_gradients(x), phi)
    x = LOC + SCALE * torch.randn(100_000, 3, dtype=DT)
    phi, mean = delta_score_control_variate(logistic_f, LOC, SCALE, x)
    est = controlled(score_gradients(x), phi, mean, beta)
    check_mc("pilot beta", est.samples, exact_gradient(), false_alarm=FALSE_ALARM)


# ---------------------------------------------------------------- conditioning

VALUES = torch.tensor([3.0, -1.0, 0.5, 2.0, 4.0, -2.0], dtype=DT)
LOGITS = torch.tensor([2.0, 1.0, 0.5, -0.5, -1.0, -2.0], dtype=DT)


def table_f(k):
    return VALUES[k]


def test_enumerated_gradient_matches_autograd():
    logits = LOGITS.clone().requires_grad_()
    (expected,) = torch.autograd.grad(torch.softmax(logits, 0) @ VALUES, logits)
    torch.testing.assert_close(enumerated_gradient(table_f, LOGITS), expected)


def test_sum_and_sample_with_one_outcome_left_is_exact():
    """num_summed = K - 1: q is a point mass, every sample is the exact gradient."""
    seed_everything(10)
    est = sum_and_sample(table_f, LOGITS, 5, 4)
    torch.testing.assert_close(est.samples, enumerated_gradient(table_f, LOGITS).expand(4, -1))


def test_sum_and_sample_without_summing_is_the_score_function():
    """num_summed = 0 replays the plain score function (f(k) - b)(e_k - π) on the same draws."""
    seed_everything(11)
    est = sum_and_sample(table_f, LOGITS, 0, 20, baseline=0.7)
    seed_everything(11)
    k = torch.distributions.Categorical(logits=LOGITS).sample((20,))
    probs = torch.softmax(LOGITS, 0)
    expected = (VALUES[k] - 0.7)[:, None] * (torch.eye(6, dtype=DT)[k] - probs)
    torch.testing.assert_close(est.samples, expected)


@pytest.mark.parametrize("num_summed, baseline", [(1, 0.0), (2, 0.0), (3, 1.5)])
def test_sum_and_sample_is_unbiased(num_summed, baseline):
    seed_everything(12)
    est = sum_and_sample(table_f, LOGITS, num_summed, 100_000, baseline=baseline)
    check_mc("sum and sample", est.samples, enumerated_gradient(table_f, LOGITS), false_alarm=1e-6)


def test_a_biased_sum_and_sample_is_caught():
    """Dropping the factor 1 - π_C on the sampled term (an easy slip) is detected."""
    seed_everything(13)
    est = sum_and_sample(table_f, LOGITS, 2, 100_000)
    probs = torch.softmax(LOGITS, 0)
    top = torch.topk(probs, 2).indices
    summed = (probs[top] * VALUES[top]) @ (torch.eye(6, dtype=DT)[top] - probs)
    wrong = summed + (est.samples - summed) / (1 - probs[top].sum())
    with pytest.raises(AssertionError):
        check_mc("wrong", wrong, enumerated_gradient(table_f, LOGITS), false_alarm=1e-6)


def test_sum_and_sample_beats_the_score_function_at_equal_evaluations():
    """k = 2 summed + m = 4 sampled vs 6 plain score-function draws: exact variances of the
    mean by enumeration, (1 - π_C)² tr Var_q[g] / m against tr Var_π[g] / (k + m), and the
    measured variance of 2 x 10^4 replicates agrees with the exact one (the relative stderr
    of the measured variance is 0.8% here, so a 10% band is 12 standard errors)."""
    k, m, K = 2, 4, 6
    probs = torch.softmax(LOGITS, 0)
    g = VALUES[:, None] * (torch.eye(K, dtype=DT) - probs)  # g(k), (K, K)
    mean = probs @ g
    plain = (probs @ ((g - mean) ** 2).sum(-1)) / (k + m)
    top = torch.topk(probs, k).indices
    rest = torch.ones(K, dtype=torch.bool)
    rest[top] = False
    q = probs[rest] / probs[rest].sum()
    gq = g[rest]
    rb = (1 - probs[top].sum()) ** 2 * (q @ ((gq - q @ gq) ** 2).sum(-1)) / m
    assert rb < 0.5 * plain
    seed_everything(14)
    reps = 20_000
    est = sum_and_sample(table_f, LOGITS, k, m * reps)
    means = est.samples.reshape(reps, m, K).mean(1)
    measured = ((means - mean) ** 2).sum(-1).mean()
    assert abs(measured / rb - 1) < 0.1


# ---------------------------------------------------------------- NVIL


def test_variance_normalizer_follows_its_recursion():
    norm = VarianceNormalizer(decay=0.75)
    first = torch.tensor([1.0, 3.0, 5.0], dtype=DT)  # mean 3, var 4
    torch.testing.assert_close(norm.update(first), (first - 3) / 2)
    second = torch.tensor([0.0, 0.2], dtype=DT)  # mean 0.1, var 0.02
    c, v = 0.75 * 3 + 0.25 * 0.1, 0.75 * 4 + 0.25 * 0.02
    torch.testing.assert_close(norm.update(second), (second - c) / math.sqrt(v))
    assert float(norm.mean) == pytest.approx(c) and float(norm.variance) == pytest.approx(v)
    small = VarianceNormalizer(decay=0.0)
    out = small.update(torch.tensor([0.1, 0.3], dtype=DT))  # sd < 1: centred only
    torch.testing.assert_close(out, torch.tensor([-0.1, 0.1], dtype=DT))


# ---------------------------------------------------------------- bad input

F = logistic_f
Z3 = torch.zeros(3, dtype=DT)
O3 = torch.ones(3, dtype=DT)
X = torch.zeros(4, 3, dtype=DT)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: optimal_coefficient(torch.zeros(1), torch.zeros(1)), ValueError, "g must"),
        (lambda: optimal_coefficient(torch.zeros(3), torch.zeros(4)), ValueError, "same shape"),
        (lambda: optimal_coefficient("a", torch.zeros(4)), TypeError, "g must"),
        (lambda: controlled(X, X, torch.zeros(2)), ValueError, "phi_mean"),
        (lambda: controlled(X, X, Z3, torch.zeros(2)), ValueError, "beta"),
        (lambda: controlled(X, X, Z3, math.nan), ValueError, "beta"),
        (lambda: controlled(X, X.clone().fill_(math.inf), Z3), ValueError, "phi"),
        (lambda: delta_score_control_variate(1, Z3, O3, X), TypeError, "f must"),
        (lambda: delta_score_control_variate(F, [0.0], O3, X), TypeError, "loc"),
        (lambda: delta_score_control_variate(F, Z3, -O3, X), ValueError, "scale"),
        (lambda: delta_score_control_variate(F, Z3, O3[:2], X), ValueError, "scale"),
        (lambda: delta_score_control_variate(F, Z3, O3, X[:, :2]), ValueError, "x must"),
        (lambda: delta_score_control_variate(F, Z3, O3, X, diagonal=1), TypeError, "diagonal"),
        (lambda: delta_pathwise_control_variate(F, Z3, O3, "e"), TypeError, "eps"),
        (lambda: delta_pathwise_control_variate(F, Z3[None], O3, X), ValueError, "loc"),
        (
            lambda: delta_pathwise_control_variate(lambda x: x, Z3, O3, X),
            ValueError,
            "one value per sample",
        ),
        (lambda: enumerated_gradient(table_f, LOGITS[:1]), ValueError, "logits"),
        (lambda: enumerated_gradient(None, LOGITS), TypeError, "f must"),
        (lambda: enumerated_gradient(table_f, [1.0, 2.0]), TypeError, "logits"),
        (lambda: sum_and_sample(table_f, LOGITS, 6, 4), ValueError, "num_summed"),
        (lambda: sum_and_sample(table_f, LOGITS, -1, 4), ValueError, "num_summed"),
        (lambda: sum_and_sample(table_f, LOGITS, 1.0, 4), TypeError, "num_summed"),
        (lambda: sum_and_sample(table_f, LOGITS, 1, 1), ValueError, "num_samples"),
        (lambda: sum_and_sample(table_f, LOGITS, 1, 4, baseline="b"), TypeError, "baseline"),
        (lambda: sum_and_sample(table_f, LOGITS, 1, 4, baseline=math.inf), ValueError, "baseline"),
        (lambda: VarianceNormalizer(decay=1.0), ValueError, "decay"),
        (lambda: VarianceNormalizer(decay="0.9"), TypeError, "decay"),
        (lambda: VarianceNormalizer().update(torch.zeros(2, 2)), ValueError, "signal"),
        (lambda: VarianceNormalizer().update(torch.tensor([math.nan])), ValueError, "signal"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
