"""Tests of companion.vae and companion.training.

Exact layer (float64): the ELBO replayed by hand on patched noise with explicit formulas; the
closed-form Gaussian KL against torch; chunked log-likelihood merging; checkpoints and
resumption, bit for bit. Statistical layer (companion.checks, false-alarm rate 1e-3 per
check, Bonferroni over coordinates): binarization frequencies, the KL by Monte Carlo,
E[L_1] = ELBO, the ordering of importance-weighted bounds, and the agreement in mean of the
pathwise, sticking-the-landing and score-function gradients at fixed parameters.
"""

import math

import pytest
import torch
from torch.distributions import kl_divergence

import companion.training as training
from companion.checks import check_at_least, check_close, check_mc
from companion.data import load_digits
from companion.montecarlo import summarize
from companion.seeding import seed_everything
from companion.vae import (
    SCALE_FLOOR,
    VAE,
    binarize,
    elbo_surrogate,
    gradient_draws,
    iwae_bound,
    log_likelihood,
    train,
)

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
    monkeypatch.setattr(torch.distributions.normal, "_standard_normal",
                        lambda shape, dtype, device: eps[:shape[0]].to(dtype))
    elbo = model.elbo(x, num_samples=3)
    elbo_kl = model.elbo(x, num_samples=3, analytic_kl=True)
    with torch.no_grad():
        loc, raw = model.encoder(x).chunk(2, dim=-1)
        scale = torch.log1p(torch.exp(raw)) + SCALE_FLOOR  # softplus
        z = loc + scale * eps  # (S, B, L)
        log_q = (-0.5 * eps**2 - torch.log(scale) - 0.5 * LOG_2PI).sum(-1)
        log_pz = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
        logits = model.decoder(z)  # (S, B, D)
        log_px = (x * logits - torch.log1p(torch.exp(logits))).sum(-1)  # Bernoulli pmf
        kl = 0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2)).sum(-1)
    check_close("ELBO = mean_s log p(x|z)+log p(z)-log q(z|x)", elbo,
                (log_px + log_pz - log_q).mean(0), rtol=1e-12, atol=1e-12, verbose=False)
    check_close("ELBO with analytic KL", elbo_kl, log_px.mean(0) - kl, rtol=1e-12, atol=1e-12,
                verbose=False)
    # iwae_bound with k = 1 is the single-draw log weight on the same noise
    check_close("L_1 = log w", iwae_bound(model, x, 1), (log_px + log_pz - log_q)[0],
                rtol=1e-12, atol=1e-12, verbose=False)


def test_kl_closed_form_matches_torch_and_monte_carlo():
    """KL(N(μ, σ²) || N(0, 1)) = ½ Σ(σ² + μ² - 1 - log σ²); the MC check resolves ~0.003 nats."""
    model, x = _small(), _binary(3, 6)
    q = model.encode(x)
    loc, scale = q.base_dist.loc.detach(), q.base_dist.scale.detach()
    closed = 0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2)).sum(-1)  # (B,)
    check_close("closed-form KL vs torch", closed, kl_divergence(q, model.prior).detach(),
                rtol=1e-12, verbose=False)
    seed_everything(3)
    with torch.no_grad():
        z = q.sample((200_000,))
        check_mc("E_q[log q - log p] = KL", q.log_prob(z) - model.prior.log_prob(z), closed,
                 verbose=False)


def test_log_likelihood_merges_chunks_exactly(monkeypatch):
    model, x = _small(), _binary(3, 6)
    seed_everything(4)
    table = torch.randn(100, 3) * 5  # fixed "log weights", consumed chunk by chunk
    used = []

    def fake_log_weights(x, num_samples, **kwargs):
        start = sum(used)
        used.append(num_samples)
        return table[start:start + num_samples]

    monkeypatch.setattr(model, "log_weights", fake_log_weights)
    got = log_likelihood(model, x, num_samples=100, chunk_size=30)
    assert used == [30, 30, 30, 10]
    check_close("chunked logsumexp", got, torch.logsumexp(table, 0) - math.log(100),
                rtol=1e-13, verbose=False)


def test_sticking_the_landing_keeps_the_value_and_drops_the_score(monkeypatch):
    model, x = _small(), _binary(4, 6)
    eps = torch.randn(2, 4, 2)
    monkeypatch.setattr(torch.distributions.normal, "_standard_normal",
                        lambda shape, dtype, device: eps[:shape[0]].to(dtype))
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


def test_binarize_frequencies_and_fixed_seed():
    grey = torch.tensor([0.0, 0.25, 0.5, 1.0])
    seed_everything(5)
    draws = binarize(grey.expand(20_000, 4))
    check_mc("P(pixel = 1) = grey level", draws, grey, verbose=False)
    assert torch.equal(binarize(grey.expand(5, 4), seed=7), binarize(grey.expand(5, 4), seed=7))
    binary = draws[:10]
    assert torch.equal(binarize(binary), binary)


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
    check_close("E[L_1] - ELBO", a.mean - b.mean, 0.0,
                stderr=(a.stderr**2 + b.stderr**2).sqrt(), verbose=False)


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


def test_gradient_estimators_agree_in_mean():
    """Pathwise, STL and score function (with and without LOO) estimate the same gradient.

    Every coordinate of the encoder's gradient (106 numbers) is compared, Bonferroni-
    corrected; each draw averages 400 samples of 3 images, 200 draws per estimator.
    """
    model, x = _small(data_dim=4, hidden_dim=6), _binary(3, 4)
    seed_everything(8)
    draws = {}
    for name, kwargs in {"pathwise": {}, "stl": {"estimator": "stl"},
                         "score_function": {"estimator": "score_function"},
                         "loo": {"estimator": "score_function", "baseline": "loo"}}.items():
        draws[name] = summarize(gradient_draws(model, x, num_samples=400, num_draws=200,
                                               **kwargs))
    ref = draws["pathwise"]
    assert ref.mean.shape == (sum(p.numel() for p in model.encoder.parameters()),)
    for name in ("stl", "score_function", "loo"):
        est = draws[name]
        check_close(f"{name} - pathwise", est.mean - ref.mean, 0.0,
                    stderr=(est.stderr**2 + ref.stderr**2).sqrt(), verbose=False)
    # the point of it all: the score-function draws are noisier than the pathwise ones
    assert (draws["score_function"].stderr.median() > 3 * ref.stderr.median())


def test_short_training_improves_test_elbo():
    data = load_digits(dtype=DT)
    seed_everything(9)
    model = VAE(64, 4, 32)
    test = binarize(data.test_x[:100], seed=training.TEST_BINARIZATION_SEED)
    with torch.no_grad():
        before = summarize(model.elbo(test.repeat(20, 1)).reshape(20, 100).mean(1))
    history = train(model, data.train_x[:400], data.test_x[:100], epochs=3, batch_size=50,
                    lr=3e-3, progress=False)
    assert len(history.train_elbo) == len(history.test_elbo) == len(history.seconds) == 3
    assert history.test_elbo[-1] > before.mean.item() + 3.0, (before.mean, history.test_elbo)
    sf = train(model, data.train_x[:200], epochs=1, batch_size=50, estimator="score_function",
               baseline="loo", num_samples=2, progress=False)
    assert sf.epochs == 1 and sf.test_elbo == [] and math.isfinite(sf.train_elbo[0])


def test_sample_and_reconstruct_shapes():
    model = _small()
    x = _binary(5, 6)
    s = model.sample(7)
    assert s.shape == (7, 6) and ((s == 0) | (s == 1)).all()
    r = model.reconstruct(torch.rand(5, 6))  # grey levels are fine for the encoder
    assert r.shape == (5, 6) and (r > 0).all() and (r < 1).all()
    assert model.elbo(x).shape == (5,) and iwae_bound(model, x, 4).shape == (5,)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.elbo(torch.full((2, 6), 0.5)), ValueError, "must be binary"),
    (lambda m: m.elbo(torch.zeros(2, 5)), ValueError, r"data_dim=6\), got shape \(2, 5\)"),
    (lambda m: m.elbo(torch.zeros(6)), ValueError, r"data_dim=6\), got shape \(6,\)"),
    (lambda m: m.encode(torch.full((2, 6), 2.0)), ValueError, r"values in \[0, 1\]"),
    (lambda m: m.elbo(torch.full((2, 6), float("nan"))), ValueError, "must be finite"),
    (lambda m: m.elbo(torch.zeros(2, 6), num_samples=0), ValueError, "num_samples"),
    (lambda m: m.decode(torch.zeros(3, 5)), ValueError, r"latent_dim=2"),
    (lambda m: iwae_bound("model", torch.zeros(2, 6)), TypeError, "companion.vae.VAE"),
    (lambda m: elbo_surrogate(m, torch.zeros(2, 6), estimator="reinforce"), ValueError,
     r"estimator must be one of \('pathwise', 'score_function', 'stl'\)"),
    (lambda m: elbo_surrogate(m, torch.zeros(2, 6), estimator="score_function",
                              baseline="mean"), ValueError, r"baseline must be one of \(None, 'loo'\)"),
    (lambda m: elbo_surrogate(m, torch.zeros(2, 6), estimator="score_function",
                              baseline="loo"), ValueError, "needs num_samples >= 2"),
    (lambda m: elbo_surrogate(m, torch.zeros(2, 6), baseline="loo", num_samples=2),
     ValueError, "applies to estimator='score_function' only"),
    (lambda m: train(m, torch.zeros(4, 6), resume=True), ValueError, "needs checkpoint"),
    (lambda m: train(m, torch.zeros(4, 6), lr=-1.0), ValueError, "lr must be"),
    (lambda m: train(m, torch.zeros(4, 7)), ValueError, r"data_dim=6"),
    (lambda m: binarize(torch.tensor([1.5])), ValueError, r"grey levels in \[0, 1\]"),
    (lambda m: VAE(0, 2, 3), ValueError, "data_dim"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call(_small())


# ---------------------------------------------------------------- checkpoints


def _run(path, epochs, resume, seed_model=None):
    data = load_digits(dtype=DT)
    if seed_model is None:
        with torch.random.fork_rng():  # a fresh model that leaves the global stream alone
            model = VAE(64, 3, 16)
    else:
        seed_everything(seed_model)
        model = VAE(64, 3, 16)
    history = train(model, data.train_x[:120], data.test_x[:40], epochs=epochs, batch_size=40,
                    checkpoint=path, resume=resume, progress=False)
    return model, history


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    whole_model, whole = _run(None, 4, False, seed_model=10)
    path = tmp_path / "vae.pt"
    _run(path, 2, False, seed_model=10)  # interrupted after two epochs ...
    state = torch.load(path, weights_only=True)
    assert set(state) == {"model", "optimizer", "epoch", "history", "options"}
    assert state["epoch"] == 2 and len(state["history"]["train_elbo"]) == 2
    model, resumed = _run(path, 4, True)  # ... and resumed with a fresh model object
    assert resumed.train_elbo == whole.train_elbo and resumed.test_elbo == whole.test_elbo
    for a, b in zip(model.state_dict().values(), whole_model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.load(path, weights_only=True)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt"]  # no temporary files
    with pytest.raises(ValueError, match="was written with"):
        train(model, torch.zeros(4, 64), epochs=5, estimator="stl", checkpoint=path, resume=True,
              progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "vae.pt"
    _run(path, 1, False, seed_model=11)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _run(path, 2, True)
    assert path.read_bytes() == before  # the old checkpoint survives intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda():
    data = load_digits(dtype=torch.float32)
    with torch.random.fork_rng():
        model = VAE(64, 2, 16).float()
    history = train(model, data.train_x[:200], data.test_x[:50], epochs=2, device="cuda",
                    progress=False)
    assert next(model.parameters()).is_cuda and len(history.test_elbo) == 2
    x = binarize(data.test_x[:10]).cuda()
    assert log_likelihood(model, x, 100, chunk_size=30).is_cuda
