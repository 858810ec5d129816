"""Choosing a gradient estimator: one rule table, read both by :func:`recommend` and by the chart.

The guide is a small decision tree. Its questions (:data:`GUIDE_QUESTIONS`) are asked of the
answers a user gives (is x discrete? can the budget enumerate its values? is a small bias
acceptable? is f differentiable and the sampler reparameterizable? does the support move with
θ?), its arrows (:data:`GUIDE_EDGES`) say where each answer leads, and each leaf
(:data:`GUIDE_LEAVES`) lists the estimators of :data:`GUIDE_RULES` that apply there, most
preferred first. :func:`recommend` walks the tree with the answers; :func:`draw_decision_guide`
draws the same tree, so the chart and the function cannot disagree. The order is a default,
not a verdict: measure the variance of the candidates on the problem at hand (Mohamed et al.
2020, "Monte Carlo Gradient Estimation in Machine Learning", JMLR, §§4-7 and their closing
discussion).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import matplotlib as mpl
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ._validation import check_bool, check_positive_int, describe
from .plotting import COLORS

__all__ = [
    "Recommendation",
    "recommend",
    "guide_leaf",
    "draw_decision_guide",
    "GUIDE_RULES",
    "GUIDE_QUESTIONS",
    "GUIDE_LEAVES",
    "GUIDE_NODES",
    "GUIDE_EDGES",
]


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


@dataclass(frozen=True)
class _Rule:
    """One estimator of the table: its name and reason (functions of the answers ``a``), when
    it applies within a leaf, and its line on the chart."""

    name: Callable
    unbiased: bool
    reason: Callable
    applies: Callable
    label: str


def _score_name(a) -> str:
    return (
        "score function + leave-one-out" if a.budget >= 2 else "score function + constant baseline"
    )


def _score_reason(a) -> str:
    if a.budget >= 2:
        return "any f and any distribution; the other samples give each one its baseline"
    return "one evaluation leaves no other sample to build a baseline from"


GUIDE_RULES = {
    "enumerate": _Rule(
        lambda a: "enumeration (Rao–Blackwellization)",
        True,
        lambda a: (
            f"x takes {a.num_values} <= budget values: Σ_x f(x) ∇θ p(x; θ) is the exact "
            "gradient; with several variables, sum out those with few values and estimate the rest"
        ),
        lambda a: True,
        "enumerate: exact\n(Rao–Blackwellize)",
    ),
    "gumbel": _Rule(
        lambda a: "Gumbel-softmax (Concrete)",
        False,
        lambda a: "relaxed samples are reparameterizable; the temperature trades bias for variance",
        lambda a: True,
        "Gumbel-softmax (Concrete)",
    ),
    "straight": _Rule(
        lambda a: "straight-through",
        False,
        lambda a: (
            "discrete forward pass, backward as if the sample were its mean: cheapest, "
            "can get the sign wrong"
        ),
        lambda a: True,
        "straight-through",
    ),
    "pathwise": _Rule(
        lambda a: "pathwise",
        True,
        lambda a: (
            "f is differentiable and x = x(θ, ε): one evaluation and one backward pass "
            "per sample, usually the lowest variance, but it can lose when f oscillates"
        ),
        lambda a: True,
        "pathwise",
    ),
    "boundary": _Rule(
        lambda a: "score function + boundary term",
        True,
        lambda a: (
            "the support moves with θ: the plain score function misses Leibniz's "
            "boundary term, which must be added by hand"
        ),
        lambda a: a.moving,
        "score function\n+ boundary term",
    ),
    "score": _Rule(
        _score_name,
        True,
        _score_reason,
        lambda a: not a.moving,
        "score function + leave-one-out\n(a constant $b$ at 1 evaluation)",
    ),
    "mvd": _Rule(
        lambda a: "measure-valued (coupled)",
        True,
        lambda a: (
            f"any f, even a step; 2D = {2 * a.num_params} evaluations per sample "
            "(measure_valued_gaussian_mean for μ, measure_valued_gaussian_scale for σ)"
        ),
        lambda a: a.gaussian and a.budget >= 2 * a.num_params,
        "measure-valued (Gaussian, $2D$)",
    ),
    "delta-path": _Rule(
        lambda a: "pathwise + delta-method control variate",
        True,
        lambda a: (
            "f twice differentiable, x Gaussian: subtract the pathwise gradient of the "
            "second-order Taylor model of f at the mean, whose mean is known (Miller et al. "
            "2017); f, ∇f and ∇²f at the mean once per batch, one evaluation of f on top of "
            "the samples (so a budget of at least 2); exact when f is quadratic, it can add "
            "variance when f is far from quadratic on the scale of σ unless its coefficient "
            "β is estimated from separate draws"
        ),
        lambda a: a.gaussian and a.differentiable_f and a.budget >= 2,
        "pathwise + delta-method\ncontrol variate",
    ),
    "delta-score": _Rule(
        lambda a: "score function + delta-method control variate",
        True,
        lambda a: (
            "f twice differentiable, x Gaussian: the Taylor model of f at the mean times the "
            "score is a control variate with a closed-form mean (Paisley et al. 2012); the "
            "model needs f(μ), ∇f and ∇²f at the mean once per batch, one evaluation of f on "
            "top of the samples (so a budget of at least 2); the same caveat as for the "
            "pathwise version: estimate β unless f is close to quadratic on the scale of σ"
        ),
        lambda a: a.gaussian and a.differentiable_f and a.budget >= 2,
        "score function + delta-method\ncontrol variate",
    ),
    "sum-sample": _Rule(
        lambda a: "sum and sample (Rao–Blackwellized score function)",
        True,
        lambda a: (
            f"x takes {a.num_values} values, more than the budget: sum the likeliest "
            "outcomes exactly and sample the rest, num_summed + num_samples evaluations, at "
            "least 3: one summed outcome (with none it is the plain score function) and two "
            "sampled (the fewest whose spread gives a standard error; sum_and_sample draws "
            "N >= 2); the variance is (1 − π_C)² Var_q[g], small when the summed outcomes C "
            "hold most of the probability"
        ),
        lambda a: a.num_values is not None and a.budget >= 3,
        "sum and sample",
    ),
    "rebar": _Rule(
        lambda a: "REBAR",
        True,
        lambda a: (
            "f differentiable between the discrete values: the relaxation, used as a "
            "control variate, keeps the score function unbiased; three evaluations of f "
            "per sample (two at relaxed inputs, with a backward pass), and τ and η to tune "
            "on held-out draws; the control removes only the part of the variance that the "
            "relaxed f explains, which can be almost none (on the one-bit toy of the choosing "
            "chapter the tuned η is near 0 and REBAR is no quieter than the plain score "
            "function): measure it"
        ),
        lambda a: a.differentiable_f and a.budget >= 3,
        "REBAR",
    ),
    "relax-cv": _Rule(
        lambda a: "RELAX (learned control variate)",
        True,
        lambda a: (
            "any f: a differentiable control of the relaxed sample, trained to minimize the "
            "estimator's variance from the same draws; one evaluation of f per sample and "
            "three of the control, with backward passes"
        ),
        lambda a: True,
        "RELAX",
    ),
    "nvil": _Rule(
        lambda a: "learned baseline (NVIL)",
        True,
        lambda a: (
            "any f: a baseline that depends on the input the distribution is conditioned on "
            "(amortized inference, a policy), trained on the squared error of f − b, with "
            "the signal centred and scaled by running averages; works with one evaluation"
        ),
        lambda a: True,
        "learned baseline (NVIL)",
    ),
    "fd": _Rule(
        lambda a: "finite differences + CRN",
        False,
        lambda a: (
            f"bias O(h²); 2D = {2 * a.num_params} evaluations per sample and replayable "
            "noise: a check on small problems"
        ),
        lambda a: a.bias_ok and a.budget >= 4 * a.num_params,
        "finite differences + CRN",
    ),
}
"""Every estimator of the guide, keyed as in :data:`GUIDE_LEAVES`: a name and a reason (each a
function of the answers), unbiasedness, when it applies inside its leaf, and its chart label."""

GUIDE_QUESTIONS = {  # key: (chart text, the question asked of the answers a)
    "discrete": ("is $x$ discrete?", lambda a: a.discrete),
    "enumerable": (
        "can the budget sum over\nall values of $x$?",
        lambda a: a.num_values is not None and a.num_values <= a.budget,
    ),
    "relaxable": (
        "is a small bias OK, and\n$f$ differentiable between\nthe discrete values?",
        lambda a: a.bias_ok and a.differentiable_f,
    ),
    "smooth": (
        "is $f$ differentiable\nand does $p_\\theta$ have\nan rsample()?",
        lambda a: a.differentiable_f and a.reparameterizable,
    ),
    "moving": ("does the support\nmove with $\\theta$?", lambda a: a.moving),
}
"""The questions of the guide: chart text, and the predicate :func:`recommend` evaluates."""

GUIDE_LEAVES = {  # key: the rules that apply there, most preferred first
    "enumerate": ("enumerate",),
    "relax": ("gumbel", "straight", "score", "sum-sample", "rebar", "relax-cv", "nvil", "fd"),
    "sf-discrete": ("score", "sum-sample", "rebar", "relax-cv", "nvil", "fd"),
    "pathwise": ("pathwise", "delta-path", "boundary", "score", "delta-score", "mvd", "fd"),
    "boundary": ("boundary", "fd"),
    "sf-continuous": ("score", "delta-score", "mvd", "nvil", "fd"),
}
"""The leaves of the guide: the keys of :data:`GUIDE_RULES` listed there, most preferred first.
The first rule of every leaf applies to every answer that reaches the leaf."""

GUIDE_EDGES = (  # (from, to, label)
    ("start", "discrete", ""),
    ("discrete", "enumerable", "yes"),
    ("discrete", "smooth", "no"),
    ("enumerable", "enumerate", "yes"),
    ("enumerable", "relaxable", "no"),
    ("relaxable", "relax", "yes"),
    ("relaxable", "sf-discrete", "no"),
    ("smooth", "pathwise", "yes"),
    ("smooth", "moving", "no"),
    ("moving", "boundary", "yes"),
    ("moving", "sf-continuous", "no"),
)
"""The arrows of the guide, each from a question to where its answer leads; :func:`recommend`
follows them and :func:`draw_decision_guide` draws them."""


def _answers(**kwargs) -> SimpleNamespace:
    """The answers, validated: flags exactly True or False, counts integers >= 1."""
    a = SimpleNamespace(
        differentiable_f=check_bool("differentiable_f", kwargs["differentiable_f"]),
        reparameterizable=check_bool("reparameterizable", kwargs["reparameterizable"]),
        discrete=check_bool("discrete", kwargs["discrete"]),
        moving=check_bool("support_depends_on_theta", kwargs["support_depends_on_theta"]),
        bias_ok=check_bool("bias_ok", kwargs["bias_ok"]),
        gaussian=check_bool("gaussian", kwargs["gaussian"]),
        budget=check_positive_int("budget", kwargs["budget"]),
        num_params=check_positive_int("num_params", kwargs["num_params"]),
        num_values=kwargs["num_values"],
    )
    if a.num_values is not None:
        a.num_values = check_positive_int("num_values", a.num_values, minimum=2)
        if not a.discrete:
            raise ValueError(
                "num_values counts the values of a discrete x: give it only with discrete=True"
            )
    if a.discrete and (a.reparameterizable or a.gaussian or a.moving):
        raise ValueError(
            "a discrete x has no rsample, is not Gaussian and, in this guide, has a fixed "
            "support: with discrete=True, reparameterizable, gaussian and "
            "support_depends_on_theta must be False"
        )
    if a.gaussian and a.moving:
        raise ValueError(
            "a Gaussian's support does not move: gaussian and "
            "support_depends_on_theta cannot both be True"
        )
    return a


def guide_leaf(answers) -> str:
    """The leaf of the guide that ``answers`` reach, following :data:`GUIDE_EDGES`.

    Args:
        answers: an object with the attributes that :data:`GUIDE_QUESTIONS` read, as built by
            :func:`recommend` from its keyword arguments (``discrete``, ``num_values``,
            ``budget``, ``bias_ok``, ``differentiable_f``, ``reparameterizable``, ``moving``).

    Returns:
        The key of a leaf in :data:`GUIDE_LEAVES`.

    Example:
        >>> from types import SimpleNamespace
        >>> guide_leaf(SimpleNamespace(discrete=False, differentiable_f=True,
        ...                            reparameterizable=True))
        'pathwise'
    """
    node = "discrete"
    while node in GUIDE_QUESTIONS:
        try:
            answer = "yes" if GUIDE_QUESTIONS[node][1](answers) else "no"
        except AttributeError as err:
            raise TypeError(f"answers must carry the attributes the questions read: {err}") from err
        node = next(b for a, b, label in GUIDE_EDGES if a == node and label == answer)
    return node


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
    num_values=None,
) -> list[Recommendation]:
    """The estimators of the book that apply to a problem, most preferred first.

    Walks the decision tree of :data:`GUIDE_EDGES` to a leaf (:func:`guide_leaf`) and returns
    the rules of :data:`GUIDE_LEAVES` listed there that apply: enumeration when x is discrete
    and its values fit the budget; relaxations (Gumbel-softmax, straight-through) first when
    a bias is acceptable and f is differentiable between the discrete values; pathwise when f
    is differentiable and x = x(θ, ε) (``has_rsample``); otherwise the score function, with a
    leave-one-out baseline when ``budget`` >= 2 and the boundary term added by hand when the
    support moves with θ; the measure-valued estimator for a Gaussian when 2D evaluations fit
    the budget; for a Gaussian x and a twice-differentiable f, the delta-method control
    variates of the pathwise and score-function estimators (the second-order Taylor model of
    f at the mean: Miller et al. 2017, Paisley et al. 2012) when at least two evaluations fit
    (the model needs f at the mean on top of the samples); for a discrete x with more values
    than the budget but a known count, sum and sample (Liu et al. 2019) when at least three
    evaluations fit (one summed outcome and two sampled); REBAR (Tucker et al. 2017) for a
    differentiable f when its three evaluations per sample fit, RELAX (Grathwohl et al. 2018)
    for any f; a learned baseline (NVIL, Mnih and Gregor 2014) wherever the score function is
    the fallback; finite differences with common random numbers, bias O(h²) and 2D
    evaluations per sample, when a bias is acceptable and at least two samples fit (4D
    evaluations).

    Every flag must be exactly True or False (a string such as "no" is refused, not read
    as True), and the counts integers >= 1; anything else raises ``TypeError`` or
    ``ValueError`` naming the argument.

    Args:
        differentiable_f: f is differentiable in x (and, for relaxations, defined between
            the discrete values).
        reparameterizable: the distribution has ``rsample``, x = x(θ, ε).
        discrete: x is discrete (then ``reparameterizable``, ``gaussian`` and
            ``support_depends_on_theta`` must be False).
        support_depends_on_theta: the set where p(x; θ) > 0 moves with θ.
        budget: evaluations of f one gradient estimate may use, an integer >= 1.
        num_params: D, the number of parameters, an integer >= 1.
        bias_ok: a small bias is acceptable (no unbiasedness guarantee needed).
        gaussian: x is Gaussian, θ its mean and standard deviation (for the measure-valued
            estimator).
        num_values: for a discrete x, how many values it takes (K for one categorical, K^n for
            n of them), an integer >= 2; None when unknown or infinite.

    Returns:
        A list of :class:`Recommendation`, most preferred first; never empty.

    Example:
        >>> [r.estimator for r in recommend(differentiable_f=False, reparameterizable=False,
        ...                                  discrete=True, budget=4)][:2]
        ['score function + leave-one-out', 'RELAX (learned control variate)']
    """
    a = _answers(
        differentiable_f=differentiable_f,
        reparameterizable=reparameterizable,
        discrete=discrete,
        support_depends_on_theta=support_depends_on_theta,
        budget=budget,
        num_params=num_params,
        bias_ok=bias_ok,
        gaussian=gaussian,
        num_values=num_values,
    )
    rules = [GUIDE_RULES[key] for key in GUIDE_LEAVES[guide_leaf(a)]]
    return [Recommendation(r.name(a), r.unbiased, r.reason(a)) for r in rules if r.applies(a)]


# ---------------------------------------------------------------- the flow chart

_SHORT = {  # a rule's name in a leaf's "then:" list
    "enumerate": "enumeration",
    "gumbel": "Gumbel-softmax",
    "straight": "straight-through",
    "pathwise": "pathwise",
    "boundary": "score fn. + boundary (support moves)",
    "score": "score fn. + LOO",
    "mvd": "measure-valued (Gaussian)",
    "delta-path": "pathwise + delta CV",
    "delta-score": "score fn. + delta CV",
    "sum-sample": "sum and sample",
    "rebar": "REBAR",
    "relax-cv": "RELAX",
    "nvil": "NVIL baseline",
    "fd": "FD + CRN",
}

_LAYOUT = {  # key: (x, y) centre of its box
    "start": (6.9, 8.1),
    "discrete": (6.9, 7.0),
    "enumerable": (3.5, 5.6),
    "smooth": (10.3, 5.6),
    "enumerate": (1.0, 3.7),
    "relaxable": (4.5, 3.7),
    "pathwise": (8.4, 3.55),
    "moving": (12.2, 3.7),
    "relax": (2.0, 1.4),
    "sf-discrete": (5.5, 1.4),
    "boundary": (9.6, 1.4),
    "sf-continuous": (13.1, 1.4),
    "always": (1.6, 7.6),
    "control": (9.5, -0.5),
}


def _leaf_text(key: str) -> str:
    first, *rest = GUIDE_LEAVES[key]
    then = textwrap.wrap("then: " + ", ".join(_SHORT[r] for r in rest), width=28) if rest else []
    return "\n".join([GUIDE_RULES[first].label, *then])


def _kind(key: str) -> str:
    return "unbiased" if GUIDE_RULES[GUIDE_LEAVES[key][0]].unbiased else "biased"


GUIDE_NODES = {
    "start": (
        "$\\nabla_\\theta\\, \\mathbb{E}_{x\\sim p_\\theta}[f(x)]$",
        _LAYOUT["start"],
        "start",
    ),
    **{k: (text, _LAYOUT[k], "question") for k, (text, _) in GUIDE_QUESTIONS.items()},
    **{k: (_leaf_text(k), _LAYOUT[k], _kind(k)) for k in GUIDE_LEAVES},
    "always": (
        (
            "always: measure the variance;\ncheck against finite differences\n"
            "with CRN on a small problem"
        ),
        _LAYOUT["always"],
        "note",
    ),
    "control": (
        (
            "still too noisy? sum out what you\ncan, add a control variate (delta\n"
            "method, REBAR, RELAX, NVIL)"
        ),
        _LAYOUT["control"],
        "note",
    ),
}
"""The boxes of :func:`draw_decision_guide`: text, centre and kind, built from
:data:`GUIDE_QUESTIONS` and, for the leaves, from the rules of :data:`GUIDE_LEAVES` (the first
rule's label, then the others' names)."""

_LINKS = (("sf-discrete", "control"), ("sf-continuous", "control"))  # dotted: a fallback

_STYLE = {  # kind: (edge colour, face colour, line style)
    "start": (COLORS["exact"], "#f2f2f2", "-"),
    "question": (COLORS["estimate"], "white", "-"),
    "unbiased": (COLORS["good"], "#eaf5ee", "-"),
    "biased": (COLORS["accent"], "#fdf0e4", "-"),
    "note": (COLORS["exact"], "white", "--"),
}
_HALF_WIDTH, _LINE = 1.6, 0.22  # box half-width; height of one line of text


def _half_height(text: str) -> float:
    return 0.16 + _LINE * (text.count("\n") + 1) / 2


def _box_edge(key: str, top: bool) -> tuple[float, float]:
    text, (x, y), _ = GUIDE_NODES[key]
    offset = _half_height(text) + 0.1
    return (x, y + offset) if top else (x, y - offset)


def draw_decision_guide(ax):
    """Draw the decision guide as a flow chart of boxes and arrows, from the rule table.

    Questions are blue boxes, leaves green when their first estimator is unbiased and orange
    when it is biased, notes dashed; every patch has a ``gid``: ``"box-<key>"`` for the boxes
    of :data:`GUIDE_NODES`, ``"arrow-<from>-<to>"`` for the arrows of :data:`GUIDE_EDGES`
    and ``"link-<from>-<to>"`` for the dotted links to the control-variates note.

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
        width = 2.0 * _HALF_WIDTH * (1.25 if kind == "note" else 1.0)
        height = 2 * _half_height(text)
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0.06",
                fc=face,
                ec=edge,
                lw=1.2,
                ls=style,
                gid=f"box-{key}",
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, gid=f"text-{key}")
    arrows = [(a, b, label, "arrow") for a, b, label in GUIDE_EDGES]
    arrows += [(a, b, "", "link") for a, b in _LINKS]
    for source, target, label, what in arrows:
        start, end = _box_edge(source, top=False), _box_edge(target, top=True)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=10,
                lw=1.1 if what == "arrow" else 0.8,
                ls="-" if what == "arrow" else ":",
                color=COLORS["exact"],
                gid=f"{what}-{source}-{target}",
            )
        )
        if label:
            right = end[0] >= start[0]
            ax.text(
                (start[0] + end[0]) / 2 + (0.12 if right else -0.12),
                (start[1] + end[1]) / 2,
                label,
                fontsize=8,
                style="italic",
                ha="left" if right else "right",
                va="center",
                color=COLORS["estimate"],
            )
    ax.set_xlim(-0.75, 14.85)
    ax.set_ylim(-1.3, 8.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
