"""How long the gradient explorer takes to redraw on real images: run `python benchmarks/widget_redraw.py`."""

from __future__ import annotations

import statistics

import torch

from residual_course.data import load_dataset
from residual_course.gradients import first_to_last_ratio
from residual_course.widgets import GradientExplorer

BATCH_SIZE = 256
REPEATS = 15
DEPTHS = (20, 50)


def redraw_seconds(explorer: GradientExplorer, depth: int, repeats: int = REPEATS) -> list[float]:
    """Seconds of `repeats` full redraws at one depth, the wait a learner feels after moving a control."""
    explorer.depth_slider.max = max(explorer.depth_slider.max, depth)  # measure deeper than the slider offers
    explorer.depth_slider.value = depth
    seconds = []
    for _ in range(repeats):
        explorer.update()
        seconds.append(explorer.last_redraw_seconds)
    return seconds


def main() -> None:
    """Print redraw timings and the 20-layer sigmoid gradient ratios; no assertions, the numbers are the report."""
    test = load_dataset("fashion-mnist", device="cpu", train_size=1, test_size=BATCH_SIZE).test
    explorer = GradientExplorer(test.images, test.labels)
    print(f"{BATCH_SIZE} Fashion-MNIST test images, CPU, {torch.get_num_threads()} torch threads")
    for depth in DEPTHS:
        seconds = redraw_seconds(explorer, depth)
        p90 = statistics.quantiles(seconds, n=10)[-1]
        print(f"depth {depth}: median {statistics.median(seconds):.3f} s, p90 {p90:.3f} s over {REPEATS} redraws")
    explorer.depth_slider.value = 20
    for label, norms in explorer.update().items():
        print(
            f"20-layer sigmoid MLP, default init, {label}: first/last gradient-norm ratio "
            f"{first_to_last_ratio(norms):.3e}"
        )


if __name__ == "__main__":
    main()
