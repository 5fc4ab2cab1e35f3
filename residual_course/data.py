"""Fashion-MNIST and MNIST as in-memory tensors on the course device: no DataLoader, no surprise downloads."""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from residual_course.runtime import check_choice, fast_mode, get_device

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "mnist": tuple(str(digit) for digit in range(10)),
}
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
DATA_ENV_VAR = "RESIDUAL_COURSE_DATA"
DEBIAN_FOLDERS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
                  "mnist": Path("/usr/share/datasets/mnist")}
DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
TORCHVISION_DATASETS = {"fashion-mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST}
FAST_SIZES = (4096, 1024)

Size = int | Literal["auto"] | None


class DataNotFoundError(FileNotFoundError):
    """Raised when no folder holds the data set's files, with the places searched and three ways to fix it."""


@dataclass(frozen=True, eq=False)
class Split:
    """One half of a data set as two aligned tensors, so a batch is just an index into both."""

    images: torch.Tensor  # float32 (N, 1, 28, 28), normalised with the training set's mean/std
    labels: torch.Tensor  # int64 (N,)

    def __post_init__(self) -> None:
        """Refuse misaligned tensors here rather than as a wrong loss deep inside training."""
        if len(self.images) != len(self.labels):
            raise ValueError(f"A Split needs one label per image, got {len(self.images)} images and "
                             f"{len(self.labels)} labels.")

    def __len__(self) -> int:
        """Number of examples, so `len(data.train)` reads naturally in notebooks."""
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        """Move both tensors at once, mirroring `Tensor.to`."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True, eq=False)
class DataSet:
    """Train and test splits with their class names, handed around as one value."""

    name: str
    train: Split
    test: Split
    class_names: tuple[str, ...]

    def to(self, device: torch.device | str) -> DataSet:
        """Move both splits at once, mirroring `Tensor.to`."""
        return replace(self, train=self.train.to(device), test=self.test.to(device))


class _RawData(NamedTuple):
    """The four parsed files as uint8 tensors plus training pixel statistics, cached once per folder."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: float
    std: float


def cache_dir() -> Path:
    """Where downloaded or copied files live: $RESIDUAL_COURSE_DATA, else ~/.cache/residual_course."""
    return Path(os.environ.get(DATA_ENV_VAR) or Path.home() / ".cache" / "residual_course").expanduser()


def fast_sizes() -> tuple[int | None, int | None]:
    """(train_size, test_size) for "auto": everything normally, a small subset in fast mode for seconds-long runs."""
    return FAST_SIZES if fast_mode() else (None, None)


def load_dataset(
    name: str = "fashion-mnist",
    device: torch.device | str | None = None,
    train_size: Size = "auto",
    test_size: Size = "auto",
    root: str | Path | None = None,
    download: bool = True,
) -> DataSet:
    """Give every notebook the same normalised data set on its device, from the first folder that holds it.

    Folders tried in order: `root` (default: `cache_dir()/<name>`, including torchvision's `<Class>/raw`
    inside it), then the Debian package folder, then a torchvision download into that first folder when
    `download` is true. `train_size`/`test_size` pick a fixed class-balanced subset; None keeps everything
    and "auto" (the default) means `fast_sizes()`, i.e. everything unless fast mode is on.
    """
    auto_train, auto_test = fast_sizes()
    train_size = auto_train if train_size == "auto" else train_size
    test_size = auto_test if test_size == "auto" else test_size
    raw = _read_folder(name, find_folder(name, root, download))
    device = torch.device(device) if device is not None else get_device()
    return DataSet(
        name=name,
        train=_make_split(raw.train_images, raw.train_labels, train_size, "train_size", raw, device),
        test=_make_split(raw.test_images, raw.test_labels, test_size, "test_size", raw, device),
        class_names=CLASS_NAMES[name],
    )


def shift_and_flip(images: torch.Tensor, padding: int = 2) -> torch.Tensor:
    """Random shifts of up to `padding` pixels (repeating the border) and left-right flips, per image, on its device."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + dy
    columns = torch.arange(width, device=images.device).view(1, 1, width) + dx
    crops = padded[torch.arange(n, device=images.device).view(n, 1, 1), :, rows, columns].permute(0, 3, 1, 2)
    flip = torch.rand(n, 1, 1, 1, device=images.device) < 0.5
    return torch.where(flip, crops.flip(-1), crops)


def _balanced_subset(labels: torch.Tensor, size: int) -> torch.Tensor:
    """Sorted indices of a fixed random subset with every class as equally represented as its examples allow."""
    generator = torch.Generator().manual_seed(0)
    rank_in_class = torch.empty_like(labels, dtype=torch.long)
    for label in labels.unique():
        members = torch.nonzero(labels == label).flatten()
        rank_in_class[members[torch.randperm(len(members), generator=generator)]] = torch.arange(len(members))
    num_classes = int(labels.max()) + 1
    round_robin = torch.argsort(rank_in_class * num_classes + labels.long())  # 1st of each class, 2nd of each, ...
    return round_robin[:size].sort().values


def find_folder(name: str, root: str | Path | None = None, download: bool = True) -> Path:
    """The folder `load_dataset` reads the data set from (same `root` and order), downloading as a last resort."""
    check_choice("data set", name, tuple(CLASS_NAMES))
    home = Path(root).expanduser() if root is not None else cache_dir() / name
    torchvision_dataset = TORCHVISION_DATASETS[name]
    downloaded = home / torchvision_dataset.__name__ / "raw"
    searched = [home, downloaded, DEBIAN_FOLDERS[name]]
    for folder in searched:
        if _holds_all_files(folder):
            return folder
    problem = ""
    if download:
        try:
            torchvision_dataset(home, download=True)
        except (OSError, RuntimeError) as error:
            problem = f" Downloading them failed too ({error})."
        if _holds_all_files(downloaded):
            return downloaded
    package = DEBIAN_PACKAGES.get(name)
    apt_hint = f"on Debian/Ubuntu run `sudo apt-get install {package}`; or " if package else ""
    raise DataNotFoundError(
        f"Could not find the {name} files {', '.join(FILES)} in {', '.join(map(str, searched))}.{problem} "
        f"To get them: {apt_hint}copy the four original .gz files into {home} (set {DATA_ENV_VAR} to move the "
        f"cache folder); or go online and call load_dataset({name!r}, download=True) so torchvision fetches them."
    )


def _holds_all_files(folder: Path) -> bool:
    """A folder counts only when complete, so a half-copied cache never shadows the Debian folder."""
    return all((folder / file).is_file() for file in FILES)


@functools.lru_cache(maxsize=4)
def _read_folder(name: str, folder: Path) -> _RawData:
    """Parse and check a folder's four files once per process, so reloading in a notebook is instant."""
    train_images, train_labels, test_images, test_labels = (
        _read_idx(folder / file, dims) for file, dims in zip(FILES, (3, 1, 3, 1), strict=True)
    )
    for images, labels, file in ((train_images, train_labels, FILES[0]), (test_images, test_labels, FILES[2])):
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"{folder / file} holds images of shape {tuple(images.shape)}, expected "
                             f"({len(labels)}, 28, 28) to match its labels file.")
        if labels.max() >= len(CLASS_NAMES[name]):
            raise ValueError(f"The labels next to {folder / file} go up to {int(labels.max())}, but {name} has only "
                             f"{len(CLASS_NAMES[name])} classes.")
    pixels = train_images.float().div_(255)
    return _RawData(train_images, train_labels, test_images, test_labels, pixels.mean().item(), pixels.std().item())


def _read_idx(path: Path, dims: int) -> torch.Tensor:
    """Parse one gzipped IDX file of unsigned bytes with numpy: fast, and clear about what is wrong with it."""
    try:
        with gzip.open(path, "rb") as file:
            payload = bytearray(file.read())
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a readable gzip file ({error}); delete it and fetch it again.") from error
    header_bytes = 4 * (1 + dims)  # big-endian uint32s: magic number, then the size of each dimension
    header = np.frombuffer(payload[:header_bytes], dtype=">u4") if len(payload) >= header_bytes else None
    if header is None or header[0] != 0x0800 + dims:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {dims} dimension(s): bad header.")
    shape = tuple(int(size) for size in header[1:])
    if len(payload) - header_bytes != np.prod(shape):
        raise ValueError(f"{path} is truncated or corrupt: its header promises shape {shape} "
                         f"({np.prod(shape)} bytes) but it holds {len(payload) - header_bytes}; fetch it again.")
    return torch.from_numpy(np.frombuffer(payload, dtype=np.uint8, offset=header_bytes).reshape(shape))


def _make_split(images: torch.Tensor, labels: torch.Tensor, size: int | None, size_name: str, raw: _RawData,
                device: torch.device) -> Split:
    """Pick the subset on the CPU, move uint8 bytes to the device, then normalise there (4x less to copy)."""
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= len(labels):
            raise ValueError(f"{size_name} must be None, 'auto' or a whole number from 1 to {len(labels)}, "
                             f"got {size!r}.")
        keep = _balanced_subset(labels, size)
        images, labels = images[keep], labels[keep]
    images = images.to(device).unsqueeze(1).float().div_(255).sub_(raw.mean).div_(raw.std)
    return Split(images, labels.to(device).long())
