"""Tests of residual_course.data on the real Fashion-MNIST files and on tiny IDX files built here."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from residual_course import data
from residual_course.data import DataNotFoundError, DataSet, Split, fast_sizes, load_dataset
from residual_course.runtime import FAST_ENV_VARS

DEBIAN_FASHION = data.DEBIAN_FOLDERS["fashion-mnist"]
needs_debian_data = pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(), reason="needs `apt-get install dataset-fashion-mnist`"
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test starts outside fast mode, with an empty cache folder and nothing parsed in memory."""
    for name in FAST_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "cache"))
    data._read_folder.cache_clear()
    return tmp_path / "cache"


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array as a gzipped IDX file of unsigned bytes, the format of the original files."""
    header = np.array([0x0800 + array.ndim, *array.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def write_tiny_dataset(folder: Path, train: int = 20, test: int = 10) -> None:
    """Write four small valid files with labels cycling 0..9, so a test knows exactly what it loads."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)


@needs_debian_data
def test_full_fashion_mnist_is_normalised_and_balanced() -> None:
    fashion = load_dataset(device="cpu", download=False)
    assert (fashion.name, fashion.class_names) == ("fashion-mnist", data.CLASS_NAMES["fashion-mnist"])
    for split, count in ((fashion.train, 60000), (fashion.test, 10000)):
        assert len(split) == count
        assert split.images.shape == (count, 1, 28, 28) and split.images.dtype == torch.float32
        assert split.labels.shape == (count,) and split.labels.dtype == torch.int64
        assert torch.bincount(split.labels).tolist() == [count // 10] * 10
    pixels = fashion.train.images.double()
    assert abs(pixels.mean().item()) < 1e-4 and abs(pixels.std().item() - 1) < 1e-4


@needs_debian_data
def test_subsets_are_deterministic_and_class_balanced() -> None:
    first = load_dataset(device="cpu", train_size=1000, test_size=505, download=False)
    again = load_dataset(device="cpu", train_size=1000, test_size=505, download=False)
    assert (len(first.train), len(first.test)) == (1000, 505)
    assert torch.bincount(first.train.labels).tolist() == [100] * 10
    assert torch.bincount(first.test.labels).tolist() == [51] * 5 + [50] * 5
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.test.labels, again.test.labels)
    assert data._read_folder.cache_info().hits == 1  # the second call reused the parsed files


@needs_debian_data
def test_auto_sizes_follow_fast_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_sizes() == (None, None)
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    assert fast_sizes() == (4096, 1024)
    fashion = load_dataset(device="cpu", download=False)
    assert (len(fashion.train), len(fashion.test)) == (4096, 1024)


@needs_debian_data
def test_cache_folder_wins_over_debian_folder(isolated: Path) -> None:
    write_tiny_dataset(isolated / "fashion-mnist")
    tiny = load_dataset(device="cpu", download=False)
    assert (len(tiny.train), len(tiny.test)) == (20, 10)
    assert abs(tiny.train.images.mean().item()) < 1e-5  # statistics computed from these files, not hard-coded


def test_earlier_torchvision_download_in_the_cache_is_found(monkeypatch: pytest.MonkeyPatch,
                                                            isolated: Path, tmp_path: Path) -> None:
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "mnist", tmp_path / "not-installed")
    write_tiny_dataset(isolated / "mnist" / "MNIST" / "raw")
    assert len(load_dataset("mnist", device="cpu", download=False).train) == 20


def test_root_folder_is_read_first(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "mine", train=30, test=10)
    tiny = load_dataset("mnist", device="cpu", root=tmp_path / "mine", download=False)
    assert (len(tiny.train), len(tiny.test)) == (30, 10) and tiny.class_names[3] == "3"


def test_missing_data_says_where_it_looked_and_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                             isolated: Path, tmp_path: Path) -> None:
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "fashion-mnist", tmp_path / "not-installed")
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset(download=False)
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(isolated / "fashion-mnist") in message and "not-installed" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_mnist_missing_everywhere_raises_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(data.DEBIAN_FOLDERS, "mnist", tmp_path / "not-installed")
    with pytest.raises(DataNotFoundError, match="download=True"):
        load_dataset("mnist", download=False)


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not gzip at all"),
        lambda path: path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100])),
        lambda path: path.write_bytes(path.read_bytes()[:-20]),
        lambda path: write_idx(path, np.zeros((20, 28), dtype=np.uint8)),
    ],
    ids=["not-gzip", "truncated-payload", "truncated-gzip", "wrong-header"],
)
def test_corrupt_file_gives_a_clear_error_naming_it(tmp_path: Path, damage: Callable[[Path], object]) -> None:
    write_tiny_dataset(tmp_path / "broken")
    damage(tmp_path / "broken" / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_dataset(root=tmp_path / "broken", download=False)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="'fashion-mnist', 'mnist'"):
        load_dataset("cifar10")


@pytest.mark.parametrize("size", [0, -1, 21, 2.5, True, "all"])
def test_bad_subset_size_is_refused(tmp_path: Path, size: object) -> None:
    write_tiny_dataset(tmp_path / "tiny")
    with pytest.raises(ValueError, match="train_size must be"):
        load_dataset(root=tmp_path / "tiny", train_size=size, download=False)


def test_to_moves_every_tensor(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "tiny")
    moved = load_dataset(root=tmp_path / "tiny", device="cpu", download=False).to("meta")
    assert isinstance(moved, DataSet) and moved.name == "fashion-mnist"
    for split in (moved.train, moved.test):
        assert split.images.device.type == split.labels.device.type == "meta"


def test_split_refuses_misaligned_tensors() -> None:
    with pytest.raises(ValueError, match="3 images and 2 labels"):
        Split(torch.zeros(3, 1, 28, 28), torch.zeros(2, dtype=torch.long))


def test_shift_and_flip_keeps_shape_and_device_and_moves_each_image_at_most_padding_pixels() -> None:
    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 10, 5] = 1.0  # one bright pixel, off-centre so that a flip shows
    torch.manual_seed(0)
    moved = data.shift_and_flip(images)
    assert moved.shape == images.shape and moved.dtype == images.dtype and moved.device == images.device
    assert torch.equal(moved.sum(dim=(1, 2, 3)), torch.ones(64))  # the pixel stays inside: replicated borders are 0
    rows, columns = (moved[:, 0] == 1).nonzero()[:, 1:].T
    assert (rows - 10).abs().max() <= 2
    flipped = (columns - 5).abs() > 2
    assert ((columns[flipped] - (27 - 5)).abs() <= 2).all()
    assert 0 < flipped.sum() < 64 and len({(int(r), int(c)) for r, c in zip(rows, columns, strict=True)}) > 10
    torch.manual_seed(0)
    assert torch.equal(data.shift_and_flip(images), moved)  # seeded: repeatable


def test_shift_and_flip_without_padding_only_flips() -> None:
    images = torch.randn(32, 1, 28, 28)
    flipped = data.shift_and_flip(images, padding=0)
    same = (flipped == images).flatten(1).all(dim=1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(dim=1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
