"""One place to seed every random number generator a chapter uses.

Library functions never seed; notebooks and tests call :func:`seed_everything` once, in
their first cells, so every number in the book is reproducible.

``make seeds`` re-executes every chapter under other seeds, to show that the checks hold for
any seed and not just the one printed: it sets the environment variable
:data:`SEED_OFFSET_VARIABLE`, which :func:`seed_everything` adds to the seed it is given.
Unset (as everywhere else), the seed is used as given.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ._validation import check_positive_int

__all__ = ["SEED_OFFSET_VARIABLE", "seed_everything"]

SEED_OFFSET_VARIABLE = "COMPANION_SEED_OFFSET"
"""Names an integer that :func:`seed_everything` adds to its seed (``make seeds`` sets it)."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA).

    Args:
        seed: an integer in [0, 2**32 - 1]; the offset in :data:`SEED_OFFSET_VARIABLE`, when
            set, is added to it (modulo 2**32).

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
    offset = os.environ.get(SEED_OFFSET_VARIABLE, "")
    if offset:
        if not offset.isdigit():
            raise ValueError(
                f"{SEED_OFFSET_VARIABLE} must be a non-negative integer, got {offset!r}"
            )
        seed = (seed + int(offset)) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA generators too, when there are any
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
