"""The course's explorers (the gradient explorer: learners turn the knobs of a deep MLP and watch its per-layer
gradients respond; the shortcut explorer: shattered gradients and the residual stream's variance), each listed in
EXPLORERS, and working with ipywidgets 7.7 (Colab's) and 8 (JupyterLab's)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Hashable, Iterator

import ipywidgets as widgets
import numpy as np
import PIL.Image
import torch
from IPython.display import display
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from residual_course import shattered
from residual_course.diagnostics import stream_variances
from residual_course.gradients import first_to_last_ratio, gradient_profile
from residual_course.models import ACTIVATIONS, INITS, NORMS, make_mlp, shallower_mlp
from residual_course.plots import GRAD_NORM_FLOOR, GRAD_NORM_LABEL, LAYER_LABEL, grad_norm_points, style_grad_norm_axes
from residual_course.runtime import seed_everything

DPI = 100
PANEL_WIDTH_PX, PANEL_HEIGHT_PX = 480, 340
PNG_COMPRESS_LEVEL = 1  # zlib's fastest: 2/3 of the default level's encoding time, for a file ~5% larger
AHEAD_DECADES, KEEP_DECADES = 3, 6  # the y axis widens ahead of the values and keeps some room to spare
PALETTE_COLORS = 64  # a line plot's few colours and their anti-aliased edges: a 64-colour PNG looks the same
WIDEST_TICK_RANGE = (GRAD_NORM_FLOOR, 1e3)  # y limits whose tick labels are the widest, for the fixed margins
LAYER_TICKS = 5  # at most this many layer ticks: plenty for a 480-pixel panel, and each label costs ~1 ms to draw
MODELS_KEPT = 4  # deepest models kept for reuse, by width, activation, norm and skip: up to 16 MB each at width 256
EXPLORER_WIDTH, EXPLORER_LAGS = 64, 32  # the shortcut explorer's networks: a third of lesson 04's width, quicker

EXPLORERS: list[type[Explorer]] = []  # every explorer of the course: the tests build and drive each one they find here


class Explorer:
    """A lesson's interactive figure: `controls` a learner moves, each redrawing the `plot` image, all in `widget`.

    Defining a subclass lists it in EXPLORERS, so the tests build it (`from_batch`), show it and move every control
    under Colab's ipywidgets 7.7 and JupyterLab's 8 without being told about it. Only what both versions offer is
    used: core widgets (sliders, dropdowns, checkboxes, Image, HTML, boxes), `observe`, and display through
    `_ipython_display_`, which ipywidgets 7's widgets need (they have no `_repr_mimebundle_`).
    """

    controls: tuple[widgets.ValueWidget, ...]
    plot: widgets.Image
    widget: widgets.Box

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        EXPLORERS.append(cls)

    @classmethod
    def from_batch(cls, images: Tensor, labels: Tensor) -> Explorer:
        """One built on a batch of the course's images and labels, as a lesson builds it (override to build more)."""
        return cls(images, labels)

    def _ipython_display_(self) -> None:
        """Show the widget for `display(explorer)` or an explorer last in a cell, under ipywidgets 7 and 8 alike."""
        display(self.widget)


class GradientExplorer(Explorer):
    """Sliders and dropdowns that redraw plain vs residual gradient profiles, to make vanishing tangible.

    The plot is a PNG rendered from a bare `Figure` into a core `widgets.Image`: no pyplot state, no ipympl,
    so it renders the same in JupyterLab and Colab. One figure per panel count is laid out once; a redraw
    moves its lines and limits, draws the axes again only if what they show changed (the layer axis ends on a
    tick, so neighbouring depths share it), and encodes the pixels at the size the page shows them. The models
    are the deepest the slider offers, built once per setting and cut to the depth shown, their weights drawn
    again as a new `make_mlp` would draw them. Models live on the device of `inputs`.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, seed: int = 0) -> None:
        self.inputs = inputs
        self.targets = targets
        self.seed = seed
        self.depth_slider = widgets.IntSlider(20, min=2, max=60, description="depth", continuous_update=False,
                                              layout=widgets.Layout(width="400px"))
        self.width_slider = widgets.IntSlider(
            64, min=16, max=256, step=16, description="width", continuous_update=False
        )
        self.activation_dropdown = widgets.Dropdown(options=ACTIVATIONS, description="activation")
        self.init_dropdown = widgets.Dropdown(options=INITS, description="init")
        self.norm_dropdown = widgets.Dropdown(options=NORMS, description="norm")
        self.skip_checkbox = widgets.Checkbox(True, description="compare with skip connections", indent=False,
                                              layout=widgets.Layout(width="auto"))
        controls = [
            self.depth_slider,
            self.width_slider,
            self.skip_checkbox,
            self.activation_dropdown,
            self.init_dropdown,
            self.norm_dropdown,
        ]
        self.controls = tuple(controls)
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        self.plot = widgets.Image(format="png")
        self.ratio_line = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox(controls[:3]), widgets.HBox(controls[3:]), self.plot, self.ratio_line])
        self._figures: dict[int, Figure] = {}  # by panel count
        # by panel count: (the axes limits they show, their pixels, the palette of the frame drawn over them)
        self._backgrounds: dict[int, tuple[tuple[tuple[float, float], ...], object, PIL.Image.Image]] = {}
        self._deepest: dict[tuple[int, str, str, bool], torch.nn.Module] = {}  # by width, activation, norm, skip
        self.update()

    def update(self) -> dict[str, list[float]]:
        """Recompute and redraw for the current controls; returns the norms by label ("plain", "residual")."""
        start = time.perf_counter()
        labels = ("plain", "residual") if self.skip_checkbox.value else ("plain",)
        norms = {label: self._gradient_norms(skip=label == "residual") for label in labels}
        self.last_model_seconds = time.perf_counter() - start  # the models' share of the redraw, for benchmarks
        self.figure = self._update_panels(norms)
        self.plot.value = self._render_png(self.figure)
        width, height = self.figure.canvas.get_width_height()
        self.plot.layout.width, self.plot.layout.height = f"{width}px", f"{height}px"  # one image pixel per CSS pixel
        ratios = ", ".join(f"{label} {_describe_ratio(first_to_last_ratio(values))}" for label, values in norms.items())
        self.ratio_line.value = f"first/last layer gradient-norm ratio: {ratios}"
        self.last_redraw_seconds = time.perf_counter() - start
        return norms

    def _gradient_norms(self, skip: bool) -> list[float]:
        """`gradient_profile` of a freshly seeded model (same settings, same plot), with its pass sped up on a CPU."""
        depth, activation = self.depth_slider.value, self.activation_dropdown.value
        seed_everything(self.seed)
        model = shallower_mlp(self._deepest_model(skip), depth, self.init_dropdown.value, activation)
        with _quick_small_cpu_pass(self.inputs.device):
            return gradient_profile(model, self.inputs, self.targets)

    def _deepest_model(self, skip: bool) -> torch.nn.Module:
        """The deepest model of the current settings built so far (the slider's deepest, at least), on the device."""
        key = (self.width_slider.value, self.activation_dropdown.value, self.norm_dropdown.value, skip)
        model = self._deepest.pop(key, None)
        if model is None or len(model) - 1 < self.depth_slider.value:  # Flatten, then one module per Linear layer
            depth = max(self.depth_slider.value, self.depth_slider.max)
            model = make_mlp(depth, key[0], key[1], norm=key[2], skip=skip).to(self.inputs.device)
        self._deepest[key] = model  # the most recently used last
        while len(self._deepest) > MODELS_KEPT:
            del self._deepest[next(iter(self._deepest))]
        return model

    def _update_panels(self, norms: dict[str, list[float]]) -> Figure:
        """Side-by-side panels on one shared log axis, so plain and residual compare at a glance: data and limits."""
        if len(norms) not in self._figures:
            self._figures[len(norms)] = _panels(len(norms))
        figure = self._figures[len(norms)]
        for ax, (label, values) in zip(figure.axes, norms.items(), strict=True):
            (line,) = ax.get_lines()
            line.set_data(*grad_norm_points(values))
            ax.title.set_text(label)
            ax.set_xlim(0.5, _layer_axis_end(ax, len(values)) + 0.5)
        plotted = np.concatenate([line.get_ydata() for ax in figure.axes for line in ax.get_lines()])
        kept = self._backgrounds.get(len(norms))
        kept_y = kept[0][0] if kept else None  # the y limits the kept pixels show
        figure.axes[0].set_ylim(_y_limits(plotted, kept_y))  # shared: every panel gets them
        return figure

    def _render_png(self, figure: Figure) -> bytes:
        """The figure as a PNG, with only what changed drawn again (blitting).

        The lines (and the spines, which cover their markers) are drawn on every redraw, over kept pixels of
        everything else; new limits (a range of norms the y axis does not cover, a depth past the layer axis's end)
        draw the whole figure again, without those artists, and keep its pixels for the next redraws.
        """
        moving = [artist for ax in figure.axes  # in the full draw's order: the spines cover the lines' markers
                  for artist in (*ax.get_lines(), *ax.spines.values())]
        shown = (figure.axes[0].get_ylim(), *(ax.get_xlim() for ax in figure.axes))  # the y limits are shared
        return _blit_png(figure, moving, shown, self._backgrounds, len(figure.axes))


def _blit_png(figure: Figure, moving: list[Artist], shown: tuple, backgrounds: dict, key: Hashable) -> bytes:
    """The figure as a PNG, `moving` drawn over the pixels kept under `key` while the axes' limits are still `shown`;
    otherwise all of it drawn again without `moving`, and those pixels (and their palette) kept for the next redraws."""
    kept_shown, background, palette = backgrounds.get(key, (None, None, None))
    if shown == kept_shown:
        figure.canvas.restore_region(background)
    else:
        for artist in moving:
            artist.set_visible(False)
        figure.canvas.draw()
        background, palette = figure.canvas.copy_from_bbox(figure.bbox), None
        for artist in moving:
            artist.set_visible(True)
    for artist in moving:
        artist.axes.draw_artist(artist)
    if palette is None:  # the palette of a frame with its axes drawn again serves the frames that keep them
        palette = _palette(figure)
        backgrounds[key] = shown, background, palette
    return _encode_png(figure, palette)


def _panels(count: int) -> Figure:
    """`count` gradient-profile panels on one shared y axis, each with an empty line, laid out once.

    The layout fits the widest tick labels a profile can need; titles and axis labels then stay where that first
    layout put them, so a redraw never measures every tick label to place them. Every panel keeps its own tick
    labels, to read on its own.
    """
    figure = Figure(figsize=(count * PANEL_WIDTH_PX / DPI, PANEL_HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count, sharey=True, squeeze=False)[0]
    for ax in axes:
        style_grad_norm_axes(ax)
        ax.xaxis.get_major_locator().set_params(nbins=LAYER_TICKS)
        ax.set(xlabel=LAYER_LABEL, ylabel=GRAD_NORM_LABEL, ylim=WIDEST_TICK_RANGE)
        ax.tick_params(labelleft=True)
        ax.plot([], [], marker=".")
        ax.set_title("residual", y=1)  # a given height: no search for tick labels above the axes
    figure.tight_layout()
    figure.canvas.draw()
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_label_coords(*axis.label.get_position(), transform=axis.label.get_transform())
    return figure


def _layer_axis_end(ax: Axes, depth: int) -> int:
    """The first tick of the layer axis at or past `depth`: the axis ends there, so the depths up to it share it."""
    ticks = ax.xaxis.get_major_locator().tick_values(1, depth)
    return int(min(tick for tick in ticks if tick >= depth))


def _y_limits(values: np.ndarray, kept: tuple[float, float] | None) -> tuple[float, float]:
    """The kept limits while the values fit them without more than KEEP_DECADES to spare; else whole decades around
    the values, reaching AHEAD_DECADES further on a side the values crossed, so that the next steps of the depth
    slider (half a decade each for a plain sigmoid net) fit too and keep the drawn axes."""
    low, high = _decades_around(values)
    finite = values[np.isfinite(values)]
    if kept is None or finite.size == 0:
        return low, high
    if kept[0] <= finite.min() and finite.max() <= kept[1]:
        if np.log10(kept[1] / kept[0]) <= np.log10(high / low) + KEEP_DECADES:
            return kept
        return low, high
    low = low / 10**AHEAD_DECADES if finite.min() < kept[0] else low
    high = high * 10**AHEAD_DECADES if finite.max() > kept[1] else high
    return low, high


def _decades_around(values: np.ndarray) -> tuple[float, float]:
    """Log-axis limits on whole decades (plus a 5% margin), so both ends have a tick labelled with a power of ten.

    From the power of ten below the smallest finite value to the one above the largest, a decade apart at least.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return WIDEST_TICK_RANGE
    low, high = np.floor(np.log10(finite.min())), np.ceil(np.log10(finite.max()))
    high = max(high, low + 1)
    margin = 0.05 * (high - low)
    return 10 ** (low - margin), 10 ** (high + margin)


def _palette(figure: Figure) -> PIL.Image.Image:
    """The PALETTE_COLORS colours that best cover the figure's drawn pixels (an octree pass: a few milliseconds)."""
    return _pixels(figure).quantize(colors=PALETTE_COLORS, method=PIL.Image.Quantize.FASTOCTREE)


def _pixels(figure: Figure) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")


def _encode_png(figure: Figure, palette: PIL.Image.Image) -> bytes:
    """The figure's drawn pixels as a palette PNG at the figure's own pixel size: mapping to a known palette and
    compressing one byte a pixel takes a quarter of the time of a full-colour PNG, for a file half the size."""
    png = io.BytesIO()
    _pixels(figure).quantize(palette=palette, dither=PIL.Image.Dither.NONE).save(
        png, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return png.getvalue()


@contextlib.contextmanager
def _quick_small_cpu_pass(device: torch.device) -> Iterator[None]:
    """One CPU thread and denormals flushed to zero for a tiny model's forward and backward; nothing on a GPU.

    Threads: layers at most 256 units wide gain little from a second thread, and a thread waiting for a core that
    another process holds stalls every layer (one thread sums in another order: last-digit changes, as on another
    machine).
    Denormals: vanishing gradients fall below float32's normal range (1.2e-38), where x86 arithmetic is several
    times slower; flushed, such entries count as 0, which changes only norms far below the plot's floor (1e-30).
    PyTorch cannot report whether flushing was on: it is left off, its default.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _describe_ratio(ratio: float) -> str:
    """A ratio for the caption; an exact zero means the gradient fell below float32's smallest number."""
    return "0 (the first layer's gradient underflowed float32)" if ratio == 0 else f"{ratio:.2e}"


class ShortcutExplorer(Explorer):
    """Depth, skip connections, normalisation and branch scale -> the shattered-gradient view (dy/dx along a
    one-number input, and its autocorrelation: Balduzzi et al. 2017) or the residual stream's variance per block.

    The networks are lesson 04's (`shattered.network`), EXPLORER_WIDTH units wide so that a redraw stays quick: one
    network per normalisation, the deepest the slider offers, cut to the depth shown (a shallower network is exactly
    a deeper one's first units), the plain one and the residual one sharing its weights. Every axis of the shattered
    view has fixed limits, and the stream view's change only when the variances leave them, so most redraws draw the
    lines again over kept pixels, as the gradient explorer does.
    """

    VIEWS = ("shattered gradients", "stream variance")
    SCALES = {"1": lambda depth: 1.0, "1/√depth": lambda depth: depth**-0.5, "0 (SkipInit, ReZero)": lambda depth: 0.0}

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.depth_slider = widgets.IntSlider(24, min=1, max=100, description="depth", continuous_update=False,
                                              layout=widgets.Layout(width="400px"))
        self.scale_dropdown = widgets.Dropdown(options=tuple(self.SCALES), description="branch scale",
                                               style={"description_width": "initial"})
        self.norm_dropdown = widgets.Dropdown(options=shattered.NORMS, description="norm")
        self.view_dropdown = widgets.Dropdown(options=self.VIEWS, description="view")
        self.skip_checkbox = widgets.Checkbox(True, description="compare with skip connections", indent=False,
                                              layout=widgets.Layout(width="auto"))
        self.controls = (self.depth_slider, self.scale_dropdown, self.norm_dropdown, self.view_dropdown,
                         self.skip_checkbox)
        for control in self.controls:
            control.observe(lambda change: self.update(), names="value")
        self.plot = widgets.Image(format="png")
        self.caption = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox(self.controls[:2]), widgets.HBox(self.controls[2:]), self.plot,
                                    self.caption])
        self.points = shattered.input_points()
        self._networks: dict[str, shattered.ScalarNetwork] = {}
        self._figures: dict[tuple[str, int], Figure] = {}
        # by view and panel count: (the limits of every axis they show, their pixels, the palette of the frame)
        self._backgrounds: dict[tuple[str, int], tuple[tuple, object, PIL.Image.Image]] = {}
        self.update()

    @classmethod
    def from_batch(cls, images: Tensor, labels: Tensor) -> ShortcutExplorer:
        """Its input is one number, not an image: the batch is not needed."""
        return cls()

    def update(self) -> dict[str, np.ndarray]:
        """Measure and redraw for the current controls; returns what each panel shows, by label ("plain",
        "residual"): dy/dx at each point, or the stream's variance entering each block and after the last."""
        start = time.perf_counter()
        labels = ("plain", "residual") if self.skip_checkbox.value else ("plain",)
        view = self.view_dropdown.value
        with _quick_small_cpu_pass(self.points.device):
            values = {label: self._measure(label == "residual", view) for label in labels}
        self.last_model_seconds = time.perf_counter() - start
        key = (view, len(values))
        if key not in self._figures:
            self._figures[key] = _shortcut_panels(view, tuple(values))
        self.figure = self._figures[key]
        if view == self.VIEWS[0]:
            self._show_gradients(values)
        else:
            self._show_variances(values)
        self.plot.value = self._render_png(key)
        width, height = self.figure.canvas.get_width_height()
        self.plot.layout.width, self.plot.layout.height = f"{width}px", f"{height}px"
        self.last_redraw_seconds = time.perf_counter() - start
        return values

    def _network(self, skip: bool) -> shattered.ScalarNetwork:
        """The deepest network of the current normalisation, cut to the depth shown, with or without skips."""
        norm = self.norm_dropdown.value
        if norm not in self._networks:
            self._networks[norm] = shattered.network(self.depth_slider.max, skip, norm, width=EXPLORER_WIDTH,
                                                     seed=self.seed)
        depth = self.depth_slider.value
        return self._networks[norm].configure(depth, skip, self.SCALES[self.scale_dropdown.value](depth))

    def _measure(self, skip: bool, view: str) -> np.ndarray:
        """dy/dx along the input, or the stream's variances, of one network."""
        network = self._network(skip)
        if view == self.VIEWS[0]:
            return shattered.derivative(network, self.points).numpy()
        return np.array(stream_variances(network.running(), network.first(self.points)))

    def _show_gradients(self, gradients: dict[str, np.ndarray]) -> None:
        """Each panel: dy/dx scaled to its largest size (its shape is the point), and its autocorrelation."""
        correlations = {}
        for column, (label, gradient) in enumerate(gradients.items()):
            top, bottom = self.figure.axes[column], self.figure.axes[len(gradients) + column]  # row by row
            largest = np.abs(gradient).max()
            top.get_lines()[0].set_ydata(gradient / largest if largest > 0 else gradient)
            # its autocorrelation at lags 0..EXPLORER_LAGS (lesson 04's learners write their own: no function here)
            centred = gradient.astype(np.float64) - gradient.mean()
            energy = centred @ centred
            full = np.correlate(centred, centred, mode="full")[len(centred) - 1: len(centred) + EXPLORER_LAGS]
            correlations[label] = full / energy if energy > 0 else np.zeros(EXPLORER_LAGS + 1)
            bottom.get_lines()[0].set_ydata(correlations[label])
        lag_one = ", ".join(f"{label} {_describe_correlation(values[1])}" for label, values in correlations.items())
        self.caption.value = f"lag-1 autocorrelation of dy/dx over {len(self.points)} inputs: {lag_one}"

    def _show_variances(self, variances: dict[str, np.ndarray]) -> None:
        """Each panel: the variance entering each block, on a log axis whose limits move only when they must."""
        for ax, values in zip(self.figure.axes, variances.values(), strict=True):
            ax.get_lines()[0].set_data(np.arange(len(values)), values)
            ax.set_xlim(0, _layer_axis_end(ax, max(len(values) - 1, 1)))
        plotted = np.concatenate(list(variances.values()))
        kept = self._backgrounds.get((self.VIEWS[1], len(variances)))
        self.figure.axes[0].set_ylim(_y_limits(plotted, kept[0][0][1] if kept else None))  # shared by the panels
        growth = ", ".join(f"{label} ×{values[-1] / values[0]:.3g}" for label, values in variances.items())
        self.caption.value = f"the stream's variance after the last block over its variance at the first: {growth}"

    def _render_png(self, key: tuple[str, int]) -> bytes:
        """The figure as a PNG, its lines drawn over kept pixels unless an axis's limits changed (then all of it)."""
        figure = self.figure
        moving = [artist for ax in figure.axes for artist in (*ax.get_lines()[:1], *ax.spines.values())]
        shown = tuple((ax.get_xlim(), ax.get_ylim()) for ax in figure.axes)
        return _blit_png(figure, moving, shown, self._backgrounds, key)


def _shortcut_panels(view: str, labels: tuple[str, ...]) -> Figure:
    """The explorer's panels for a view, laid out once: two rows (dy/dx, its autocorrelation) or one (variances)."""
    rows = 2 if view == ShortcutExplorer.VIEWS[0] else 1
    figure = Figure(figsize=(len(labels) * PANEL_WIDTH_PX / DPI, rows * PANEL_HEIGHT_PX * 0.75 / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, len(labels), squeeze=False, sharey="row")
    for column, label in enumerate(labels):
        if rows == 2:
            top, bottom = grid[0, column], grid[1, column]
            top.plot(shattered.input_points()[:, 0].numpy(), np.zeros(shattered.POINTS), lw=0.8)
            top.set(xlim=shattered.INTERVAL, ylim=(-1.1, 1.1), xlabel="input x", title=label)
            bottom.plot(np.arange(EXPLORER_LAGS + 1), np.zeros(EXPLORER_LAGS + 1), marker=".")
            bottom.axhline(0, color="0.6", lw=0.8, zorder=1)  # under the curve, as a redraw over kept pixels has it
            bottom.set(xlim=(-0.5, EXPLORER_LAGS + 0.5), ylim=(-1.1, 1.1), xlabel="lag (points apart)")
            if column == 0:
                top.set_ylabel("dy/dx (÷ its largest)")
                bottom.set_ylabel("autocorrelation")
            top.tick_params(labelleft=True)
            bottom.tick_params(labelleft=True)
        else:
            ax = grid[0, column]
            ax.plot([], [], marker=".", ms=3)
            ax.set(yscale="log", xlabel="block", title=label, ylim=(0.1, 1e3))
            ax.xaxis.get_major_locator().set_params(integer=True, nbins=LAYER_TICKS)
            ax.tick_params(labelleft=True)
            if column == 0:
                ax.set_ylabel("variance of the stream")
    figure.tight_layout()
    return figure


def _describe_correlation(value: float) -> str:
    """A lag-1 autocorrelation for the caption, with what it resembles."""
    kind = "smooth" if value > 0.7 else "noisy" if value > 0.3 else "like white noise"
    return f"{value:.2f} ({kind})"
