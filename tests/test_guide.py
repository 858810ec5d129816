"""Tests of companion.guide: every rule of recommend(), its input checks, and the flow chart."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from companion.guide import GUIDE_EDGES, GUIDE_NODES, Recommendation, draw_decision_guide, recommend
from companion.plotting import COLORS


def names(**kwargs):
    return [r.estimator for r in recommend(**kwargs)]


# ---------------------------------------------------------------- recommend


def test_smooth_f_and_rsample_puts_pathwise_first():
    # x² under a normal: every unbiased option, pathwise preferred
    got = names(
        differentiable_f=True,
        reparameterizable=True,
        discrete=False,
        budget=100,
        num_params=2,
        gaussian=True,
    )
    assert got == ["pathwise", "score function + leave-one-out", "measure-valued (coupled)"]


def test_a_step_function_drops_pathwise():
    got = names(
        differentiable_f=False, reparameterizable=True, discrete=False, budget=100, gaussian=True
    )
    assert got == ["score function + leave-one-out", "measure-valued (coupled)"]


def test_one_evaluation_leaves_a_constant_baseline_and_no_two_sided_estimator():
    got = names(
        differentiable_f=False,
        reparameterizable=False,
        discrete=False,
        budget=1,
        gaussian=True,
        bias_ok=True,
    )
    assert got == ["score function + constant baseline"]


def test_measure_valued_needs_2d_evaluations():
    kwargs = dict(differentiable_f=False, reparameterizable=True, discrete=False, gaussian=True)
    assert "measure-valued (coupled)" not in names(budget=9, num_params=5, **kwargs)
    assert "measure-valued (coupled)" in names(budget=10, num_params=5, **kwargs)


def test_discrete_x_gets_relaxations_only_when_bias_is_ok_and_f_is_differentiable():
    base = dict(reparameterizable=False, discrete=True, budget=4)
    assert names(differentiable_f=True, **base) == ["score function + leave-one-out"]
    assert names(differentiable_f=True, bias_ok=True, **base) == [
        "score function + leave-one-out",
        "Gumbel-softmax (Concrete)",
        "straight-through",
        "finite differences + CRN",
    ]
    assert names(differentiable_f=False, bias_ok=True, **base) == [
        "score function + leave-one-out",
        "finite differences + CRN",
    ]


def test_finite_differences_need_bias_ok_and_two_samples_of_2d_evaluations():
    base = dict(differentiable_f=False, reparameterizable=False, discrete=False, bias_ok=True)
    assert "finite differences + CRN" in names(budget=8, num_params=2, **base)
    assert "finite differences + CRN" not in names(budget=7, num_params=2, **base)
    assert "finite differences + CRN" not in names(
        budget=8, num_params=2, **{**base, "bias_ok": False}
    )


def test_a_moving_support_replaces_the_plain_score_function():
    # U(0, θ): pathwise through x = θu is fine; the score function needs the boundary term
    got = names(
        differentiable_f=True,
        reparameterizable=True,
        discrete=False,
        support_depends_on_theta=True,
        budget=10,
    )
    assert got == ["pathwise", "score function + boundary term"]
    assert "score function + leave-one-out" not in got


def test_unbiased_flags_and_reasons():
    recs = recommend(
        differentiable_f=True, reparameterizable=False, discrete=True, budget=100, bias_ok=True
    )
    biased = {"Gumbel-softmax (Concrete)", "straight-through", "finite differences + CRN"}
    for r in recs:
        assert isinstance(r, Recommendation) and r.reason
        assert r.unbiased == (r.estimator not in biased)
        assert str(r).startswith(f"{r.estimator} ({'unbiased' if r.unbiased else 'biased'}): ")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"discrete": 1}, TypeError, "discrete must be True or False"),
        ({"bias_ok": None}, TypeError, "bias_ok must be True or False"),
        ({"budget": 0}, ValueError, "budget must be an integer >= 1"),
        ({"budget": 2.5}, TypeError, "budget must be an integer >= 1"),
        ({"num_params": True}, TypeError, "num_params must be an integer >= 1"),
        ({"discrete": True, "reparameterizable": True}, ValueError, "discrete x has no rsample"),
        (
            {"discrete": True, "reparameterizable": False, "gaussian": True},
            ValueError,
            "discrete x has no rsample",
        ),
        ({"gaussian": True, "support_depends_on_theta": True}, ValueError, "does not move"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, error, message):
    args = dict(differentiable_f=True, reparameterizable=True, discrete=False)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        recommend(**args)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        recommend(True, True, False)


# ---------------------------------------------------------------- the flow chart


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_the_chart_draws_every_box_and_arrow(ax):
    assert draw_decision_guide(ax) is ax
    boxes = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyBboxPatch)}
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    assert set(boxes) == {f"box-{key}" for key in GUIDE_NODES}
    assert set(arrows) == {f"arrow-{a}-{b}" for a, b, _ in GUIDE_EDGES}
    texts = [t.get_text() for t in ax.texts]
    for text, _, _ in GUIDE_NODES.values():
        assert text in texts
    assert texts.count("yes") == texts.count("no") == 4
    assert not ax.axison


def test_every_question_has_a_yes_and_a_no_and_leaves_are_coloured_by_bias(ax):
    draw_decision_guide(ax)
    for key, (_, _, kind) in GUIDE_NODES.items():
        labels = sorted(label for a, _, label in GUIDE_EDGES if a == key)
        assert labels == (["no", "yes"] if kind == "question" else [""] if kind == "start" else [])
    boxes = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyBboxPatch)}
    assert to_hex(boxes["box-relax"].get_edgecolor()) == COLORS["accent"]
    assert to_hex(boxes["box-pathwise"].get_edgecolor()) == COLORS["good"]


def test_arrows_point_down_from_their_source_to_their_target(ax):
    draw_decision_guide(ax)
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    for a, b, _ in GUIDE_EDGES:
        (x0, y0), (x1, y1) = arrows[f"arrow-{a}-{b}"]._posA_posB
        assert (x0, x1) == (GUIDE_NODES[a][1][0], GUIDE_NODES[b][1][0])
        assert GUIDE_NODES[b][1][1] < y1 < y0 < GUIDE_NODES[a][1][1]


def test_boxes_do_not_overlap(ax):
    draw_decision_guide(ax)
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    for i, p in enumerate(boxes):
        for q in boxes[i + 1 :]:
            apart_x = p.get_x() + p.get_width() < q.get_x() or q.get_x() + q.get_width() < p.get_x()
            apart_y = (
                p.get_y() + p.get_height() < q.get_y() or q.get_y() + q.get_height() < p.get_y()
            )
            assert apart_x or apart_y, (p.get_gid(), q.get_gid())


def test_rejects_what_is_not_an_axes():
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        draw_decision_guide("axes")


# ---------------------------------------------------------------- adversarial input


FLAGS = [
    "differentiable_f",
    "reparameterizable",
    "discrete",
    "support_depends_on_theta",
    "bias_ok",
    "gaussian",
]


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("value", ["no", "False", "", 0, 1, None, 1.0])
def test_every_flag_must_be_a_bool_not_a_truthy_value(flag, value):
    args = dict(differentiable_f=True, reparameterizable=False, discrete=False)
    args[flag] = value
    with pytest.raises(TypeError, match=rf"{flag} must be True or False"):
        recommend(**args)


@pytest.mark.parametrize("name", ["budget", "num_params"])
@pytest.mark.parametrize(
    "value, error",
    [
        (-1, ValueError),
        ("4", TypeError),
        (None, TypeError),
        (float("inf"), TypeError),
        (False, TypeError),
    ],
)
def test_counts_must_be_positive_integers(name, value, error):
    with pytest.raises(error, match=rf"{name} must be an integer >= 1"):
        recommend(differentiable_f=True, reparameterizable=True, discrete=False, **{name: value})


def test_numpy_integers_and_huge_budgets_are_fine():
    import numpy as np

    got = names(
        differentiable_f=True,
        reparameterizable=True,
        discrete=False,
        budget=np.int64(10**18),
        num_params=np.int32(3),
        gaussian=True,
        bias_ok=True,
    )
    assert got[0] == "pathwise" and "finite differences + CRN" in got


@pytest.mark.parametrize(
    "fields, error, match",
    [
        (("", True, "r"), TypeError, "estimator must be a non-empty string"),
        (("pathwise", "yes", "r"), TypeError, "unbiased must be True or False, got str"),
        (("pathwise", True, None), TypeError, "reason must be a string"),
    ],
)
def test_recommendation_checks_its_fields(fields, error, match):
    with pytest.raises(error, match=match):
        Recommendation(*fields)


def test_a_failed_chart_draws_nothing():
    fig, ax = plt.subplots()
    try:
        with pytest.raises(TypeError, match="ax must be a matplotlib Axes, got Figure"):
            draw_decision_guide(fig)
        assert not ax.patches and not ax.texts
    finally:
        plt.close(fig)
