"""Does the capstone's grade reward residual design? Designs under GRADING_RECIPE, seed by seed, and the bands.

`python benchmarks/capstone_ranking.py [--seeds 0 1 2 3 4] [--splits test validation] [--designs ...]` trains each
design as the grader does (a fresh model seeded with the seed, GRADING_RECIPE) and prints its accuracy per seed:

- on the `test` split, trained on the whole training set: grading_accuracy, the grader's own call, whose figures
  place the bands of residual_course/grading_policy.py (every band edge outside the reference's spread);
- on the `validation` split, trained on the rest of the training set: the development data lesson 09 carves (its
  data cell, run here), where the lesson's design table comes from; the lesson never compares on the test split.

The designs: the solution's MyResNet (from its answer cell), the same network without its shortcuts
(MyResNet(shortcuts=False)), a deliberately poor residual net (tests/fixtures/capstone.py's PoorResNet: one 8-channel
block), and a shallow, wide residual net with and without its shortcuts (SmallResNet, PlainNet: three one-block
stages). Fast mode (RESIDUAL_COURSE_FAST=1, the autograder's budget and data) or default mode is the environment's.
The ranking MyResNet > without shortcuts > poor must hold on every seed; the summary says whether it does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.capstone import PlainNet, PoorResNet, SmallResNet  # noqa: E402

from residual_course import fast_mode  # noqa: E402
from residual_course.data import DataSet, Split, load_dataset  # noqa: E402
from residual_course.formulas import count_parameters  # noqa: E402
from residual_course.grading_policy import grading_accuracy, grading_bands  # noqa: E402
from residual_course.runtime import get_device  # noqa: E402

LESSON = ROOT / "solutions/09_capstone/09_capstone.ipynb"
REFERENCE, PLAIN, POOR = "MyResNet (solution)", "same, no shortcuts", "poor residual net"
WIDE, WIDE_PLAIN = "shallow wide (3 blocks)", "shallow wide, no shortcuts"


def _lesson_cell(marker: str, namespace: dict) -> dict:
    """Run the solution notebook's first code cell that contains `marker` in `namespace` (the one source of truth)."""
    notebook = nbformat.read(LESSON, as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)
    exec(cell.source, namespace)  # noqa: S102 (the course's own solution)
    return namespace


def solution_model() -> type[nn.Module]:
    """The solution notebook's MyResNet, from its answer cell."""
    return _lesson_cell("class MyResNet", {"nn": nn, "torch": torch})["MyResNet"]


def development_data(device: torch.device) -> DataSet:
    """The lesson's development data: its training set less a validation split, which plays the test split."""
    namespace = {"torch": torch, "DataSet": DataSet, "Split": Split, "load_dataset": load_dataset, "device": device,
                 "print": lambda *args, **kwargs: None}
    return _lesson_cell("development = DataSet(", namespace)["development"]


def designs() -> dict[str, Callable[[], nn.Module]]:
    """The designs of the ranking, the three that must rank in this order first."""
    reference = solution_model()
    return {REFERENCE: reference, PLAIN: lambda: reference(shortcuts=False), POOR: PoorResNet,
            WIDE: SmallResNet, WIDE_PLAIN: PlainNet}


def measure(names: list[str], seeds: list[int], data: DataSet) -> dict[str, list[float]]:
    """Accuracy of each named design on `data`'s test split for each seed, printed as it comes."""
    found = {}
    for name in names:
        factory, start = designs()[name], time.perf_counter()
        found[name] = [grading_accuracy(factory, data, seed=seed) for seed in seeds]
        print(f"  {name:>28}: {count_parameters(factory()):>6,} parameters, "
              f"{', '.join(f'{a:.3f}' for a in found[name])} ({time.perf_counter() - start:.0f} s)", flush=True)
    return found


def summarise(found: dict[str, list[float]], split: str) -> None:
    """The ranking on every seed, the shortcut gaps, the reference's spread, and the bands against them."""
    bands = grading_bands()
    for full, plain in ((REFERENCE, PLAIN), (WIDE, WIDE_PLAIN)):
        if full in found and plain in found:
            gaps = [a - b for a, b in zip(found[full], found[plain], strict=True)]
            graded = [gaps[index] for index in bands.ablation_seeds if index < len(gaps)]  # seeds given from 0
            print(f"  shortcut gap of {full}: {', '.join(f'{g:+.3f}' for g in gaps)}; over the first "
                  f"{len(graded)} seed(s), as the grade takes it: {sum(graded) / len(graded):+.3f} (its band: "
                  f"{bands.shortcut_gap}, graded on the validation split)")
    if {REFERENCE, PLAIN, POOR} <= set(found):
        holds = all(a > b > c for a, b, c in zip(found[REFERENCE], found[PLAIN], found[POOR], strict=True))
        print(f"  ranking {REFERENCE} > {PLAIN} > {POOR} on every seed: {holds}")
    if split == "test" and REFERENCE in found:
        low, high = min(found[REFERENCE]), max(found[REFERENCE])
        inside = [band for band in bands.accuracy if low <= band <= high]
        print(f"  reference's spread {low:.3f} to {high:.3f}; accuracy bands {bands.accuracy} inside it: {inside}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="the grader uses seed 0")
    parser.add_argument("--splits", nargs="+", choices=("test", "validation"), default=["test", "validation"])
    parser.add_argument("--designs", nargs="+", choices=list(designs()), default=list(designs()))
    args = parser.parse_args()
    device = get_device()
    print(f"mode: {'fast' if fast_mode() else 'default'}, device: {device}, torch threads: {torch.get_num_threads()},"
          f" seeds {args.seeds}")
    for split in args.splits:
        data = load_dataset("fashion-mnist", device=device) if split == "test" else development_data(device)
        print(f"{split} split ({len(data.train):,} training images, {len(data.test):,} evaluated):")
        summarise(measure(args.designs, args.seeds, data), split)


if __name__ == "__main__":
    main()
