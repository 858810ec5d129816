"""Checkers of Chapter 5's implement-it exercises: the reparameterized ELBO and the IWAE bound.

Both are judged on problems with known answers. The ELBO estimate is run on the chapter's
linear-Gaussian model, where the ELBO of a Gaussian q and its gradient have a closed form
(equation eq-vae-lg-elbo of the chapter); the IWAE bound is computed exactly from given
log weights. See :mod:`companion.exercises._core` for the framework.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from ._core import Verdict, exercise

__all__ = ["check_reparameterized_elbo", "check_iwae_bound"]

_ROWS = 40_000  # independent one-draw estimates per call: one row each
_VARIANCE_MARGIN = (
    10.0  # a correct answer's gradient variance is at most this × pathwise's (STL: 3.3×)
)


@contextlib.contextmanager
def _one_thread():
    """Run on one thread: these tensors are small, and on a busy machine several threads
    wait on each other (a check that takes 0.1 s on one thread took seconds on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _linear_gaussian():
    """A fixed linear-Gaussian model (D = 5, L = 2, σ₀ = 1), one observation, and a q off its
    posterior; returns x, loc, scale, the decoder, and the exact ELBO with its gradient."""
    gen = torch.Generator().manual_seed(5)
    dim_x, dim_z, sigma0 = 5, 2, 1.0
    weight = torch.randn(dim_x, dim_z, generator=gen, dtype=torch.float64)
    offset = torch.randn(dim_x, generator=gen, dtype=torch.float64)
    x = weight @ torch.randn(dim_z, generator=gen, dtype=torch.float64) + offset
    x = x + sigma0 * torch.randn(dim_x, generator=gen, dtype=torch.float64)

    def decoder(z):  # p(x | z) = N(W z + c, σ₀² I): batch shape z.shape[:-1], event (D,)
        return Independent(Normal(z @ weight.T + offset, sigma0), 1)

    loc = torch.tensor([2.0, -1.0], dtype=torch.float64)  # not the posterior's mean ...
    scale = torch.tensor([0.3, 1.5], dtype=torch.float64)  # ... nor its scales
    params = torch.cat([loc, scale]).requires_grad_(True)
    q = MultivariateNormal(params[:dim_z], torch.diag(params[dim_z:] ** 2))
    prior = MultivariateNormal(torch.zeros(dim_z, dtype=torch.float64), torch.eye(dim_z))
    trace = (weight @ q.covariance_matrix @ weight.T).trace()
    elbo = decoder(q.loc).log_prob(x) - trace / (2 * sigma0**2) - kl_divergence(q, prior)
    (grad,) = torch.autograd.grad(elbo, params, retain_graph=True)
    (grad_kl,) = torch.autograd.grad(kl_divergence(q, prior), params)
    with torch.no_grad():
        kl = kl_divergence(q, prior)
        entropy = q.entropy()
        cross = -entropy - kl  # E_q[log p(z)] = −H(q) − KL(q ‖ p)
    grad_loc, grad_scale = grad[:dim_z], grad[dim_z:]
    facts = {
        "grad_var": _pathwise_gradient_variance(x, loc, scale, decoder),
        "elbo": elbo.detach(),
        "grad": grad,
        "grad_kl": grad_kl,
        "kl": kl,
        "entropy": entropy,
        "cross": cross,
        # the gradient when z is cut from loc only, or from scale only (z = loc.detach() + ...)
        "grad_no_loc_path": torch.cat([torch.zeros_like(grad_loc), grad_scale]),
        "grad_no_scale_path": torch.cat([grad_loc, torch.zeros_like(grad_scale)]),
        # closed-form KL slips: the estimate is then the ELBO minus (wrong KL − KL)
        "slip_log_scale": 0.5 * torch.log(scale).sum(),  # log σ in place of log σ²
        "slip_no_half": -kl,  # (σ² + μ² − 1 − log σ²) without the ½: twice the KL
        "slip_no_minus_one": torch.tensor(-0.5 * dim_z, dtype=torch.float64),  # the −1 left out
    }
    return x, loc, scale, decoder, facts


def _pathwise_gradient_variance(x, loc, scale, decoder, rows: int = 20_000):
    """Per-coordinate variance (2L,) of the one-draw pathwise gradient in (loc, scale), from
    the checker's own generator (the caller's random stream is not touched)."""
    gen = torch.Generator().manual_seed(11)
    eps = torch.randn(rows, loc.numel(), generator=gen, dtype=torch.float64)
    locs = loc.expand(rows, -1).clone().requires_grad_(True)
    scales = scale.expand(rows, -1).clone().requires_grad_(True)
    z = locs + scales * eps
    log_w = (
        decoder(z).log_prob(x)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(locs, scales).log_prob(z).sum(-1)
    )
    grads = torch.autograd.grad(log_w.sum(), (locs, scales))
    return torch.cat(grads, dim=1).var(0)


def check_reparameterized_elbo(reparameterized_elbo) -> Verdict:
    """Check a student's one-draw reparameterized ELBO estimate.

    The student's function: ``reparameterized_elbo(x, loc, scale, decoder) -> Tensor`` of
    shape ``(B,)``: for each row b, with z_b = loc_b + scale_b * ε_b and ε_b ~ N(0, I),
    log p(x_b | z_b) + log p(z_b) − log q(z_b | x_b), prior p(z) = N(0, I) and
    q = N(loc_b, diag scale_b²); ``x`` is ``(B, D)``, ``loc`` and ``scale`` are ``(B, L)``,
    ``decoder(z)`` maps z ``(B, L)`` to a distribution over x with batch shape ``(B,)``.
    (The closed-form KL instead of log p(z) − log q is accepted: it is unbiased too.)

    What is verified, on the chapter's linear-Gaussian model with a q off the posterior and
    10,000 independent rows: the shape; fresh draws on each call, reproducible under a torch
    seed; inputs left unchanged; a separate draw (one ε) for each row; the mean of the
    estimates is the exact ELBO; the gradient reaches ``loc`` and ``scale``, its mean is the
    exact ELBO's gradient, and its per-coordinate variance is at most 10 times the one-draw
    pathwise gradient's (computed by the checker). Any unbiased estimate with a pathwise
    gradient passes: one draw, several draws averaged, an antithetic pair, the closed-form
    KL, sticking the landing.
    Mistakes it names: the wrong sign of the KL term; the KL term, the entropy term or the
    prior term left out; the closed-form KL with log σ in place of log σ², without its ½, or
    without its −1; z drawn with ``sample()`` or detached (no path from z to the encoder's
    parameters), or cut from ``loc`` or from ``scale`` only; a score-function (REINFORCE)
    gradient, right on average but far noisier; one ε shared by all rows; one estimate for
    the whole batch, or log densities not summed over the latent coordinates (wrong shape).
    Works in float64 (the chapter's default dtype).

    Returns a Verdict; raises ExerciseFailure naming the mistake when the function is wrong.
    """
    with (
        _one_thread(),
        exercise(
            "reparameterized ELBO", reparameterized_elbo, argument="reparameterized_elbo"
        ) as ex,
    ):
        x, loc, scale, decoder, facts = _linear_gaussian()
        rows = _ROWS
        xs = x.expand(rows, -1).clone()  # (B, D): the same observation in every row
        locs = loc.expand(rows, -1).clone().requires_grad_(True)  # (B, L): one copy per row
        scales = scale.expand(rows, -1).clone().requires_grad_(True)
        out = ex.call(xs, locs, scales, decoder)
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (rows, loc.numel()):
            ex.fail(
                f"wrong shape: the estimates should have shape ({rows},), one per row, got "
                f"{tuple(out.shape)}: sum log q(z | x) and log p(z) over the latent coordinates"
            )
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            ex.fail(
                f"wrong shape: the estimates should have shape ({rows},), one per row, got a "
                f"single number: return each row's estimate, not their mean"
            )
        ex.expect_tensor(out, shape=(rows,), what="the output")
        if torch.unique(out.detach()).numel() < rows // 2:
            ex.fail(
                f"one ε for all rows: of the {rows} estimates only "
                f"{torch.unique(out.detach()).numel()} differ, so the rows share their draw of "
                f"z. Draw a separate ε for each row (noise of shape (B, L), like loc)"
            )
        elbo = facts["elbo"]
        ex.expect_mean(
            out.detach(),
            elbo,
            what="the estimates",
            mistakes={
                "the wrong sign of the KL term (+ KL instead of − KL)": elbo + 2 * facts["kl"],
                "leaving out the KL term (log p(z) − log q(z | x))": elbo + facts["kl"],
                "leaving out the entropy term (− log q(z | x))": elbo - facts["entropy"],
                "leaving out the prior term (log p(z))": elbo - facts["cross"],
                "the closed-form KL with log σ where it needs log σ²": elbo
                - facts["slip_log_scale"],
                "the closed-form KL without its factor ½ (twice the KL)": elbo
                + facts["slip_no_half"],
                "the closed-form KL without its −1 per coordinate": elbo
                + facts["slip_no_minus_one"],
            },
            hint="the estimate is log p(x | z) + log p(z) − log q(z | x) at z = loc + scale · ε",
        )
        ex.expect_grad(out, locs, what="the estimates", name="loc")
        ex.expect_grad(out, scales, what="the estimates", name="scale")
        grads = torch.autograd.grad(out.sum(), (locs, scales), allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, (locs, scales))]
        per_row = torch.cat(grads, dim=1)  # (B, 2L): row b's gradient in (loc_b, scale_b)
        size = facts["grad"].abs().max()
        no_path = "drawing z with sample() or detaching it: the gradient then has no path "
        if torch.allclose(per_row.mean(0), -facts["grad_kl"], rtol=1e-6, atol=1e-9):
            ex.fail(  # exactly minus the KL's gradient, without noise: only the KL term moved
                f"the gradient with respect to (loc, scale) averages "
                f"{per_row.mean(0).tolist()}, exactly minus the gradient of the KL term, where "
                f"it should average {facts['grad'].tolist()}: this is what {no_path}from z to "
                f"loc and scale gives (use z = loc + scale · ε, or rsample())"
            )
        ex.expect_mean(
            per_row,
            facts["grad"],
            what="the gradient with respect to (loc, scale)",
            scale=size,
            mistakes={
                no_path + "from z to loc and scale": torch.zeros_like(facts["grad"]),
                "z cut from loc (e.g. loc.detach() + scale · ε): the gradient has no path "
                "from z to loc": facts["grad_no_loc_path"],
                "z cut from scale (e.g. loc + scale.detach() · ε): the gradient has no path "
                "from z to scale": facts["grad_no_scale_path"],
            },
            hint="each row's gradient with respect to (loc, scale) should average the exact "
            "ELBO's gradient; check which terms depend on loc and scale, and how",
        )
        ex.expect_variance(
            per_row,
            at_most=_VARIANCE_MARGIN * facts["grad_var"],
            what="the per-row gradients with respect to (loc, scale)",
            hint="a score-function (REINFORCE) gradient, (log w) · ∇ log q(z | x) with z held "
            "fixed, is right on average but far noisier: the exercise asks for the "
            "reparameterized (pathwise) gradient, through z = loc + scale · ε",
        )

        def draw():
            return ex.call(xs[:10], loc.expand(10, -1), scale.expand(10, -1), decoder)

        ex.expect_fresh_draws(draw, what="the estimate")
        ex.expect_reproducible(draw, what="the estimate")
    return ex.verdict


def check_iwae_bound(importance_weighted_bound) -> Verdict:
    """Check a student's importance-weighted bound computed from log weights.

    The student's function: ``importance_weighted_bound(log_w) -> Tensor`` of shape
    ``(B,)``, where ``log_w`` has shape ``(k, B)`` (k draws of z for each of B data points,
    draws along dimension 0) and the result is L_k = log (1/k) sum_j exp(log_w[j, b]) for each b.

    What is verified, exactly (deterministic inputs): the value on moderate log weights; the
    shape; k = 1 gives the log weight itself; the value on log weights near ±1000, where
    exp over- or underflows, and on columns near −1000, 0 and +1000 together; that the input
    is left unchanged; the gradient with respect to
    the log weights, which must be the self-normalized weights softmax(log_w, dim 0).
    Mistakes it names: the −log k left out (a sum instead of a mean inside the logarithm); the
    mean of the log weights (the ELBO, mean outside the logarithm); the wrong reduction axis;
    overflow or underflow from exponentiating without the log-sum-exp shift; a gradient
    that does not reach the log weights (e.g. ``.detach()`` or ``.item()``); one shift for
    the whole tensor (its global maximum), which underflows for data points far below it;
    a computation in float32 (the checker compares in float64 to 1e-10).

    Returns a Verdict; raises ExerciseFailure naming the mistake when the function is wrong.
    """
    with (
        _one_thread(),
        exercise(
            "IWAE bound from log weights",
            importance_weighted_bound,
            argument="importance_weighted_bound",
        ) as ex,
    ):
        gen = torch.Generator().manual_seed(17)
        k, batch = 7, 3
        log_w = 2.0 * torch.randn(k, batch, generator=gen, dtype=torch.float64) - 20.0
        out = ex.call(log_w)
        if isinstance(out, torch.Tensor) and out.dtype != torch.float64:
            ex.fail(
                f"the bound is in {out.dtype}, the log weights in float64: compute in float64 "
                f"(the chapter's default dtype), or the rounding of float32 (about 1e-7 "
                f"relative) hides what the checker compares to 1e-10"
            )
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (k,):
            ex.fail(
                f"wrong reduction axis: with log weights of shape (k, B) = ({k}, {batch}) the "
                f"bound should have shape ({batch},), one per data point, got ({k},): reduce "
                f"over dimension 0, the draws"
            )
        ex.expect_tensor(out, shape=(batch,), what="the bound")
        expected = torch.logsumexp(log_w, 0) - math.log(k)
        ex.expect_close(
            out,
            expected,
            what="the bound",
            rtol=1e-10,
            atol=1e-10,
            mistakes={
                "leaving out −log k (a sum, not a mean, inside the logarithm)": expected
                + math.log(k),
                "the mean of the log weights (the ELBO, a mean outside the logarithm)": (
                    log_w.mean(0)
                ),
            },
        )
        square = 2.0 * torch.randn(4, 4, generator=gen, dtype=torch.float64)
        expected_sq = torch.logsumexp(square, 0) - math.log(4)
        ex.expect_close(
            ex.call(square),
            expected_sq,
            what="the bound on log weights of shape (4, 4)",
            rtol=1e-10,
            atol=1e-10,
            mistakes={
                "the wrong reduction axis (over the data points, dimension 1)": torch.logsumexp(
                    square, 1
                )
                - math.log(4),
            },
        )
        one = log_w[:1]
        ex.expect_close(ex.call(one), one[0], what="the bound with k = 1", rtol=1e-12, atol=1e-12)
        for shift, word in ((-1000.0, "underflows to 0"), (1000.0, "overflows to inf")):
            big = log_w + shift
            value = ex.call(big)
            if isinstance(value, torch.Tensor) and not torch.isfinite(value.detach()).all():
                ex.fail(
                    f"overflow or underflow: with log weights near {shift:+.0f} the bound is "
                    f"{value.detach().tolist()}: exp({shift:+.0f}) {word} in floating point. "
                    f"Subtract the largest log weight before exponentiating (torch.logsumexp)"
                )
            ex.expect_close(
                value,
                expected + shift,
                what=f"the bound on log weights near {shift:+.0f}",
                rtol=1e-10,
                atol=1e-8,
            )
        # data points at very different levels: one shift for the whole tensor (its global
        # maximum) underflows for the columns far below it
        levels = torch.tensor([-1000.0, 0.0, 1000.0], dtype=torch.float64)
        mixed = log_w + levels
        value = ex.call(mixed)
        if isinstance(value, torch.Tensor) and not torch.isfinite(value.detach()).all():
            ex.fail(
                f"underflow for some data points: with the columns of the log weights near "
                f"-1000, 0 and +1000 the bound is {value.detach().tolist()}. One shift for the "
                f"whole tensor (its global maximum) leaves exp of the lower columns at 0: "
                f"subtract each column's own maximum (over dimension 0), or use torch.logsumexp"
            )
        ex.expect_close(
            value,
            expected + levels,
            what="the bound on columns near -1000, 0 and +1000",
            rtol=1e-10,
            atol=1e-8,
        )
        leaf = log_w.clone().requires_grad_(True)
        value = ex.call(leaf)
        ex.expect_grad(value, leaf, what="the bound", name="log_w")
        (grad,) = torch.autograd.grad(value.sum(), leaf)
        ex.expect_close(
            grad,
            torch.softmax(log_w, 0),
            what="the gradient with respect to the log weights",
            rtol=1e-8,
            atol=1e-12,
            hint="it should be the self-normalized weights w_j / sum_i w_i",
        )
    return ex.verdict
