"""Tests of companion.seeding."""

import random

import numpy as np
import pytest
import torch

from companion.seeding import seed_everything


def test_same_seed_same_numbers_from_every_generator():
    g = seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g))
    g = seed_everything(123)
    second = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])


def test_different_seeds_differ():
    seed_everything(1)
    a = torch.rand(4)
    seed_everything(2)
    assert not torch.equal(a, torch.rand(4))


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                         ("0", TypeError), (True, TypeError)])
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed must be an integer"):
        seed_everything(seed)
