"""The input checks every public function shares: each message names the argument, what was
expected and what was given."""

import numpy as np
import pytest
import torch

from companion._validation import (
    as_tensor,
    check_allocation,
    check_bool,
    check_callable,
    check_distribution,
    check_finite,
    check_positive_int,
    check_probability,
    check_real,
    check_samples,
    describe,
    evaluate_f,
    is_boolean,
)


def test_describe_gives_type_and_shape():
    assert describe(torch.zeros(2, 3)) == "a tensor of shape (2, 3) and dtype torch.float32"
    assert describe(np.zeros(4)) == "an array of shape (4,) and dtype float64"
    assert describe("x" * 100).startswith("str 'xxx") and describe("x" * 100).endswith("...")


def test_as_tensor_converts_and_detaches():
    t = torch.ones(2, requires_grad=True)
    assert not as_tensor("v", t).requires_grad
    assert as_tensor("v", [1, 2]).dtype == torch.get_default_dtype()
    assert as_tensor("v", 3, dtype=torch.float64).dtype == torch.float64
    for bad in ("1.0", None, [1, "a"], 1 + 2j):
        with pytest.raises(TypeError, match="v must be"):
            as_tensor("v", bad)


def test_check_finite_points_at_the_first_bad_entry():
    with pytest.raises(
        ValueError,
        match=r"v must be finite, got 2 non-finite value\(s\) "
        r"\(first at index \(1,\): nan\)",
    ):
        check_finite("v", torch.tensor([0.0, float("nan"), float("inf")]))


def test_check_samples_wants_samples_along_dimension_zero():
    assert check_samples("v", [1.0, 2.0]).shape == (2,)
    with pytest.raises(ValueError, match="got a scalar"):
        check_samples("v", 1.0)
    with pytest.raises(ValueError, match="at least 3 samples along dimension 0, got 2"):
        check_samples("v", [[1.0], [2.0]], min_samples=3)


@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (2.0, TypeError), (True, TypeError), ("3", TypeError)]
)
def test_check_positive_int(value, error):
    assert check_positive_int("n", 5) == 5
    with pytest.raises(error, match="n must be an integer >= 1"):
        check_positive_int("n", value)


def test_check_probability():
    assert check_probability("p", 0.5) == 0.5
    assert check_probability("p", 1, open_interval=False) == 1.0
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\), got 1.0"):
        check_probability("p", 1.0)
    with pytest.raises(TypeError, match="p must be a number"):
        check_probability("p", "0.5")


def test_check_distribution_and_callable():
    normal = torch.distributions.Normal(0.0, 1.0)
    assert check_distribution("dist", normal) is normal
    with pytest.raises(
        TypeError, match=r"dist must be a torch\.distributions\.Distribution, got tuple"
    ):
        check_distribution("dist", (0.0, 1.0))
    assert check_callable("f", len) is len
    with pytest.raises(TypeError, match=r"f must be callable, got float 3\.0"):
        check_callable("f", 3.0)


@pytest.mark.parametrize(
    "value", ["no", "False", "", 0, 1, None, 1.0, np.bool_(True), torch.tensor(True)]
)
def test_check_bool_takes_only_true_and_false(value):
    assert check_bool("flag", True) is True and check_bool("flag", False) is False
    with pytest.raises(TypeError, match="flag must be True or False, got"):
        check_bool("flag", value)


def test_check_allocation_refuses_what_cannot_fit():
    check_allocation("num_samples", 1000, 8 * 1000)  # 8 kB: fine
    with pytest.raises(
        ValueError,
        match=r"num_samples=1000000000000 would need about "
        r"7.45e\+03 GiB for one tensor alone, more than",
    ):
        check_allocation("num_samples", 10**12, 8 * 10**12)


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (np.bool_(False), True),
        (torch.tensor([True]), True),
        (np.array([False, True]), True),
        ([True, False], True),
        (((True,), (False,)), True),
        (1, False),
        (1.0, False),
        ([1, 0], False),
        ([True, 1.5], False),
        ([[1], [2, 3]], False),
        ("True", False),
        (None, False),
        (torch.zeros(2), False),
    ],
)
def test_is_boolean(value, expected):
    assert is_boolean(value) is expected


def test_check_real():
    assert check_real("x", 2) == 2.0 and isinstance(check_real("x", 2), float)
    assert check_real("x", np.float32(0.5)) == 0.5
    assert check_real("x", torch.tensor(1.5, requires_grad=True)) == 1.5
    assert check_real("x", np.array([3.0])) == 3.0
    assert check_real("x", 0.0, minimum=0.0) == 0.0
    for bad, error, match in [
        (True, TypeError, "x must be a real number, got bool"),
        ("1", TypeError, "x must be a real number, got str"),
        (None, TypeError, "x must be a real number"),
        (1 + 1j, TypeError, "x must be a real number"),
        (torch.zeros(2), TypeError, "x must be a real number, got a tensor of shape"),
        (torch.tensor(1j), TypeError, "x must be real"),
        (float("nan"), ValueError, "x must be finite, got nan"),
        (-float("inf"), ValueError, "x must be finite"),
    ]:
        with pytest.raises(error, match=match):
            check_real("x", bad)
    with pytest.raises(ValueError, match=r"x must be > 0, got 0\.0"):
        check_real("x", 0.0, positive=True)
    with pytest.raises(ValueError, match=r"x must be >= 1, got 0\.5"):
        check_real("x", 0.5, minimum=1)


def test_evaluate_f_checks_what_f_returns():
    x = torch.arange(4.0, dtype=torch.float64)[:, None]  # (N, 1)
    values = evaluate_f(lambda x: x[:, 0] ** 2, x, 4)
    assert values.shape == (4,) and values.dtype == torch.float64
    assert evaluate_f(lambda x: x[:, 0] > 1, x, 4).dtype == torch.float64  # bools -> dtype of x
    assert evaluate_f(lambda x: x, x, 4, scalar=False).shape == (4, 1)
    for f, error, match in [
        (lambda x: x[:, 0].tolist(), TypeError, r"f must return a tensor of shape \(4,\)"),
        (lambda x: x[:, 0] * 1j, TypeError, "f must return real values"),
        (lambda x: x, ValueError, r"f must return one value per sample, shape \(4,\), got shape"),
        (lambda x: x[:3, 0], ValueError, "f must return one value per sample"),
        (lambda x: x[:, 0] / 0.0, ValueError, r"f\(x\) must be finite"),
    ]:
        with pytest.raises(error, match=match):
            evaluate_f(f, x, 4)
