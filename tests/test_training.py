"""Tests of companion.training: the ELBO surrogates, train, gradient_draws.

Exact layer (float64): the surrogates' values are the log weights on the same noise;
gradient_draws' draws replayed by hand; checkpoints and resumption, bit for bit.
Statistical layer (companion.checks, false-alarm rate 1e-3 per check, Bonferroni over
coordinates): the pathwise, sticking-the-landing and score-function gradients agree in mean.
Failures: every bad argument raises a TypeError or ValueError naming it, and train's checks
(checkpoint path, device, a resumed checkpoint's compatibility, the data) all run before the
model is touched: after a failure the caller's model is bit for bit what it was.
"""

import ast
import math
from pathlib import Path

import pytest
import torch

import companion.training as training
from companion.checks import check_close
from companion.data import binarize, load_digits
from companion.montecarlo import Estimate, summarize
from companion.seeding import seed_everything
from companion.training import elbo_surrogate, gradient_draws, train
from companion.vae import VAE

DT = torch.float64
PACKAGE = Path(training.__file__).parent


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


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model, snapshot):
    """Every tensor bit-identical, same device and dtype, and no gradients left behind."""
    state = model.state_dict()
    assert list(state) == list(snapshot)
    for key, value in state.items():
        assert value.device == snapshot[key].device and value.dtype == snapshot[key].dtype, key
        assert torch.equal(value, snapshot[key]), key
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- exact layer


def test_surrogate_values_are_the_log_weights():
    """Every estimator shows log w = log p(x, z) - log q(z | x) on the same noise, (S, B)."""
    model, x = _small(), _binary(4, 6)
    with torch.random.fork_rng():
        reference = model.log_weights(x, 3).detach()
    assert reference.shape == (3, 4)
    for kwargs in (
        {},
        {"estimator": "stl"},
        {"estimator": "score_function"},
        {"estimator": "score_function", "baseline": "loo"},
    ):
        with torch.random.fork_rng():
            value = elbo_surrogate(model, x, num_particles=3, **kwargs)
        check_close(
            f"value of {kwargs}", value.detach(), reference, rtol=1e-13, atol=1e-13, verbose=False
        )


def test_gradient_draws_is_an_estimate_of_replayed_draws():
    model, x = _small(), _binary(3, 6)
    params = list(model.decoder.parameters())[-2:]  # the last layer's weight and bias
    with torch.random.fork_rng():
        est = gradient_draws(
            model, x, estimator="score_function", num_particles=2, num_draws=5, parameters=params
        )
    rows = []
    for _ in range(5):  # the same draws by hand, on the same stream
        value = elbo_surrogate(model, x, estimator="score_function", num_particles=2).mean()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(value, params)]))
    rows = torch.stack(rows)  # (R, P)
    assert isinstance(est, Estimate) and est.samples.shape == (5, 6 * 8 + 6)
    assert est.mean.shape == est.stderr.shape == (54,) and est.num_samples == 5
    check_close(
        "samples = replayed draws", est.samples, rows, rtol=1e-13, atol=1e-15, verbose=False
    )
    ref = summarize(rows)
    check_close("mean", est.mean, ref.mean, rtol=1e-13, atol=1e-15, verbose=False)
    check_close(
        "stderr = s / sqrt(R)", est.stderr, ref.stderr, rtol=1e-12, atol=1e-15, verbose=False
    )
    assert all(p.grad is None for p in model.parameters())  # .grad fields untouched


def test_score_function_gradient_is_the_literature_form_and_the_kept_term_is_minus_the_score():
    """Encoder gradient: (log w - b) ∇φ log q (NVIL form); keep_score_term adds -∇φ log q.

    Replayed on the same noise against autograd of hand-built per-draw terms; the decoder's
    gradient, ∇θ log p(x | z), is the same with and without the term.
    """
    model, x = _small(), _binary(3, 6)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())

    def flat(value, params):
        return torch.cat(
            [g.flatten() for g in torch.autograd.grad(value, params, retain_graph=True)]
        )

    state = torch.get_rng_state()
    draws = {}
    for keep in (False, True):
        torch.set_rng_state(state)
        value = elbo_surrogate(
            model,
            x,
            estimator="score_function",
            baseline="loo",
            num_particles=3,
            keep_score_term=keep,
        ).mean()
        draws[keep] = (flat(value, enc), flat(value, dec))
    torch.set_rng_state(state)
    q = model.encode(x)
    z = q.sample((3,))  # the same draws
    log_q = q.log_prob(z)  # (S, B)
    log_w = (model.log_joint(x, z) - log_q).detach()
    b = (log_w.sum(0, keepdim=True) - log_w) / 2  # leave-one-out mean of the other two
    reinforce = flat(((log_w - b) * log_q).mean(), enc)
    minus_score = flat(-log_q.mean(), enc)
    check_close("NVIL form", draws[False][0], reinforce, rtol=1e-12, atol=1e-14, verbose=False)
    check_close(
        "kept term = -score",
        draws[True][0],
        reinforce + minus_score,
        rtol=1e-12,
        atol=1e-14,
        verbose=False,
    )
    check_close(
        "decoder unchanged", draws[True][1], draws[False][1], rtol=1e-13, atol=1e-15, verbose=False
    )
    assert minus_score.abs().max() > 1e-3  # the term is not trivially zero here


# ---------------------------------------------------------------- statistical layer


def test_gradient_estimators_agree_in_mean():
    """Pathwise, STL and score function (with and without LOO) estimate the same gradient.

    Every coordinate of the encoder's gradient (100 numbers) is compared, Bonferroni-
    corrected; each draw averages 400 particles of 3 images, 200 draws per estimator.
    """
    model, x = _small(data_dim=4, hidden_dim=6), _binary(3, 4)
    seed_everything(8)
    draws = {}
    for name, kwargs in {
        "pathwise": {},
        "stl": {"estimator": "stl"},
        "score_function": {"estimator": "score_function"},
        "loo": {"estimator": "score_function", "baseline": "loo"},
        "kept": {"estimator": "score_function", "baseline": "loo", "keep_score_term": True},
    }.items():
        draws[name] = gradient_draws(model, x, num_particles=400, num_draws=200, **kwargs)
    ref = draws["pathwise"]
    assert ref.mean.shape == (sum(p.numel() for p in model.encoder.parameters()),)
    assert ref.samples.shape == (200, 100)
    for name in ("stl", "score_function", "loo", "kept"):
        est = draws[name]
        check_close(
            f"{name} - pathwise",
            est.mean - ref.mean,
            0.0,
            stderr=(est.stderr**2 + ref.stderr**2).sqrt(),
            verbose=False,
        )
    # the point of it all: the score-function draws are noisier than the pathwise ones
    assert draws["score_function"].stderr.median() > 3 * ref.stderr.median()


def test_short_training_improves_test_elbo():
    data = load_digits(dtype=DT)
    seed_everything(9)
    model = VAE(64, 4, 32)
    test = binarize(data.test_x[:100], seed=training.TEST_BINARIZATION_SEED)
    with torch.no_grad():
        before = summarize(model.elbo(test.repeat(20, 1)).reshape(20, 100).mean(1))
    history = train(
        model,
        data.train_x[:400],
        data.test_x[:100],
        epochs=3,
        batch_size=50,
        lr=3e-3,
        progress=False,
    )
    assert isinstance(history, training.History) and history.epochs == 3
    assert len(history.train_elbo) == len(history.test_elbo) == len(history.seconds) == 3
    assert history.test_elbo[-1] > before.mean.item() + 3.0, (before.mean, history.test_elbo)
    sf = train(
        model,
        data.train_x[:200],
        epochs=1,
        batch_size=50,
        estimator="score_function",
        baseline="loo",
        num_particles=2,
        progress=False,
    )
    assert sf.epochs == 1 and sf.test_elbo == [] and math.isfinite(sf.train_elbo[0])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda m: elbo_surrogate(None, torch.zeros(2, 6)),
            TypeError,
            "model must be a companion.vae.VAE, got NoneType",
        ),
        (
            lambda m: elbo_surrogate(m, torch.zeros(2, 6), estimator="reinforce"),
            ValueError,
            r"estimator must be one of \('pathwise', 'score_function', 'stl', 'dreg'\)",
        ),
        (
            lambda m: elbo_surrogate(m, torch.zeros(2, 6), estimator=3),
            TypeError,
            "estimator must be one of",
        ),
        (
            lambda m: elbo_surrogate(
                m, torch.zeros(2, 6), estimator="score_function", baseline="mean"
            ),
            ValueError,
            r"baseline must be one of \(None, 'loo'\)",
        ),
        (
            lambda m: elbo_surrogate(
                m, torch.zeros(2, 6), estimator="score_function", baseline="loo"
            ),
            ValueError,
            "needs num_particles >= 2",
        ),
        (
            lambda m: elbo_surrogate(m, torch.zeros(2, 6), baseline="loo", num_particles=2),
            ValueError,
            "applies to estimator='score_function' only",
        ),
        (
            lambda m: elbo_surrogate(m, torch.zeros(2, 6), keep_score_term=True),
            ValueError,
            "keep_score_term=True applies to estimator='score_function' only",
        ),
        (
            lambda m: elbo_surrogate(
                m, torch.zeros(2, 6), estimator="score_function", keep_score_term="yes"
            ),
            TypeError,
            "keep_score_term",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), estimator="stl", keep_score_term=True),
            ValueError,
            "keep_score_term=True applies to estimator='score_function' only",
        ),
        (
            lambda m: elbo_surrogate(m, torch.zeros(2, 6), num_particles=0),
            ValueError,
            "num_particles must be an integer >= 1",
        ),
        (
            lambda m: elbo_surrogate(
                m, torch.zeros(2, 6), estimator="score_function", num_particles=10**12
            ),
            ValueError,
            "num_particles=1000000000000 would need about",
        ),
        (
            lambda m: elbo_surrogate(m, torch.full((2, 6), float("nan"))),
            ValueError,
            "x must be finite",
        ),
        (
            lambda m: elbo_surrogate(m, torch.full((2, 6), 0.5), estimator="score_function"),
            ValueError,
            "x must be binary",
        ),
        (
            lambda m: gradient_draws("model", torch.zeros(2, 6)),
            TypeError,
            "model must be a companion.vae.VAE, got str",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), num_draws=1),
            ValueError,
            "num_draws must be an integer >= 2, got 1",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), num_draws=10**15),
            ValueError,
            "num_draws=1000000000000000 would need about",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), num_particles=10**12),
            ValueError,
            "num_particles=1000000000000 would need about",
        ),
        (
            lambda m: gradient_draws(
                m, torch.zeros(2, 6), estimator="stl", baseline="loo", num_particles=2
            ),
            ValueError,
            "applies to estimator=",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), parameters=m.prior_loc),
            TypeError,
            "parameters must be None or a sequence",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), parameters=[]),
            ValueError,
            "parameters must be a non-empty sequence",
        ),
        (
            lambda m: gradient_draws(m, torch.zeros(2, 6), parameters=[1.0]),
            TypeError,
            r"parameters\[0\] must be a parameter of model",
        ),
        (
            lambda m: gradient_draws(
                m, torch.zeros(2, 6), parameters=[torch.zeros(3, requires_grad=True)]
            ),
            ValueError,
            r"parameters\[0\] is not a parameter of model",
        ),
        (
            lambda m: gradient_draws(m, torch.full((2, 6), float("inf"))),
            ValueError,
            "x must be finite",
        ),
        (lambda m: train(None, torch.zeros(4, 6)), TypeError, "model must be a companion.vae.VAE"),
        (lambda m: train(m, torch.zeros(4, 6), resume=True), ValueError, "needs checkpoint"),
        (lambda m: train(m, torch.zeros(4, 6), lr=-1.0), ValueError, "lr must be a number > 0"),
        (lambda m: train(m, torch.zeros(4, 6), lr=float("nan")), ValueError, "lr must be"),
        (lambda m: train(m, torch.zeros(4, 6), lr="fast"), TypeError, "lr must be a number"),
        (lambda m: train(m, torch.zeros(4, 6), epochs=0), ValueError, "epochs"),
        (lambda m: train(m, torch.zeros(4, 6), batch_size=2.0), TypeError, "batch_size"),
        (
            lambda m: train(m, torch.zeros(4, 6), progress="no"),
            TypeError,
            "progress must be True or False, got str 'no'",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), resume="no", checkpoint="c.pt"),
            TypeError,
            "resume must be True or False",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), checkpoint=3),
            TypeError,
            "checkpoint must be None or a path",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), device=0),
            TypeError,
            "device must be None, a string or a torch.device",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), device="nowhere"),
            ValueError,
            "device must name a torch device",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), num_particles=10**12),
            ValueError,
            "num_particles=1000000000000 would need about",
        ),
        (
            lambda m: train(m, torch.zeros(4, 7)),
            ValueError,
            r"train_x must have shape \(batch, data_dim=6\)",
        ),
        (lambda m: train(m, torch.zeros(0, 6)), ValueError, "train_x must hold at least one image"),
        (
            lambda m: train(m, torch.full((4, 6), float("nan"))),
            ValueError,
            "train_x must be finite",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), torch.full((2, 6), 2.0)),
            ValueError,
            r"test_x must hold values in \[0, 1\]",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), torch.full((2, 6), float("inf"))),
            ValueError,
            "test_x must be finite",
        ),
        (
            lambda m: train(m, torch.zeros(4, 6), torch.zeros(2, 5)),
            ValueError,
            r"test_x must have shape",
        ),
    ],
)
def test_bad_input_is_named_and_changes_nothing(call, error, match, monkeypatch):
    model = _small()
    before = _snapshot(model)
    monkeypatch.setattr(training.torch.optim, "Adam", None)  # no optimizer is ever built
    with pytest.raises(error, match=match):
        call(model)
    _assert_unchanged(model, before)


def _never_train(monkeypatch):
    """Make any epoch fail loudly: the checks must all run before the first one."""

    def fail(*args, **kwargs):
        raise AssertionError("an epoch started")

    monkeypatch.setattr(training, "elbo_surrogate", fail)
    monkeypatch.setattr(training, "_save", fail)


@pytest.mark.parametrize(
    "where, match",
    [
        (
            "missing/c.pt",
            r"checkpoint '.*missing/c\.pt' is in '.*missing', which is not an existing directory",
        ),
        ("a_file/c.pt", "which is not an existing directory"),
        ("a_dir", r"checkpoint must be the path of a file, got '.*a_dir', which is a directory"),
        ("", "checkpoint must be the path of a file"),  # Path("") is the current directory
    ],
)
@pytest.mark.parametrize("resume", [False, True])
def test_bad_checkpoint_path_raises_before_any_epoch(tmp_path, monkeypatch, where, match, resume):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "a_dir").mkdir()
    monkeypatch.chdir(tmp_path)
    _never_train(monkeypatch)
    model = _small()
    before = _snapshot(model)
    checkpoint = where if where == "" else tmp_path / where
    with pytest.raises(ValueError, match=match):
        train(model, torch.zeros(4, 6), checkpoint=checkpoint, resume=resume, progress=False)
    _assert_unchanged(model, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]


def test_unwritable_checkpoint_directory_is_refused(tmp_path, monkeypatch):
    _never_train(monkeypatch)
    monkeypatch.setattr(training.os, "access", lambda path, mode: False)
    model = _small()
    before = _snapshot(model)
    with pytest.raises(ValueError, match="where this process cannot write"):
        train(model, torch.zeros(4, 6), checkpoint=tmp_path / "c.pt", progress=False)
    _assert_unchanged(model, before)


@pytest.mark.parametrize(
    "device, match",
    [
        ("meta", "device='meta' holds shapes but no values"),
        (torch.device("meta"), "holds shapes but no values"),
        pytest.param(
            "cuda",
            "device='cuda' but CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"),
        ),
        ("cuda:99", "device='cuda:99'"),
        ("cpu:nowhere", "device must name a torch device"),
    ],
)
def test_unusable_device_raises_and_leaves_the_model(monkeypatch, device, match):
    _never_train(monkeypatch)
    model = _small()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        train(model, torch.zeros(4, 6), device=device, progress=False)
    _assert_unchanged(model, before)
    assert model.prior_loc.device.type == "cpu"


def test_model_on_meta_is_refused():
    with torch.device("meta"):
        model = VAE(6, 2, 8)
    with pytest.raises(ValueError, match="model's tensors are on the meta device"):
        train(model, torch.zeros(4, 6), progress=False)


# ---------------------------------------------------------------- checkpoints


def _run(path, epochs, resume, seed_model=None, latent_dim=3):
    data = load_digits(dtype=DT)
    if seed_model is None:
        with torch.random.fork_rng():  # a fresh model that leaves the global stream alone
            model = VAE(64, latent_dim, 16)
    else:
        seed_everything(seed_model)
        model = VAE(64, latent_dim, 16)
    history = train(
        model,
        data.train_x[:120],
        data.test_x[:40],
        epochs=epochs,
        batch_size=40,
        checkpoint=path,
        resume=resume,
        progress=False,
    )
    return model, history


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    whole_model, whole = _run(None, 4, False, seed_model=10)
    path = tmp_path / "vae.pt"
    _run(path, 2, False, seed_model=10)  # interrupted after two epochs ...
    state = torch.load(path, weights_only=True)
    assert set(state) == set(training.CHECKPOINT_KEYS)
    assert state["epoch"] == 2 and len(state["history"]["train_elbo"]) == 2
    assert state["options"] == {
        "estimator": "pathwise",
        "baseline": None,
        "num_particles": 1,
        "batch_size": 40,
        "lr": 1e-3,
    }
    model, resumed = _run(path, 4, True)  # ... and resumed with a fresh model object
    assert resumed.train_elbo == whole.train_elbo and resumed.test_elbo == whole.test_elbo
    for a, b in zip(model.state_dict().values(), whole_model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.load(path, weights_only=True)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt"]  # no temporary files
    # resuming a finished run trains no further and returns the saved history
    again, history = _run(path, 4, True)
    assert history.train_elbo == whole.train_elbo
    for a, b in zip(again.state_dict().values(), whole_model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    path = tmp_path / "new.pt"
    _, history = _run(path, 1, True, seed_model=12)
    assert history.epochs == 1 and torch.load(path, weights_only=True)["epoch"] == 1


def _edit(path, target, change):
    """A copy of the checkpoint at ``path``, written to ``target`` after ``change(state)``."""
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, target)
    return target


def _zero_optimizer_params(state):
    state["optimizer"]["param_groups"][0]["params"] = [0]


def _bad_moment(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(1)


def _float32(state):
    state["model"] = {k: v.float() for k, v in state["model"].items()}


@pytest.mark.parametrize(
    "change, kwargs, match",
    [
        (None, {"estimator": "stl"}, r"was written with \{'estimator': 'pathwise'"),
        (None, {"batch_size": 20}, "was written with"),
        (None, {"lr": 1e-2}, "was written with"),
        (None, {"epochs": 1}, "epochs=1, but checkpoint .* has already trained 2 epochs"),
        (None, {"test_x": None}, "was written with test_x"),
        (_zero_optimizer_params, {}, "does not fit the model and its Adam optimizer"),
        (_bad_moment, {}, r"the optimizer.s exp_avg of parameter 0 is a tensor of shape \(1,\)"),
        (_float32, {}, "has dtype torch.float32, the model's torch.float64"),
        (lambda s: s.pop("history"), {}, "was not written by train"),
        (lambda s: s.update(epoch=3), {}, "epoch 3 does not match its history of 2 epochs"),
        (lambda s: s.update(history={"loss": []}), {}, "its history has the fields"),
        (lambda s: s["model"].pop("prior_loc"), {}, r"keys missing \['prior_loc'\]"),
    ],
)
def test_failed_resume_leaves_the_model_exactly_as_it_was(
    tmp_path, monkeypatch, change, kwargs, match
):
    path = tmp_path / "vae.pt"
    _run(path, 2, False, seed_model=13)
    if change is not None:
        path = _edit(path, tmp_path / "edited.pt", change)
    data = load_digits(dtype=DT)
    seed_everything(14)
    model = VAE(64, 3, 16)
    before = _snapshot(model)
    _never_train(monkeypatch)
    args = {"test_x": data.test_x[:40], "epochs": 4, "batch_size": 40, **kwargs}
    with pytest.raises(ValueError, match=r"checkpoint|epochs=") as info:
        train(model, data.train_x[:120], checkpoint=path, resume=True, progress=False, **args)
    assert info.match(match)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("latent_dim, hidden_dim", [(4, 16), (3, 8)])
def test_resume_from_another_architecture_changes_nothing(
    tmp_path, monkeypatch, latent_dim, hidden_dim
):
    path = tmp_path / "vae.pt"
    _run(path, 1, False, seed_model=15)  # VAE(64, 3, 16)
    data = load_digits(dtype=DT)
    seed_everything(16)
    model = VAE(64, latent_dim, hidden_dim)
    before = _snapshot(model)
    _never_train(monkeypatch)
    with pytest.raises(ValueError, match=r"checkpoint '.*vae\.pt' holds another architecture"):
        train(
            model,
            data.train_x[:120],
            data.test_x[:40],
            epochs=2,
            batch_size=40,
            checkpoint=path,
            resume=True,
            progress=False,
        )
    _assert_unchanged(model, before)


def test_unreadable_checkpoint_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "vae.pt"
    path.write_bytes(b"not a checkpoint")
    model = _small()
    before = _snapshot(model)
    _never_train(monkeypatch)
    with pytest.raises(ValueError, match=r"checkpoint '.*vae\.pt' could not be read"):
        train(model, torch.zeros(4, 6), checkpoint=path, resume=True, progress=False)
    _assert_unchanged(model, before)
    assert path.read_bytes() == b"not a checkpoint"


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
def test_trains_on_cuda(tmp_path):
    data = load_digits(dtype=torch.float32)
    with torch.random.fork_rng():
        model = VAE(64, 2, 16).float()
    path = tmp_path / "vae.pt"
    history = train(
        model,
        data.train_x[:200],
        data.test_x[:50],
        epochs=2,
        device="cuda",
        progress=False,
        checkpoint=path,
    )
    assert next(model.parameters()).is_cuda and len(history.test_elbo) == 2
    x = binarize(data.test_x[:10]).cuda()
    assert model.elbo(x).is_cuda and model.sample(3).is_cuda
    est = gradient_draws(model, x, num_draws=3)
    assert est.samples.is_cuda and est.samples.shape[0] == 3
    # resume on the CPU from the CUDA checkpoint, into a CPU copy of the model
    cpu_model = VAE(64, 2, 16).float()
    resumed = train(
        cpu_model,
        data.train_x[:200],
        data.test_x[:50],
        epochs=3,
        progress=False,
        checkpoint=path,
        resume=True,
    )
    assert resumed.epochs == 3 and cpu_model.prior_loc.device.type == "cpu"
    with pytest.raises(ValueError, match="device='cuda:99'"):
        train(cpu_model, data.train_x[:10], device="cuda:99", progress=False)
    from companion.vae import log_likelihood

    assert log_likelihood(model, x, 100, chunk_size=30).is_cuda


# ---------------------------------------------------------------- dependencies


def _imports(module: str):
    """(module imported from, names, top level?) for every import in companion/<module>.py."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", [a.name for a in node.names], node.level, id(node) in top
        elif isinstance(node, ast.Import):
            yield "", [a.name for a in node.names], 0, id(node) in top


def test_dependencies_run_one_way():
    """vae and data never import training; companion imports at the top; no private names.

    (Optional third-party packages, such as scikit-learn in load_digits, may load lazily.)
    """
    for module in ("vae", "data", "training"):
        for source, names, level, at_top in _imports(module):
            inside = level > 0 or source.startswith("companion")
            assert at_top or not inside, f"{module}.py imports {names} inside a function"
            if inside and source.split(".")[-1] != "_validation":
                assert not any(n.startswith("_") for n in names), (module, source, names)
            if module in ("vae", "data"):
                assert "training" not in source and "training" not in names, module
    training_sources = {source for source, _, level, _ in _imports("training") if level}
    assert {"vae", "data"} <= training_sources


# ------------------------------------------------------- KL weight, warm-up, free bits, IWAE


def test_kl_weighted_objective_at_weight_one_is_the_elbo_and_free_bits_floor_each_unit():
    """ω = 1 without a floor: the pathwise ELBO estimate, value and gradient, on the same noise.

    With a floor λ: mean log p(x|z) − ω Σ_l max(λ, KL_l), KL_l in closed form, batch mean."""
    model, x = _small(), _binary(5, 6)
    params = list(model.parameters())
    with torch.random.fork_rng():
        goal, log_w = training._kl_weighted_objective(model, x, 3, 1.0, 0.0)
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(goal, params)])
    reference = elbo_surrogate(model, x, num_particles=3)
    ref_grad = torch.autograd.grad(reference.mean(), params)
    check_close(
        "ω = 1: the ELBO's gradient",
        grad,
        torch.cat([g.flatten() for g in ref_grad]),
        rtol=1e-12,
        atol=1e-14,
    )
    check_close("ω = 1: the log weights", log_w, reference.detach(), rtol=1e-12)
    for weight, lam in ((2.0, 0.0), (0.5, 0.3), (1.0, 5.0)):
        with torch.random.fork_rng():
            goal, log_w = training._kl_weighted_objective(model, x, 3, weight, lam)
        q = model.encode(x)
        z = q.rsample((3,))
        log_lik = model.decode(z).log_prob(x)
        ratio = model.prior.log_prob(z) - q.log_prob(z)
        if lam > 0:
            loc, scale = q.base_dist.loc, q.base_dist.scale
            kl_unit = (0.5 * (scale**2 + loc**2 - 1) - scale.log()).mean(0)  # (L,)
            expected = log_lik.mean() - weight * kl_unit.clamp_min(lam).sum()
        else:
            expected = (log_lik + weight * ratio).mean()
        check_close(f"ω = {weight}, λ = {lam}: objective", goal, expected, rtol=1e-12)
        check_close(
            f"ω = {weight}, λ = {lam}: log weights", log_w, (log_lik + ratio).detach(), rtol=1e-12
        )


def test_warmup_raises_the_kl_weight_linearly_from_zero(monkeypatch):
    """Two epochs of warm-up with two steps each: ω = 0, 1/4, 1/2, 3/4, then the plain ELBO."""
    weights = []
    original = training._kl_weighted_objective

    def record(model, x, num_particles, kl_weight, free_bits):
        weights.append(kl_weight)
        return original(model, x, num_particles, kl_weight, free_bits)

    monkeypatch.setattr(training, "_kl_weighted_objective", record)
    calls = []
    plain = training.elbo_surrogate
    monkeypatch.setattr(
        training, "elbo_surrogate", lambda *a, **k: calls.append(1) or plain(*a, **k)
    )
    model = _small()
    history = train(
        model, torch.rand(40, 6), epochs=3, batch_size=20, warmup_epochs=2, progress=False
    )
    assert weights == [0.0, 0.25, 0.5, 0.75] and len(calls) == 2  # the third epoch: ω = 1
    assert history.epochs == 3 and all(math.isfinite(v) for v in history.train_elbo)
    weights.clear()
    train(
        _small(),
        torch.rand(40, 6),
        epochs=1,
        batch_size=20,
        kl_weight=2.0,
        free_bits=0.1,
        progress=False,
    )
    assert weights == [2.0, 2.0]


def test_iwae_surrogates_value_and_exact_gradients():
    """Pathwise: the value is iwae_bound on the same noise, and so is its gradient.

    DReG: the same value; at k = 1 its encoder gradient is STL's; at any k its decoder
    gradient is the pathwise one (sum_j w̃_j ∇θ log p(x, z_j)), all on the same noise."""
    model, x = _small(), _binary(4, 6)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())

    def grads(value, params):
        return torch.cat(
            [g.flatten() for g in torch.autograd.grad(value.sum(), params, retain_graph=True)]
        )

    from companion.vae import iwae_bound

    for k in (1, 5):
        with torch.random.fork_rng():
            path = training._iwae_surrogate(model, x, k, "pathwise")
        with torch.random.fork_rng():
            dreg = training._iwae_surrogate(model, x, k, "dreg")
        with torch.random.fork_rng():
            reference = iwae_bound(model, x, k=k)
        check_close(f"k = {k}: pathwise value = iwae_bound", path, reference, rtol=1e-12)
        check_close(f"k = {k}: DReG value = iwae_bound", dreg, reference, rtol=1e-12)
        check_close(
            f"k = {k}: pathwise gradient = iwae_bound's",
            grads(path, enc + dec),
            grads(reference, enc + dec),
            rtol=1e-12,
            atol=1e-14,
        )
        check_close(
            f"k = {k}: DReG's decoder gradient = pathwise",
            grads(dreg, dec),
            grads(path, dec),
            rtol=1e-10,
            atol=1e-13,
        )
        if k == 1:
            with torch.random.fork_rng():
                stl = model.log_weights(x, 1, sticking_the_landing=True)[0]
            check_close(
                "k = 1: DReG's encoder gradient = STL's",
                grads(dreg, enc),
                grads(stl, enc),
                rtol=1e-10,
                atol=1e-13,
            )


@pytest.mark.slow
def test_dreg_and_pathwise_iwae_gradients_agree_in_mean():
    """DReG is unbiased: along the pathwise mean its draws agree with pathwise draws (k = 5)."""
    from companion.checks import check_agree

    model, x = _small(seed=3), _binary(8, 6)
    seed_everything(4)
    v = gradient_draws(model, x, objective="iwae", num_particles=5, num_draws=200).mean
    path = gradient_draws(model, x, objective="iwae", num_particles=5, num_draws=2000).samples
    dreg = gradient_draws(
        model, x, objective="iwae", num_particles=5, num_draws=2000, estimator="dreg"
    ).samples
    check_agree("DReG and pathwise gradients of L_5 agree in mean", dreg, path, direction=v)


def test_iwae_training_runs_and_records_its_options(tmp_path):
    model, path = _small(), tmp_path / "iwae.pt"
    history = train(
        model,
        torch.rand(30, 6),
        torch.rand(10, 6),
        epochs=2,
        batch_size=10,
        objective="iwae",
        num_particles=3,
        estimator="dreg",
        checkpoint=path,
        progress=False,
    )
    assert history.epochs == 2 and len(history.test_elbo) == 2
    options = torch.load(path, weights_only=True)["options"]
    assert options["objective"] == "iwae" and options["estimator"] == "dreg"
    train(
        _small(),
        torch.rand(30, 6),
        epochs=1,
        batch_size=10,
        free_bits=0.2,
        checkpoint=path,
        progress=False,
    )
    assert torch.load(path, weights_only=True)["options"]["free_bits"] == 0.2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(objective="iwea"), ValueError, "objective must be one of"),
        (dict(objective=1), TypeError, "objective must be one of"),
        (dict(objective="iwae", estimator="stl"), ValueError, "STL is biased"),
        (dict(objective="iwae", estimator="score_function"), ValueError, "objective='iwae'"),
        (dict(estimator="dreg"), ValueError, "objective='iwae' only"),
        (dict(kl_weight=-1.0), ValueError, "kl_weight"),
        (dict(kl_weight="2"), TypeError, "kl_weight"),
        (dict(kl_weight=float("nan")), ValueError, "kl_weight"),
        (dict(warmup_epochs=-1), ValueError, "warmup_epochs"),
        (dict(warmup_epochs=1.5), TypeError, "warmup_epochs"),
        (dict(free_bits=-0.1), ValueError, "free_bits"),
        (dict(free_bits=0.1, estimator="stl"), ValueError, "free_bits apply"),
        (dict(kl_weight=2.0, objective="iwae"), ValueError, "kl_weight"),
    ],
)
def test_bad_objective_options_are_named(kwargs, error, match):
    model = _small()
    snapshot = _snapshot(model)
    with pytest.raises(error, match=match):
        train(model, torch.rand(10, 6), epochs=1, progress=False, **kwargs)
    _assert_unchanged(model, snapshot)
    if "kl_weight" not in kwargs and "free_bits" not in kwargs and "warmup_epochs" not in kwargs:
        with pytest.raises(error, match=match):
            gradient_draws(model, _binary(3, 6), num_draws=2, **kwargs)
