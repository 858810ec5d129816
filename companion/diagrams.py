"""Diagrams drawn with Matplotlib, so that the book's figures need no external tool or network.

:func:`draw_computational_graph` draws the chain of Chapter 2,

    θ  →  p_θ  →  x ~ p_θ  →  f(x)  →  Ĵ_N(θ) = (1/N) Σ_n f(x_n),

with data flowing forward along the top and gradients flowing backward along the bottom. The
backward edge through the sampling step is drawn cut, because ``sample()`` returns a tensor
with no autograd history; three arcs show the ways around it (Mohamed et al. 2020, §§4-6).
Two differentiate the distribution and reach p_θ from the function values: the score
function through ∇θ log p_θ(x) (§4) and the measure-valued estimator, which evaluates f under
the positive and negative parts of ∇θ p_θ (§6). The third differentiates the path and reaches
θ through x = x(θ, ε) (§5).

Every artist carries a ``gid`` (``"node-<i>"``, ``"forward-<i>"``, ``"backward-<i>"``,
``"detour-score-function"``, ``"detour-measure-valued"``, ``"detour-pathwise"``), so tests
and readers can find them.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import matplotlib as mpl
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ._validation import check_bool, describe
from .plotting import COLORS

__all__ = ["GRAPH_LABELS", "DETOUR_LABELS", "GRAPH_COLORS", "draw_computational_graph"]


GRAPH_LABELS = (
    "$\\theta$\nparameters",
    "$p_\\theta$\ndistribution",
    "$x \\sim p_\\theta$\nsample",
    "$f(x)$\nfunction value",
    "$\\hat J_N(\\theta)$\naverage",
)
"""Node texts of θ → P → X → F → Y, left to right."""

DETOUR_LABELS = (
    "score function: $f(x)\\,\\nabla_\\theta \\log p_\\theta(x)$",
    "measure-valued: $f(x^+) - f(x^-)$, $x^\\pm \\sim p_\\theta^\\pm$",
    "pathwise: $x = x(\\theta, \\varepsilon)$",
)
"""Texts of the three arcs around the cut edge: score function, measure-valued, pathwise."""

GRAPH_COLORS = {
    "forward": COLORS["estimate"],
    "backward": COLORS["accent"],
    "cut": COLORS["bad"],
    "score-function": COLORS["good"],
    "measure-valued": "#8c6d1f",
    "pathwise": "#7f3c8d",
}
"""Colours of the diagram: data forward, gradients backward, the cut and the three detours."""

_WIDTH, _HEIGHT, _SPACING = 1.6, 0.7, 2.5  # node box size and centre-to-centre distance


def _check_inputs(ax, labels, cut_edge, detours, detour_labels):
    if not isinstance(ax, mpl.axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {describe(ax)}")
    if (
        isinstance(labels, str)
        or not isinstance(labels, Sequence)
        or not all(isinstance(label, str) for label in labels)
    ):
        raise TypeError(f"labels must be a sequence of strings, got {describe(labels)}")
    if len(labels) < 2:
        raise ValueError(f"labels must name at least 2 nodes, got {len(labels)}")
    if cut_edge is not None:
        if isinstance(cut_edge, bool) or not isinstance(cut_edge, numbers.Integral):
            raise TypeError(f"cut_edge must be an edge index or None, got {describe(cut_edge)}")
        if not 0 <= cut_edge < len(labels) - 1:
            raise ValueError(
                f"cut_edge must be in [0, {len(labels) - 2}] for {len(labels)} "
                f"nodes, got {cut_edge}"
            )
    check_bool("detours", detours)
    if detours:
        if cut_edge is None or not 1 <= cut_edge <= len(labels) - 3:
            raise ValueError(
                "detours need a node before the cut edge and two after it "
                f"(1 <= cut_edge <= {len(labels) - 3}), got cut_edge={cut_edge}"
            )
        if (
            isinstance(detour_labels, str)
            or not isinstance(detour_labels, Sequence)
            or len(detour_labels) != 3
            or not all(isinstance(t, str) for t in detour_labels)
        ):
            raise TypeError(
                "detour_labels must be three strings (score function, measure-valued, "
                f"pathwise), got {describe(detour_labels)}"
            )


def _arrow(ax, start, end, kind, gid, **style):
    arrow = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=12,
        lw=1.6,
        color=GRAPH_COLORS[kind],
        gid=gid,
        **style,
    )
    ax.add_patch(arrow)
    return arrow


def draw_computational_graph(
    ax, labels=GRAPH_LABELS, *, cut_edge=1, detours=True, detour_labels=DETOUR_LABELS
):
    """Draw a chain of nodes with forward (data) and backward (gradient) arrows.

    Node i sits at x = 2.5 i. Forward arrows i → i+1 run above the centre line, backward arrows
    i+1 → i below it. The backward arrow of ``cut_edge`` is dashed and crossed out in red: it
    is the sampling step, through which ``sample()`` passes no gradient. With ``detours``,
    two nested arcs above the nodes carry the gradients that differentiate the distribution
    from node ``cut_edge + 2`` (the function values) back to node ``cut_edge`` (the
    distribution): the score function (inner arc, f weights ∇θ log p_θ) and the
    measure-valued estimator (outer arc, f evaluated under the parts p_θ^± of ∇θ p_θ). An arc
    below carries the pathwise gradient from node ``cut_edge + 1`` (the sample,
    x = x(θ, ε)) back to node ``cut_edge - 1`` (the parameters).

    Args:
        ax: the Matplotlib ``Axes`` to draw on; its axis is switched off.
        labels: node texts, left to right, at least 2 (default :data:`GRAPH_LABELS`).
        cut_edge: index i of the edge labels[i] → labels[i+1] that sampling cuts, or None.
        detours: draw the three arcs around the cut; needs 1 <= cut_edge <= len(labels) - 3.
        detour_labels: texts of the score-function, measure-valued and pathwise arcs.

    Returns:
        ``ax``, with one ``FancyBboxPatch`` per node and one ``FancyArrowPatch`` per arrow.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = draw_computational_graph(ax)
        >>> sorted(p.get_gid() for p in ax.patches if p.get_gid().startswith("node"))
        ['node-0', 'node-1', 'node-2', 'node-3', 'node-4']
        >>> plt.close(fig)
    """
    _check_inputs(ax, labels, cut_edge, detours, detour_labels)
    centres = [(_SPACING * i, 0.0) for i in range(len(labels))]
    for i, ((cx, cy), text) in enumerate(zip(centres, labels)):
        ax.add_patch(
            FancyBboxPatch(
                (cx - _WIDTH / 2, cy - _HEIGHT / 2),
                _WIDTH,
                _HEIGHT,
                boxstyle="round,pad=0.04",
                fc="white",
                ec=COLORS["exact"],
                lw=1.2,
                gid=f"node-{i}",
            )
        )
        ax.text(cx, cy, text, ha="center", va="center", fontsize=8.5, gid=f"label-{i}")
    for i in range(len(labels) - 1):
        left, right = centres[i][0] + _WIDTH / 2 + 0.06, centres[i + 1][0] - _WIDTH / 2 - 0.06
        _arrow(ax, (left, 0.12), (right, 0.12), "forward", f"forward-{i}")
        cut = i == cut_edge
        _arrow(
            ax,
            (right, -0.12),
            (left, -0.12),
            "backward",
            f"backward-{i}",
            linestyle="--" if cut else "-",
            alpha=0.45 if cut else 1.0,
        )
        if cut:  # the cross and its explanation, on the gradient edge through sampling
            middle = (left + right) / 2
            ax.plot([middle], [-0.12], marker="X", ms=11, color=GRAPH_COLORS["cut"], gid="cut")
            ax.text(
                middle,
                _HEIGHT / 2,
                "sample()",
                ha="center",
                va="bottom",
                fontsize=8,
                color=GRAPH_COLORS["cut"],
            )
    if detours:
        c = cut_edge
        top, bottom = _HEIGHT / 2 + 0.08, -_HEIGHT / 2 - 0.08
        for kind, start, end, y, rad, text in (
            ("score-function", c + 2, c, top, 0.3, detour_labels[0]),
            ("measure-valued", c + 2, c, top, 0.8, detour_labels[1]),
            ("pathwise", c + 1, c - 1, bottom, -0.35, detour_labels[2]),
        ):
            _arrow(
                ax,
                (centres[start][0], y),
                (centres[end][0], y),
                kind,
                f"detour-{kind}",
                connectionstyle=f"arc3,rad={rad}",
            )
            sign = 1 if y > 0 else -1
            peak = abs(rad) * abs(centres[start][0] - centres[end][0]) / 2  # arc3's bulge
            ax.text(
                (centres[start][0] + centres[end][0]) / 2,
                y + sign * (peak + 0.08),
                text,
                ha="center",
                va="bottom" if sign > 0 else "top",
                fontsize=8.5,
                color=GRAPH_COLORS[kind],
            )
    handles = [
        Line2D([], [], color=GRAPH_COLORS["forward"], lw=1.6, label="data (forward)"),
        Line2D([], [], color=GRAPH_COLORS["backward"], lw=1.6, label="gradients (backward)"),
        Line2D(
            [],
            [],
            color=GRAPH_COLORS["cut"],
            marker="X",
            ls="none",
            label="no gradient through sample()",
        ),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8)
    ax.set_xlim(-_WIDTH / 2 - 0.2, centres[-1][0] + _WIDTH / 2 + 0.2)
    ax.set_ylim(-1.75, 2.95)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
