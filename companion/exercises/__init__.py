"""Checkers of the book's implement-it exercises: honest, immediate, offline feedback.

Each chapter's exercises have their checkers in a module named after the chapter; every
checker takes the student's function, runs it on problems with known answers, and prints
what it verified or raises :class:`ExerciseFailure` naming the mistake. The framework, with
its guarantees (seeded and reproducible verdicts, a stated false-alarm rate, a resolution of
10% or better), is described in :mod:`companion.exercises._core`.

This package is the book's, not part of the estimators' API: ``from companion import *``
does not bring its names in. Instructors can write checkers of their own with
:func:`exercise` (see its docstring and any chapter's module here).

Usage, in a notebook::

    from companion.exercises import check_antithetic_estimate
    check_antithetic_estimate(antithetic_estimate)
"""

from . import (
    choosing,
    control_variates,
    discrete,
    gradients,
    monte_carlo,
    policy_gradients,
    reparameterization,
    score_function,
    stochastic_graphs,
    vae,
)
from ._core import Exercise, ExerciseFailure, Verdict, exercise
from .choosing import *  # noqa: F403
from .control_variates import *  # noqa: F403
from .discrete import *  # noqa: F403
from .gradients import *  # noqa: F403
from .monte_carlo import *  # noqa: F403
from .policy_gradients import *  # noqa: F403
from .reparameterization import *  # noqa: F403
from .score_function import *  # noqa: F403
from .stochastic_graphs import *  # noqa: F403
from .vae import *  # noqa: F403

CHAPTERS = (
    monte_carlo,
    gradients,
    score_function,
    reparameterization,
    vae,
    discrete,
    stochastic_graphs,
    policy_gradients,
    control_variates,
    choosing,
)
"""The modules of the chapters' checkers, in the book's order."""

__all__ = ["Exercise", "ExerciseFailure", "Verdict", "exercise"] + sorted(
    name for module in CHAPTERS for name in module.__all__
)
