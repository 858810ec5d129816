"""The framework of the implement-it exercises (companion.exercises._core).

Each expectation is shown to pass a correct function and to catch the mistake it is for,
with the message a student would read; the statistical ones are shown calibrated (a correct
answer is refused at about the stated rate) and to have power.
"""

import math

import pytest
import torch

from companion.exercises import ExerciseFailure, Verdict, exercise

E_HALF = math.exp(0.5)  # E[exp(x)], x ~ N(0, 1)
VAR_EXP = math.e**2 - math.e  # Var[exp(x)]


def check_mean_of_exp(fn, **options):
    """A checker as the chapters write them: E[exp(x)] from ``fn(num_samples)``."""
    with exercise("mean of exp", fn, argument="fn", **options) as ex:
        one = ex.call(100)
        ex.expect_tensor(one, shape=(), what="the estimate")
        draws = ex.repeat(lambda: ex.call(100), 1000)
        ex.expect_mean(
            draws, E_HALF, what="your estimates", mistakes={"forgetting the exponential": 0.0}
        )
        ex.expect_variance(draws, at_most=1.3 * VAR_EXP / 100, what="your estimates")
    return ex.verdict


def correct(n):
    return torch.exp(torch.randn(n)).mean()


def test_a_correct_function_passes_with_what_was_verified(capsys):
    verdict = check_mean_of_exp(correct)
    assert isinstance(verdict, Verdict) and verdict.passed and verdict.attempted
    assert verdict.resolution <= 0.1
    out = capsys.readouterr().out
    assert out.startswith("✓ mean of exp: correct") and "unbiased" in out
    assert "would catch a bias of" in out and "seeded with 0" in out


def test_a_biased_function_is_caught_and_the_known_mistake_named():
    with pytest.raises(ExerciseFailure, match=r"biased.*forgetting the exponential"):
        check_mean_of_exp(lambda n: torch.randn(n).mean())
    # A bias of 10% of the answer is caught (the resolution is about 2%) ...
    with pytest.raises(ExerciseFailure, match="biased") as err:
        check_mean_of_exp(lambda n: 1.1 * correct(n))
    assert "forgetting" not in str(err.value)  # ... and not blamed on the wrong mistake


def test_the_variance_test_catches_an_estimator_with_too_much_variance():
    noisy = lambda n: correct(n) + 0.5 * torch.randn(())  # noqa: E731  unbiased, noisier
    with pytest.raises(ExerciseFailure, match="variance far above"):
        check_mean_of_exp(noisy)


def test_shape_type_and_nan_are_reported_in_the_students_terms():
    with pytest.raises(ExerciseFailure, match=r"wrong shape: the estimate should have shape \(\)"):
        check_mean_of_exp(lambda n: torch.exp(torch.randn(n)))
    with pytest.raises(ExerciseFailure, match=r"should be a torch.Tensor, got float"):
        check_mean_of_exp(lambda n: float(correct(n)))
    with pytest.raises(ExerciseFailure, match="NaN or inf"):
        check_mean_of_exp(lambda n: torch.tensor(float("nan")))
    with pytest.raises(ExerciseFailure, match="raised ZeroDivisionError"):
        check_mean_of_exp(lambda n: 1 / 0)


def test_a_stub_is_not_attempted_and_does_not_raise(capsys):
    def stub(n):
        raise NotImplementedError("write this function")

    verdict = check_mean_of_exp(stub)
    assert not verdict.attempted and not verdict.passed
    assert "not attempted yet" in capsys.readouterr().out


def test_the_checker_is_reproducible_and_leaves_the_callers_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = check_mean_of_exp(correct, verbose=False)
    after = torch.rand(3)
    assert torch.equal(after, expected), "the checker consumed the caller's random stream"
    second = check_mean_of_exp(correct, verbose=False)
    assert first.message == second.message and first.lines == second.lines


def test_in_place_modification_of_an_input_is_caught():
    def check(fn):
        with exercise("centre", fn, argument="fn") as ex:
            x = torch.arange(4.0)
            ex.expect_close(ex.call(x), x - 1.5, what="the centred values")
        return ex.verdict

    def in_place(x):
        x -= x.mean()
        return x

    assert check(lambda x: x - x.mean()).passed
    with pytest.raises(ExerciseFailure, match="modifies its input in place"):
        check(in_place)


def test_expect_close_names_a_known_mistake():
    def check(fn):
        with exercise("negate", fn, argument="fn") as ex:
            x = torch.tensor([1.0, -2.0])
            ex.expect_close(ex.call(x), -x, what="the result", mistakes={"a sign error": x})
        return ex.verdict

    with pytest.raises(ExerciseFailure, match="this is what a sign error gives"):
        check(lambda x: x.clone())


def test_expect_grad_catches_a_detached_or_sampled_path():
    def check(fn):
        with exercise("path", fn, argument="fn") as ex:
            theta = torch.tensor([0.5, 1.5], requires_grad=True)
            ex.expect_grad(ex.call(theta), theta, what="your sample")
        return ex.verdict

    normal = torch.distributions.Normal
    assert check(lambda t: normal(t[0], t[1]).rsample((5,))).passed
    with pytest.raises(ExerciseFailure, match="gradient does not reach θ"):
        check(lambda t: normal(t[0], t[1]).sample((5,)))
    with pytest.raises(ExerciseFailure, match="gradient does not reach θ"):
        check(lambda t: (t[0] + t[1] * torch.randn(5)).detach())
    with pytest.raises(ExerciseFailure, match="gradient does not reach θ"):
        check(lambda t: t[0].detach() + 0 * t[1] + torch.randn(5))  # zero gradient


def test_fresh_draws_and_reproducibility_are_checked():
    def check(fn):
        with exercise("draws", fn, argument="fn") as ex:
            ex.expect_fresh_draws(lambda: ex.call(3), what="your draws")
            ex.expect_reproducible(lambda: ex.call(3), what="your draws")
        return ex.verdict

    import numpy as np

    def seeds_itself(n):
        torch.manual_seed(0)
        return torch.randn(n)

    assert check(lambda n: torch.randn(n)).passed
    with pytest.raises(ExerciseFailure, match=r"the same on every call.*seed itself"):
        check(seeds_itself)
    with pytest.raises(ExerciseFailure, match=r"not reproducible under torch.manual_seed"):
        check(lambda n: torch.from_numpy(np.random.default_rng().standard_normal(n)))


@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused_naming_the_argument(bad):
    with pytest.raises(TypeError, match="fn must be your function"):
        check_mean_of_exp(bad)


@pytest.mark.parametrize("bad", [0.0, 0.5, 1.0, -1e-3, 1])
def test_a_bad_false_alarm_rate_is_refused(bad):
    with pytest.raises(ValueError, match="false_alarm"):
        check_mean_of_exp(correct, false_alarm=bad)


@pytest.mark.slow
def test_the_mean_and_variance_tests_refuse_a_correct_answer_at_about_their_rate():
    """Calibration: at a false-alarm rate of 0.05, 400 checkers (different seeds) of a correct
    function fail about 20 times (a 10⁻⁶ binomial window for each test: 4 to 42)."""
    failures = {"biased": 0, "variance": 0}

    def check(fn, seed):
        with exercise("calibration", fn, argument="fn", seed=seed, false_alarm=0.05) as ex:
            draws = ex.repeat(lambda: ex.call(20), 200)
            try:
                ex.expect_mean(draws, 0.0, what="estimates", scale=1.0)
            except ExerciseFailure:
                failures["biased"] += 1
            try:
                ex.expect_variance(draws, at_most=1 / 20, what="estimates")
            except ExerciseFailure:
                failures["variance"] += 1

    for seed in range(400):
        check(lambda n: torch.randn(n).mean(), seed)
    assert 4 <= failures["biased"] <= 42, failures
    assert 4 <= failures["variance"] <= 42, failures


def test_too_few_repeats_is_the_checker_authors_error():
    with (
        pytest.raises(ValueError, match="at least 100"),
        exercise("few", correct, argument="fn", verbose=False) as ex,
    ):
        ex.expect_mean(torch.zeros(10), 0.0, what="x", scale=1.0)


# ------------------------------------------------------------ the package's public surface
import inspect  # noqa: E402

import companion.exercises as exercises  # noqa: E402

CHECKERS = [n for n in exercises.__all__ if n.startswith("check_")]


@pytest.mark.parametrize("name", exercises.__all__)
def test_every_public_name_has_a_docstring(name):
    assert len(inspect.getdoc(getattr(exercises, name)) or "") > 40, name


@pytest.mark.parametrize("name", CHECKERS)
@pytest.mark.parametrize("bad", [None, 3, "f", torch.zeros(2)])
def test_every_checker_refuses_a_non_callable_naming_its_parameter(name, bad):
    checker = getattr(exercises, name)
    param = next(iter(inspect.signature(checker).parameters))
    with pytest.raises(TypeError, match=param):
        checker(bad)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": 3}, "name must be a non-empty string"),
        ({"argument": None}, "argument must be a non-empty string"),
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"verbose": 1}, "verbose must be True or False"),
    ],
)
def test_exercise_refuses_bad_options_naming_them(options, message):
    arguments = {"name": "x", "fn": correct, "argument": "fn"} | options
    with pytest.raises(TypeError, match=message):
        exercise(**arguments)


def test_the_checker_runs_on_one_thread_and_restores_the_setting():
    seen = []

    def fn(n):
        seen.append(torch.get_num_threads())
        return correct(n)

    before = torch.get_num_threads()
    check_mean_of_exp(fn, verbose=False)
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(ExerciseFailure):
        check_mean_of_exp(lambda n: torch.randn(n).mean(), verbose=False)
    assert torch.get_num_threads() == before


def test_a_known_mistake_is_named_even_when_every_draw_agrees():
    def check(fn):
        with exercise("constant", fn, argument="fn", verbose=False) as ex:
            draws = ex.repeat(lambda: ex.call(), 100)
            ex.expect_mean(draws, 1.0, what="values", mistakes={"returning zero": 0.0})
        return ex.verdict

    with pytest.raises(ExerciseFailure, match="returning zero"):
        check(lambda: torch.tensor(0.0))


def test_the_verdict_shows_nothing_more_in_a_notebook_and_a_short_repr():
    verdict = check_mean_of_exp(correct, verbose=False)
    assert repr(verdict) == "<Verdict 'mean of exp': passed>"
    assert verdict._ipython_display_() is None  # the printed message is the whole display


def test_float32_rounding_is_diagnosed_not_shown_as_equal_numbers():
    def check(fn):
        with exercise("log", fn, argument="fn", verbose=False) as ex:
            x = torch.tensor([1e-4, 0.5, 2.0], dtype=torch.float64)
            ex.expect_close(ex.call(x), torch.log(x) + 1.0, what="the result", rtol=1e-9)
        return ex.verdict

    with pytest.raises(ExerciseFailure, match="float32 rounding"):
        check(lambda x: torch.log(x) + torch.tensor(1.0).to(x.dtype) + 1e-7 * x)
    with pytest.raises(ExerciseFailure, match="Your result is float32"):
        check(lambda x: (torch.log(x) + 1.0).float())


def test_returning_an_accumulating_gradient_is_named():
    def check(fn):
        with exercise("grad", fn, argument="fn", verbose=False) as ex:
            theta = torch.tensor([0.5])
            ex.expect_fresh_draws(lambda: ex.call(theta.clone()), what="the estimate")
        return ex.verdict

    grad = torch.zeros(1)

    def accumulates(theta):
        grad.add_(torch.randn(1))
        return grad

    with pytest.raises(ExerciseFailure, match="same tensor object on every call"):
        check(accumulates)


def test_switching_requires_grad_on_an_input_is_caught():
    def check(fn):
        with exercise("flag", fn, argument="fn", verbose=False) as ex:
            ex.call(torch.tensor([0.5]))
        return ex.verdict

    with pytest.raises(ExerciseFailure, match="switched requires_grad"):
        check(lambda t: t.requires_grad_(True) * 2)


def test_rounding_differences_of_a_constant_coordinate_are_not_a_bias():
    """An estimator exact in one coordinate (every draw equal up to rounding) is not biased."""

    def check(fn):
        with exercise("rounding", fn, argument="fn", verbose=False) as ex:
            draws = ex.repeat(lambda: ex.call(), 200)
            ex.expect_mean(
                draws, torch.tensor([0.1 + 0.2, 1.0], dtype=torch.float64), what="values"
            )
        return ex.verdict

    third = torch.tensor(0.1, dtype=torch.float64) + torch.tensor(0.2, dtype=torch.float64)

    def exact_but_rounded():
        return torch.stack([third * (1 + 2e-16), 1.0 + torch.randn((), dtype=torch.float64) / 100])

    assert check(exact_but_rounded).passed
    with pytest.raises(ExerciseFailure, match="gave the same value"):
        check(lambda: torch.stack([third + 1e-6, 1.0 + torch.randn((), dtype=torch.float64) / 100]))
