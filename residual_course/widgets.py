"""The gradient explorer: learners turn the knobs of a deep MLP and watch its per-layer gradients respond."""

from __future__ import annotations

import io
import time

import ipywidgets as widgets
from matplotlib.figure import Figure
from torch import Tensor

from residual_course.gradients import first_to_last_ratio, gradient_profile
from residual_course.models import ACTIVATIONS, INITS, NORMS, make_mlp
from residual_course.plots import plot_grad_norms
from residual_course.runtime import seed_everything


class GradientExplorer:
    """Sliders and dropdowns that redraw plain vs residual gradient profiles, to make vanishing tangible.

    The plot is a PNG rendered from a bare `Figure` into a core `widgets.Image`: no pyplot state, no ipympl,
    so it renders the same in JupyterLab and Colab. Models live on the device of `inputs`.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, seed: int = 0) -> None:
        self.inputs = inputs
        self.targets = targets
        self.seed = seed
        self.depth_slider = widgets.IntSlider(20, min=2, max=60, description="depth", continuous_update=False)
        self.width_slider = widgets.IntSlider(
            64, min=16, max=256, step=16, description="width", continuous_update=False
        )
        self.activation_dropdown = widgets.Dropdown(options=ACTIVATIONS, description="activation")
        self.init_dropdown = widgets.Dropdown(options=INITS, description="init")
        self.norm_dropdown = widgets.Dropdown(options=NORMS, description="norm")
        self.skip_checkbox = widgets.Checkbox(True, description="compare with skip connections")
        controls = [
            self.depth_slider,
            self.width_slider,
            self.skip_checkbox,
            self.activation_dropdown,
            self.init_dropdown,
            self.norm_dropdown,
        ]
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        self.plot = widgets.Image(format="png")
        self.ratio_line = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox(controls[:3]), widgets.HBox(controls[3:]), self.plot, self.ratio_line])
        self.update()

    def update(self) -> dict[str, list[float]]:
        """Recompute and redraw for the current controls; returns the norms by label ("plain", "residual")."""
        start = time.perf_counter()
        labels = ("plain", "residual") if self.skip_checkbox.value else ("plain",)
        norms = {label: self._gradient_norms(skip=label == "residual") for label in labels}
        self.figure = self._draw(norms)
        png = io.BytesIO()
        self.figure.savefig(png, format="png")
        self.plot.value = png.getvalue()
        ratios = ", ".join(f"{label} {_describe_ratio(first_to_last_ratio(values))}" for label, values in norms.items())
        self.ratio_line.value = f"first/last layer gradient-norm ratio: {ratios}"
        self.last_redraw_seconds = time.perf_counter() - start
        return norms

    def _gradient_norms(self, skip: bool) -> list[float]:
        """Profile a freshly seeded model, so the same settings always give the same plot."""
        seed_everything(self.seed)
        model = make_mlp(
            self.depth_slider.value,
            self.width_slider.value,
            self.activation_dropdown.value,
            self.init_dropdown.value,
            self.norm_dropdown.value,
            skip=skip,
        )
        return gradient_profile(model.to(self.inputs.device), self.inputs, self.targets)

    def _draw(self, norms: dict[str, list[float]]) -> Figure:
        """Side-by-side panels on a shared log axis, so plain and residual compare at a glance."""
        figure = Figure(figsize=(5 * len(norms), 3.5))
        axes = figure.subplots(1, len(norms), sharey=True, squeeze=False)[0]
        for ax, (label, values) in zip(axes, norms.items(), strict=True):
            plot_grad_norms({label: values}, ax=ax, title=f"{label}, {len(values)} layers")
        figure.tight_layout()
        return figure

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        """Let `display(explorer)`, or the explorer last in a cell, show the widget."""
        return self.widget._repr_mimebundle_(**kwargs)


def _describe_ratio(ratio: float) -> str:
    """A ratio for the caption; an exact zero means the gradient fell below float32's smallest number."""
    return "0 (the first layer's gradient underflowed float32)" if ratio == 0 else f"{ratio:.2e}"
