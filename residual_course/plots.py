"""The course's standard plots, so every notebook draws gradient profiles and learning curves alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from residual_course.training import History

GRAD_NORM_FLOOR = 1e-30
HISTORY_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def plot_grad_norms(norms: dict[str, list[float]], ax: Axes | None = None, title: str | None = None) -> Axes:
    """Per-layer gradient norms on a log scale, where vanishing shows up as a straight falling line.

    One line per label, x = layer index (1 = input layer). Norms below GRAD_NORM_FLOOR (exact zeros from
    dead units included) are clipped up to it, because a log axis cannot show zero. Without `ax` the axes
    come from `plt.subplots()`, so a plain notebook cell shows the figure.
    """
    if ax is None:
        _, ax = plt.subplots()
    for label, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        ax.plot(layers, np.clip(values, GRAD_NORM_FLOOR, None), marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel("‖∂loss/∂W‖")
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_history(histories: dict[str, History], metrics: tuple[str, ...] = ("train_loss", "test_accuracy")) -> Figure:
    """Learning curves of several runs side by side, one subplot per metric, to compare them per epoch.

    The figure comes from `plt.subplots()`, so a plain notebook cell shows it.
    """
    if not metrics or not set(metrics) <= set(HISTORY_METRICS):
        raise ValueError(f"metrics must be a non-empty tuple from {', '.join(HISTORY_METRICS)}, got {metrics}.")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for label, history in histories.items():
            values = getattr(history, metric)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_counts(labels: object, predictions: object, num_classes: int) -> np.ndarray:
    """Counts[true, predicted] over a test set, the table a confusion-matrix plot draws and a notebook asserts on.

    `labels` and `predictions` are class indices of equal length: lists, NumPy arrays or tensors on any device.
    """
    true, predicted = _as_indices(labels), _as_indices(predictions)
    if true.shape != predicted.shape:
        raise ValueError(f"labels and predictions must have the same length, got {true.shape} and "
                         f"{predicted.shape}.")
    for name, values in (("labels", true), ("predictions", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must be class indices from 0 to {num_classes - 1}, got values from "
                             f"{values.min()} to {values.max()}.")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


def plot_confusion_matrix(labels: object, predictions: object, class_names: tuple[str, ...] | list[str],
                          ax: Axes | None = None, title: str | None = None) -> Axes:
    """Which classes a classifier mixes up: each row (true class) in % of its examples, diagonal = per-class recall.

    Cells are annotated with their percentage (rounded); rows sum to 100. Without `ax` the axes come from
    `plt.subplots()`, so a plain notebook cell shows the figure.
    """
    counts = confusion_counts(labels, predictions, len(class_names))
    totals = counts.sum(axis=1, keepdims=True)
    percent = 100 * counts / np.maximum(totals, 1)
    if ax is None:
        size = max(4.0, 0.55 * len(class_names) + 1.5)
        _, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    ax.figure.colorbar(image, ax=ax, label="% of the true class")
    for (row, column), value in np.ndenumerate(percent):
        if counts[row, column]:
            ax.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value > 50 else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_misclassified(images: object, labels: object, predictions: object, class_names: tuple[str, ...] | list[str],
                       max_images: int = 16, columns: int = 8) -> Figure:
    """The first `max_images` test images the model got wrong, titled "true -> predicted", to see why it errs.

    `images` is (N, H, W) or (N, 1, H, W) (any scaling: each image is shown with its own grey range). When nothing
    is misclassified the figure says so. The figure comes from `plt.subplots()`, so a plain notebook cell shows it.
    """
    if max_images < 1 or columns < 1:
        raise ValueError(f"max_images and columns must be at least 1, got {max_images} and {columns}.")
    pixels = _as_array(images)
    if pixels.ndim == 4 and pixels.shape[1] == 1:
        pixels = pixels[:, 0]
    if pixels.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W) greyscale, got shape {pixels.shape}.")
    true, predicted = _as_indices(labels), _as_indices(predictions)
    if not len(pixels) == len(true) == len(predicted):
        raise ValueError(f"need one label and one prediction per image, got {len(pixels)} images, {len(true)} "
                         f"labels and {len(predicted)} predictions.")
    wrong = np.flatnonzero(true != predicted)[:max_images]
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return fig
    columns = min(columns, len(wrong))
    rows = -(-len(wrong) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 2.1 * rows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(pixels[index], cmap="gray")
        ax.set_title(f"{class_names[true[index]]}\n-> {class_names[predicted[index]]}", fontsize=8)
    fig.suptitle("misclassified: true -> predicted")
    return fig


def _as_array(values: object) -> np.ndarray:
    """A NumPy copy of a list, array or tensor (on any device), without importing torch here."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_indices(values: object) -> np.ndarray:
    """Class indices as a flat int64 array."""
    return _as_array(values).astype(np.int64).reshape(-1)
