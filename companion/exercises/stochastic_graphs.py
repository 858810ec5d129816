"""Checkers of the implement-it exercises of the chapter on stochastic computation graphs.

- :func:`check_two_node_surrogate`: the surrogate loss, with causality, of the two-node graph
  x ~ N(μ, 1) (by a path), z | x ~ Bernoulli(sigmoid(w x)) (by ``sample()``), costs
  c₁ = (x − 1)² and c₂ = z (x + 1) (``ex-scg-surrogate``).
- :func:`check_magic_box`: DiCE's magic box ⊡(Λ) = exp(Λ − ⊥(Λ)) (``ex-scg-magic-box``).

The exact gradient of the graph, its variance and the means that the typical mistakes give are
computed by Gauss–Hermite quadrature over x (:func:`companion.quadrature.gauss_hermite`) and a
sum over z; the magic box is judged by exact derivatives of closed forms.
"""

from __future__ import annotations

import contextlib

import torch

from ..quadrature import gauss_hermite
from ._core import Verdict, exercise

__all__ = ["check_two_node_surrogate", "check_magic_box"]


@contextlib.contextmanager
def _one_thread():
    """Run the student's small tensor operations on one thread, restoring the setting after.

    A checker calls the function hundreds of times on tensors of a few hundred numbers, where
    a second thread only adds waiting (seconds, on a busy machine, instead of a fraction).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_THETA = (0.3, 0.8)  # (μ, w)
_CALLS, _DRAWS = 200, 250


def _graph_moments(per_sample, theta):
    """Mean and variance of ``per_sample(x, z, π)`` ``(K, 2)`` over x ~ N(μ, 1), z | x."""
    nodes, weights = gauss_hermite(80)
    x = theta[0] + nodes  # (K,)
    pi = torch.sigmoid(theta[1] * x)
    first = second = 0.0
    for z, prob in ((1.0, pi), (0.0, 1 - pi)):
        g = per_sample(x, torch.full_like(x, z), pi)  # (K, 2)
        first = first + (weights * prob) @ g
        second = second + (weights * prob) @ g**2
    return first, second - first**2


def _exact_gradient(theta):
    """∇_(μ, w) J, J = E[(x − 1)² + sigmoid(w x)(x + 1)], by autograd through quadrature."""
    theta = theta.clone().requires_grad_(True)
    nodes, weights = gauss_hermite(80)
    x = theta[0] + nodes
    objective = weights @ ((x - 1) ** 2 + torch.sigmoid(theta[1] * x) * (x + 1))
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


def _variance_hint(estimates, theta0) -> str:
    """Name the upstream cost in the score term when the variance matches it, else ask."""

    def upstream_too(x, z, pi):  # the score of z weighted by c₁ + c₂
        c1, c2 = (x - 1) ** 2, z * (x + 1)
        w = theta0[1]
        return torch.stack(
            [2 * (x - 1) + z + (z - pi) * w * (c1 + c2), (z - pi) * x * (c1 + c2)], -1
        )

    wrong = float(_graph_moments(upstream_too, theta0)[1][1]) / _DRAWS
    seen = float(estimates[:, 1].var())
    if 0.7 * wrong <= seen <= 1.4 * wrong:
        return (
            f"in w it is about what weighting the score of z by the upstream cost c₁ too, "
            f"c₁ + c₂, gives ({wrong:.3g}): c₁ does not depend on z, so in the score term of z "
            f"it only adds noise"
        )
    return "is the score of z weighted by a cost that is not downstream of z?"


def check_two_node_surrogate(two_node_surrogate) -> Verdict:
    """Check a student's surrogate loss of a two-node stochastic computation graph.

    The graph: x ~ N(μ, 1), sampled along the path x = μ + ε; z | x ~
    Bernoulli(sigmoid(w x)), sampled with ``sample()``; costs c₁ = (x − 1)², upstream of z,
    and c₂ = z (x + 1), downstream of z. The student's function:
    ``two_node_surrogate(theta, num_samples) -> L``, with ``theta`` = (μ, w) of shape
    ``(2,)`` (requires grad) and ``L`` of shape ``(num_samples,)``, the per-draw surrogate
    c₁ + c₂ + log p(z | x) ⊥(c₂), whose gradient is an unbiased estimate of ∇J.

    What is verified, at θ = (0.3, 0.8), in float64:

    - the result is a finite floating tensor ``(num_samples,)``; the gradient reaches μ and
      w; θ is left unchanged; fresh draws on each call;
    - unbiasedness: over 200 calls of 250 draws, the gradient of the mean surrogate against
      the exact ∇J, by Gauss–Hermite quadrature (resolution about 7% for μ, 3% for w);
    - the variance of that gradient is at most 1.2 times that of the causal surrogate, known
      exactly by quadrature (weighting the score of z by c₁ + c₂ makes the w-coordinate's
      about 17 times larger).

    Mistakes it names: no score term for z; the cost in the score term not detached; x
    detached inside log p(z | x) (the path of x does not reach the score of z); the score
    of z with the wrong sign; the score of z weighted by the upstream cost c₁ instead of c₂
    (its mean); the score of z weighted by c₁ too, c₁ + c₂ (its variance, in w); x drawn
    with ``sample()`` (the gradient does not reach μ); wrong shape; seeding inside the
    function; modifying θ in place.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with (
        _one_thread(),
        exercise(
            "surrogate of a two-node graph", two_node_surrogate, argument="two_node_surrogate"
        ) as ex,
    ):
        theta0 = torch.tensor(_THETA, dtype=torch.float64)
        theta = theta0.clone().requires_grad_(True)
        surrogate = ex.call(theta, _DRAWS)
        ex.expect_tensor(surrogate, shape=(_DRAWS,), what="the surrogate")
        ex.expect_grad(surrogate, theta, what="the surrogate")
        (grad,) = torch.autograd.grad(surrogate.mean(), theta)
        if grad[0] == 0:
            ex.fail(
                "the gradient does not reach μ: its coordinate is exactly 0. Is x drawn "
                "with sample() instead of along its path x = μ + ε (rsample)?"
            )
        if grad[1] == 0:
            ex.fail(
                "the gradient does not reach w: its coordinate is exactly 0. w enters only "
                "through log p(z | x): is the score term of z missing, or detached?"
            )

        def estimate():
            theta = theta0.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(ex.call(theta, _DRAWS).mean(), theta)
            return grad

        ex.expect_fresh_draws(estimate, what="the gradient of the mean surrogate")
        estimates = ex.repeat(estimate, times=_CALLS)  # (R, 2)

        w = _THETA[1]

        def causal(x, z, pi):  # per-draw gradient of the causal surrogate
            c2 = z * (x + 1)
            return torch.stack([2 * (x - 1) + z + (z - pi) * w * c2, (z - pi) * x * c2], -1)

        def variant(score_weight=1.0, undetached=0.0, path_in_score=1.0):
            def per_sample(x, z, pi):
                c2 = z * (x + 1)
                log_p = torch.where(z > 0, torch.log(pi), torch.log(1 - pi))
                return torch.stack(
                    [
                        2 * (x - 1)
                        + z
                        + score_weight * path_in_score * (z - pi) * w * c2
                        + undetached * log_p * z,
                        score_weight * (z - pi) * x * c2,
                    ],
                    -1,
                )

            return _graph_moments(per_sample, theta0)[0]

        exact = _exact_gradient(theta0)
        _, var_causal = _graph_moments(causal, theta0)
        ex.expect_mean(
            estimates,
            exact,
            what="the gradient of the mean surrogate",
            mistakes={
                "not detaching the cost in the score term": variant(undetached=1.0),
                "detaching x inside log p(z | x)": variant(path_in_score=0.0),
                "the score term of z with the wrong sign": variant(score_weight=-1.0),
                "weighting the score of z by the upstream cost c₁ instead of the downstream "
                "cost c₂ (c₁ does not depend on z, so its score term averages to 0)": variant(
                    score_weight=0.0
                ),
            },
            hint="which costs does the score term of z multiply: only those downstream of z? "
            "And are they detached?",
        )
        ex.expect_variance(
            estimates,
            at_most=1.2 * var_causal / _DRAWS,
            what="the gradients of the mean surrogate",
            hint=_variance_hint(estimates, theta0),
        )
    return ex.verdict


def check_magic_box(magic_box) -> Verdict:
    """Check a student's DiCE magic box.

    The student's function: ``magic_box(log_prob_sum) -> Tensor`` of the same shape,
    ⊡(Λ) = exp(Λ − ⊥(Λ)) elementwise: it evaluates to 1, and its derivative is ⊡(Λ) ∇Λ, so
    that ∇⊡ evaluates to ∇Λ and ∇²⊡ to ∇²Λ + ∇Λ ∇Λᵀ.

    What is verified, exactly (to 1e-10 relative, in float64):

    - the value is 1, of the input's shape, for Λ of shape ``(3,)`` and ``()``, and for
      Λ = ±1000 (no overflow), where its first derivative is 1 too (no clamping);
    - with Λ(θ) = θ³/3 + sin θ at θ = (0.5, −1.2, 2), the first derivative evaluates to Λ'
      and the second to Λ'' + Λ'²;
    - used in DiCE for one Bernoulli node, z ~ Bernoulli(sigmoid(θ)), f(z) = (z − 0.2)², by
      enumeration: the second derivative of Σ_z p(z) ⊡(log p_θ(z)) f(z) is J''(θ), with
      J = 0.04 + 0.6 sigmoid(θ), at θ = 0.3.

    Mistakes it names: exp(Λ) (no stop-gradient: the value is not 1); exp(Λ − Λ) (nothing
    detached: no gradient); the stop-gradient on the wrong term, exp(⊥Λ − Λ) (first
    derivative of the wrong sign); 1 + Λ − ⊥Λ (right first derivative, no second); the
    overflow of exp(Λ)/exp(⊥Λ); clamping Λ against that overflow (value 1 at Λ = ±1000 but
    derivative 0); modifying the input in place; wrong shape.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with _one_thread(), exercise("DiCE's magic box", magic_box, argument="magic_box") as ex:
        theta = torch.tensor([0.5, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
        lam = theta**3 / 3 + torch.sin(theta)  # Λ(θ), elementwise
        t = theta.detach()
        d1, d2 = t**2 + torch.cos(t), 2 * t - torch.sin(t)  # Λ', Λ''
        box = ex.call(lam)
        ex.expect_tensor(box, shape=(3,), what="the magic box")
        ex.expect_close(
            box,
            torch.ones(3, dtype=torch.float64),
            what="the value of the box",
            rtol=1e-10,
            mistakes={"exp(Λ) without the stop-gradient": lam.exp()},
            hint="the box must evaluate to 1 whatever Λ",
        )
        if box.grad_fn is not None:
            (first,) = torch.autograd.grad(box.sum(), theta, create_graph=True, allow_unused=True)
            if first is not None and not bool(first.abs().sum() > 0):
                ex.fail(
                    "the gradient of the box is exactly 0: Λ − Λ cancels in autograd too; "
                    "the box needs a stop-gradient (detach) on one of the two"
                )
        ex.expect_grad(box, theta, what="the magic box")
        (first,) = torch.autograd.grad(box.sum(), theta, create_graph=True)
        ex.expect_close(
            first,
            d1,
            what="the first derivative of the box",
            rtol=1e-10,
            mistakes={"putting the stop-gradient on the wrong term": -d1},
            hint="∇⊡(Λ) must evaluate to ∇Λ",
        )
        if first.grad_fn is None:
            second = torch.zeros_like(d2)
        else:
            (second,) = torch.autograd.grad(first.sum(), theta)
        ex.expect_close(
            second,
            d2 + d1**2,
            what="the second derivative of the box",
            rtol=1e-10,
            mistakes={
                "1 + Λ − ⊥(Λ), right to first order only,": d2,
                "a box with no second derivative": torch.zeros_like(d2),
            },
            hint="∇²⊡(Λ) must evaluate to ∇²Λ + (∇Λ)², the derivative of ⊡(Λ) ∇Λ",
        )

        scalar = ex.call(torch.tensor(0.7, dtype=torch.float64))
        ex.expect_tensor(scalar, shape=(), what="the box of a 0-dim Λ")
        large = torch.tensor([-1000.0, 1000.0], dtype=torch.float64, requires_grad=True)
        value = ex.call(large * 1.0)
        if not isinstance(value, torch.Tensor) or not bool(torch.isfinite(value).all()):
            ex.fail(
                "the box overflows for large |Λ| (Λ = ±1000 gives inf or NaN): "
                "exp(Λ) / exp(⊥Λ) overflows, take the exponential of the difference"
            )
        ex.expect_close(
            value, torch.ones(2, dtype=torch.float64), what="the box at Λ = ±1000", rtol=1e-10
        )
        slope = None
        if value.grad_fn is not None:
            (slope,) = torch.autograd.grad(value.sum(), large, allow_unused=True)
        ex.expect_close(
            torch.zeros(2, dtype=torch.float64) if slope is None else slope,
            torch.ones(2, dtype=torch.float64),
            what="the first derivative of the box with respect to Λ at Λ = ±1000",
            rtol=1e-10,
            mistakes={
                "clamping Λ before the exponential (the clamp is active there, so its "
                "gradient is 0)": torch.zeros(2, dtype=torch.float64)
            },
            hint="∂⊡(Λ)/∂Λ = ⊡(Λ) must evaluate to 1 whatever Λ",
        )

        # DiCE on one Bernoulli node, by enumeration of z
        a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        z = torch.tensor([0.0, 1.0], dtype=torch.float64)
        log_p = torch.distributions.Bernoulli(logits=a.expand(2)).log_prob(z)
        objective = (log_p.detach().exp() * ex.call(log_p) * (z - 0.2) ** 2).sum()
        (d_a,) = torch.autograd.grad(objective, a, create_graph=True)
        (dd_a,) = torch.autograd.grad(d_a, a)
        pi = torch.sigmoid(a.detach())
        ex.expect_close(
            dd_a,
            0.6 * pi * (1 - pi) * (1 - 2 * pi),
            what="DiCE's second derivative of E[(z − 0.2)²], z ~ Bernoulli",
            rtol=1e-10,
            atol=1e-14,
        )
    return ex.verdict
