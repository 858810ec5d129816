"""The variational autoencoder of Chapter 5: the model, its ELBO, importance-weighted bounds.

A latent-variable model p(x, z) = p(x | z) p(z) with a standard normal prior and a neural
decoder, and an amortized Gaussian posterior approximation q(z | x) computed by a neural
encoder (Kingma & Welling 2014; Rezende et al. 2014). For a draw z ~ q(z | x) the *log
weight* is

    log w = log p(x | z) + log p(z) - log q(z | x),

whose mean over q is the evidence lower bound, ELBO(x) = E_q[log w] <= log p(x); the
importance-weighted bound of Burda et al. (2016) averages k weights inside the logarithm.

Data. The decoder is a product of Bernoulli pixels, a proper probability mass function on
binary images, so grey levels in [0, 1] are *binarized* before they are scored
(:func:`companion.data.binarize`: pixel d is 1 with probability equal to its grey level).
(The continuous Bernoulli of Loaiza-Ganem & Cunningham 2019 would model grey levels
directly; we keep the Bernoulli because its log-likelihoods, in nats, are the ones the
literature reports.)

Counts, with Pyro's word for draws of z per image: ``num_particles`` (S) in
:meth:`VAE.log_weights` and :meth:`VAE.elbo`, ``k`` in :func:`iwae_bound` and
:func:`log_likelihood`, ``num_images`` in :meth:`VAE.sample`. Requests whose tensors cannot
fit in memory are refused before anything is allocated.

Training lives in :mod:`companion.training`, which builds on this module (never the reverse).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from ._validation import (
    as_tensor,
    check_allocation,
    check_bool,
    check_finite,
    check_positive_int,
    describe,
)

SCALE_FLOOR = 1e-6
"""Added to softplus(raw) in the encoder's scale, so that q(z | x) never degenerates."""

MAX_LOG_WEIGHTS = 10**10
"""The most log weights (k times the batch size) :func:`log_likelihood` computes in one call.

The IWAE protocol (k = 5000 on 10,000 test images) needs 5 * 10**7; a request above this
would run for hours or days, so it is refused up front rather than left to loop.
"""


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, n_out),
    )


class VAE(nn.Module):
    """A VAE with Gaussian q(z | x), prior N(0, I) and Bernoulli pixels p(x | z).

    Encoder: x -> MLP (two tanh hidden layers) -> (loc, raw) in R^L x R^L, and
    q(z | x) = N(loc, diag(scale²)) with scale = softplus(raw) + :data:`SCALE_FLOOR`
    (softplus rather than exp: its slope is at most 1, so a large output cannot blow up
    the scale in the first steps). Decoder: z -> MLP -> logits, and
    p(x | z) = prod_d Bernoulli(x_d; sigmoid(logit_d)). Inputs are binary images shaped
    ``(batch, data_dim)``; see :func:`companion.data.binarize`.

    Args:
        data_dim: D, pixels per image (64 for the 8x8 digits).
        latent_dim: L, the dimension of z.
        hidden_dim: H, width of the hidden layers of both networks.

    Example:
        >>> from companion.data import binarize
        >>> model = VAE(data_dim=64, latent_dim=2, hidden_dim=32)
        >>> x = binarize(torch.rand(5, 64))
        >>> model.elbo(x, num_particles=3).shape
        torch.Size([5])
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.data_dim = check_positive_int("data_dim", data_dim)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        # The largest weight is (H, max(D, H, 2L)): refuse it before nn.Linear allocates it.
        sizes = {
            "hidden_dim": self.hidden_dim,
            "data_dim": self.data_dim,
            "latent_dim": 2 * self.latent_dim,
        }
        culprit = max(sizes, key=sizes.get)
        check_allocation(
            culprit,
            getattr(self, culprit),
            self.hidden_dim * sizes[culprit] * torch.get_default_dtype().itemsize,
        )
        self.encoder = _mlp(self.data_dim, self.hidden_dim, 2 * self.latent_dim)
        self.decoder = _mlp(self.latent_dim, self.hidden_dim, self.data_dim)
        # Buffers, so that .to(device) and .double() move the prior with the networks.
        self.register_buffer("prior_loc", torch.zeros(self.latent_dim))
        self.register_buffer("prior_scale", torch.ones(self.latent_dim))

    # ------------------------------------------------------------ input checks

    def check_images(self, x, *, binary: bool, name: str = "x") -> torch.Tensor:
        """``x`` as a ``(batch, data_dim)`` tensor on the model's device and dtype, or raise.

        The input check of every method that takes images; public so that code built on
        the model (:func:`companion.training.train`) reports errors under its own names.

        Args:
            x: images, shape ``(batch, data_dim)``: a tensor, array or nested sequence.
            binary: True to require entries 0 or 1 (what the Bernoulli likelihood scores),
                False to accept any values in [0, 1] (grey levels, as the encoder does).
            name: the argument's name in error messages, e.g. ``"train_x"``.

        Returns:
            ``x`` detached, converted to the dtype and moved to the device of the model.

        Raises:
            TypeError: ``x`` is not real numbers, or a flag or name of the wrong type.
            ValueError: a wrong shape, NaN or inf, or values outside {0, 1} / [0, 1].
        """
        binary = check_bool("binary", binary)
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {describe(name)}")
        x = as_tensor(name, x)
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(
                f"{name} must have shape (batch, data_dim={self.data_dim}), got "
                f"shape {tuple(x.shape)}"
            )
        x = check_finite(name, x).to(device=self.prior_loc.device, dtype=self.prior_loc.dtype)
        if binary and not ((x == 0) | (x == 1)).all():
            raise ValueError(
                f"{name} must be binary (0 or 1) to be scored by the Bernoulli likelihood, got "
                f"values in [{x.min().item():.4g}, {x.max().item():.4g}] with non-binary "
                "entries; binarize grey levels first with companion.data.binarize"
            )
        if not binary and x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{name} must hold values in [0, 1], got values in "
                f"[{x.min().item():.4g}, {x.max().item():.4g}]"
            )
        return x

    def check_draws(self, count, batch: int, *, name: str) -> int:
        """``count`` as an int >= 1 whose draws of z for ``batch`` images fit in memory.

        Drawing ``count`` values of z for each of ``batch`` images makes tensors of shape
        ``(count, batch, W)`` with W = max(D, H, L) (the decoder's hidden layers and
        logits), so a request of more than the machine's memory for one of them is refused
        here, before anything is allocated, with a ValueError naming ``name``.

        Args:
            count: the caller's count: ``num_particles``, ``k``, ``num_images``, ...
            batch: the number of images each draw is made for, >= 0 (1 for :meth:`sample`).
            name: the argument's name in error messages, a string.

        Returns:
            ``count`` as an int.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {describe(name)}")
        count = check_positive_int(name, count)
        batch = check_positive_int("batch", batch, minimum=0)
        width = max(self.data_dim, self.hidden_dim, self.latent_dim)
        check_allocation(name, count, count * batch * width * self.prior_loc.element_size())
        return count

    def _check_z(self, z) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(
                f"z must be a floating-point tensor of shape (..., latent_dim="
                f"{self.latent_dim}), got {describe(z)}"
            )
        if z.dim() == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (..., latent_dim={self.latent_dim}), got {describe(z)}"
            )
        check_finite("z", z.detach())
        width = max(self.data_dim, self.hidden_dim)  # the decoder's outputs per row of z
        check_allocation(
            "z",
            f"<shape {tuple(z.shape)}>",
            z.numel() // self.latent_dim * width * self.prior_loc.element_size(),
        )
        return z.to(device=self.prior_loc.device, dtype=self.prior_loc.dtype)

    # ------------------------------------------------------------ the model

    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I), event shape ``(latent_dim,)``."""
        return Independent(Normal(self.prior_loc, self.prior_scale), 1)

    def encode(self, x) -> Independent:
        """q(z | x) = N(loc(x), diag(scale(x)²)): batch shape ``(batch,)``, event ``(L,)``.

        ``x`` has shape ``(batch, data_dim)`` with values in [0, 1] (binary in training).
        """
        return self._encode(self.check_images(x, binary=False))

    def _encode(self, x: torch.Tensor) -> Independent:  # x already checked
        loc, raw = self.encoder(x).chunk(2, dim=-1)  # (B, L) each
        scale = nn.functional.softplus(raw) + SCALE_FLOOR
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def decode(self, z) -> Independent:
        """p(x | z) = prod_d Bernoulli(logits_d(z)): batch shape ``z.shape[:-1]``, event (D,).

        ``z`` is a finite floating tensor of shape ``(..., latent_dim)``.
        """
        return self._decode(self._check_z(z))

    def _decode(self, z: torch.Tensor) -> Independent:  # z already checked
        return Independent(Bernoulli(logits=self.decoder(z), validate_args=False), 1)

    def log_joint(self, x, z) -> torch.Tensor:
        """log p(x, z) = log p(x | z) + log p(z) for z shaped ``(S, batch, L)``: ``(S, batch)``."""
        return self._log_joint(self.check_images(x, binary=True), self._check_z(z))

    def _log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self._decode(z).log_prob(x) + self.prior.log_prob(z)  # x broadcasts over S

    def log_weights(
        self, x, num_particles: int = 1, *, sticking_the_landing: bool = False
    ) -> torch.Tensor:
        """log w_s = log p(x, z_s) - log q(z_s | x), z_s = loc + scale * eps_s (``rsample``).

        The result carries the reparameterized graph to every parameter, so its gradient is
        the pathwise estimator. With ``sticking_the_landing=True`` the parameters of q are
        detached inside log q (not in z): the value is unchanged and the gradient drops
        q's score term, whose expectation is zero (Roeder, Wu & Duvenaud 2017).

        Args:
            x: binary images, shape ``(batch, data_dim)``.
            num_particles: S >= 1 draws of z per image.
            sticking_the_landing: exactly True or False.

        Returns:
            The log weights, shape ``(S, batch)``.
        """
        sticking_the_landing = check_bool("sticking_the_landing", sticking_the_landing)
        x = self.check_images(x, binary=True)
        num_particles = self.check_draws(num_particles, x.shape[0], name="num_particles")
        q = self._encode(x)
        z = q.rsample((num_particles,))  # (S, B, L)
        if sticking_the_landing:
            base = q.base_dist
            q = Independent(Normal(base.loc.detach(), base.scale.detach(), validate_args=False), 1)
        return self._log_joint(x, z) - q.log_prob(z)  # (S, B)

    def elbo(self, x, num_particles: int = 1, *, analytic_kl: bool = False) -> torch.Tensor:
        """Monte Carlo ELBO per image, in nats, averaged over ``num_particles`` draws of z.

        Default (``analytic_kl=False``): (1/S) sum_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)],
        the estimator L^A of Kingma & Welling (2014, §2.3), the one :func:`iwae_bound` reduces
        to at k = 1. With ``analytic_kl=True``: (1/S) sum_s log p(x|z_s) - KL(q(z|x) || p(z)),
        their L^B, the KL in closed form: same expectation, lower variance when q is far from
        the posterior, but near a good fit the first form can be the less noisy one (the
        terms of log w then cancel; Chapter 5 measures both). Both are differentiable
        (pathwise) and unbiased for the ELBO.

        Args:
            x: binary images, shape ``(batch, data_dim)``; anything else raises ValueError.
            num_particles: S >= 1 draws of z per image.
            analytic_kl: exactly True or False (``"no"`` raises TypeError).

        Returns:
            Shape ``(batch,)``.
        """
        analytic_kl = check_bool("analytic_kl", analytic_kl)
        if not analytic_kl:
            return self.log_weights(x, num_particles).mean(dim=0)
        x = self.check_images(x, binary=True)
        num_particles = self.check_draws(num_particles, x.shape[0], name="num_particles")
        q = self._encode(x)
        z = q.rsample((num_particles,))  # (S, B, L)
        return self._decode(z).log_prob(x).mean(dim=0) - kl_divergence(q, self.prior)

    @torch.no_grad()
    def sample(self, num_images: int) -> torch.Tensor:
        """Binary images from the model: z ~ p(z), x ~ p(x | z). Shape ``(num_images, D)``.

        A ``num_images`` whose tensors cannot fit in memory is refused before drawing. For
        smoother pictures show the pixel probabilities ``decode(z).mean`` instead.
        """
        num_images = self.check_draws(num_images, 1, name="num_images")
        return self._decode(self.prior.sample((num_images,))).sample()

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """Pixel probabilities E[x | z] at z = the posterior mean of q(z | x): ``(batch, D)``.

        ``x`` may hold grey levels in [0, 1] or binary images.
        """
        return self._decode(self.encode(x).mean).mean


EVAL_BYTES = 2**25
"""Evaluation budget: :func:`iwae_bound` and :func:`log_likelihood` score images in groups
whose ``(k, group, max(D, H, L))`` tensors take at most this many bytes (32 MiB), so that
memory stays bounded (a few such tensors live at once) however many images are scored:
10,000 MNIST test images at k = 50 in float32 would otherwise make 1.6 GB tensors."""


def _groups(model: VAE, count: int, batch: int) -> list:
    """Slices of the ``batch`` images, each small enough for ``count`` draws in EVAL_BYTES."""
    width = max(model.data_dim, model.hidden_dim, model.latent_dim)
    size = max(1, EVAL_BYTES // (count * width * model.prior_loc.element_size()))
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]


def _log_weights_grouped(model: VAE, x: torch.Tensor, count: int) -> torch.Tensor:
    """log w for ``count`` draws per image, ``(count, batch)``, computed image group by group.

    The noise is drawn at once, eps of shape ``(count, batch, L)`` (the draws
    :meth:`VAE.log_weights` would make), and z = loc + scale * eps is decoded one group of
    images at a time: the result does not depend on the grouping, only the memory does.
    """
    q = model._encode(x)
    loc, scale = q.base_dist.loc, q.base_dist.scale  # (B, L) each
    # The standard normals Normal.rsample draws (the same stream, and the same patch point).
    eps = torch.distributions.normal._standard_normal(
        (count, *loc.shape), dtype=loc.dtype, device=loc.device
    )  # (count, B, L)
    parts = []
    for g in _groups(model, count, x.shape[0]):
        z = loc[g] + eps[:, g] * scale[g]  # (count, G, L), as Normal.rsample computes it
        q_g = Independent(Normal(loc[g], scale[g], validate_args=False), 1)
        parts.append(model._log_joint(x[g], z) - q_g.log_prob(z))  # (count, G)
    return torch.cat(parts, dim=1)


def _check_model(model) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a companion.vae.VAE, got {describe(model)}")
    return model


def iwae_bound(model: VAE, x, k: int = 1) -> torch.Tensor:
    """Importance-weighted bound L_k = log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q.

    Burda, Grosse & Salakhutdinov (2016, Theorem 1): E[L_1] = ELBO <= E[L_k] <= E[L_{k+1}]
    <= log p(x), and L_k -> log p(x) as k grows when the weights are bounded. Computed
    stably with logsumexp; the graph is kept, so L_k can be maximized directly (the IWAE
    objective). All k draws are made at once (for large k use :func:`log_likelihood`), and
    the images are decoded in groups that fit :data:`EVAL_BYTES`, so that under
    ``torch.no_grad()`` memory does not grow with the number of images (with a graph, the
    graph itself grows with k times the batch). The noise is drawn for all images first,
    so the values do not depend on the grouping.

    Args:
        model: a :class:`VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        k: k >= 1 importance samples per image; a k whose ``(k, 1, max(D, H, L))``
            tensors (one image) cannot fit in memory raises ValueError.

    Returns:
        One draw of L_k per image, shape ``(batch,)``, in nats.
    """
    model = _check_model(model)
    x = model.check_images(x, binary=True)
    k = model.check_draws(k, 1, name="k")
    return torch.logsumexp(_log_weights_grouped(model, x, k), dim=0) - math.log(k)


@torch.no_grad()
def log_likelihood(model: VAE, x, k: int = 5000, *, chunk_size: int = 1000) -> torch.Tensor:
    """Importance-sampled estimate of log p(x): :func:`iwae_bound` with large k, in chunks.

    log p̂(x) = log (1/k) sum_{j<=k} w_j with w_j = p(x, z_j) / q(z_j | x). The average of the
    w_j is unbiased for p(x), so by Jensen's inequality E[log p̂(x)] <= log p(x): the
    estimate is a *stochastic lower bound*, consistent as k -> infinity, with a bias of
    about Var[w] / (2 k p(x)²). Log weights are computed ``chunk_size`` draws at a time and
    merged with logsumexp, so memory does not grow with k, and each chunk decodes the
    images in groups that fit :data:`EVAL_BYTES`, so memory does not grow with the number
    of images either.

    Args:
        model: a :class:`VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        k: k >= 1 importance samples per image, with k * batch <= :data:`MAX_LOG_WEIGHTS`.
        chunk_size: draws per chunk, >= 1; a chunk whose ``(chunk, 1, max(D, H, L))``
            tensors (one image) cannot fit in memory raises ValueError.

    Returns:
        Shape ``(batch,)``, in nats, without a graph.
    """
    model = _check_model(model)
    x = model.check_images(x, binary=True)
    k = check_positive_int("k", k)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if k * x.shape[0] > MAX_LOG_WEIGHTS:
        raise ValueError(
            f"k={k} for {x.shape[0]} images asks for {k * x.shape[0]:.3g} log "
            f"weights, more than MAX_LOG_WEIGHTS = {MAX_LOG_WEIGHTS:.0e} (hours "
            f"to days of computation); use a smaller k"
        )
    chunk_name = "chunk_size" if chunk_size < k else "k"  # the one that sets the chunk
    model.check_draws(min(k, chunk_size), 1, name=chunk_name)
    total = None
    for start in range(0, k, chunk_size):
        lw = _log_weights_grouped(model, x, min(chunk_size, k - start))  # (chunk, B)
        part = torch.logsumexp(lw, dim=0)  # (B,)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)


ACTIVITY_THRESHOLD = 0.01
"""Burda et al. (2016, §5.2): unit l is *active* when Var_x E_q[z_l | x] exceeds this."""


@torch.no_grad()
def latent_usage(model: VAE, x) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each latent unit is used: its activity and its mean KL to the prior.

    A_l = Var_x(E_{q(z|x)}[z_l]), the variance over the images of unit l's posterior mean
    (Burda et al. 2016, §5.2: active when A_l > :data:`ACTIVITY_THRESHOLD`), and
    KL_l = mean_x KL(q(z_l | x) || N(0, 1)) in closed form, whose sum over l is the KL term
    of the ELBO averaged over the images.

    Args:
        model: a :class:`VAE`.
        x: images, shape ``(batch, data_dim)``, values in [0, 1] (binary for a test set),
            batch >= 2 (a variance over one image is undefined).

    Returns:
        ``(activity, kl)``, each of shape ``(latent_dim,)``, in the model's dtype.

    Example:
        >>> activity, kl = latent_usage(VAE(64, 2, 16), torch.rand(10, 64))
        >>> int((activity > ACTIVITY_THRESHOLD).sum()) <= 2
        True
    """
    model = _check_model(model)
    x = model.check_images(x, binary=False)
    if x.shape[0] < 2:
        raise ValueError(
            f"x must hold at least 2 images (A_l is a variance over images), got {x.shape[0]}"
        )
    q = model._encode(x).base_dist  # Normal, (B, L)
    kl = kl_divergence(q, Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale)))  # (B, L)
    return q.loc.var(0), kl.mean(0)


__all__ = [
    "VAE",
    "latent_usage",
    "ACTIVITY_THRESHOLD",
    "iwae_bound",
    "log_likelihood",
    "SCALE_FLOOR",
    "MAX_LOG_WEIGHTS",
    "EVAL_BYTES",
]
