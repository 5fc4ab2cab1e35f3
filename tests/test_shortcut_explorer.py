"""The shortcut explorer (lesson 04): each view shows what the package measures for the settings shown, every
control redraws, and a redraw over kept pixels is the full figure."""

import matplotlib

matplotlib.use("Agg")

import io  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
from explorers import drive  # noqa: E402

from residual_course import shattered  # noqa: E402
from residual_course.diagnostics import stream_variances  # noqa: E402
from residual_course.widgets import EXPLORER_WIDTH, EXPLORERS, ShortcutExplorer, _encode_png  # noqa: E402

GRADIENTS, STREAM = ShortcutExplorer.VIEWS


@pytest.fixture
def explorer() -> ShortcutExplorer:
    return ShortcutExplorer()


def test_it_is_listed_and_starts_with_plain_and_residual_gradients_side_by_side(explorer):
    assert ShortcutExplorer in EXPLORERS
    assert len(explorer.figure.axes) == 4  # dy/dx and its autocorrelation, for each network
    assert "plain" in explorer.caption.value and "residual" in explorer.caption.value
    assert explorer.last_redraw_seconds > 0


@pytest.mark.parametrize(("norm", "scale"), [("batch", "1"), ("none", "1/√depth"), ("batch", "0 (SkipInit, ReZero)")])
def test_the_gradient_view_is_the_derivative_of_the_networks_shown(explorer, norm, scale):
    explorer.norm_dropdown.value, explorer.scale_dropdown.value, explorer.depth_slider.value = norm, scale, 9
    shown = explorer.update()
    factor = ShortcutExplorer.SCALES[scale](9)
    for label, skip in (("plain", False), ("residual", True)):
        network = shattered.network(9, skip, norm, scale=factor, width=EXPLORER_WIDTH)
        expected = shattered.derivative(network, shattered.input_points()).numpy()
        np.testing.assert_allclose(shown[label], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_the_stream_view_is_the_variance_entering_each_block(explorer):
    explorer.view_dropdown.value, explorer.norm_dropdown.value, explorer.depth_slider.value = STREAM, "none", 30
    shown = explorer.update()
    network = shattered.network(30, True, "none", width=EXPLORER_WIDTH)
    expected = stream_variances(network.running(), network.first(shattered.input_points()))
    np.testing.assert_allclose(shown["residual"], expected, rtol=1e-4)
    assert shown["residual"][-1] / shown["residual"][0] > 1e6  # it doubles at every block without normalisation
    assert f"residual ×{expected[-1] / expected[0]:.3g}" in explorer.caption.value
    assert explorer.figure.axes[0].get_ylim()[1] >= shown["residual"].max()  # the axis made room for the explosion
    explorer.scale_dropdown.value = "0 (SkipInit, ReZero)"
    assert np.all(explorer.update()["residual"] == shown["residual"][0])


def test_depth_and_skip_change_what_is_drawn(explorer):
    explorer.depth_slider.value = 50
    deep = bytes(explorer.plot.value)
    assert "plain" in explorer.caption.value
    explorer.skip_checkbox.value = False
    assert len(explorer.figure.axes) == 2 and "residual" not in explorer.caption.value
    assert bytes(explorer.plot.value) != deep
    explorer.view_dropdown.value = STREAM
    assert len(explorer.figure.axes) == 1
    assert len(explorer.figure.axes[0].get_lines()[0].get_xdata()) == 51


def test_every_control_redraws(explorer):
    moved = drive(explorer)
    assert moved and all(moved.values()), moved


def test_redraws_over_kept_pixels_match_a_full_draw(explorer):
    for change in (lambda: None, lambda: setattr(explorer.depth_slider, "value", 40),
                   lambda: setattr(explorer.view_dropdown, "value", STREAM),
                   lambda: setattr(explorer.depth_slider, "value", 41),
                   lambda: setattr(explorer.norm_dropdown, "value", "none")):
        change()
        explorer.update()
        shown = np.asarray(PIL.Image.open(io.BytesIO(explorer.plot.value)).convert("RGB"))
        explorer.figure.canvas.draw()
        key = (explorer.view_dropdown.value, len(explorer.figure.axes) // (2 if explorer.view_dropdown.value ==
                                                                           GRADIENTS else 1))
        full = _encode_png(explorer.figure, explorer._backgrounds[key][2])
        assert np.array_equal(shown, np.asarray(PIL.Image.open(io.BytesIO(full)).convert("RGB")))


def test_one_network_per_normalisation_serves_every_depth(explorer):
    for depth in (3, 60, 12):
        explorer.depth_slider.value = depth
    explorer.norm_dropdown.value = "none"
    assert sorted(explorer._networks) == ["batch", "none"]
    assert all(len(network.units) == explorer.depth_slider.max for network in explorer._networks.values())


def test_the_autocorrelation_panels_show_each_gradients_autocorrelation(explorer):
    explorer.depth_slider.value = 50
    shown = explorer.update()
    for column, gradient in enumerate(shown.values()):
        centred = gradient.astype(np.float64) - gradient.mean()
        expected = [1.0] + [centred[:-k] @ centred[k:] / (centred @ centred) for k in range(1, 33)]
        np.testing.assert_allclose(explorer.figure.axes[2 + column].get_lines()[0].get_ydata(), expected, atol=1e-9)
    plain_lag_one = explorer.figure.axes[2].get_lines()[0].get_ydata()[1]
    assert abs(plain_lag_one) < 0.3 and f"plain {plain_lag_one:.2f}" in explorer.caption.value
