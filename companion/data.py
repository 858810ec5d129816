"""The data of the VAE chapter: the embedded digits, MNIST on request, and binarization.

:func:`load_digits` is the book's default: the 1,797 8x8 digits that ship inside
scikit-learn, so Chapter 5 runs offline and in seconds. :func:`load_mnist` reads the classic
MNIST IDX files, downloading them only when asked and checking every file against a table of
digests. Both return a :class:`Dataset` with images flattened to rows in [0, 1].

The digits have grey levels in [0, 1], while the VAE's decoder is a product of Bernoulli
pixels, a probability mass function on *binary* images; :func:`binarize` turns grey levels
into binary images with P(pixel = 1) = grey level. Training draws a fresh binarization every
time a batch is used (dynamic binarization, the protocol of Burda et al. 2016); evaluation
uses one fixed binarization (``binarize(x, seed=...)``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ._validation import (
    as_tensor,
    check_bool,
    check_device,
    check_finite,
    check_positive_int,
    describe,
)

__all__ = [
    "DIGITS_SPLIT_SEED",
    "MNIST_MIRROR",
    "MNIST_CHECKSUMS",
    "Dataset",
    "binarize",
    "load_breast_cancer",
    "load_digits",
    "load_mnist",
]


DIGITS_SPLIT_SEED = 0  # seeds the torch.Generator whose permutation splits the digits
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # or load_mnist(mirror=...)

MNIST_CHECKSUMS = {
    # filename: (hashlib algorithm, hex digest): the published SHA-256 sums of the gzip'd files,
    # the same on every mirror. Any hashlib algorithm can stand in a custom table.
    "train-images-idx3-ubyte.gz": (
        "sha256",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        "sha256",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "sha256",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "sha256",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

_MNIST_SPLITS = (
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),  # (images,
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)  # labels) files
_IDX_UBYTE = 0x08  # IDX dtype code of unsigned bytes, the only one MNIST uses


@dataclass(frozen=True)
class Dataset:
    """Images flattened to rows with values in [0, 1], and their integer labels.

    Attributes:
        train_x: training images, shape ``(n_train, H * W)``, floating point in [0, 1].
        train_y: their labels, shape ``(n_train,)``, int64 in 0..9.
        test_x: held-out images, shape ``(n_test, H * W)``.
        test_y: their labels, shape ``(n_test,)``.
        image_shape: ``(H, W)``; ``x.reshape(-1, *image_shape)`` gives images to plot.
        description: where the data come from and how they were split.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, int]
    description: str

    def __post_init__(self):
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a string, got {describe(self.description)}")
        shape = self.image_shape
        if not isinstance(shape, tuple):
            raise TypeError(f"image_shape must be a tuple (H, W), got {describe(shape)}")
        if len(shape) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise ValueError(f"image_shape must be (H, W) with positive integers, got {shape!r}")
        pixels = shape[0] * shape[1]
        for x_name, y_name in (("train_x", "train_y"), ("test_x", "test_y")):
            x, y = getattr(self, x_name), getattr(self, y_name)
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise TypeError(f"{x_name} must be a floating-point tensor, got {describe(x)}")
            if x.dim() != 2 or x.shape[1] != pixels:
                raise ValueError(
                    f"{x_name} must have shape (n, H * W = {pixels}) for "
                    f"image_shape {shape}, got shape {tuple(x.shape)}"
                )
            check_finite(x_name, x)
            if x.numel() and (x.min() < 0 or x.max() > 1):
                raise ValueError(
                    f"{x_name} must hold values in [0, 1], got values in "
                    f"[{x.min().item():.4g}, {x.max().item():.4g}]"
                )
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64:
                raise TypeError(f"{y_name} must be an int64 tensor of labels, got {describe(y)}")
            if y.shape != (x.shape[0],):
                raise ValueError(
                    f"{y_name} must hold one label per row of {x_name}, shape "
                    f"({x.shape[0]},), got shape {tuple(y.shape)}"
                )

    def __repr__(self) -> str:
        return (
            f"Dataset(train_x={tuple(self.train_x.shape)}, test_x={tuple(self.test_x.shape)}, "
            f"image_shape={self.image_shape}, dtype={self.train_x.dtype})"
        )


def binarize(x, seed: int | None = None) -> torch.Tensor:
    """Binary images with P(pixel = 1) = grey level: x_bin = 1[u < x], u ~ U(0, 1).

    Dynamic binarization (Burda et al. 2016) calls this afresh on every minibatch; a
    fixed ``seed`` gives the one binarization a test set is scored on. A binary input comes
    back unchanged, so already-binary data gives a fixed binarization. Chapter 5 uses it.

    Args:
        x: finite grey levels in [0, 1], any shape.
        seed: None draws u from the global torch generator (dynamic binarization, fresh every
            call); an integer in [0, 2**64) draws u from a private CPU generator seeded with
            it, so the result is the same on every call and every device (a fixed
            binarization). Library code never seeds the global generator.

    Returns:
        A tensor of zeros and ones with the shape, dtype and device of ``x`` (integer and
        boolean input becomes the default floating dtype); binary input comes back unchanged.

    Example:
        >>> binarize(torch.tensor([0.0, 1.0, 1.0]))
        tensor([0., 1., 1.])
    """
    x = check_finite("x", as_tensor("x", x))
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must hold grey levels in [0, 1], got values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]"
        )
    if seed is None:
        u = torch.rand(x.shape, dtype=x.dtype, device=x.device)
    else:
        seed = check_positive_int("seed", seed, minimum=0)
        if seed >= 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return (u.to(x.device) < x).to(x.dtype)


def _check_dtype_device(dtype, device) -> torch.device:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {describe(dtype)}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a string or a torch.device, got {describe(device)}")
    return check_device("device", "cpu" if device is None else device)


def load_digits(
    test_size: int = 300, *, dtype: torch.dtype = torch.float32, device=None
) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits, split into train and test; Chapter 5's data.

    Pixels are integers 0..16 in the original, divided by 16 here. The split is fixed: a
    permutation from a ``torch.Generator`` seeded with :data:`DIGITS_SPLIT_SEED` (never the
    global generator); its first ``test_size`` indices, sorted, form the test set and the rest,
    sorted, the training set. The default gives 1,497 train and 300 test images.

    Args:
        test_size: number of test images, an integer in [1, 1796].
        dtype: floating dtype of the images.
        device: where the tensors live (default CPU).

    Returns:
        A :class:`Dataset` with ``train_x`` of shape ``(1797 - test_size, 64)``, ``test_x`` of
        shape ``(test_size, 64)``, int64 labels and ``image_shape == (8, 8)``.

    Example:
        >>> data = load_digits()
        >>> data.train_x.shape, data.test_x.shape, data.image_shape
        (torch.Size([1497, 64]), torch.Size([300, 64]), (8, 8))
    """
    test_size = check_positive_int("test_size", test_size)
    device = _check_dtype_device(dtype, device)
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn") from err
    raw = sklearn_digits()
    x = torch.as_tensor(raw.data, dtype=torch.float64) / 16.0  # (1797, 64), pixels 0..16
    y = torch.as_tensor(raw.target, dtype=torch.int64)  # (1797,)
    n = x.shape[0]
    if test_size >= n:
        raise ValueError(f"test_size must be an integer in [1, {n - 1}], got {test_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    test, train = perm[:test_size].sort().values, perm[test_size:].sort().values
    x, y = x.to(dtype=dtype, device=device), y.to(device=device)
    return Dataset(
        x[train],
        y[train],
        x[test],
        y[test],
        (8, 8),
        f"scikit-learn digits (UCI optical recognition of handwritten digits): "
        f"{n} 8x8 images, pixels 0..16 divided by 16; {n - test_size} train / "
        f"{test_size} test, split by a permutation seeded with {DIGITS_SPLIT_SEED}",
    )


def load_breast_cancer(dtype: torch.dtype = torch.float64, device=None):
    """scikit-learn's breast-cancer data, standardized, with a bias column, for the BBVI case study.

    The Wisconsin diagnostic breast-cancer data (569 tumours, 30 real features, a binary
    diagnosis) ship inside scikit-learn, so the black-box variational inference case study of
    Mohamed et al. (2020, §8.3) runs offline. Each feature column is standardized to mean 0
    and (population) standard deviation 1; a column of ones is appended last, so that a
    weight vector of dimension 31 includes the intercept.

    Args:
        dtype: floating dtype of X and y (default float64).
        device: where the tensors live (default CPU).

    Returns:
        ``(X, y)``: X of shape ``(569, 31)`` (last column all ones), y of shape ``(569,)``
        with values in {0, 1} (scikit-learn's target: 1 = benign), both of ``dtype``.

    Example:
        >>> X, y = load_breast_cancer()
        >>> X.shape, y.shape, float(X[:, -1].min())
        (torch.Size([569, 31]), torch.Size([569]), 1.0)
    """
    device = _check_dtype_device(dtype, device)
    try:
        from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer
    except ImportError as err:
        raise ImportError(
            "load_breast_cancer needs scikit-learn: pip install scikit-learn"
        ) from err
    raw = sklearn_breast_cancer()
    x = torch.as_tensor(raw.data, dtype=torch.float64)  # (569, 30)
    x = (x - x.mean(0)) / x.std(0, unbiased=False)  # standardized columns
    x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=torch.float64)], dim=1)  # (569, 31)
    y = torch.as_tensor(raw.target, dtype=torch.float64)  # (569,), in {0, 1}
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, path: Path, algorithm: str, expected: str) -> None:
    """Fetch ``url`` into a temporary file next to ``path``; rename it only once it verifies."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        h = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        h.update(chunk)
            except OSError as err:  # URLError, HTTPError, timeouts, dropped connections
                raise OSError(f"could not download {url} to {path}: {err}") from err
        if h.hexdigest() != expected.lower():
            raise ValueError(
                f"checksum mismatch for {path.name} downloaded from {url}: expected "
                f"{algorithm} {expected}, got {h.hexdigest()}; nothing was saved"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes files private; data files are not secrets
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave a partial file behind
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Parse a gzip'd IDX file of unsigned bytes with ``ndim`` dimensions into a uint8 tensor.

    Layout: magic (two zero bytes, dtype code 0x08, ndim), ndim big-endian uint32 sizes, then
    prod(sizes) bytes in row-major order (magic 0x00000803 for images, 0x00000801 for labels).
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a readable gzip file ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file, magic number {raw[:4].hex() or 'missing'} "
            f"(expected 0x{_IDX_UBYTE << 8 | ndim:08x})"
        )
    if raw[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: IDX dtype code 0x{raw[2]:02x}, expected 0x08 (unsigned byte)")
    if raw[3] != ndim:
        raise ValueError(f"{path}: IDX file with {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header, {len(raw)} bytes (expected {header})")
    sizes = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(sizes)
    if len(raw) - header != expected:
        problem = "truncated" if len(raw) - header < expected else "trailing bytes"
        raise ValueError(
            f"{path}: {problem}, dimensions {sizes} need {expected} data bytes, "
            f"found {len(raw) - header}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(sizes)


def _check_checksums(checksums) -> dict:
    if not isinstance(checksums, Mapping):
        raise TypeError(
            f"checksums must map file name to (algorithm, hex digest), got {describe(checksums)}"
        )
    for name in (n for pair in _MNIST_SPLITS for n in pair):
        entry = checksums.get(name)
        valid = isinstance(entry, tuple) and len(entry) == 2
        if not (
            valid
            and all(isinstance(e, str) for e in entry)
            and entry[0] in hashlib.algorithms_available
        ):
            raise ValueError(
                f"checksums[{name!r}] must be (algorithm, hex digest) with an "
                f"algorithm hashlib knows, e.g. ('sha256', '...'), got {entry!r}"
            )
    return checksums


def _ensure_file(path: Path, download: bool, mirror: str, checksum, verify: bool) -> Path:
    """Return ``path`` once it exists and matches ``checksum``, downloading it if allowed."""
    algorithm, expected = checksum
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"MNIST file {path} not found; pass download=True to fetch it from {mirror}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        _download(mirror.rstrip("/") + "/" + path.name, path, algorithm, expected)
    elif verify and (actual := _digest(path, algorithm)) != expected.lower():
        raise ValueError(
            f"checksum mismatch for {path}: expected {algorithm} {expected}, "
            f"got {actual}; if checksums[{path.name!r}] is right, delete the file and pass "
            "download=True"
        )
    return path


def load_mnist(
    root,
    download: bool = False,
    *,
    mirror: str = MNIST_MIRROR,
    checksums: Mapping = MNIST_CHECKSUMS,
    verify: bool = True,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Dataset:
    """MNIST's 60,000 train and 10,000 test 28x28 digits, read from the IDX files under ``root``.

    The four gzip'd files (the keys of :data:`MNIST_CHECKSUMS`) are read from ``root``. A
    missing file raises ``FileNotFoundError`` unless ``download=True``, which fetches it from
    ``mirror`` into a temporary file in ``root`` and renames it only after its digest matches
    ``checksums``; on any failure the temporary file is removed. With ``verify=True`` files
    already on disk are checked too. Pixels 0..255 are divided by 255. The book uses MNIST
    only as an opt-in alternative to :func:`load_digits` in Chapter 5.

    Args:
        root: directory holding (or to receive) the files.
        download: fetch missing files from ``mirror`` (exactly True or False).
        mirror: base URL; file names are appended to it.
        checksums: file name -> (hashlib algorithm, hex digest), for all four files.
        verify: check files already on disk against ``checksums`` (exactly True or False).
        dtype, device: floating dtype and device of the images.

    Returns:
        A :class:`Dataset` with ``train_x`` shaped ``(60000, 784)``, ``test_x`` shaped
        ``(10000, 784)``, int64 labels and ``image_shape == (28, 28)``.

    Raises:
        TypeError: an argument of the wrong type, e.g. ``download="no"``.
        FileNotFoundError: a file is missing and ``download`` is false.
        ValueError: ``root`` is a file, or a file under it fails its checksum or is not a
            valid IDX file; the message names it.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path, got {describe(root)}")
    if os.path.exists(root) and not os.path.isdir(root):
        raise ValueError(f"root must be a directory, got {os.fspath(root)!r}, which is a file")
    if not isinstance(mirror, str):
        raise TypeError(f"mirror must be a URL string, got {describe(mirror)}")
    download, verify = check_bool("download", download), check_bool("verify", verify)
    checksums = _check_checksums(checksums)
    device = _check_dtype_device(dtype, device)
    root, splits = Path(root), []
    for images_name, labels_name in _MNIST_SPLITS:
        paths = [
            _ensure_file(root / name, download, mirror, checksums[name], verify)
            for name in (images_name, labels_name)
        ]
        try:
            images, labels = _read_idx(paths[0], 3), _read_idx(paths[1], 1)
        except ValueError as err:
            raise ValueError(f"root {str(root)!r} holds a file that is not MNIST: {err}") from err
        if images.shape[1:] != (28, 28):
            raise ValueError(
                f"{paths[0]}: images of shape {tuple(images.shape[1:])}, expected (28, 28)"
            )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{paths[0]} holds {images.shape[0]} images but "
                f"{paths[1]} holds {labels.shape[0]} labels"
            )
        if labels.numel() and labels.max() > 9:
            raise ValueError(f"{paths[1]}: labels must be in 0..9, found {int(labels.max())}")
        x = images.reshape(-1, 784).to(dtype=dtype, device=device) / 255  # (n, 784) in [0, 1]
        splits += [x, labels.to(dtype=torch.int64, device=device)]
    return Dataset(
        *splits,
        (28, 28),
        f"MNIST from {root}: {len(splits[1])} train / "
        f"{len(splits[3])} test 28x28 images, pixels 0..255 divided by 255",
    )
