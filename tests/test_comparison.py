"""Tests of companion.comparison: the exact rows against closed forms, the measured rows and the
leave-one-out batches against them, and the input checks.

Exact layer: float64 quadrature against hand-derived closed forms at rounding level. Statistical
layer: companion.checks at a false-alarm rate of 1e-3 per check; each test seeds in its own body
and states the smallest error it detects.
"""

import math

import pytest
import torch

from companion.baselines import leave_one_out_variance
from companion.checks import check_close
from companion.comparison import (
    GAUSSIAN_ROWS,
    gaussian_rows_exact,
    gaussian_rows_measured,
    leave_one_out_batches,
    text_table,
)
from companion.montecarlo import sample_variance
from companion.problems import bernoulli_logit, bernoulli_toy, normal_dist
from companion.seeding import seed_everything

DT = torch.float64


def square(x):
    return x**2


def Phi(u):
    return 0.5 * (1 + math.erf(u / math.sqrt(2)))


# ---------------------------------------------------------------- exact rows


def test_square_rows_match_the_closed_forms():
    mu, sigma, h = 1.0, 1.0, 0.1
    exact = gaussian_rows_exact(square, mu, sigma, f_prime=lambda x: 2 * x, step=h)
    rows = exact["rows"]
    assert set(rows) == set(GAUSSIAN_ROWS)

    def var_x2(m, s):
        return 4 * m**2 * s**2 + 2 * s**4  # Var[x²] under N(m, s²)

    closed = {
        "score function": [30, 136],
        "+ constant b = f(E[x])": [23, 114],
        "+ mean baseline (oracle)": [18, 96],
        "+ optimal baseline (oracle)": [14, 64],
        "+ leave-one-out": [18, 96],
        "pathwise": [4, 12],
        "finite differences, independent": [
            (var_x2(mu + h, sigma) + var_x2(mu - h, sigma)) / (4 * h**2),
            (var_x2(mu, sigma + h) + var_x2(mu, sigma - h)) / (4 * h**2),
        ],
        "finite differences, CRN": [4, 12],
        "measure-valued (coupled)": [16 / math.pi - 4, 4 * mu**2 + 4 * sigma**2],
    }
    for name, values in closed.items():
        check_close(name, rows[name], torch.tensor(values, dtype=DT), rtol=1e-10, verbose=False)
    check_close(
        "gradient", exact["gradient"], torch.tensor([2.0, 2.0], dtype=DT), rtol=1e-12, verbose=False
    )
    check_close(
        "quotient", exact["quotient"], torch.tensor([2.0, 2.0], dtype=DT), rtol=1e-12, verbose=False
    )
    assert abs(exact["mean_f"] - 2.0) < 1e-12 and abs(exact["var_f"] - 6.0) < 1e-10
    check_close(
        "E[s²]", exact["score_second_moment"], torch.tensor([1.0, 2.0], dtype=DT), rtol=1e-12
    )
    check_close(
        "b*", exact["b_star"], torch.tensor([4.0, 6.0], dtype=DT), rtol=1e-10, verbose=False
    )


def test_a_step_is_integrated_exactly_by_splitting_at_its_jump():
    mu, sigma, c, h = 1.0, 1.0, 2.0, 0.1
    exact = gaussian_rows_exact(lambda x: (x > c).to(x.dtype), mu, sigma, jumps=(c,), step=h)
    z = (c - mu) / sigma
    density = math.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    check_close(
        "gradient", exact["gradient"], torch.tensor([density, density * z], dtype=DT), rtol=1e-10
    )
    assert abs(exact["mean_f"] - (1 - Phi(z))) < 1e-12
    q = math.exp(-(z**2) / 2)  # the measure-valued sample is κ 1[w > z]
    kappa = 1 / (sigma * math.sqrt(2 * math.pi))
    mvd = exact["rows"]["measure-valued (coupled)"]
    # σ: (1[m > z] - 1[mu > z]) / σ is 1/σ with probability P(m > z) - P(ε > z) = z φ(z)
    p_sigma = z * density
    check_close(
        "measure-valued",
        mvd,
        torch.tensor([kappa**2 * q * (1 - q), p_sigma * (1 - p_sigma) / sigma**2], dtype=DT),
        rtol=1e-10,
    )
    # CRN in μ: the difference is 1 when ε ∈ (z - h/σ, z + h/σ], a Bernoulli(P), over 2h
    P = Phi(z + h / sigma) - Phi(z - h / sigma)
    crn = exact["rows"]["finite differences, CRN"][0]
    assert abs(crn.item() - P * (1 - P) / (4 * h**2)) < 1e-10
    assert "pathwise" not in exact["rows"]


def test_measure_valued_scale_row_with_a_jump_below_the_mean_matches_monte_carlo():
    mu, sigma, c = 1.0, 0.7, 0.3  # c < μ: the jump of f(μ + σmu) falls inside (0, 1) for m < 0
    f = lambda x: (x > c).to(x.dtype)  # noqa: E731
    exact = gaussian_rows_exact(f, mu, sigma, jumps=(c,))["rows"]["measure-valued (coupled)"]
    gen = torch.Generator().manual_seed(3)
    n = 400_000
    sign = torch.where(torch.rand(n, generator=gen, dtype=DT) < 0.5, -1.0, 1.0)
    chi = torch.randn(n, 3, generator=gen, dtype=DT).square().sum(1).sqrt()
    m, u = sign * chi, torch.rand(n, generator=gen, dtype=DT)
    g = (f(mu + sigma * m) - f(mu + sigma * m * u)) / sigma
    v = sample_variance(g)
    check_close("σ row, c < μ", v.mean, exact[1], stderr=v.stderr)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"f": 3}, TypeError, "f must be callable"),
        ({"scale": 0.0}, ValueError, "scale must be > 0"),
        ({"scale": float("nan")}, ValueError, "scale must be finite"),
        ({"step": 2.0}, ValueError, "step must be in"),
        ({"step": -0.1}, ValueError, "step must be in"),
        ({"jumps": 2.0}, TypeError, "jumps must be a tuple"),
        ({"jumps": ("a",)}, TypeError, "jumps"),
        ({"f_prime": "2x"}, TypeError, "f_prime must be callable"),
        ({"num_nodes": 1}, ValueError, "num_nodes must be an integer >= 2"),
        ({"f": lambda x: x[:1]}, ValueError, "f must return one value per sample"),
    ],
)
def test_exact_rows_reject_bad_inputs(kwargs, error, message):
    args = {"f": square, "loc": 1.0, "scale": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        gaussian_rows_exact(**args)


# ---------------------------------------------------------------- measured rows


def test_measured_rows_agree_with_the_exact_ones_on_a_cosine():
    """Every row's mean and per-sample variance on cos 3x at N = 10⁵ against quadrature;
    detects about 10% in the smallest-noise coordinates' variances."""

    def wave(x):
        return torch.cos(3 * x)

    exact = gaussian_rows_exact(wave, 1.0, 1.0, f_prime=lambda x: -3 * torch.sin(3 * x))
    baselines = {"score function": None, "+ mean baseline (oracle)": exact["mean_f"]}
    seed_everything(11)
    runs = gaussian_rows_measured(wave, 1.0, 1.0, 100_000, baselines=baselines)
    assert set(runs) == {*baselines, *GAUSSIAN_ROWS[5:]}
    for est in runs.values():
        assert est.samples.shape == (100_000, 2)
    names = list(runs)
    variances = {n: sample_variance(r.samples) for n, r in runs.items()}
    check_close(
        "variances",
        torch.cat([variances[n].mean for n in names]),
        torch.cat([exact["rows"][n] for n in names]),
        stderr=torch.cat([variances[n].stderr for n in names]),
    )


def test_measured_rows_skip_pathwise_for_a_step_and_check_their_arguments():
    step = lambda x: (x > 2.0).to(x.dtype)  # noqa: E731
    runs = gaussian_rows_measured(
        step, 1.0, 1.0, 100, baselines={}, differentiable_f=False, num_independent=300
    )
    assert "pathwise" not in runs
    assert runs["finite differences, independent"].samples.shape == (300, 2)
    with pytest.raises(TypeError, match="loc must be"):
        gaussian_rows_measured(step, "a", 1.0, 100, baselines={})
    with pytest.raises(ValueError, match="scale must be > 0"):
        gaussian_rows_measured(step, 1.0, -1.0, 100, baselines={})
    with pytest.raises(TypeError, match="f must be callable"):
        gaussian_rows_measured(None, 1.0, 1.0, 100, baselines={})
    with pytest.raises(TypeError, match="baselines must be a dict"):
        gaussian_rows_measured(step, 1.0, 1.0, 100, baselines=[None])
    with pytest.raises(TypeError, match="differentiable_f must be True or False"):
        gaussian_rows_measured(step, 1.0, 1.0, 100, baselines={}, differentiable_f="no")
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
        gaussian_rows_measured(step, 1.0, 1.0, 1, baselines={})
    with pytest.raises(ValueError, match="num_independent must be an integer >= 2"):
        gaussian_rows_measured(step, 1.0, 1.0, 10, baselines={}, num_independent=0)


# ---------------------------------------------------------------- leave-one-out batches


def test_a_constant_f_gives_zero_batches():
    est = leave_one_out_batches(
        lambda x: torch.ones_like(x), normal_dist, torch.tensor([0.0, 1.0], dtype=DT), 3, 5
    )
    assert est.samples.shape == (5, 2)
    assert torch.equal(est.samples, torch.zeros(5, 2, dtype=DT))


@pytest.mark.parametrize("batch_size", [2, 8])
def test_batch_variance_matches_the_formula_on_the_bernoulli_toy(batch_size):
    """N Var[ĝ_N] = Var[(f - E f) s] + (Var f E s² + ∂J²) / (N - 1), enumerated exactly;
    mean = π(1 - π)(1 - 2t). 4 × 10⁵ draws detect about 4% in the variance."""
    t, prob = 0.2, 0.3
    f = bernoulli_toy(t)
    f0, f1 = t**2, (1 - t) ** 2
    mean_f = prob * f1 + (1 - prob) * f0
    gradient = prob * (1 - prob) * (f1 - f0)
    terms = ((f1 - mean_f) * (1 - prob), (f0 - mean_f) * (0 - prob))
    mean_baseline = prob * terms[0] ** 2 + (1 - prob) * terms[1] ** 2 - gradient**2
    exact = leave_one_out_variance(
        mean_baseline, prob * (1 - prob) * (f1 - f0) ** 2, prob * (1 - prob), gradient, batch_size
    )
    seed_everything(12 + batch_size)
    theta = torch.tensor([math.log(prob / (1 - prob))], dtype=DT)
    est = leave_one_out_batches(f, bernoulli_logit, theta, batch_size, 400_000 // batch_size)
    check_close("mean", est.mean, gradient, stderr=est.stderr)
    v = sample_variance(math.sqrt(batch_size) * est.samples)
    check_close("N Var", v.mean, exact, stderr=v.stderr)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"f": None}, TypeError, "f must be callable"),
        ({"dist_fn": 1}, TypeError, "dist_fn must be callable"),
        ({"theta": [0.0, 1.0]}, TypeError, "theta must be a 1-D floating-point tensor"),
        ({"theta": torch.tensor([0, 1])}, TypeError, "theta must be a 1-D floating-point"),
        ({"batch_size": 1}, ValueError, "batch_size must be an integer >= 2"),
        ({"num_batches": 1}, ValueError, "num_batches must be an integer >= 2"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
    ],
)
def test_batches_reject_bad_inputs(kwargs, error, message):
    args = {
        "f": square,
        "dist_fn": normal_dist,
        "theta": torch.tensor([0.0, 1.0], dtype=DT),
        "batch_size": 2,
        "num_batches": 4,
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        leave_one_out_batches(**args)


# ---------------------------------------------------------------- the printed table


def test_text_table_pads_columns_and_refuses_ragged_rows():
    text = text_table(["name", "x"], [["a", "1.5"], ["long name", "2"]])
    lines = text.splitlines()
    assert lines[0] == "name       x"
    assert lines[1] == "---------  ---"
    assert lines[3] == "long name  2"
    with pytest.raises(ValueError, match=r"rows\[1\] must have 2 entries, got 1"):
        text_table(["name", "x"], [["a", "1"], ["b"]])
    with pytest.raises(TypeError, match="header must be a list or tuple of strings"):
        text_table(None, [])
    with pytest.raises(TypeError, match="rows must be a list or tuple of rows"):
        text_table(["x"], "abc")
