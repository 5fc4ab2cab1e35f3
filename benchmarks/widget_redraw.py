"""How long the gradient explorer takes to redraw on real images, new beside old: `python benchmarks/widget_redraw.py`.

Four kinds of new redraw: moving the depth slider by one layer (new models; the lines drawn over kept pixels,
unless the norms left the y axis or the depth passed the layer axis's end, which are then drawn again), once
within the layer axis (depth - 1 and depth) and once across its end (depth and depth + 1); `update()` with the
same controls (the same, the depth unchanged); and a redraw of the whole figure, as after a new range of norms.
The explorer used to build both models anew, profile them with PyTorch's default threads, then build a new
`Figure`, run `tight_layout` and `savefig` a default PNG on every change; `old_redraw_seconds` keeps a copy of
that path, so old and new are timed in one run on one machine.
"""

from __future__ import annotations

import io
import statistics
import time

import torch
from matplotlib.figure import Figure

from residual_course.data import load_dataset
from residual_course.gradients import first_to_last_ratio, gradient_profile
from residual_course.models import make_mlp
from residual_course.plots import plot_grad_norms
from residual_course.runtime import seed_everything
from residual_course.widgets import GradientExplorer

BATCH_SIZE = 128  # what the lessons give the explorer: one training batch, fit's size
REPEATS = 15
DEPTHS = (20, 50, 100)
LABELS = ("plain", "residual")  # the explorer's default view: skip connections compared


def redraw_seconds(explorer: GradientExplorer, depth: int, repeats: int = REPEATS) -> list[float]:
    """Seconds of `repeats` redraws at one depth that keep the axes (as a control that leaves the range does)."""
    explorer.depth_slider.max = max(explorer.depth_slider.max, depth)  # measure deeper than the slider offers
    explorer.depth_slider.value = depth
    seconds = []
    for _ in range(repeats):
        explorer.update()
        seconds.append(explorer.last_redraw_seconds)
    return seconds


def full_redraw_seconds(explorer: GradientExplorer, depth: int, repeats: int = REPEATS) -> list[float]:
    """Seconds of `repeats` redraws at one depth that draw the whole figure (kept pixels forgotten first)."""
    explorer.depth_slider.max = max(explorer.depth_slider.max, depth)
    explorer.depth_slider.value = depth
    seconds = []
    for _ in range(repeats):
        explorer._backgrounds.clear()
        explorer.update()
        seconds.append(explorer.last_redraw_seconds)
    return seconds


def depth_move_seconds(explorer: GradientExplorer, depth: int, repeats: int = REPEATS,
                       other: int | None = None) -> tuple[list[float], list[float]]:
    """Seconds of `repeats` moves of the depth slider between `other` (depth - 1 unless given) and depth, and the
    models' share of each (building or cutting them, their forward and backward passes)."""
    other = depth - 1 if other is None else other
    explorer.depth_slider.max = max(explorer.depth_slider.max, depth, other)
    seconds, model_seconds = [], []
    for _ in range(repeats):
        explorer.depth_slider.value = other if explorer.depth_slider.value == depth else depth  # redraws
        seconds.append(explorer.last_redraw_seconds)
        model_seconds.append(explorer.last_model_seconds)
    return seconds, model_seconds


def old_redraw_seconds(explorer: GradientExplorer, depth: int, repeats: int = REPEATS) -> list[float]:
    """The same redraws the old way: profile both models, then a new Figure, tight_layout and a default PNG."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        norms = {label: old_gradient_norms(explorer, depth, skip=label == "residual") for label in LABELS}
        figure = Figure(figsize=(5 * len(norms), 3.5))
        axes = figure.subplots(1, len(norms), sharey=True, squeeze=False)[0]
        for ax, (label, values) in zip(axes, norms.items(), strict=True):
            plot_grad_norms({label: values}, ax=ax, title=f"{label}, {len(values)} layers")
        figure.tight_layout()
        figure.savefig(io.BytesIO(), format="png")
        seconds.append(time.perf_counter() - start)
    return seconds


def old_gradient_norms(explorer: GradientExplorer, depth: int, skip: bool) -> list[float]:
    """The old explorer's model work: a freshly seeded model through `gradient_profile`, default threads."""
    seed_everything(explorer.seed)
    model = make_mlp(depth, explorer.width_slider.value, explorer.activation_dropdown.value,
                     explorer.init_dropdown.value, explorer.norm_dropdown.value, skip=skip)
    return gradient_profile(model.to(explorer.inputs.device), explorer.inputs, explorer.targets)


def summary(seconds: list[float]) -> str:
    """Median and 90th percentile in milliseconds: the typical wait and a bad one."""
    p90 = statistics.quantiles(seconds, n=10)[-1]
    return f"median {1000 * statistics.median(seconds):.0f} ms, p90 {1000 * p90:.0f} ms"


def main() -> None:
    """Print new and old redraw timings and the 20-layer sigmoid gradient ratios; the numbers are the report."""
    test = load_dataset("fashion-mnist", device="cpu", train_size=1, test_size=BATCH_SIZE).test
    explorer = GradientExplorer(test.images, test.labels)
    print(f"{BATCH_SIZE} Fashion-MNIST test images, CPU, {torch.get_num_threads()} torch threads, {REPEATS} redraws")
    for depth in DEPTHS:
        (moved, models), (across, _) = depth_move_seconds(explorer, depth), depth_move_seconds(explorer, depth,
                                                                                                other=depth + 1)
        kept, whole = redraw_seconds(explorer, depth), full_redraw_seconds(explorer, depth)
        old = old_redraw_seconds(explorer, depth)
        print(f"depth {depth:>3}: new, depth moved {summary(moved)} (models {summary(models)}); across the layer "
              f"axis's end {summary(across)}; new, update() {summary(kept)}; new, whole figure {summary(whole)}; "
              f"old {summary(old)}")
    explorer.depth_slider.value = 20
    for label, norms in explorer.update().items():
        print(f"20-layer sigmoid MLP, default init, {label}: first/last gradient-norm ratio "
              f"{first_to_last_ratio(norms):.3e}")


if __name__ == "__main__":
    main()
