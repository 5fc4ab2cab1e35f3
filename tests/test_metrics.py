"""The confusion counts: rows are true classes, columns predictions, from lists or tensors; bad input is refused."""

import pytest
import torch

from residual_course.metrics import confusion_counts


def test_confusion_counts_rows_are_true_classes_columns_predictions() -> None:
    counts = confusion_counts([0, 0, 1, 2, 2, 2], torch.tensor([0, 1, 1, 2, 2, 0]), num_classes=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert counts.sum() == 6


def test_confusion_counts_refuse_mismatched_or_out_of_range_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        confusion_counts([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match="from 0 to 1"):
        confusion_counts([0, 2], [0, 1], num_classes=2)
