"""Tests of companion.smoothing: Gaussian smoothing (evolution strategies) and SPSA."""

import math

import pytest
import torch
from torch.distributions import Normal

from companion.checks import check_close, check_mc
from companion.seeding import seed_everything
from companion.smoothing import smoothed_gradient

DT = torch.float64
A = torch.tensor([1.0, -2.0, 0.5], dtype=DT)


def linear(x):
    return x @ A


def location(t):
    return Normal(t, 0.7)


# ---------------------------------------------------------------- exact layer


@pytest.mark.parametrize("directions", ["gaussian", "rademacher"])
def test_linear_f_with_shared_noise_replays_the_directions(directions):
    # f(x) = aᵀx and x^± = θ ± δv + σε with one ε: the noise cancels, g_m = (aᵀv_m) v_m.
    theta, m, delta = torch.tensor([0.3, -1.0, 2.0], dtype=DT), 50, 0.25
    torch.manual_seed(7)
    est = smoothed_gradient(linear, location, theta, m, smoothing=delta, directions=directions)
    torch.manual_seed(7)
    if directions == "gaussian":
        v = torch.randn((m, 3), dtype=DT)
    else:
        v = (2 * torch.randint(0, 2, (m, 3)) - 1).to(DT)
    torch.testing.assert_close(est.samples, (v @ A)[:, None] * v, rtol=1e-10, atol=1e-10)


def test_without_common_noise_the_two_sides_use_fresh_draws():
    theta, m, delta, sd = torch.tensor([0.3, -1.0, 2.0], dtype=DT), 20, 0.5, 0.7
    torch.manual_seed(8)
    est = smoothed_gradient(
        linear, location, theta, m, smoothing=delta, common_random_numbers=False
    )
    torch.manual_seed(8)
    v = torch.randn((m, 3), dtype=DT)
    plus = Normal(theta + delta * v, sd).sample()
    minus = Normal(theta - delta * v, sd).sample()
    expected = ((plus - minus) @ A / (2 * delta))[:, None] * v
    torch.testing.assert_close(est.samples, expected, rtol=1e-10, atol=1e-10)


def test_the_callers_stream_moves_by_the_directions_and_one_seed_only():
    theta = torch.zeros(3, dtype=DT)
    torch.manual_seed(9)
    smoothed_gradient(linear, location, theta, 10, smoothing=0.1)
    after = torch.rand(())
    torch.manual_seed(9)
    torch.randn((10, 3), dtype=DT)
    torch.randint(0, 2**62, ())
    assert torch.rand(()) == after


# ---------------------------------------------------------------- statistical layer


@pytest.mark.parametrize(
    "directions, factor", [("gaussian", lambda d: d + 2), ("rademacher", lambda d: d)]
)
def test_quadratic_mean_and_total_variance(directions, factor):
    """f(x) = |x|²/2, x ~ N(θ, σ² I_D), shared noise: g = (vᵀy) v with y = θ + σε, so the
    mean is θ exactly and E|g - θ|² = c_D (|θ|² + Dσ²) - |θ|², c_D = D + 2 (Gaussian) or D
    (Rademacher). 4·10^4 directions, D = 5: smallest detectable error about 5% of each."""
    d, sd, delta = 5, 0.5, 0.3
    theta = torch.linspace(-1.0, 1.0, d, dtype=DT)
    seed_everything(11)
    est = smoothed_gradient(
        lambda x: 0.5 * (x**2).sum(-1),
        lambda t: Normal(t, sd),
        theta,
        40_000,
        smoothing=delta,
        directions=directions,
    )
    check_close("mean = θ", est.mean, theta, stderr=est.stderr, scale=1.0)
    norm2 = float(theta @ theta)
    check_mc(
        "E|g - θ|²",
        ((est.samples - theta) ** 2).sum(1),
        factor(d) * (norm2 + d * sd**2) - norm2,
    )


def test_gaussian_smoothing_estimates_the_smoothed_gradient():
    """f(x) = Σ cos(ωx_d), x ~ N(θ, σ² I): J_δ(θ) = Σ cos(ωθ_d) exp(-ω²(σ² + δ²)/2), so the
    mean is ∇J_δ = ∇J · exp(-ω²δ²/2), here 0.61 ∇J; comparing with ∇J fails."""
    omega, sd, delta = 2.0, 0.5, 0.5
    theta = torch.tensor([1.0, 0.5, -0.7], dtype=DT)
    seed_everything(12)
    est = smoothed_gradient(
        lambda x: torch.cos(omega * x).sum(-1),
        lambda t: Normal(t, sd),
        theta,
        40_000,
        smoothing=delta,
    )
    grad = -omega * torch.sin(omega * theta) * math.exp(-(omega**2) * sd**2 / 2)
    smoothed = grad * math.exp(-(omega**2) * delta**2 / 2)
    check_close("mean = ∇J_δ", est.mean, smoothed, stderr=est.stderr)
    with pytest.raises(AssertionError):
        check_close("mean = ∇J", est.mean, grad, stderr=est.stderr, verbose=False)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(smoothing=0.0), ValueError, "smoothing must be a finite number > 0"),
        (dict(smoothing=-1.0), ValueError, "smoothing must be a finite number > 0"),
        (dict(smoothing=float("nan")), ValueError, "smoothing must be a finite number > 0"),
        (dict(smoothing=True), TypeError, "smoothing must be a number"),
        (dict(smoothing="0.1"), TypeError, "smoothing must be a number"),
        (dict(smoothing=0.1, directions="normal"), ValueError, "directions must be one of"),
        (dict(smoothing=0.1, directions=None), ValueError, "directions must be one of"),
        (dict(smoothing=0.1, common_random_numbers=1), TypeError, "common_random_numbers"),
    ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        smoothed_gradient(linear, location, torch.zeros(3, dtype=DT), 10, **kwargs)


def test_bad_arguments_name_the_argument():
    theta = torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match="num_directions must be an integer >= 2"):
        smoothed_gradient(linear, location, theta, 1, smoothing=0.1)
    with pytest.raises(TypeError, match="f must be callable"):
        smoothed_gradient(None, location, theta, 10, smoothing=0.1)
    with pytest.raises(TypeError, match="theta must be a 1-D floating-point tensor"):
        smoothed_gradient(linear, location, [0.0, 0.0, 0.0], 10, smoothing=0.1)


def test_perturbations_outside_the_parameter_space_are_refused():
    scale_param = lambda t: Normal(0.0, t)  # noqa: E731
    with pytest.raises(
        ValueError, match=r"smoothing=5\.0: θ ± δ v for some direction .* is not a valid parameter"
    ):
        smoothed_gradient(
            lambda x: x.sum(-1), scale_param, torch.ones(2, dtype=DT), 50, smoothing=5.0
        )


def test_an_unbatched_dist_fn_is_refused():
    with pytest.raises(ValueError, match="dist_fn must be batched"):
        smoothed_gradient(
            lambda x: x, lambda t: Normal(t[0], 1.0), torch.zeros(2, dtype=DT), 10, smoothing=0.1
        )
