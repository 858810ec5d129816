"""Input checks shared by the public functions.

Every message names the argument, what was expected and what was given, so that a
reader who passes the wrong thing learns how to fix it from the error alone.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch


def describe(value) -> str:
    """A short description of ``value`` for error messages: type, and shape for arrays."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def as_tensor(name: str, value, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a number, sequence, array or tensor to a floating tensor, or raise TypeError.

    Tensors keep their device; integer and boolean input becomes ``torch.get_default_dtype()``.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a number, array or tensor, got {describe(value)}")
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a number, array or tensor, got {describe(value)}"
            ) from err
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got {describe(value)}")
    if dtype is not None:
        tensor = tensor.to(dtype)
    elif not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming ``name`` and the first bad entry if ``tensor`` has NaN or inf."""
    bad = ~torch.isfinite(tensor)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} non-finite value(s) "
            f"(first at index {index}: {tensor[index].item()})"
        )
    return tensor


def check_samples(name: str, values, *, min_samples: int = 2) -> torch.Tensor:
    """Validate per-sample values shaped ``(num_samples, *shape)`` and return them as a tensor.

    Samples run along the first dimension; at least ``min_samples`` are needed to estimate
    a standard error. Values must be finite.
    """
    tensor = as_tensor(name, values)
    if tensor.dim() == 0:
        raise ValueError(
            f"{name} must have shape (num_samples, ...) with samples along dimension 0, "
            f"got a scalar"
        )
    if tensor.shape[0] < min_samples:
        raise ValueError(
            f"{name} must hold at least {min_samples} samples along dimension 0, "
            f"got {tensor.shape[0]} (shape {tuple(tensor.shape)})"
        )
    return check_finite(name, tensor)


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_probability(name: str, value, *, open_interval: bool = True) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1] when not ``open_interval``), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {describe(value)}")
    value = float(value)
    inside = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not inside:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_distribution(name: str, value) -> torch.distributions.Distribution:
    """Raise TypeError unless ``value`` is a ``torch.distributions.Distribution``."""
    if not isinstance(value, torch.distributions.Distribution):
        raise TypeError(
            f"{name} must be a torch.distributions.Distribution, got {describe(value)}"
        )
    return value


def check_callable(name: str, value):
    """Raise TypeError unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {describe(value)}")
    return value
