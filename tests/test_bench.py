"""benchmarks/bench.py in its tiny version, so `make bench` cannot rot, and the pieces its figures rest on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from notebooks import REPOSITORY

from residual_course import data
from residual_course.data import load_dataset
from residual_course.formulas import basic_block_params, count_parameters, resnet_params
from residual_course.runtime import FAST_ENV_VARS

sys.path.insert(0, str(REPOSITORY / "benchmarks"))
import bench  # noqa: E402
from small_resnet import SmallResNet  # noqa: E402

DEBIAN_FASHION = data.DEBIAN_FOLDERS["fashion-mnist"]
needs_debian_data = pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                                       reason="needs `apt-get install dataset-fashion-mnist`")


@pytest.fixture(autouse=True)
def not_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark measures full runs: it leaves fast mode, and the environment is restored afterwards."""
    for name in FAST_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def table_rows(table: str) -> list[list[str]]:
    """The cells of a Markdown table's body, after checking its header."""
    lines = table.splitlines()
    assert lines[:2] == ["| part | measurement | value |", "| --- | --- | --- |"]
    rows = [line.removeprefix("| ").removesuffix(" |").split(" | ") for line in lines[2:]]
    assert rows and all(len(row) == 3 for row in rows), table
    return rows


@needs_debian_data
def test_tiny_bench_prints_one_table_and_writes_it_with_the_machine(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "results.md"
    table = bench.main(["--tiny", "--output", str(output)])
    assert table in capsys.readouterr().out
    rows = table_rows(table)
    assert [part for part, _, _ in rows] == sorted(part for part, _, _ in rows)
    assert {part for part, _, _ in rows} == {"1 trainer", "2 widget", "4 GPU"}
    values = {(part, measurement): value for part, measurement, value in rows}
    speedups = [value for (_, measurement), value in values.items() if "speed-up" in measurement]
    assert len(speedups) == 2 and all(float(value.removesuffix("x")) > 0 for value in speedups)
    assert any(measurement.startswith("test accuracy") and value.count("%") == 2 for (_, measurement), value in
               values.items())
    redraws = {measurement: value for (part, measurement), value in values.items() if part == "2 widget"}
    assert all(float(value.removesuffix(" s")) > 0 for value in redraws.values())
    explorers = [measurement.split(" redraw")[0] for measurement in redraws]
    assert explorers.count("gradient explorer") == 1 and explorers.count("shortcut explorer") == 4  # 2 views x 2 norms
    text = output.read_text()
    assert table in text and f"torch {torch.__version__}" in text and "cores" in text
    assert "bench.py --tiny" in text
    assert ("No GPU was available here" in text) != torch.cuda.is_available()


def test_small_resnet_has_the_lesson_models_parameter_count() -> None:
    for recipe in (bench.CPU_RECIPE, bench.GPU_RECIPE, bench.TINY_RECIPE):
        model = SmallResNet(recipe.widths, recipe.layers)
        assert count_parameters(model) == resnet_params(basic_block_params, recipe.layers, num_classes=10,
                                                        in_channels=1, small_input=True, widths=recipe.widths)
    assert count_parameters(SmallResNet()) == 77_754  # what lesson 06 prints for its CPU model
    assert SmallResNet()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_recipe_counts_steps_and_images() -> None:
    recipe = bench.Recipe((8,), (1,), epochs=2, steps_per_epoch=None, augment=False, batch_size=128)
    assert (recipe.steps(1000), recipe.images_per_epoch(1000)) == (8, 1000)
    capped = bench.Recipe((8,), (1,), epochs=2, steps_per_epoch=3, augment=False, batch_size=128)
    assert (capped.steps(1000), capped.images_per_epoch(1000)) == (3, 384)


def test_run_reports_throughput_and_time_to_accuracy() -> None:
    run = bench.Run(images_per_epoch=100, train_seconds=[10.0, 11.0, 12.0], test_accuracy=[0.5, 0.94, 0.96])
    assert run.images_per_second() == pytest.approx(300 / 12)
    assert run.images_per_second(skip_first=True) == pytest.approx(100)
    assert run.seconds_to(0.93) == "11.0 s"
    assert run.seconds_to(0.99) == "not reached: best 96.00% in 3 epochs (12.0 s)"


@needs_debian_data
def test_textbook_loop_and_fit_reach_similar_accuracy_on_a_small_problem() -> None:
    fashion = load_dataset(device="cpu", train_size=2048, test_size=1000, root=DEBIAN_FASHION, download=False)
    recipe = bench.Recipe((8, 16, 32), (1, 1, 1), epochs=2, steps_per_epoch=None, augment=False, batch_size=64)
    textbook, course = bench.textbook_run(recipe, fashion), bench.course_run(recipe, fashion)
    assert len(textbook.test_accuracy) == len(course.test_accuracy) == 2
    assert textbook.test_accuracy[-1] > 0.5 and course.test_accuracy[-1] > 0.5
    assert abs(textbook.test_accuracy[-1] - course.test_accuracy[-1]) < 0.1
    assert bench.textbook_run(recipe, fashion).test_accuracy == textbook.test_accuracy  # seeded: repeatable


@needs_debian_data
def test_copy_data_fills_a_folder_the_loader_reads(tmp_path: Path) -> None:
    copied = bench.copy_data(tmp_path / ".data", names=("fashion-mnist",))
    assert copied == [tmp_path / ".data" / "fashion-mnist"]
    assert sorted(path.name for path in copied[0].iterdir()) == sorted(data.FILES)
    assert data.find_folder("fashion-mnist", root=copied[0], download=False) == copied[0]


def test_device_script_is_valid_bash_and_names_its_call() -> None:
    script = REPOSITORY / "benchmarks" / "device_run.sh"
    subprocess.run(["bash", "-n", script], check=True)
    text = script.read_text()
    assert 'carry=[".data"]' in text and "--parts 4" in text


def test_the_device_proof_runs_its_cpu_parts_here_and_says_what_needs_a_gpu(tmp_path):
    """`make device-proof` without a GPU: checks, a small class graded against its CPU scores, bench part 4 tiny."""
    if torch.cuda.is_available():
        pytest.skip("with a GPU the device proof is the full run: benchmarks/device_proof.sh")
    done = subprocess.run([sys.executable, str(REPOSITORY / "benchmarks" / "device_proof.py"),
                           "--output", str(tmp_path / "results.md")], capture_output=True, text=True, timeout=900)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-4000:]
    assert "No CUDA GPU here" in printed and "run benchmarks/device_proof.sh there" in printed
    assert "05_residual_blocks: all cells passed" in printed and "ran on cpu (no GPU found)" in printed
    assert "05_residual_blocks: 2 in" in printed and "every score equals its CPU score" in printed
    assert "speed-up" in printed and (tmp_path / "results.md").exists()
