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


@pytest.mark.parametrize(
    "seed, error",
    [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)],
)
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed must be an integer"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [None, torch.tensor(3), 3.0, "3", False, -5, 2**64])
def test_a_bad_seed_leaves_every_generator_as_it_was(seed):
    torch_state, numpy_state, python_state = (
        torch.random.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
    )
    with pytest.raises((TypeError, ValueError), match="seed must be an integer"):
        seed_everything(seed)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert random.getstate() == python_state
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


def test_numpy_integers_and_the_largest_seed_are_accepted():
    g = seed_everything(np.int64(7))
    assert isinstance(g, torch.Generator) and g.initial_seed() == 7
    assert seed_everything(2**32 - 1).initial_seed() == 2**32 - 1


def test_the_seed_offset_shifts_every_stream(monkeypatch):
    """make seeds sets COMPANION_SEED_OFFSET=k: seed s then draws what seed s + k draws."""
    from companion.seeding import SEED_OFFSET_VARIABLE

    seed_everything(7)
    expected = torch.rand(3)
    monkeypatch.setenv(SEED_OFFSET_VARIABLE, "2")
    seed_everything(5)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
    monkeypatch.setenv(SEED_OFFSET_VARIABLE, "two")
    with pytest.raises(ValueError, match="COMPANION_SEED_OFFSET must be a non-negative integer"):
        seed_everything(5)
    monkeypatch.delenv(SEED_OFFSET_VARIABLE)
    seed_everything(7)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
