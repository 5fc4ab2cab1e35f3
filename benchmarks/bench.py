"""`make bench`: how fast the course trains, measured beside a textbook loop, as one table written to results.md.

Parts: 1, lesson 06's small ResNet trained by the course's `fit` and by a textbook loop, side by side in this process
(same model, data, recipe and seed); 2, the two explorers' redraw times; 3, autograding seconds per
submission, serial and parallel; 4, on a GPU, images/s and seconds to a target test accuracy. By default parts 1-3,
and 4 when CUDA is there. `--tiny` runs seconds-long versions (parts 1, 2 and 4 on any device: the CI test);
`benchmarks/device_run.sh` runs part 4 on the device machine. Speeds are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from small_resnet import SmallResNet
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from residual_course.data import FILES, DataNotFoundError, DataSet, Split, find_folder, load_dataset, shift_and_flip
from residual_course.formulas import count_parameters
from residual_course.runtime import FAST_ENV_VARS, get_device, seed_everything
from residual_course.training import COMPILE_PAYS_ON, fit

if TYPE_CHECKING:
    import nbformat

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results.md"
Row = tuple[str, str, str]  # (part, measurement, value): every part returns a list of these


@dataclass(frozen=True)
class Recipe:
    """One training run of lesson 06's small ResNet: SGD with Nesterov momentum, one-cycle schedule, weight decay."""

    widths: tuple[int, ...]
    layers: tuple[int, ...]
    epochs: int
    steps_per_epoch: int | None  # None: whole epochs
    augment: bool
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4

    def steps(self, train_size: int) -> int:
        """Optimisation steps per epoch on a training split of this size."""
        whole = -(-train_size // self.batch_size)
        return min(whole, self.steps_per_epoch or whole)

    def images_per_epoch(self, train_size: int) -> int:
        """Training images seen per epoch (the last batch of a whole epoch may be short)."""
        return min(train_size, self.steps(train_size) * self.batch_size)

    def describe(self, data: DataSet) -> str:
        """One line for the table: model, size, schedule, data."""
        size = count_parameters(SmallResNet(self.widths, self.layers, len(data.class_names)))
        steps = f"{self.epochs} x {self.steps(len(data.train))} steps of {self.batch_size}"
        return (f"small ResNet widths {self.widths} x {list(self.layers)} blocks ({size:,} parameters); {steps}; "
                f"SGD Nesterov, one-cycle lr {self.lr}, weight decay {self.weight_decay}; "
                f"{'shift+flip augmentation' if self.augment else 'no augmentation'}; {data.name} "
                f"{len(data.train):,}/{len(data.test):,} images")


CPU_RECIPE = Recipe((16, 32, 64), (1, 1, 1), epochs=3, steps_per_epoch=150, augment=False)  # lesson 06 on a CPU
GPU_RECIPE = Recipe((32, 64, 128), (2, 2, 2), epochs=20, steps_per_epoch=None, augment=True)  # lesson 06 on a GPU
TINY_RECIPE = Recipe((8, 16, 32), (1, 1, 1), epochs=2, steps_per_epoch=4, augment=True)
GPU_COMPARE_EPOCHS = 2  # the textbook loop is slow: images/s of both loops over the first epochs only
TARGETS = {"fashion-mnist": 0.93, "mnist": 0.995}
WIDGET_DEPTHS, WIDGET_REPEATS, TINY_WIDGET = (20, 50, 100), 15, ((20,), 2, 20)
SHORTCUT_DEPTH = 50  # where issue 25 asks the shortcut explorer to redraw within 100 ms
AUTOGRADE_ASSIGNMENT, AUTOGRADE_COPIES, AUTOGRADE_JOBS = "05_residual_blocks", 4, 2


@dataclass(frozen=True)
class Run:
    """What one training run measured: training seconds (evaluation left out) and test accuracy, per epoch."""

    images_per_epoch: int
    train_seconds: list[float]
    test_accuracy: list[float]

    def images_per_second(self, skip_first: bool = False) -> float:
        """Training throughput over every epoch, or over the epochs after the first (compile and warm-up left out)."""
        if skip_first and len(self.train_seconds) > 1:
            seconds = self.train_seconds[-1] - self.train_seconds[0]
            return self.images_per_epoch * (len(self.train_seconds) - 1) / seconds
        return self.images_per_epoch * len(self.train_seconds) / self.train_seconds[-1]

    def seconds_to(self, accuracy: float) -> str:
        """Training seconds until the first epoch that ends at `accuracy` or above, or how far it got."""
        for seconds, reached in zip(self.train_seconds, self.test_accuracy, strict=True):
            if reached >= accuracy:
                return f"{seconds:.1f} s"
        return (f"not reached: best {max(self.test_accuracy):.2%} in {len(self.train_seconds)} epochs "
                f"({self.train_seconds[-1]:.1f} s)")


def seeded_model(recipe: Recipe, data: DataSet, seed: int) -> nn.Module:
    """The same initial weights for both loops."""
    seed_everything(seed)
    return SmallResNet(recipe.widths, recipe.layers, len(data.class_names))


def course_run(recipe: Recipe, data: DataSet, seed: int = 0, compile: bool | None = None) -> Run:
    """The course's `fit` with lesson 06's recipe, on the data's device."""
    history = fit(seeded_model(recipe, data, seed), data, epochs=recipe.epochs, lr=recipe.lr, optimizer="nesterov",
                  schedule="one-cycle", weight_decay=recipe.weight_decay, batch_size=recipe.batch_size, seed=seed,
                  max_steps_per_epoch=recipe.steps_per_epoch, augment=shift_and_flip if recipe.augment else None,
                  compile=compile, progress=False)
    return Run(recipe.images_per_epoch(len(data.train)), history.train_seconds, history.test_accuracy)


def textbook_run(recipe: Recipe, data: DataSet, seed: int = 0) -> Run:
    """What a tutorial writes: a DataLoader over a TensorDataset, `loss.item()` every step, float32, no tricks."""
    device = data.train.images.device
    model = seeded_model(recipe, data, seed).to(device)
    loader = DataLoader(TensorDataset(data.train.images.cpu(), data.train.labels.cpu()),
                        batch_size=recipe.batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)
    steps = recipe.steps(len(data.train))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    train_seconds, test_accuracy, elapsed = [], [], 0.0
    for _ in range(recipe.epochs):
        start = time.perf_counter()
        model.train()
        running_loss = 0.0
        for step, (images, labels) in enumerate(loader):
            if step == steps:
                break
            images, labels = images.to(device), labels.to(device)
            if recipe.augment:
                images = shift_and_flip(images)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            running_loss += loss.item()
        elapsed += time.perf_counter() - start
        train_seconds.append(elapsed)
        test_accuracy.append(textbook_accuracy(model, data.test))
    return Run(recipe.images_per_epoch(len(data.train)), train_seconds, test_accuracy)


def textbook_accuracy(model: nn.Module, test: Split) -> float:
    """The textbook's evaluation loop: a DataLoader, `.item()` per batch."""
    device = test.images.device
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(TensorDataset(test.images.cpu(), test.labels.cpu()), batch_size=1000):
            correct += (model(images.to(device)).argmax(dim=1) == labels.to(device)).sum().item()
    return correct / len(test)


def fit_settings(device: torch.device, compile: bool | None = None) -> str:
    """What `fit` does on this device, in words, for the table."""
    compiled = device.type in COMPILE_PAYS_ON if compile is None else compile
    return (f"channels_last{', bf16 autocast' if device.type == 'cuda' else ''}"
            f"{', torch.compile' if compiled else ''}")


def trainer_rows(recipe: Recipe, data: DataSet, seed: int = 0) -> list[Row]:
    """Part 1: the same training by both loops, twice each in the order textbook, fit, fit, textbook.

    Other processes on a shared machine slow whichever run they overlap: the ABBA order evens out a drifting load,
    and each loop's faster run of the two is the one reported.
    """
    device = data.train.images.device
    first_textbook, first_course = textbook_run(recipe, data, seed), course_run(recipe, data, seed)
    second_course, second_textbook = course_run(recipe, data, seed), textbook_run(recipe, data, seed)
    textbook = max(first_textbook.images_per_second(), second_textbook.images_per_second())
    course = max(first_course.images_per_second(), second_course.images_per_second())
    part = "1 trainer"
    return [
        (part, "setup", f"{recipe.describe(data)}; {device.type}; seed {seed}; images/s: the faster of 2 runs each"),
        (part, "textbook loop (DataLoader over a TensorDataset, loss.item() every step, float32 NCHW): images/s",
         f"{textbook:,.0f}"),
        (part, f"course fit() (index batches on the device, losses read once per epoch, {fit_settings(device)}): "
               "images/s", f"{course:,.0f}"),
        (part, "fit() speed-up over the textbook loop", f"{course / textbook:.2f}x"),
        (part, "test accuracy after training: textbook loop / fit()",
         f"{first_textbook.test_accuracy[-1]:.2%} / {first_course.test_accuracy[-1]:.2%}"),
    ]


def widget_rows(depths: Sequence[int] = WIDGET_DEPTHS, repeats: int = WIDGET_REPEATS,
                shortcut_depth: int = SHORTCUT_DEPTH) -> list[Row]:
    """Part 2: the gradient explorer's redraw beside the old way, as benchmarks/widget_redraw.py measures them, and
    the shortcut explorer's (lesson 04) in each view and normalisation."""
    import widget_redraw  # here, not at the top: part 4 runs on machines without ipywidgets or nbformat

    from residual_course.widgets import ShortcutExplorer

    test = load_dataset("fashion-mnist", device="cpu", train_size=1, test_size=widget_redraw.BATCH_SIZE).test
    explorer = widget_redraw.GradientExplorer(test.images, test.labels)
    rows = []
    for depth in depths:
        moved, models = widget_redraw.depth_move_seconds(explorer, depth, repeats)
        across, _ = widget_redraw.depth_move_seconds(explorer, depth, repeats, other=depth + 1)
        kept = widget_redraw.redraw_seconds(explorer, depth, repeats)
        whole = widget_redraw.full_redraw_seconds(explorer, depth, repeats)
        old = widget_redraw.old_redraw_seconds(explorer, depth, repeats)
        rows.append(("2 widget", f"gradient explorer redraw at depth {depth}, {widget_redraw.BATCH_SIZE} images, CPU, "
                                 f"depth slider moved by one layer: median of {repeats} (p90 "
                                 f"{statistics.quantiles(moved, n=10)[-1]:.3f} s; the two models' share: median "
                                 f"{statistics.median(models):.3f} s; moved across the layer axis's end: "
                                 f"median {statistics.median(across):.3f} s, p90 "
                                 f"{statistics.quantiles(across, n=10)[-1]:.3f} s; update(): median "
                                 f"{statistics.median(kept):.3f} s, p90 {statistics.quantiles(kept, n=10)[-1]:.3f} s; "
                                 f"whole figure drawn: median {statistics.median(whole):.3f} s, p90 "
                                 f"{statistics.quantiles(whole, n=10)[-1]:.3f} s; "
                                 "the old redraw, a new Figure with tight_layout and a default PNG each time: median "
                                 f"{statistics.median(old):.3f} s, p90 {statistics.quantiles(old, n=10)[-1]:.3f} s)",
                     f"{statistics.median(moved):.3f} s"))
    shortcuts = ShortcutExplorer()
    for view in ShortcutExplorer.VIEWS:
        for norm in ("batch", "none"):
            shortcuts.view_dropdown.value, shortcuts.norm_dropdown.value = view, norm
            moved, networks = widget_redraw.depth_move_seconds(shortcuts, shortcut_depth, repeats)
            whole = widget_redraw.full_redraw_seconds(shortcuts, shortcut_depth, repeats)
            rows.append(("2 widget", f"shortcut explorer redraw at depth {shortcut_depth}, view {view}, norm {norm}, "
                                     f"CPU, depth slider moved by one block: median of {repeats} (p90 "
                                     f"{statistics.quantiles(moved, n=10)[-1]:.3f} s; the networks' share: median "
                                     f"{statistics.median(networks):.3f} s; whole figure drawn: median "
                                     f"{statistics.median(whole):.3f} s, p90 "
                                     f"{statistics.quantiles(whole, n=10)[-1]:.3f} s)",
                         f"{statistics.median(moved):.3f} s"))
    return rows


def solved_lesson(assignment: str) -> nbformat.NotebookNode:
    """The released lesson with every exercise cell replaced by its solution, as a student who solved it submits."""
    import nbformat

    lesson = nbformat.read(REPOSITORY / "lessons" / assignment / f"{assignment}.ipynb", as_version=4)
    solutions = nbformat.read(REPOSITORY / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    sources = {cell.id: cell.source for cell in solutions.cells}
    for cell in lesson.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "\n".join(line for line in sources[cell.id].splitlines() if "### " not in line)
    return lesson


def autograde_rows(assignment: str = AUTOGRADE_ASSIGNMENT, copies: int = AUTOGRADE_COPIES,
                   jobs: int = AUTOGRADE_JOBS) -> list[Row]:
    """Part 3: `make autograde` on copies of a solved lesson in a scratch grading folder, serially and J at once."""
    import nbformat

    rows, per_submission = [], {}
    with tempfile.TemporaryDirectory() as root:
        for student in range(copies):
            folder = Path(root) / "submitted" / f"student{student}" / assignment
            folder.mkdir(parents=True)
            nbformat.write(solved_lesson(assignment), folder / f"{assignment}.ipynb")
        for parallel in (1, jobs):
            start = time.perf_counter()
            subprocess.run(["make", "--no-print-directory", "autograde", f"A={assignment}", f"J={parallel}",
                            f"VENV={Path(sys.executable).parent.parent}"], cwd=REPOSITORY, check=True,
                           env={**os.environ, "GRADING_ROOT": root}, stdout=subprocess.DEVNULL)
            per_submission[parallel] = (time.perf_counter() - start) / copies
            rows.append(("3 autograde", f"make autograde A={assignment} J={parallel}, {copies} solved submissions "
                                        "(isolated, re-checked): batch seconds per submission",
                         f"{per_submission[parallel]:.1f} s"))
    rows.append(("3 autograde", f"J={jobs} speed-up over J=1", f"{per_submission[1] / per_submission[jobs]:.2f}x"))
    return rows


def gpu_rows(recipe: Recipe, data: DataSet, mnist: DataSet | None, seed: int = 0) -> list[Row]:
    """Part 4: both loops' images/s on the first epochs, then `fit`'s time to the target accuracy, compiled or not."""
    device = data.train.images.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"no GPU, ran on {device.type}"
    compare = replace(recipe, epochs=min(recipe.epochs, GPU_COMPARE_EPOCHS))
    textbook, course = textbook_run(compare, data, seed), course_run(compare, data, seed)
    part = "4 GPU"
    rows = [
        (part, "device", name),
        (part, "setup", f"{recipe.describe(data)}; images/s over the first {compare.epochs} epochs"),
        (part, "textbook loop: images/s", f"{textbook.images_per_second():,.0f}"),
        (part, f"course fit() ({fit_settings(device)}): images/s", f"{course.images_per_second():,.0f}"),
        (part, "fit() speed-up over the textbook loop",
         f"{course.images_per_second() / textbook.images_per_second():.2f}x"),
    ]
    for compile in (False, True):
        run = course_run(recipe, data, seed, compile=compile)
        label = f"fit() ({fit_settings(device, compile)})"
        rows += [
            (part, f"{label}: images/s after the first epoch; first epoch seconds (compile included)",
             f"{run.images_per_second(skip_first=True):,.0f}; {run.train_seconds[0]:.1f} s"),
            (part, f"{label}: training seconds to {TARGETS[data.name]:.1%} {data.name} test accuracy",
             run.seconds_to(TARGETS[data.name])),
        ]
    if mnist is None:
        rows.append((part, "mnist", "no MNIST files on this machine: not run"))
    else:
        run = course_run(recipe, mnist, seed)
        rows.append((part, f"fit() ({fit_settings(device)}): training seconds to {TARGETS['mnist']:.1%} mnist test "
                           "accuracy", run.seconds_to(TARGETS["mnist"])))
    return rows


def optional_dataset(name: str, **sizes: int | None) -> DataSet | None:
    """A data set that may be missing here (MNIST), without trying to download it."""
    try:
        return load_dataset(name, train_size=sizes.get("train_size"), test_size=sizes.get("test_size"), download=False)
    except DataNotFoundError:
        return None


def machine() -> str:
    """CPU model and cores, plus the GPU's name when there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []
    text = f"{models[0] if models else platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads"
    return text + (f"; GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU")


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as one Markdown table."""
    lines = ["| part | measurement | value |", "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in rows])


def write_results(path: Path, table: str, parts: Sequence[int], command: str, load: tuple[float, float]) -> None:
    """The table with what produced it: machine, date, versions, load, and which parts ran."""
    gpu_note = "" if torch.cuda.is_available() else (" No GPU was available here: part 4's GPU figures come from "
                                                     "benchmarks/device_run.sh on a machine with one.")
    path.write_text(
        f"# Benchmark results\n\nWritten by `{command}` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC."
        f"\n\n- machine: {machine()}\n- torch {torch.__version__}, Python {platform.python_version()}\n"
        f"- load average (1 min): {load[0]:.1f} at the start, {load[1]:.1f} at the end (other processes share this "
        f"machine)\n- parts run: {', '.join(map(str, parts))}.{gpu_note}\n\n{table}\n"
    )


def copy_data(target: Path, names: Sequence[str] = ("fashion-mnist", "mnist")) -> list[Path]:
    """Copy the data sets found here into target/<name>/, where RESIDUAL_COURSE_DATA=target finds them."""
    copied = []
    for name in names:
        try:
            source = find_folder(name, download=False)
        except DataNotFoundError:
            print(f"{name}: not found here, not copied")
            continue
        (target / name).mkdir(parents=True, exist_ok=True)
        for file in FILES:
            shutil.copyfile(source / file, target / name / file)
        copied.append(target / name)
        print(f"{name}: {source} -> {target / name}")
    return copied


def main(argv: Sequence[str] | None = None) -> str:
    """Run the chosen parts, print the table, write it with the machine's description; return the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="seconds-long versions of parts 1, 2 and 4 (CI)")
    parser.add_argument("--parts", type=int, nargs="+", choices=(1, 2, 3, 4),
                        help="default: 1 2 3, and 4 when CUDA is available (--tiny: 1 2 4)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default: {RESULTS.relative_to(REPOSITORY)}")
    parser.add_argument("--copy-data", type=Path, metavar="FOLDER",
                        help="only copy Fashion-MNIST (and MNIST, if here) into FOLDER, for the device machine")
    args = parser.parse_args(argv)
    if args.copy_data:
        copy_data(args.copy_data)
        return ""
    for name in FAST_ENV_VARS:  # fast mode would shrink fit()'s runs and not the textbook loop's
        os.environ.pop(name, None)
    parts = args.parts or ([1, 2, 4] if args.tiny else [1, 2, 3] + [4] * torch.cuda.is_available())
    device = get_device()
    sizes = {"train_size": 512, "test_size": 500} if args.tiny else {}
    load_at_start = os.getloadavg()[0]
    rows: list[Row] = []
    if 1 in parts:
        data = load_dataset("fashion-mnist", device=device, train_size=sizes.get("train_size"),
                            test_size=sizes.get("test_size"))
        rows += trainer_rows(TINY_RECIPE if args.tiny else CPU_RECIPE, data)
    if 2 in parts:
        rows += widget_rows(*TINY_WIDGET) if args.tiny else widget_rows()
    if 3 in parts:
        rows += autograde_rows()
    if 4 in parts:
        data = load_dataset("fashion-mnist", device=device, train_size=sizes.get("train_size"),
                            test_size=sizes.get("test_size"))
        rows += gpu_rows(TINY_RECIPE if args.tiny else GPU_RECIPE, data, optional_dataset("mnist", **sizes))
    table = markdown_table(rows)
    print(table)
    command = " ".join(["python benchmarks/bench.py", *(sys.argv[1:] if argv is None else argv)])
    write_results(args.output, table, parts, command, (load_at_start, os.getloadavg()[0]))
    return table


if __name__ == "__main__":
    main()
