"""Tests of companion.baselines: exact formulas on fixed numbers, then the optimal baseline
of the Gaussian example (f = x² under N(1, 1): b* = (4, 6)) estimated from samples."""

import pytest
import torch

from companion.baselines import centre, leave_one_out, optimal_baseline
from companion.checks import check_close
from companion.seeding import seed_everything

DT = torch.float64


def test_leave_one_out_matches_a_loop():
    values = torch.randn(7, 3, dtype=DT)
    expected = torch.stack([(values.sum(0) - values[n]) / 6 for n in range(7)])
    torch.testing.assert_close(leave_one_out(values), expected, rtol=1e-13, atol=1e-13)


def test_leave_one_out_is_detached():
    values = torch.randn(5, dtype=DT, requires_grad=True)
    assert not leave_one_out(values).requires_grad


def test_optimal_baseline_matches_its_formula():
    f = torch.randn(50, dtype=DT)
    s = torch.randn(50, 3, dtype=DT)
    s[:, 2] = 0.0  # no signal: b*_d = 0 by convention, not 0 / 0
    expected = torch.stack([(f * s[:, d] ** 2).sum() / (s[:, d] ** 2).sum() for d in range(2)])
    b = optimal_baseline(f, s)
    torch.testing.assert_close(b[:2], expected, rtol=1e-13, atol=1e-13)
    assert b[2] == 0.0


def test_optimal_baseline_of_independent_batches_is_one_per_batch():
    """f (N, R) and scores (N, R, D): column r gives the b* of batch r alone."""
    f = torch.randn(6, 4, dtype=DT)
    s = torch.randn(6, 4, 3, dtype=DT)
    b = optimal_baseline(f, s)
    assert b.shape == (4, 3)
    for r in range(4):
        torch.testing.assert_close(b[r], optimal_baseline(f[:, r], s[:, r]), rtol=1e-13, atol=0)


def test_optimal_baseline_minimizes_the_sample_second_moment():
    """On the same samples, mean((f - b)² s_d²) is a parabola in b with its minimum at b*_d."""
    f = torch.randn(200, dtype=DT) ** 2
    s = torch.randn(200, 2, dtype=DT)
    b = optimal_baseline(f, s)

    def moment(b_value):
        return ((f[:, None] - b_value) ** 2 * s**2).mean(0)

    for delta in (-0.1, 1e-3, 0.5):
        assert (moment(b) < moment(b + delta)).all()


def test_optimal_baseline_of_the_gaussian_example():
    """b* = (E[f ε²] / E[ε²], E[f (ε² - 1)²] / E[(ε² - 1)²]) = (4 / 1, 12 / 2) = (4, 6) for
    f = (1 + ε)², ε ~ N(0, 1). The ratio's standard error is the delta-method one,
    stderr of (f - b*) s_d² divided by mean(s_d²). 2 × 10^5 draws; detects a bias of
    3.48 stderr ≈ (0.05, 0.1).
    """
    seed_everything(0)
    eps = torch.randn(200_000, dtype=DT)
    f, s = (1 + eps) ** 2, torch.stack([eps, eps**2 - 1], dim=1)
    b = optimal_baseline(f, s)
    residual = (f[:, None] - b) * s**2 / (s**2).mean(0)  # (N, 2), mean zero at b*
    stderr = residual.std(0) / residual.shape[0] ** 0.5
    check_close("optimal baseline b*", b, [4.0, 6.0], stderr=stderr)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (
            (torch.zeros(5), torch.zeros(4, 2)),
            ValueError,
            r"f_values must have shape \(N, \*batch\) and scores",
        ),
        ((torch.zeros(5, 1), torch.zeros(5, 2)), ValueError, "f_values must have shape"),
        ((torch.zeros(5), torch.zeros(5)), ValueError, r"scores shape \(N, \*batch, D\)"),
        ((torch.zeros(5, 3), torch.zeros(5, 4, 2)), ValueError, "on the same draws"),
        ((torch.zeros(1), torch.zeros(1, 2)), ValueError, "at least 2 samples"),
        (
            (torch.tensor([0.0, float("nan")]), torch.zeros(2, 2)),
            ValueError,
            "f_values must be finite",
        ),
        (("f", torch.zeros(2, 2)), TypeError, "f_values must be a number, array or tensor"),
    ],
)
def test_optimal_baseline_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        optimal_baseline(*args)


def test_leave_one_out_rejects_bad_input():
    with pytest.raises(ValueError, match="values must hold at least 2 samples"):
        leave_one_out(torch.zeros(1))
    with pytest.raises(ValueError, match="got a scalar"):
        leave_one_out(torch.tensor(1.0))


def test_centre_accepts_every_form_of_baseline():
    """The one baseline parser: None, a number, "loo", per-sample and per-coordinate tensors."""
    f = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)
    torch.testing.assert_close(centre(f, None), f)
    torch.testing.assert_close(centre(f, 0.5), f - 0.5)
    torch.testing.assert_close(centre(f, "loo"), f - leave_one_out(f))
    torch.testing.assert_close(
        centre(f, torch.tensor([1.0, 1.0, 2.0])),
        f - torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64),
    )  # per-sample b_n, from an independent source
    per_coordinate = centre(f, torch.tensor([0.0, 1.0]), num_coordinates=2)
    torch.testing.assert_close(per_coordinate, torch.stack([f, f - 1.0], dim=1))
    surrogate_shape = torch.zeros(4, 3)  # (S, B): "loo" runs along dimension 0
    assert centre(surrogate_shape, "loo").shape == (4, 3)


@pytest.mark.parametrize(
    "f, baseline, kwargs, error, match",
    [
        (torch.zeros(3), "mean", {}, ValueError, "baseline must be None, a number.*'loo'"),
        (torch.zeros(3), torch.zeros(4), {}, ValueError, r"broadcastable to f_values \(3,\)"),
        (
            torch.zeros(3),
            torch.zeros(3),
            {"num_coordinates": 2},
            ValueError,
            r"a tensor of shape \(2,\), one constant per coordinate",
        ),
        (torch.zeros(3), True, {}, ValueError, "baseline must be None"),
        (torch.zeros(3), float("inf"), {}, ValueError, "baseline must be finite"),
        (
            torch.zeros(3, 2),
            None,
            {"num_coordinates": 2},
            ValueError,
            r"f_values must have shape \(N,\)",
        ),
        ([1.0, 2.0], None, {}, TypeError, "f_values must be a floating-point tensor"),
        (torch.tensor([1.0, float("nan")]), None, {}, ValueError, "f_values must be finite"),
    ],
)
def test_centre_rejects_bad_input(f, baseline, kwargs, error, match):
    with pytest.raises(error, match=match):
        centre(f, baseline, **kwargs)


def test_leave_one_out_optimal_baseline_matches_a_loop():
    """Draw n's b*_{-n} is the optimal baseline of the other N - 1 draws alone."""
    f = torch.randn(6, 4, dtype=DT)
    s = torch.randn(6, 4, 3, dtype=DT)
    b = optimal_baseline(f, s, leave_one_out=True)
    assert b.shape == (6, 4, 3) and not b.requires_grad
    for n in range(6):
        keep = [m for m in range(6) if m != n]
        torch.testing.assert_close(b[n], optimal_baseline(f[keep], s[keep]), rtol=1e-12, atol=1e-12)


def test_leave_one_out_optimal_baseline_without_signal_is_zero():
    """Where the other draws' scores all vanish (here: only draw 0 has a nonzero score in
    column 1), b*_{-n,d} = 0 by convention, not 0 / 0 or a rounding residue."""
    f = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    s = torch.tensor([[1.0, 1e8], [-1.0, 0.0], [2.0, 0.0]], dtype=DT)
    b = optimal_baseline(f, s, leave_one_out=True)
    assert b[0, 1] == 0.0
    torch.testing.assert_close(b[1:, 1], torch.tensor([1.0, 1.0], dtype=DT), rtol=1e-12, atol=0)


def test_leave_one_out_optimal_baseline_keeps_the_estimator_unbiased():
    """f = (1 + ε)², scores (ε, ε² - 1) (N(1, 1) at μ = σ = 1): the average of
    (f_n - b*_{-n,d}) s_{n,d} over N = 3 draws has mean ∇E[x²] = (2, 2), while the in-sample
    b* (draw n included) is biased. 2 × 10^5 batches resolve 10% of the gradient."""
    seed_everything(1)
    eps = torch.randn(3, 200_000, dtype=DT)
    f, s = (1 + eps) ** 2, torch.stack([eps, eps**2 - 1], dim=-1)  # (N, R), (N, R, 2)
    b = optimal_baseline(f, s, leave_one_out=True)  # (N, R, 2)
    estimates = ((f[..., None] - b) * s).mean(dim=0)  # (R, 2)
    stderr = estimates.std(0) / estimates.shape[0] ** 0.5
    check_close("leave-one-out b* is unbiased", estimates.mean(0), [2.0, 2.0], stderr=stderr)
    in_sample = ((f[..., None] - optimal_baseline(f, s)) * s).mean(dim=0)
    assert ((in_sample.mean(0) - 2.0).abs() > 10 * stderr).any()


def test_optimal_baseline_rejects_a_non_bool_flag():
    with pytest.raises(TypeError, match="leave_one_out must be True or False"):
        optimal_baseline(torch.zeros(3), torch.zeros(3, 2), leave_one_out=1)
