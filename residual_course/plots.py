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
