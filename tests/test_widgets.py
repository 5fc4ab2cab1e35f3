"""The gradient explorer: every control redraws, the plot follows the settings, and redraws are repeatable."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from residual_course.widgets import GradientExplorer  # noqa: E402


@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    """A small seeded image batch: the explorer only needs something image-shaped to push through."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(32, 1, 28, 28, generator=generator), torch.randint(0, 10, (32,), generator=generator)


def points_per_line(explorer: GradientExplorer) -> list[int]:
    """How many layers each plotted line shows, one entry per panel."""
    return [len(line.get_xdata()) for ax in explorer.figure.axes for line in ax.get_lines()]


def test_starts_with_plain_and_residual_side_by_side(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    assert len(explorer.figure.axes) == 2
    assert points_per_line(explorer) == [20, 20]
    assert bytes(explorer.plot.value).startswith(b"\x89PNG")
    assert "plain" in explorer.ratio_line.value and "residual" in explorer.ratio_line.value
    assert explorer.last_redraw_seconds > 0
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_depth_slider_and_skip_checkbox_redraw(batch: tuple[Tensor, Tensor]) -> None:
    explorer = GradientExplorer(*batch)
    first_figure = explorer.figure
    explorer.depth_slider.value = 7
    assert explorer.figure is not first_figure
    assert points_per_line(explorer) == [7, 7]
    explorer.skip_checkbox.value = False
    assert len(explorer.figure.axes) == 1
    assert points_per_line(explorer) == [7]
    assert "residual" not in explorer.ratio_line.value


@pytest.mark.parametrize(
    ("control", "value"),
    [("width_slider", 32), ("activation_dropdown", "relu"), ("init_dropdown", "kaiming"), ("norm_dropdown", "layer")],
)
def test_every_control_redraws(batch: tuple[Tensor, Tensor], control: str, value: object) -> None:
    explorer = GradientExplorer(*batch)
    before = explorer.figure
    getattr(explorer, control).value = value
    assert explorer.figure is not before


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
