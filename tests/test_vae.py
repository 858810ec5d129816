"""Tests of companion.vae (training is tested in test_training.py, binarize in test_data.py).

Exact layer (float64): the ELBO replayed by hand on patched noise with explicit formulas; the
closed-form Gaussian KL against torch; chunked log-likelihood merging. Statistical layer
(companion.checks, false-alarm rate 1e-3 per check): the KL by Monte Carlo, E[L_1] = ELBO
and the ordering of importance-weighted bounds. Errors: every bad argument raises a
TypeError or ValueError naming it, before anything is allocated.
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

import companion.vae as vae_module
from companion.checks import check_at_least, check_close, check_mc
from companion.data import binarize
from companion.montecarlo import summarize
from companion.seeding import seed_everything
from companion.vae import MAX_LOG_WEIGHTS, SCALE_FLOOR, VAE, iwae_bound, log_likelihood

DT = torch.float64
LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(autouse=True, scope="module")
def _one_thread_float64():
    """Small networks: one thread avoids oversubscription on shared machines."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(DT)
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


def _small(data_dim=6, latent_dim=2, hidden_dim=8, seed=0):
    seed_everything(seed)
    return VAE(data_dim, latent_dim, hidden_dim)


def _binary(n, d, seed=1):
    seed_everything(seed)
    return binarize(torch.rand(n, d))


# ---------------------------------------------------------------- exact layer


def test_elbo_equals_hand_computation_on_fixed_noise(monkeypatch):
    model, x = _small(), _binary(4, 6)
    eps = torch.randn(3, 4, 2)  # (S, B, L), fixed noise
    monkeypatch.setattr(
        torch.distributions.normal,
        "_standard_normal",
        lambda shape, dtype, device: eps[: shape[0]].to(dtype),
    )
    elbo = model.elbo(x, num_particles=3)
    elbo_kl = model.elbo(x, num_particles=3, analytic_kl=True)
    with torch.no_grad():
        loc, raw = model.encoder(x).chunk(2, dim=-1)
        scale = torch.log1p(torch.exp(raw)) + SCALE_FLOOR  # softplus
        z = loc + scale * eps  # (S, B, L)
        log_q = (-0.5 * eps**2 - torch.log(scale) - 0.5 * LOG_2PI).sum(-1)
        log_pz = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
        logits = model.decoder(z)  # (S, B, D)
        log_px = (x * logits - torch.log1p(torch.exp(logits))).sum(-1)  # Bernoulli pmf
        kl = 0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2)).sum(-1)
    check_close(
        "ELBO = mean_s log p(x|z)+log p(z)-log q(z|x)",
        elbo,
        (log_px + log_pz - log_q).mean(0),
        rtol=1e-12,
        atol=1e-12,
        verbose=False,
    )
    check_close(
        "ELBO with analytic KL", elbo_kl, log_px.mean(0) - kl, rtol=1e-12, atol=1e-12, verbose=False
    )
    # iwae_bound with k = 1 is the single-draw log weight on the same noise
    check_close(
        "L_1 = log w",
        iwae_bound(model, x, 1),
        (log_px + log_pz - log_q)[0],
        rtol=1e-12,
        atol=1e-12,
        verbose=False,
    )


def test_kl_closed_form_matches_torch_and_monte_carlo():
    """KL(N(μ, σ²) || N(0, 1)) = ½ Σ(σ² + μ² - 1 - log σ²); the MC check resolves ~0.003 nats."""
    model, x = _small(), _binary(3, 6)
    q = model.encode(x)
    loc, scale = q.base_dist.loc.detach(), q.base_dist.scale.detach()
    closed = 0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2)).sum(-1)  # (B,)
    check_close(
        "closed-form KL vs torch",
        closed,
        kl_divergence(q, model.prior).detach(),
        rtol=1e-12,
        verbose=False,
    )
    seed_everything(3)
    with torch.no_grad():
        z = q.sample((200_000,))
        check_mc(
            "E_q[log q - log p] = KL",
            q.log_prob(z) - model.prior.log_prob(z),
            closed,
            verbose=False,
        )


def test_log_likelihood_merges_chunks_exactly(monkeypatch):
    model, x = _small(), _binary(3, 6)
    seed_everything(4)
    table = torch.randn(100, 3) * 5  # fixed "log weights", consumed chunk by chunk
    used = []

    def fake_log_weights(model, x, num_particles):
        start = sum(used)
        used.append(num_particles)
        return table[start : start + num_particles]

    monkeypatch.setattr(vae_module, "_log_weights_grouped", fake_log_weights)
    got = log_likelihood(model, x, k=100, chunk_size=30)
    assert used == [30, 30, 30, 10]
    check_close(
        "chunked logsumexp",
        got,
        torch.logsumexp(table, 0) - math.log(100),
        rtol=1e-13,
        verbose=False,
    )


def test_sticking_the_landing_keeps_the_value_and_drops_the_score(monkeypatch):
    model, x = _small(), _binary(4, 6)
    eps = torch.randn(2, 4, 2)
    monkeypatch.setattr(
        torch.distributions.normal,
        "_standard_normal",
        lambda shape, dtype, device: eps[: shape[0]].to(dtype),
    )
    full = model.log_weights(x, 2)
    stl = model.log_weights(x, 2, sticking_the_landing=True)
    check_close("STL value", stl, full, rtol=0, atol=0, verbose=False)
    # The difference of the gradients is the score term: ∇φ of -log q at fixed z.
    q = model.encode(x)
    z = (q.base_dist.loc + q.base_dist.scale * eps).detach()
    params = list(model.encoder.parameters())
    g_full = torch.autograd.grad(full.sum(), params)
    g_stl = torch.autograd.grad(stl.sum(), params)
    g_score = torch.autograd.grad(-q.log_prob(z).sum(), params)
    for a, b, c in zip(g_full, g_stl, g_score):
        check_close("full - STL = -score", a - b, c, rtol=1e-10, atol=1e-12, verbose=False)


# ---------------------------------------------------------------- statistical layer


def test_iwae_with_one_sample_has_the_elbo_mean():
    """E[L_1] = ELBO: compared with the analytic-KL ELBO estimator on independent draws."""
    model = _small()
    x = _binary(2, 6).repeat(20_000, 1)  # (2R, D): R independent draws for each of 2 images
    seed_everything(6)
    with torch.no_grad():
        l1 = iwae_bound(model, x, 1).reshape(20_000, 2)
        elbo = model.elbo(x, analytic_kl=True).reshape(20_000, 2)
    a, b = summarize(l1), summarize(elbo)
    check_close(
        "E[L_1] - ELBO",
        a.mean - b.mean,
        0.0,
        stderr=(a.stderr**2 + b.stderr**2).sqrt(),
        verbose=False,
    )


def test_bounds_are_ordered():
    """E[L_1] <= E[L_5] <= E[L_50] <= E[log p̂ with n = 2000], per image, within z se.

    The decoder's weights are scaled up so that p(x | z) depends strongly on z and the
    posterior is far from q: the gaps are then several standard errors wide, and the
    reversed ordering is rejected.
    """
    model = _small(hidden_dim=16)
    with torch.no_grad():
        for layer in model.decoder[::2]:  # the Linear layers
            layer.weight *= 3
    reps = 200
    x = _binary(3, 6).repeat(reps, 1)  # (3R, D)
    seed_everything(7)
    values = [iwae_bound(model, x, k).detach().reshape(reps, 3) for k in (1, 5, 50)]
    values.append(log_likelihood(model, x, 2000).reshape(reps, 3))
    for low, high, name in zip(values, values[1:], ("L_5 - L_1", "L_50 - L_5", "LL - L_50")):
        gap = summarize(high - low)
        check_at_least(f"E[{name}] >= 0", gap.mean, 0.0, stderr=gap.stderr, verbose=False)
    # the checks have power: the reversed ordering fails
    gap = summarize(values[0] - values[1])
    with pytest.raises(AssertionError):
        check_at_least("E[L_1 - L_5] >= 0", gap.mean, 0.0, stderr=gap.stderr, verbose=False)


def test_sample_and_reconstruct_shapes():
    model = _small()
    x = _binary(5, 6)
    s = model.sample(7)
    assert s.shape == (7, 6) and ((s == 0) | (s == 1)).all()
    r = model.reconstruct(torch.rand(5, 6))  # grey levels are fine for the encoder
    assert r.shape == (5, 6) and (r > 0).all() and (r < 1).all()
    assert model.elbo(x).shape == (5,) and iwae_bound(model, x, 4).shape == (5,)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m.elbo(torch.full((2, 6), 0.5)), ValueError, "x must be binary"),
        (lambda m: m.elbo(torch.zeros(2, 5)), ValueError, r"data_dim=6\), got shape \(2, 5\)"),
        (lambda m: m.elbo(torch.zeros(6)), ValueError, r"data_dim=6\), got shape \(6,\)"),
        (lambda m: m.elbo("images"), TypeError, "x must be a number, array or tensor"),
        (
            lambda m: m.encode(torch.full((2, 6), 2.0)),
            ValueError,
            r"x must hold values in \[0, 1\]",
        ),
        (lambda m: m.elbo(torch.full((2, 6), float("nan"))), ValueError, "x must be finite"),
        (lambda m: m.encode(torch.full((2, 6), float("inf"))), ValueError, "x must be finite"),
        (
            lambda m: m.reconstruct(torch.full((2, 6), -float("inf"))),
            ValueError,
            "x must be finite",
        ),
        (
            lambda m: m.log_joint(torch.zeros(2, 6), torch.full((1, 2, 2), float("nan"))),
            ValueError,
            "z must be finite",
        ),
        (
            lambda m: m.elbo(torch.zeros(2, 6), num_particles=0),
            ValueError,
            "num_particles must be an integer >= 1, got 0",
        ),
        (lambda m: m.elbo(torch.zeros(2, 6), num_particles=2.5), TypeError, "num_particles"),
        (
            lambda m: m.log_weights(torch.zeros(2, 6), num_particles=True),
            TypeError,
            "num_particles",
        ),
        (
            lambda m: m.elbo(torch.zeros(2, 6), analytic_kl="no"),
            TypeError,
            "analytic_kl must be True or False, got str 'no'",
        ),
        (lambda m: m.elbo(torch.zeros(2, 6), analytic_kl=1), TypeError, "analytic_kl"),
        (
            lambda m: m.log_weights(torch.zeros(2, 6), sticking_the_landing="no"),
            TypeError,
            "sticking_the_landing must be True or False",
        ),
        (lambda m: m.decode(torch.zeros(3, 5)), ValueError, r"latent_dim=2"),
        (
            lambda m: m.decode(torch.zeros(3, 2, dtype=torch.int64)),
            TypeError,
            "z must be a floating-point tensor",
        ),
        (lambda m: m.decode([[0.0, 0.0]]), TypeError, "z must be a floating-point tensor"),
        (
            lambda m: m.decode(torch.tensor(0.0)),
            ValueError,
            r"z must have shape \(\.\.\., latent_dim=2\)",
        ),
        (lambda m: m.decode(torch.tensor([[0.0, float("inf")]])), ValueError, "z must be finite"),
        (lambda m: m.sample(0), ValueError, "num_images must be an integer >= 1, got 0"),
        (lambda m: m.sample(2.0), TypeError, "num_images"),
        (lambda m: m.sample(10**12), ValueError, r"num_images=1000000000000 would need about"),
        (
            lambda m: m.elbo(torch.zeros(2, 6), num_particles=10**12),
            ValueError,
            r"num_particles=1000000000000 would need about",
        ),
        (
            lambda m: m.check_images(torch.zeros(2, 5), binary=False, name="train_x"),
            ValueError,
            r"train_x must have shape \(batch, data_dim=6\)",
        ),
        (
            lambda m: m.check_images(torch.full((1, 6), 0.5), binary=True, name="test_x"),
            ValueError,
            "test_x must be binary",
        ),
        (
            lambda m: m.check_images(torch.zeros(1, 6), binary="yes"),
            TypeError,
            "binary must be True or False",
        ),
        (lambda m: m.check_draws(0, 3, name="k"), ValueError, "k must be an integer >= 1"),
        (
            lambda m: iwae_bound("model", torch.zeros(2, 6)),
            TypeError,
            "model must be a companion.vae.VAE, got str",
        ),
        (lambda m: iwae_bound(m, torch.zeros(2, 6), k=0), ValueError, "k must be an integer >= 1"),
        (lambda m: iwae_bound(m, torch.zeros(2, 6), k="5"), TypeError, "k must be an integer"),
        (
            lambda m: iwae_bound(m, torch.zeros(2, 6), k=10**12),
            ValueError,
            r"k=1000000000000 would need about",
        ),
        (lambda m: iwae_bound(m, torch.full((2, 6), float("nan"))), ValueError, "x must be finite"),
        (
            lambda m: log_likelihood(None, torch.zeros(2, 6)),
            TypeError,
            "model must be a companion.vae.VAE, got NoneType",
        ),
        (lambda m: log_likelihood(m, torch.zeros(2, 6), k=0), ValueError, "k must be"),
        (lambda m: log_likelihood(m, torch.zeros(2, 6), chunk_size=0), ValueError, "chunk_size"),
        (
            lambda m: log_likelihood(m, torch.zeros(2, 6), k=10**12),
            ValueError,
            r"k=1000000000000 for 2 images .* more than MAX_LOG_WEIGHTS",
        ),
        (lambda m: log_likelihood(m, torch.full((2, 6), 0.5)), ValueError, "x must be binary"),
        (lambda m: VAE(0, 2, 3), ValueError, "data_dim"),
        (lambda m: VAE(6, 2.0, 3), TypeError, "latent_dim"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call(_small())


def test_log_likelihood_refuses_impossible_sizes_before_computing(monkeypatch):
    """Too many log weights, or a chunk that cannot fit: refused before any draw is made."""
    model = _small()

    def no_draws(*args, **kwargs):
        raise AssertionError("log_weights was called")

    monkeypatch.setattr(model, "log_weights", no_draws)
    x = torch.zeros(1, 6)
    with pytest.raises(ValueError, match="MAX_LOG_WEIGHTS"):
        log_likelihood(model, x, k=MAX_LOG_WEIGHTS + 1)
    # at the limit, a chunk of 5e9 draws (5e9 x 8 float64 = 298 GiB) is refused naming chunk_size
    with pytest.raises(ValueError, match="chunk_size=5000000000 would need about 298 GiB"):
        log_likelihood(model, x, k=MAX_LOG_WEIGHTS, chunk_size=5 * 10**9)
    # when k is the smaller, the chunk is k draws, and k is named
    with pytest.raises(ValueError, match="k=10000000000 would need"):
        log_likelihood(model, x, k=MAX_LOG_WEIGHTS, chunk_size=10**12)
    with pytest.raises(ValueError, match="k=10000000000 would need"):
        iwae_bound(model, x, k=MAX_LOG_WEIGHTS)


def test_check_images_converts_and_names():
    model = _small()
    x = model.check_images(np.array([[0, 1, 1, 0, 1, 0]]), binary=True, name="batch")
    assert isinstance(x, torch.Tensor) and x.dtype == DT and x.shape == (1, 6)
    grey = torch.full((2, 6), 0.25, dtype=torch.float32, requires_grad=True)
    out = model.check_images(grey, binary=False)
    assert out.dtype == DT and not out.requires_grad and torch.equal(out, grey.detach().double())
    with pytest.raises(ValueError, match=r"batch must be finite, got 1 non-finite value\(s\)"):
        model.check_images([[0, 1, 1, 0, 1, float("nan")]], binary=False, name="batch")
    assert model.check_draws(7, 3, name="k") == 7


def test_vae_does_not_re_export_training_or_data():
    """Dependencies run one way: the model module holds the model and its bounds only."""
    for name in ("train", "History", "elbo_surrogate", "gradient_draws", "binarize"):
        assert not hasattr(vae_module, name), name
    assert set(vae_module.__all__) == {
        "VAE",
        "iwae_bound",
        "log_likelihood",
        "SCALE_FLOOR",
        "MAX_LOG_WEIGHTS",
        "EVAL_BYTES",
        "latent_usage",
        "ACTIVITY_THRESHOLD",
    }


def test_grouped_evaluation_does_not_depend_on_the_grouping(monkeypatch):
    """iwae_bound and log_likelihood give the same numbers on the same noise, in groups of 1."""
    model, x = _small(), _binary(7, 6)
    seed_everything(11)
    state = torch.get_rng_state()
    whole = (iwae_bound(model, x, k=5), log_likelihood(model, x, k=40, chunk_size=15))
    seen = []
    real = model._log_joint

    def spy(x, z):
        seen.append(x.shape[0])
        return real(x, z)

    monkeypatch.setattr(model, "_log_joint", spy)
    monkeypatch.setattr(vae_module, "EVAL_BYTES", 1)  # one image per group
    torch.set_rng_state(state)
    grouped = (iwae_bound(model, x, k=5), log_likelihood(model, x, k=40, chunk_size=15))
    assert set(seen) == {1} and len(seen) == 7 * (1 + 3)
    for a, b in zip(whole, grouped):
        check_close("grouped = whole", b, a.detach(), rtol=1e-12, atol=1e-12, verbose=False)


_MNIST_SHAPED = """
import resource, sys, time, torch
from companion.vae import VAE, iwae_bound, log_likelihood
torch.set_num_threads(2)
torch.manual_seed(0)
model = VAE(data_dim=784, latent_dim=16, hidden_dim=256).float()
x = (torch.rand(10_000, 784) < 0.13).float()  # MNIST's shape and about its density of ones
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    began = time.perf_counter()
    bound = iwae_bound(model, x, k=20)
    log_p = log_likelihood(model, x, k=20, chunk_size=10)
    seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, peak, seconds, bool(torch.isfinite(bound).all() and torch.isfinite(log_p).all()))
"""


@pytest.mark.slow
def test_evaluation_of_mnist_sized_test_set_stays_under_a_binder_budget():
    """10,000 images of 784 pixels, float32, L = 16, H = 256: peak memory under 1.5 GB.

    Unbatched, iwae_bound at k = 20 would hold several (20, 10000, 784) float32 tensors of
    0.63 GB each (at the IWAE paper's k = 50, 1.6 GB each). Synthetic binary images of
    MNIST's shape (memory does not depend on the pixel values); run in a fresh process so
    that its peak resident memory is its own.
    """
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _MNIST_SHAPED], capture_output=True, text=True, check=True
    ).stdout.split()
    peak_kb, finite = int(out[1]), out[3] == "True"
    assert finite
    assert peak_kb < 1.5 * 2**20, f"peak resident memory {peak_kb / 2**20:.2f} GB"


def test_latent_usage_is_the_variance_of_posterior_means_and_the_closed_form_kl():
    """A_l = Var_x E_q[z_l] (n − 1 denominator) and KL_l = mean_x KL(q_l || N(0, 1)), summing to
    the KL term of the ELBO; a unit whose q is the prior for every image has A_l = KL_l = 0."""
    from companion.vae import ACTIVITY_THRESHOLD, latent_usage

    seed_everything(0)
    model = VAE(6, 3, 8)
    x = binarize(torch.rand(7, 6))
    activity, kl = latent_usage(model, x)
    q = model.encode(x)
    check_close("activity", activity, q.base_dist.loc.var(0), rtol=1e-12)
    check_close(
        "sum of per-unit KL = the KL term",
        kl.sum(),
        kl_divergence(q, model.prior).mean(),
        rtol=1e-12,
    )
    with torch.no_grad():  # unit 0 switched off: loc 0 and raw scale giving σ = 1 for every x
        last = model.encoder[-1]
        for row in (0, 3):
            last.weight[row] = 0.0
        last.bias[0] = 0.0
        last.bias[3] = math.log(math.expm1(1.0 - SCALE_FLOOR))
    activity, kl = latent_usage(model, x)
    assert activity[0] == 0.0 and abs(kl[0].item()) < 1e-12 and activity[0] <= ACTIVITY_THRESHOLD
    with pytest.raises(ValueError, match="at least 2 images"):
        latent_usage(model, x[:1])
    with pytest.raises(TypeError, match="model must be"):
        latent_usage("vae", x)
