"""Policy gradients for sequences: group advantages, the per-sequence surrogate, KL and clipping.

A language model answering a prompt draws N outputs o_1 … o_N (a *group*) from its policy
π_θ(o | c) = Π_t π_θ(o_t | c, o_<t) and scores each with a reward r_i. The estimators of
the book's policy-gradient chapter differ only in how they turn the group's rewards into
per-output weights (advantages) and how they sum each output's token log-probabilities:

- REINFORCE with a leave-one-out baseline, RLOO (Kool et al. 2019; Ahmadian et al. 2024):
  A_i = r_i - mean_{j≠i} r_j, :func:`rloo_advantages`;
- GRPO (Shao et al. 2024, §4.1.2): A_i = (r_i - mean r) / (s_r + eps), s_r the group's
  sample standard deviation, :func:`grpo_advantages`, and a per-sequence 1/|o_i| average
  of the token terms, ``length_norm="sequence"`` in :func:`sequence_surrogate`;
- Dr. GRPO (Liu et al. 2025, §3.2): A_i = r_i - mean r (``scale=False``) and a sum over
  tokens divided by a constant, ``length_norm="constant"``;
- the per-token KL estimators k1, k2, k3 (Schulman 2020) of the penalty to a reference
  policy, :func:`per_token_kl`, and PPO's clipped importance-ratio surrogate (Schulman et
  al. 2017), :func:`ppo_clip_surrogate`.

Shapes follow the book: the N outputs of a group run along dimension 0, ``(N, *batch)``
for per-output values and ``(N, *batch, T)`` for per-token values, T the longest output.
"""

from __future__ import annotations

import numbers

import torch

from ._validation import check_bool, check_finite, check_positive_int, describe, is_boolean

__all__ = [
    "rloo_advantages",
    "grpo_advantages",
    "sequence_surrogate",
    "per_token_kl",
    "ppo_clip_surrogate",
]

LENGTH_NORMS = ("none", "sequence", "constant")
KL_KINDS = ("k1", "k2", "k3")


def _tensor(name: str, value, *, min_dim: int = 1) -> torch.Tensor:
    """A real floating tensor with at least ``min_dim`` dimensions, finite, or raise."""
    if is_boolean(value) or not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a real floating-point tensor, got {describe(value)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got {describe(value)}")
    if value.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(value.shape)}"
        )
    check_finite(name, value.detach())
    return value


def _group(rewards) -> torch.Tensor:
    """Rewards shaped (N, *batch) with N >= 2 outputs per group, detached and floating.

    Integer and boolean rewards (a verifier's 0/1) are numbers: they become the default dtype.
    """
    if isinstance(rewards, torch.Tensor) and not (
        rewards.is_floating_point() or rewards.is_complex()
    ):
        rewards = rewards.to(torch.get_default_dtype())
    rewards = _tensor("rewards", rewards).detach()
    if rewards.shape[0] < 2:
        raise ValueError(
            "rewards must hold a group of N >= 2 outputs along dimension 0 (a baseline from "
            f"the others needs at least one other), got shape {tuple(rewards.shape)}"
        )
    return rewards


def rloo_advantages(rewards) -> torch.Tensor:
    """Leave-one-out advantages A_i = r_i - (1/(N-1)) Σ_{j≠i} r_j of each group.

    The baseline of output i is the mean reward of the other N - 1 outputs of its group,
    independent of o_i, so (1/N) Σ_i A_i ∇θ log π_θ(o_i) is unbiased for ∇θ E[r]
    (Kool et al. 2019; Ahmadian et al. 2024, "RLOO"). It is N/(N-1) times the
    mean-centred reward: A_i = N/(N-1) (r_i - mean r).

    Args:
        rewards: r, shape ``(N, *batch)``, N >= 2 outputs per group along dimension 0,
            finite; integer or boolean rewards are read as numbers in the default dtype.

    Returns:
        A, shape ``(N, *batch)``, detached.

    Example:
        >>> rloo_advantages(torch.tensor([1.0, 0.0, 0.0]))
        tensor([ 1.0000, -0.5000, -0.5000])
    """
    r = _group(rewards)
    n = r.shape[0]
    return r - (r.sum(dim=0, keepdim=True) - r) / (n - 1)


def grpo_advantages(rewards, *, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's group-normalized advantages A_i = (r_i - mean r) / (s_r + eps).

    s_r is the group's sample standard deviation (N - 1 denominator, ``torch.std``'s
    default, as in common implementations). With ``scale=False`` the division is dropped,
    A_i = r_i - mean r, the advantage of Dr. GRPO (Liu et al. 2025, §3.2), equal to
    (N-1)/N times the leave-one-out advantage of :func:`rloo_advantages`.

    A group whose rewards are all equal (every output right, or every one wrong) gets
    advantages of exactly 0, for every ``eps`` including 0: its centred rewards are 0 (set
    exactly, not left to rounding), so it contributes no gradient. This is what
    implementations with a small eps do up to rounding; here it is exact.

    Args:
        rewards: r, shape ``(N, *batch)``, N >= 2 outputs per group along dimension 0,
            finite; integer or boolean rewards are read as numbers in the default dtype.
        scale: divide by s_r + eps (GRPO, True) or not (Dr. GRPO, False).
        eps: a finite number >= 0 added to s_r (1e-4 by default).

    Returns:
        A, shape ``(N, *batch)``, detached.

    Example:
        >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), eps=0.0)
        tensor([ 1.5000, -0.5000, -0.5000, -0.5000])
        >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), scale=False)
        tensor([ 0.7500, -0.2500, -0.2500, -0.2500])
    """
    r = _group(rewards)
    scale = check_bool("scale", scale)
    if is_boolean(eps) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a finite number >= 0, got {describe(eps)}")
    if not (0 <= float(eps) < float("inf")):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    equal = (r == r[:1]).all(dim=0, keepdim=True)  # groups with nothing to compare
    centred = torch.where(equal, torch.zeros_like(r), r - r.mean(dim=0, keepdim=True))
    if not scale:
        return centred
    denominator = r.std(dim=0, keepdim=True) + float(eps)
    return torch.where(equal, torch.zeros_like(r), centred / denominator)


def sequence_surrogate(
    token_log_probs,
    advantages,
    mask,
    *,
    length_norm: str = "sequence",
    max_length: int | None = None,
) -> torch.Tensor:
    """Per-output surrogate A_i · Σ_t m_it log π_θ(o_it | c, o_i,<t) / n_i; mean it, backward.

    Its gradient is the policy-gradient estimate of output i, A_i Σ_t ∇θ log π_θ(o_it | …)
    / n_i, where n_i depends on ``length_norm``:

    - ``"none"``: n_i = 1, REINFORCE's sum over tokens (the score of the whole sequence);
    - ``"sequence"``: n_i = |o_i| = Σ_t m_it, GRPO's per-sequence average (Shao et al.
      2024, eq. 3), which weights short outputs' tokens more (Liu et al. 2025, §3.1);
    - ``"constant"``: n_i = ``max_length``, the same for every output (Dr. GRPO, §3.2).

    Averaging over dimension 0 gives the group's estimate; the advantages are detached.

    Args:
        token_log_probs: log π_θ(o_it | c, o_i,<t), shape ``(N, *batch, T)``, carrying the
            graph to θ; entries where ``mask`` is False are ignored (may be any finite value).
        advantages: A, shape ``(N, *batch)``.
        mask: True for the tokens of each output, shape ``(N, *batch, T)``, bool, with at
            least one token per output.
        length_norm: ``"none"``, ``"sequence"`` or ``"constant"``.
        max_length: with ``"constant"``: an integer >= T (the generation budget); else None.

    Returns:
        The per-output surrogate, shape ``(N, *batch)``.

    Example:
        >>> logp = torch.log(torch.tensor([[0.5, 0.5], [0.25, 1.0]]))  # two outputs, T = 2
        >>> mask = torch.tensor([[True, True], [True, False]])  # the second has one token
        >>> adv = torch.tensor([1.0, -1.0])
        >>> sequence_surrogate(logp, adv, mask)  # A_i × mean log-prob of its tokens
        tensor([-0.6931,  1.3863])
    """
    logp = _tensor("token_log_probs", token_log_probs, min_dim=2)
    adv = _tensor("advantages", advantages).detach()
    if adv.shape != logp.shape[:-1]:
        raise ValueError(
            f"advantages must have shape (N, *batch) = {tuple(logp.shape[:-1])}, one per "
            f"output of token_log_probs {tuple(logp.shape)}, got shape {tuple(adv.shape)}"
        )
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor, got {describe(mask)}")
    if mask.shape != logp.shape:
        raise ValueError(
            f"mask must have the shape of token_log_probs {tuple(logp.shape)}, "
            f"got shape {tuple(mask.shape)}"
        )
    lengths = mask.sum(dim=-1)
    if (lengths == 0).any():
        raise ValueError("mask must mark at least one token of every output, got an empty one")
    if length_norm not in LENGTH_NORMS:
        raise ValueError(f"length_norm must be one of {LENGTH_NORMS}, got {length_norm!r}")
    if length_norm == "constant":
        max_length = check_positive_int("max_length", max_length)
        if max_length < logp.shape[-1]:
            raise ValueError(
                f"max_length must be at least the longest output, T = {logp.shape[-1]}, "
                f"got {max_length}"
            )
        norm = torch.full_like(adv, float(max_length))
    elif max_length is not None:
        raise ValueError(
            f"max_length applies to length_norm='constant', got max_length={max_length} "
            f"with length_norm={length_norm!r}"
        )
    else:
        norm = lengths.to(logp.dtype) if length_norm == "sequence" else torch.ones_like(adv)
    sequence_log_prob = torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=-1)
    return adv * sequence_log_prob / norm


def per_token_kl(log_probs, ref_log_probs, *, kind: str = "k3") -> torch.Tensor:
    """Per-token estimators of KL(π_θ ‖ π_ref) at tokens drawn from π_θ (Schulman 2020).

    With log w = log π_ref(o_t | …) - log π_θ(o_t | …) at a sampled token:

    - ``"k1"``: -log w, unbiased, can be negative;
    - ``"k2"``: (log w)² / 2, biased, >= 0;
    - ``"k3"``: w - log w - 1, unbiased (E[w] = 1 under π_θ) and >= 0; GRPO's penalty
      (Shao et al. 2024, eq. 4).

    Summed over the tokens of an output drawn from π_θ, k1 and k3 are unbiased for the
    sequence-level KL(π_θ(· | c) ‖ π_ref(· | c)) (the chain rule of the KL). Their
    gradients with respect to θ at fixed tokens are *not* unbiased for the KL's gradient
    in general: the book's policy-gradient chapter computes both.

    Args:
        log_probs: log π_θ at the sampled tokens, any shape, finite.
        ref_log_probs: log π_ref at the same tokens, broadcastable with ``log_probs``.
        kind: ``"k1"``, ``"k2"`` or ``"k3"``.

    Returns:
        The per-token estimate, the broadcast shape; differentiable in both arguments.

    Example:
        >>> per_token_kl(torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25])))
        tensor([0.1931])
    """
    logp = _tensor("log_probs", log_probs, min_dim=0)
    ref = _tensor("ref_log_probs", ref_log_probs, min_dim=0)
    if kind not in KL_KINDS:
        raise ValueError(f"kind must be one of {KL_KINDS}, got {kind!r}")
    try:
        log_w = ref - logp
    except RuntimeError as err:
        raise ValueError(
            f"ref_log_probs {tuple(ref.shape)} must broadcast with log_probs {tuple(logp.shape)}"
        ) from err
    if kind == "k1":
        return -log_w
    if kind == "k2":
        return log_w**2 / 2
    return torch.expm1(log_w) - log_w  # w - 1 - log w, accurate for w near 1


def ppo_clip_surrogate(log_probs, old_log_probs, advantages, *, clip: float = 0.2):
    """PPO's clipped surrogate min(w A, clip(w, 1 - δ, 1 + δ) A), per token.

    w = π_θ(o_t | …) / π_old(o_t | …) is the importance ratio of a token drawn from the
    policy that generated the data (Schulman et al. 2017, eq. 7), δ = ``clip``. At θ = θ_old
    its gradient is A ∇θ log π_θ, the policy gradient; once w leaves [1 - δ, 1 + δ] in the
    direction that A rewards, the gradient of that token is 0.

    Args:
        log_probs: log π_θ at the tokens, any shape, carrying the graph to θ.
        old_log_probs: log π_old at the same tokens, same shape (detached here).
        advantages: A, broadcastable to the shape of ``log_probs`` (e.g. ``(N, *batch, 1)``
            for one advantage per output), detached here.
        clip: δ, a number in (0, 1).

    Returns:
        The per-token surrogate, the shape of ``log_probs``; maximize its mean.

    Example:
        >>> logp = torch.log(torch.tensor([0.6, 0.6]))
        >>> old = torch.log(torch.tensor([0.4, 0.4]))  # ratio w = 1.5
        >>> ppo_clip_surrogate(logp, old, torch.tensor([1.0, -1.0]))  # 1.2 A and 1.5 A
        tensor([ 1.2000, -1.5000])
    """
    logp = _tensor("log_probs", log_probs, min_dim=0)
    old = _tensor("old_log_probs", old_log_probs, min_dim=0).detach()
    if old.shape != logp.shape:
        raise ValueError(
            f"old_log_probs must have the shape of log_probs {tuple(logp.shape)}, "
            f"got shape {tuple(old.shape)}"
        )
    adv = _tensor("advantages", advantages, min_dim=0).detach()
    try:
        torch.broadcast_shapes(adv.shape, logp.shape)
    except RuntimeError as err:
        raise ValueError(
            f"advantages {tuple(adv.shape)} must broadcast to log_probs {tuple(logp.shape)}"
        ) from err
    if is_boolean(clip) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a number in (0, 1), got {describe(clip)}")
    if not 0 < float(clip) < 1:
        raise ValueError(f"clip must be in (0, 1), got {clip}")
    ratio = torch.exp(logp - old)
    clipped = ratio.clamp(1 - float(clip), 1 + float(clip))
    return torch.minimum(ratio * adv, clipped * adv)
