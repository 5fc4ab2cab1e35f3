"""The course's standard plots, so every notebook draws gradient profiles and learning curves alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from residual_course.metrics import as_array, as_indices, confusion_counts

if TYPE_CHECKING:
    from residual_course.diagnostics import Histogram
    from residual_course.studies import Run, Summary
    from residual_course.training import History

GRAD_NORM_FLOOR = 1e-30
LAYER_LABEL, GRAD_NORM_LABEL = "layer (input -> output)", "‖∂loss/∂W‖"
HISTORY_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
UPDATE_RATIO_GUIDE = -3  # log10 of the rule of thumb: each step moves a layer's weights by about 1e-3 of their size


def plot_grad_norms(norms: dict[str, list[float]], ax: Axes | None = None, title: str | None = None) -> Axes:
    """Per-layer gradient norms on a log scale, where vanishing shows up as a straight falling line.

    One line per label, x = layer index (1 = input layer). Norms below GRAD_NORM_FLOOR (exact zeros from
    dead units included) are clipped up to it, because a log axis cannot show zero. Without `ax` the axes
    come from `plt.subplots()`, so a plain notebook cell shows the figure.
    """
    if ax is None:
        _, ax = plt.subplots()
    for label, values in norms.items():
        ax.plot(*grad_norm_points(values), marker=".", label=label)
    style_grad_norm_axes(ax)
    return _label(ax, LAYER_LABEL, GRAD_NORM_LABEL, title)


def grad_norm_points(values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(layer index from 1, norm clipped up to GRAD_NORM_FLOOR): what a log-scale gradient profile can show."""
    return np.arange(1, len(values) + 1), np.clip(values, GRAD_NORM_FLOOR, None)


def style_grad_norm_axes(ax: Axes) -> None:
    """Log y and whole-number layer ticks, so every gradient-profile panel reads the same."""
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_update_ratios(ratios: dict[str, list[float]], ax: Axes | None = None, title: str | None = None) -> Axes:
    """log10(‖ΔW‖ / ‖W‖) per layer against the step, the ~1e-3 rule of thumb dashed: who learns too slowly or too fast.

    `ratios` is what `diagnostics.update_ratios` returns, one line per layer (step 1 = the first update). Without
    `ax` the axes come from `plt.subplots()`, so a plain notebook cell shows the figure.
    """
    if ax is None:
        _, ax = plt.subplots()
    for name, values in ratios.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.axhline(UPDATE_RATIO_GUIDE, color="black", linestyle="--", linewidth=1, label="1e-3 rule of thumb")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _label(ax, "step", "log10(‖ΔW‖ / ‖W‖)", title, legend_size="small")


def plot_histograms(histograms: Sequence[Histogram], ax: Axes | None = None, title: str | None = None) -> Axes:
    """Karpathy's overlaid per-layer histograms, one density line per layer: saturated tails and spreads side by side.

    `histograms` come from `diagnostics.activation_histograms` or `activation_gradient_histograms`; each line is
    labelled with its layer's summary (mean, std, and the saturated fraction for activations). Densities, not counts,
    so layers of different sizes compare. Without `ax` the axes come from `plt.subplots()`.
    """
    if ax is None:
        _, ax = plt.subplots()
    for histogram in histograms:
        edges, counts = np.asarray(histogram.edges), np.asarray(histogram.counts)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.plot((edges[:-1] + edges[1:]) / 2, density, label=histogram.describe())
    return _label(ax, "value", "density", title, legend_size="small")


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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend()
    fig.tight_layout()
    return fig


def plot_study(runs: Sequence[Run], metric: str = "train_loss", ax: Axes | None = None,
               title: str | None = None) -> Axes:
    """One learning curve per network of a depth study: the mean over seeds, with the seeds' range shaded.

    `runs` come from `studies.train_study`. Without `ax` the axes come from `plt.subplots()`.
    """
    if metric not in HISTORY_METRICS:
        raise ValueError(f"metric must be one of {', '.join(HISTORY_METRICS)}, got {metric!r}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    curves: dict[tuple[str, int], list[list[float]]] = {}
    for run in runs:
        curves.setdefault((run.family, run.depth), []).append(getattr(run.history, metric))
    for (family, depth), values in curves.items():
        table = np.array(values)
        epochs = np.arange(1, table.shape[1] + 1)
        line, = ax.plot(epochs, table.mean(0), label=f"{family}, {depth} layers")
        ax.fill_between(epochs, table.min(0), table.max(0), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " ") + (" (mean, range over seeds)" if len(next(iter(curves.values()))) > 1
                                               else ""))
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_depth_sweep(summaries: dict[tuple[str, int], Summary], ax: Axes | None = None,
                     title: str | None = None) -> Axes:
    """Final training loss against depth, one line per family (He et al. 2015, Fig. 6): the range over seeds as bars.

    `summaries` come from `studies.summarise`. Without `ax` the axes come from `plt.subplots()`.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    families = dict.fromkeys(family for family, _ in summaries)
    for family in families:
        points = sorted((depth, s) for (f, depth), s in summaries.items() if f == family)
        depths = [depth for depth, _ in points]
        means = np.array([s.mean_loss for _, s in points])
        low = means - np.array([min(s.losses) for _, s in points])
        high = np.array([max(s.losses) for _, s in points]) - means
        ax.errorbar(depths, means, yerr=[low, high], marker="o", capsize=3, label=family)
    ax.set_xlabel("depth (layers)")
    ax.set_xticks(sorted({depth for _, depth in summaries}))
    ax.set_ylabel("final training loss")
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_confusion_matrix(labels: object, predictions: object, class_names: tuple[str, ...] | list[str],
                          ax: Axes | None = None, title: str | None = None) -> Axes:
    """Which classes a classifier mixes up: each row (true class) in % of its examples, diagonal = per-class recall.

    Cells are annotated with their percentage, rounded; a cell with a few examples that rounds to 0 says "<1", so
    a "0" never hides mistakes, and an empty cell has none. Rows sum to 100. Without `ax` the axes come from
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
            ax.text(column, row, f"{value:.0f}" if value >= 0.5 else "<1", ha="center", va="center", fontsize=8,
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
    pixels = as_array(images)
    if pixels.ndim == 4 and pixels.shape[1] == 1:
        pixels = pixels[:, 0]
    if pixels.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W) greyscale, got shape {pixels.shape}.")
    true, predicted = as_indices(labels), as_indices(predictions)
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


def _label(ax: Axes, xlabel: str, ylabel: str, title: str | None, legend_size: str | None = None) -> Axes:
    """Axis labels, the optional title and the legend that the course's line plots end with."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize=legend_size)
    return ax
