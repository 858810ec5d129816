"""The variational autoencoder of Chapter 5: the model, its ELBO, importance-weighted bounds.

A latent-variable model p(x, z) = p(x | z) p(z) with a standard normal prior and a neural
decoder, and an amortized Gaussian posterior approximation q(z | x) computed by a neural
encoder (Kingma & Welling 2014; Rezende et al. 2014). For a draw z ~ q(z | x) the *log
weight* is

    log w = log p(x | z) + log p(z) - log q(z | x),

whose mean over q is the evidence lower bound, ELBO(x) = E_q[log w] <= log p(x); the
importance-weighted bound of Burda et al. (2016) averages k weights inside the logarithm.

Data. The digits have grey levels in [0, 1]; the decoder is a product of Bernoulli pixels, a
proper probability mass function on binary images, so images are *binarized* before they are
scored: pixel d is 1 with probability equal to its grey level. Training draws a fresh
binarization every time a batch is used (dynamic binarization, the protocol of Burda et al.
2016), which turns grey levels into an infinite stream of binary images with the same mean;
evaluation uses one fixed binarization (:func:`binarize` with a ``seed``). A binary input is
left unchanged by :func:`binarize`, so passing already-binary data gives a fixed
binarization. (The continuous Bernoulli of Loaiza-Ganem & Cunningham 2019 would model grey
levels directly; we keep the Bernoulli because its log-likelihoods, in nats, are the ones
the literature reports.)

Training lives in :mod:`companion.training` and is re-exported here as :func:`train`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from ._validation import as_tensor, check_finite, check_positive_int, describe

SCALE_FLOOR = 1e-6
"""Added to softplus(raw) in the encoder's scale, so that q(z | x) never degenerates."""


def binarize(x, seed: int | None = None) -> torch.Tensor:
    """Binary images with P(pixel = 1) = grey level: x_bin = 1[u < x], u ~ U(0, 1).

    Args:
        x: grey levels in [0, 1], any shape.
        seed: None draws u from the global torch generator (dynamic binarization, fresh every
            call); an integer draws u from a private CPU generator seeded with it, so the
            result is the same on every call and every device (a fixed binarization).
            Library code never seeds the global generator.

    Returns:
        A tensor of zeros and ones with the shape, dtype and device of ``x``; binary input
        comes back unchanged.

    Example:
        >>> binarize(torch.tensor([0.0, 1.0, 1.0]))
        tensor([0., 1., 1.])
    """
    x = check_finite("x", as_tensor("x", x))
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must hold grey levels in [0, 1], got values in "
                         f"[{x.min().item():.4g}, {x.max().item():.4g}]")
    if seed is None:
        u = torch.rand(x.shape, dtype=x.dtype, device=x.device)
    else:
        seed = check_positive_int("seed", seed, minimum=0)
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return (u.to(x.device) < x).to(x.dtype)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                         nn.Tanh(), nn.Linear(hidden, n_out))


class VAE(nn.Module):
    """A VAE with Gaussian q(z | x), prior N(0, I) and Bernoulli pixels p(x | z).

    Encoder: x -> MLP (two tanh hidden layers) -> (loc, raw) in R^L x R^L, and
    q(z | x) = N(loc, diag(scale²)) with scale = softplus(raw) + :data:`SCALE_FLOOR`
    (softplus rather than exp: its slope is at most 1, so a large output cannot blow up
    the scale in the first steps). Decoder: z -> MLP -> logits, and
    p(x | z) = prod_d Bernoulli(x_d; sigmoid(logit_d)). Inputs are binary images shaped
    ``(batch, data_dim)``; see the module docstring for the binarization.

    Args:
        data_dim: D, pixels per image (64 for the 8x8 digits).
        latent_dim: L, the dimension of z.
        hidden_dim: width of the hidden layers of both networks.

    Example:
        >>> model = VAE(data_dim=64, latent_dim=2, hidden_dim=32)
        >>> x = binarize(torch.rand(5, 64))
        >>> model.elbo(x, num_samples=3).shape
        torch.Size([5])
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.data_dim = check_positive_int("data_dim", data_dim)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.encoder = _mlp(self.data_dim, self.hidden_dim, 2 * self.latent_dim)
        self.decoder = _mlp(self.latent_dim, self.hidden_dim, self.data_dim)
        # Buffers, so that .to(device) and .double() move the prior with the networks.
        self.register_buffer("prior_loc", torch.zeros(self.latent_dim))
        self.register_buffer("prior_scale", torch.ones(self.latent_dim))

    # ------------------------------------------------------------ input checks

    def _param(self) -> torch.Tensor:
        return self.prior_loc  # carries the model's device and dtype

    def _check_x(self, x, *, binary: bool) -> torch.Tensor:
        """x as a (batch, data_dim) tensor on the model's device and dtype, or raise."""
        x = as_tensor("x", x)
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (batch, data_dim={self.data_dim}), got shape "
                             f"{tuple(x.shape)}")
        x = check_finite("x", x).to(device=self._param().device, dtype=self._param().dtype)
        if binary and not ((x == 0) | (x == 1)).all():
            raise ValueError(
                "x must be binary (0 or 1) to be scored by the Bernoulli likelihood, got "
                f"values in [{x.min().item():.4g}, {x.max().item():.4g}] with non-binary "
                "entries; binarize grey levels first with companion.vae.binarize")
        if not binary and x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"x must hold values in [0, 1], got values in "
                             f"[{x.min().item():.4g}, {x.max().item():.4g}]")
        return x

    @staticmethod
    def _check_num_samples(num_samples) -> int:
        return check_positive_int("num_samples", num_samples)

    # ------------------------------------------------------------ the model

    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I), event shape ``(latent_dim,)``."""
        return Independent(Normal(self.prior_loc, self.prior_scale), 1)

    def encode(self, x) -> Independent:
        """q(z | x) = N(loc(x), diag(scale(x)²)): batch shape ``(batch,)``, event ``(L,)``.

        ``x`` has shape ``(batch, data_dim)`` with values in [0, 1] (binary in training).
        """
        x = self._check_x(x, binary=False)
        loc, raw = self.encoder(x).chunk(2, dim=-1)  # (B, L) each
        scale = nn.functional.softplus(raw) + SCALE_FLOOR
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def decode(self, z) -> Independent:
        """p(x | z) = prod_d Bernoulli(logits_d(z)): batch shape ``z.shape[:-1]``, event (D,)."""
        if not isinstance(z, torch.Tensor) or z.dim() == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must be a tensor of shape (..., latent_dim={self.latent_dim}), "
                             f"got {describe(z)}")
        return Independent(Bernoulli(logits=self.decoder(z), validate_args=False), 1)

    def log_joint(self, x, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x | z) + log p(z) for z shaped ``(S, batch, L)``: ``(S, batch)``."""
        x = self._check_x(x, binary=True)
        return self.decode(z).log_prob(x) + self.prior.log_prob(z)  # x broadcasts over S

    def log_weights(self, x, num_samples: int = 1, *,
                    sticking_the_landing: bool = False) -> torch.Tensor:
        """log w_s = log p(x, z_s) - log q(z_s | x), z_s = loc + scale * eps_s (``rsample``).

        The result carries the reparameterized graph to every parameter, so its gradient is
        the pathwise estimator. With ``sticking_the_landing=True`` the parameters of q are
        detached inside log q (not in z): the value is unchanged and the gradient drops
        q's score term, whose expectation is zero (Roeder, Wu & Duvenaud 2017).

        Args:
            x: binary images, shape ``(batch, data_dim)``.
            num_samples: S >= 1 draws of z per image.

        Returns:
            The log weights, shape ``(S, batch)``.
        """
        num_samples = self._check_num_samples(num_samples)
        x = self._check_x(x, binary=True)
        q = self.encode(x)
        z = q.rsample((num_samples,))  # (S, B, L)
        if sticking_the_landing:
            base = q.base_dist
            q = Independent(Normal(base.loc.detach(), base.scale.detach(),
                                   validate_args=False), 1)
        return self.log_joint(x, z) - q.log_prob(z)  # (S, B)

    def elbo(self, x, num_samples: int = 1, *, analytic_kl: bool = False) -> torch.Tensor:
        """Monte Carlo ELBO per image, in nats, averaged over ``num_samples`` draws of z.

        Default (``analytic_kl=False``): (1/S) sum_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)],
        the estimator L^A of Kingma & Welling (2014, §2.3), the one :func:`iwae_bound` reduces
        to at k = 1. With ``analytic_kl=True``: (1/S) sum_s log p(x|z_s) - KL(q(z|x) || p(z)),
        their L^B, the KL in closed form: same expectation, lower variance when q is far from
        the posterior, but near a good fit the first form can be the less noisy one (the
        terms of log w then cancel; Chapter 5 measures both). Both are differentiable
        (pathwise) and unbiased for the ELBO.

        Args:
            x: binary images, shape ``(batch, data_dim)``; anything else raises ValueError.
            num_samples: S >= 1.

        Returns:
            Shape ``(batch,)``.
        """
        if not analytic_kl:
            return self.log_weights(x, num_samples).mean(dim=0)
        num_samples = self._check_num_samples(num_samples)
        x = self._check_x(x, binary=True)
        q = self.encode(x)
        z = q.rsample((num_samples,))  # (S, B, L)
        return self.decode(z).log_prob(x).mean(dim=0) - kl_divergence(q, self.prior)

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """Binary images from the model: z ~ p(z), x ~ p(x | z). Shape ``(num_samples, D)``.

        For smoother pictures show the pixel probabilities ``decode(z).mean`` instead.
        """
        num_samples = self._check_num_samples(num_samples)
        return self.decode(self.prior.sample((num_samples,))).sample()

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """Pixel probabilities E[x | z] at z = the posterior mean of q(z | x): ``(batch, D)``.

        ``x`` may hold grey levels in [0, 1] or binary images.
        """
        return self.decode(self.encode(x).mean).mean


def iwae_bound(model: VAE, x, num_samples: int = 1) -> torch.Tensor:
    """Importance-weighted bound L_k = log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q.

    Burda, Grosse & Salakhutdinov (2016, Theorem 1): E[L_1] = ELBO <= E[L_k] <= E[L_{k+1}]
    <= log p(x), and L_k -> log p(x) as k grows when the weights are bounded. Computed stably with logsumexp; the graph is
    kept, so L_k can be maximized directly (the IWAE objective).

    Args:
        model: a :class:`VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        num_samples: k >= 1.

    Returns:
        One draw of L_k per image, shape ``(batch,)``, in nats.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a companion.vae.VAE, got {describe(model)}")
    k = check_positive_int("num_samples", num_samples)
    return torch.logsumexp(model.log_weights(x, k), dim=0) - math.log(k)


@torch.no_grad()
def log_likelihood(model: VAE, x, num_samples: int = 5000, *,
                   chunk_size: int = 1000) -> torch.Tensor:
    """Importance-sampled estimate of log p(x): :func:`iwae_bound` with large k, in chunks.

    log p̂(x) = log (1/n) sum_{j<=n} w_j with w_j = p(x, z_j) / q(z_j | x). The average of the
    w_j is unbiased for p(x), so by Jensen's inequality E[log p̂(x)] <= log p(x): the
    estimate is a *stochastic lower bound*, consistent as n -> infinity, with a bias of
    about Var[w] / (2 n p(x)²). Log weights are computed ``chunk_size`` draws at a time and
    merged with logsumexp, so memory does not grow with n.

    Args:
        model: a :class:`VAE`.
        x: binary images, shape ``(batch, data_dim)``.
        num_samples: n >= 1 importance samples per image.
        chunk_size: draws per chunk, >= 1.

    Returns:
        Shape ``(batch,)``, in nats, without a graph.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a companion.vae.VAE, got {describe(model)}")
    n = check_positive_int("num_samples", num_samples)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    total = None
    for start in range(0, n, chunk_size):
        lw = model.log_weights(x, min(chunk_size, n - start))  # (chunk, B)
        part = torch.logsumexp(lw, dim=0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(n)


from .training import History, elbo_surrogate, gradient_draws, train  # noqa: E402

__all__ = ["VAE", "binarize", "iwae_bound", "log_likelihood", "train", "History",
           "elbo_surrogate", "gradient_draws", "SCALE_FLOOR"]
