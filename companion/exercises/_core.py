"""The framework of the implement-it exercises: run a student's function, judge it, explain.

A checker (one per exercise, in the module of its chapter) opens :func:`exercise` around the
student's function and calls the ``expect_*`` methods of the :class:`Exercise` it gets. Each
method either records what it verified or raises :class:`ExerciseFailure` with a message in
the student's terms: what is wrong, by how much, and, where the checker knows the typical
mistakes, which one it looks like. Messages state expected *values*, never the reference code.

Three properties make the verdicts trustworthy for a student working alone:

- **Reproducible.** The checker forks torch's random state and seeds it (``seed``), so the
  same function gets the same verdict every time, and the notebook's own random stream is
  left exactly as it was.
- **Quick.** The checker runs on one torch thread (the caller's setting is restored).
- **Calibrated.** Statistical judgements (:meth:`Exercise.expect_mean`,
  :meth:`Exercise.expect_variance`) are tests at the exercise's false-alarm rate (default
  ``1e-4``, split by Bonferroni over coordinates): a correct answer is refused with
  probability at most that, whatever seed its own draws use.
- **With power.** :meth:`Exercise.expect_mean` records its resolution, the bias it can
  detect relative to the scale of the answer; the tests of every checker assert it is at
  most 10%.

A stub that raises ``NotImplementedError`` (the student edition's empty exercise) gives a
"not attempted yet" verdict instead of an error, so the student notebook runs to the end.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from statistics import NormalDist

import torch

from .._validation import describe

__all__ = ["ExerciseFailure", "Verdict", "Exercise", "exercise"]

DEFAULT_FALSE_ALARM = 1e-4
MIN_REPEATS = 100


class ExerciseFailure(AssertionError):
    """The checker's verdict that the student's function is wrong; the message says why."""


class _NotAttempted(Exception):
    """Raised inside a checker when the student's function raises NotImplementedError."""


@dataclass(repr=False)
class Verdict:
    """The outcome of one checker run.

    Attributes:
        name: the exercise's name, e.g. ``"antithetic estimator"``.
        passed: True when every expectation held.
        attempted: False when the student's function raised ``NotImplementedError``.
        lines: what was verified, one line per expectation.
        resolution: the worst relative resolution of the mean tests (the smallest bias, as a
            fraction of the scale, that they detect), or None when none was run.
        message: the text printed for the student.
    """

    name: str
    passed: bool = False
    attempted: bool = True
    lines: list[str] = field(default_factory=list)
    resolution: float | None = None
    message: str = ""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        state = "passed" if self.passed else ("not attempted" if not self.attempted else "failed")
        return f"<Verdict {self.name!r}: {state}>"

    def _ipython_display_(self) -> None:
        """Nothing more in a notebook: the checker has printed the verdict already."""


def _z(false_alarm: float, num_comparisons: int, two_sided: bool = True) -> float:
    q = false_alarm / num_comparisons / (2 if two_sided else 1)
    return -NormalDist().inv_cdf(q)


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalized (hints are written in lower case)."""
    return text[:1].upper() + text[1:]


def _fmt(t) -> str:
    t = torch.as_tensor(t).detach().cpu()
    if t.numel() == 1:
        return f"{t.item():.4g}"
    values = ", ".join(f"{v:.4g}" for v in t.flatten()[:6].tolist())
    return f"({values}{', ...' if t.numel() > 6 else ''})"


def _clone_tensors(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_tensors(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone_tensors(v) for k, v in value.items()}
    return None


def _clone_flags(value):
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_flags(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone_flags(v) for k, v in value.items()}
    return None


def _changed(before, after) -> bool:
    if isinstance(after, torch.Tensor):
        a = after.detach()
        if a.shape != before.shape:
            return True
        return not torch.equal(torch.nan_to_num(a), torch.nan_to_num(before))
    if isinstance(after, (list, tuple)):
        return any(_changed(b, a) for b, a in zip(before, after) if b is not None)
    if isinstance(after, dict):
        return any(_changed(before[k], a) for k, a in after.items() if before.get(k) is not None)
    return False


def _arguments(args, kwargs) -> str:
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


class Exercise:
    """What a checker uses to run and judge a student's function; made by :func:`exercise`.

    Every ``expect_*`` method raises :class:`ExerciseFailure` with a student-facing message
    when the expectation fails, and adds a line to the pass message when it holds.
    """

    def __init__(self, name: str, fn, *, false_alarm: float = DEFAULT_FALSE_ALARM):
        self.name = name
        self.fn = fn
        self.false_alarm = false_alarm
        self.verdict = Verdict(name)
        self._calls = 0

    # -- running the student's function ------------------------------------------------
    def call(self, *args, **kwargs):
        """Call the student's function; refuse in-place changes of tensor arguments.

        Returns:
            What the function returned.

        Raises:
            ExerciseFailure: the function raised, or modified one of its tensor inputs.
        """
        before = [_clone_tensors(a) for a in args]
        before_kw = {k: _clone_tensors(v) for k, v in kwargs.items()}
        flags = [_clone_flags(a) for a in args]
        try:
            result = self.fn(*args, **kwargs)
        except NotImplementedError as err:
            raise _NotAttempted(str(err)) from None
        except ExerciseFailure:
            raise
        except Exception as err:  # the student's error, reported in their terms
            raise ExerciseFailure(
                f"calling your function with ({_arguments(args, kwargs)}) raised "
                f"{type(err).__name__}: {err}"
            ) from err
        for i, (b, a) in enumerate(zip(before, args)):
            if b is not None and _changed(b, a):
                self.fail(
                    f"your function modifies its input in place (argument {i + 1}, "
                    f"{describe(a)}): work on a copy, or use out-of-place operations "
                    f"(x = x + 1, not x += 1)"
                )
        for i, (flag, a) in enumerate(zip(flags, args)):
            if isinstance(a, torch.Tensor) and flag != a.requires_grad:
                self.fail(
                    f"your function changes its input (argument {i + 1}) in place: it "
                    f"switched requires_grad to {a.requires_grad}; work on a copy, e.g. "
                    f"theta.detach().requires_grad_(True)"
                )
        for k, v in kwargs.items():
            if before_kw[k] is not None and _changed(before_kw[k], v):
                self.fail(f"your function modifies its input {k!r} in place: work on a copy")
        has_tensors = any(b is not None for b in before) or any(
            b is not None for b in before_kw.values()
        )
        if has_tensors and self._calls == 0:
            self.verified("leaves its tensor inputs unchanged")
        self._calls += 1
        return result

    def repeat(self, make, times: int) -> torch.Tensor:
        """Stack ``times`` results of ``make()`` into a tensor ``(times, *shape)``."""
        values = [torch.as_tensor(make()).detach() for _ in range(times)]
        try:
            return torch.stack(values)
        except RuntimeError:
            shapes = sorted({tuple(v.shape) for v in values})
            self.fail(
                f"your function returns results of different shapes on repeated calls: {shapes}"
            )

    # -- expectations ------------------------------------------------------------------
    def fail(self, message: str):
        """Fail with ``message`` (in the student's terms)."""
        raise ExerciseFailure(message)

    def verified(self, text: str) -> None:
        """Add ``text`` to the list of what was verified."""
        if text not in self.verdict.lines:
            self.verdict.lines.append(text)

    def expect_tensor(self, value, *, shape=None, what: str = "the result", floating=True):
        """A finite torch.Tensor, of ``shape`` when given, floating-point when ``floating``."""
        if not isinstance(value, torch.Tensor):
            self.fail(f"{what} should be a torch.Tensor, got {describe(value)}")
        if shape is not None and tuple(value.shape) != tuple(shape):
            self.fail(
                f"wrong shape: {what} should have shape {tuple(shape)}, got {tuple(value.shape)}"
            )
        if floating and not value.is_floating_point():
            self.fail(f"{what} should be a floating-point tensor, got dtype {value.dtype}")
        if value.is_floating_point() and not torch.isfinite(value.detach()).all():
            self.fail(f"{what} contains NaN or inf: {_fmt(value)}")
        if shape is not None:
            self.verified(f"{what} has shape {tuple(shape)}")

    def expect_close(
        self, value, expected, *, what: str, atol=1e-8, rtol=1e-5, mistakes=None, hint=None
    ):
        """Deterministic agreement |value - expected| <= atol + rtol |expected|, elementwise."""
        value = torch.as_tensor(value).detach()
        expected = torch.as_tensor(expected).detach()
        if value.shape != expected.shape:
            self.fail(
                f"wrong shape: {what} should have shape {tuple(expected.shape)}, "
                f"got {tuple(value.shape)}"
            )
        value_dtype, expected_dtype = value.dtype, expected.dtype
        value, expected = value.double(), expected.double()
        if torch.allclose(value, expected, atol=atol, rtol=rtol):
            self.verified(f"{what} correct (to {rtol:g} relative)")
            return
        error = (value - expected).abs()
        relative = error / (atol + rtol * expected.abs())
        i = int(torch.argmax(relative.flatten()))
        where = "" if expected.numel() == 1 else f" (worst at entry {i})"
        message = (
            f"{what} is {_fmt(value.flatten()[i])} where it should be "
            f"{_fmt(expected.flatten()[i])}{where}: off by {_fmt(error.flatten()[i])}"
        )
        scale = expected.abs().max().clamp_min(1e-300)
        if float(error.max() / scale) < 1e-5 and value_dtype == torch.float64:
            message += (
                ". That is float32 rounding: part of your computation is in float32 (a "
                "torch.tensor(...) or torch.as_tensor(...) of a Python float is float32): "
                "keep the inputs' dtype, e.g. torch.as_tensor(a, dtype=x.dtype)"
            )
            self.fail(message)
        if (
            value_dtype == torch.float32
            and expected_dtype == torch.float64
            and float(error.max() / scale) < 1e-4
        ):
            message += ". Your result is float32: keep the inputs' dtype (float64)"
            self.fail(message)
        for label, wrong in (mistakes or {}).items():
            wrong = torch.as_tensor(wrong).detach().double()
            if wrong.shape == value.shape and torch.allclose(value, wrong, atol=atol, rtol=rtol):
                message += f": this is what {label} gives"
                break
        else:
            if hint:
                message += f". {_sentence(hint)}"
        self.fail(message)

    def expect_mean(self, samples, expected, *, what: str, scale=None, mistakes=None, hint=None):
        """Unbiasedness: the mean of independent ``samples`` ``(R, *shape)`` is ``expected``.

        A two-sided z-test per coordinate at the exercise's false-alarm rate, split over the
        coordinates. The resolution recorded is z * stderr / scale, per coordinate (scale:
        |expected|, or ``scale`` when given, e.g. where the answer can be 0).
        """
        samples = torch.as_tensor(samples).detach().double()
        if samples.ndim == 0 or samples.shape[0] < MIN_REPEATS:
            raise ValueError(f"expect_mean needs at least {MIN_REPEATS} samples along dim 0")
        expected = torch.as_tensor(expected).detach().double()
        if samples.shape[1:] != expected.shape:
            self.fail(
                f"wrong shape: {what} should have shape {tuple(expected.shape)}, got "
                f"{tuple(samples.shape[1:])}"
            )
        num = samples.shape[0]
        mean = samples.mean(0)
        # A floor of rounding error: where every draw agrees up to rounding, a difference of
        # a few ulps is not a bias.
        rounding = 1e-12 * (samples.abs().amax(0) + expected.abs())
        se = torch.maximum(samples.std(0) / math.sqrt(num), rounding)
        z = _z(self.false_alarm, max(1, expected.numel()))
        ref = (
            expected.abs() if scale is None else torch.as_tensor(scale).double().expand_as(expected)
        )
        resolution = float((z * se / ref.clamp_min(1e-300)).max())
        if self.verdict.resolution is None or resolution > self.verdict.resolution:
            self.verdict.resolution = resolution
        off = mean - expected
        bad = off.abs() > z * se
        if bad.any():
            i = int(torch.argmax((off.abs() / se.clamp_min(1e-300)) * bad))
            where = "" if expected.numel() == 1 else f" (coordinate {i})"
            se_i, off_i = se.flatten()[i].item(), off.flatten()[i].item()
            if samples.std(0).flatten()[i].item() == 0:
                message = (
                    f"biased: {what} gave the same value, {_fmt(mean.flatten()[i])}{where}, "
                    f"every one of {num} times, where the expected value is "
                    f"{_fmt(expected.flatten()[i])}"
                )
            else:
                message = (
                    f"biased: {what} average {_fmt(mean.flatten()[i])} ± {_fmt(se_i)}{where} "
                    f"over {num} independent repetitions, where the expected value is "
                    f"{_fmt(expected.flatten()[i])}: off by {_fmt(off_i)}, "
                    f"{abs(off_i) / se_i:.0f} standard errors"
                )
            for label, wrong in (mistakes or {}).items():
                wrong = torch.as_tensor(wrong).double()
                # A tolerance of rounding where every draw agreed (se = 0).
                tolerance = z * se + 1e-9 * (wrong.abs() + 1)
                if wrong.shape == expected.shape and bool(
                    ((mean - wrong).abs() <= tolerance).all()
                ):
                    message += f". The average matches what {label} gives"
                    break
            else:
                if hint:
                    message += f". {_sentence(hint)}"
            self.fail(message)
        self.verified(
            f"{what} unbiased: average {_fmt(mean)} against {_fmt(expected)}, over {num} "
            f"repetitions (would catch a bias of {100 * resolution:.1f}% of the scale)"
        )

    def expect_variance(self, samples, *, at_most, what: str, hint=None):
        """The per-coordinate variance of ``samples`` ``(R, *shape)`` is at most ``at_most``.

        One-sided: refuses when the sample variance exceeds ``at_most`` times the upper
        quantile of chi-square/(R - 1) at the false-alarm rate (normal approximation of the
        chi-square with R - 1 degrees of freedom, R >= 100).
        """
        samples = torch.as_tensor(samples).detach().double()
        if samples.ndim == 0 or samples.shape[0] < MIN_REPEATS:
            raise ValueError(f"expect_variance needs at least {MIN_REPEATS} samples along dim 0")
        num = samples.shape[0]
        var = samples.var(0)
        bound = torch.as_tensor(at_most).double().expand_as(var)
        m = max(1, var.numel())
        z = _z(self.false_alarm, m, two_sided=False)
        k = num - 1  # Wilson–Hilferty upper quantile of chi-square(k) / k
        factor = (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
        bad = var > bound * factor
        if bad.any():
            i = int(torch.argmax(var / bound.clamp_min(1e-300) * bad))
            message = (
                f"variance far above what this estimator should have: {what} have variance "
                f"{_fmt(var.flatten()[i])} over {num} repetitions where a correct answer has "
                f"at most about {_fmt(bound.flatten()[i])}"
            )
            if hint:
                message += f" ({hint})"
            self.fail(message)
        self.verified(f"{what}: variance {_fmt(var)} within the bound {_fmt(bound)}")

    def expect_grad(self, output, wrt, *, what: str, name: str = "θ"):
        """``output`` depends on ``wrt`` (called ``name`` in messages) through autograd, with a
        finite, nonzero gradient."""
        hint = (
            "did you call .detach(), .item() or .numpy(), work under torch.no_grad(), or "
            "draw with sample() where rsample() is needed?"
        )
        if not isinstance(output, torch.Tensor) or output.grad_fn is None:
            self.fail(
                f"the gradient does not reach {name}: {what} is not connected to {name} by "
                f"autograd ({hint})"
            )
        (grad,) = torch.autograd.grad(output.sum(), wrt, allow_unused=True, retain_graph=True)
        if grad is None or not bool(grad.abs().sum() > 0):
            self.fail(
                f"the gradient does not reach {name}: {what} does not depend on {name} through "
                f"autograd ({hint})"
            )
        if not torch.isfinite(grad).all():
            self.fail(f"the gradient of {what} with respect to {name} contains NaN or inf")
        self.verified(f"the gradient reaches {name} through {what}")

    def expect_fresh_draws(self, make, *, what: str):
        """Two consecutive calls give different results (fresh randomness each call)."""
        first = make()
        a = torch.as_tensor(first).detach().clone()
        second = make()
        b = torch.as_tensor(second).detach()
        if second is first or (
            isinstance(first, torch.Tensor)
            and isinstance(second, torch.Tensor)
            and first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()
        ):
            self.fail(
                f"{what}: your function returns the same tensor object on every call (e.g. "
                f"theta.grad, which accumulates): return a new tensor, e.g. from "
                f"torch.autograd.grad(...) or a copy"
            )
        if a.shape == b.shape and torch.equal(a, b):
            self.fail(
                f"{what}: the same on every call: does your function seed itself "
                f"(torch.manual_seed inside it) or reuse fixed noise?"
            )
        self.verified(f"{what} uses fresh draws on each call")

    def expect_reproducible(self, make, *, what: str):
        """Under the same torch seed two calls agree (draws come from torch's generator)."""
        state = torch.random.get_rng_state()
        a = torch.as_tensor(make()).detach()
        torch.random.set_rng_state(state)
        b = torch.as_tensor(make()).detach()
        if a.shape != b.shape or not torch.equal(a, b):
            self.fail(
                f"{what}: not reproducible under torch.manual_seed: draw with torch "
                f"(torch.randn, torch.rand, a distribution's sample), not numpy or random"
            )
        self.verified(f"{what} reproducible under torch.manual_seed")


def _pass_message(verdict: Verdict, seed: int, false_alarm: float) -> str:
    lines = "\n".join(f"  - {line}" for line in verdict.lines)
    return (
        f"✓ {verdict.name}: correct. Verified:\n{lines}\n"
        f"  (checker seeded with {seed}; each statistical test refuses a correct answer with "
        f"probability at most {false_alarm:g})"
    )


def exercise(
    name: str,
    fn,
    *,
    argument: str,
    seed: int = 0,
    false_alarm: float = DEFAULT_FALSE_ALARM,
    verbose: bool = True,
):
    """A context manager that runs a checker's body on the student's function ``fn``.

    ``with exercise(...) as ex:`` yields an :class:`Exercise`. It forks and seeds torch's
    random state (``seed``), so verdicts are reproducible and the caller's random stream is
    unchanged. On leaving: a NotImplementedError from the student's code gives a "not
    attempted yet" verdict (printed, not raised); an :class:`ExerciseFailure` is raised again
    with the exercise's name; otherwise the pass message is printed. The verdict is
    ``ex.verdict``.

    Args:
        name: the exercise's name as the student sees it, a non-empty string.
        fn: the student's function; must be callable (TypeError naming ``argument``).
        argument: the checker's parameter name, for that error, a non-empty string.
        seed: the checker's seed, an integer >= 0.
        false_alarm: the probability that a statistical test refuses a correct function, a
            float in (0, 0.5).
        verbose: print the verdict (a bool).

    Example:
        >>> import torch
        >>> def check_double(fn):
        ...     with exercise("double", fn, argument="fn", verbose=False) as ex:
        ...         x = torch.tensor([1.0, 2.0])
        ...         ex.expect_close(ex.call(x), 2 * x, what="the result")
        ...     return ex.verdict
        >>> check_double(lambda x: x + x).passed
        True
    """
    for label, value in (("name", name), ("argument", argument)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{label} must be a non-empty string, got {describe(value)}")
    if not isinstance(argument, str):
        raise TypeError(f"argument must be a string, got {describe(argument)}")
    if not callable(fn):
        raise TypeError(f"{argument} must be your function (a callable), got {describe(fn)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0, got {describe(seed)}")
    if not (isinstance(false_alarm, float) and 0 < false_alarm < 0.5):
        raise ValueError(f"false_alarm must be a float in (0, 0.5), got {false_alarm!r}")
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True or False, got {describe(verbose)}")
    return _run(Exercise(name, fn, false_alarm=false_alarm), seed, verbose)


@contextlib.contextmanager
def _run(ex: Exercise, seed: int, verbose: bool):
    # One thread while the checker runs (restored after): its problems are small, and on a
    # busy machine several threads make small tensor operations much slower.
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield ex
        except _NotAttempted:
            ex.verdict.attempted = False
            ex.verdict.message = (
                f"… {ex.name}: not attempted yet. Write your function in the cell above (it "
                f"still raises NotImplementedError), run it, then run this cell again."
            )
            if verbose:
                print(ex.verdict.message)
            return
        except ExerciseFailure as err:
            ex.verdict.message = f"✗ {ex.name}: {err}"
            raise ExerciseFailure(ex.verdict.message) from None
        finally:
            torch.set_num_threads(threads)
    ex.verdict.passed = True
    ex.verdict.message = _pass_message(ex.verdict, seed, ex.false_alarm)
    if verbose:
        print(ex.verdict.message)
