"""Tests of companion.data, fully offline.

The digits come from the copy bundled with scikit-learn. MNIST is replaced by small IDX
files generated here (a few random 28x28 images), checked with SHA-256 digests computed
here; downloads are served from a ``file://`` mirror in a temporary directory. Binarization
frequencies are checked statistically (companion.checks, false-alarm rate 1e-3).
"""

import gzip
import hashlib
import re
import struct
import urllib.request

import numpy as np
import pytest
import sklearn.datasets
import torch

from companion.checks import check_mc
from companion.data import MNIST_CHECKSUMS, Dataset, binarize, load_digits, load_mnist
from companion.seeding import seed_everything

NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# ---------------------------------------------------------------- binarization


def test_binarize_frequencies_and_fixed_seed():
    grey = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    seed_everything(5)
    draws = binarize(grey.expand(20_000, 4))
    check_mc("P(pixel = 1) = grey level", draws, grey, verbose=False)
    assert torch.equal(binarize(grey.expand(5, 4), seed=7), binarize(grey.expand(5, 4), seed=7))
    binary = draws[:10]
    assert torch.equal(binarize(binary), binary)


def test_binarize_keeps_shape_dtype_and_leaves_the_global_stream():
    grey = torch.rand(3, 2, 4, dtype=torch.float32)
    torch.manual_seed(0)
    fixed = binarize(grey, seed=2**64 - 1)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)  # a seeded call draws nothing from the global stream
    assert fixed.shape == grey.shape and fixed.dtype == torch.float32
    assert set(fixed.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(
        fixed,
        (torch.rand(grey.shape, generator=torch.Generator().manual_seed(2**64 - 1)) < grey).float(),
    )  # the documented rule 1[u < x] on the private stream
    assert binarize([[0, 1]]).dtype == torch.get_default_dtype()  # integers: default dtype


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"x": torch.tensor([1.5])}, ValueError, r"x must hold grey levels in \[0, 1\]"),
        ({"x": torch.tensor([-0.1])}, ValueError, r"x must hold grey levels in \[0, 1\]"),
        ({"x": torch.tensor([0.5, float("nan")])}, ValueError, "x must be finite"),
        ({"x": torch.tensor([float("inf")])}, ValueError, "x must be finite"),
        ({"x": "grey"}, TypeError, "x must be a number, array or tensor"),
        ({"x": torch.tensor([0.5j])}, TypeError, "x must be real"),
        ({"x": torch.tensor([0.5]), "seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"x": torch.tensor([0.5]), "seed": 2**64}, ValueError, r"seed must be an integer in \[0"),
        ({"x": torch.tensor([0.5]), "seed": 1.0}, TypeError, "seed must be an integer"),
        ({"x": torch.tensor([0.5]), "seed": True}, TypeError, "seed must be an integer"),
    ],
)
def test_binarize_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        binarize(**kwargs)


# ---------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_ranges():
    data = load_digits()
    assert isinstance(data, Dataset) and data.image_shape == (8, 8)
    assert data.train_x.shape == (1497, 64) and data.test_x.shape == (300, 64)
    assert data.train_y.shape == (1497,) and data.test_y.shape == (300,)
    assert data.train_x.dtype == data.test_x.dtype == torch.float32
    assert data.train_y.dtype == data.test_y.dtype == torch.int64
    for x in (data.train_x, data.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
        assert torch.equal(x * 16, (x * 16).round())  # pixels 0..16 divided by 16
    assert set(data.train_y.tolist()) == set(data.test_y.tolist()) == set(range(10))
    assert "1497 train / 300 test" in data.description


def test_digits_split_is_fixed_and_ignores_global_seed():
    torch.manual_seed(0)
    first = load_digits()
    torch.manual_seed(123)
    torch.rand(10)
    second = load_digits()
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name


def test_digits_split_matches_recorded_labels():
    # The book's figures and numbers depend on this split; a change must be deliberate.
    data = load_digits()
    assert data.test_y[:12].tolist() == [0, 1, 2, 6, 7, 6, 9, 1, 7, 5, 8, 3]
    assert int((data.test_x * 16).long().sum()) == 93621


@pytest.mark.parametrize("test_size", [300, 1, 1000])
def test_digits_split_partitions_all_images(test_size):
    data = load_digits(test_size)
    raw = sklearn.datasets.load_digits()
    assert len(data.test_y) == test_size and len(data.train_y) == 1797 - test_size
    ours = np.concatenate(
        [
            torch.cat([data.train_x, data.test_x]).double().numpy() * 16,
            torch.cat([data.train_y, data.test_y]).numpy()[:, None],
        ],
        axis=1,
    )
    theirs = np.concatenate([raw.data, raw.target[:, None]], axis=1)
    # Equal multisets of (image, label) rows with sizes adding to 1797: a partition.
    rows, counts = np.unique(ours, axis=0, return_counts=True)
    raw_rows, raw_counts = np.unique(theirs, axis=0, return_counts=True)
    np.testing.assert_array_equal(rows, raw_rows)
    np.testing.assert_array_equal(counts, raw_counts)


def test_digits_dtype_and_device():
    data = load_digits(dtype=torch.float64, device="cpu")
    assert data.train_x.dtype == torch.float64 and data.train_x.device.type == "cpu"
    torch.testing.assert_close(data.train_x.float(), load_digits().train_x)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"test_size": 0}, ValueError, "test_size must be an integer >= 1, got 0"),
        ({"test_size": 1797}, ValueError, r"test_size must be an integer in \[1, 1796\], got 1797"),
        ({"test_size": 2.5}, TypeError, "test_size must be an integer"),
        ({"test_size": True}, TypeError, "test_size must be an integer"),
        ({"dtype": torch.int64}, TypeError, "dtype must be a floating torch.dtype"),
        ({"device": "nowhere"}, ValueError, "device must name a torch device"),
        ({"device": 3.0}, TypeError, "device must be None, a string or a torch.device"),
    ],
)
def test_digits_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        load_digits(**kwargs)


# ---------------------------------------------------------------- MNIST from IDX files


def idx_bytes(array, *, dtype_code=0x08, ndim=None, extra=b"", cut=0):
    """An IDX file of ``array`` (uint8); the keyword arguments corrupt it on purpose."""
    ndim = array.ndim if ndim is None else ndim
    raw = struct.pack(">BBBB", 0, 0, dtype_code, ndim)
    raw += struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    return raw[: len(raw) - cut] + extra


def write(root, name, raw, *, compress=True):
    path = root / name
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mnist(tmp_path):
    """Four small valid MNIST files in ``tmp_path / 'source'``: (dir, arrays, sha256 table)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train": (rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)),
        "test": (rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3)),
    }
    root = tmp_path / "source"
    root.mkdir()
    flat = [arrays["train"][0], arrays["train"][1], arrays["test"][0], arrays["test"][1]]
    checksums = {name: ("sha256", write(root, name, idx_bytes(a))) for name, a in zip(NAMES, flat)}
    return root, arrays, checksums


def assert_matches(data, arrays):
    for x, y, (images, labels) in [
        (data.train_x, data.train_y, arrays["train"]),
        (data.test_x, data.test_y, arrays["test"]),
    ]:
        expected = torch.as_tensor(images.reshape(-1, 784), dtype=torch.float32) / 255
        assert torch.equal(x, expected) and x.dtype == torch.float32
        assert torch.equal(y, torch.as_tensor(labels, dtype=torch.int64))


def test_mnist_round_trip(mnist):
    root, arrays, checksums = mnist
    # Any hashlib algorithm works, as in the default table's MD5 entries.
    checksums[NAMES[1]] = ("md5", hashlib.md5((root / NAMES[1]).read_bytes()).hexdigest())
    data = load_mnist(root, checksums=checksums)
    assert data.image_shape == (28, 28) and data.train_x.shape == (5, 784)
    assert data.test_x.shape == (3, 784) and data.test_y.dtype == torch.int64
    assert_matches(data, arrays)
    as_double = load_mnist(str(root), checksums=checksums, dtype=torch.float64)
    assert as_double.train_x.dtype == torch.float64


def test_mnist_missing_file_without_download(mnist):
    root, _, checksums = mnist
    (root / NAMES[2]).unlink()
    pattern = re.escape(str(root / NAMES[2])) + " not found; pass download=True"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_mnist(root, checksums=checksums)


@pytest.mark.parametrize(
    "corruption, message",
    [
        ({"ndim": 2}, "IDX file with 2 dimensions, expected 3"),
        ({"dtype_code": 0x0D}, r"dtype code 0x0d, expected 0x08"),
        ({"cut": 1}, r"truncated, dimensions \(5, 28, 28\) need 3920 data bytes, found 3919"),
        ({"extra": b"\x00garbage"}, "trailing bytes"),
        ({"cut": 3920 + 8}, "truncated header"),
    ],
)
def test_mnist_corrupt_images_name_the_file(mnist, corruption, message):
    root, arrays, checksums = mnist
    corrupt = idx_bytes(arrays["train"][0], **corruption)
    checksums[NAMES[0]] = ("sha256", write(root, NAMES[0], corrupt))
    with pytest.raises(ValueError, match=re.escape(str(root / NAMES[0])) + ".*" + message):
        load_mnist(root, checksums=checksums)


@pytest.mark.parametrize(
    "raw, compress, message",
    [
        # the magic number written little-endian
        (
            b"\x03\x08\x00\x00" + bytes(20),
            True,
            r"not an IDX file, magic number 03080000 \(expected 0x00000803\)",
        ),
        (b"", True, "magic number missing"),
        (b"not gzip at all", False, "not a readable gzip file"),
    ],
)
def test_mnist_unreadable_files_name_the_file(mnist, raw, compress, message):
    root, _, checksums = mnist
    checksums[NAMES[0]] = ("sha256", write(root, NAMES[0], raw, compress=compress))
    with pytest.raises(ValueError, match=re.escape(str(root / NAMES[0])) + ".*" + message):
        load_mnist(root, checksums=checksums)


def test_mnist_image_label_count_mismatch(mnist):
    root, _, checksums = mnist
    checksums[NAMES[3]] = ("sha256", write(root, NAMES[3], idx_bytes(np.arange(4))))
    pattern = "holds 3 images but .*" + re.escape(NAMES[3]) + " holds 4 labels"
    with pytest.raises(ValueError, match=pattern):
        load_mnist(root, checksums=checksums)


def test_mnist_wrong_image_size_or_label_value(mnist):
    root, _, checksums = mnist
    checksums[NAMES[2]] = ("sha256", write(root, NAMES[2], idx_bytes(np.zeros((3, 28, 27)))))
    pattern = re.escape(NAMES[2]) + r": images of shape \(28, 27\), expected \(28, 28\)"
    with pytest.raises(ValueError, match=pattern):
        load_mnist(root, checksums=checksums)
    checksums[NAMES[1]] = ("sha256", write(root, NAMES[1], idx_bytes(np.array([1, 2, 3, 10, 0]))))
    pattern = re.escape(NAMES[1]) + ": labels must be in 0..9, found 10"
    with pytest.raises(ValueError, match=pattern):
        load_mnist(root, checksums=checksums)


def test_mnist_checksum_mismatch_on_disk(mnist):
    root, arrays, checksums = mnist
    checksums[NAMES[1]] = ("sha256", "0" * 64)
    pattern = re.escape(str(root / NAMES[1])) + ": expected sha256 0{64}, got [0-9a-f]{64}"
    with pytest.raises(ValueError, match="checksum mismatch for " + pattern):
        load_mnist(root, checksums=checksums)
    assert_matches(load_mnist(root, checksums=checksums, verify=False), arrays)


def test_mnist_checksum_table_is_validated(mnist):
    root, _, checksums = mnist
    del checksums[NAMES[3]]
    with pytest.raises(ValueError, match=re.escape(f"checksums['{NAMES[3]}']")):
        load_mnist(root, checksums=checksums)
    with pytest.raises(ValueError, match="algorithm hashlib knows"):
        load_mnist(root, checksums={**checksums, NAMES[3]: ("sha-9", "00")})
    with pytest.raises(TypeError, match="checksums must map"):
        load_mnist(root, checksums=[])
    with pytest.raises(TypeError, match="root must be a path"):
        load_mnist(3)


@pytest.mark.parametrize("flag", ["download", "verify"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_mnist_flags_must_be_bool(mnist, flag, value):
    root, _, checksums = mnist
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        load_mnist(root, checksums=checksums, **{flag: value})


def test_default_checksum_table_covers_every_file():
    assert set(MNIST_CHECKSUMS) == set(NAMES)
    for algorithm, digest in MNIST_CHECKSUMS.values():
        assert algorithm == "sha256"
        assert len(digest) == 2 * hashlib.new(algorithm).digest_size
        assert re.fullmatch("[0-9a-f]+", digest)


# ---------------------------------------------------------------- downloads (offline)


def test_mnist_download_from_file_mirror(mnist, tmp_path):
    source, arrays, checksums = mnist
    root = tmp_path / "new" / "mnist"  # created on demand
    data = load_mnist(root, download=True, mirror=source.as_uri(), checksums=checksums)
    assert_matches(data, arrays)
    assert sorted(p.name for p in root.iterdir()) == sorted(NAMES)  # no temporary files left
    for name in NAMES:
        assert (root / name).read_bytes() == (source / name).read_bytes()


def test_mnist_download_with_bad_checksum_leaves_nothing(mnist, tmp_path):
    source, _, checksums = mnist
    write(source, NAMES[0], b"corrupted on the mirror")
    root = tmp_path / "mnist"
    pattern = f"checksum mismatch for {re.escape(NAMES[0])} downloaded from .*expected sha256"
    with pytest.raises(ValueError, match=pattern):
        load_mnist(root, download=True, mirror=source.as_uri() + "/", checksums=checksums)
    assert list(root.iterdir()) == []


class BrokenResponse:
    """Serves some bytes, then fails like a dropped connection or a Ctrl-C."""

    def __init__(self, error):
        self.error, self.sent = error, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, size):
        if self.sent:
            raise self.error
        self.sent = True
        return b"\x1f\x8b partial data"


@pytest.mark.parametrize(
    "error, raised",
    [(ConnectionResetError("reset"), OSError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_mnist_download_failing_half_way_leaves_nothing(
    mnist, tmp_path, monkeypatch, error, raised
):
    source, _, checksums = mnist
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BrokenResponse(error))
    root = tmp_path / "mnist"
    with pytest.raises(raised) as info:
        load_mnist(root, download=True, mirror="https://example.invalid/mnist", checksums=checksums)
    if raised is OSError:
        assert NAMES[0] in str(info.value) and "https://example.invalid/mnist/" in str(info.value)
    assert list(root.iterdir()) == []
