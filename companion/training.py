"""Training a :class:`companion.vae.VAE` with pathwise or score-function gradients.

:func:`elbo_surrogate` is the heart: per-draw log weights whose *value* is the ELBO sample
log w = log p(x, z) - log q(z | x) and whose *gradient* is the chosen estimator (the
surrogate trick of :mod:`companion.surrogates`). :func:`train` runs Adam on it with dynamic
binarization, atomic checkpoints and resumption; :func:`gradient_draws` returns independent
gradient draws at fixed parameters, to measure an estimator's variance (Chapter 5).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ._validation import as_tensor, check_positive_int, describe
from .surrogates import score_function_surrogate, surrogate_objective

ESTIMATORS = ("pathwise", "score_function", "stl")
BASELINES = (None, "loo")
TEST_BINARIZATION_SEED = 0
"""Seed of the private generator that binarizes ``test_x`` once, identically in every run."""


def _check_options(estimator, baseline, num_samples) -> int:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not (baseline is None or (isinstance(baseline, str) and baseline == "loo")):
        raise ValueError(f"baseline must be one of {BASELINES}, got {describe(baseline)}")
    num_samples = check_positive_int("num_samples", num_samples)
    if baseline is not None and estimator != "score_function":
        raise ValueError(f"baseline={baseline!r} applies to estimator='score_function' only, "
                         f"got estimator={estimator!r}")
    if baseline == "loo" and num_samples < 2:
        raise ValueError(f"baseline='loo' needs num_samples >= 2 (each draw's baseline is the "
                         f"mean of the other draws of the same image), got {num_samples}")
    return num_samples


def elbo_surrogate(model, x, *, estimator: str = "pathwise", baseline=None,
                   num_samples: int = 1) -> torch.Tensor:
    """Per-draw ELBO samples, shape ``(S, batch)``, whose gradient is the chosen estimator.

    The value is always log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x); average it
    and call ``backward()`` to get an unbiased estimate of the ELBO's gradient.

    - ``"pathwise"``: z_s = loc + scale * eps_s (``rsample``); the gradient flows through z
      (Kingma & Welling 2014).
    - ``"stl"``: as pathwise, but q's parameters are detached inside log q: the score term,
      of mean zero, is dropped (sticking the landing, Roeder et al. 2017).
    - ``"score_function"``: z_s drawn with ``sample()``, so no gradient flows through z. The
      surrogate is score_function_surrogate(log q, log w, baseline) + log w. Its gradient with
      respect to the encoder φ is (log w - b) ∇φ log q - ∇φ log q: the REINFORCE term plus
      the direct dependence of -log q on φ. That second term is minus the score, which has
      mean zero; it is kept (it is part of the exact gradient identity, and costs nothing)
      but adds only noise. The decoder θ gets the ordinary gradient ∇θ log p(x | z_s),
      exactly as in pathwise training: only the encoder's gradient differs.
      ``baseline="loo"`` uses b_s = mean of the other S - 1 log weights of the same image
      (Kool et al. 2019), which keeps the estimate unbiased.

    Args:
        model: a :class:`companion.vae.VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        estimator: one of :data:`ESTIMATORS`.
        baseline: None or ``"loo"`` (score function only; needs ``num_samples >= 2``).
        num_samples: S draws of z per image.
    """
    num_samples = _check_options(estimator, baseline, num_samples)
    if estimator != "score_function":
        return model.log_weights(x, num_samples, sticking_the_landing=estimator == "stl")
    q = model.encode(x)
    z = q.sample((num_samples,))  # (S, B, L): no path from z back to the encoder
    log_q = q.log_prob(z)  # (S, B): graph to the encoder through loc and scale
    log_w = model.log_joint(x, z) - log_q  # (S, B): graph to the decoder and the encoder
    surrogate = score_function_surrogate(log_q, log_w, baseline) + log_w
    return surrogate_objective(log_w, surrogate)


@dataclass
class History:
    """Per-epoch learning curves of :func:`train`, in nats per image.

    Attributes:
        train_elbo: mean of the minibatch ELBO estimates over the epoch (the parameters move
            during the epoch, so this lags the end-of-epoch model slightly).
        test_elbo: single-sample ELBO averaged over the (fixed-binarized) test set at the end
            of each epoch; empty without ``test_x``.
        seconds: wall-clock time of each epoch.
    """

    train_elbo: list = field(default_factory=list)
    test_elbo: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_elbo)


def _save(path: Path, state: dict) -> None:
    """torch.save to a temporary file in the same directory, then rename (atomic)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _check_train_args(model, epochs, batch_size, lr, checkpoint, resume):
    from .vae import VAE  # here, not at import time: vae.py re-exports this module

    if not isinstance(model, VAE):
        raise TypeError(f"model must be a companion.vae.VAE, got {describe(model)}")
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a number > 0, got {describe(lr)}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be None or a path, got {describe(checkpoint)}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    return epochs, batch_size, None if checkpoint is None else Path(checkpoint)


def train(model, train_x, test_x=None, *, epochs: int = 30, batch_size: int = 100,
          lr: float = 1e-3, estimator: str = "pathwise", baseline=None, num_samples: int = 1,
          progress: bool = True, checkpoint=None, resume: bool = False, device=None) -> History:
    """Maximize the ELBO with Adam and minibatches; return per-epoch learning curves.

    Each epoch shuffles ``train_x`` and binarizes every batch afresh (dynamic binarization,
    see :mod:`companion.vae`); the gradient comes from :func:`elbo_surrogate`. ``test_x``
    is binarized once with a private generator (:data:`TEST_BINARIZATION_SEED`), so every
    run and every resumed run is scored on the same binary images. Randomness otherwise
    comes from the global torch generator: this function never seeds.

    Cost: every estimator evaluates the decoder ``num_samples`` times per image per step, so
    runs with equal ``epochs``, ``batch_size`` and ``num_samples`` have equal budgets.

    Args:
        model: a :class:`companion.vae.VAE`, trained in place.
        train_x: grey levels (or binary images) in [0, 1], shape ``(n, data_dim)``.
        test_x: optional held-out images, same format.
        epochs: total number of epochs (a resumed run continues up to it).
        batch_size, lr: minibatch size and Adam's learning rate.
        estimator: ``"pathwise"``, ``"score_function"`` or ``"stl"``.
        baseline: None or ``"loo"`` (score function; needs ``num_samples >= 2``).
        num_samples: draws of z per image per step.
        progress: show a tqdm progress bar over epochs.
        checkpoint: a path; after every epoch {model, optimizer, epoch, history, options}
            is written there atomically (temporary file + ``os.replace``).
        resume: continue from ``checkpoint`` when it exists (loaded with
            ``weights_only=True``); the options must match the saved ones.
        device: where to train (e.g. ``"cuda"``); default the model's current device.

    Returns:
        A :class:`History`; resumed runs return the saved history extended.
    """
    epochs, batch_size, path = _check_train_args(model, epochs, batch_size, lr, checkpoint,
                                                 resume)
    num_samples = _check_options(estimator, baseline, num_samples)
    if device is not None:
        model.to(device)
    from .vae import binarize

    param = model.prior_loc
    train_x = model._check_x(as_tensor("train_x", train_x), binary=False)
    if test_x is not None:
        test_x = binarize(model._check_x(as_tensor("test_x", test_x), binary=False),
                          seed=TEST_BINARIZATION_SEED)
    options = {"estimator": estimator, "baseline": baseline, "num_samples": num_samples}
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = History(), 0
    if resume and path.exists():
        state = torch.load(path, map_location=param.device, weights_only=True)
        if state["options"] != options:
            raise ValueError(f"checkpoint {path} was written with {state['options']}, "
                             f"but resume was called with {options}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start = History(**state["history"]), state["epoch"]
    n = train_x.shape[0]
    bar = tqdm(range(start, epochs), disable=not progress, desc=f"{estimator} VAE",
               initial=start, total=epochs)
    for epoch in bar:
        began, total = time.perf_counter(), 0.0
        model.train()
        for idx in torch.randperm(n).split(batch_size):  # CPU generator: same on any device
            x = binarize(train_x[idx.to(train_x.device)])  # dynamic binarization
            value = elbo_surrogate(model, x, estimator=estimator, baseline=baseline,
                                   num_samples=num_samples)  # (S, B)
            optimizer.zero_grad(set_to_none=True)
            (-value.mean()).backward()  # ascend the ELBO
            optimizer.step()
            total += value.detach().mean(dim=0).sum().item()
        history.train_elbo.append(total / n)
        model.eval()
        if test_x is not None:
            with torch.no_grad():
                history.test_elbo.append(model.elbo(test_x).mean().item())
        history.seconds.append(time.perf_counter() - began)
        bar.set_postfix(train=f"{history.train_elbo[-1]:.2f}",
                        test=f"{history.test_elbo[-1]:.2f}" if history.test_elbo else "-")
        if path is not None:
            _save(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "epoch": epoch + 1, "history": asdict(history), "options": options})
    return history


def gradient_draws(model, x, *, estimator: str = "pathwise", baseline=None,
                   num_samples: int = 1, num_draws: int = 100, parameters=None) -> torch.Tensor:
    """Independent draws of the ELBO-gradient estimate at the model's current parameters.

    Draw r is ∇ of the batch mean of :func:`elbo_surrogate`, i.e. the gradient one training
    step would use (ascent direction), with fresh noise each time: their mean estimates
    ∇ mean_b ELBO(x_b), their spread measures the estimator's variance. One backward pass per
    draw (a loop over draws; each draw is vectorized over the batch and the S samples).

    Args:
        model: a :class:`companion.vae.VAE`; its ``.grad`` fields are left untouched.
        x: binary images, shape ``(batch, data_dim)``.
        estimator, baseline, num_samples: as in :func:`elbo_surrogate`.
        num_draws: R >= 2.
        parameters: the tensors to differentiate; default the encoder's parameters.

    Returns:
        Shape ``(R, P)``: row r is draw r, flattened over the P entries of ``parameters``
        (in the order of ``model.encoder.parameters()`` by default).
    """
    num_draws = check_positive_int("num_draws", num_draws, minimum=2)
    params = list(model.encoder.parameters() if parameters is None else parameters)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("parameters must be a non-empty sequence of tensors that require grad")
    rows = []
    for _ in range(num_draws):
        value = elbo_surrogate(model, x, estimator=estimator, baseline=baseline,
                               num_samples=num_samples).mean()
        grads = torch.autograd.grad(value, params, allow_unused=True)
        rows.append(torch.cat([torch.zeros_like(p).flatten() if g is None else g.flatten()
                               for p, g in zip(params, grads)]))
    return torch.stack(rows)
