"""Tests of companion.diagrams: the graph draws the labelled nodes and arrows it promises."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from companion.diagrams import (
    DETOUR_LABELS,
    GRAPH_COLORS,
    GRAPH_LABELS,
    draw_computational_graph,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _by_gid(ax, kind):
    return {p.get_gid(): p for p in ax.patches if isinstance(p, kind)}


def test_default_graph_has_five_labelled_nodes_and_all_arrows(ax):
    out = draw_computational_graph(ax)
    assert out is ax
    nodes = _by_gid(ax, FancyBboxPatch)
    assert sorted(nodes) == [f"node-{i}" for i in range(5)]
    texts = [t.get_text() for t in ax.texts]
    for label in (*GRAPH_LABELS, *DETOUR_LABELS, "sample()"):
        assert label in texts
    arrows = _by_gid(ax, FancyArrowPatch)
    expected = (
        {f"forward-{i}" for i in range(4)}
        | {f"backward-{i}" for i in range(4)}
        | {"detour-score-function", "detour-measure-valued", "detour-pathwise"}
    )
    assert set(arrows) == expected
    # nodes left to right, in the order of the labels
    xs = [nodes[f"node-{i}"].get_x() for i in range(5)]
    assert xs == sorted(xs)
    assert not ax.axison


def test_arrow_colours_and_the_cut_edge(ax):
    draw_computational_graph(ax, cut_edge=1)
    arrows = _by_gid(ax, FancyArrowPatch)
    for i in range(4):
        assert to_hex(arrows[f"forward-{i}"].get_edgecolor()) == GRAPH_COLORS["forward"]
        assert to_hex(arrows[f"backward-{i}"].get_edgecolor()) == GRAPH_COLORS["backward"]
    assert GRAPH_COLORS["forward"] != GRAPH_COLORS["backward"]
    # only the backward arrow through sampling is dashed, and it carries the cross
    dashed = [gid for gid, a in arrows.items() if a.get_linestyle() not in ("-", "solid")]
    assert dashed == ["backward-1"]
    (cross,) = [line for line in ax.get_lines() if line.get_gid() == "cut"]
    start, end = arrows["backward-1"]._posA_posB
    assert min(start[0], end[0]) < cross.get_xdata()[0] < max(start[0], end[0])
    # detours: score function and measure-valued from f(x) (node 3) to p_θ (node 1), above
    # the nodes; pathwise from x (2) to θ (0), below them
    nodes = _by_gid(ax, FancyBboxPatch)
    centre = {i: nodes[f"node-{i}"].get_x() + nodes[f"node-{i}"].get_width() / 2 for i in range(5)}
    for gid in ("detour-score-function", "detour-measure-valued"):
        (a, b) = arrows[gid]._posA_posB
        assert (a[0], b[0]) == pytest.approx((centre[3], centre[1]))
        assert a[1] > 0 and b[1] > 0
        assert to_hex(arrows[gid].get_edgecolor()) == GRAPH_COLORS[gid.removeprefix("detour-")]
    (a, b) = arrows["detour-pathwise"]._posA_posB
    assert (a[0], b[0]) == pytest.approx((centre[2], centre[0]))


def test_custom_labels_without_cut_or_detours(ax):
    draw_computational_graph(ax, ["a", "b", "c"], cut_edge=None, detours=False)
    assert sorted(_by_gid(ax, FancyBboxPatch)) == ["node-0", "node-1", "node-2"]
    arrows = _by_gid(ax, FancyArrowPatch)
    assert set(arrows) == {"forward-0", "forward-1", "backward-0", "backward-1"}
    assert not [line for line in ax.get_lines() if line.get_gid() == "cut"]


def test_bad_input(ax):
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        draw_computational_graph("axes")
    with pytest.raises(TypeError, match="labels must be a sequence of strings"):
        draw_computational_graph(ax, "theta")
    with pytest.raises(TypeError, match="labels must be a sequence of strings"):
        draw_computational_graph(ax, ["a", 2])
    with pytest.raises(ValueError, match="at least 2 nodes, got 1"):
        draw_computational_graph(ax, ["a"], cut_edge=None, detours=False)
    with pytest.raises(ValueError, match=r"cut_edge must be in \[0, 3\]"):
        draw_computational_graph(ax, cut_edge=4)
    with pytest.raises(TypeError, match="cut_edge must be an edge index"):
        draw_computational_graph(ax, cut_edge=1.0)
    with pytest.raises(TypeError, match="detours must be True or False"):
        draw_computational_graph(ax, detours="yes")
    with pytest.raises(ValueError, match="detours need a node before the cut edge"):
        draw_computational_graph(ax, cut_edge=0)
    with pytest.raises(ValueError, match="detours need a node before the cut edge"):
        draw_computational_graph(ax, cut_edge=None)
    with pytest.raises(TypeError, match="detour_labels must be three strings"):
        draw_computational_graph(ax, detour_labels=("only one",))
    with pytest.raises(TypeError, match="detour_labels must be three strings"):
        draw_computational_graph(ax, detour_labels=DETOUR_LABELS[:2])


# ---------------------------------------------------------------- adversarial input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(detours=1), TypeError, "detours must be True or False, got int"),
        (dict(detours=None), TypeError, "detours must be True or False"),
        (dict(detours="False"), TypeError, "detours must be True or False"),
        (dict(cut_edge=True), TypeError, "cut_edge must be an edge index or None, got bool"),
        (dict(cut_edge=-1), ValueError, r"cut_edge must be in \[0, 3\]"),
        (dict(labels=(label for label in GRAPH_LABELS)), TypeError, "labels must be a sequence"),
        (dict(labels=[]), ValueError, "at least 2 nodes, got 0"),
        (dict(detour_labels="abc"), TypeError, "detour_labels must be three strings"),
        (dict(detour_labels=("a", "b", 2)), TypeError, "detour_labels must be three strings"),
    ],
)
def test_bad_input_draws_nothing(ax, kwargs, error, match):
    with pytest.raises(error, match=match):
        draw_computational_graph(ax, **kwargs)
    assert not ax.patches and not ax.texts and not ax.lines and ax.get_legend() is None
    assert ax.axison


def test_numpy_edge_index_and_tuple_labels(ax):
    import numpy as np

    draw_computational_graph(ax, tuple(GRAPH_LABELS), cut_edge=np.int64(1))
    assert len(_by_gid(ax, FancyBboxPatch)) == 5


def test_the_three_detours_are_the_three_families(ax):
    """Two derivatives of the distribution (score function, measure-valued) and one of the
    path (pathwise), each labelled, in its own colour, the measure-valued arc outside the
    score-function arc."""
    draw_computational_graph(ax)
    assert len(DETOUR_LABELS) == 3
    assert [label.split(":")[0] for label in DETOUR_LABELS] == [
        "score function",
        "measure-valued",
        "pathwise",
    ]
    colours = {GRAPH_COLORS[k] for k in ("score-function", "measure-valued", "pathwise")}
    assert len(colours) == 3
    arrows = _by_gid(ax, FancyArrowPatch)
    inner = arrows["detour-score-function"].get_path().get_extents().y1
    outer = arrows["detour-measure-valued"].get_path().get_extents().y1
    assert outer > inner
