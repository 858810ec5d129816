"""Tests of the leave-one-out estimator's variance: the formula of
companion.baselines.leave_one_out_variance against exact enumeration of every N-tuple of
draws of a discrete distribution (covariances between terms included), and
companion.surrogates.batched_score_gradients against that enumeration and a hand formula."""

import itertools

import pytest
import torch
from torch.distributions import Bernoulli, Categorical

from companion.baselines import leave_one_out_variance
from companion.surrogates import batched_score_gradients

DT = torch.float64


def _categorical(t):
    return Categorical(logits=t)


def _enumerate_loo(logits, values, n):
    """Exact mean and N·Var of the leave-one-out estimator by summing over all K^N tuples."""
    probs = torch.softmax(logits, 0)
    scores = torch.eye(len(logits), dtype=DT) - probs  # row k: ∇ log softmax(θ)_k
    mean = torch.zeros(len(logits), dtype=DT)
    second = torch.zeros(len(logits), dtype=DT)
    for ks in itertools.product(range(len(logits)), repeat=n):
        weight = torch.prod(probs[list(ks)])
        f = values[list(ks)]
        b = (f.sum() - f) / (n - 1)
        g = ((f - b)[:, None] * scores[list(ks)]).mean(0)
        mean += weight * g
        second += weight * g**2
    return mean, n * (second - mean**2)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_leave_one_out_variance_matches_exact_enumeration(n):
    """A categorical with K = 3 outcomes and an arbitrary f: enumeration of all 3^N tuples."""
    logits = torch.tensor([0.3, -0.5, 1.0], dtype=DT)
    values = torch.tensor([2.0, -1.0, 5.0], dtype=DT)
    probs = torch.softmax(logits, 0)
    scores = torch.eye(3, dtype=DT) - probs
    mean_f = probs @ values
    gradient = probs @ (values[:, None] * scores)
    mean_baseline = probs @ ((values - mean_f)[:, None] * scores) ** 2 - gradient**2
    f_variance = probs @ (values - mean_f) ** 2
    second_moment = probs @ scores**2
    exact_mean, exact = _enumerate_loo(logits, values, n)
    torch.testing.assert_close(exact_mean, gradient, rtol=1e-12, atol=1e-14)  # unbiased
    formula = leave_one_out_variance(mean_baseline, f_variance, second_moment, gradient, n)
    torch.testing.assert_close(formula, exact, rtol=1e-12, atol=1e-14)


def test_leave_one_out_variance_of_the_gaussian_example():
    """f = x², x ~ N(1, 1): mean-baseline variances (18, 96), Var[f] = 6, E[score²] = (1, 2),
    gradient (2, 2): N·Var = (28, 112) at N = 2, (23, 104) at N = 3, -> (18, 96)."""
    args = (torch.tensor([18.0, 96.0]), 6.0, torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(
        leave_one_out_variance(*args, 2), torch.tensor([28.0, 112.0], dtype=DT)
    )
    torch.testing.assert_close(
        leave_one_out_variance(*args, 3), torch.tensor([23.0, 104.0], dtype=DT)
    )
    far = leave_one_out_variance(*args, 10**9)
    torch.testing.assert_close(far, torch.tensor([18.0, 96.0], dtype=DT), rtol=1e-7, atol=0)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((-1.0, 1.0, 1.0, 0.0, 2), ValueError, "mean_baseline_variance must be >= 0"),
        ((1.0, -1.0, 1.0, 0.0, 2), ValueError, "f_variance must be >= 0"),
        ((1.0, 1.0, -1.0, 0.0, 2), ValueError, "score_second_moment must be >= 0"),
        ((1.0, 1.0, 1.0, float("nan"), 2), ValueError, "gradient must be finite"),
        ((1.0, 1.0, 1.0, 0.0, 1), ValueError, "num_samples must be an integer >= 2"),
        ((1.0, 1.0, 1.0, 0.0, 2.0), TypeError, "num_samples must be an integer"),
        (("a", 1.0, 1.0, 0.0, 2), TypeError, "mean_baseline_variance must be"),
        ((True, 1.0, 1.0, 0.0, 2), TypeError, "mean_baseline_variance must be"),
        (([1.0, 2.0], 1.0, [1.0, 2.0, 3.0], 0.0, 2), ValueError, "broadcast together"),
    ],
)
def test_leave_one_out_variance_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        leave_one_out_variance(*args)


def test_batched_score_gradients_is_the_enumerated_estimator():
    """Every tuple of N = 3 draws as one batch: the batched g_n are (f_n - b_n) ∇ log p(x_n)
    tuple by tuple, and their probability-weighted moments are the exact ones."""
    logits = torch.tensor([0.3, -0.5, 1.0], dtype=DT)
    values = torch.tensor([2.0, -1.0, 5.0], dtype=DT)
    tuples = torch.tensor(list(itertools.product(range(3), repeat=3))).T  # (N, R) = (3, 27)
    g = batched_score_gradients(_categorical, logits, tuples, values[tuples], baseline="loo")
    assert g.shape == (3, 27, 3)
    probs = torch.softmax(logits, 0)
    scores = torch.eye(3, dtype=DT) - probs
    f = values[tuples]
    b = (f.sum(0) - f) / 2
    torch.testing.assert_close(g, (f - b)[..., None] * scores[tuples], rtol=1e-12, atol=1e-14)
    weights = probs[tuples].prod(0)  # (27,)
    estimates = g.mean(0)  # (27, 3)
    mean = weights @ estimates
    n_var = 3 * (weights @ estimates**2 - mean**2)
    exact_mean, exact = _enumerate_loo(logits, values, 3)
    torch.testing.assert_close(mean, exact_mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(n_var, exact, rtol=1e-12, atol=1e-14)


def test_batched_score_gradients_without_baseline_and_with_a_number():
    bern = lambda t: Bernoulli(logits=t[..., 0])  # noqa: E731
    x = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=DT)  # (N, R) = (2, 3)
    theta = torch.tensor([0.4], dtype=DT)
    score = x - torch.sigmoid(theta)  # ∂ log Bernoulli(x; logit) = x - sigmoid(logit)
    for baseline, b in ((None, 0.0), (0.25, 0.25)):
        g = batched_score_gradients(bern, theta, x, 3 * x, baseline=baseline)
        torch.testing.assert_close(g[..., 0], (3 * x - b) * score, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(dist_fn=None), TypeError, "dist_fn must be callable"),
        (dict(theta=[0.0]), TypeError, "theta must be a 1-D floating tensor"),
        (dict(theta=torch.zeros(1, 1, dtype=DT)), TypeError, "theta must be a 1-D"),
        (dict(x=[[0.0]]), TypeError, "x must be a real tensor"),
        (dict(x=torch.zeros(3, dtype=DT)), ValueError, "x must have shape"),
        (dict(x=torch.zeros(1, 3, dtype=DT)), ValueError, "N >= 2"),
        (dict(f_values=torch.zeros(2, 4, dtype=DT)), ValueError, "f_values must be a tensor"),
        (dict(f_values=[[0.0] * 3] * 2), TypeError, "f_values must be a real tensor"),
        (dict(f_values=torch.full((2, 3), float("nan"), dtype=DT)), ValueError, "must be finite"),
        (dict(baseline="mean"), ValueError, "baseline must be"),
        (dict(dist_fn=lambda t: Bernoulli(logits=t)), ValueError, "batch shape"),
    ],
)
def test_batched_score_gradients_rejects_bad_input(kwargs, error, match):
    args = dict(
        dist_fn=lambda t: Bernoulli(logits=t[..., 0]),
        theta=torch.zeros(1, dtype=DT),
        x=torch.zeros(2, 3, dtype=DT),
        f_values=torch.zeros(2, 3, dtype=DT),
    )
    args.update(kwargs)
    with pytest.raises(error, match=match):
        batched_score_gradients(**args)
