"""Every public callable, fed bad input: a clear error that names the argument, and no change.

A table of targets: for each function, class and public method of ``companion.__all__``, a
small valid call and, for each parameter, a catalogue of bad values chosen by the parameter's
kind (tensors, counts, flags, real numbers, callables, distributions, paths, ...). A bad call
must raise ``ValueError`` or ``TypeError`` whose message names the parameter as the caller
passed it (the keyword name for methods), within a few seconds (impossible sizes are refused
before allocating), and must leave every tensor argument, the model's weights, every ``.grad``
and the Axes exactly as they were.

- :func:`test_bad_inputs_get_a_clear_error` asks this of at least 97% of the catalogue and
  prints every failure;
- :func:`test_clearly_invalid_values_are_never_accepted` asks that NaN, inf, complex values,
  negative sizes and non-bool flags always raise, without changing anything.

A bad value is left out of a catalogue only where it is valid for that parameter; a comment
says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import inspect
import io
import math
import re
import signal
import struct
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Gamma, Normal, Poisson, Uniform

import companion as C

N = 16  # Monte Carlo draws in every valid call: small and fast
HUGE = 10**12  # a size that cannot fit in memory
TIME_LIMIT_S = 10.0  # a bad call still running after this long has hung
SLOW_S = 3.0  # a bad call must be refused within this many seconds
TARGET_FRACTION = 0.97
CUDA_MISSING = not torch.cuda.is_available()


# ---------------------------------------------------------------- the catalogue's vocabulary


@dataclass(frozen=True)
class Bad:
    """One bad value for a parameter; ``clear`` marks values that must always raise."""

    label: str
    value: object
    clear: bool = False


class Derived:
    """A bad value made afresh for each call, from the parameter's valid value."""

    def __init__(self, make):
        self.make = make


def fresh(make):
    """A bad value made afresh for each call (a tensor, a generator) without the valid value."""
    return Derived(lambda valid: make())


def _float_tensor(valid) -> torch.Tensor:
    t = valid if isinstance(valid, torch.Tensor) else torch.as_tensor(np.asarray(valid))
    t = t.detach().clone()
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def _like(valid, t: torch.Tensor):
    """``t`` in the container type of ``valid``: NumPy in, NumPy out."""
    return t.numpy() if isinstance(valid, np.ndarray) else t


def nan_of(valid):
    t = _float_tensor(valid)
    t.view(-1)[0] = math.nan
    return _like(valid, t)


def inf_of(valid):
    t = _float_tensor(valid)
    t.view(-1)[-1] = math.inf
    return _like(valid, t)


def complex_of(valid):
    t = _float_tensor(valid)
    return _like(valid, t.to(torch.complex128 if t.dtype == torch.float64 else torch.complex64))


def int_of(valid):
    return _like(valid, _float_tensor(valid).round().long())


def tensor_bads(*wrong, none=True, ints=True, empty=True, extra=()):
    """None, a string, NaN, inf, complex, empty, ``wrong`` shapes, an int tensor.

    ``wrong`` holds tensors (or arrays) of a wrong shape; ``ints=False`` where integers are
    valid numbers, ``none=False`` where None is valid, ``empty=False`` where an empty tensor
    is a valid (empty) input.
    """
    bads = [Bad("None", None)] if none else []
    bads += [
        Bad("a string", "abc"),
        Bad("a NaN tensor", Derived(nan_of), True),
        Bad("an inf tensor", Derived(inf_of), True),
        Bad("a complex tensor", Derived(complex_of), True),
    ]
    if empty:
        bads.append(Bad("an empty tensor", Derived(lambda v: _like(v, torch.empty(0)))))
    for w in wrong:
        bads.append(
            Bad(
                f"shape {tuple(w.shape)}",
                fresh(lambda w=w: w.copy() if isinstance(w, np.ndarray) else w.clone()),
            )
        )
    if ints:
        bads.append(Bad("an int tensor", Derived(int_of)))
    return bads + list(extra)


def count_bads(minimum=1, *, huge=True, none=True, extra=()):
    """Counts: below the minimum, -1, 2.5, True, "3", None, NaN, and HUGE (impossible sizes)."""
    bads = [Bad(str(v), v) for v in range(max(minimum - 2, 0), minimum) if v != -1]
    bads += [
        Bad("-1", -1, True),
        Bad("2.5", 2.5),
        Bad("True", True),
        Bad('"3"', "3"),
        Bad("NaN", math.nan, True),
    ]
    if none:
        bads.append(Bad("None", None))
    if huge:
        bads.append(Bad("10**12", HUGE))
    return bads + list(extra)


def flag_bads():
    """Flags must be exactly True or False."""
    return [Bad('"no"', "no", True), Bad("1", 1, True), Bad("None", None, True)]


def real_bads(*, positive=False, none=True, extra=()):
    """Real numbers: NaN, inf, complex, True, a string, None; -1 and 0 where positive."""
    bads = [
        Bad("NaN", math.nan, True),
        Bad("inf", math.inf, True),
        Bad("-inf", -math.inf, True),
        Bad("1+1j", 1 + 1j, True),
        Bad("True", True),
        Bad('"x"', "x"),
    ]
    if positive:
        bads += [Bad("-1", -1.0), Bad("0", 0.0)]
    if none:
        bads.append(Bad("None", None))
    return bads + list(extra)


def probability_bads(extra=()):
    return real_bads(
        extra=[Bad("0", 0.0), Bad("1", 1.0), Bad("1.5", 1.5), Bad("-0.5", -0.5), *extra]
    )


def callable_bads(*returns):
    """Not callables at all, then callables that return the wrong thing."""
    return [Bad("3", 3), Bad('"f"', "f"), Bad("None", None), *returns]


def returning(label, fn, clear=False):
    return Bad(f"a callable returning {label}", fn, clear)


def label_bads():
    return [Bad("None", None), Bad("3", 3)]


def rate_bads(extra=()):
    """A false-alarm rate where None is valid (the chapter's share of its budget)."""
    return real_bads(
        none=False,
        extra=[Bad("0", 0.0), Bad("1", 1.0), Bad("1.5", 1.5), Bad("-0.5", -0.5), *extra],
    )


def scale_bads():
    """A check's scale, where None is valid (max |exact|): a finite number > 0."""
    return real_bads(
        positive=True, none=False, extra=[Bad("10**400, too large for a float", 10**400)]
    )


# Bad return values of f, for every routine that evaluates f on a batch of N samples.
F_RETURNS = (
    returning("a list", lambda x: x.tolist()),
    returning("one value for the whole batch", lambda x: x.sum()),
    returning("shape (N, 2)", lambda x: torch.stack([x.reshape(x.shape[0], -1).sum(1)] * 2, 1)),
    returning("NaN", lambda x: x.reshape(x.shape[0], -1).sum(1) * math.nan, True),
    returning("inf", lambda x: x.reshape(x.shape[0], -1).sum(1) + math.inf, True),
    returning(
        "complex values", lambda x: x.reshape(x.shape[0], -1).sum(1).to(torch.complex64), True
    ),
)
# What the pathwise estimator must also refuse: its gradient would be a silent zero or wrong.
PATHWISE_F_RETURNS = (
    returning("integers", lambda x: (x > 1).long()),
    returning("booleans", lambda x: x > 1),
    returning("a detached x", lambda x: x.detach() ** 2),
    returning("values centred over the batch", lambda x: x**2 - (x**2).mean()),
    returning("a step function of x (floor)", torch.floor),
)
NOT_DISTRIBUTIONS = (
    Bad("None", None),
    Bad("3", 3),
    Bad('"Normal"', "Normal"),
    Bad("the class Normal", Normal),
    Bad("a dist_fn", lambda t: Normal(t, 1.0)),
    Bad("a tensor", fresh(lambda: torch.zeros(2))),
)


def normal_fn(t):
    return Normal(t[..., 0], t[..., 1])


def square(x):
    return x**2


# ---------------------------------------------------------------- the table


@dataclass
class Target:
    """A public callable, a valid call, and the bad values of each parameter.

    ``func`` is the callable, or a method name when the valid arguments hold ``"self"``;
    ``valid()`` returns fresh valid arguments by name; ``positional`` names the arguments
    passed by position (the rest are passed by keyword).
    """

    name: str
    func: object
    valid: object
    positional: tuple = ()
    bad: dict = field(default_factory=dict)


def call(target: Target, args: dict):
    """Call the target; a chapter's budget it opened (start_chapter) is closed again, so that
    no budget leaks into the table's later calls or into other tests."""
    args = dict(args)
    func = getattr(args.pop("self"), target.func) if "self" in args else target.func
    positional = [args.pop(name) for name in target.positional]
    try:
        return func(*positional, **args)
    finally:
        C.end_chapter()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path) -> dict:
    """Three tiny images per split in MNIST's IDX format, and their checksums."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for images, labels in (
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ):
        _write_idx(root / images, rng.integers(0, 256, size=(3, 28, 28)))
        _write_idx(root / labels, rng.integers(0, 10, size=(3,)))
    return {p.name: ("sha256", hashlib.sha256(p.read_bytes()).hexdigest()) for p in root.iterdir()}


def _checkpoint(path: Path, model, x, **options) -> Path:
    with contextlib.redirect_stderr(io.StringIO()):
        C.train(
            model,
            x,
            x[:2],
            epochs=1,
            batch_size=4,
            lr=1e-2,
            progress=False,
            checkpoint=path,
            **options,
        )
    return path


def build_targets(tmp: Path) -> list[Target]:  # one table, read top to bottom
    torch.manual_seed(0)
    grey = torch.rand(8, 4)  # grey levels of 8 images of 4 pixels
    binary = (grey > 0.5).float()

    def theta():  # requires grad: a failed call must leave its .grad unset
        return torch.tensor([1.0, 1.5], requires_grad=True)

    def vae(hidden=3):
        torch.manual_seed(1)
        return C.VAE(data_dim=4, latent_dim=2, hidden_dim=hidden)

    def images():
        return binary[:3].clone()

    def axes():
        return plt.subplots()[1]

    def estimate():
        return C.summarize(torch.linspace(-1.0, 1.0, N))

    T = []

    # ------------------------------------------------------------ montecarlo
    values_bads = tensor_bads(
        torch.tensor(1.0),
        torch.ones(1),  # a scalar; one sample, no standard error
        ints=False,  # integer (and boolean) samples are numbers: an indicator's mean
        extra=[Bad("a ragged list", [[1.0], [1.0, 2.0]]), Bad("a dict", {"a": 1.0})],
    )
    for func in (C.summarize, C.running_mean, C.sample_variance, C.leave_one_out):
        T.append(
            Target(
                func.__name__,
                func,
                lambda: {"values": torch.randn(N, 2)},
                ("values",),
                {"values": values_bads},
            )
        )
    dist = lambda: Normal(torch.tensor(1.0), torch.tensor(2.0))  # noqa: E731
    f_bads = callable_bads(
        *F_RETURNS[:2], returning("fewer rows than samples", lambda x: x[:1]), *F_RETURNS[3:]
    )
    T.append(
        Target(
            "expectation",
            C.expectation,
            lambda: {"f": square, "dist": dist(), "num_samples": N},
            ("f", "dist", "num_samples"),
            {"f": f_bads, "dist": list(NOT_DISTRIBUTIONS), "num_samples": count_bads(2)},
        )
    )
    T.append(
        Target(
            "antithetic_expectation",
            C.antithetic_expectation,
            lambda: {"f": square, "dist": dist(), "num_pairs": N},
            ("f", "dist", "num_pairs"),
            {
                "f": f_bads,
                "dist": [
                    *NOT_DISTRIBUTIONS,
                    Bad(
                        "a distribution without icdf",
                        fresh(lambda: Gamma(torch.tensor(2.0), torch.tensor(1.0))),
                    ),
                ],
                "num_pairs": count_bads(2),
            },
        )
    )
    cv_bads = tensor_bads(
        torch.zeros(N, 2), torch.zeros(N + 1), torch.ones(1), ints=False
    )  # integer values are numbers
    T.append(
        Target(
            "control_variate",
            C.control_variate,
            lambda: {
                "values": torch.randn(N),
                "control": torch.randn(N),
                "control_mean": 0.0,
                "coef": 0.5,
            },
            ("values", "control", "control_mean"),
            {
                "values": cv_bads,
                "control": cv_bads,
                "control_mean": real_bads(
                    extra=[
                        Bad("shape (2,)", fresh(lambda: torch.zeros(2))),
                        Bad("a NaN tensor", fresh(lambda: torch.tensor(math.nan)), True),
                    ]
                ),
                # None is valid: the estimated optimal coefficient
                "coef": real_bads(
                    none=False,
                    extra=[
                        Bad("shape (5,): one per sample", fresh(lambda: torch.ones(5))),
                        Bad("a one-element list", [0.5]),
                    ],
                ),
            },
        )
    )
    record_bads = [
        Bad("None", None),
        Bad("a string", "abc"),
        Bad("a list", [0.0, 0.0]),
        Bad("a complex tensor", Derived(complex_of), True),
        Bad("an int tensor", Derived(int_of)),
        # NaN and inf are not catalogued: an Estimate is a record, and running_mean's
        # stderr holds NaN by design (undefined for one sample); finiteness is checked where
        # an Estimate is used (plot_running_mean, check_close).
    ]
    T.append(
        Target(
            "Estimate",
            C.Estimate,
            lambda: {"mean": torch.zeros(2), "stderr": torch.ones(2), "samples": torch.zeros(4, 2)},
            (),
            {
                "mean": [*record_bads, Bad("shape (3,)", fresh(lambda: torch.zeros(3)))],
                "stderr": [*record_bads, Bad("shape (3,)", fresh(lambda: torch.ones(3)))],
                "samples": [
                    *record_bads,
                    Bad("shape (4, 3)", fresh(lambda: torch.zeros(4, 3))),
                    Bad("a scalar", fresh(lambda: torch.tensor(0.0))),
                ],
            },
        )
    )
    T.append(
        Target(
            "Estimate.confidence_interval",
            "confidence_interval",
            lambda: {"self": estimate(), "level": 0.9},
            ("level",),
            {"level": probability_bads()},
        )
    )

    # ------------------------------------------------------------ estimators
    theta_bads = tensor_bads(torch.ones(1, 2), torch.tensor(1.0), extra=[Bad("a list", [1.0, 1.5])])
    theta_for_normal = [
        *theta_bads,
        Bad(
            "a negative scale, outside dist_fn's constraint",
            fresh(lambda: torch.tensor([1.0, -1.0])),
        ),
    ]
    dist_fn_bads = [
        Bad("3", 3),
        Bad('"normal"', "normal"),
        Bad("None", None),
        Bad("a distribution, not a function", fresh(lambda: Normal(0.0, 1.0))),
        returning("a tensor", lambda t: t),
        returning("an unbatched distribution (t[0], t[1])", lambda t: Normal(t[0], t[1])),
    ]
    detached_dist_fn = returning(
        "a distribution of a detached theta",
        lambda t: Normal(t[..., 0].detach(), t[..., 1].detach()),
    )

    def estimator_valid():
        return {"f": square, "dist_fn": normal_fn, "theta": theta(), "num_samples": N}

    positional = ("f", "dist_fn", "theta", "num_samples")
    baseline_bads = [
        Bad('"mean"', "mean"),
        Bad("NaN", math.nan, True),
        Bad("inf", math.inf, True),
        Bad("1j", 1j, True),
        Bad("True", True),
        Bad("shape (3,)", fresh(lambda: torch.ones(3))),
        Bad("a NaN tensor", fresh(lambda: torch.tensor([0.0, math.nan])), True),
        Bad("a list", [0.1, 0.2]),
    ]
    T.append(
        Target(
            "score_function",
            C.score_function,
            lambda: {**estimator_valid(), "baseline": None},
            positional,
            {
                "f": callable_bads(*F_RETURNS),  # integer f is fine: it is only evaluated
                "dist_fn": [*dist_fn_bads, detached_dist_fn],
                "theta": theta_for_normal,
                "num_samples": count_bads(2),
                "baseline": baseline_bads,
            },
        )
    )
    T.append(
        Target(
            "pathwise",
            C.pathwise,
            estimator_valid,
            positional,
            {
                "f": callable_bads(*F_RETURNS, *PATHWISE_F_RETURNS),
                "dist_fn": [
                    *dist_fn_bads,
                    detached_dist_fn,
                    returning("a distribution without rsample", lambda t: Poisson(t[..., 0])),
                ],
                "theta": theta_for_normal,
                "num_samples": count_bads(2),
            },
        )
    )
    T.append(
        Target(
            "finite_difference",
            C.finite_difference,
            lambda: {**estimator_valid(), "step": 0.1, "common_random_numbers": True},
            positional,
            # integer or detached f is fine: f is only evaluated; an unbatched
            # dist_fn is fine: it is called on single θ's
            {
                "f": callable_bads(*F_RETURNS),
                "dist_fn": dist_fn_bads[:5],
                "theta": theta_for_normal,
                "num_samples": count_bads(2),
                "step": real_bads(
                    positive=True,
                    extra=[
                        Bad("1e-30, below θ's resolution", 1e-30),
                        Bad("5.0, θ - h outside dist_fn's constraint", 5.0),
                    ],
                ),
                "common_random_numbers": flag_bads(),
                "scheme": [
                    Bad('"backward"', "backward"),
                    Bad("None", None),
                    Bad("1", 1),
                    Bad('"Central"', "Central"),
                ],
            },
        )
    )
    row_sum = lambda t: t.sum(1)  # noqa: E731
    T.append(
        Target(
            "per_sample_gradients",
            C.per_sample_gradients,
            lambda: {"fn": lambda t: (t**2).sum(1), "theta": theta(), "num_samples": N},
            ("fn", "theta", "num_samples"),
            {
                "fn": callable_bads(
                    returning("a list", lambda t: row_sum(t).tolist()),
                    returning("one value", lambda t: t.sum()),
                    returning("NaN", lambda t: row_sum(t) * math.nan, True),
                    returning("complex values", lambda t: row_sum(t).to(torch.complex64), True),
                    returning("integers", lambda t: row_sum(t).long()),
                    returning("a detached theta", lambda t: row_sum(t.detach())),
                    returning("values mixing the copies", lambda t: row_sum(t) - row_sum(t).mean()),
                ),
                "theta": theta_bads,
                "num_samples": count_bads(2),
            },
        )
    )

    # ------------------------------------------------------------ baselines, surrogates
    T.append(
        Target(
            "optimal_baseline",
            C.optimal_baseline,
            lambda: {"f_values": torch.randn(N), "scores": torch.randn(N, 2)},
            ("f_values", "scores"),
            {
                "f_values": tensor_bads(torch.zeros(N, 2), torch.zeros(N + 1), ints=False),
                "scores": tensor_bads(torch.zeros(N), torch.zeros(N + 1, 2), ints=False),
                "leave_one_out": flag_bads(),
            },
        )
    )
    T.append(
        Target(
            "centre",
            C.centre,
            lambda: {
                "f_values": torch.randn(N),
                "baseline": torch.tensor([0.0, 1.0]),
                "num_coordinates": 2,
            },
            ("f_values", "baseline"),
            # an empty batch centred is an empty batch
            {
                "f_values": tensor_bads(torch.zeros(N, 2), empty=False),
                "baseline": baseline_bads,
                # None is valid (no coordinates); a huge count allocates nothing
                "num_coordinates": count_bads(1, huge=False, none=False),
            },
        )
    )
    T.append(
        Target(
            "score_function_surrogate",
            C.score_function_surrogate,
            lambda: {
                "log_prob": torch.randn(N, requires_grad=True),
                "f_values": torch.randn(N),
                "baseline": None,
            },
            ("log_prob", "f_values", "baseline"),
            {
                "log_prob": tensor_bads(torch.zeros(N, 2)),
                # integer and boolean rewards are numbers
                "f_values": tensor_bads(torch.zeros(N + 1), ints=False),
                "baseline": baseline_bads,
            },
        )
    )
    T.append(
        Target(
            "surrogate_objective",
            C.surrogate_objective,
            lambda: {
                "value": torch.tensor(1.0),
                "surrogate": torch.tensor(3.0, requires_grad=True),
            },
            ("value", "surrogate"),
            {
                "value": tensor_bads(torch.zeros(2), ints=False),  # an integer value shows
                "surrogate": tensor_bads(torch.zeros(2)),
            },
        )
    )

    # ------------------------------------------------------------ measure-valued, quadrature
    noise = lambda: (torch.zeros(N, 2), torch.ones(N, 2), None)  # noqa: E731
    T.append(
        Target(
            "measure_valued_gaussian_mean",
            C.measure_valued_gaussian_mean,
            lambda: {
                "f": lambda x: (x**2).sum(-1),
                "loc": torch.tensor([1.0, -0.5]),
                "scale": torch.tensor([1.0, 2.0]),
                "num_samples": N,
                "coupled": True,
                "noise": None,
            },
            ("f", "loc", "scale", "num_samples"),
            {
                "f": callable_bads(*F_RETURNS),
                "loc": tensor_bads(torch.zeros(2, 2), extra=[Bad("True", True)]),
                "scale": tensor_bads(
                    torch.ones(3),
                    ints=False,
                    extra=[
                        Bad("True", True),
                        Bad("a negative entry", fresh(lambda: torch.tensor([1.0, -1.0]))),
                        Bad("zeros", fresh(lambda: torch.zeros(2))),
                    ],
                ),
                "num_samples": count_bads(2),
                "coupled": flag_bads(),
                "noise": [  # None is valid: noise drawn from the global generator
                    Bad("3", 3),
                    Bad('"x"', "x"),
                    Bad(
                        "w_minus with coupled=True",
                        fresh(lambda: (torch.zeros(N, 2), torch.ones(N, 2), torch.ones(N, 2))),
                    ),
                    Bad(
                        "a wrong shape", fresh(lambda: (torch.zeros(N, 3), torch.ones(N, 3), None))
                    ),
                    Bad(
                        "NaN eps",
                        fresh(lambda: (torch.full((N, 2), math.nan), torch.ones(N, 2), None)),
                        True,
                    ),
                    Bad(
                        "negative Rayleigh draws",
                        fresh(lambda: (torch.zeros(N, 2), -torch.ones(N, 2), None)),
                    ),
                    Bad("a generator", fresh(lambda: (t for t in noise()))),
                ],
            },
        )
    )
    T.append(
        Target(
            "gauss_hermite",
            C.gauss_hermite,
            lambda: {"num_nodes": 10},
            ("num_nodes",),
            {"num_nodes": count_bads(2)},
        )
    )
    g_bads = callable_bads(
        returning("one value", lambda x: x.sum()),
        returning("a list", lambda x: x.tolist()),
        returning("NaN", lambda x: x * math.nan, True),
        returning("complex values", lambda x: x.to(torch.complex64), True),
    )
    T.append(
        Target(
            "gaussian_expectation",
            C.gaussian_expectation,
            lambda: {
                "g": square,
                "loc": torch.tensor([0.5, 1.0]),
                "scale": torch.tensor([2.0, 1.0]),
                "num_nodes": 20,
            },
            ("g",),
            {
                "g": g_bads,
                "loc": tensor_bads(
                    torch.zeros(3), ints=False, empty=False, extra=real_bads(none=False)
                ),
                "scale": tensor_bads(
                    torch.ones(3),
                    ints=False,
                    empty=False,
                    extra=real_bads(positive=True, none=False),
                ),
                "num_nodes": count_bads(2),
            },
        )
    )
    T.append(
        Target(
            "rayleigh_expectation",
            C.rayleigh_expectation,
            lambda: {"g": square, "num_nodes": 20, "upper": 10.0},
            ("g",),
            {
                "g": g_bads,
                "num_nodes": count_bads(2),
                "upper": real_bads(positive=True, extra=[Bad("1e4", 1e4)]),
            },
        )
    )

    # ------------------------------------------------------------ problems
    T.append(
        Target(
            "normal_dist",
            C.normal_dist,
            lambda: {"theta": torch.tensor([0.5, 2.0])},
            ("theta",),
            {
                "theta": tensor_bads(
                    torch.ones(3),
                    torch.tensor(1.0),
                    extra=[
                        Bad("a list", [0.5, 2.0]),
                        Bad("a negative scale", fresh(lambda: torch.tensor([0.5, -1.0]))),
                    ],
                )
            },
        )
    )
    T.append(
        Target(
            "bernoulli_logit",
            C.bernoulli_logit,
            lambda: {"theta": torch.tensor([0.3])},
            ("theta",),
            {"theta": tensor_bads(torch.ones(2), torch.tensor(1.0))},
        )
    )
    square_variance_bads = tensor_bads(  # integers are numbers
        torch.zeros(3), ints=False, extra=[Bad("True", True)]
    )
    T.append(
        Target(
            "normal_square_variance",
            C.normal_square_variance,
            lambda: {"loc": torch.tensor([1.0, 0.5]), "scale": torch.tensor([1.0, 2.0])},
            ("loc", "scale"),
            {
                "loc": square_variance_bads,
                "scale": [
                    *square_variance_bads,
                    Bad("a negative scale", fresh(lambda: torch.tensor([1.0, -2.0]))),
                ],
            },
        )
    )
    target_bads = real_bads(extra=[Bad("-0.1", -0.1), Bad("1.5", 1.5)])
    T.append(
        Target(
            "bernoulli_toy",
            C.bernoulli_toy,
            lambda: {"target": 0.45},
            ("target",),
            {"target": target_bads},
        )
    )
    T.append(
        Target(
            "bernoulli_toy_gradient",
            C.bernoulli_toy_gradient,
            lambda: {"logit": torch.tensor([0.0, 1.0]), "target": 0.45},
            ("logit", "target"),
            # integer logits are numbers; an empty tensor gives an empty gradient
            {
                "logit": tensor_bads(ints=False, empty=False, extra=[Bad("True", True)]),
                "target": target_bads,
            },
        )
    )

    # ------------------------------------------------------------ reparam
    T.append(
        Target(
            "reparameterize",
            C.reparameterize,
            lambda: {
                "mu": torch.zeros(3, requires_grad=True),
                "log_var": torch.zeros(3, requires_grad=True),
                "eps": torch.randn(3),
            },
            ("mu", "log_var", "eps"),
            {
                "mu": tensor_bads(torch.zeros(2)),
                "log_var": tensor_bads(
                    torch.zeros(2),
                    extra=[Bad("so large that σ overflows", fresh(lambda: torch.full((3,), 1e4)))],
                ),
                "eps": tensor_bads(torch.zeros(2), none=False),
            },
        )
    )  # None: drawn here
    T.append(
        Target(
            "reparameterization_kind",
            C.reparameterization_kind,
            lambda: {
                "dist": Normal(
                    torch.tensor(0.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
                )
            },
            ("dist",),
            {
                "dist": [
                    *NOT_DISTRIBUTIONS,
                    Bad("a distribution with no graph to read", fresh(lambda: Normal(0.0, 1.0))),
                ]
            },
        )
    )
    T.append(Target("distribution_classes", C.distribution_classes, dict))
    T.append(Target("rsample_table", C.rsample_table, dict))
    row = lambda: C.RsampleInfo("Normal", True, "location-scale", "affine")  # noqa: E731
    T.append(
        Target(
            "format_rsample_table",
            C.format_rsample_table,
            lambda: {"rows": [row()]},
            ("rows",),
            # a generator of rows is valid (read once, documented)
            {
                "rows": [
                    Bad("None", None),
                    Bad("3", 3),
                    Bad('"abc"', "abc"),
                    Bad("one row, not an iterable", fresh(row)),
                    Bad("a list of numbers", [1, 2]),
                    Bad("a tensor", fresh(lambda: torch.zeros(2))),
                    Bad("a dict", {"a": 1}),
                ]
            },
        )
    )
    T.append(
        Target(
            "RsampleInfo",
            C.RsampleInfo,
            lambda: {
                "name": "Normal",
                "has_rsample": True,
                "kind": "location-scale",
                "detail": "affine",
            },
            (),
            {
                "name": label_bads(),
                "has_rsample": [Bad('"yes"', "yes", True), Bad("1", 1, True)],  # None: ?
                "kind": [*label_bads(), Bad('"bogus"', "bogus")],
                "detail": label_bads(),
            },
        )
    )

    # ------------------------------------------------------------ relaxations
    generator_bads = [
        Bad("3", 3),
        Bad('"g"', "g"),  # None is valid: the global generator
        Bad("a NumPy generator", fresh(lambda: np.random.default_rng(0))),
    ]
    dtype_bads = [
        Bad("torch.int64", torch.int64),
        Bad('"float32"', "float32"),
        Bad("np.float32", np.float32),
        Bad("torch.complex64", torch.complex64, True),
    ]
    device_bads = [Bad("3", 3), Bad('"nonsense"', "nonsense")]
    if CUDA_MISSING:
        device_bads.append(Bad('"cuda" without CUDA', "cuda"))
    T.append(
        Target(
            "gumbel_noise",
            C.gumbel_noise,
            lambda: {"shape": (2, 3), "generator": None, "dtype": torch.float64, "device": "cpu"},
            ("shape", "generator"),
            # a generator of sizes is valid: shape is read once, into a tuple
            {
                "shape": [
                    Bad("None", None),
                    Bad('"abc"', "abc"),
                    Bad("3", 3),
                    Bad("(2, -1)", (2, -1), True),
                    Bad("(2.5,)", (2.5,)),
                    Bad("(True, 3)", (True, 3)),
                    Bad("(HUGE, HUGE)", (HUGE, HUGE)),
                    Bad("a tensor", fresh(lambda: torch.tensor([2, 3]))),
                ],
                "generator": generator_bads,
                "dtype": [*dtype_bads],  # None is valid: the default dtype
                "device": device_bads,
            },
        )
    )  # None is valid: the default device
    logits = lambda: torch.tensor([0.0, 1.0, 2.0], requires_grad=True)  # noqa: E731
    logits_bads = tensor_bads(torch.zeros(1), torch.tensor(0.0))  # K = 1; no category axis
    T.append(
        Target(
            "gumbel_max_sample",
            C.gumbel_max_sample,
            lambda: {"logits": logits(), "num_samples": 4, "noise": None},
            ("logits", "num_samples"),
            {
                "logits": logits_bads,
                "num_samples": count_bads(1),
                "noise": [
                    Bad('"x"', "x"),
                    Bad("3", 3),
                    Bad("a list", [[0.0] * 3] * 4),
                    Bad("shape (3, 3)", fresh(lambda: torch.zeros(3, 3))),
                    Bad("NaN", fresh(lambda: torch.full((4, 3), math.nan)), True),
                    Bad("inf", fresh(lambda: torch.full((4, 3), math.inf)), True),
                    Bad("complex", fresh(lambda: torch.zeros(4, 3, dtype=torch.cfloat)), True),
                    Bad("an int tensor", fresh(lambda: torch.zeros(4, 3).long())),
                ],
            },
        )
    )
    T.append(
        Target(
            "gumbel_softmax_sample",
            C.gumbel_softmax_sample,
            lambda: {"logits": logits(), "temperature": 0.5, "num_samples": 4, "hard": False},
            ("logits", "temperature", "num_samples"),
            {
                "logits": logits_bads,
                "temperature": real_bads(
                    positive=True,
                    extra=[
                        Bad("1e-300", 1e-300),
                        Bad("shape (2,)", fresh(lambda: torch.ones(2))),
                        Bad("an int tensor", fresh(lambda: torch.tensor(1))),
                    ],
                ),
                "num_samples": count_bads(1),
                "hard": flag_bads(),
            },
        )
    )
    T.append(
        Target(
            "straight_through_bernoulli",
            C.straight_through_bernoulli,
            lambda: {"logits": logits(), "num_samples": 4},
            ("logits", "num_samples"),
            {"logits": tensor_bads(), "num_samples": count_bads(1)},
        )
    )

    # ------------------------------------------------------------ seeding, checks
    T.append(
        Target(
            "seed_everything",
            C.seed_everything,
            lambda: {"seed": 0},
            ("seed",),
            {"seed": count_bads(0, huge=False, extra=[Bad("2**32", 2**32)])},
        )
    )
    T.append(
        Target(
            "critical_z",
            C.critical_z,
            lambda: {"false_alarm": 0.01, "num_comparisons": 3},
            ("false_alarm", "num_comparisons"),
            {
                "false_alarm": probability_bads(),
                # a huge count is valid (it allocates nothing); one that underflows is not
                "num_comparisons": count_bads(
                    1, huge=False, extra=[Bad("10**400, underflowing", 10**400)]
                ),
            },
        )
    )
    check_tensor_bads = [
        Bad("None", None),
        Bad('"x"', "x"),
        Bad("True", True),
        Bad("NaN", math.nan, True),
        Bad("inf", math.inf, True),
        Bad("1j", 1j, True),
        Bad("a NaN tensor", Derived(nan_of), True),
        Bad("a complex tensor", Derived(complex_of), True),
        Bad("an empty tensor", fresh(lambda: torch.empty(0))),
        Bad("shape (3,)", fresh(lambda: torch.ones(3))),
    ]
    T.append(
        Target(
            "check_close",
            C.check_close,
            lambda: {
                "label": "E[x]",
                "estimate": torch.tensor([1.0, 2.0]),
                "exact": torch.tensor([1.0, 2.0]),
                "stderr": torch.tensor([0.1, 0.1]),
                "false_alarm": 1e-3,
                "verbose": False,
            },
            ("label", "estimate", "exact"),
            {
                "label": [*label_bads(), Bad('""', ""), Bad('"  "', "  ")],
                "estimate": check_tensor_bads,
                "exact": check_tensor_bads,
                "stderr": [
                    *check_tensor_bads[1:],  # None: a deterministic check
                    Bad("negative", fresh(lambda: torch.tensor([0.1, -0.1]))),
                ],
                "false_alarm": rate_bads(),
                "scale": scale_bads(),
                # degrees of freedom of the standard error (Student's t): a finite number >= 1
                "df": real_bads(
                    positive=True,
                    none=False,  # None: the normal quantile
                    extra=[
                        Bad("0.5, below 1", 0.5),
                        Bad("10**400, too large for a float", 10**400),
                        Bad('"3"', "3"),
                    ],
                ),
                "verbose": flag_bads(),
            },
        )
    )
    tolerance_bads = [
        Bad("-1", -1.0),
        Bad("NaN", math.nan, True),
        Bad("inf", math.inf, True),
        Bad("True", True),
        Bad('"x"', "x"),
        Bad("1j", 1j, True),
    ]
    T.append(
        Target(
            "check_close",
            C.check_close,
            lambda: {
                "label": "E[x]",
                "estimate": 1.0,
                "exact": 1.0,
                "rtol": 1e-6,
                "atol": 1e-9,
                "verbose": False,
            },
            ("label", "estimate", "exact"),
            {
                "rtol": tolerance_bads,
                "atol": tolerance_bads,
                # df belongs to a statistical check: with rtol/atol it is refused, not ignored
                "df": [Bad("4.0, without stderr", 4.0), Bad("1, without stderr", 1)],
            },
        )
    )
    T.append(
        Target(
            "check_mc",
            C.check_mc,
            lambda: {
                "label": "E[x]",
                "values": torch.linspace(-1.0, 1.0, N),
                "exact": 0.0,
                "false_alarm": 1e-3,
                "verbose": False,
            },
            ("label", "values", "exact"),
            {
                "label": label_bads(),
                # integer and boolean samples are numbers (an indicator's mean)
                "values": tensor_bads(torch.tensor(1.0), torch.ones(1), ints=False),
                # a tensor exact broadcasts: it compares several coordinates
                "exact": check_tensor_bads[:-1],
                "false_alarm": rate_bads(),
                "scale": scale_bads(),
                "verbose": flag_bads(),
            },
        )
    )
    for func in (C.check_at_least, C.check_exceeds):  # valid: 5 se above the bound
        bads = {
            "label": label_bads(),
            "estimate": check_tensor_bads[:-1],
            "bound": check_tensor_bads[:-1],
            "stderr": [*check_tensor_bads[:-1], Bad("-0.1", -0.1)],
            "false_alarm": rate_bads(extra=[Bad("0.5, for a one-sided check", 0.5)]),
            "verbose": flag_bads(),
        }
        if func is C.check_at_least:  # check_exceeds has no scale: it is the margin itself
            bads["scale"] = scale_bads()
        T.append(
            Target(
                func.__name__,
                func,
                lambda: {
                    "label": "L5 >= L1",
                    "estimate": 1.0,
                    "bound": 0.5,
                    "stderr": 0.1,
                    "false_alarm": 1e-3,
                    "verbose": False,
                },
                ("label", "estimate", "bound"),
                bads,
            )
        )
    draws = [[1.0, 2.0], [2.0, 1.0], [1.5, 1.5]]  # mean projection 1.5 sqrt(5) / 5 along u
    draws_bads = [
        Bad("None", None),
        Bad('"x"', "x"),
        Bad("a NaN tensor", Derived(nan_of), True),
        Bad("an inf tensor", Derived(inf_of), True),
        Bad("a complex tensor", Derived(complex_of), True),
        Bad("an empty tensor", fresh(lambda: torch.empty(0))),
        Bad("one draw, shape (1, 2)", fresh(lambda: torch.ones(1, 2))),
        Bad("shape (3,): not (R, P)", fresh(lambda: torch.ones(3))),
        Bad("shape (3, 3): another P", fresh(lambda: torch.ones(3, 3))),
        Bad("a ragged list", [[1.0], [1.0, 2.0]]),
    ]
    T.append(
        Target(
            "check_agree",
            C.check_agree,
            lambda: {
                "label": "agree",
                "samples": torch.tensor(draws),
                "reference": torch.tensor(draws[::-1]),
                "direction": torch.tensor([1.0, 0.5]),
                "false_alarm": 1e-3,
                "verbose": False,
            },
            ("label", "samples", "reference"),
            {
                "label": [*label_bads(), Bad('""', "")],
                # integer and boolean draws are numbers (an indicator's mean)
                "samples": draws_bads,
                "reference": [
                    *draws_bads,
                    Bad("mean 0 along direction", fresh(lambda: torch.zeros(3, 2))),
                ],
                # an integer direction is a direction
                "direction": tensor_bads(
                    torch.ones(3),
                    torch.ones(1, 2),
                    ints=False,
                    extra=[Bad("zero", fresh(lambda: torch.zeros(2))), Bad("True", True)],
                ),
                "false_alarm": rate_bads(),
                "verbose": flag_bads(),
            },
        )
    )
    T.append(
        Target(
            "report",
            C.report,
            lambda: {
                "label": "measured",
                "value": torch.tensor([1.0, 2.0]),
                "stderr": torch.tensor([0.1, 0.1]),
                "verbose": False,
            },
            ("label", "value"),
            {
                "label": [*label_bads(), Bad('""', "")],
                # a value of another shape is valid (a measurement of another size)
                "value": check_tensor_bads[:-1],
                "stderr": [  # None: a measurement without a standard error
                    *check_tensor_bads[1:],
                    Bad("negative", fresh(lambda: torch.tensor([0.1, -0.1]))),
                ],
                "verbose": flag_bads(),
            },
        )
    )
    result_bads = [
        Bad("None", None),
        Bad('"x"', "x"),
        Bad("a list", [1.0]),
        Bad("a complex tensor", Derived(complex_of), True),
        Bad("an int tensor", Derived(int_of)),
        Bad("shape (2,)", fresh(lambda: torch.ones(2))),
    ]
    finite_result_bads = [
        *result_bads,
        Bad("a NaN tensor", Derived(nan_of), True),
        Bad("an inf tensor", Derived(inf_of), True),
    ]

    def check_result():
        return {
            "label": "E[x]",
            "estimate": torch.tensor([1.0]),
            "exact": torch.tensor([1.0]),
            "stderr": torch.tensor([0.1]),
            "distance": torch.tensor([0.0]),
            "limit": torch.tensor([3.29]),
            "passed": True,
            "false_alarm": 1e-3,
            "scale": 1.0,
            "resolution": 0.329,
        }

    resolution_bads = [  # inf is valid: a check without a scale
        Bad("NaN", math.nan, True),
        Bad("-inf", -math.inf, True),
        Bad("1+1j", 1 + 1j, True),
        Bad("-1", -1.0),
        Bad("True", True),
        Bad('"x"', "x"),
        Bad("None", None),
    ]
    for cls in (C.CheckResult, C.BoundCheckResult):
        T.append(
            Target(
                cls.__name__,
                cls,
                check_result,
                (),
                {
                    "label": [*label_bads(), Bad('""', "")],
                    "estimate": finite_result_bads,
                    "exact": finite_result_bads,
                    "stderr": finite_result_bads[1:],  # None: a deterministic check
                    # an infinite distance is valid: a nonzero gap with zero stderr
                    "distance": [*result_bads, Bad("a NaN tensor", Derived(nan_of), True)],
                    "limit": finite_result_bads,
                    "passed": flag_bads(),
                    "false_alarm": rate_bads(),  # None: a deterministic check
                    "scale": scale_bads(),  # None: no scale (exact is 0)
                    "resolution": resolution_bads,
                    **({"strict": flag_bads()} if cls is C.BoundCheckResult else {}),
                },
            )
        )
    for method in (  # no parameters
        "absolute_resolutions",
        "absolute_resolution",
        "sizes",
        "resolution_text",
    ):
        T.append(
            Target(
                f"CheckResult.{method}",
                method,
                lambda: {"self": C.CheckResult(**check_result())},
            )
        )
    T.append(  # a strict result's sizes are its margins
        Target(
            "BoundCheckResult.sizes",
            "sizes",
            lambda: {"self": C.BoundCheckResult(**check_result(), strict=True)},
        )
    )

    # ------------------------------------------------------------ ledger
    chapter_bads = [*label_bads(), Bad('""', ""), Bad('"  "', "  ")]
    T.append(
        Target(
            "start_chapter",
            C.start_chapter,
            lambda: {"chapter": "01_monte_carlo", "max_checks": 40, "false_alarm": 1e-3},
            ("chapter",),
            {
                "chapter": chapter_bads,
                # a huge max_checks allocates nothing: a tiny share per check, not an error
                "max_checks": count_bads(1, huge=False),
                "false_alarm": probability_bads(),
            },
        )
    )
    for func in (C.end_chapter, C.current_budget, C.default_false_alarm, C.expected_failures):
        T.append(Target(func.__name__, func, dict))  # no parameters
    T.append(
        Target(
            "expect_failure",
            C.expect_failure,
            lambda: {"what": "a counterfeit is caught"},
            ("what",),
            {"what": [*label_bads(), Bad('""', "")]},
        )
    )
    T.append(
        Target(
            "Budget",
            C.Budget,
            lambda: {"chapter": "ch", "total": 0.01, "max_checks": 10, "spent": 0.004, "count": 4},
            (),
            {
                "chapter": chapter_bads,
                "total": probability_bads(),
                "max_checks": count_bads(1, huge=False, extra=[Bad("3, below count", 3)]),
                "spent": real_bads(extra=[Bad("-0.1", -0.1), Bad("above total", 0.5)]),
                "count": count_bads(0, huge=False, extra=[Bad("above max_checks", 11)]),
            },
        )
    )
    spend_bads = {
        "false_alarm": probability_bads(),
        "label": [*label_bads(), Bad('""', "")],
    }
    T.append(
        Target(
            "Budget.spend",
            "spend",
            lambda: {
                "self": C.Budget("ch", total=1e-3, max_checks=10),
                "false_alarm": 1e-4,
                "label": "E[x]",
            },
            ("false_alarm", "label"),
            {
                **spend_bads,
                "false_alarm": [
                    *spend_bads["false_alarm"],
                    Bad("over the budget", 2e-3),
                ],
            },
        )
    )
    T.append(
        Target(
            "spend",  # outside a chapter: charges nothing, but checks its input
            C.spend,
            lambda: {"false_alarm": 1e-4, "label": "E[x]"},
            ("false_alarm", "label"),
            spend_bads,
        )
    )
    T.append(
        Target(
            "record",
            C.record,
            lambda: {"entry": {"label": "E[x]", "kind": "close", "resolution": math.inf}},
            ("entry",),
            {
                "entry": [
                    Bad("None", None),
                    Bad('"x"', "x"),
                    Bad("a list of pairs", [("label", "E[x]")]),
                    Bad("a non-string key", {1: "x"}),
                    Bad("a tensor value", fresh(lambda: {"value": torch.tensor(1.0)})),
                    Bad("a NaN in a list", {"values": [math.nan]}, True),
                    Bad("a complex value", {"value": 1j}, True),
                ]
            },
        )
    )

    # ------------------------------------------------------------ data
    T.append(
        Target(
            "binarize",
            C.binarize,
            lambda: {"x": grey[:3].clone(), "seed": 0},
            ("x",),
            # any shape (an empty one too), integer and boolean input are documented
            {
                "x": tensor_bads(
                    ints=False,
                    empty=False,
                    extra=[
                        Bad("grey levels above 1", fresh(lambda: torch.full((2,), 2.0))),
                        Bad("negative grey levels", fresh(lambda: torch.full((2,), -0.5))),
                    ],
                ),
                # None is valid: dynamic binarization, from the global generator
                "seed": count_bads(0, huge=False, none=False, extra=[Bad("2**64", 2**64)]),
            },
        )
    )
    T.append(
        Target(
            "load_digits",
            C.load_digits,
            lambda: {"test_size": 300, "dtype": torch.float32, "device": "cpu"},
            ("test_size",),
            {
                "test_size": count_bads(1, extra=[Bad("1797", 1797)]),
                "dtype": [*dtype_bads, Bad("None", None)],
                "device": device_bads,
            },
        )
    )
    T.append(
        Target(
            "load_breast_cancer",
            C.load_breast_cancer,
            lambda: {"dtype": torch.float64, "device": "cpu"},
            (),
            # device=None is valid: the CPU
            {"dtype": [*dtype_bads, Bad("None", None)], "device": device_bads},
        )
    )
    checksums = _fake_mnist(tmp / "mnist")
    (tmp / "a_file").write_text("not a directory")
    garbage = tmp / "garbage"
    garbage.mkdir()
    for name in checksums:
        (garbage / name).write_bytes(b"not gzip")
    first = next(iter(checksums))
    T.append(
        Target(
            "load_mnist",
            C.load_mnist,
            lambda: {
                "root": tmp / "mnist",
                "download": False,
                "checksums": checksums,
                "verify": True,
                "dtype": torch.float32,
                "device": "cpu",
            },
            ("root",),
            {
                "root": [
                    Bad("None", None),
                    Bad("3", 3),
                    Bad("a missing directory", tmp / "missing"),
                    Bad("a file, not a directory", tmp / "a_file"),
                ],
                "download": flag_bads(),
                "verify": flag_bads(),
                "mirror": [Bad("3", 3), Bad("None", None), Bad("bytes", b"https://x/")],
                "checksums": [
                    Bad("None", None),
                    Bad('"x"', "x"),
                    Bad("{}", {}),
                    Bad("a list", [1, 2]),
                    Bad("a wrong digest", {**checksums, first: ("sha256", "0" * 64)}),
                    Bad("an unknown algorithm", {**checksums, first: ("md99", "0")}),
                ],
                "dtype": dtype_bads,
                "device": device_bads,
            },
        )
    )
    T.append(
        Target(
            "load_mnist",
            C.load_mnist,
            lambda: {"root": tmp / "mnist", "checksums": checksums},
            ("root",),
            {"root": [Bad("a directory of files of another format", garbage)]},
        )
    )
    T.append(
        Target(
            "load_mnist",
            C.load_mnist,
            lambda: {"root": tmp / "mnist", "checksums": checksums, "verify": False},
            ("root",),
            {"root": [Bad("a directory of files of another format", garbage)]},
        )
    )
    dataset_x_bads = tensor_bads(
        torch.zeros(5, 3),
        torch.zeros(5),
        extra=[Bad("values above 1", fresh(lambda: torch.full((5, 4), 2.0)))],
    )
    label_tensor_bads = [
        Bad("None", None),
        Bad('"x"', "x"),
        Bad("a float tensor", fresh(lambda: torch.zeros(5))),
        Bad("a complex tensor", fresh(lambda: torch.zeros(5, dtype=torch.cfloat)), True),
        Bad("one label too few", fresh(lambda: torch.zeros(4).long())),
    ]
    T.append(
        Target(
            "Dataset",
            C.Dataset,
            lambda: {
                "train_x": torch.rand(5, 4),
                "train_y": torch.arange(5),
                "test_x": torch.rand(5, 4),
                "test_y": torch.arange(5),
                "image_shape": (2, 2),
                "description": "toy",
            },
            (),
            {
                "train_x": dataset_x_bads,
                "test_x": dataset_x_bads,
                "train_y": label_tensor_bads,
                "test_y": label_tensor_bads,
                "image_shape": [
                    Bad("None", None),
                    Bad('"22"', "22"),
                    Bad("(4,)", (4,)),
                    Bad("(0, 4)", (0, 4)),
                    Bad("(2.5, 2)", (2.5, 2)),
                    Bad("(2, 3) for 4 pixels", (2, 3)),
                ],
                "description": label_bads(),
            },
        )
    )

    # ------------------------------------------------------------ diagrams, guide, plotting
    ax_bads = [Bad("None", None), Bad("3", 3), Bad("a Figure", fresh(lambda: plt.figure()))]
    strings = lambda: (s for s in C.GRAPH_LABELS)  # noqa: E731
    T.append(
        Target(
            "draw_computational_graph",
            C.draw_computational_graph,
            lambda: {
                "ax": axes(),
                "labels": C.GRAPH_LABELS,
                "cut_edge": 1,
                "detours": True,
                "detour_labels": C.DETOUR_LABELS,
            },
            ("ax",),
            {
                "ax": ax_bads,
                "labels": [
                    Bad('"abc"', "abc"),
                    Bad("None", None),
                    Bad("numbers", [1, 2, 3]),
                    Bad("one label", ["a"]),
                    Bad("a generator", fresh(strings)),
                ],
                "cut_edge": [
                    Bad("-1", -1, True),
                    Bad("2.5", 2.5),
                    Bad("True", True),
                    Bad('"1"', "1"),
                    Bad("10", 10),
                    Bad("None, with detours", None),
                ],
                "detours": flag_bads(),
                "detour_labels": [
                    Bad("None", None),
                    Bad('"ab"', "ab"),
                    Bad("one", ["a"]),
                    Bad("numbers", [1, 2]),
                    Bad("a generator", fresh(lambda: (s for s in C.DETOUR_LABELS))),
                ],
            },
        )
    )
    T.append(
        Target(
            "draw_decision_guide",
            C.draw_decision_guide,
            lambda: {"ax": axes()},
            ("ax",),
            {"ax": ax_bads},
        )
    )
    flags = (
        "differentiable_f",
        "reparameterizable",
        "discrete",
        "support_depends_on_theta",
        "bias_ok",
        "gaussian",
    )
    T.append(
        Target(
            "recommend",
            C.recommend,
            lambda: {
                "differentiable_f": True,
                "reparameterizable": True,
                "discrete": False,
                "support_depends_on_theta": False,
                "budget": 4,
                "num_params": 2,
                "bias_ok": False,
                "gaussian": True,
            },
            (),
            {
                **{name: flag_bads() for name in flags},
                # a huge budget or parameter count allocates nothing
                "budget": count_bads(1, huge=False),
                "num_params": count_bads(1, huge=False),
                # num_values counts a discrete x's values: refused for a continuous x
                "num_values": [Bad("2 with discrete=False", 2), Bad("1", 1), Bad("2.0", 2.0)],
            },
        )
    )
    T.append(
        Target(
            "recommend",
            C.recommend,
            lambda: {
                "differentiable_f": True,
                "reparameterizable": False,
                "discrete": True,
                "budget": 4,
                "num_params": 2,
                "num_values": 2,
            },
            (),
            # None is valid (the number of values is unknown); a huge number of values is
            # valid too: it does not fit the budget, so enumeration is not recommended
            {"num_values": count_bads(2, huge=False, none=False, extra=[Bad('"4"', "4")])},
        )
    )
    T.append(
        Target(
            "guide_leaf",
            C.guide_leaf,
            lambda: {
                "answers": SimpleNamespace(
                    discrete=False, differentiable_f=True, reparameterizable=True
                )
            },
            ("answers",),
            {
                "answers": [
                    Bad("None", None),
                    Bad("3", 3),
                    Bad('"abc"', "abc"),
                    Bad("answers missing attributes", SimpleNamespace(discrete=True)),
                ]
            },
        )
    )
    T.append(
        Target(
            "Recommendation",
            C.Recommendation,
            lambda: {"estimator": "pathwise", "unbiased": True, "reason": "why"},
            (),
            {
                "estimator": [*label_bads(), Bad('""', "")],
                "unbiased": flag_bads(),
                "reason": label_bads(),
            },
        )
    )
    T.append(Target("use_book_style", C.use_book_style, dict))
    T.append(
        Target(
            "plot_running_mean",
            C.plot_running_mean,
            lambda: {
                "ax": axes(),
                "running": C.running_mean(torch.linspace(0, 1, N)),
                "exact": 0.5,
                "label": "mean",
                "level": 0.95,
            },
            ("ax", "running"),
            {
                "ax": ax_bads,
                "running": [
                    Bad("None", None),
                    Bad("a tensor", fresh(lambda: torch.zeros(N))),
                    Bad("an Estimate of shape ()", fresh(estimate)),
                    Bad("a tuple", (torch.zeros(N), torch.zeros(N))),
                ],
                "exact": real_bads(none=False),  # None: no exact line
                "label": label_bads(),
                "level": probability_bads(),
            },
        )
    )
    positive_array_bads = tensor_bads(
        np.ones(4),
        ints=False,  # integer sizes are numbers
        extra=[
            Bad("True", True),
            Bad("a zero", np.array([0.0, 100.0, 1000.0])),
            Bad("a negative entry", np.array([-10.0, 100.0, 1000.0])),
        ],
    )
    T.append(
        Target(
            "plot_rate",
            C.plot_rate,
            lambda: {
                "ax": axes(),
                "num_samples": np.array([10.0, 100.0, 1000.0]),
                "errors": np.array([0.3, 0.1, 0.03]),
                "sigma": 1.0,
                "label": "measured",
            },
            ("ax", "num_samples", "errors", "sigma"),
            {
                "ax": ax_bads,
                "num_samples": positive_array_bads,
                "errors": positive_array_bads,
                "sigma": real_bads(positive=True, none=False),  # None: no theory line
                "label": label_bads(),
            },
        )
    )
    interval_bads = tensor_bads(torch.zeros(3), ints=False, extra=[Bad("True", True)])
    T.append(
        Target(
            "plot_intervals",
            C.plot_intervals,
            lambda: {
                "ax": axes(),
                "lower": torch.tensor([0.0, 1.0]),
                "upper": torch.tensor([1.0, 2.0]),
                "exact": 0.5,
                "max_shown": 10,
            },
            ("ax", "lower", "upper", "exact"),
            {
                "ax": ax_bads,
                "lower": [
                    *interval_bads,
                    Bad("above upper", fresh(lambda: torch.tensor([2.0, 3.0]))),
                ],
                "upper": [
                    *interval_bads,
                    Bad("below lower", fresh(lambda: torch.tensor([-1.0, 0.0]))),
                ],
                "exact": real_bads(),
                # a huge max_shown shows every interval; it allocates nothing
                "max_shown": count_bads(1, huge=False),
            },
        )
    )
    T.append(
        Target(
            "plot_images",
            C.plot_images,
            lambda: {
                "ax": axes(),
                "images": np.full((3, 6), 0.5),
                "image_shape": (2, 3),
                "ncols": 2,
                "pad": 1,
            },
            ("ax", "images", "image_shape"),
            {
                "ax": ax_bads,
                # integer pixels 0 and 1 are valid intensities
                "images": tensor_bads(
                    np.zeros((3, 5)),
                    ints=False,
                    extra=[Bad("values above 1", np.full((3, 6), 2.0))],
                ),
                "image_shape": [
                    Bad("None", None),
                    Bad('"23"', "23"),
                    Bad("(6,)", (6,)),
                    Bad("(0, 3)", (0, 3)),
                    Bad("(2.5, 3)", (2.5, 3)),
                    Bad("(3, 3) for 6 pixels", (3, 3)),
                    Bad("a generator", fresh(lambda: (s for s in (2, 3)))),
                ],
                "ncols": count_bads(1),
                "pad": count_bads(0),
            },
        )
    )

    # ------------------------------------------------------------ VAE
    T.append(
        Target(
            "VAE",
            C.VAE,
            lambda: {"data_dim": 4, "latent_dim": 2, "hidden_dim": 3},
            ("data_dim", "latent_dim", "hidden_dim"),
            {name: count_bads(1) for name in ("data_dim", "latent_dim", "hidden_dim")},
        )
    )
    image_bads = tensor_bads(  # integer 0/1 images are valid
        torch.zeros(3, 5),
        torch.zeros(4),
        ints=False,
        extra=[Bad("values above 1", fresh(lambda: torch.full((3, 4), 2.0)))],
    )
    binary_bads = [*image_bads, Bad("grey levels", fresh(lambda: torch.full((3, 4), 0.5)))]
    z_bads = tensor_bads(torch.zeros(5, 3), torch.tensor(0.0))
    T.append(
        Target(
            "VAE.check_images",
            "check_images",
            lambda: {"self": vae(), "x": images(), "binary": True, "name": "x"},
            ("x",),
            {"x": binary_bads, "binary": flag_bads(), "name": label_bads()},
        )
    )
    T.append(
        Target(
            "VAE.check_draws",
            "check_draws",
            lambda: {"self": vae(), "count": 2, "batch": 3, "name": "count"},
            ("count", "batch"),
            # a huge batch is refused under the caller's count's name (the count is
            # what the caller chose; batch is the size of the caller's data)
            {"count": count_bads(1), "batch": count_bads(0, huge=False), "name": label_bads()},
        )
    )
    T.append(
        Target(
            "VAE.encode",
            "encode",
            lambda: {"self": vae(), "x": images()},
            ("x",),
            {"x": image_bads},
        )
    )
    T.append(
        Target(
            "VAE.decode",
            "decode",
            lambda: {"self": vae(), "z": torch.zeros(5, 2)},
            ("z",),
            {"z": z_bads},
        )
    )
    T.append(
        Target(
            "VAE.log_joint",
            "log_joint",
            lambda: {"self": vae(), "x": images(), "z": torch.zeros(2, 3, 2)},
            ("x", "z"),
            {"x": binary_bads, "z": z_bads},
        )
    )
    T.append(
        Target(
            "VAE.log_weights",
            "log_weights",
            lambda: {
                "self": vae(),
                "x": images(),
                "num_particles": 2,
                "sticking_the_landing": True,
            },
            ("x", "num_particles"),
            {"x": binary_bads, "num_particles": count_bads(1), "sticking_the_landing": flag_bads()},
        )
    )
    T.append(
        Target(
            "VAE.elbo",
            "elbo",
            lambda: {"self": vae(), "x": images(), "num_particles": 2, "analytic_kl": True},
            ("x", "num_particles"),
            {"x": binary_bads, "num_particles": count_bads(1), "analytic_kl": flag_bads()},
        )
    )
    T.append(
        Target(
            "VAE.sample",
            "sample",
            lambda: {"self": vae(), "num_images": 3},
            ("num_images",),
            {"num_images": count_bads(1)},
        )
    )
    T.append(
        Target(
            "VAE.reconstruct",
            "reconstruct",
            lambda: {"self": vae(), "x": images()},
            ("x",),
            {"x": image_bads},
        )
    )
    model_bads = [
        Bad("None", None),
        Bad('"vae"', "vae"),
        Bad("the class VAE", C.VAE),
        Bad("another nn.Module", fresh(lambda: nn.Linear(4, 4))),
    ]
    T.append(
        Target(
            "iwae_bound",
            C.iwae_bound,
            lambda: {"model": vae(), "x": images(), "k": 3},
            ("model", "x", "k"),
            {"model": model_bads, "x": binary_bads, "k": count_bads(1)},
        )
    )
    T.append(
        Target(
            "log_likelihood",
            C.log_likelihood,
            lambda: {"model": vae(), "x": images(), "k": 5, "chunk_size": 2},
            ("model", "x", "k"),
            # a chunk larger than k is one chunk of k
            {
                "model": model_bads,
                "x": binary_bads,
                "k": count_bads(1),
                "chunk_size": count_bads(1, huge=False),
            },
        )
    )
    T.append(
        Target(
            "latent_usage",
            C.latent_usage,
            lambda: {"model": vae(), "x": grey[:3].clone()},
            ("model", "x"),
            # grey levels are valid (binary=False); A_l is a variance over images: >= 2
            {
                "model": model_bads,
                "x": [*image_bads, Bad("one image", fresh(lambda: grey[:1].clone()))],
            },
        )
    )

    # ------------------------------------------------------------ training
    estimator_bads = [
        Bad('"bogus"', "bogus"),
        Bad("3", 3),
        Bad("None", None),
        Bad('"Pathwise"', "Pathwise"),
    ]
    option_baseline_bads = [
        Bad('"mean"', "mean"),
        Bad("3", 3),
        Bad("NaN", math.nan, True),
        Bad("True", True),
    ]
    keep_score_term_bads = [*flag_bads(), Bad("1.0", 1.0)]
    objective_bads = [Bad('"kl"', "kl"), Bad('"ELBO"', "ELBO"), Bad("None", None), Bad("3", 3)]
    T.append(
        Target(
            "elbo_surrogate",
            C.elbo_surrogate,
            lambda: {
                "model": vae(),
                "x": images(),
                "estimator": "score_function",
                "baseline": "loo",
                "num_particles": 2,
            },
            ("model", "x"),
            {
                "model": model_bads,
                "x": binary_bads,
                "estimator": estimator_bads,
                "baseline": option_baseline_bads,
                "num_particles": count_bads(2),
                "keep_score_term": keep_score_term_bads,
            },
        )
    )  # "loo" needs two particles
    for estimator in ("pathwise", "stl"):  # the score term belongs to the score function
        T.append(
            Target(
                "elbo_surrogate",
                C.elbo_surrogate,
                lambda estimator=estimator: {
                    "model": vae(),
                    "x": images(),
                    "estimator": estimator,
                    "num_particles": 2,
                },
                ("model", "x"),
                {"keep_score_term": [Bad(f"True with estimator={estimator!r}", True)]},
            )
        )
    ckpt = tmp / "train" / "vae.pt"
    ckpt.parent.mkdir()
    (tmp / "garbage.pt").write_bytes(b"not a checkpoint")
    data = lambda: grey.clone()  # noqa: E731
    train_kwargs = {
        "epochs": 1,
        "batch_size": 4,
        "lr": 1e-2,
        "estimator": "pathwise",
        "baseline": None,
        "num_particles": 1,
        "progress": False,
    }
    data_bads = tensor_bads(
        torch.zeros(8, 5),
        ints=False,
        extra=[  # 0/1 integers are valid
            Bad("values above 1", fresh(lambda: torch.full((8, 4), 2.0))),
            Bad("no images", fresh(lambda: torch.zeros(0, 4))),
        ],
    )
    device_train_bads = [*device_bads, Bad('"meta"', "meta")]
    T.append(
        Target(
            "train",
            C.train,
            lambda: {
                "model": vae(),
                "train_x": data(),
                "test_x": data()[:2],
                **train_kwargs,
                "checkpoint": ckpt,
                "resume": False,
                "device": "cpu",
            },
            ("model", "train_x", "test_x"),
            {
                "model": [
                    *model_bads,
                    Bad("a VAE on the meta device", fresh(lambda: vae().to("meta"))),
                ],
                "train_x": data_bads,
                "test_x": data_bads[1:],  # None: no test set
                # a huge epochs is a long run, not an invalid one; a batch larger than
                # the data is one batch
                "epochs": count_bads(1, huge=False),
                "batch_size": count_bads(1, huge=False),
                "lr": real_bads(positive=True),
                "estimator": estimator_bads,
                "baseline": [Bad('"loo" with pathwise', "loo"), *option_baseline_bads],
                "num_particles": count_bads(1),
                "progress": flag_bads(),
                "checkpoint": [
                    Bad("3", 3),
                    Bad("in a missing directory", tmp / "missing" / "vae.pt"),
                    Bad("a directory", tmp),
                ],
                "resume": flag_bads(),
                "device": device_train_bads,
                "objective": objective_bads,
                # 0 is valid: no KL term (an autoencoder with noise)
                "kl_weight": real_bads(
                    extra=[Bad("-1", -1.0), Bad("shape (2,)", fresh(lambda: torch.ones(2)))]
                ),
                # a huge warm-up is valid: the KL weight stays near 0 for the whole run
                "warmup_epochs": count_bads(0, huge=False),
                "free_bits": real_bads(extra=[Bad("-1", -1.0)]),
            },
        )
    )
    saved = _checkpoint(
        tmp / "resume.pt",
        vae(),
        data(),
        **{
            k: v for k, v in train_kwargs.items() if k in ("estimator", "baseline", "num_particles")
        },
    )
    other_architecture = _checkpoint(tmp / "other.pt", vae(hidden=5), data())
    other_options = tmp / "options.pt"
    with contextlib.redirect_stderr(io.StringIO()):
        C.train(
            vae(),
            data(),
            data()[:2],
            epochs=1,
            batch_size=2,
            lr=0.5,
            progress=False,
            checkpoint=other_options,
        )
    T.append(
        Target(
            "train",
            C.train,
            lambda: {
                "model": vae(),
                "train_x": data(),
                "test_x": data()[:2],
                **train_kwargs,
                "checkpoint": saved,
                "resume": True,
            },
            ("model", "train_x", "test_x"),
            {
                "checkpoint": [
                    Bad("a file of another format", tmp / "garbage.pt"),
                    Bad("a checkpoint of another architecture", other_architecture),
                    Bad("a checkpoint written with other options", other_options),
                ],
                "test_x": [Bad("None, for a checkpoint written with test_x", None)],
            },
        )
    )
    T.append(
        Target(
            "gradient_draws",
            C.gradient_draws,
            lambda: (
                lambda m: {
                    "model": m,
                    "x": images(),
                    "estimator": "pathwise",
                    "baseline": None,
                    "num_particles": 1,
                    "num_draws": 3,
                    "parameters": list(m.encoder.parameters()),
                }
            )(vae()),
            ("model", "x"),
            {
                "model": model_bads,
                "x": binary_bads,
                "estimator": estimator_bads,
                "baseline": [Bad('"loo" with pathwise', "loo"), *option_baseline_bads],
                "num_particles": count_bads(1),
                "num_draws": count_bads(2),
                "keep_score_term": [
                    *keep_score_term_bads,
                    Bad("True with estimator='pathwise'", True),
                ],
                # a generator of the model's parameters is valid (read once)
                "objective": objective_bads,
                "parameters": [
                    Bad('"x"', "x"),
                    Bad("[]", []),
                    Bad("[3]", [3]),
                    Bad(
                        "one tensor, not a sequence",
                        fresh(lambda: torch.zeros(2, requires_grad=True)),
                    ),
                    Bad(
                        "tensors that are not the model's",
                        fresh(lambda: [torch.zeros(2, requires_grad=True)]),
                    ),
                    Bad("another model's parameters", fresh(lambda: list(vae().parameters()))),
                ],
            },
        )
    )
    history_bads = [
        Bad("None", None),
        Bad('"x"', "x"),
        Bad("[NaN]", [math.nan], True),
        Bad("[inf]", [math.inf], True),
        Bad("[1j]", [1j], True),
        Bad("[True]", [True]),
        Bad('["x"]', ["x"]),
        Bad("a tensor", fresh(lambda: torch.tensor([1.0]))),
    ]
    T.append(
        Target(
            "History",
            C.History,
            lambda: {
                "train_elbo": [-50.0, -40.0],
                "test_elbo": [-52.0, -41.0],
                "seconds": [0.1, 0.1],
            },
            (),
            {
                "train_elbo": [*history_bads, Bad("one epoch too many", [-50.0, -40.0, -30.0])],
                "test_elbo": [*history_bads, Bad("one entry for two epochs", [-52.0])],
                "seconds": [*history_bads, Bad("one entry for two epochs", [0.1])],
            },
        )
    )

    # ------------------------------------------------------------ importance, stratification
    is_values_bads = tensor_bads(
        torch.ones(1),
        torch.tensor(1.0),  # one sample, a scalar: no standard error
        ints=False,  # integer (and boolean) samples are numbers
    )
    weights_bads = tensor_bads(
        torch.ones(4),
        torch.ones(3, 1),
        ints=False,  # integer weights are numbers (a count of copies of each draw)
        extra=[
            Bad("a negative weight", fresh(lambda: torch.tensor([0.5, -1.0, 2.0]))),
            Bad("all zero", fresh(lambda: torch.zeros(3))),
            Bad("True", True),
        ],
    )
    T.append(
        Target(
            "importance_sampling",
            C.importance_sampling,
            lambda: {
                "values": torch.tensor([1.0, 2.0, 4.0]),
                "weights": torch.tensor([0.5, 1.0, 2.0]),
                "self_normalized": False,
            },
            ("values", "weights"),
            {"values": is_values_bads, "weights": weights_bads, "self_normalized": flag_bads()},
        )
    )
    T.append(
        Target(
            "importance_sampling",
            C.importance_sampling,
            lambda: {
                "values": torch.tensor([1.0, 2.0, 4.0]),
                "weights": torch.tensor([0.5, 1.0, 2.0]),
                "self_normalized": True,
            },
            ("values", "weights"),
            {"weights": weights_bads},
        )
    )
    T.append(
        Target(
            "effective_sample_size",
            C.effective_sample_size,
            lambda: {"weights": torch.tensor([1.0, 1.0, 2.0])},
            ("weights",),
            {
                "weights": tensor_bads(
                    torch.ones(2, 2),
                    torch.tensor(1.0),
                    ints=False,  # integer weights are numbers
                    extra=[
                        Bad("a negative weight", fresh(lambda: torch.tensor([-1.0, 2.0]))),
                        Bad("all zero", fresh(lambda: torch.zeros(3))),
                        Bad("True", True),
                    ],
                )
            },
        )
    )
    T.append(
        Target(
            "stratified_expectation",
            C.stratified_expectation,
            lambda: {
                "f": torch.exp,
                "dist": Uniform(torch.tensor(0.0), torch.tensor(1.0)),
                "num_strata": 10,
                "num_per_stratum": 4,
            },
            ("f", "dist", "num_strata", "num_per_stratum"),
            {
                "f": f_bads,
                "dist": [
                    *NOT_DISTRIBUTIONS,
                    Bad(
                        "a distribution without icdf",
                        fresh(lambda: Gamma(torch.tensor(2.0), torch.tensor(1.0))),
                    ),
                ],
                "num_strata": count_bads(1, extra=[Bad("10**15", 10**15)]),
                "num_per_stratum": count_bads(2),
            },
        )
    )

    # ------------------------------------------------------------ smoothing
    T.append(
        Target(
            "smoothed_gradient",
            C.smoothed_gradient,
            lambda: {
                "f": lambda x: (x**2).sum(-1),
                "dist_fn": lambda t: Normal(t, 1.0),
                "theta": torch.zeros(3, dtype=torch.float64),
                "num_directions": 10,
                "smoothing": 0.1,
                "directions": "gaussian",
                "common_random_numbers": True,
            },
            ("f", "dist_fn", "theta", "num_directions"),
            {
                "f": callable_bads(*F_RETURNS),
                "dist_fn": [
                    Bad("None", None),
                    Bad('"normal"', "normal"),
                    Bad("3", 3),
                    returning("a number", lambda t: 1),
                    returning("an unbatched distribution", lambda t: Normal(t[0], 1.0)),
                ],
                "theta": tensor_bads(torch.tensor(0.0), extra=[Bad("a list", [0.0, 0.0, 0.0])]),
                "num_directions": count_bads(2),
                "smoothing": real_bads(positive=True),
                "directions": [Bad('"normal"', "normal"), Bad("None", None), Bad("1", 1)],
                "common_random_numbers": flag_bads(),
            },
        )
    )

    # ------------------------------------------------------------ REBAR
    T.append(
        Target(
            "conditional_logistic",
            C.conditional_logistic,
            lambda: {
                "logits": torch.zeros(2),
                "x": torch.tensor([1.0, 0.0]),
                "v": torch.full((2,), 0.5),
            },
            ("logits", "x", "v"),
            {
                "logits": tensor_bads(extra=[Bad("a list", [0.0, 0.0])]),
                "x": tensor_bads(
                    torch.ones(3),
                    extra=[
                        Bad("a list", [1.0, 0.0]),
                        Bad("0.5, not 0 or 1", fresh(lambda: torch.tensor([0.5, 0.0]))),
                    ],
                ),
                "v": tensor_bads(
                    torch.full((3,), 0.5),
                    extra=[
                        Bad("a list", [0.5, 0.5]),
                        Bad("2.0, outside (0, 1)", fresh(lambda: torch.tensor([2.0, 0.5]))),
                    ],
                ),
            },
        )
    )
    T.append(
        Target(
            "rebar_bernoulli",
            C.rebar_bernoulli,
            lambda: {
                "f": lambda x: x.sum(-1),
                "logits": torch.zeros(3),
                "num_samples": 4,
                "temperature": 0.5,
                "eta": 1.0,
                "conditional": True,
                "parts": False,
            },
            ("f", "logits", "num_samples"),
            {
                "f": callable_bads(*F_RETURNS, returning("x itself", lambda x: x)),
                "logits": tensor_bads(torch.zeros(2, 2), extra=[Bad("a list", [0.0] * 3)]),
                "num_samples": count_bads(2),
                "temperature": real_bads(positive=True),
                "eta": real_bads(extra=[Bad("shape (2,)", fresh(lambda: torch.ones(2)))]),
                "conditional": flag_bads(),
                "parts": flag_bads(),
            },
        )
    )
    T.append(
        Target(
            "relax_bernoulli",
            C.relax_bernoulli,
            lambda: {
                "f": lambda x: x.sum(-1),
                "logits": torch.zeros(3),
                "control": lambda y: y.sum(-1),
                "num_samples": 4,
                "temperature": 0.5,
                "variance_loss": False,
            },
            ("f", "logits", "control", "num_samples"),
            {
                "f": callable_bads(*F_RETURNS, returning("x itself", lambda x: x)),
                "logits": tensor_bads(torch.zeros(2, 2), extra=[Bad("a list", [0.0] * 3)]),
                "control": callable_bads(*F_RETURNS, returning("y itself", lambda y: y)),
                "num_samples": count_bads(2),
                # a 0-dim floating tensor is valid (a trained temperature)
                "temperature": real_bads(
                    positive=True, extra=[Bad("shape (2,)", fresh(lambda: torch.full((2,), 0.5)))]
                ),
                "variance_loss": flag_bads(),
            },
        )
    )

    # ------------------------------------------------------------ relaxations: reference MSE
    T.append(
        Target(
            "mse_against_reference",
            C.mse_against_reference,
            lambda: {"samples": torch.randn(5, 2), "reference": torch.randn(4, 2), "batch": 2},
            ("samples", "reference", "batch"),
            {
                # integer draws are numbers (a discrete estimator's values)
                "samples": tensor_bads(torch.zeros(1, 2), torch.zeros(5, 3), ints=False),
                "reference": tensor_bads(torch.zeros(1, 2), torch.zeros(3, 3), ints=False),
                # a huge B is valid: the formula allocates nothing (the MSE of a mean of B)
                "batch": count_bads(1, huge=False),
            },
        )
    )

    # ------------------------------------------------------------ leave-one-out variance
    moment_bads = [
        Bad("-1", -1.0),
        Bad("NaN", math.nan, True),
        Bad("inf", math.inf, True),
        Bad("1j", 1j, True),
        Bad('"a"', "a"),
        Bad("True", True),
        Bad("None", None),
        Bad("shape (3,)", fresh(lambda: torch.ones(3))),
    ]
    T.append(
        Target(
            "leave_one_out_variance",
            C.leave_one_out_variance,
            lambda: {
                "mean_baseline_variance": torch.tensor([18.0, 96.0]),
                "f_variance": 6.0,
                "score_second_moment": torch.tensor([1.0, 2.0]),
                "gradient": torch.tensor([2.0, 2.0]),
                "num_samples": 2,
            },
            (
                "mean_baseline_variance",
                "f_variance",
                "score_second_moment",
                "gradient",
                "num_samples",
            ),
            {
                "mean_baseline_variance": moment_bads,
                "f_variance": moment_bads,
                "score_second_moment": moment_bads,
                "gradient": moment_bads[1:],  # a gradient may be negative
                # a huge N is valid: the formula allocates nothing
                "num_samples": count_bads(2, huge=False),
            },
        )
    )

    # ------------------------------------------------------------ batched score gradients
    bernoulli_fn = lambda t: Bernoulli(logits=t[..., 0])  # noqa: E731
    T.append(
        Target(
            "batched_score_gradients",
            C.batched_score_gradients,
            lambda: {
                "dist_fn": bernoulli_fn,
                "theta": torch.zeros(1),
                "x": torch.zeros(2, 3),
                "f_values": torch.zeros(2, 3),
                "baseline": "loo",
            },
            ("dist_fn", "theta", "x", "f_values"),
            {
                "dist_fn": [
                    Bad("None", None),
                    Bad("3", 3),
                    returning("a tensor", lambda t: t),
                    returning(
                        "a distribution of the wrong batch shape", lambda t: Bernoulli(logits=t)
                    ),
                ],
                "theta": tensor_bads(torch.zeros(1, 1), extra=[Bad("a list", [0.0])]),
                "x": tensor_bads(torch.zeros(3), torch.zeros(1, 3), extra=[Bad("a list", [[0.0]])]),
                "f_values": tensor_bads(
                    torch.zeros(2, 4),
                    ints=False,  # integer rewards are numbers
                    extra=[Bad("a list", [[0.0] * 3] * 2)],
                ),
                # None is valid (no baseline), and so are a number (a constant baseline) and
                # shape (R,) = (3,) (one baseline per batch, broadcast along N)
                "baseline": [
                    *(b for b in baseline_bads if b.label != "shape (3,)"),
                    Bad("shape (5,)", fresh(lambda: torch.ones(5))),
                ],
            },
        )
    )

    # ------------------------------------------------------------ measure-valued, scale
    scale_noise = lambda: (  # noqa: E731
        torch.zeros(10, dtype=torch.float64),
        torch.ones(10, dtype=torch.float64),
        torch.full((10,), 0.5, dtype=torch.float64),
    )
    T.append(
        Target(
            "measure_valued_gaussian_scale",
            C.measure_valued_gaussian_scale,
            lambda: {
                "f": square,
                "loc": 1.0,
                "scale": 1.0,
                "num_samples": 10,
                "coupled": True,
                "noise": scale_noise(),
            },
            ("f", "loc", "scale", "num_samples"),
            {
                "f": callable_bads(*F_RETURNS),
                "loc": tensor_bads(torch.zeros(2, 2), empty=False, extra=[Bad("True", True)]),
                "scale": tensor_bads(
                    torch.ones(3),
                    ints=False,
                    empty=False,
                    extra=[Bad("0", 0.0), Bad("-1", -1.0), Bad("True", True)],
                ),
                "num_samples": count_bads(2),
                "coupled": flag_bads(),
                # None is valid: noise drawn from the global generator
                "noise": [
                    Bad("3", 3),
                    Bad("two entries", fresh(lambda: scale_noise()[:2])),
                    Bad(
                        "u above 1",
                        fresh(lambda: (*scale_noise()[:2], torch.full((10,), 2.0))),
                    ),
                    Bad(
                        "a wrong shape",
                        fresh(lambda: tuple(t[:5] for t in scale_noise())),
                    ),
                    Bad(
                        "inf m",
                        fresh(
                            lambda: (
                                scale_noise()[0],
                                torch.full((10,), math.inf),
                                scale_noise()[2],
                            )
                        ),
                        True,
                    ),
                ],
            },
        )
    )

    # ------------------------------------------------------------ comparison
    T.append(
        Target(
            "gaussian_rows_exact",
            C.gaussian_rows_exact,
            lambda: {
                "f": square,
                "loc": 1.0,
                "scale": 1.0,
                "f_prime": None,
                "jumps": (),
                "step": 0.1,
                "num_nodes": 20,
            },
            ("f", "loc", "scale"),
            {
                "f": callable_bads(
                    returning("a list", lambda x: x.tolist()),
                    returning("NaN", lambda x: x * math.nan, True),
                    returning("complex values", lambda x: x.to(torch.complex64), True),
                ),
                "loc": real_bads(),
                "scale": real_bads(positive=True),
                # None is valid: no pathwise row
                "f_prime": [Bad('"x"', "x"), Bad("3", 3)],
                "jumps": [Bad("2.0", 2.0), Bad('("a",)', ("a",)), Bad("(NaN,)", (math.nan,), True)],
                "step": real_bads(extra=[Bad("2.0, above scale", 2.0), Bad("-0.1", -0.1)]),
                "num_nodes": count_bads(2),
            },
        )
    )
    T.append(
        Target(
            "gaussian_rows_measured",
            C.gaussian_rows_measured,
            lambda: {
                "f": square,
                "loc": 1.0,
                "scale": 1.0,
                "num_samples": 10,
                "baselines": {},
                "step": 0.1,
                "differentiable_f": True,
                "num_independent": None,
            },
            ("f", "loc", "scale", "num_samples"),
            {
                "f": callable_bads(*F_RETURNS[:2]),
                "loc": real_bads(),
                "scale": real_bads(positive=True),
                "num_samples": count_bads(2),
                "baselines": [Bad("None", None), Bad("[None]", [None]), Bad('"mean"', "mean")],
                "step": real_bads(positive=True),
                "differentiable_f": flag_bads(),
                # None is valid: num_samples draws
                "num_independent": count_bads(2, none=False),
            },
        )
    )
    T.append(
        Target(
            "leave_one_out_batches",
            C.leave_one_out_batches,
            lambda: {
                "f": square,
                "dist_fn": C.normal_dist,
                "theta": torch.tensor([0.0, 1.0]),
                "batch_size": 2,
                "num_batches": 4,
            },
            ("f", "dist_fn", "theta", "batch_size", "num_batches"),
            {
                "f": callable_bads(*F_RETURNS),
                "dist_fn": dist_fn_bads[:5],
                "theta": tensor_bads(
                    torch.ones(1, 2), torch.tensor(1.0), extra=[Bad("a list", [0.0, 1.0])]
                ),
                "batch_size": count_bads(2),
                "num_batches": count_bads(2),
            },
        )
    )
    T.append(
        Target(
            "text_table",
            C.text_table,
            lambda: {"header": ["a"], "rows": [["1"]]},
            ("header", "rows"),
            {
                "header": [Bad("None", None), Bad('"a"', "a"), Bad("[1]", [1])],
                "rows": [
                    Bad("None", None),
                    Bad('"abc"', "abc"),
                    Bad("a ragged row", [["1", "2"]]),
                    Bad("[1]", [1]),
                ],
            },
        )
    )

    # ------------------------------------------------------------ policy gradients for LLMs
    rewards = lambda: torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # noqa: E731
    # integer and boolean rewards are valid (a verifier's pass/fail)
    rewards_bads = tensor_bads(torch.zeros(1, 2), torch.tensor(1.0), ints=False)
    T.append(
        Target(
            "rloo_advantages",
            C.rloo_advantages,
            lambda: {"rewards": rewards()},
            ("rewards",),
            {"rewards": rewards_bads},
        )
    )
    T.append(
        Target(
            "grpo_advantages",
            C.grpo_advantages,
            lambda: {"rewards": rewards(), "scale": True, "eps": 1e-4},
            ("rewards",),
            {
                "rewards": rewards_bads,
                "scale": flag_bads(),
                # 0 is valid: no guard against a group of equal rewards
                "eps": real_bads(extra=[Bad("-1e-4", -1e-4), Bad("-1", -1.0)]),
            },
        )
    )
    T.append(
        Target(
            "sequence_surrogate",
            C.sequence_surrogate,
            lambda: {
                "token_log_probs": (-torch.rand(4, 2, 3)).requires_grad_(),
                "advantages": torch.randn(4, 2),
                "mask": torch.ones(4, 2, 3, dtype=torch.bool),
                "length_norm": "constant",
                "max_length": 3,
            },
            ("token_log_probs", "advantages", "mask"),
            {
                "token_log_probs": tensor_bads(torch.zeros(4, 2), torch.zeros(4, 2, 2)),
                "advantages": tensor_bads(torch.zeros(4), torch.zeros(3, 2)),
                "mask": [
                    Bad("None", None),
                    Bad('"abc"', "abc"),
                    Bad("a float mask", fresh(lambda: torch.ones(4, 2, 3))),
                    Bad("shape (4, 2, 2)", fresh(lambda: torch.ones(4, 2, 2, dtype=torch.bool))),
                    Bad("all False", fresh(lambda: torch.zeros(4, 2, 3, dtype=torch.bool))),
                    Bad("empty", fresh(lambda: torch.ones(0, dtype=torch.bool))),
                ],
                "length_norm": [Bad('"token"', "token"), Bad("None", None), Bad("1", 1)],
                # None is valid: the longest sequence's length
                "max_length": count_bads(1, huge=False, none=False, extra=[Bad("2 (< T = 3)", 2)]),
            },
        )
    )
    T.append(
        Target(
            "per_token_kl",
            C.per_token_kl,
            lambda: {
                "log_probs": torch.log(torch.rand(5)),
                "ref_log_probs": torch.log(torch.rand(5)),
                "kind": "k3",
            },
            ("log_probs", "ref_log_probs"),
            {
                "log_probs": tensor_bads(torch.zeros(3)),
                "ref_log_probs": tensor_bads(torch.zeros(3)),
                "kind": [Bad('"k4"', "k4"), Bad("None", None), Bad("3", 3)],
            },
        )
    )
    T.append(
        Target(
            "ppo_clip_surrogate",
            C.ppo_clip_surrogate,
            lambda: {
                "log_probs": torch.log(torch.rand(4, 3)).requires_grad_(),
                "old_log_probs": torch.log(torch.rand(4, 3)),
                "advantages": torch.randn(4, 1),
                "clip": 0.2,
            },
            ("log_probs", "old_log_probs", "advantages"),
            {
                "log_probs": tensor_bads(torch.zeros(4, 2)),
                "old_log_probs": tensor_bads(torch.zeros(4, 2)),
                # shape (3,) broadcasts against (4, 3): one advantage per token position
                "advantages": tensor_bads(torch.zeros(2)),
                "clip": probability_bads(),
            },
        )
    )

    # ------------------------------------------------------------ stochastic computation graphs
    def bern(p):
        return Bernoulli(logits=p["a"])

    def z_node():
        return C.Node("z", bern)

    def z_cost():
        return C.Cost("c", lambda p, z: z, ("z",))

    def cost_returning(fn):
        return fresh(lambda: [C.Cost("c", lambda p, z: fn(z), ("z",))])

    T.append(
        Target(
            "Node",
            C.Node,
            lambda: {"name": "z", "distribution": bern, "parents": (), "reparameterize": False},
            ("name", "distribution"),
            {
                "name": [Bad('""', ""), Bad("3", 3), Bad("None", None)],
                "distribution": [
                    Bad("None", None),
                    Bad("3.0", 3.0),
                    Bad('"Bernoulli"', "Bernoulli"),
                    Bad("a Distribution, not a function", fresh(lambda: Bernoulli(0.5))),
                ],
                "parents": [
                    Bad('"x", a string', "x"),
                    Bad("[1]", [1]),
                    Bad('("",)', ("",)),
                    Bad("None", None),
                    Bad("3", 3),
                ],
                "reparameterize": [*flag_bads(), Bad('"yes"', "yes", True)],
            },
        )
    )
    T.append(
        Target(
            "Cost",
            C.Cost,
            lambda: {"name": "c", "function": lambda p, z: z, "parents": ("z",)},
            ("name", "function"),
            {
                "name": [Bad('""', ""), Bad("3", 3), Bad("None", None)],
                "function": [*callable_bads(), Bad("3.0", 3.0)],
                "parents": [
                    Bad("(), a cost that depends on nothing", ()),
                    Bad('"z", a string', "z"),
                    Bad("[1]", [1]),
                    Bad("None", None),
                ],
            },
        )
    )
    T.append(
        Target(
            "magic_box",
            C.magic_box,
            lambda: {"log_prob_sum": torch.tensor([0.3, -2.0])},
            ("log_prob_sum",),
            # any shape is valid, and an empty tensor too: ☐ is elementwise
            {"log_prob_sum": tensor_bads(empty=False, extra=[Bad("1.0, a float", 1.0)])},
        )
    )
    cycle = fresh(  # z reads y and y reads z
        lambda: [
            C.Node("z", lambda p, y: Bernoulli(logits=y), ("y",)),
            C.Node("y", lambda p, z: Bernoulli(logits=z), ("z",)),
        ]
    )
    nodes_bads = [
        Bad("[]", fresh(list)),
        Bad('["z"]', ["z"]),
        Bad("None", None),
        Bad("a cycle", cycle),
        Bad("two nodes named z", fresh(lambda: [z_node(), z_node()])),
        Bad(
            "a path through a Bernoulli (no rsample)",
            fresh(lambda: [C.Node("z", bern, reparameterize=True)]),
        ),
        Bad("a distribution returning 0.5", fresh(lambda: [C.Node("z", lambda p: 0.5)])),
        Bad(
            "a distribution drawing one sample, not N",
            fresh(lambda: [C.Node("z", lambda p: Bernoulli(logits=p["a"].reshape(-1)[0]))]),
        ),
    ]
    costs_bads = [
        Bad("[]", fresh(list)),
        Bad("[3]", [3]),
        Bad("None", None),
        Bad("a cost on an unknown node", fresh(lambda: [C.Cost("c", lambda p, q: q, ("q",))])),
        Bad("a cost named like a node", fresh(lambda: [C.Cost("z", lambda p, z: z, ("z",))])),
        Bad("a cost returning one value", cost_returning(lambda z: z.sum())),
        Bad("a cost returning integers", cost_returning(lambda z: z.long())),
        Bad("a cost returning a list", cost_returning(lambda z: z.tolist())),
        Bad("a cost returning NaN", cost_returning(lambda z: z * math.nan), True),
        Bad("a cost returning inf", cost_returning(lambda z: z + math.inf), True),
    ]

    def params_bads(leading=()):
        """Bad parameter dicts; ``leading`` is the shape of each parameter's leading dims."""
        return [
            Bad("None", None),
            Bad('{"a": 1}', {"a": 1}),
            Bad("a list of tensors", fresh(lambda: [torch.zeros(leading)])),
            Bad("an int tensor", fresh(lambda: {"a": torch.zeros(leading, dtype=torch.long)})),
            Bad("a NaN tensor", fresh(lambda: {"a": torch.full(leading, math.nan)}), True),
            Bad("an inf tensor", fresh(lambda: {"a": torch.full(leading, math.inf)}), True),
            Bad(
                "a complex tensor",
                fresh(lambda: {"a": torch.zeros(leading, dtype=torch.complex64)}),
                True,
            ),
            Bad("a non-string key", fresh(lambda: {3: torch.zeros(leading)})),
            Bad('no "a", which the node reads', fresh(lambda: {"b": torch.zeros(leading)})),
        ]

    def b_returning(fn):
        return fresh(lambda: {"z": lambda p: fn(p["a"])})

    baselines_bads = [
        Bad("[1]", [1]),
        Bad("3", 3),
        Bad('"b"', "b"),
        Bad('{"q": f}, an unknown node', fresh(lambda: {"q": lambda p: p["a"]})),
        Bad('{"z": 3}', {"z": 3}),
        Bad("a baseline returning a string", b_returning(lambda a: "b")),
        Bad("a baseline returning shape (3,)", b_returning(lambda a: torch.zeros(3))),
        Bad("a baseline returning NaN", b_returning(lambda a: a * math.nan), True),
        Bad("a baseline returning complex values", b_returning(lambda a: a + 1j), True),
    ]
    estimator_bads = [Bad('"exact"', "exact"), Bad("None", None), Bad("3", 3)]
    for func in (C.graph_gradient, C.graph_hessian):
        options = {"estimator": "causal", "baselines": None}
        if func is C.graph_hessian:
            options = {"estimator": "dice"}
        bad = {
            # {} is refused: there is nothing to differentiate
            "params": [Bad("{}", fresh(dict)), *params_bads()],
            "nodes": nodes_bads,
            "costs": costs_bads,
            "num_samples": count_bads(2),
            "estimator": estimator_bads,
        }
        if func is C.graph_gradient:
            bad["baselines"] = baselines_bads
        T.append(
            Target(
                func.__name__,
                func,
                lambda options=options: {
                    "params": {"a": torch.tensor(0.0)},
                    "nodes": [z_node()],
                    "costs": [z_cost()],
                    "num_samples": N,
                    **options,
                },
                ("params", "nodes", "costs", "num_samples"),
                bad,
            )
        )
    T.append(
        Target(
            "graph_surrogate",
            C.graph_surrogate,
            lambda: {
                "params": {"a": torch.zeros(4, requires_grad=True)},
                "nodes": [z_node()],
                "costs": [z_cost()],
                "num_samples": 4,
                "estimator": "causal",
                "baselines": None,
            },
            ("params", "nodes", "costs", "num_samples"),
            {
                # {} is valid for a graph that reads no parameter; here it lacks "a" (below)
                "params": [
                    *params_bads((4,)),
                    Bad("a leading dimension 3, not N = 4", fresh(lambda: {"a": torch.zeros(3)})),
                ],
                "nodes": nodes_bads,
                "costs": costs_bads,
                "num_samples": count_bads(1, extra=[Bad("3 (params carry 4)", 3)]),
                "estimator": estimator_bads,
                "baselines": baselines_bads,
            },
        )
    )

    # ------------------------------------------------------------ control variates
    def log_sigmoid_sum(x):  # smooth f for the delta method
        return torch.nn.functional.logsigmoid(x).sum(-1)

    def table(k):  # f on the outcomes of a categorical (a long tensor)
        return (k.double() - 1) ** 2

    # integer gradient estimates are numbers
    cv_g_bads = tensor_bads(torch.zeros(8, 3), torch.zeros(1, 2), torch.zeros(8, 2, 1), ints=False)
    T.append(
        Target(
            "optimal_coefficient",
            C.optimal_coefficient,
            lambda: {"g": torch.randn(8, 2), "phi": torch.randn(8, 2)},
            ("g", "phi"),
            {"g": cv_g_bads, "phi": tensor_bads(torch.zeros(8, 3), torch.zeros(7, 2), ints=False)},
        )
    )
    T.append(
        Target(
            "controlled",
            C.controlled,
            lambda: {
                "g": torch.randn(8, 2),
                "phi": torch.randn(8, 2),
                "phi_mean": torch.zeros(2),
                "beta": 1.0,
            },
            ("g", "phi", "phi_mean"),
            {
                "g": cv_g_bads,
                "phi": tensor_bads(torch.zeros(8, 3), torch.zeros(7, 2), ints=False),
                "phi_mean": tensor_bads(torch.zeros(3), torch.zeros(8, 2), ints=False),
                # a number, or one coefficient per coordinate (D,)
                "beta": real_bads(
                    extra=[
                        Bad("shape (3,)", fresh(lambda: torch.ones(3))),
                        Bad("a NaN tensor", fresh(lambda: torch.tensor([1.0, math.nan])), True),
                    ]
                ),
            },
        )
    )
    gaussian_bads = {
        "f": callable_bads(*F_RETURNS, returning("a step function of x (floor)", torch.floor)),
        "loc": tensor_bads(torch.zeros(2, 2), torch.tensor(0.0), extra=[Bad("a list", [0.0, 0.0])]),
        "scale": tensor_bads(
            torch.ones(3),
            ints=False,  # an integer scale is a number
            extra=[
                Bad("negative", fresh(lambda: -torch.ones(2))),
                Bad("zero", fresh(lambda: torch.zeros(2))),
            ],
        ),
        "diagonal": flag_bads(),
    }
    cv_draws_bads = tensor_bads(torch.zeros(4, 3), torch.zeros(4), ints=False)
    for func, draw_name in (
        (C.delta_score_control_variate, "x"),
        (C.delta_pathwise_control_variate, "eps"),
    ):
        T.append(
            Target(
                func.__name__,
                func,
                lambda draw_name=draw_name: {
                    "f": log_sigmoid_sum,
                    "loc": torch.zeros(2),
                    "scale": torch.ones(2),
                    draw_name: torch.randn(4, 2),
                    "diagonal": False,
                },
                ("f", "loc", "scale", draw_name),
                {**gaussian_bads, draw_name: cv_draws_bads},
            )
        )
    categorical_logits_bads = tensor_bads(
        torch.zeros(1),  # one outcome: nothing to estimate
        torch.zeros(2, 2),
        extra=[Bad("a list", [0.0] * 4)],
    )
    outcome_f_bads = callable_bads(*F_RETURNS)
    T.append(
        Target(
            "enumerated_gradient",
            C.enumerated_gradient,
            lambda: {"f": table, "logits": torch.zeros(4)},
            ("f", "logits"),
            {"f": outcome_f_bads, "logits": categorical_logits_bads},
        )
    )
    T.append(
        Target(
            "sum_and_sample",
            C.sum_and_sample,
            lambda: {
                "f": table,
                "logits": torch.zeros(4),
                "num_summed": 1,
                "num_samples": 4,
                "baseline": 0.0,
            },
            ("f", "logits", "num_summed", "num_samples"),
            {
                "f": outcome_f_bads,
                "logits": categorical_logits_bads,
                # 0 is valid: the plain score function; at most K - 1 = 3 (one is sampled)
                "num_summed": count_bads(0, extra=[Bad("K = 4", 4)]),
                "num_samples": count_bads(2),
                "baseline": real_bads(extra=[Bad("shape (4,)", fresh(lambda: torch.zeros(4)))]),
            },
        )
    )
    T.append(
        Target(
            "VarianceNormalizer",
            C.VarianceNormalizer,
            lambda: {"decay": 0.9},
            ("decay",),
            # 0 is valid (no memory); 1 would never move from the first batch
            {"decay": real_bads(extra=[Bad("1", 1.0), Bad("-0.5", -0.5), Bad("1.5", 1.5)])},
        )
    )
    T.append(
        Target(
            "VarianceNormalizer.update",
            "update",
            lambda: {"self": C.VarianceNormalizer(), "signal": torch.randn(5)},
            ("signal",),
            # one signal is a valid batch (N >= 1); integer signals are numbers
            {
                "signal": tensor_bads(
                    torch.zeros(5, 2),
                    torch.tensor(0.0),
                    ints=False,
                    extra=[Bad("a list of strings", ["a", "b"])],
                )
            },
        )
    )

    # ------------------------------------------------------------ black-box VI
    features = torch.cat([torch.randn(6, 2, dtype=torch.float64), torch.ones(6, 1)], 1)
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)

    def posterior():
        return C.LogisticRegressionPosterior(features, labels, 1.0, num_nodes=8)

    T.append(
        Target(
            "LogisticRegressionPosterior",
            C.LogisticRegressionPosterior,
            lambda: {
                "X": features.clone(),
                "y": labels.clone(),
                "prior_scale": 1.0,
                "num_nodes": 8,
            },
            ("X", "y", "prior_scale"),
            {
                "X": tensor_bads(  # an integer X is refused: features are real numbers
                    torch.zeros(6),
                    torch.zeros(6, 3, 1),
                    torch.zeros(6, 0),
                    extra=[Bad("a string array", np.array([["a"] * 3] * 6))],
                ),
                # integer labels 0/1 are valid
                "y": tensor_bads(
                    torch.zeros(5),
                    torch.zeros(6, 1),
                    ints=False,
                    extra=[
                        Bad("labels 0 and 2", fresh(lambda: 2 * labels.clone())),
                        Bad("probabilities 0.5", fresh(lambda: torch.full((6,), 0.5))),
                        Bad("booleans", fresh(lambda: labels > 0)),
                    ],
                ),
                "prior_scale": real_bads(
                    positive=True, extra=[Bad("shape (3,)", fresh(lambda: torch.ones(3)))]
                ),
                "num_nodes": count_bads(2, extra=[Bad("301", 301)]),
            },
        )
    )
    bbvi_w_bads = tensor_bads(  # integer weights are numbers
        torch.zeros(4, 2),
        torch.tensor(0.0),
        ints=False,
        extra=[Bad("a ragged list", [[0.0], [0.0, 0.0]])],
    )
    for bbvi_method, w in (
        ("log_likelihood", lambda: torch.zeros(4, 3)),
        ("log_joint", lambda: torch.zeros(4, 3)),
        ("grad_log_likelihood", lambda: torch.zeros(4, 3)),
        ("hessian_log_likelihood", lambda: torch.zeros(3)),  # one w: one (D, D) Hessian
    ):
        extra = [Bad("a batch (4, 3)", fresh(lambda: torch.zeros(4, 3)))] if w().dim() == 1 else []
        T.append(
            Target(
                f"LogisticRegressionPosterior.{bbvi_method}",
                bbvi_method,
                lambda w=w: {"self": posterior(), "w": w()},
                ("w",),
                {"w": [*bbvi_w_bads, *extra]},
            )
        )
    q_loc_bads = tensor_bads(
        torch.zeros(2), torch.zeros(1, 3), extra=[Bad("a list", [0.0, 0.0, 0.0])]
    )
    q_scale_bads = tensor_bads(
        torch.ones(2),
        torch.ones(1, 3),
        extra=[
            Bad("a list", [1.0, 1.0, 1.0]),
            Bad("negative", fresh(lambda: -torch.ones(3))),
            Bad("zero", fresh(lambda: torch.zeros(3))),
        ],
    )
    for bbvi_method in (
        "expected_log_likelihood",
        "kl",
        "elbo",
        "elbo_grad",
        "expected_log_likelihood_grad",
    ):
        T.append(
            Target(
                f"LogisticRegressionPosterior.{bbvi_method}",
                bbvi_method,
                lambda: {
                    "self": posterior(),
                    "loc": torch.zeros(3),
                    "scale": torch.full((3,), 0.5),
                },
                ("loc", "scale"),
                {"loc": q_loc_bads, "scale": q_scale_bads},
            )
        )

    def option_bads(*extra):
        return [Bad("3", 3), Bad("True", True), Bad("a list", ["sgd"]), *extra]

    T.append(
        Target(
            "fit_bbvi",
            C.fit_bbvi,
            lambda: {
                "posterior": posterior(),
                "estimator": "pathwise",
                "num_samples": 2,
                "lr": 1e-3,
                "num_steps": 1,
                "seed": 0,
                "control_variate": "delta",
                "baseline": None,  # score only
                "log_every": 10,
                "optimizer": "sgd",
                "cosine_decay": True,
                "cv_coefficient": "estimated",  # so that cv_pilot_samples is used
                "cv_pilot_samples": 2,
                "baseline_decay": 0.9,
                "variance_replicates": 2,
            },
            ("posterior", "estimator"),
            {
                "posterior": [
                    Bad("None", None),
                    Bad('"data"', "data"),
                    Bad("the class", C.LogisticRegressionPosterior),
                    Bad("a tensor", fresh(lambda: torch.zeros(6, 3))),
                ],
                "estimator": option_bads(
                    Bad("None", None),
                    Bad('"reinforce"', "reinforce"),
                    Bad('"Pathwise"', "Pathwise"),
                ),
                # 1 is valid: no leave-one-out baseline here
                "num_samples": count_bads(1),
                "lr": real_bads(positive=True),
                "num_steps": count_bads(1),
                "seed": count_bads(0, huge=False, none=True, extra=[Bad("2**64", 2**64)]),
                # None is valid: no control variate
                "control_variate": option_bads(Bad('"taylor"', "taylor")),
                # the baselines are the score function's; here the estimator is pathwise
                "baseline": option_bads(
                    Bad('"mean"', "mean"),
                    Bad('"moving_average" with pathwise', "moving_average"),
                ),
                # a huge period is valid: the log holds steps 0 and num_steps
                "log_every": count_bads(1, huge=False),
                "optimizer": option_bads(Bad("None", None), Bad('"rmsprop"', "rmsprop")),
                "cosine_decay": flag_bads(),
                "cv_coefficient": real_bads(
                    extra=[
                        Bad('"optimal"', "optimal"),
                        Bad("shape (3,)", fresh(lambda: torch.ones(3))),
                    ]
                ),
                "cv_pilot_samples": count_bads(2),
                "baseline_decay": real_bads(
                    extra=[Bad("0", 0.0), Bad("1", 1.0), Bad("-0.5", -0.5), Bad("1.5", 1.5)]
                ),
                # 0 is valid: no variance logged
                "variance_replicates": [
                    Bad("1", 1),
                    *count_bads(0),
                ],
            },
        )
    )
    return T


# ---------------------------------------------------------------- running one bad call


class CallTimedOut(BaseException):
    """Raised in a call that runs past TIME_LIMIT_S (a BaseException: no handler swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise CallTimedOut

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fingerprint(t: torch.Tensor):
    data = t.detach()
    raw = data.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    grad = None if t.grad is None else _fingerprint(t.grad)
    return (tuple(data.shape), data.dtype, data.device, t.requires_grad, raw, grad)


def _axes_state(ax):
    return (
        len(ax.lines),
        len(ax.patches),
        len(ax.collections),
        len(ax.images),
        len(ax.texts),
        len(ax.artists),
        ax.get_xscale(),
        ax.get_yscale(),
        ax.get_legend() is not None,
        ax.axison,
        ax.get_xlim(),
        ax.get_ylim(),
    )


def _collect(path: str, value, out: dict, depth: int = 0) -> None:
    """Fingerprints of every tensor, array, model and Axes in ``value``, by path."""
    if isinstance(value, torch.Tensor):
        out[path] = _fingerprint(value)
    elif isinstance(value, np.ndarray):
        out[path] = (value.shape, value.dtype, value.tobytes())
    elif isinstance(value, nn.Module):
        for key, t in value.state_dict(keep_vars=True).items():
            out[f"{path}.{key}"] = ("meta",) if t.is_meta else _fingerprint(t)
        out[f"{path}.training"] = value.training
    elif isinstance(value, plt.Axes):
        out[path] = _axes_state(value)
    elif depth < 2 and isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _collect(f"{path}[{i}]", item, out, depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for key, item in value.items():
            _collect(f"{path}[{key!r}]", item, out, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect(f"{path}.{f.name}", getattr(value, f.name), out, depth + 1)


def snapshot(args: dict) -> dict:
    out = {}
    for name, value in args.items():
        _collect(name, value, out)
    return out


def names(message: str, param: str) -> bool:
    """Whether ``message`` names ``param`` as a word (``x`` in "x must", not in "max").

    Absolute paths are left out first: echoing a path that happens to contain the word
    (``/home/root/...``) does not name the argument.
    """
    message = re.sub(r"(?<![\w)])/[^\s'\"]+", "<path>", message)
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(param)}(?![A-Za-z0-9_])", message) is not None


@dataclass(frozen=True)
class Outcome:
    target: str
    param: str
    label: str
    clear: bool
    kind: str  # "ok", "unnamed", "other error", "returned", "hung", "slow", "changed"
    detail: str

    @property
    def passed(self) -> bool:
        return self.kind == "ok"

    @property
    def refused(self) -> bool:
        """Raised ValueError or TypeError in time, and changed nothing (named or not)."""
        return self.kind in ("ok", "unnamed")

    def __str__(self) -> str:
        return f"{self.target}({self.param}={self.label}): {self.kind}: {self.detail}"


def run_bad(target: Target, param: str, bad: Bad) -> Outcome:
    args = target.valid()
    value = bad.value.make(args.get(param)) if isinstance(bad.value, Derived) else bad.value
    args[param] = value
    before = snapshot(args)
    kind, detail = "returned", "accepted silently"
    start = time.perf_counter()
    try:
        with (
            time_limit(TIME_LIMIT_S),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            call(target, args)
    except (ValueError, TypeError) as err:
        message = str(err)
        kind = "ok" if names(message, param) else "unnamed"
        detail = f"{type(err).__name__}: {message[:200]}"
    except CallTimedOut:
        kind, detail = "hung", f"still running after {TIME_LIMIT_S} s"
    except Exception as err:  # noqa: BLE001 - every other exception is an outcome to record
        kind, detail = "other error", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        plt.close("all")
    seconds = time.perf_counter() - start
    after = snapshot(args)
    changed = sorted(key for key, old in before.items() if after.get(key, ("gone",)) != old)
    if changed:
        kind, detail = "changed", f"{changed} changed ({detail})"
    elif kind in ("ok", "unnamed") and seconds > SLOW_S:
        kind, detail = "slow", f"{seconds:.1f} s ({detail})"
    return Outcome(target.name, param, bad.label, bad.clear, kind, detail)


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module", autouse=True)
def no_audit_log():
    """The checks in the table write no audit log, even where the caller's environment names
    one; and they run outside a chapter, at the default false-alarm rate."""
    C.end_chapter()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(C.LOG_VARIABLE, raising=False)
        yield
    C.end_chapter()


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    return build_targets(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="module")
def outcomes(targets):
    results = []
    for target in targets:
        for param, bads in target.bad.items():
            for bad in bads:
                results.append(run_bad(target, param, bad))
    return results


def _public_callables():
    """Every public callable: functions, classes, and the public methods of VAE and Estimate."""
    out = set()
    for name in C.__all__:
        obj = getattr(C, name)
        if callable(obj):
            out.add(name)
        if isinstance(obj, type):
            out |= {
                f"{name}.{m}" for m, v in vars(obj).items() if not m.startswith("_") and callable(v)
            }
    return out


def test_the_table_covers_every_public_callable_and_parameter(targets):
    assert {t.name for t in targets} == _public_callables()
    for name in {t.name for t in targets}:
        rows = [t for t in targets if t.name == name]
        func = rows[0].func
        if isinstance(func, str):
            owner = getattr(C, name.split(".")[0])
            func = getattr(owner, func)
        params = [p for p in inspect.signature(func).parameters if p != "self"]
        covered = {p for t in rows for p, bads in t.bad.items() if bads}
        assert set(params) == covered, f"{name}: no bad values for {set(params) - covered}"


def test_every_valid_call_succeeds(targets):
    """The table's valid calls pass, so each bad call differs from a passing call in one place."""
    failures = []
    for target in targets:
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call(target, target.valid())
        except Exception as err:  # noqa: BLE001
            failures.append(f"{target.name}: {type(err).__name__}: {err}")
        finally:
            plt.close("all")
    assert not failures, "\n".join(failures)


def test_bad_inputs_get_a_clear_error(outcomes):
    """>= 97% of bad inputs: ValueError/TypeError naming the argument, fast, nothing changed."""
    failures = [o for o in outcomes if not o.passed]
    fraction = 1 - len(failures) / len(outcomes)
    report = (
        f"{len(outcomes)} bad inputs to {len({o.target for o in outcomes})} callables: "
        f"{fraction:.2%} refused with a clear error"
    )
    print(report)
    for o in failures:
        print("  ", o)
    assert fraction >= TARGET_FRACTION, report + "\n" + "\n".join(map(str, failures))


def test_clearly_invalid_values_are_never_accepted(outcomes):
    """NaN, inf, complex values, negative sizes and non-bool flags always raise; nothing changes."""
    clear = [o for o in outcomes if o.clear]
    assert len(clear) > 200
    accepted = [o for o in clear if not o.refused]
    assert not accepted, "\n".join(map(str, accepted))
