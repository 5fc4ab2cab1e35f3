"""The course's standard plots: gradient profiles on a log axis and learning curves per metric."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from residual_course.diagnostics import ActivationHistogram, Histogram  # noqa: E402
from residual_course.plots import (  # noqa: E402
    GRAD_NORM_FLOOR,
    UPDATE_RATIO_GUIDE,
    plot_grad_norms,
    plot_histograms,
    plot_history,
    plot_update_ratios,
)


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
    assert all(tick == int(tick) for tick in ax.get_xticks())  # layers are whole numbers, even for 3 of them


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


def test_plot_update_ratios_one_line_per_layer_and_the_rule_of_thumb_dashed() -> None:
    ax = plot_update_ratios({"0.weight": [-2.5, -2.8, -3.1], "2.weight": [-4.0, -3.9, -3.7]}, title="lr 0.1")
    *layers, guide = ax.get_lines()
    assert [line.get_label() for line in layers] == ["0.weight", "2.weight"]
    assert list(layers[0].get_xdata()) == [1, 2, 3]
    assert set(guide.get_ydata()) == {UPDATE_RATIO_GUIDE} == {-3} and guide.get_linestyle() == "--"
    assert all(tick == int(tick) for tick in ax.get_xticks())
    assert ax.get_title() == "lr 0.1" and ax.get_legend() is not None


def test_plot_histograms_draws_one_density_per_layer_labelled_with_its_summary() -> None:
    activations = ActivationHistogram("1", mean=0.0, std=0.9, counts=[40, 10, 10, 40], edges=[-1, -0.5, 0, 0.5, 1],
                                      saturated_fraction=0.8)
    gradients = Histogram("3", mean=1e-3, std=2e-4, counts=[0, 5, 0], edges=[0.0, 1e-3, 2e-3, 3e-3])
    ax = Figure().subplots()
    assert plot_histograms([activations, gradients], ax=ax) is ax
    first, second = ax.get_lines()
    assert first.get_label() == activations.describe() and "saturated 80.0%" in first.get_label()
    assert second.get_label() == gradients.describe()
    assert list(first.get_xdata()) == [-0.75, -0.25, 0.25, 0.75]
    assert sum(first.get_ydata()) * 0.5 == pytest.approx(1.0)  # densities: the area under each line is 1
    assert max(first.get_ydata()) == pytest.approx(0.8)  # the saturated tails stand out
