"""Tests of companion.guide: every rule of recommend(), its input checks, and the flow chart."""

import itertools
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from companion.guide import (
    GUIDE_EDGES,
    GUIDE_LEAVES,
    GUIDE_NODES,
    GUIDE_QUESTIONS,
    GUIDE_RULES,
    Recommendation,
    draw_decision_guide,
    guide_leaf,
    recommend,
)
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
    assert got == [
        "pathwise",
        "pathwise + delta-method control variate",
        "score function + leave-one-out",
        "score function + delta-method control variate",
        "measure-valued (coupled)",
    ]


def test_a_step_function_drops_pathwise_and_the_delta_method_and_offers_a_learned_baseline():
    got = names(
        differentiable_f=False, reparameterizable=True, discrete=False, budget=100, gaussian=True
    )
    assert got == [
        "score function + leave-one-out",
        "measure-valued (coupled)",
        "learned baseline (NVIL)",
    ]


def test_the_delta_method_needs_a_gaussian_and_a_differentiable_f():
    delta = {
        "pathwise + delta-method control variate",
        "score function + delta-method control variate",
    }
    base = dict(reparameterizable=True, discrete=False, budget=10)
    assert delta <= set(names(differentiable_f=True, gaussian=True, **base))
    assert not delta & set(names(differentiable_f=True, gaussian=False, **base))
    assert not delta & set(names(differentiable_f=False, gaussian=True, **base))
    # f differentiable, a Gaussian declared without rsample: the score-function leaf, which
    # offers the delta method for the score function only
    got = names(differentiable_f=True, gaussian=True, **{**base, "reparameterizable": False})
    assert got[0] == "score function + leave-one-out"
    assert "score function + delta-method control variate" in got
    assert "pathwise + delta-method control variate" not in got
    recs = recommend(differentiable_f=True, gaussian=True, **base)
    reasons = {r.estimator: r.reason for r in recs if r.estimator in delta}
    assert "Miller" in reasons["pathwise + delta-method control variate"]
    assert "Paisley" in reasons["score function + delta-method control variate"]
    assert all("quadratic" in reason and "β" in reason for reason in reasons.values())


def test_the_delta_method_needs_a_second_evaluation_for_the_model_at_the_mean():
    """The Taylor model needs f at μ on top of the samples: not offered at budget 1."""
    delta = {
        "pathwise + delta-method control variate",
        "score function + delta-method control variate",
    }
    base = dict(differentiable_f=True, reparameterizable=True, discrete=False, gaussian=True)
    assert not delta & set(names(budget=1, **base))
    assert delta <= set(names(budget=2, **base))
    for r in recommend(budget=2, **base):
        if r.estimator in delta:
            assert "one evaluation of f on top of the samples" in r.reason


def test_the_reasons_say_why_sum_and_sample_needs_three_and_that_rebar_may_not_help():
    base = dict(differentiable_f=True, reparameterizable=False, discrete=True, num_values=100)
    reasons = {r.estimator: r.reason for r in recommend(budget=3, **base)}
    sample = reasons["sum and sample (Rao–Blackwellized score function)"]
    assert "at least 3" in sample and "one summed outcome" in sample and "two" in sample
    assert "can be almost none" in reasons["REBAR"]


def test_sum_and_sample_needs_a_known_count_and_three_evaluations():
    base = dict(differentiable_f=False, reparameterizable=False, discrete=True)
    sample = "sum and sample (Rao–Blackwellized score function)"
    got = recommend(budget=3, num_values=100, **base)
    assert [r.estimator for r in got][:2] == ["score function + leave-one-out", sample]
    assert "x takes 100 values" in got[1].reason and got[1].unbiased
    assert sample not in names(budget=2, num_values=100, **base)  # one summed + one sampled
    assert sample not in names(budget=3, **base)  # the count is unknown
    assert names(budget=100, num_values=100, **base) == ["enumeration (Rao–Blackwellization)"]


def test_rebar_needs_a_differentiable_f_and_three_evaluations_relax_and_nvil_do_not():
    base = dict(reparameterizable=False, discrete=True, num_values=1000)
    assert "REBAR" in names(differentiable_f=True, budget=3, **base)
    assert "REBAR" not in names(differentiable_f=True, budget=2, **base)
    assert "REBAR" not in names(differentiable_f=False, budget=100, **base)
    for budget in (1, 2, 100):
        for diff in (False, True):
            got = names(differentiable_f=diff, budget=budget, **base)
            assert got[-2:] == ["RELAX (learned control variate)", "learned baseline (NVIL)"]
    (rebar,) = [
        r for r in recommend(differentiable_f=True, budget=3, **base) if r.estimator == "REBAR"
    ]
    assert rebar.unbiased and "three evaluations of f" in rebar.reason


def test_one_evaluation_leaves_a_constant_baseline_and_no_two_sided_estimator():
    got = names(
        differentiable_f=False,
        reparameterizable=False,
        discrete=False,
        budget=1,
        gaussian=True,
        bias_ok=True,
    )
    assert got[0] == "score function + constant baseline"
    assert "measure-valued (coupled)" not in got and "finite differences + CRN" not in got


def test_measure_valued_needs_2d_evaluations_and_names_both_coordinates():
    kwargs = dict(differentiable_f=False, reparameterizable=True, discrete=False, gaussian=True)
    assert "measure-valued (coupled)" not in names(budget=9, num_params=5, **kwargs)
    recs = recommend(budget=10, num_params=5, **kwargs)
    (mvd,) = [r for r in recs if r.estimator == "measure-valued (coupled)"]
    assert "2D = 10" in mvd.reason
    assert "measure_valued_gaussian_mean" in mvd.reason
    assert "measure_valued_gaussian_scale" in mvd.reason


def test_discrete_x_with_a_bias_allowed_puts_relaxations_first():
    base = dict(reparameterizable=False, discrete=True, budget=4)
    assert names(differentiable_f=True, **base) == [
        "score function + leave-one-out",
        "REBAR",
        "RELAX (learned control variate)",
        "learned baseline (NVIL)",
    ]
    assert names(differentiable_f=True, bias_ok=True, **base) == [
        "Gumbel-softmax (Concrete)",
        "straight-through",
        "score function + leave-one-out",
        "REBAR",
        "RELAX (learned control variate)",
        "learned baseline (NVIL)",
        "finite differences + CRN",
    ]
    # a bias is allowed but f is not differentiable: no relaxation
    assert names(differentiable_f=False, bias_ok=True, **base)[0] == (
        "score function + leave-one-out"
    )


def test_few_values_are_enumerated():
    base = dict(differentiable_f=False, reparameterizable=False, discrete=True, budget=8)
    assert names(num_values=8, **base) == ["enumeration (Rao–Blackwellization)"]
    assert names(num_values=9, **base)[0] == "score function + leave-one-out"
    assert names(**base)[0] == "score function + leave-one-out"  # unknown count


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
    # a step f on U(0, θ): pathwise would return zero; the boundary term comes first
    got = names(
        differentiable_f=False,
        reparameterizable=True,
        discrete=False,
        support_depends_on_theta=True,
        budget=10,
    )
    assert got == ["score function + boundary term"]


def test_unbiased_flags_and_reasons():
    recs = recommend(
        differentiable_f=True, reparameterizable=False, discrete=True, budget=100, bias_ok=True
    )
    biased = {"Gumbel-softmax (Concrete)", "straight-through", "finite differences + CRN"}
    for r in recs:
        assert isinstance(r, Recommendation) and r.reason
        assert r.unbiased == (r.estimator not in biased)
        assert str(r).startswith(f"{r.estimator} ({'unbiased' if r.unbiased else 'biased'}): ")


# ---------------------------------------------------------------- the chart and recommend agree


def _all_answers():
    """Every valid combination of the answers, over budgets and sizes that cross each rule."""
    for flags in itertools.product([False, True], repeat=6):
        diff, rep, disc, moving, bias, gauss = flags
        for budget, num_params, num_values in itertools.product(
            (1, 2, 4, 8), (1, 2), (None, 2, 8, 16)
        ):
            kwargs = dict(
                differentiable_f=diff,
                reparameterizable=rep,
                discrete=disc,
                support_depends_on_theta=moving,
                bias_ok=bias,
                gaussian=gauss,
                budget=budget,
                num_params=num_params,
                num_values=num_values,
            )
            try:
                yield kwargs, recommend(**kwargs)
            except ValueError:
                continue


def _chart_paths(ax):
    """Every root-to-leaf path of the drawn chart: [(question, answer), ...], leaf."""
    arrows = [p.get_gid().split("-", 1)[1] for p in ax.patches if p.get_gid().startswith("arrow")]
    children = {}
    for a, b, label in GUIDE_EDGES:
        assert f"{a}-{b}" in arrows  # the edge of the table is drawn
        children.setdefault(a, []).append((b, label))
    paths, stack = [], [("discrete", [])]
    while stack:
        node, path = stack.pop()
        if node in GUIDE_LEAVES:
            paths.append((path, node))
            continue
        for child, label in children[node]:
            stack.append((child, path + [(node, label == "yes")]))
    return paths


def test_every_path_of_the_chart_ends_at_recommends_first_choice(ax):
    draw_decision_guide(ax)
    texts = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    answers = list(_all_answers())
    paths = _chart_paths(ax)
    assert sorted(leaf for _, leaf in paths) == sorted(GUIDE_LEAVES)  # each leaf, one path
    for path, leaf in paths:
        reached = 0
        for kwargs, recs in answers:
            a = SimpleNamespace(**kwargs, moving=kwargs["support_depends_on_theta"])
            if all(GUIDE_QUESTIONS[q][1](a) == yes for q, yes in path):
                reached += 1
                first = GUIDE_RULES[GUIDE_LEAVES[leaf][0]]
                assert recs[0].estimator == first.name(a), (path, kwargs)
                assert texts[f"text-{leaf}"].startswith(first.label)
                assert recs[0].unbiased == first.unbiased
                # the rest: the leaf's "then:" list in order, filtered by the answers
                listed = iter(GUIDE_RULES[r].name(a) for r in GUIDE_LEAVES[leaf])
                assert all(rec.estimator in listed for rec in recs), (path, kwargs)
        assert reached, f"no answer reaches the leaf {leaf}"


def test_the_first_rule_of_every_leaf_always_applies():
    for kwargs, recs in _all_answers():
        assert recs, kwargs


def test_guide_leaf_refuses_answers_without_the_attributes():
    with pytest.raises(TypeError, match="answers must carry"):
        guide_leaf(SimpleNamespace(discrete=True))
    assert (
        guide_leaf(
            SimpleNamespace(
                discrete=False, differentiable_f=False, reparameterizable=True, moving=True
            )
        )
        == "boundary"
    )


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
        (
            {"discrete": True, "reparameterizable": False, "support_depends_on_theta": True},
            ValueError,
            "fixed",
        ),
        ({"num_values": 4}, ValueError, "only with discrete=True"),
        (
            {"discrete": True, "reparameterizable": False, "num_values": 1},
            ValueError,
            "num_values must be an integer >= 2",
        ),
        (
            {"discrete": True, "reparameterizable": False, "num_values": 2.0},
            TypeError,
            "num_values must be an integer",
        ),
        (
            {"discrete": True, "reparameterizable": False, "num_values": True},
            TypeError,
            "num_values must be an integer",
        ),
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
    assert set(arrows) == {f"arrow-{a}-{b}" for a, b, _ in GUIDE_EDGES} | {
        "link-sf-discrete-control",
        "link-sf-continuous-control",
    }
    texts = [t.get_text() for t in ax.texts]
    for text, _, _ in GUIDE_NODES.values():
        assert text in texts
    assert texts.count("yes") == texts.count("no") == len(GUIDE_QUESTIONS)
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
