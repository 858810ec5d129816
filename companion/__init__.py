"""companion: the tested code behind *Gradients Through Randomness*.

The public API is re-exported here (``from companion import score_function``), as
``torch.distributions`` does; each name also lives in the module of its idea:

- :mod:`companion.montecarlo`: Monte Carlo estimates with standard errors, and the one estimate
  type :class:`Estimate` that every estimator returns; importance sampling, effective sample
  size and stratification (Chapter 1).
- :mod:`companion.checks`: the numerical checks that follow every derivation, and
  :mod:`companion.ledger`, a chapter's false-alarm budget and the audit log of its checks.
- :mod:`companion.seeding`: one call to seed every generator.
- :mod:`companion.estimators`: score-function, pathwise and finite-difference gradient estimates,
  ``(f, dist_fn, theta, num_samples)``, and the per-sample gradient engine (Chapters 2 to 4),
  with :mod:`companion.baselines` and :mod:`companion.surrogates`; gradients of the Gaussian
  smoothing of an objective (evolution strategies, SPSA) in :mod:`companion.smoothing`.
- :mod:`companion.quadrature` and :mod:`companion.problems`: exact expectations, and the
  book's recurring test problems with their closed forms.
- :mod:`companion.reparam`: the reparameterization helper of VAE code, and which distributions
  have ``rsample`` (Chapter 4).
- :mod:`companion.diagrams`: the computational-graph figure (Chapter 2).
- :mod:`companion.measure_valued`: the measure-valued derivatives for a Gaussian's mean and
  scale; :mod:`companion.guide`, which estimator to use when, and
  :mod:`companion.comparison`, the estimators' variances side by side (Chapter 7).
- :mod:`companion.data`: the embedded digits data set, binarization and an opt-in MNIST loader.
- :mod:`companion.vae` (the model and its bounds) and :mod:`companion.training` (training with
  pathwise, score-function or sticking-the-landing gradients), Chapter 5.
- :mod:`companion.relaxations`: Gumbel-max, Gumbel-softmax and straight-through, and
  :mod:`companion.rebar`: REBAR for Bernoulli variables (Chapter 6).
- :mod:`companion.policy`: advantages (RLOO, GRPO, Dr. GRPO), the per-sequence surrogate,
  per-token KL estimators and PPO's clipped surrogate (policy gradients).
- :mod:`companion.plotting`: the book's figure style and its recurring plots.
- :mod:`companion.control_variates`: conditioning (enumeration, sum and sample), control
  variates for gradient estimators (the optimal coefficient, the delta method for the score
  function and the pathwise estimator) and NVIL's variance normalization; RELAX is in
  :mod:`companion.rebar` (the chapter on control variates).
- :mod:`companion.bbvi`: black-box variational inference for Bayesian logistic regression
  (the breast-cancer case study of Mohamed et al. 2020, Section 8.3), with the exact ELBO.
- :mod:`companion.graphs`: stochastic computation graphs: the surrogate loss with causality and
  per-node baselines, and DiCE for higher derivatives.

Counts have one name each: ``num_samples`` draws of x, ``num_particles`` draws of z per data
point, ``k`` importance samples of a bound, ``num_images``, ``num_draws``, ``num_pairs``.
"""

__version__ = "1.1.0"

from . import (
    baselines,
    bbvi,
    checks,
    comparison,
    control_variates,
    data,
    diagrams,
    estimators,
    graphs,
    guide,
    ledger,
    measure_valued,
    montecarlo,
    plotting,
    policy,
    problems,
    quadrature,
    rebar,
    relaxations,
    reparam,
    seeding,
    smoothing,
    surrogates,
    training,
    vae,
)
from .baselines import *  # noqa: F403
from .bbvi import *  # noqa: F403
from .checks import *  # noqa: F403
from .comparison import *  # noqa: F403
from .control_variates import *  # noqa: F403
from .data import *  # noqa: F403
from .diagrams import *  # noqa: F403
from .estimators import *  # noqa: F403
from .graphs import *  # noqa: F403
from .guide import *  # noqa: F403
from .ledger import *  # noqa: F403
from .measure_valued import *  # noqa: F403
from .montecarlo import *  # noqa: F403
from .plotting import *  # noqa: F403
from .policy import *  # noqa: F403
from .problems import *  # noqa: F403
from .quadrature import *  # noqa: F403
from .rebar import *  # noqa: F403
from .relaxations import *  # noqa: F403
from .reparam import *  # noqa: F403
from .seeding import *  # noqa: F403
from .smoothing import *  # noqa: F403
from .surrogates import *  # noqa: F403
from .training import *  # noqa: F403
from .vae import *  # noqa: F403

MODULES = (
    baselines,
    bbvi,
    checks,
    comparison,
    control_variates,
    data,
    diagrams,
    estimators,
    graphs,
    guide,
    ledger,
    measure_valued,
    montecarlo,
    plotting,
    policy,
    problems,
    quadrature,
    rebar,
    relaxations,
    reparam,
    seeding,
    smoothing,
    surrogates,
    training,
    vae,
)
"""The modules whose ``__all__`` make up the public API."""

__all__ = sorted({name for module in MODULES for name in module.__all__})
