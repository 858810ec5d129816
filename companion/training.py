"""Training a :class:`companion.vae.VAE` with pathwise or score-function gradients.

:func:`elbo_surrogate` is the heart: per-draw log weights whose *value* is the ELBO sample
log w = log p(x, z) - log q(z | x) and whose *gradient* is the chosen estimator (the
surrogate trick of :mod:`companion.surrogates`). :func:`train` runs Adam on it with dynamic
binarization, atomic checkpoints and resumption; :func:`gradient_draws` returns independent
gradient draws at fixed parameters, as an :class:`companion.montecarlo.Estimate`, to measure
an estimator's variance (Chapter 5).

Dependencies run one way: this module builds on :mod:`companion.vae` and
:mod:`companion.data`, which never import it. :func:`train` checks every argument, the
checkpoint path, the device and a resumed checkpoint's compatibility before it touches the
model, so that bad input raises and leaves the caller's model exactly as it was.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch.distributions import Normal, kl_divergence
from tqdm import tqdm

from ._validation import check_allocation, check_bool, check_positive_int, check_real, describe
from .data import binarize
from .montecarlo import Estimate
from .surrogates import score_function_surrogate, surrogate_objective
from .vae import VAE

ESTIMATORS = ("pathwise", "score_function", "stl", "dreg")
"""``"dreg"`` (doubly reparameterized, Tucker et al. 2019) applies to ``objective="iwae"`` only."""
BASELINES = (None, "loo")
OBJECTIVES = ("elbo", "iwae")
"""What :func:`train` maximizes: the ELBO (S draws averaged), or the IWAE bound L_k with k = S."""
TEST_BINARIZATION_SEED = 0
"""Seed of the private generator that binarizes ``test_x`` once, identically in every run."""
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "options")
"""The entries of a checkpoint written by :func:`train`."""


def _check_model(model) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a companion.vae.VAE, got {describe(model)}")
    return model


def _check_options(
    estimator, baseline, num_particles, keep_score_term=False, objective="elbo"
) -> int:
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        kind = ValueError if isinstance(objective, str) else TypeError
        raise kind(f"objective must be one of {OBJECTIVES}, got {describe(objective)}")
    if not isinstance(estimator, str):
        raise TypeError(f"estimator must be one of {ESTIMATORS}, got {describe(estimator)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not (baseline is None or (isinstance(baseline, str) and baseline == "loo")):
        raise ValueError(f"baseline must be one of {BASELINES}, got {describe(baseline)}")
    num_particles = check_positive_int("num_particles", num_particles)
    if check_bool("keep_score_term", keep_score_term) and estimator != "score_function":
        raise ValueError(
            f"keep_score_term=True applies to estimator='score_function' only, "
            f"got estimator={estimator!r}"
        )
    if baseline is not None and estimator != "score_function":
        raise ValueError(
            f"baseline={baseline!r} applies to estimator='score_function' only, "
            f"got estimator={estimator!r}"
        )
    if baseline == "loo" and num_particles < 2:
        raise ValueError(
            f"baseline='loo' needs num_particles >= 2 (each draw's baseline is "
            f"the mean of the other draws of the same image), got {num_particles}"
        )
    if objective == "iwae" and estimator not in ("pathwise", "dreg"):
        raise ValueError(
            f"objective='iwae' takes estimator='pathwise' or 'dreg' (STL is biased for "
            f"the IWAE bound), got estimator={estimator!r}"
        )
    if objective == "elbo" and estimator == "dreg":
        raise ValueError(
            "estimator='dreg' applies to objective='iwae' only; for the ELBO use 'stl'"
        )
    return num_particles


def elbo_surrogate(
    model,
    x,
    *,
    estimator: str = "pathwise",
    baseline=None,
    num_particles: int = 1,
    keep_score_term: bool = False,
) -> torch.Tensor:
    """Per-draw ELBO samples, shape ``(S, batch)``, whose gradient is the chosen estimator.

    The value is always log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x); average it
    and call ``backward()`` to get an unbiased estimate of the ELBO's gradient.

    - ``"pathwise"``: z_s = loc + scale * eps_s (``rsample``); the gradient flows through z
      (Kingma & Welling 2014).
    - ``"stl"``: as pathwise, but q's parameters are detached inside log q: the score term,
      of mean zero, is dropped (sticking the landing, Roeder et al. 2017).
    - ``"score_function"``: z_s drawn with ``sample()``, so no gradient flows through z. The
      surrogate is score_function_surrogate(log q, log w, baseline) + log p(x, z_s), whose
      gradient with respect to the encoder φ is (log w - b) ∇φ log q, the form of the
      literature's REINFORCE-style VAE estimators (NVIL, Mnih & Gregor 2014). The exact
      single-sample gradient of log w also has the term -∇φ log q (the direct dependence
      of -log q on φ); it has mean zero, so dropping it keeps the estimate unbiased, and
      it only adds variance. ``keep_score_term=True`` keeps it (surrogate
      score_function_surrogate(...) + log w), so that its cost can be measured (Chapter 5).
      The decoder θ gets the ordinary gradient ∇θ log p(x | z_s), exactly as in pathwise
      training: only the encoder's gradient differs. ``baseline="loo"`` uses b_s = mean of
      the other S - 1 log weights of the same image (Kool et al. 2019), which keeps the
      estimate unbiased.

    Args:
        model: a :class:`companion.vae.VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        estimator: one of :data:`ESTIMATORS`.
        baseline: None or ``"loo"`` (score function only; needs ``num_particles >= 2``).
        num_particles: S >= 1 draws of z per image.
        keep_score_term: exactly True or False (score function only): keep the mean-zero
            term -∇φ log q in each draw (True) or drop it as the literature does (False).

    Returns:
        Shape ``(S, batch)``, with the graph to the model's parameters.
    """
    model = _check_model(model)
    num_particles = _check_options(estimator, baseline, num_particles, keep_score_term)
    x = model.check_images(x, binary=True)
    num_particles = model.check_draws(num_particles, x.shape[0], name="num_particles")
    if estimator != "score_function":
        return model.log_weights(x, num_particles, sticking_the_landing=estimator == "stl")
    q = model.encode(x)
    z = q.sample((num_particles,))  # (S, B, L): no path from z back to the encoder
    log_q = q.log_prob(z)  # (S, B): graph to the encoder through loc and scale
    log_joint = model.log_joint(x, z)  # (S, B): graph to the decoder only
    log_w = log_joint - log_q  # (S, B)
    reinforce = score_function_surrogate(log_q, log_w, baseline)  # (log w - b) ∇φ log q
    surrogate = reinforce + (log_w if keep_score_term else log_joint)
    return surrogate_objective(log_w, surrogate)


def _iwae_surrogate(model: VAE, x: torch.Tensor, k: int, estimator: str) -> torch.Tensor:
    """Per-image values of L_k = logsumexp_j(log w_j) - log k, shape ``(batch,)``.

    ``"pathwise"``: the gradient of L_k through z_j = loc + scale * eps_j (Burda et al.
    2016). ``"dreg"``: the doubly reparameterized gradient (Tucker et al. 2019, eq. 7): for
    the encoder sum_j stop(w̃_j²) ∇φ log w_j with q's parameters detached inside log q
    (the path term only), w̃_j = w_j / sum_i w_i; for the decoder the usual
    sum_j w̃_j ∇θ log p(x, z_j), from a second decoder pass on the stopped z (so the
    decoder's part is not reweighted by w̃_j²). The value is L_k in both cases.
    """
    if estimator == "pathwise":
        return torch.logsumexp(model.log_weights(x, k), dim=0) - math.log(k)
    q = model._encode(x)
    z = q.rsample((k,))  # (k, B, L)
    base = q.base_dist
    fixed_q = Normal(base.loc.detach(), base.scale.detach(), validate_args=False)
    log_w = model._log_joint(x, z) - fixed_q.log_prob(z).sum(-1)  # (k, B): path term only
    w_tilde = torch.softmax(log_w.detach(), dim=0)  # (k, B), self-normalized weights
    decoder_part = model._log_joint(x, z.detach())  # (k, B): graph to θ only
    surrogate = (w_tilde**2 * log_w + (w_tilde - w_tilde**2) * decoder_part).sum(0)  # (B,)
    value = torch.logsumexp(log_w.detach(), dim=0) - math.log(k)
    return surrogate_objective(value, surrogate)


def _kl_weighted_objective(
    model: VAE, x: torch.Tensor, num_particles: int, kl_weight: float, free_bits: float
):
    """(objective, log weights): E log p(x|z) - ω KL, or with the KL floored per unit.

    The log-likelihood term is the pathwise estimate over S draws. Without free bits the
    KL term is the Monte Carlo one, log q(z|x) - log p(z) at the same draws (so that at
    ω = 1 the objective is the ELBO estimate that :func:`elbo_surrogate` differentiates).
    With free bits λ > 0 (Kingma et al. 2016, §C.8) it is ω sum_l max(λ, KL_l), KL_l the
    closed-form KL of unit l averaged over the minibatch. Returns a scalar to maximize and
    the log weights ``(S, batch)``, detached, for the learning curve.
    """
    q = model._encode(x)
    z = q.rsample((num_particles,))  # (S, B, L)
    log_lik = model._decode(z).log_prob(x)  # (S, B)
    log_ratio = model.prior.log_prob(z) - q.log_prob(z)  # (S, B): minus a KL draw
    if free_bits > 0:
        kl_unit = kl_divergence(q.base_dist, Normal(0.0, 1.0)).mean(0)  # (L,), batch mean
        objective = log_lik.mean() - kl_weight * kl_unit.clamp_min(free_bits).sum()
    else:
        objective = (log_lik + kl_weight * log_ratio).mean()
    return objective, (log_lik + log_ratio).detach()


def _check_kl_options(kl_weight, warmup_epochs, free_bits, estimator, objective):
    kl_weight = check_real("kl_weight", kl_weight, minimum=0.0)
    warmup_epochs = check_positive_int("warmup_epochs", warmup_epochs, minimum=0)
    free_bits = check_real("free_bits", free_bits, minimum=0.0)
    changed = kl_weight != 1.0 or warmup_epochs > 0 or free_bits > 0
    if changed and (estimator != "pathwise" or objective != "elbo"):
        raise ValueError(
            f"kl_weight, warmup_epochs and free_bits apply to estimator='pathwise' with "
            f"objective='elbo', got estimator={estimator!r}, objective={objective!r}"
        )
    return kl_weight, warmup_epochs, free_bits


@dataclass
class History:
    """Per-epoch learning curves of :func:`train`, in nats per image.

    Attributes:
        train_elbo: mean of the minibatch ELBO estimates over the epoch (the parameters move
            during the epoch, so this lags the end-of-epoch model slightly); for IWAE
            training, of the minibatch estimates of L_k.
        test_elbo: single-sample ELBO averaged over the (fixed-binarized) test set at the end
            of each epoch; empty without ``test_x``.
        seconds: wall-clock time of each epoch.
    """

    train_elbo: list = field(default_factory=list)
    test_elbo: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def __post_init__(self):
        for f in fields(self):
            values = getattr(self, f.name)
            if not isinstance(values, list):
                raise TypeError(f"{f.name} must be a list of numbers, got {describe(values)}")
            for i, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"{f.name}[{i}] must be a real number, got {describe(value)}")
                if not math.isfinite(value):
                    raise ValueError(f"{f.name}[{i}] must be finite, got {value}")
        if len(self.seconds) != len(self.train_elbo):
            raise ValueError(
                f"train_elbo and seconds must hold one entry per epoch, got "
                f"{len(self.train_elbo)} and {len(self.seconds)}"
            )
        if len(self.test_elbo) not in (0, len(self.train_elbo)):
            raise ValueError(
                f"test_elbo must be empty (no test_x) or hold one entry per epoch "
                f"({len(self.train_elbo)}), got {len(self.test_elbo)}"
            )

    @property
    def epochs(self) -> int:
        return len(self.train_elbo)


# ---------------------------------------------------------------- checks of train's arguments


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a number > 0, got {describe(lr)}")
    if not 0 < lr < math.inf:
        raise ValueError(f"lr must be a number > 0, got {lr}")
    return float(lr)


def _check_checkpoint(checkpoint, resume: bool) -> Path | None:
    """The checkpoint's path, once its directory exists and it is not itself a directory."""
    if checkpoint is None:
        if resume:
            raise ValueError("resume=True needs checkpoint=<path> to resume from")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be None or a path, got {describe(checkpoint)}")
    path = Path(os.fsdecode(checkpoint))
    if path.is_dir():
        raise ValueError(
            f"checkpoint must be the path of a file, got {str(path)!r}, which is "
            f"a directory; pass e.g. {str(path / 'vae.pt')!r}"
        )
    if path.exists() and not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} exists and is not a regular file")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(
            f"checkpoint {str(path)!r} is in {str(parent)!r}, which is not an "
            f"existing directory; create it first"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"checkpoint {str(path)!r} is in {str(parent)!r}, where this process cannot write"
        )
    return path


def _check_device(device, model: VAE) -> torch.device:
    """The device to train on: ``device``, once it is known to work, else the model's own."""
    if any(t.is_meta for t in model.state_dict().values()):
        raise ValueError("model's tensors are on the meta device: they hold no values to train")
    if device is None:
        return model.prior_loc.device
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a string or a torch.device, got {describe(device)}")
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from err
    if target.type == "meta":
        raise ValueError(
            f"device={device!r} holds shapes but no values: moving the model there "
            f"would discard its weights; use e.g. 'cpu' or 'cuda'"
        )
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'cpu'")
    try:
        torch.zeros(1, device=target)  # the device exists and can be used
    except Exception as err:  # RuntimeError, or AssertionError when torch lacks the backend
        raise ValueError(f"device={device!r} cannot be used here: {err}") from err
    return target


def _check_data(model: VAE, x, name: str, device: torch.device) -> torch.Tensor:
    x = model.check_images(x, binary=False, name=name)
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    return x.to(device)


def _check_state_dict(path: Path, saved, model: VAE) -> None:
    """Every key, shape and dtype of ``saved`` matches ``model.state_dict()``, or raise."""
    own = model.state_dict()
    if not isinstance(saved, dict):
        raise ValueError(
            f"checkpoint {str(path)!r}: its model entry is {describe(saved)}, not a state dict"
        )
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {str(path)!r} holds another architecture: keys missing "
            f"{missing}, unexpected {unexpected}"
        )
    for key, tensor in own.items():
        other = saved[key]
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            raise ValueError(
                f"checkpoint {str(path)!r} holds another architecture: {key} has "
                f"{describe(other)}, the model's has shape {tuple(tensor.shape)}"
            )
        if other.dtype != tensor.dtype:
            raise ValueError(
                f"checkpoint {str(path)!r}: {key} has dtype {other.dtype}, the "
                f"model's {tensor.dtype}; convert the model first (e.g. .double())"
            )


def _check_history(path: Path, state: dict, epochs: int, has_test: bool) -> History:
    """The saved history, once it agrees with the saved epoch, ``epochs`` and ``test_x``."""
    epoch = state["epoch"]
    try:
        history = History(**state["history"])
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r}: its history has the fields "
            f"{describe(state['history'])}, expected "
            f"{[f.name for f in fields(History)]}, lists of finite numbers ({err})"
        ) from err
    if (
        isinstance(epoch, bool)
        or not isinstance(epoch, int)
        or not len(history.train_elbo) == len(history.seconds) == epoch
    ):
        raise ValueError(
            f"checkpoint {str(path)!r}: epoch {epoch!r} does not match its "
            f"history of {len(history.train_elbo)} epochs"
        )
    if epoch > epochs:
        raise ValueError(
            f"epochs={epochs}, but checkpoint {str(path)!r} has already trained "
            f"{epoch} epochs; pass epochs >= {epoch}"
        )
    if len(history.test_elbo) != (epoch if has_test else 0):
        raise ValueError(
            f"checkpoint {str(path)!r} was written "
            f"{'without' if has_test else 'with'} test_x; resume "
            f"{'without' if has_test else 'with the same'} test_x"
        )
    return history


def _read_checkpoint(
    path: Path, model: VAE, device, options: dict, epochs: int, has_test: bool
) -> dict:
    """Load and verify a checkpoint into a copy of ``model``; ``model`` itself is untouched.

    Returns {"model": state dict, "optimizer": state dict, "epoch": int, "history": History},
    all known to load into ``model`` and an Adam optimizer over its parameters.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError, EOFError, RuntimeError, ...
        raise ValueError(
            f"checkpoint {str(path)!r} could not be read ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, dict) or set(state) != set(CHECKPOINT_KEYS):
        keys = sorted(map(repr, state)) if isinstance(state, dict) else describe(state)
        raise ValueError(
            f"checkpoint {str(path)!r} was not written by train: expected the "
            f"keys {sorted(CHECKPOINT_KEYS)}, got {keys}"
        )
    if state["options"] != options:
        raise ValueError(
            f"checkpoint {str(path)!r} was written with {state['options']}, but "
            f"resume was called with {options}"
        )
    _check_state_dict(path, state["model"], model)
    history = _check_history(path, state, epochs, has_test)
    candidate = copy.deepcopy(model).to(device)  # load into a copy, then swap
    optimizer = torch.optim.Adam(candidate.parameters())
    try:
        candidate.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit the model and its Adam optimizer: {err}"
        ) from err
    for i, p in enumerate(candidate.parameters()):
        for key, moment in optimizer.state.get(p, {}).items():
            if key in ("exp_avg", "exp_avg_sq") and getattr(moment, "shape", None) != p.shape:
                raise ValueError(
                    f"checkpoint {str(path)!r}: the optimizer's {key} of "
                    f"parameter {i} is {describe(moment)}, the "
                    f"parameter {tuple(p.shape)}"
                )
    return {
        "model": candidate.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": history.epochs,
        "history": history,
    }


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


def train(
    model,
    train_x,
    test_x=None,
    *,
    epochs: int = 30,
    batch_size: int = 100,
    lr: float = 1e-3,
    estimator: str = "pathwise",
    baseline=None,
    num_particles: int = 1,
    progress: bool = True,
    checkpoint=None,
    resume: bool = False,
    device=None,
    objective: str = "elbo",
    kl_weight: float = 1.0,
    warmup_epochs: int = 0,
    free_bits: float = 0.0,
) -> History:
    """Maximize the ELBO with Adam and minibatches; return per-epoch learning curves.

    Each epoch shuffles ``train_x`` and binarizes every batch afresh (dynamic binarization,
    :func:`companion.data.binarize`); the gradient comes from :func:`elbo_surrogate`.
    ``test_x`` is binarized once with a private generator (:data:`TEST_BINARIZATION_SEED`),
    so every run and every resumed run is scored on the same binary images. Randomness
    otherwise comes from the global torch generator: this function never seeds.

    Cost: every estimator evaluates the decoder ``num_particles`` times per image per step,
    so runs with equal ``epochs``, ``batch_size`` and ``num_particles`` have equal budgets.

    Every argument is checked before the model is touched: the checkpoint's directory must
    exist, ``device`` must be usable here, and a checkpoint to resume from is loaded into a
    copy of the model and verified (options, every tensor's name, shape and dtype, the
    optimizer's state) before it is swapped in. On any of these errors the caller's model
    is left exactly as it was.

    Args:
        model: a :class:`companion.vae.VAE`, trained in place (and moved to ``device``).
        train_x: grey levels (or binary images) in [0, 1], shape ``(n, data_dim)``, n >= 1.
        test_x: optional held-out images, same format.
        epochs: total number of epochs (a resumed run continues up to it).
        batch_size, lr: minibatch size and Adam's learning rate.
        estimator: ``"pathwise"``, ``"score_function"`` or ``"stl"``.
        baseline: None or ``"loo"`` (score function; needs ``num_particles >= 2``).
        num_particles: S, draws of z per image per step.
        progress: show a tqdm progress bar over epochs (exactly True or False).
        checkpoint: a file path in an existing directory; after every epoch {model,
            optimizer, epoch, history, options} is written there atomically (temporary
            file + ``os.replace``).
        resume: continue from ``checkpoint`` when it exists (loaded with
            ``weights_only=True``); its options (estimator, baseline, num_particles,
            batch_size, lr) and architecture must match this call's.
        device: where to train (e.g. ``"cuda"``); default the model's current device.
        objective: ``"elbo"`` (default) or ``"iwae"``: maximize the importance-weighted
            bound L_k with k = ``num_particles`` (Burda et al. 2016), with
            ``estimator="pathwise"`` or ``"dreg"``. With ``"pathwise"`` its cost per step
            is that of the ELBO with the same ``num_particles``: k decoder evaluations per
            image (``"dreg"`` decodes the k draws twice, once for the decoder's gradient).
        kl_weight: ω >= 0, the weight of the KL term, E_q log p(x|z) - ω KL(q || p(z))
            (the β of Higgins et al. 2017); 1 is the ELBO.
        warmup_epochs: KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): the weight
            rises linearly from 0 at the first step to ``kl_weight`` after this many
            epochs, then stays there; 0 (default) for none.
        free_bits: λ >= 0, a floor on each latent unit's KL, averaged over the minibatch
            and computed in closed form: the KL term becomes sum_l max(λ, KL_l) (Kingma et
            al. 2016); 0 (default) for none. ``kl_weight``, ``warmup_epochs`` and
            ``free_bits`` apply to the pathwise ELBO only. The history's ``train_elbo``
            records the ELBO estimate (the mean log weight, ω = 1, no floor) whatever the
            weight or floor; with ``objective="iwae"`` it records the training L_k, and
            ``test_elbo`` is the single-sample test ELBO in every case.

    Returns:
        A :class:`History`; resumed runs return the saved history extended.

    Raises:
        TypeError: an argument of the wrong type (a flag that is not a bool, a model that
            is not a VAE, ...).
        ValueError: a bad value, naming the argument: ``checkpoint`` (missing directory, a
            directory, an incompatible or unreadable checkpoint), ``device`` (unknown,
            ``"meta"``, CUDA when unavailable), ``train_x``/``test_x``, ...
    """
    model = _check_model(model)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = _check_lr(lr)
    num_particles = _check_options(estimator, baseline, num_particles, objective=objective)
    kl_weight, warmup_epochs, free_bits = _check_kl_options(
        kl_weight, warmup_epochs, free_bits, estimator, objective
    )
    progress, resume = check_bool("progress", progress), check_bool("resume", resume)
    path = _check_checkpoint(checkpoint, resume)
    target = _check_device(device, model)
    train_x = _check_data(model, train_x, "train_x", target)
    if test_x is not None:
        test_x = binarize(_check_data(model, test_x, "test_x", target), seed=TEST_BINARIZATION_SEED)
    n = train_x.shape[0]
    model.check_draws(num_particles, min(batch_size, n), name="num_particles")
    options = {
        "estimator": estimator,
        "baseline": baseline,
        "num_particles": num_particles,
        "batch_size": batch_size,
        "lr": lr,
    }
    extra = {
        "objective": (objective, "elbo"),
        "kl_weight": (kl_weight, 1.0),
        "warmup_epochs": (warmup_epochs, 0),
        "free_bits": (free_bits, 0.0),
    }
    for key, (value, default) in extra.items():  # recorded when not the default, so that
        if value != default:  # checkpoints written before these options still resume
            options[key] = value
    saved = None
    if resume and path.exists():
        saved = _read_checkpoint(path, model, target, options, epochs, test_x is not None)
    # Every check passed: from here on the model is moved, loaded and trained in place.
    model.to(target)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = History(), 0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history, start = saved["history"], saved["epoch"]
    bar = tqdm(
        range(start, epochs),
        disable=not progress,
        desc=f"{estimator} VAE",
        initial=start,
        total=epochs,
    )
    steps_per_epoch = math.ceil(n / batch_size)
    for epoch in bar:
        began, total = time.perf_counter(), 0.0
        model.train()
        for i, idx in enumerate(torch.randperm(n).split(batch_size)):  # CPU generator
            x = binarize(train_x[idx.to(train_x.device)])  # dynamic binarization, (B, D)
            step = epoch * steps_per_epoch + i
            ramp = min(1.0, step / (warmup_epochs * steps_per_epoch)) if warmup_epochs else 1.0
            weight = kl_weight * ramp  # ω at this step: 0 at the first step of a warm-up
            if objective == "iwae":
                log_w = None
                bound = _iwae_surrogate(model, x, num_particles, estimator)  # (B,)
                goal = bound.mean()
            elif weight != 1.0 or free_bits > 0:
                goal, log_w = _kl_weighted_objective(model, x, num_particles, weight, free_bits)
            else:
                log_w = elbo_surrogate(
                    model, x, estimator=estimator, baseline=baseline, num_particles=num_particles
                )  # (S, B)
                goal = log_w.mean()
            optimizer.zero_grad(set_to_none=True)
            (-goal).backward()  # ascend the objective
            optimizer.step()
            if log_w is None:  # IWAE: the ELBO of the same step is not computed; use L_k
                total += bound.detach().sum().item()
            else:
                total += log_w.detach().mean(dim=0).sum().item()
        history.train_elbo.append(total / n)
        model.eval()
        if test_x is not None:
            with torch.no_grad():
                history.test_elbo.append(model.elbo(test_x).mean().item())
        history.seconds.append(time.perf_counter() - began)
        bar.set_postfix(
            train=f"{history.train_elbo[-1]:.2f}",
            test=f"{history.test_elbo[-1]:.2f}" if history.test_elbo else "-",
        )
        if path is not None:
            _save(
                path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "history": asdict(history),
                    "options": options,
                },
            )
    return history


# ---------------------------------------------------------------- gradient draws


def _check_parameters(parameters, model: VAE) -> list:
    if parameters is None:
        params = list(model.encoder.parameters())
    elif isinstance(parameters, (torch.Tensor, str, bytes)) or not hasattr(parameters, "__iter__"):
        raise TypeError(
            f"parameters must be None or a sequence of the model's parameters, "
            f"got {describe(parameters)}"
        )
    else:
        params = list(parameters)
    if not params:
        raise ValueError("parameters must be a non-empty sequence of the model's parameters")
    own = {id(p) for p in model.parameters()}
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"parameters[{i}] must be a parameter of model, got {describe(p)}")
        if id(p) not in own:
            raise ValueError(
                f"parameters[{i}] is not a parameter of model (its gradient "
                f"would be zero): pass tensors from model.parameters()"
            )
        if not p.requires_grad:
            raise ValueError(f"parameters[{i}] does not require grad")
    return params


def _flat_grad(value: torch.Tensor, params: list) -> torch.Tensor:
    """The gradient of ``value`` with respect to ``params``, flattened, zeros where unused."""
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return torch.cat(
        [torch.zeros_like(p).flatten() if g is None else g.flatten() for p, g in zip(params, grads)]
    )


def gradient_draws(
    model,
    x,
    *,
    estimator: str = "pathwise",
    baseline=None,
    num_particles: int = 1,
    num_draws: int = 100,
    parameters=None,
    keep_score_term: bool = False,
    objective: str = "elbo",
) -> Estimate:
    """Independent draws of the ELBO-gradient estimate at the model's current parameters.

    Draw r is g_r = ∇ (1/B) sum_b (1/S) sum_s [surrogate]_{s,b}, the gradient of the batch
    mean of :func:`elbo_surrogate`, i.e. the gradient one training step would use (ascent
    direction), with fresh noise each time. Their mean estimates ∇ (1/B) sum_b ELBO(x_b),
    with standard error s / sqrt(R) per coordinate; their spread measures the estimator's
    variance. One backward pass per draw (a loop over draws; each draw is vectorized over
    the batch and the S particles).

    Args:
        model: a :class:`companion.vae.VAE`; its ``.grad`` fields are left untouched.
        x: binary images, shape ``(batch, data_dim)``.
        estimator, baseline, num_particles, keep_score_term: as in :func:`elbo_surrogate`.
        num_draws: R >= 2 independent draws.
        parameters: a sequence of the model's parameters to differentiate; default the
            encoder's (``model.encoder.parameters()``).
        objective: ``"elbo"`` (default), or ``"iwae"`` for the gradient of the bound L_k
            with k = ``num_particles``, with ``estimator="pathwise"`` or ``"dreg"``, as
            :func:`train` uses it.

    Returns:
        A :class:`companion.montecarlo.Estimate` whose ``samples`` have shape ``(R, P)``:
        row r is draw r, flattened over the P entries of ``parameters`` in their order;
        ``mean`` and ``stderr`` have shape ``(P,)``.
    """
    model = _check_model(model)
    num_particles = _check_options(estimator, baseline, num_particles, keep_score_term, objective)
    num_draws = check_positive_int("num_draws", num_draws, minimum=2)
    params = _check_parameters(parameters, model)
    x = model.check_images(x, binary=True)
    model.check_draws(num_particles, x.shape[0], name="num_particles")
    size = sum(p.numel() for p in params)
    check_allocation("num_draws", num_draws, num_draws * size * params[0].element_size())
    rows = torch.empty(num_draws, size, dtype=params[0].dtype, device=params[0].device)
    for r in range(num_draws):
        if objective == "iwae":
            value = _iwae_surrogate(model, x, num_particles, estimator).mean()
            rows[r] = _flat_grad(value, params)
            continue
        value = elbo_surrogate(
            model,
            x,
            estimator=estimator,
            baseline=baseline,
            num_particles=num_particles,
            keep_score_term=keep_score_term,
        ).mean()
        rows[r] = _flat_grad(value, params)  # (P,)
    return Estimate(
        mean=rows.mean(dim=0), stderr=rows.std(dim=0) / math.sqrt(num_draws), samples=rows
    )


__all__ = [
    "elbo_surrogate",
    "train",
    "History",
    "gradient_draws",
    "ESTIMATORS",
    "BASELINES",
    "OBJECTIVES",
    "TEST_BINARIZATION_SEED",
    "CHECKPOINT_KEYS",
]
