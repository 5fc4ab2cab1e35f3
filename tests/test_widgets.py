"""The gradient explorer: every control redraws, the plot follows the settings, and redraws are repeatable."""

import matplotlib

matplotlib.use("Agg")

import io  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from explorers import drive  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.display import display  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402
from torch import Tensor  # noqa: E402

from residual_course.gradients import gradient_profile  # noqa: E402
from residual_course.models import make_mlp  # noqa: E402
from residual_course.plots import GRAD_NORM_FLOOR  # noqa: E402
from residual_course.runtime import seed_everything  # noqa: E402
from residual_course.widgets import (  # noqa: E402
    AHEAD_DECADES,
    EXPLORERS,
    MODELS_KEPT,
    PANEL_HEIGHT_PX,
    PANEL_WIDTH_PX,
    GradientExplorer,
    _encode_png,
    _y_limits,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    """A small seeded image batch: the explorer only needs something image-shaped to push through."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(32, 1, 28, 28, generator=generator), torch.randint(0, 10, (32,), generator=generator)


def points_per_line(explorer: GradientExplorer) -> list[int]:
    """How many layers each plotted line shows, one entry per panel."""
    return [len(line.get_xdata()) for ax in explorer.figure.axes for line in ax.get_lines()]


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from the PNG's header chunk."""
    assert png.startswith(b"\x89PNG")
    return struct.unpack(">II", png[16:24])


def shown_size(explorer: GradientExplorer) -> tuple[int, int]:
    """The CSS pixel size the page gives the plot."""
    return int(explorer.plot.layout.width.removesuffix("px")), int(explorer.plot.layout.height.removesuffix("px"))


def displayed(thing: object) -> list[dict]:
    """What `display(thing)` sends to the notebook, in an IPython shell: one dict of MIME data per output."""
    InteractiveShell.instance()
    with capture_output() as captured:
        display(thing)
    return [output.data for output in captured.outputs]


def test_starts_with_plain_and_residual_side_by_side(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    assert len(explorer.figure.axes) == 2
    assert points_per_line(explorer) == [20, 20]
    assert png_size(bytes(explorer.plot.value)) == shown_size(explorer) == (2 * PANEL_WIDTH_PX, PANEL_HEIGHT_PX)
    assert "plain" in explorer.ratio_line.value and "residual" in explorer.ratio_line.value
    assert explorer.last_redraw_seconds > 0


@pytest.mark.parametrize("explorer_class", EXPLORERS, ids=lambda cls: cls.__name__)
def test_every_explorer_of_the_course_shows_its_widget_and_each_control_redraws_it(
        batch: tuple[Tensor, Tensor], explorer_class: type) -> None:
    """Under this interpreter's ipywidgets (8); tests/test_colab_like.py runs the same under Colab's 7.7."""
    explorer = explorer_class.from_batch(*batch)
    (shown,) = displayed(explorer)
    assert shown[WIDGET_VIEW]["model_id"] == explorer.widget.model_id
    moved = drive(explorer)
    assert moved and all(moved.values()), f"controls that left the image as it was: {moved}"


def test_the_gradient_explorer_is_listed_with_every_control_it_shows(batch: tuple[Tensor, Tensor]) -> None:
    assert GradientExplorer in EXPLORERS
    explorer = GradientExplorer(*batch)
    shown = [child for box in explorer.widget.children[:2] for child in box.children]
    assert list(explorer.controls) == shown


@pytest.mark.parametrize(("activation", "skip"), [("sigmoid", True), ("relu", True), ("relu", False)])
def test_panels_share_y_limits_that_fit_and_read_on_every_panel(batch: tuple[Tensor, Tensor], activation: str,
                                                                 skip: bool) -> None:
    """Sigmoid: 30 decades; relu + kaiming: residual norms reach ~1e5, plain ones stay within one decade."""
    explorer = GradientExplorer(*batch)
    explorer.init_dropdown.value = "kaiming"
    explorer.activation_dropdown.value = activation
    explorer.skip_checkbox.value = skip
    axes = explorer.figure.axes
    assert len({ax.get_ylim() for ax in axes}) == 1
    values = [value for ax in axes for line in ax.get_lines() for value in line.get_ydata()]
    low, high = axes[0].get_ylim()
    assert low <= min(values) and max(values) <= high < 10 ** (2 + AHEAD_DECADES) * max(values)  # room to grow
    explorer.figure.canvas.draw()
    for ax in axes:
        shown = [label.get_text() for label in ax.get_yticklabels(which="both")
                 if label.get_visible() and label.get_text()]
        assert len(shown) >= 2 and all("10^{" in text and "times" not in text for text in shown)  # 10^k only
        assert all(tick == int(tick) for tick in ax.get_xticks())


def test_depth_slider_and_skip_checkbox_redraw(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    first_plot = bytes(explorer.plot.value)
    explorer.depth_slider.value = 7
    assert bytes(explorer.plot.value) != first_plot
    assert points_per_line(explorer) == [7, 7]
    assert [ax.get_title() for ax in explorer.figure.axes] == ["plain", "residual"]
    for ax in explorer.figure.axes:  # the layer axis ends on its first tick at or past the depth
        end = ax.get_xlim()[1] - 0.5
        assert ax.get_xlim()[0] == 0.5 and 7 <= end < 7 * 2 and end in ax.get_xticks()
    explorer.skip_checkbox.value = False
    assert len(explorer.figure.axes) == 1
    assert points_per_line(explorer) == [7]
    assert "residual" not in explorer.ratio_line.value
    assert png_size(bytes(explorer.plot.value)) == shown_size(explorer) == (PANEL_WIDTH_PX, PANEL_HEIGHT_PX)


@pytest.mark.parametrize(
    ("control", "value"),
    [("width_slider", 32), ("activation_dropdown", "relu"), ("init_dropdown", "kaiming"), ("norm_dropdown", "layer")],
)
def test_every_control_redraws(batch: tuple[Tensor, Tensor], control: str, value: object) -> None:
    explorer = GradientExplorer(*batch)
    before, lines = bytes(explorer.plot.value), [ax.get_lines()[0].get_ydata().copy() for ax in explorer.figure.axes]
    getattr(explorer, control).value = value
    assert bytes(explorer.plot.value) != before
    for ax, old in zip(explorer.figure.axes, lines, strict=True):
        assert (ax.get_lines()[0].get_ydata() != old).any()


def test_redraws_reuse_one_figure_per_view(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    side_by_side = explorer.figure
    explorer.depth_slider.value = 9
    assert explorer.figure is side_by_side
    explorer.skip_checkbox.value = False
    plain_only = explorer.figure
    explorer.skip_checkbox.value = True
    assert explorer.figure is side_by_side and plain_only is not side_by_side


def test_blitted_redraws_match_a_full_draw_pixel_for_pixel(batch: tuple[Tensor, Tensor]) -> None:
    """Whether the kept pixels were used (same update, width, a shallower depth whose norms fit the y axis) or the
    figure was drawn again (a new norm: a new range; a depth past the layer axis's end), the plot is the full
    figure, pixel for pixel."""
    explorer = GradientExplorer(*batch)
    changes = {"none": lambda: explorer.update(), "width": lambda: setattr(explorer.width_slider, "value", 32),
               "depth": lambda: setattr(explorer.depth_slider, "value", explorer.depth_slider.value - 1),
               "norm": lambda: setattr(explorer.norm_dropdown, "value", "layer"),
               "depth, normalised": lambda: setattr(explorer.depth_slider, "value", explorer.depth_slider.value - 1),
               "past the layer axis": lambda: setattr(explorer.depth_slider, "value", 30)}
    kept = []
    for change in changes.values():
        background = explorer._backgrounds[2]
        change()
        kept.append(explorer._backgrounds[2] is background)
        shown = np.asarray(PIL.Image.open(io.BytesIO(explorer.plot.value)).convert("RGB"))
        explorer.figure.canvas.draw()
        full = _encode_png(explorer.figure, explorer._backgrounds[2][2])
        assert np.array_equal(shown, np.asarray(PIL.Image.open(io.BytesIO(full)).convert("RGB")))
    assert kept == [True, True, True, False, True, False]


def test_update_returns_depth_norms_per_model_and_is_repeatable(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch, seed=3)
    explorer.depth_slider.value = 9
    norms = explorer.update()
    assert list(norms) == ["plain", "residual"]
    assert [len(values) for values in norms.values()] == [9, 9]
    assert explorer.update() == norms
    for seed, same in [(3, True), (4, False)]:
        other = GradientExplorer(*batch, seed=seed)
        other.depth_slider.value = 9
        assert (other.update() == norms) is same


def test_quick_cpu_pass_changes_no_norm_and_restores_torch(batch: tuple[Tensor, Tensor]) -> None:
    """Deep enough for gradients to underflow: flushed denormals change no norm above the plot's floor, one thread
    only the sums' order."""
    threads = torch.get_num_threads()
    explorer = GradientExplorer(*batch)
    explorer.depth_slider.value = 50
    norms = explorer.update()
    assert min(norms["plain"]) < 1e-30
    assert torch.get_num_threads() == threads
    assert (torch.tensor([1e-38]) / 100).item() > 0  # denormals are back
    for label, values in norms.items():
        seed_everything(explorer.seed)
        model = make_mlp(50, skip=label == "residual")
        shown = [max(value, GRAD_NORM_FLOOR) for value in values]
        assert shown == pytest.approx([max(v, GRAD_NORM_FLOOR) for v in gradient_profile(model, *batch)], rel=1e-4)
        torch.set_num_threads(1)
        try:
            same_threads = [max(v, GRAD_NORM_FLOOR) for v in gradient_profile(model, *batch)]
        finally:
            torch.set_num_threads(threads)
        assert shown == pytest.approx(same_threads, rel=1e-12)


def test_controls_show_their_whole_captions(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    assert not explorer.skip_checkbox.indent and explorer.skip_checkbox.layout.width == "auto"
    assert explorer.depth_slider.layout.width == "400px"


def test_the_y_axis_keeps_its_limits_while_the_norms_fit_and_widens_ahead_of_them() -> None:
    values = np.array([1e-12, 1e-1])
    first = _y_limits(values, None)
    assert first[0] < 1e-12 < 1e-1 < first[1] < 10  # whole decades around the values
    assert _y_limits(np.array([1e-11, 1e-2]), first) == first  # a shallower net fits: the drawn axes stay
    deeper = _y_limits(np.array([1e-13, 1e-1]), first)
    assert deeper[0] < 1e-13 / 10**AHEAD_DECADES * 10 and deeper[1] < 1  # room below for the next depth steps
    assert _y_limits(np.array([1e-14, 1e-1]), deeper) == deeper
    assert _y_limits(np.array([1e-2, 1e-1]), deeper) != deeper  # far too much room to spare: fitted again


def test_reused_models_give_a_fresh_explorers_norms(batch: tuple[Tensor, Tensor]) -> None:
    """The deepest models are built once per setting and cut to the depth shown: whatever was shown before, the
    norms are those of a new explorer, and only the last few settings' models are kept."""
    explorer = GradientExplorer(*batch)
    explorer.init_dropdown.value = "kaiming"
    explorer.depth_slider.value = 50
    for width in (16, 32, 48, 80, 96):
        explorer.width_slider.value = width
    assert len(explorer._deepest) == MODELS_KEPT
    explorer.width_slider.value = 64
    explorer.init_dropdown.value = "default"
    explorer.depth_slider.value = 9
    fresh = GradientExplorer(*batch)
    fresh.depth_slider.value = 9
    assert explorer.update() == fresh.update()
