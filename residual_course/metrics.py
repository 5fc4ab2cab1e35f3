"""What a classifier's predictions score: the confusion counts a notebook asserts on and the confusion matrix draws."""

from __future__ import annotations

import numpy as np


def confusion_counts(labels: object, predictions: object, num_classes: int) -> np.ndarray:
    """Counts[true, predicted] over a test set, the table a confusion-matrix plot draws and a notebook asserts on.

    `labels` and `predictions` are class indices of equal length: lists, NumPy arrays or tensors on any device.
    """
    true, predicted = as_indices(labels), as_indices(predictions)
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


def as_array(values: object) -> np.ndarray:
    """A NumPy copy of a list, array or tensor (on any device), without importing torch."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def as_indices(values: object) -> np.ndarray:
    """Class indices as a flat int64 array, from a list, an array or a tensor."""
    return as_array(values).astype(np.int64).reshape(-1)
