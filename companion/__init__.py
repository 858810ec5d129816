"""companion: the tested code behind *Gradients Through Randomness*.

Each module holds one idea of the book:

- :mod:`companion.montecarlo`: Monte Carlo estimates with standard errors (Chapter 1).
- :mod:`companion.checks`: the numerical checks that follow every derivation.
- :mod:`companion.seeding`: one call to seed every generator.
- :mod:`companion.plotting`: the book's figure style and its recurring plots.
- :mod:`companion.estimators`: score-function, pathwise and finite-difference gradient estimates
  (Chapters 2 to 4), built on :mod:`companion.surrogates` and :mod:`companion.baselines`.
- :mod:`companion.reparam`: the reparameterization helper of VAE code, and which distributions
  have ``rsample`` (Chapter 4).
- :mod:`companion.diagrams`: the computational-graph figure (Chapter 2).
- :mod:`companion.measure_valued`: the measure-valued derivative for a Gaussian mean, and
  :mod:`companion.guide`, which estimator to use when (Chapter 7).
- :mod:`companion.data`: the embedded digits data set and an opt-in MNIST loader (Chapter 5).
- :mod:`companion.vae` and :mod:`companion.training`: the variational autoencoder, its bounds,
  and training with pathwise, score-function or sticking-the-landing gradients (Chapter 5).
- :mod:`companion.relaxations`: Gumbel-max, Gumbel-softmax (Concrete) and straight-through (Chapter 6).
"""

__version__ = "0.1.0"
