"""Classification plots: the confusion matrix counts and draws per true class; the misclassified grid shows errors."""

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from residual_course.plots import plot_confusion_matrix, plot_misclassified  # noqa: E402

NAMES = ("cat", "dog", "bird")


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    """Close every pyplot figure after each test, so none pile up."""
    yield
    plt.close("all")


def test_plot_confusion_matrix_shows_row_percentages_with_class_names() -> None:
    ax = plot_confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), NAMES, title="toy")
    assert isinstance(ax, Axes)
    percent = ax.get_images()[0].get_array()
    assert np.allclose(percent, [[50, 50, 0], [0, 100, 0], [0, 0, 100]])
    assert [label.get_text() for label in ax.get_xticklabels()] == list(NAMES)
    assert [label.get_text() for label in ax.get_yticklabels()] == list(NAMES)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted class", "true class", "toy")
    assert sorted(text.get_text() for text in ax.texts) == ["100", "100", "50", "50"]


def test_a_rare_confusion_reads_less_than_one_percent_not_zero() -> None:
    labels = np.zeros(300, dtype=int)
    predictions = np.zeros(300, dtype=int)
    predictions[0] = 1  # one image in 300: 0.33% of the class
    ax = plot_confusion_matrix(labels, predictions, NAMES)
    assert sorted(text.get_text() for text in ax.texts) == ["100", "<1"]


def test_plot_confusion_matrix_uses_given_axes_and_survives_absent_classes() -> None:
    ax = Figure().subplots()
    assert plot_confusion_matrix([0, 0], [0, 0], NAMES, ax=ax) is ax
    assert np.allclose(ax.get_images()[0].get_array()[1:], 0)
    ax.figure.canvas.draw()


def test_plot_misclassified_shows_only_the_errors_titled_true_to_predicted() -> None:
    images = torch.arange(5 * 28 * 28, dtype=torch.float32).view(5, 1, 28, 28)
    figure = plot_misclassified(images, [0, 1, 2, 0, 1], [0, 2, 2, 1, 1], NAMES, columns=4)
    assert isinstance(figure, Figure)
    shown = [ax for ax in figure.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == ["dog\n-> bird", "cat\n-> dog"]
    assert shown[0].get_images()[0].get_array().shape == (28, 28)
    assert np.array_equal(shown[1].get_images()[0].get_array(), images[3, 0].numpy())


def test_plot_misclassified_caps_the_grid_and_handles_no_errors() -> None:
    images = np.zeros((30, 8, 8))
    figure = plot_misclassified(images, np.zeros(30), np.ones(30), ("a", "b"), max_images=10, columns=4)
    assert sum(bool(ax.get_images()) for ax in figure.axes) == 10
    assert len(figure.axes) == 12  # 3 rows of 4, the last two blank
    empty = plot_misclassified(images, np.zeros(30), np.zeros(30), ("a", "b"))
    assert "no misclassified images" in [text.get_text() for ax in empty.axes for text in ax.texts]


def test_plot_misclassified_refuses_colour_or_misaligned_input() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        plot_misclassified(np.zeros((2, 3, 8, 8)), [0, 1], [1, 0], ("a", "b"))
    with pytest.raises(ValueError, match="one label and one prediction per image"):
        plot_misclassified(np.zeros((2, 8, 8)), [0], [1, 0], ("a", "b"))
