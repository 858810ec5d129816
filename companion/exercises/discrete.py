"""Checkers of the implement-it exercises of the chapter on discrete latent variables.

- :func:`check_gumbel_max`: exact categorical samples by the Gumbel-max trick
  (``ex-dl-gumbel-max``).
- :func:`check_gumbel_softmax`: Concrete (Gumbel-softmax) samples at a temperature τ
  (``ex-dl-gumbel-softmax``).

Both judge the law of the argmax against softmax(logits), the Gumbel-max theorem, and the
Gumbel-softmax checker also the temperature, through the closed form
E[log y_k − (1/K) Σ_j log y_j] = (θ_k − θ̄)/τ, which holds because log y_k = (θ_k + G_k)/τ −
log Σ_j e^{(θ_j + G_j)/τ} and the G_k have a common mean. The laws that the typical mistakes
give are computed exactly, by a one-dimensional quadrature (:func:`_argmax_law`).
"""

from __future__ import annotations

import contextlib

import torch

from ._core import Verdict, exercise

__all__ = ["check_gumbel_max", "check_gumbel_softmax"]


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


_LOGITS = (1.0, 0.0, 0.5, -1.0)  # the chapter's θ, K = 4
_CALLS, _DRAWS = 400, 100
_TEMPERATURE = 0.5


def _argmax_law(scores: torch.Tensor, noise_sign: float, pick: str = "max") -> torch.Tensor:
    """P(k = arg{max,min}_j (scores_j + noise_sign G_j)), G_j iid standard Gumbel, exactly.

    By quadrature on the density of the winner: P(k) = ∫ p_k(v) Π_{j≠k} P(X_j < v) dv for the
    argmax (P(X_j > v) for the argmin), X_j = scores_j + noise_sign G_j, on a fine grid.
    """
    v = torch.linspace(-30.0, 30.0, 6001, dtype=torch.float64)[:, None]  # (V, 1), step 0.01
    s = scores.double()[None, :]  # (1, K)
    a = noise_sign * (v - s)  # G_j = noise_sign (v − s_j) at X_j = v
    cdf_g = torch.exp(-torch.exp(-a))  # P(G ≤ a)
    log_pdf = -a - torch.exp(-a)
    below = cdf_g if noise_sign > 0 else 1 - cdf_g  # P(X_j ≤ v)
    others = below if pick == "max" else 1 - below
    log_others = torch.log(others.clamp_min(1e-300))
    total = log_others.sum(-1, keepdim=True)
    density = torch.exp(log_pdf + total - log_others)  # p_k(v) Π_{j≠k} ..., (V, K)
    law = torch.trapezoid(density, v[:, 0], dim=0)
    return law / law.sum()


def _frequencies(samples: torch.Tensor, num_categories: int) -> torch.Tensor:
    """The fraction of each category in ``samples`` (integers ``(n,)``), shape (K,)."""
    return torch.bincount(samples, minlength=num_categories).double() / samples.numel()


def _expect_categories(ex, k, num_samples: int, num_categories: int) -> None:
    ex.expect_tensor(k, shape=(num_samples,), what="the samples", floating=False)
    if k.is_floating_point() or k.dtype == torch.bool:
        ex.fail(
            f"the samples should be integer category indices (int64, as argmax returns; any "
            f"integer dtype is accepted), got dtype {k.dtype}"
        )
    if bool(((k < 0) | (k >= num_categories)).any()):
        ex.fail(
            f"the samples should be indices in 0, ..., {num_categories - 1}, got "
            f"values from {int(k.min())} to {int(k.max())}"
        )


def check_gumbel_max(gumbel_max) -> Verdict:
    """Check a student's Gumbel-max sampler.

    The student's function: ``gumbel_max(logits, num_samples) -> k``, with ``logits`` θ of
    shape ``(K,)`` and ``k`` of shape ``(num_samples,)``, the indices argmax_k(θ_k + G_k)
    for fresh standard Gumbel noise G, in an integer dtype (int64, as ``argmax`` returns;
    int32 and the other integer dtypes are accepted too).

    What is verified, with θ = (1, 0, 0.5, −1) in float64:

    - the result is an integer tensor ``(num_samples,)`` of indices in 0, ..., K − 1; the
      logits are left unchanged; fresh draws on each call, reproducible under
      ``torch.manual_seed``;
    - the law: over 400 calls of 100 draws, the frequency of each category against
      softmax(θ) (a z-test per category, Bonferroni over the K; it catches an error of about
      8% of the smallest probability, 0.064, and less of the others).

    Mistakes it names: one noise row for all the samples of a call; the noise subtracted
    (θ − G); the probabilities softmax(θ) in place of the logits; argmin in place of argmax;
    the argmax over the wrong axis (wrong shape); floating-point or boolean indices; no noise (the
    same sample every call); seeding inside the function; numpy's random numbers;
    modifying the logits in place.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with _one_thread(), exercise("Gumbel-max sampler", gumbel_max, argument="gumbel_max") as ex:
        logits = torch.tensor(_LOGITS, dtype=torch.float64)
        num_categories = logits.numel()
        k = ex.call(logits, 1000)
        _expect_categories(ex, k, 1000, num_categories)
        if bool((k == k[0]).all()):
            ex.fail(
                "the samples of one call are all the same category: draw fresh noise for "
                "each of the num_samples samples"
            )

        def call():
            return ex.call(logits, _DRAWS)

        ex.expect_fresh_draws(call, what="the samples")
        ex.expect_reproducible(call, what="the samples")

        def frequencies():
            k = call()
            _expect_categories(ex, k, _DRAWS, num_categories)
            return _frequencies(k, num_categories)

        freq = ex.repeat(frequencies, times=_CALLS)  # (R, K)
        ex.expect_mean(
            freq,
            torch.softmax(logits, -1),
            what="the frequencies of the categories",
            mistakes={
                "subtracting the Gumbel noise (θ − G)": _argmax_law(logits, -1.0),
                "adding the noise to the probabilities softmax(θ), not the logits": (
                    _argmax_law(torch.softmax(logits, -1), 1.0)
                ),
                "taking the argmin instead of the argmax": _argmax_law(logits, 1.0, "min"),
            },
            hint="the categories are not distributed as softmax(logits): is your noise "
            "standard Gumbel? Is it added to the logits? Is the category returned the one "
            "with the largest score?",
        )
    return ex.verdict


def check_gumbel_softmax(gumbel_softmax) -> Verdict:
    """Check a student's Concrete (Gumbel-softmax) sampler.

    The student's function: ``gumbel_softmax(logits, temperature, num_samples) -> y``, with
    ``logits`` θ of shape ``(K,)`` (may require grad), ``temperature`` τ > 0 a number, and
    ``y`` of shape ``(num_samples, K)``: row n is softmax((θ + G_n)/τ) for fresh standard
    Gumbel noise G_n ``(K,)``.

    What is verified, with θ = (1, 0, 0.5, −1) and τ = 0.5, in float64:

    - the result is a finite floating tensor ``(num_samples, K)`` whose rows lie in the
      simplex (nonnegative, summing to 1 up to rounding); the gradient reaches θ; the
      logits are left unchanged; fresh draws on each call, reproducible under
      ``torch.manual_seed``;
    - the argmax of y, over 400 calls of 100 draws, has the law softmax(θ) (z-tests as in
      :func:`check_gumbel_max`, resolution about 8% of the smallest probability);
    - the temperature: the mean of log y_k − (1/K) Σ_j log y_j over the same draws is
      (θ_k − θ̄)/τ (resolution about 2% of the largest coordinate).

    Mistakes it names: one noise row for all the samples of a call; the noise subtracted
    (θ − G); multiplying by τ instead of dividing; τ ignored; only the logits divided by τ,
    not the noise; the softmax over the wrong axis (the columns sum to 1, not the rows);
    rows that do not sum to 1; one-hot samples (the straight-through value); coordinates
    exactly 0 (an unclamped u = 0 gives G = −∞); a gradient that does not reach θ (``.detach()``,
    ``torch.no_grad()``); wrong shape; seeding inside the function; numpy's random
    numbers; modifying the logits in place.

    Returns:
        The :class:`Verdict`; raises :class:`ExerciseFailure` naming the mistake.
    """
    with (
        _one_thread(),
        exercise("Gumbel-softmax sample", gumbel_softmax, argument="gumbel_softmax") as ex,
    ):
        logits = torch.tensor(_LOGITS, dtype=torch.float64, requires_grad=True)
        theta = logits.detach()
        num_categories, tau = theta.numel(), _TEMPERATURE
        y = ex.call(logits, tau, 1000)
        ex.expect_tensor(y, shape=(1000, num_categories), what="the samples")
        _expect_simplex(ex, y.detach())
        if bool((y.detach() == y.detach()[0]).all()):
            ex.fail(
                "the samples of one call are all the same: draw fresh noise for each of the "
                "num_samples samples"
            )
        if bool(((y.detach() - y.detach().round()).abs() < 1e-6).all()):  # one-hot, to rounding
            ex.fail(
                "the samples are one-hot vectors: return the relaxed sample y itself, a point "
                "inside the simplex, not the one-hot vector of its argmax (straight-through)"
            )
        # one coordinate: the coordinates of a row sum to 1, so their total carries no gradient
        ex.expect_grad(y[:, 0], logits, what="the first coordinate of the samples")

        def call():
            return ex.call(theta, tau, _DRAWS).detach()

        ex.expect_fresh_draws(call, what="the samples")
        ex.expect_reproducible(call, what="the samples")

        def statistics():
            y = call()
            ex.expect_tensor(y, shape=(_DRAWS, num_categories), what="the samples")
            _expect_simplex(ex, y)
            if bool((y == 0).any()):
                ex.fail(
                    "some coordinates of the samples are exactly 0: a noise of −∞, from "
                    "u = 0 in G = −log(−log u)? Clamp u away from 0 (as gumbel_noise does)"
                )
            freq = _frequencies(y.argmax(-1), num_categories)
            log_y = torch.log(y.double())
            return torch.cat([freq, (log_y - log_y.mean(-1, keepdim=True)).mean(0)])

        stats = ex.repeat(statistics, times=_CALLS)  # (R, 2K)
        centred = theta - theta.mean()
        ex.expect_mean(
            stats[:, :num_categories],
            torch.softmax(theta, -1),
            what="the frequencies of the argmax",
            mistakes={
                "subtracting the Gumbel noise (θ − G)": _argmax_law(theta, -1.0),
                "dividing only the logits by τ, not the noise": torch.softmax(theta / tau, -1),
            },
            hint="the argmax of a Gumbel-softmax sample must be distributed as softmax(logits)",
        )
        ex.expect_mean(
            stats[:, num_categories:],
            centred / tau,
            what="the mean of log y_k − (1/K) Σ_j log y_j",
            scale=centred.abs().max() / tau,
            mistakes={
                "multiplying by the temperature instead of dividing": centred * tau,
                "ignoring the temperature": centred,
            },
            hint="the scores (logits + G) are divided by the temperature before the softmax",
        )
    return ex.verdict


def _expect_simplex(ex, y: torch.Tensor) -> None:
    """Rows of y are points of the simplex; name the softmax over the wrong axis."""
    ones = torch.ones(y.shape[0], dtype=y.dtype)
    tol = 16 * torch.finfo(y.dtype).eps * y.shape[-1]  # rounding of a sum of K terms
    if bool((y < 0).any()):
        ex.fail("the samples have negative coordinates: a softmax output is nonnegative")
    if not torch.allclose(y.sum(-1), ones, rtol=tol, atol=tol):
        columns = torch.ones(y.shape[-1], dtype=y.dtype)
        if torch.allclose(y.sum(0), columns, rtol=tol, atol=tol):
            ex.fail(
                "the softmax is taken over the wrong axis: the columns of the samples sum to "
                "1, but each sample (a row) should; take it over the categories, dim=-1"
            )
        ex.fail("the rows of the samples do not sum to 1: each sample is a point of the simplex")
    ex.verified("every sample lies in the simplex (nonnegative, summing to 1)")
