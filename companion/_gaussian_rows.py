"""Per-sample gradients in closed form for the two Gaussian families with matrix parameters.

The estimators' engine (:func:`companion.estimators.per_sample_gradients`) gives each draw its
own copy of θ. For ``MultivariateNormal`` and ``LowRankMultivariateNormal`` that means N
triangular solves (and, for the low-rank family, N Cholesky factors) of N identical small
matrices, forward and backward, where the plain surrogate does one solve with N right-hand
sides; torch's batched linear algebra costs per matrix, so the copies ran 2 to 8 times slower
than the surrogate (pathwise about 2.2 and 3.5, score function 5.5 and 7.3, at N = 10^5).
For these two families the per-sample gradients with respect to the distribution's own
parameters ψ have a closed form that uses each matrix once, and the chain rule to θ needs
only the Jacobian ∂ψ/∂θ, computed once by autograd through ``dist_fn`` (whatever it does: a
Cholesky factor of a covariance, a precision matrix, a softplus):

    g_n = (∂ℓ_n/∂ψ) ∂ψ/∂θ,    ℓ_n = log p(x_n; ψ) or f(x(ψ, ε_n)).

``MultivariateNormal(μ, L)``, with z = L⁻¹(x − μ) and w = L⁻ᵀz = Σ⁻¹(x − μ), since
log p = −½ zᵀz − Σᵢ log Lᵢᵢ + const and dz = −L⁻¹ dL z:

    ∂ log p/∂μ = w,    ∂ log p/∂L = tril(w zᵀ − diag(1/Lᵢᵢ));
    x = μ + L ε:    ∂f/∂μ = ∇f(x),    ∂f/∂L = ∇f(x) εᵀ.

(``log_prob`` reads only the lower triangle of L, ``rsample`` all of it: the score keeps the
rows of ∂ψ/∂θ for the lower triangle, the path all of them.)

``LowRankMultivariateNormal(μ, W, d)``, Σ = W Wᵀ + diag(d), a = Σ⁻¹(x − μ) by Woodbury with
the capacitance C = I + Wᵀ diag(d)⁻¹ W, since d log p = tr(G dΣ) with G = ½(a aᵀ − Σ⁻¹):

    ∂ log p/∂μ = a,    ∂ log p/∂W = 2GW = a (Wᵀa)ᵀ − Σ⁻¹W,    ∂ log p/∂d = ½(a² − diag Σ⁻¹),
    with Σ⁻¹W = diag(d)⁻¹ W C⁻¹ and Wᵀa = C⁻¹ Wᵀ diag(d)⁻¹ (x − μ) (not the difference of
    two large terms, which loses float32's digits when d is small);
    x = μ + W ε_W + √d ⊙ ε_d:    ∂f/∂μ = ∇f,    ∂f/∂W = ∇f ε_Wᵀ,    ∂f/∂d = ∇f ⊙ ε_d / (2√d).

The noise is drawn as torch's ``rsample`` draws it (ε_W before ε_d), so on the same random
stream the rows equal the engine's up to rounding; the tests compare both, row by row, in
float64.
"""

from __future__ import annotations

import warnings

import torch
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

# Limits for the closed form (beyond them the engine's copies run): ψ of at most 4 entries
# per entry of θ, plus 64, so that the (N, P) rows stay linear in θ's size; and at most 2,048
# entries with P·D at most 2^20, which bounds the (P, D) Jacobian and the (P, P) identity
# its batched backward pass starts from (32 MB in float64).
MAX_PARAMETERS_PER_THETA = 4
MAX_PARAMETERS_EXTRA = 64
MAX_PARAMETERS = 2048
MAX_JACOBIAN_ENTRIES = 2**20


def supports(dist, num_theta: int) -> bool:
    """Whether ``dist`` is one of the two families, with ψ small enough for θ of ``num_theta``."""
    if type(dist) not in (MultivariateNormal, LowRankMultivariateNormal):
        return False  # a subclass may change log_prob or rsample: the engine handles it
    if type(dist) is MultivariateNormal:
        tril = dist.scale_tril.detach()
        if tril.triu(1).any() or not (tril.diagonal(dim1=-2, dim2=-1) > 0).all():
            return False  # not a Cholesky factor (validation off): the engine says so
    elif not (dist.cov_diag.detach() > 0).all():
        return False
    count = sum(p.numel() for p in parameters(dist))
    return (
        count <= MAX_PARAMETERS_PER_THETA * num_theta + MAX_PARAMETERS_EXTRA
        and count <= MAX_PARAMETERS
        and count * num_theta <= MAX_JACOBIAN_ENTRIES
    )


def parameters(dist) -> tuple[torch.Tensor, ...]:
    """ψ: (loc, scale_tril) or (loc, cov_factor, cov_diag), expanded to the batch shape."""
    if type(dist) is MultivariateNormal:
        return dist.loc, dist.scale_tril
    return dist.loc, dist.cov_factor, dist.cov_diag


def jacobian(params: tuple[torch.Tensor, ...], theta: torch.Tensor) -> torch.Tensor | None:
    """∂ψ/∂θ, shape ``(P, D)``; None if ψ has no graph to θ.

    One batched backward pass (P of them in a loop if a backward in dist_fn's graph cannot
    be batched).
    """
    flat = torch.cat([p.reshape(-1) for p in params])
    if not flat.requires_grad:
        return None
    eye = torch.eye(flat.numel(), dtype=flat.dtype, device=flat.device)
    try:
        with warnings.catch_warnings():  # a backward without a batching rule runs in a loop
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            (jac,) = torch.autograd.grad(
                flat,
                theta,
                grad_outputs=eye,
                retain_graph=True,
                is_grads_batched=True,
                allow_unused=True,
            )
    except RuntimeError:
        rows = [
            torch.autograd.grad(
                flat, theta, grad_outputs=row, retain_graph=True, allow_unused=True
            )[0]
            for row in eye
        ]
        jac = None if rows[0] is None else torch.stack(rows)
    return jac


def _swap(matrix: torch.Tensor) -> torch.Tensor:
    """The transpose of a 2-D tensor, made contiguous.

    On the CPU through NumPy, whose transposing copy of a long, thin matrix is several times
    faster than torch's (about 0.06 ms against 0.5 ms for 10^5 × 2 on two cores).
    """
    if matrix.device.type == "cpu" and matrix.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(matrix.detach().numpy().T.copy())
    return matrix.T.contiguous()


def draws_last(t: torch.Tensor) -> torch.Tensor:
    """(N, *shape) to (*shape, N), contiguous: each coordinate a row of N numbers."""
    return _swap(t.reshape(t.shape[0], -1)).reshape(*t.shape[1:], t.shape[0])


def draws_first(t: torch.Tensor) -> torch.Tensor:
    """(*shape, N) to (N, *shape), contiguous."""
    return _swap(t.reshape(-1, t.shape[-1])).reshape(t.shape[-1], *t.shape[:-1])


def times_jacobian(blocks: list[torch.Tensor], jac: torch.Tensor) -> torch.Tensor:
    """The (N, D) rows Σ_b (∂ψ_b/∂θ)ᵀ s_b from blocks s_b laid out with the draws last.

    Each block has the shape of its parameter followed by N; with the draws along the last
    (contiguous) dimension, every elementwise product and this matrix product run over long
    rows of N numbers rather than over N tiny matrices; the (D, N) product is transposed once
    at the end (contiguous, like the engine's rows).
    """
    out, start = None, 0
    jac = jac.to(blocks[0].dtype)  # dist_fn may build ψ in another dtype than θ's
    for block in blocks:
        flat = block.reshape(-1, block.shape[-1])  # (P_b, N)
        part = jac[start : start + flat.shape[0]].T @ flat  # (D, N)
        out = part if out is None else out + part
        start += flat.shape[0]
    return draws_first(out)


# ---------------------------------------------------------------- the closed forms
# Each takes the detached parameters and returns the blocks ∂ℓ_n/∂ψ_b, draws last.


def _mvn_score_blocks(loc, tril, residual):
    """log p = −½ zᵀz − Σᵢ log Lᵢᵢ + c, z = L⁻¹r: ∂/∂μ = w = L⁻ᵀz, ∂/∂L = w zᵀ − diag(1/Lᵢᵢ)."""
    z = torch.linalg.solve_triangular(tril, residual, upper=False)
    w = torch.linalg.solve_triangular(tril.mT, z, upper=True)  # Σ⁻¹(x − μ)
    inverse_diagonal = torch.diag_embed(1.0 / tril.diagonal(dim1=-2, dim2=-1))
    return [w, w.unsqueeze(-2) * z.unsqueeze(-3) - inverse_diagonal.unsqueeze(-1)]


def _lowrank_score_blocks(loc, factor, diag, residual):
    """a = Σ⁻¹r: ∂/∂μ = a, ∂/∂W = a (Wᵀa)ᵀ − Σ⁻¹W, ∂/∂d = ½(a² − diag Σ⁻¹), by Woodbury."""
    scaled = factor / diag.unsqueeze(-1)  # diag(d)⁻¹ W, (*batch, k, r)
    eye = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device)
    capacitance = torch.linalg.cholesky(eye + factor.mT @ scaled)  # C = I + Wᵀ diag(d)⁻¹ W
    projected = torch.cholesky_solve(scaled.mT @ residual, capacitance)  # Wᵀa = C⁻¹WᵀD⁻¹r
    a = residual / diag.unsqueeze(-1) - scaled @ projected  # Σ⁻¹(x − μ), (*batch, k, N)
    inverse_times_factor = torch.cholesky_solve(scaled.mT, capacitance).mT  # Σ⁻¹W = D⁻¹W C⁻¹
    inverse_diagonal = 1.0 / diag - (scaled * inverse_times_factor).sum(-1)  # diag Σ⁻¹
    return [
        a,
        a.unsqueeze(-2) * projected.unsqueeze(-3) - inverse_times_factor.unsqueeze(-1),
        0.5 * (a.square() - inverse_diagonal.unsqueeze(-1)),
    ]


def _read_by_log_prob(loc, tril):
    """Which entries of ψ = (loc, scale_tril) log p reads: all of loc, L's lower triangle."""
    size = loc.shape[-1]
    upper = torch.ones(size, size, dtype=torch.bool, device=loc.device).triu(1)
    lower = ~upper.expand_as(tril).reshape(-1)
    return torch.cat([torch.ones(loc.numel(), dtype=torch.bool, device=loc.device), lower])


def _mvn_path_blocks(loc, tril, grad, noise):
    """x = μ + Lε: ∂f/∂μ = ∇f, ∂f/∂L = ∇f εᵀ."""
    (eps,) = noise
    return [grad, grad.unsqueeze(-2) * eps.unsqueeze(-3)]


def _lowrank_path_blocks(loc, factor, diag, grad, noise):
    """x = μ + W ε_W + √d ⊙ ε_d: ∂f/∂μ = ∇f, ∂f/∂W = ∇f ε_Wᵀ, ∂f/∂d = ∇f ⊙ ε_d / (2√d)."""
    eps_w, eps_d = noise
    return [
        grad,
        grad.unsqueeze(-2) * eps_w.unsqueeze(-3),
        grad * eps_d / (2.0 * diag.sqrt()).unsqueeze(-1),
    ]


def _detached(dist) -> list[torch.Tensor]:
    return [p.detach() for p in parameters(dist)]


def score_rows(dist, x: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    """∇θ log p(x_n; θ) for each draw, shape ``(N, D)``, from ∂ψ/∂θ (``jac``, ``(P, D)``).

    ``x`` has shape ``(N, *batch_shape, k)``; the log-density of a draw is summed over the
    batch shape, so the rows of ∂ log p/∂ψ hold one entry per parameter entry.
    """
    params = _detached(dist)
    residual = draws_last(x) - params[0].unsqueeze(-1)  # (*batch, k, N): draws as columns
    if type(dist) is MultivariateNormal:
        keep = _read_by_log_prob(*params)
        return times_jacobian(_mvn_score_blocks(*params, residual), jac * keep.unsqueeze(-1))
    return times_jacobian(_lowrank_score_blocks(*params, residual), jac)


def draw(dist, num_samples: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """N draws as ``dist.rsample((N,))`` makes them (same noise, same order), detached.

    Returns the draws ``(N, *batch_shape, k)`` and the standard normal noise they came from,
    draws last: ``(*batch_shape, k, N)`` (and ``(*batch_shape, r, N)`` for ε_W).
    """
    params = _detached(dist)
    loc = params[0]
    shape = (num_samples, *loc.shape)

    def normal(size):
        return draws_last(torch.empty(size, dtype=loc.dtype, device=loc.device).normal_())

    if type(dist) is MultivariateNormal:
        eps = normal(shape)
        return draws_first(loc.unsqueeze(-1) + params[1] @ eps), (eps,)
    factor, diag = params[1], params[2]
    eps_w = normal((*shape[:-1], factor.shape[-1]))  # torch draws ε_W first, then ε_d
    eps_d = normal(shape)
    x = loc.unsqueeze(-1) + diag.sqrt().unsqueeze(-1) * eps_d + factor @ eps_w
    return draws_first(x), (eps_w, eps_d)


def path_rows(
    dist, noise: tuple[torch.Tensor, ...], grad_x: torch.Tensor, jac: torch.Tensor
) -> torch.Tensor:
    """∇θ f(x(θ, ε_n)) for each draw, shape ``(N, D)``, from ∇f(x_n) and ∂ψ/∂θ (``jac``)."""
    params = _detached(dist)
    grad = draws_last(grad_x)  # (*batch, k, N)
    if type(dist) is MultivariateNormal:
        return times_jacobian(_mvn_path_blocks(*params, grad, noise), jac)
    return times_jacobian(_lowrank_path_blocks(*params, grad, noise), jac)
