"""REBAR and RELAX: control variates built on the relaxation, for Bernoulli variables (Ch. 6, 7).

For independent bits b_i = 1[z_i > 0], z_i = logits_i + L_i with L_i standard logistic (the
difference of two standard Gumbels, so b_i ~ Bernoulli(π_i), π_i = sigmoid(logits_i)), the
single-sample REBAR estimator of ∇ E[f(x)] (Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein
2017, "REBAR: Low-variance, unbiased gradient estimates for discrete latent variable models",
NeurIPS, eq. 6) is

    g = (f(x) - η c(z̃)) ∇ log p(x) + η ∇ c(z) - η ∇ c(z̃),   c(z) = f(sigmoid(z / τ)),

with z̃ a fresh draw of z *given* x, reparameterized (:func:`conditional_logistic`), and the
coefficient f(x) - η c(z̃) held constant. It is unbiased for every η and τ:
E[c(z̃) ∇ log p(x)] + E[∇ c(z̃)] = ∇ E_b[E[c(z̃) | x]] = ∇ E[c(z)] = E[∇ c(z)].
One sample costs three evaluations of f (at x, at sigmoid(z/τ), at sigmoid(z̃/τ)), the last
two with a backward pass through f, so f must accept relaxed inputs in (0, 1).

RELAX (Grathwohl, Choi, Wu, Roeder, Duvenaud 2018, "Backpropagation through the void:
optimizing control variates for black-box gradient estimation", ICLR, Alg. 2) replaces η c
by any differentiable control c_ψ, here of the relaxed bits sigmoid(z / τ), and trains ψ to
minimize the estimator's variance (:func:`relax_bernoulli`); with c_ψ = η f it is REBAR.
"""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli
from torch.distributions.utils import clamp_probs

from ._validation import (
    check_allocation,
    check_bool,
    check_callable,
    check_finite,
    check_positive_int,
    check_real,
    describe,
    evaluate_f,
)
from .estimators import per_sample_gradients
from .montecarlo import Estimate, summarize

__all__ = ["conditional_logistic", "rebar_bernoulli", "relax_bernoulli"]


def _check_logits(logits) -> torch.Tensor:
    """Logits as given (gradients kept): a non-empty finite floating tensor."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {describe(logits)}")
    if logits.numel() == 0:
        raise ValueError("logits must hold at least one element, got an empty tensor")
    check_finite("logits", logits.detach())
    return logits


def conditional_logistic(logits: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A reparameterized draw z̃ of z = logits + L given x = 1[z > 0] (L standard logistic).

    With π = sigmoid(logits), u = sigmoid(z - logits) is uniform, and x = 1 exactly when
    u > 1 - π; so given x = 1, u is uniform on (1 - π, 1), and given x = 0 on (0, 1 - π).
    With v ~ Uniform(0, 1), ũ = x (1 - π + v π) + (1 - x) v (1 - π) and
    z̃ = logits + logit(ũ), which simplifies (no cancellation near ũ = 0 or 1) to

        z̃ = softplus(logit(v) + softplus(logits))      if x = 1,
        z̃ = -softplus(-logit(v) + softplus(-logits))   if x = 0

    (Tucker et al. 2017, Appendix). So sign(z̃) agrees with x, z̃ | x has the law of z | x,
    and with x ~ Bernoulli(π), z̃ is logistic(logits, 1) again. v is clamped to
    [eps, 1 - eps] as in :func:`companion.relaxations.gumbel_noise`.

    Args:
        logits: a finite floating tensor ``(*shape)``; z̃ is differentiable in it.
        x: the observed bits 1[z > 0], a floating tensor of zeros and ones broadcastable
            with ``logits`` (written b in Tucker et al.; x in the book, where b is a baseline).
        v: uniform noise in [0, 1], a floating tensor broadcastable with ``logits``.

    Returns:
        z̃, shaped like ``logits``, ``x`` and ``v`` broadcast together.

    Example:
        >>> x, v = torch.tensor([1.0, 0.0]), torch.full((2,), 0.5)
        >>> z = conditional_logistic(torch.zeros(2), x, v)
        >>> bool(z[0] > 0 and z[1] < 0)
        True
    """
    logits = _check_logits(logits)
    for name, value in (("x", x), ("v", v)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
    if not ((x == 0) | (x == 1)).all():
        raise ValueError("x must hold only zeros and ones (bits)")
    if not ((v >= 0) & (v <= 1)).all():  # NaN fails too
        raise ValueError("v must hold uniform draws in [0, 1]")
    try:
        torch.broadcast_shapes(logits.shape, x.shape, v.shape)
    except RuntimeError as err:
        raise ValueError(
            f"logits, x and v must broadcast together, got shapes {tuple(logits.shape)}, "
            f"{tuple(x.shape)}, {tuple(v.shape)}"
        ) from err
    logit_v = torch.logit(clamp_probs(v.to(logits.dtype)))
    softplus = torch.nn.functional.softplus
    above = softplus(logit_v + softplus(logits))  # z̃ given x = 1
    below = -softplus(-logit_v + softplus(-logits))  # z̃ given x = 0
    return torch.where(x.detach() > 0.5, above, below)


def _rebar_surrogate(f, copies, u, v, temperature, eta, conditional=True) -> torch.Tensor:
    """Per-row surrogate whose gradient in row n of ``copies`` (N, n) is REBAR's g_n.

    ``conditional=False`` draws z̃ = logits + logit(v) from the marginal logistic instead,
    independent of x (still unbiased, a weaker control variate)."""
    num = copies.shape[0]
    z = copies + torch.logit(u)  # logits + L, L = logit(u) standard logistic
    x = (z > 0).to(copies.dtype).detach()  # x_i = 1[z_i > 0] ~ Bernoulli(π_i)
    if conditional:
        z_tilde = conditional_logistic(copies, x, v)  # z̃ ~ z | x, reparameterized
    else:
        z_tilde = copies + torch.logit(clamp_probs(v))  # z̃ ~ z, independent of x

    def control(z_):  # η c(z) = η f(sigmoid(z / τ)), one evaluation of f
        return eta * evaluate_f(f, torch.sigmoid(z_ / temperature), num)

    c_z, c_tilde = control(z), control(z_tilde)
    log_p = Bernoulli(logits=copies).log_prob(x).sum(-1)  # log p(x), (N,)
    f_x = evaluate_f(f, x, num)
    return (f_x - c_tilde).detach() * log_p + c_z - c_tilde


def rebar_bernoulli(
    f, logits, num_samples: int, *, temperature=0.5, eta=1.0, conditional=True, parts=False
) -> Estimate | tuple[Estimate, Estimate]:
    """REBAR estimates of ∇ E[f(x)], b_i ~ Bernoulli(sigmoid(logits_i)) independent.

    Per sample (Tucker et al. 2017, eq. 6; see the module docstring):
    g = (f(x) - η c(z̃)) ∇ log p(x) + η ∇ c(z) - η ∇ c(z̃), c(z) = f(sigmoid(z / τ)).
    Unbiased for every ``temperature`` τ and ``eta`` η; they only change the variance. Costs
    three evaluations of f per sample (two of them at relaxed inputs, with backward passes).

    Args:
        f: maps bits or relaxed bits, shape ``(N, n)`` with values in [0, 1], to ``(N,)``;
            differentiable at relaxed inputs.
        logits: the logits of the n bits, a finite 1-D floating tensor ``(n,)``.
        num_samples: N >= 2 independent samples.
        temperature: τ > 0 of the relaxation, a number or 0-dim floating tensor.
        eta: η, the scale of the control variate, a finite number.
        conditional: if False, z̃ is drawn from the marginal law of z, independent of x, instead
            of from z given x. The estimator stays unbiased (E[c(z̃) ∇ log p(x)] = 0 and
            E[∇ c(z̃)] = E[∇ c(z)]) but the control variate is weaker: a check of unbiasedness
            alone cannot tell the two apart, a comparison of variances can.
        parts: if True, return the two parts of g = a - η c from the same draws instead of g:
            a = f(x) ∇ log p(x) (the estimator at η = 0) and the control-variate term
            c = c(z̃) ∇ log p(x) - ∇ c(z) + ∇ c(z̃), so that any η can be applied afterwards, e.g.
            the variance-minimizing η* = tr Cov(a, c) / tr Var(c). ``eta`` is then ignored. The
            same three points are evaluated for both parts (cost: three evaluations of f per
            sample, computed twice here for simplicity).

    Returns:
        An :class:`~companion.montecarlo.Estimate`: per-sample gradients ``(N, n)``, their mean
        and standard error ``(n,)``; with ``parts=True`` a pair of Estimates ``(a, c)``.

    Example:
        >>> est = rebar_bernoulli(lambda x: x.sum(-1), torch.zeros(3), 4)
        >>> est.samples.shape
        torch.Size([4, 3])
    """
    check_callable("f", f)
    logits = _check_logits(logits)
    if logits.dim() != 1:
        raise ValueError(f"logits must be a 1-D tensor (n,), got shape {tuple(logits.shape)}")
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    temperature = check_real("temperature", temperature, positive=True)
    eta = check_real("eta", eta)
    conditional = check_bool("conditional", conditional)
    parts = check_bool("parts", parts)
    shape = (num_samples, logits.shape[0])
    if parts:  # the same noise for both parts: a = g(η = 0), c = g(0) - g(1)
        u = clamp_probs(torch.rand(shape, dtype=logits.dtype, device=logits.device))
        v = torch.rand(shape, dtype=logits.dtype, device=logits.device)
        a, g1 = (
            per_sample_gradients(
                lambda c, eta_=eta_: _rebar_surrogate(f, c, u, v, temperature, eta_, conditional),
                logits.detach(),
                num_samples,
            ).samples
            for eta_ in (0.0, 1.0)
        )
        return summarize(a), summarize(a - g1)

    def fn(copies):
        u = clamp_probs(torch.rand(shape, dtype=logits.dtype, device=logits.device))
        v = torch.rand(shape, dtype=logits.dtype, device=logits.device)
        return _rebar_surrogate(f, copies, u, v, temperature, eta, conditional)

    return per_sample_gradients(fn, logits.detach(), num_samples)


def _check_temperature(temperature):
    """τ > 0: a number, or a 0-dim floating tensor kept as it is (so that τ can be trained)."""
    if isinstance(temperature, torch.Tensor) and temperature.is_floating_point():
        if temperature.numel() != 1:
            raise ValueError(f"temperature must be a scalar, got {describe(temperature)}")
        check_real("temperature", temperature.detach(), positive=True)
        return temperature.reshape(())
    return check_real("temperature", temperature, positive=True)


def _relax_surrogate(f, control, copies, u, v, temperature) -> torch.Tensor:
    """Per-row surrogate whose gradient in row n of ``copies`` (N, n) is RELAX's g_n:
    (f(x) - c(z̃)) log p(x) with the coefficient held constant, + c(z) - c(z̃),
    c(z) = control(sigmoid(z / τ))."""
    num = copies.shape[0]
    z = copies + torch.logit(u)  # logits + L, L standard logistic
    x = (z > 0).to(copies.dtype).detach()  # x_i ~ Bernoulli(π_i)
    z_tilde = conditional_logistic(copies, x, v)  # z̃ ~ z | x, reparameterized

    def c(z_):  # the control at the relaxed bits; its graph to ψ is kept
        values = control(torch.sigmoid(z_ / temperature))
        if not isinstance(values, torch.Tensor) or not values.is_floating_point():
            raise TypeError(
                f"control must map relaxed bits ({num}, n) to a real floating-point tensor "
                f"of shape ({num},), got {describe(values)}"
            )
        if values.shape != (num,):
            raise ValueError(
                f"control must map relaxed bits ({num}, n) to a tensor of shape ({num},), "
                f"got {describe(values)}"
            )
        check_finite("control(relaxed bits)", values.detach())
        return values

    c_z, c_tilde = c(z), c(z_tilde)
    # The coefficient of ∇θ log p(x) is held constant in θ but not in ψ: c at a z̃ cut from
    # θ (a third evaluation of the control) keeps the graph to ψ that the variance
    # gradient needs, since -c(z̃) ∇θ log p(x) is a term of g that depends on ψ.
    c_coef = c(z_tilde.detach())
    log_p = Bernoulli(logits=copies).log_prob(x).sum(-1)  # log p(x), (N,)
    f_x = evaluate_f(f, x, num).detach()
    return (f_x - c_coef) * log_p + c_z - c_tilde


def relax_bernoulli(
    f, logits, control, num_samples: int, *, temperature=0.5, variance_loss=False
) -> Estimate | tuple[Estimate, torch.Tensor]:
    """RELAX estimates of ∇ E[f(x)], x_i ~ Bernoulli(sigmoid(logits_i)) independent.

    Per sample (Grathwohl et al. 2018, eq. 8 and Alg. 2), with z = logits + L, x = 1[z > 0],
    z̃ ~ z | x (:func:`conditional_logistic`) and c(z) = control(sigmoid(z / τ)):

        g = (f(x) - c(z̃)) ∇ log p(x) + ∇ c(z) - ∇ c(z̃),

    unbiased for every differentiable control, by the argument of REBAR (module docstring);
    ``control = lambda y: eta * f(y)`` gives :func:`rebar_bernoulli`, and a control that
    ignores its input is a constant baseline. Costs one evaluation of f per sample (f need
    not accept relaxed inputs) and three of the control (at z, at z̃, and at z̃ cut from θ
    for the coefficient), with backward passes.

    Training the control (Alg. 2): since E[g] does not depend on ψ, the parameters of the
    control, ∂/∂ψ tr Var[g] = ∂/∂ψ E[||g||²] = E[2 gᵀ ∂g/∂ψ]. With ``variance_loss=True``
    the call also returns L = mean_n ||g_n||², built with a graph to ψ (create_graph), so
    ``L.backward()`` and a step of any optimizer on ψ follow the unbiased variance gradient
    from the same draws as the estimate.

    Args:
        f: maps bits, shape ``(N, n)`` of zeros and ones, to ``(N,)``.
        logits: the logits of the n bits, a finite 1-D floating tensor ``(n,)``.
        control: c_ψ, maps relaxed bits ``(N, n)`` in (0, 1) to ``(N,)``, differentiable,
            each row on its own (e.g. a small ``torch.nn.Module``); its parameters ψ.
        num_samples: N >= 2 independent samples.
        temperature: τ > 0 of the relaxation, a number or 0-dim floating tensor (a tensor
            with ``requires_grad`` is trained with ψ by the variance loss).
        variance_loss: if True, return ``(estimate, L)`` as above.

    Returns:
        An :class:`~companion.montecarlo.Estimate` (per-sample gradients ``(N, n)``, detached);
        with ``variance_loss=True`` the pair ``(estimate, L)``, L a 0-dim tensor.

    Example:
        >>> est = relax_bernoulli(lambda x: x.sum(-1), torch.zeros(3), lambda y: y.sum(-1), 4)
        >>> est.samples.shape
        torch.Size([4, 3])
    """
    check_callable("f", f)
    check_callable("control", control)
    logits = _check_logits(logits)
    if logits.dim() != 1:
        raise ValueError(f"logits must be a 1-D tensor (n,), got shape {tuple(logits.shape)}")
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    temperature = _check_temperature(temperature)
    variance_loss = check_bool("variance_loss", variance_loss)
    shape = (num_samples, logits.shape[0])
    check_allocation(
        "num_samples", num_samples, num_samples * logits.numel() * logits.element_size()
    )
    u = clamp_probs(torch.rand(shape, dtype=logits.dtype, device=logits.device))
    v = torch.rand(shape, dtype=logits.dtype, device=logits.device)
    with torch.enable_grad():
        copies = logits.detach().expand(shape).clone().requires_grad_(True)  # row n: θ_n
        surrogate = _relax_surrogate(f, control, copies, u, v, temperature)
        (g,) = torch.autograd.grad(surrogate.sum(), copies, create_graph=variance_loss)
    estimate = summarize(check_finite("the RELAX gradient", g.detach()))
    if variance_loss:
        return estimate, (g**2).sum(-1).mean()
    return estimate
