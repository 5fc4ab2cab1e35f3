"""The course's standard plots: gradient profiles on a log axis and learning curves per metric."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from residual_course.plots import GRAD_NORM_FLOOR, plot_grad_norms, plot_history  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    """Close every pyplot figure after each test, so none pile up."""
    yield
    plt.close("all")


def test_plot_grad_norms_draws_one_log_line_per_label() -> None:
    ax = plot_grad_norms({"plain": [1e-9, 1e-5, 1e-1], "residual": [0.1, 0.2, 0.3]}, title="depth 3")
    assert isinstance(ax, Axes)
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "depth 3"
    assert [line.get_label() for line in ax.get_lines()] == ["plain", "residual"]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert ax.get_legend() is not None
    assert ax.get_xlabel() == "layer (input -> output)"


def test_plot_grad_norms_uses_the_given_axes_and_survives_zeros() -> None:
    ax = Figure().subplots()
    assert plot_grad_norms({"dead": [0.0, 0.0, 1e-3]}, ax=ax) is ax
    assert list(ax.get_lines()[0].get_ydata()) == [GRAD_NORM_FLOOR, GRAD_NORM_FLOOR, 1e-3]
    ax.figure.canvas.draw()


@dataclass
class StandInHistory:
    """The four per-epoch lists of residual_course.training.History, without importing it."""

    train_loss: list[float] = field(default_factory=lambda: [2.0, 1.0, 0.5])
    train_accuracy: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.8])
    test_loss: list[float] = field(default_factory=lambda: [2.1, 1.2, 0.7])
    test_accuracy: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])


def test_plot_history_one_subplot_per_metric_one_line_per_run() -> None:
    figure = plot_history({"plain": StandInHistory(), "residual": StandInHistory()})
    assert isinstance(figure, Figure)
    assert [ax.get_ylabel() for ax in figure.axes] == ["train loss", "test accuracy"]
    for ax in figure.axes:
        assert [line.get_label() for line in ax.get_lines()] == ["plain", "residual"]
        assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    all_metrics = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    assert len(plot_history({"run": StandInHistory()}, metrics=all_metrics).axes) == 4


@pytest.mark.parametrize("metrics", [("val_loss",), ()])
def test_plot_history_rejects_unknown_metrics(metrics: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="train_loss, train_accuracy, test_loss, test_accuracy"):
        plot_history({"run": StandInHistory()}, metrics=metrics)
