"""Tests of companion.measure_valued: exact replays of fixed noise, then statistical checks.

Exact layer: with the Rayleigh draws w and the normal draws eps given, every per-sample
estimate is a hand-derived formula, compared in float64 at rounding level. Statistical layer:
companion.checks at a false-alarm rate of 1e-3 per check (Bonferroni over coordinates); each
test seeds in its own body and states the smallest bias it detects (about 3.3 standard errors).

Rayleigh(1) moments used below: E w = √(π/2), E w² = 2, E w³ = 3√(π/2), E w⁴ = 8, so
Var w = 2 - π/2. For f = x² under N(μ, σ²):
    coupled    g = 4 μ w / √(2π)                   Var = 16μ²/π - 4μ²
    uncoupled  g = ((μ + σw⁺)² - (μ - σw⁻)²) / (σ√(2π))   Var = 8μ²/π - 2μ² + 4σ²/π
"""

import math

import pytest
import torch

from companion.checks import check_close
from companion.measure_valued import (
    RAYLEIGH,
    measure_valued_gaussian_mean,
    measure_valued_gaussian_scale,
)
from companion.montecarlo import Estimate, sample_variance, summarize
from companion.seeding import seed_everything

DT = torch.float64
ROOT_2PI = math.sqrt(2 * math.pi)


def square(x):
    return x**2


def _t(*values):
    return torch.tensor(values, dtype=DT)


# ---------------------------------------------------------------- exact layer


def test_coupled_replay_is_4_mu_w_over_root_2pi_for_a_square():
    w = _t(0.1, 0.7, 1.3, 2.9)
    est = measure_valued_gaussian_mean(
        square, 1.5, 0.4, 4, noise=(torch.zeros(4, dtype=DT), w, None)
    )
    assert isinstance(est, Estimate)
    assert est.samples.shape == (4, 1) and est.mean.shape == (1,)
    # (μ + σw)² - (μ - σw)² = 4μσw; divided by σ√(2π)
    check_close(
        "coupled replay", est.samples[:, 0], 4 * 1.5 * w / ROOT_2PI, rtol=1e-13, verbose=False
    )


def test_uncoupled_replay_uses_both_draws():
    mu, sigma = -0.3, 2.0
    w_plus, w_minus = _t(0.2, 1.1, 2.5), _t(0.9, 0.4, 1.7)
    est = measure_valued_gaussian_mean(
        square, mu, sigma, 3, coupled=False, noise=(torch.zeros(3, dtype=DT), w_plus, w_minus)
    )
    expected = ((mu + sigma * w_plus) ** 2 - (mu - sigma * w_minus) ** 2) / (sigma * ROOT_2PI)
    check_close("uncoupled replay", est.samples[:, 0], expected, rtol=1e-13, verbose=False)
    check_close("mean of the replay", est.mean, expected.mean(), rtol=1e-13, verbose=False)
    check_close(
        "stderr of the replay", est.stderr, expected.std() / math.sqrt(3), rtol=1e-12, verbose=False
    )


def test_multivariate_replay_keeps_the_other_coordinates_at_the_base_sample():
    # f(x) = x_0 x_1: for d = 0 the other coordinate stays at x_1 = μ_1 + σ_1 ε_1, so
    # g_0 = ((μ0 + σ0 w) - (μ0 - σ0 w)) x_1 / (σ0 √(2π)) = 2 w x_1 / √(2π), and likewise g_1.
    loc, scale = _t(0.5, -1.0), _t(1.5, 0.5)
    eps = _t(0.3, -1.2, 1.0, 0.4).reshape(2, 2)
    w = _t(0.8, 1.9, 0.6, 2.2).reshape(2, 2)
    est = measure_valued_gaussian_mean(
        lambda x: x[:, 0] * x[:, 1], loc, scale, 2, noise=(eps, w, None)
    )
    base = loc + scale * eps  # (N, 2)
    expected = torch.stack([2 * w[:, 0] * base[:, 1], 2 * w[:, 1] * base[:, 0]], dim=1) / ROOT_2PI
    assert est.mean.shape == (2,)
    check_close("multivariate replay", est.samples, expected, rtol=1e-13, verbose=False)


def test_a_step_function_gives_c_or_zero():
    # c > μ: the negative side μ - σw never crosses it, the positive side does when w > z.
    mu, sigma, c = 0.0, 1.0, 1.0
    w = _t(0.5, 1.5, 3.0)
    est = measure_valued_gaussian_mean(
        lambda x: (x > c).to(DT), mu, sigma, 3, noise=(torch.zeros(3, dtype=DT), w, None)
    )
    check_close(
        "step replay",
        est.samples[:, 0],
        _t(0.0, 1.0, 1.0) / (sigma * ROOT_2PI),
        rtol=1e-14,
        verbose=False,
    )


def test_inputs_are_not_modified_and_noise_is_global_when_not_given():
    loc = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    seed_everything(3)
    first = measure_valued_gaussian_mean(lambda x: x.sum(-1), loc, torch.ones(2, dtype=DT), 50)
    seed_everything(3)
    second = measure_valued_gaussian_mean(lambda x: x.sum(-1), loc, torch.ones(2, dtype=DT), 50)
    assert torch.equal(first.samples, second.samples)
    assert loc.grad is None and not first.samples.requires_grad


# ---------------------------------------------------------------- statistical layer


@pytest.mark.parametrize("coupled", [True, False])
def test_square_is_unbiased_with_the_derived_variance(coupled):
    """E g = 2μ and Var g as in the module docstring. Detects a bias of about 0.005 in the
    mean and a relative error of about 1.5% in the variance (N = 2 × 10⁵)."""
    mu, sigma = 1.0, 1.5
    seed_everything(0)
    est = measure_valued_gaussian_mean(square, mu, sigma, 200_000, coupled=coupled)
    check_close("E g = 2μ", est.mean, 2 * mu, stderr=est.stderr)
    var = sample_variance(est.samples)
    exact = (
        16 * mu**2 / math.pi - 4 * mu**2
        if coupled
        else 8 * mu**2 / math.pi - 2 * mu**2 + 4 * sigma**2 / math.pi
    )
    check_close("Var g", var.mean, exact, stderr=var.stderr)


def test_step_function_gradient_is_the_normal_density():
    """∂μ P(x > c) = φ((c - μ)/σ)/σ at three thresholds at once: with x of shape (3,) and
    f(x) = Σ_d 1[x_d > c_d], coordinate d of the gradient is the d-th threshold's. Detects
    about 0.002."""
    mu, sigma = 0.5, 1.5
    c = _t(-1.0, 0.5, 2.5)
    seed_everything(1)
    est = measure_valued_gaussian_mean(
        lambda x: (x > c).to(DT).sum(-1),
        torch.full((3,), mu, dtype=DT),
        torch.full((3,), sigma, dtype=DT),
        100_000,
    )
    z = (c - mu) / sigma
    check_close(
        "∂μ P(x > c)", est.mean, torch.exp(-(z**2) / 2) / (ROOT_2PI * sigma), stderr=est.stderr
    )


def test_multivariate_cosine_matches_the_closed_form():
    """E cos(ω·x) = cos(ω·μ) exp(-Σ ω_d² σ_d² / 2), so ∂μ_d = -ω_d sin(ω·μ) exp(...);
    three coordinates, detects about 0.01."""
    loc, scale, omega = _t(0.3, -0.7, 1.1), _t(0.5, 1.0, 0.8), _t(1.0, 0.5, 2.0)
    seed_everything(2)
    est = measure_valued_gaussian_mean(lambda x: torch.cos(x @ omega), loc, scale, 100_000)
    damping = torch.exp(-(omega**2 * scale**2).sum() / 2)
    check_close(
        "∇μ E cos(ω·x)", est.mean, -omega * torch.sin(omega @ loc) * damping, stderr=est.stderr
    )


def test_rayleigh_noise_has_the_right_moments():
    """E w = √(π/2), E w² = 2 for Weibull(√2, 2) = Rayleigh(1); detects about 0.5%."""
    seed_everything(4)
    w = RAYLEIGH.sample((200_000,)).to(DT)
    check_close(
        "Rayleigh moments",
        torch.stack([w.mean(), (w**2).mean()]),
        _t(math.sqrt(math.pi / 2), 2.0),
        stderr=torch.stack([w.std(), (w**2).std()]) / math.sqrt(w.shape[0]),
    )


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"loc": "a"}, TypeError, "loc must be a number"),
        ({"loc": torch.tensor([1, 2])}, TypeError, "loc must be a number or a floating-point"),
        (
            {"loc": torch.zeros(2, 2, dtype=DT), "scale": torch.ones(2, 2, dtype=DT)},
            ValueError,
            "1-D tensor",
        ),
        ({"scale": torch.ones(3, dtype=DT)}, ValueError, "scale must have the shape of loc"),
        ({"scale": _t(1.0, 0.0)}, ValueError, "scale must be > 0"),
        ({"loc": _t(1.0, float("nan"))}, ValueError, "loc must be finite"),
        ({"f": 3}, TypeError, "f must be callable"),
        ({"num_samples": 1}, ValueError, "num_samples must be an integer >= 2"),
        ({"coupled": 1}, TypeError, "coupled must be True or False"),
        ({"f": lambda x: x}, ValueError, "f must return one value per sample"),
        ({"f": lambda x: 1.0}, TypeError, "f must return a tensor"),
        ({"f": lambda x: x.sum(-1).to(torch.complex128)}, TypeError, "f must return real values"),
        ({"num_samples": 10**12}, ValueError, "num_samples=1000000000000 would need"),
        ({"noise": (torch.zeros(5, 2, dtype=DT),) * 2}, TypeError, "noise must be a tuple"),
        ({"noise": (torch.zeros(5, 2, dtype=DT),) * 3}, ValueError, "reuses w_plus"),
        (
            {
                "noise": (torch.zeros(5, 2, dtype=DT), torch.ones(5, 2, dtype=DT), None),
                "coupled": False,
            },
            ValueError,
            "must hold w_minus",
        ),
        (
            {"noise": (torch.zeros(4, 2, dtype=DT), torch.ones(5, 2, dtype=DT), None)},
            ValueError,
            "noise eps must have shape",
        ),
        (
            {"noise": (torch.zeros(5, 2, dtype=DT), -torch.ones(5, 2, dtype=DT), None)},
            ValueError,
            "Rayleigh draws",
        ),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, error, message):
    args = {"loc": _t(0.0, 1.0), "scale": _t(1.0, 1.0), "f": lambda x: x.sum(-1), "num_samples": 5}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        measure_valued_gaussian_mean(**args)


# ---------------------------------------------------------------- the scale: Maxwell vs Gaussian


def test_scale_coupled_replay_is_the_hand_formula_for_a_square():
    # (μ + σm)² - (μ + σmu)² = 2μσm(1 - u) + σ²m²(1 - u²); divided by σ
    mu, sigma = 0.7, 1.3
    m, u = _t(-2.1, 0.4, 1.7, -0.2), _t(0.1, 0.9, 0.5, 0.0)
    est = measure_valued_gaussian_scale(
        square, mu, sigma, 4, noise=(torch.zeros(4, dtype=DT), m, u)
    )
    assert isinstance(est, Estimate) and est.samples.shape == (4, 1)
    expected = 2 * mu * m * (1 - u) + sigma * m**2 * (1 - u**2)
    check_close("scale, coupled replay", est.samples[:, 0], expected, rtol=1e-13, verbose=False)


def test_scale_uncoupled_replay_uses_the_normal_draw_on_the_negative_side():
    mu, sigma = -0.4, 0.8
    m, e = _t(1.5, -0.3, 2.2), _t(0.3, -1.1, 0.8)
    est = measure_valued_gaussian_scale(
        square, mu, sigma, 3, coupled=False, noise=(torch.zeros(3, dtype=DT), m, e)
    )
    expected = ((mu + sigma * m) ** 2 - (mu + sigma * e) ** 2) / sigma
    check_close("scale, uncoupled replay", est.samples[:, 0], expected, rtol=1e-13, verbose=False)


def test_scale_multivariate_replay_keeps_the_other_coordinates():
    # f(x) = x_0 x_1: g_0 = ((μ0 + σ0 m) - (μ0 + σ0 m u)) x_1 / σ0 = m (1 - u) x_1
    loc, scale = _t(0.5, -1.0), _t(1.5, 0.5)
    eps = _t(0.3, -1.2, 1.0, 0.4).reshape(2, 2)
    m = _t(0.8, -1.9, 2.6, 0.4).reshape(2, 2)
    u = _t(0.25, 0.5, 0.75, 0.1).reshape(2, 2)
    est = measure_valued_gaussian_scale(
        lambda x: x[:, 0] * x[:, 1], loc, scale, 2, noise=(eps, m, u)
    )
    base = loc + scale * eps
    expected = torch.stack([base[:, 1], base[:, 0]], dim=1) * m * (1 - u)
    check_close("scale, multivariate replay", est.samples, expected, rtol=1e-13, verbose=False)


@pytest.mark.parametrize("coupled", [True, False])
def test_scale_square_is_unbiased_with_the_derived_variance(coupled):
    """E g = 2σ; Var g = 4μ² + 4σ² coupled, 16μ² + 8σ² uncoupled (module docstring). With
    N = 4 × 10⁵ detects a bias of about 0.02 in the mean and about 3% in the variance."""
    mu, sigma = 1.0, 0.5
    seed_everything(5)
    est = measure_valued_gaussian_scale(square, mu, sigma, 400_000, coupled=coupled)
    check_close("E g = 2σ", est.mean, 2 * sigma, stderr=est.stderr)
    var = sample_variance(est.samples)
    exact = 4 * mu**2 + 4 * sigma**2 if coupled else 16 * mu**2 + 8 * sigma**2
    check_close("Var g", var.mean, exact, stderr=var.stderr)


def test_scale_cosine_matches_the_closed_form_in_every_coordinate():
    """E cos(ω·x) = cos(ω·μ) exp(-Σ ω_d² σ_d² / 2), so ∂σ_d = -ω_d² σ_d cos(ω·μ) exp(...);
    three coordinates, detects about 0.02."""
    loc, scale, omega = _t(0.3, -0.7, 1.1), _t(0.5, 1.0, 0.8), _t(1.0, 0.5, 1.5)
    seed_everything(6)
    est = measure_valued_gaussian_scale(lambda x: torch.cos(x @ omega), loc, scale, 100_000)
    damping = torch.exp(-(omega**2 * scale**2).sum() / 2)
    exact = -(omega**2) * scale * torch.cos(omega @ loc) * damping
    check_close("∇σ E cos(ω·x)", est.mean, exact, stderr=est.stderr)


def test_maxwell_times_uniform_is_standard_normal():
    """The coupling: ε⁻ = m u has E ε⁻² = 1 and E ε⁻⁴ = 3 when m is double-sided Maxwell
    (E m² = 3, E m⁴ = 15) and u ~ U(0, 1); read off the replayed estimator with f(x) = x² or
    x⁴ at μ = 0, σ = 1, whose negative side is f(m u). Detects about 2% in either moment."""
    seed_everything(7)
    n = 400_000
    sign = torch.randint(0, 2, (n, 1)).to(DT) * 2 - 1
    m = sign * torch.distributions.Chi2(torch.tensor(3.0, dtype=DT)).sample((n, 1)).sqrt()
    e_minus = m * torch.rand(n, 1, dtype=DT)
    powers = torch.cat([e_minus**2, e_minus**4], dim=1)
    est = summarize(powers)
    check_close("E ε⁻², E ε⁻⁴", est.mean, _t(1.0, 3.0), stderr=est.stderr)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"loc": "a"}, TypeError, "loc must be a number"),
        ({"scale": _t(1.0, -1.0)}, ValueError, "scale must be > 0"),
        ({"scale": torch.ones(3, dtype=DT)}, ValueError, "scale must have the shape of loc"),
        ({"f": None}, TypeError, "f must be callable"),
        ({"num_samples": 1}, ValueError, "num_samples must be an integer >= 2"),
        ({"coupled": "yes"}, TypeError, "coupled must be True or False"),
        ({"f": lambda x: x}, ValueError, "f must return one value per sample"),
        ({"noise": (torch.zeros(5, 2, dtype=DT),) * 2}, TypeError, "noise must be a tuple"),
        (
            {
                "noise": (
                    torch.zeros(5, 2, dtype=DT),
                    torch.ones(5, 2, dtype=DT),
                    2 * torch.ones(5, 2, dtype=DT),
                )
            },
            ValueError,
            "noise u must be uniform draws",
        ),
        (
            {
                "noise": (
                    torch.zeros(5, 2, dtype=DT),
                    torch.ones(4, 2, dtype=DT),
                    torch.ones(5, 2, dtype=DT),
                )
            },
            ValueError,
            "noise m must have shape",
        ),
        (
            {
                "noise": (torch.zeros(5, 2, dtype=DT), torch.ones(5, 2, dtype=DT), None),
                "coupled": False,
            },
            TypeError,
            "noise eps_minus must be a floating-point tensor",
        ),
        (
            {
                "noise": (
                    torch.zeros(5, 2, dtype=DT),
                    torch.full((5, 2), float("inf"), dtype=DT),
                    torch.ones(5, 2, dtype=DT),
                )
            },
            ValueError,
            "noise m must be finite",
        ),
    ],
)
def test_scale_bad_inputs_raise_naming_the_argument(kwargs, error, message):
    args = {"loc": _t(0.0, 1.0), "scale": _t(1.0, 1.0), "f": lambda x: x.sum(-1), "num_samples": 5}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        measure_valued_gaussian_scale(**args)
