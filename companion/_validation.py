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


def as_finite_tensor(name: str, value, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`as_tensor`, then :func:`check_finite`; booleans are refused (True is not 1)."""
    if is_boolean(value):
        raise TypeError(f"{name} must be a real number, array or tensor, got {describe(value)}")
    return check_finite(name, as_tensor(name, value, dtype=dtype))


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming ``name`` and the first bad entry if ``tensor`` has NaN or inf."""
    if tensor.is_floating_point() and tensor.numel() and torch.isfinite(tensor.sum()):
        return tensor  # fast path: a sum of values is finite only if every value is finite
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
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {describe(value)}")
    return value


def check_callable(name: str, value):
    """Raise TypeError unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {describe(value)}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is exactly True or False (not "no", 0 or None), else TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return value


def check_device(name: str, device) -> torch.device:
    """``device`` (a string or ``torch.device``) as a device that can be used here, or ValueError.

    Catches what torch would only report later, mid-computation: an unknown name, or a
    backend this build or machine lacks (``"cuda"`` without CUDA).
    """
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(
            f"{name} must name a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from err
    try:
        torch.empty(0, device=target)
    except Exception as err:  # RuntimeError, or AssertionError when torch lacks the backend
        raise ValueError(
            f"{name}={device!r} cannot be used here ({type(err).__name__}: {err})"
        ) from err
    return target


def _memory_bytes() -> int:
    """This machine's physical memory in bytes (a generous 1 TiB where it cannot be read)."""
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**40


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.3g} GiB"


def check_allocation(name: str, value, num_bytes: float) -> None:
    """Raise ValueError naming ``name`` when a request of ``num_bytes`` cannot fit in memory.

    Called before allocating, so that ``num_samples=10**12`` gets a message of ours rather
    than an allocator error (or a swap storm) inside torch. The limit is the machine's
    physical memory; the estimate counts only the largest tensor the call makes, so passing
    this check does not guarantee the call fits.
    """
    limit = _memory_bytes()
    if num_bytes > limit:
        raise ValueError(
            f"{name}={value} would need about {_gib(num_bytes)} for one tensor alone, more "
            f"than this machine's {_gib(limit)} of memory; use a smaller {name}"
        )


def evaluate_f(f, x: torch.Tensor, num_samples: int, *, scalar: bool = True) -> torch.Tensor:
    """f(x), checked: a real tensor with one finite value per sample (its graph is kept).

    The one place where every estimator and Monte Carlo routine evaluates the caller's f.

    Args:
        f: the function under the expectation.
        x: the samples, shape ``(num_samples, ...)``.
        num_samples: N, the number of rows of ``x``.
        scalar: f must return shape ``(N,)``; otherwise ``(N, *shape)`` is accepted.

    Returns:
        f(x) as returned (integer and boolean values are converted to the dtype of ``x``
        when it is floating, else to the default dtype), shape ``(N,)`` or ``(N, *shape)``.
    """
    values = f(x)
    expected = f"({num_samples},)" if scalar else f"({num_samples}, ...)"
    if not isinstance(values, torch.Tensor):
        raise TypeError(
            f"f must return a tensor of shape {expected}, one value per sample, "
            f"got {describe(values)}"
        )
    if values.is_complex():
        raise TypeError(f"f must return real values, got {describe(values)}")
    if (
        (values.shape != (num_samples,))
        if scalar
        else (values.dim() == 0 or values.shape[0] != num_samples)
    ):
        raise ValueError(
            f"f must return one value per sample, shape {expected}, got shape "
            f"{tuple(values.shape)} for samples of shape {tuple(x.shape)}"
        )
    check_finite("f(x)", values.detach())
    if not values.is_floating_point():
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        values = values.to(dtype)
    return values


def is_boolean(value) -> bool:
    """True for Python and NumPy booleans, boolean arrays and tensors, and lists of booleans."""
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    if isinstance(value, np.ndarray):
        return value.dtype == np.bool_
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value).dtype == np.bool_
        except (TypeError, ValueError):  # ragged or mixed: not a boolean array
            return False
    return False


def check_real(name: str, value, *, positive: bool = False, minimum: float | None = None) -> float:
    """Return ``value`` as a finite float, or raise naming ``name``.

    Accepts a real number or a one-element real array or tensor (e.g. a 0-dim tensor);
    refuses booleans, strings, None, complex numbers and NaN or inf. With ``positive`` the
    value must be > 0; with ``minimum`` it must be >= ``minimum``.
    """
    if is_boolean(value):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    one_element = (isinstance(value, torch.Tensor) and value.numel() == 1) or (
        isinstance(value, np.ndarray) and value.size == 1
    )
    if isinstance(value, numbers.Real):
        number = float(value)
    elif one_element:
        number = float(as_tensor(name, value, dtype=torch.float64).reshape(()))
    else:
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if positive and not number > 0:
        raise ValueError(f"{name} must be > 0, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number
