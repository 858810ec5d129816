"""Tests of companion.bbvi: the exact ELBO of Bayesian logistic regression and fit_bbvi.

Exact layer: the quadrature against a high-precision integral and brute-force Monte Carlo, the
exact gradient against central finite differences, the closed-form ∇f and H against autograd,
and the vectorized measure-valued estimator against companion.measure_valued on replayed noise.
Statistical layer: each estimator (with and without the delta control variate) is unbiased for
the exact gradient; z-scores use a false-alarm rate of 1e-6 per test, Bonferroni over the
coordinates and configurations tested together.
"""

import math

import pytest
import torch
from scipy.stats import norm

from companion.bbvi import (
    ESTIMATORS,
    LogisticRegressionPosterior,
    _draw,
    _gradients,
    _per_sample,
    _taylor,
    fit_bbvi,
)
from companion.data import load_breast_cancer
from companion.measure_valued import measure_valued_gaussian_mean, measure_valued_gaussian_scale

DT = torch.float64
FALSE_ALARM = 1e-6


@pytest.fixture(scope="module")
def post():
    return LogisticRegressionPosterior(*load_breast_cancer())


def _point(seed, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    loc = 0.3 * torch.randn(31, dtype=DT, generator=g)
    return loc, scale * torch.exp(0.3 * torch.randn(31, dtype=DT, generator=g))


def _z(num_tests):
    return norm.isf(FALSE_ALARM / (2 * num_tests))


# ---------------------------------------------------------------- data


def test_load_breast_cancer_is_standardized_with_a_bias_column():
    X, y = load_breast_cancer()
    assert X.shape == (569, 31) and y.shape == (569,) and X.dtype == y.dtype == DT
    assert torch.allclose(X[:, :30].mean(0), torch.zeros(30, dtype=DT), atol=1e-12)
    assert torch.allclose(X[:, :30].std(0, unbiased=False), torch.ones(30, dtype=DT))
    assert torch.equal(X[:, 30], torch.ones(569, dtype=DT))
    assert set(y.tolist()) == {0.0, 1.0} and int(y.sum()) == 357  # 357 benign, 212 malignant
    X32, _ = load_breast_cancer(dtype=torch.float32)
    assert X32.dtype == torch.float32
    with pytest.raises(TypeError, match="dtype"):
        load_breast_cancer(dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype"):
        load_breast_cancer(dtype="float64")


# ---------------------------------------------------------------- exact layer


def test_expected_log_likelihood_matches_an_adaptive_integral(post):
    from scipy.integrate import quad

    loc, scale = _point(0, scale=1.0)
    X, y = post.X[::7], post.y[::7]  # every 7th data point: the test stays fast
    m = (X @ loc).numpy()
    s = ((X**2) @ scale**2).sqrt().numpy()
    reference = float(m @ y.numpy())
    for i in range(len(m)):

        def g(t, i=i):
            z = m[i] + s[i] * t
            return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) * math.exp(-t * t / 2)

        kink = -m[i] / s[i]
        value = quad(g, -12, kink, epsabs=1e-13)[0] + quad(g, kink, 12, epsabs=1e-13)[0]
        reference -= value / math.sqrt(2 * math.pi)
    sub = LogisticRegressionPosterior(X, y)
    assert abs(float(sub.expected_log_likelihood(loc, scale)) - reference) < 1e-9


def test_exact_elbo_matches_brute_force_monte_carlo(post):
    """Smallest detectable error: about 5 standard errors, ~0.1% of |E_q f| here."""
    loc, scale = _point(1)
    g = torch.Generator().manual_seed(2)
    w = loc + scale * torch.randn(20_000, 31, dtype=DT, generator=g)
    values = post.log_likelihood(w)
    stderr = values.std() / math.sqrt(len(values))
    exact = post.expected_log_likelihood(loc, scale)
    assert abs(float(values.mean() - exact)) <= _z(1) * float(stderr)
    # log_joint adds the prior density; elbo subtracts the closed-form KL
    kl_mc = torch.distributions.Normal(loc, scale).log_prob(w).sum(-1) - torch.distributions.Normal(
        0.0, 1.0
    ).log_prob(w).sum(-1)
    assert abs(float(kl_mc.mean() - post.kl(loc, scale))) <= _z(1) * float(kl_mc.std() / 141.4)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(w[:3]).sum(-1)
    assert torch.allclose(post.log_joint(w[:3]), post.log_likelihood(w[:3]) + prior)
    assert torch.allclose(post.elbo(loc, scale), exact - post.kl(loc, scale))


def test_exact_gradient_matches_finite_differences(post):
    loc, scale = _point(3)
    g_loc, g_scale = post.elbo_grad(loc, scale)
    h = 1e-5
    for d in (0, 7, 30):
        e = torch.zeros(31, dtype=DT)
        e[d] = h
        fd_loc = (post.elbo(loc + e, scale) - post.elbo(loc - e, scale)) / (2 * h)
        fd_scale = (post.elbo(loc, scale + e) - post.elbo(loc, scale - e)) / (2 * h)
        assert abs(float(fd_loc - g_loc[d])) < 1e-5 * (1 + abs(float(g_loc[d])))
        assert abs(float(fd_scale - g_scale[d])) < 1e-5 * (1 + abs(float(g_scale[d])))


def test_closed_form_gradient_and_hessian_match_autograd(post):
    w = _point(4)[0].requires_grad_()
    (grad,) = torch.autograd.grad(post.log_likelihood(w), w)
    assert torch.allclose(post.grad_log_likelihood(w.detach()), grad, rtol=1e-12, atol=1e-10)
    hess = torch.autograd.functional.hessian(post.log_likelihood, w.detach())
    assert torch.allclose(post.hessian_log_likelihood(w.detach()), hess, rtol=1e-10, atol=1e-9)


def test_measure_valued_replays_companion_measure_valued(post):
    loc, scale = _point(5)
    eps, w_plus, m, u = _draw("measure_valued", (1, 3, 31), DT, torch.Generator().manual_seed(6))
    g, _, _, _ = _gradients(
        post, "measure_valued", loc, scale, (eps, w_plus, m, u), None, 1.0, (None, None)
    )
    mean = measure_valued_gaussian_mean(
        post.log_likelihood, loc, scale, 3, noise=(eps[0], w_plus[0], None)
    )
    sd = measure_valued_gaussian_scale(
        post.log_likelihood, loc, scale, 3, noise=(eps[0], m[0], u[0])
    )
    assert torch.allclose(g[0, :31], mean.mean, rtol=1e-9, atol=1e-8)
    assert torch.allclose(g[0, 31:], sd.mean * scale, rtol=1e-9, atol=1e-8)  # chain rule to log σ


# ---------------------------------------------------------------- statistical layer

CONFIGS = [
    ("pathwise", None, None, 1.0),
    ("pathwise", "delta", None, 1.0),
    ("pathwise", "delta", None, "vector"),
    ("score", None, None, 1.0),
    ("score", None, "moving_average", 1.0),
    ("score", None, "leave_one_out", 1.0),
    ("score", "delta", None, 1.0),
    ("score", "delta", "leave_one_out", 1.0),
    ("score", "delta", "moving_average", "vector"),
    ("measure_valued", None, None, 1.0),
    ("measure_valued", "delta", None, 1.0),
]


@pytest.mark.parametrize("estimator, cv, baseline, beta", CONFIGS)
def test_each_estimator_is_unbiased_for_the_exact_gradient(post, estimator, cv, baseline, beta):
    """R independent 3-sample estimates; smallest detectable bias: z ≈ 6.3 of their stderr."""
    loc, scale = _point(7)
    exact_loc, exact_scale = post.expected_log_likelihood_grad(loc, scale)
    exact = torch.cat([exact_loc, exact_scale * scale])  # in (loc, log_scale)
    reps = 64 if estimator == "measure_valued" else 4000
    gen = torch.Generator().manual_seed(8 + ESTIMATORS.index(estimator))
    noise = _draw(estimator, (reps, 3, 31), DT, gen)
    taylor = _taylor(post, loc) if cv else None
    fixed = float(post.log_likelihood(loc))  # any constant is a valid moving-average value
    b = (fixed / 2, fixed) if baseline == "moving_average" else (baseline, baseline)
    if beta == "vector":  # any fixed coefficients, one per coordinate (as a pilot β̂*)
        beta = torch.linspace(-0.5, 1.5, 62, dtype=DT)
    g, plain, _, _ = _gradients(post, estimator, loc, scale, noise, taylor, beta, b)
    assert g.shape == plain.shape == (reps, 62)
    stderr = g.std(0) / math.sqrt(reps)
    z = ((g.mean(0) - exact) / stderr).abs()
    assert float(z.max()) <= _z(62), f"max |z| = {float(z.max()):.2f}"
    if cv is not None:  # the same draws without the control variate are unbiased too
        z_plain = ((plain.mean(0) - exact) / (plain.std(0) / math.sqrt(reps))).abs()
        assert float(z_plain.max()) <= _z(62)


def test_a_biased_estimate_is_caught(post):
    """Power: a 10% error in the exact gradient is detected by the unbiasedness test."""
    loc, scale = _point(7)
    exact_loc, exact_scale = post.expected_log_likelihood_grad(loc, scale)
    exact = torch.cat([exact_loc, exact_scale * scale])
    noise = _draw("pathwise", (4000, 4, 31), DT, torch.Generator().manual_seed(9))
    g, _, _, _ = _gradients(post, "pathwise", loc, scale, noise, None, 1.0, (None, None))
    z = ((g.mean(0) - 1.1 * exact) / (g.std(0) / math.sqrt(4000))).abs()
    assert float(z.max()) > _z(62)


# ---------------------------------------------------------------- fit_bbvi


def test_history_shapes_counting_and_determinism(post):
    h = fit_bbvi(
        post,
        "measure_valued",
        num_samples=2,
        lr=1e-3,
        num_steps=7,
        seed=0,
        control_variate="delta",
        log_every=3,
        variance_replicates=3,
    )
    assert h["step"].tolist() == [0, 3, 6, 7]
    for key in ("elbo", "variance", "variance_without_cv", "evaluations"):
        assert h[key].shape == (4,) and torch.isfinite(h[key]).all()
    # 2 samples x 4 x 31 evaluations, + 1 for the Taylor expansion, per step
    assert h["evaluations"].tolist() == [t * (2 * 4 * 31 + 1) for t in (0, 3, 6, 7)]
    assert h["loc"].shape == h["scale"].shape == (31,) and not h["diverged"]
    state = torch.random.get_rng_state()
    again = fit_bbvi(
        post,
        "measure_valued",
        num_samples=2,
        lr=1e-3,
        num_steps=7,
        seed=0,
        control_variate="delta",
        log_every=3,
        variance_replicates=3,
    )
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is untouched
    assert torch.equal(h["elbo"], again["elbo"]) and torch.equal(h["loc"], again["loc"])
    est = fit_bbvi(
        post,
        "score",
        num_samples=3,
        lr=1e-4,
        num_steps=4,
        seed=0,
        control_variate="delta",
        cv_coefficient="estimated",
        cv_pilot_samples=4,
        baseline="moving_average",
        log_every=2,
        variance_replicates=3,
    )
    assert est["evaluations"].tolist() == [0, 2 * 8, 4 * 8]  # (3 + 4 pilot) x 1 + 1 per step
    assert torch.isfinite(est["variance"]).all() and torch.isfinite(est["elbo"]).all()
    s = fit_bbvi(
        post,
        "score",
        num_samples=5,
        lr=1e-4,
        num_steps=4,
        seed=1,
        baseline="moving_average",
        log_every=10,
    )
    assert s["step"].tolist() == [0, 4] and s["evaluations"].tolist() == [0, 20]
    assert torch.isnan(s["variance_without_cv"]).all()  # no control variate: nothing to compare
    # logging settings never change the training trajectory
    quiet = fit_bbvi(
        post,
        "score",
        num_samples=5,
        lr=1e-4,
        num_steps=4,
        seed=1,
        baseline="moving_average",
        log_every=1,
        variance_replicates=0,
    )
    assert torch.equal(quiet["loc"], s["loc"]) and torch.isnan(quiet["variance"]).all()


def test_fit_improves_the_elbo_and_divergence_is_reported(post):
    h = fit_bbvi(post, "pathwise", num_samples=5, lr=1e-3, num_steps=50, seed=0, log_every=25)
    assert h["elbo"][-1] > h["elbo"][0] + 500  # from about -1227 at the prior
    a = fit_bbvi(
        post,
        "pathwise",
        num_samples=5,
        lr=0.05,
        num_steps=50,
        seed=0,
        optimizer="adam",
        log_every=25,
    )
    assert a["elbo"][-1] > a["elbo"][0] + 500
    bad = fit_bbvi(post, "score", num_samples=5, lr=1.0, num_steps=20, seed=0, log_every=5)
    assert bad["diverged"] and torch.isnan(bad["elbo"][-1]) and bad["step"].shape == (5,)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"estimator": "reinforce"}, ValueError, "estimator"),
        ({"estimator": None}, ValueError, "estimator"),
        ({"baseline": "mean"}, ValueError, "baseline"),
        ({"baseline": "moving_average"}, ValueError, "baseline"),  # with pathwise
        ({"control_variate": "taylor"}, ValueError, "control_variate"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": 2.0}, TypeError, "num_samples"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": "big"}, TypeError, "lr"),
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"log_every": 0}, ValueError, "log_every"),
        ({"cosine_decay": 1}, TypeError, "cosine_decay"),
        ({"cv_coefficient": math.nan}, ValueError, "cv_coefficient"),
        ({"cv_coefficient": "optimal"}, ValueError, "cv_coefficient"),
        ({"cv_coefficient": "Pooled"}, ValueError, "cv_coefficient"),
        ({"cv_coefficient": None}, TypeError, "cv_coefficient"),
        ({"cv_pilot_samples": 1}, ValueError, "cv_pilot_samples"),
        ({"baseline_decay": 1.0}, ValueError, "baseline_decay"),
        ({"variance_replicates": 1}, ValueError, "variance_replicates"),
        ({"variance_replicates": -1}, ValueError, "variance_replicates"),
    ],
)
def test_fit_bbvi_rejects_bad_input(post, kwargs, error, match):
    args = {"estimator": "pathwise", "num_samples": 2, "lr": 1e-3, "num_steps": 1, "seed": 0}
    args.update(kwargs)
    estimator = args.pop("estimator")
    with pytest.raises(error, match=match):
        fit_bbvi(post, estimator, **args)


def test_leave_one_out_needs_two_samples_and_posterior_type(post):
    with pytest.raises(ValueError, match="num_samples"):
        fit_bbvi(
            post, "score", num_samples=1, lr=1e-3, num_steps=1, seed=0, baseline="leave_one_out"
        )
    with pytest.raises(TypeError, match="posterior"):
        fit_bbvi("data", "score", num_samples=2, lr=1e-3, num_steps=1, seed=0)


def test_posterior_rejects_bad_input(post):
    X, y = post.X, post.y
    with pytest.raises(ValueError, match="X"):
        LogisticRegressionPosterior(X[0], y)
    with pytest.raises(TypeError, match="X"):
        LogisticRegressionPosterior(X.long(), y)
    with pytest.raises(ValueError, match="y"):
        LogisticRegressionPosterior(X, y[:-1])
    with pytest.raises(ValueError, match="y"):
        LogisticRegressionPosterior(X, 2 * y)
    with pytest.raises(ValueError, match="prior_scale"):
        LogisticRegressionPosterior(X, y, prior_scale=0.0)
    with pytest.raises(ValueError, match="num_nodes"):
        LogisticRegressionPosterior(X, y, num_nodes=301)
    loc, scale = _point(0)
    with pytest.raises(ValueError, match="scale"):
        post.elbo(loc, -scale)
    with pytest.raises(ValueError, match="loc"):
        post.elbo(loc[:3], scale)
    with pytest.raises(TypeError, match="loc"):
        post.elbo(loc.tolist(), scale)
    with pytest.raises(ValueError, match="w"):
        post.log_likelihood(torch.zeros(3, 30, dtype=DT))


def test_delta_control_variates_match_companion_control_variates(post):
    """The closed-form φ here equals the generic (autograd) one, (loc, scale) -> (loc, log σ)."""
    from companion.control_variates import (
        delta_pathwise_control_variate,
        delta_score_control_variate,
    )

    loc, scale = _point(11)
    (eps,) = _draw("score", (1, 6, 31), DT, torch.Generator().manual_seed(12))
    taylor = _taylor(post, loc)
    chain = torch.cat([torch.ones(31, dtype=DT), scale])  # ∂/∂log σ = σ ∂/∂σ
    phi, phi_mean = delta_pathwise_control_variate(post.log_likelihood, loc, scale, eps[0])
    _, centred = _per_sample(post, "pathwise", loc, scale, (eps,), taylor)
    assert torch.allclose(centred[0], (phi - phi_mean) * chain, rtol=1e-9, atol=1e-7)
    x = loc + scale * eps[0]
    phi, phi_mean = delta_score_control_variate(post.log_likelihood, loc, scale, x)
    _, centred = _per_sample(post, "score", loc, scale, (eps,), taylor)
    assert torch.allclose(centred[0], (phi - phi_mean) * chain, rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------- the pooled coefficient


def test_pooled_coefficient_is_one_number_per_block():
    """Σ_d Cov(g_d, φ_d) / (Σ_d Var φ_d + 1e-3) per block, moments with divisor P."""
    from companion.bbvi import _pooled_coefficient

    gen = torch.Generator().manual_seed(3)
    phi = torch.randn(25, 6, dtype=DT, generator=gen)
    g = torch.cat([2.0 * phi[:, :3], -0.5 * phi[:, 3:]], -1) + 0.1 * torch.randn(
        25, 6, dtype=DT, generator=gen
    )
    beta = _pooled_coefficient(g, phi, 3)
    assert beta.shape == (6,)
    for part in (slice(0, 3), slice(3, 6)):
        gc, pc = g[:, part] - g[:, part].mean(0), phi[:, part] - phi[:, part].mean(0)
        expected = (gc * pc).mean(0).sum() / ((pc**2).mean(0).sum() + 1e-3)
        assert torch.allclose(beta[part], expected.expand(3), rtol=1e-12)
    assert abs(beta[0].item() - 2.0) < 0.2 and abs(beta[3].item() + 0.5) < 0.1
    # batched: (R, P, 2D) -> (R, 2D), each replicate its own coefficient
    batched = _pooled_coefficient(torch.stack([g, -g]), phi.expand(2, 25, 6), 3)
    assert torch.allclose(batched, torch.stack([beta, -beta]), rtol=1e-12)


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_pooled_coefficient_from_separate_pilot_draws_is_unbiased(post, estimator):
    """Each replicate's β from its own 25 pilot draws, applied to 3 fresh ones: unbiased."""
    from companion.bbvi import _pooled_coefficient

    loc, scale = _point(7)
    exact_loc, exact_scale = post.expected_log_likelihood_grad(loc, scale)
    exact = torch.cat([exact_loc, exact_scale * scale])
    taylor = _taylor(post, loc)
    gen = torch.Generator().manual_seed(21)
    reps = 1500
    pilot = _draw(estimator, (reps, 25, 31), DT, gen)
    g_pilot, phi_pilot = _per_sample(post, estimator, loc, scale, pilot, taylor)
    beta = _pooled_coefficient(g_pilot, phi_pilot, 31)  # (reps, 62): independent of the draws below
    g, phi = _per_sample(
        post, estimator, loc, scale, _draw(estimator, (reps, 3, 31), DT, gen), taylor
    )
    est = (g - beta[:, None, :] * phi).mean(1)  # φ is centred: g − β (φ − E φ)
    z = ((est.mean(0) - exact) / (est.std(0) / math.sqrt(reps))).abs()
    assert float(z.max()) <= _z(62), f"max |z| = {float(z.max()):.2f}"
    # and it has power: a 10% error in the target is caught
    z_wrong = ((est.mean(0) - 1.1 * exact) / (est.std(0) / math.sqrt(reps))).abs()
    assert float(z_wrong.max()) > _z(62)


def test_fit_bbvi_with_the_pooled_coefficient(post):
    h = fit_bbvi(
        post,
        "score",
        num_samples=3,
        lr=1e-4,
        num_steps=4,
        seed=0,
        control_variate="delta",
        cv_coefficient="pooled",
        cv_pilot_samples=4,
        log_every=2,
        variance_replicates=3,
    )
    assert h["evaluations"].tolist() == [0, 2 * 8, 4 * 8]  # (3 + 4 pilot) x 1 + 1 per step
    assert torch.isfinite(h["variance"]).all() and torch.isfinite(h["elbo"]).all()
    # at the survey's rate 1e-3, where β = 1 fails, the pooled coefficient trains
    runs = {
        c: fit_bbvi(
            post,
            "score",
            num_samples=5,
            lr=1e-3,
            num_steps=100,
            seed=11,
            control_variate="delta",
            cv_coefficient=c,
            log_every=100,
            variance_replicates=0,
        )
        for c in (1.0, "pooled")
    }
    assert runs[1.0]["failed"] and not runs["pooled"]["failed"]
    assert runs["pooled"]["elbo"][-1] > runs["pooled"]["elbo"][0] + 500


def test_a_run_that_ends_below_its_start_is_failed(post):
    ok = fit_bbvi(post, "pathwise", num_samples=5, lr=1e-3, num_steps=20, seed=0, log_every=10)
    assert not ok["failed"] and not ok["diverged"]
    low = fit_bbvi(
        post,
        "score",
        num_samples=5,
        lr=1e-3,
        num_steps=100,
        seed=12,
        control_variate="delta",
        log_every=100,
        variance_replicates=0,
    )
    # finite but far below the start (about -7e9 against -1227): failed, not diverged
    assert torch.isfinite(low["elbo"]).all() and not low["diverged"] and low["failed"]
    bad = fit_bbvi(post, "score", num_samples=5, lr=1.0, num_steps=20, seed=0, log_every=5)
    assert bad["diverged"] and bad["failed"]
