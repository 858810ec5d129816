"""Choosing a gradient estimator: the decision guide of Chapter 7, as code and as a figure.

:func:`recommend` answers the questions of the guide (is f differentiable? is the
distribution reparameterizable, discrete, or is its support moving with θ? how many
evaluations of f can one gradient estimate use, for how many parameters? is a bias
acceptable?) with the estimators of the book that apply, most preferred first, each with its
reason. The order is a default, not a verdict: measure the variance of the candidates on the
problem at hand (Mohamed et al. 2020, "Monte Carlo Gradient Estimation in Machine Learning",
JMLR, §§4-7 and their closing discussion). :func:`draw_decision_guide` draws the same guide
as a flow chart.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ._validation import check_bool, check_positive_int, describe
from .plotting import COLORS

__all__ = ["Recommendation", "recommend", "draw_decision_guide", "GUIDE_NODES", "GUIDE_EDGES"]


@dataclass(frozen=True)
class Recommendation:
    """One estimator that applies: its name, whether it is unbiased, and why it is listed.

    Attributes:
        estimator: the estimator's name, a non-empty string.
        unbiased: True or False.
        reason: why it applies, a string.
    """

    estimator: str
    unbiased: bool
    reason: str

    def __post_init__(self):
        if not isinstance(self.estimator, str) or not self.estimator:
            raise TypeError(f"estimator must be a non-empty string, got {describe(self.estimator)}")
        check_bool("unbiased", self.unbiased)
        if not isinstance(self.reason, str):
            raise TypeError(f"reason must be a string, got {describe(self.reason)}")

    def __str__(self) -> str:
        return f"{self.estimator} ({'unbiased' if self.unbiased else 'biased'}): {self.reason}"


def recommend(
    *,
    differentiable_f,
    reparameterizable,
    discrete,
    support_depends_on_theta=False,
    budget=1,
    num_params=1,
    bias_ok=False,
    gaussian=False,
) -> list[Recommendation]:
    """The estimators of the book that apply to a problem, most preferred first.

    Rules (Chapter 7): pathwise when f is differentiable and the sampler is reparameterizable
    (``has_rsample``); then the score function, for any f, with a leave-one-out baseline when
    ``budget`` >= 2 evaluations allow two samples, and with the boundary term added by hand
    when the support moves with θ; the measure-valued estimator for a Gaussian mean when
    2D evaluations fit the budget; relaxations (Gumbel-softmax, straight-through) for
    discrete x when f is differentiable and a bias is acceptable; finite differences with
    common random numbers, bias O(h²) and 2D evaluations per sample, when a bias is
    acceptable and at least two samples fit (4D evaluations).

    Every flag must be exactly True or False (a string such as "no" is refused, not read
    as True), and the counts integers >= 1; anything else raises ``TypeError`` or
    ``ValueError`` naming the argument.

    Args:
        differentiable_f: f is differentiable in x (and, for relaxations, defined between
            the discrete values).
        reparameterizable: the distribution has ``rsample``, x = g(θ, ε).
        discrete: x is discrete (then ``reparameterizable`` must be False).
        support_depends_on_theta: the set where p(x; θ) > 0 moves with θ.
        budget: evaluations of f one gradient estimate may use, an integer >= 1.
        num_params: D, the number of parameters, an integer >= 1.
        bias_ok: a small bias is acceptable (no unbiasedness guarantee needed).
        gaussian: x is Gaussian and the gradient is taken in its mean (for the
            measure-valued estimator).

    Returns:
        A list of :class:`Recommendation`, most preferred first; empty when nothing applies.

    Example:
        >>> [r.estimator for r in recommend(differentiable_f=False, reparameterizable=False,
        ...                                  discrete=True, budget=4)]
        ['score function + leave-one-out']
    """
    differentiable_f = check_bool("differentiable_f", differentiable_f)
    reparameterizable = check_bool("reparameterizable", reparameterizable)
    discrete = check_bool("discrete", discrete)
    moving = check_bool("support_depends_on_theta", support_depends_on_theta)
    bias_ok, gaussian = check_bool("bias_ok", bias_ok), check_bool("gaussian", gaussian)
    budget = check_positive_int("budget", budget)
    num_params = check_positive_int("num_params", num_params)
    if discrete and (reparameterizable or gaussian):
        raise ValueError(
            "a discrete x has no rsample and is not Gaussian: with discrete=True, "
            "reparameterizable and gaussian must be False"
        )
    if gaussian and moving:
        raise ValueError(
            "a Gaussian's support does not move: gaussian and "
            "support_depends_on_theta cannot both be True"
        )
    out = []
    if reparameterizable and differentiable_f:
        out.append(
            Recommendation(
                "pathwise",
                True,
                "f is differentiable and x = g(θ, ε): "
                "one evaluation and one backward pass per sample, usually the "
                "lowest variance, but it can lose when f oscillates",
            )
        )
    if moving:
        out.append(
            Recommendation(
                "score function + boundary term",
                True,
                "the support moves "
                "with θ: the plain score function misses Leibniz's boundary "
                "term, which must be added by hand",
            )
        )
    elif budget >= 2:
        out.append(
            Recommendation(
                "score function + leave-one-out",
                True,
                "any f and any "
                "distribution; the other samples give each one its baseline "
                "at no extra cost",
            )
        )
    else:
        out.append(
            Recommendation(
                "score function + constant baseline",
                True,
                "one evaluation leaves no other sample to build a baseline from",
            )
        )
    if gaussian and budget >= 2 * num_params:
        out.append(
            Recommendation(
                "measure-valued (coupled)",
                True,
                f"any f, even a step; 2D = {2 * num_params} evaluations per sample",
            )
        )
    if discrete and differentiable_f and bias_ok:
        out.append(
            Recommendation(
                "Gumbel-softmax (Concrete)",
                False,
                "relaxed samples are reparameterizable; the temperature trades bias for variance",
            )
        )
        out.append(
            Recommendation(
                "straight-through",
                False,
                "discrete forward pass, backward "
                "as if the sample were its mean: cheapest, can get the "
                "sign wrong",
            )
        )
    if bias_ok and budget >= 4 * num_params:
        out.append(
            Recommendation(
                "finite differences + CRN",
                False,
                f"bias O(h²); 2D = "
                f"{2 * num_params} evaluations per sample and replayable noise: "
                "a check on small problems",
            )
        )
    return out


# ---------------------------------------------------------------- the flow chart

GUIDE_NODES = {  # key: (text, (x, y) centre, kind)
    "start": ("$\\nabla_\\theta\\, \\mathbb{E}_{x\\sim p_\\theta}[f(x)]$", (5.3, 6.6), "start"),
    "discrete": ("is $x$ discrete?", (5.3, 5.4), "question"),
    "bias": (
        "is a small bias OK,\nand $f$ defined between\nthe discrete values?",
        (2.65, 3.9),
        "question",
    ),
    "smooth": (
        "is $f$ differentiable\nand does $p_\\theta$ have\nan rsample()?",
        (8.25, 3.9),
        "question",
    ),
    "moving": ("does the support\nmove with $\\theta$?", (9.75, 2.1), "question"),
    "relax": ("Gumbel-softmax,\nstraight-through\n(biased)", (1.3, 2.1), "biased"),
    "sf-discrete": ("score function\n+ leave-one-out\n($N \\geq 2$)", (4.0, 2.1), "unbiased"),
    "pathwise": (
        "pathwise\n(still measure: it can\nlose on oscillating $f$)",
        (6.8, 2.1),
        "unbiased",
    ),
    "boundary": ("reparameterize, or add\nthe boundary term", (8.35, 0.4), "unbiased"),
    "sf-continuous": (
        "score function + LOO;\nmeasure-valued for\na Gaussian mean",
        (11.15, 0.4),
        "unbiased",
    ),
    "always": (
        (
            "always: measure the variance;\ncheck against finite differences\n"
            "with CRN on a small problem"
        ),
        (2.65, 0.4),
        "note",
    ),
}
"""The boxes of :func:`draw_decision_guide`: text, centre and kind."""

GUIDE_EDGES = (  # (from, to, label)
    ("start", "discrete", ""),
    ("discrete", "bias", "yes"),
    ("discrete", "smooth", "no"),
    ("bias", "relax", "yes"),
    ("bias", "sf-discrete", "no"),
    ("smooth", "pathwise", "yes"),
    ("smooth", "moving", "no"),
    ("moving", "boundary", "yes"),
    ("moving", "sf-continuous", "no"),
)
"""The arrows of :func:`draw_decision_guide`, each from a question to its answer."""

_STYLE = {  # kind: (edge colour, face colour, line style)
    "start": (COLORS["exact"], "#f2f2f2", "-"),
    "question": (COLORS["estimate"], "white", "-"),
    "unbiased": (COLORS["good"], "#eaf5ee", "-"),
    "biased": (COLORS["accent"], "#fdf0e4", "-"),
    "note": (COLORS["exact"], "white", "--"),
}
_HALF_WIDTH, _HALF_HEIGHT = 1.25, 0.42


def draw_decision_guide(ax):
    """Draw the decision guide of Chapter 7 as a flow chart of boxes and arrows.

    Questions are blue boxes, unbiased estimators green, biased ones orange; every patch
    has a ``gid``: ``"box-<key>"`` for the boxes of :data:`GUIDE_NODES` and
    ``"arrow-<from>-<to>"`` for the arrows of :data:`GUIDE_EDGES`.

    Args:
        ax: the Matplotlib ``Axes`` to draw on; its axis is switched off.

    Returns:
        ``ax``.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = draw_decision_guide(ax)
        >>> sum(p.get_gid().startswith("arrow") for p in ax.patches) == len(GUIDE_EDGES)
        True
        >>> plt.close(fig)
    """
    if not isinstance(ax, mpl.axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {describe(ax)}")
    for key, (text, (x, y), kind) in GUIDE_NODES.items():
        edge, face, style = _STYLE[kind]
        width = 2.0 * _HALF_WIDTH * (1.6 if kind == "note" else 1.0)
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - _HALF_HEIGHT),
                width,
                2 * _HALF_HEIGHT,
                boxstyle="round,pad=0.06",
                fc=face,
                ec=edge,
                lw=1.2,
                ls=style,
                gid=f"box-{key}",
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=8, gid=f"text-{key}")
    for source, target, label in GUIDE_EDGES:
        (x0, y0), (x1, y1) = GUIDE_NODES[source][1], GUIDE_NODES[target][1]
        start, end = (x0, y0 - _HALF_HEIGHT - 0.08), (x1, y1 + _HALF_HEIGHT + 0.08)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=10,
                lw=1.1,
                color=COLORS["exact"],
                gid=f"arrow-{source}-{target}",
            )
        )
        if label:
            ax.text(
                (start[0] + end[0]) / 2 + (0.12 if x1 >= x0 else -0.12),
                (start[1] + end[1]) / 2,
                label,
                fontsize=8,
                style="italic",
                ha="left" if x1 >= x0 else "right",
                va="center",
                color=COLORS["estimate"],
            )
    ax.set_xlim(-0.1, 12.55)
    ax.set_ylim(-0.25, 7.1)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
