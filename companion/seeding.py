"""One place to seed every random number generator a chapter uses.

Library functions never seed; notebooks and tests call :func:`seed_everything` once, in
their first cells, so every number in the book is reproducible.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ._validation import check_positive_int

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA).

    Args:
        seed: an integer in [0, 2**32 - 1].

    Returns:
        A fresh ``torch.Generator`` seeded with ``seed``, for code that takes its noise
        from an explicit generator (``torch.randn(..., generator=g)``).

    Example:
        >>> g = seed_everything(0)
        >>> a = torch.rand(1); _ = seed_everything(0); bool(torch.rand(1) == a)
        True
    """
    seed = check_positive_int("seed", seed, minimum=0)
    if seed >= 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA generators too, when there are any
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
