"""Tests of residual_course.training: small real runs on a Fashion-MNIST subset, on the CPU."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch import nn

from residual_course import data
from residual_course.data import DataSet, load_dataset, shift_and_flip
from residual_course.runtime import FAST_ENV_VARS, seed_everything
from residual_course.training import History, evaluate, fit

DEBIAN_FASHION = data.DEBIAN_FOLDERS["fashion-mnist"]
pytestmark = pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs `apt-get install dataset-fashion-mnist`")


@pytest.fixture(autouse=True)
def not_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide fast mode themselves, whatever the CI environment says."""
    for name in FAST_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def fashion() -> DataSet:
    """A 2048/2000-example subset of the real data: big enough to learn, small enough for seconds."""
    return load_dataset(device="cpu", train_size=2048, test_size=2000, root=DEBIAN_FASHION, download=False)


def make_mlp(num_classes: int = 10) -> nn.Module:
    """The same small MLP, with the same initial weights, every time it is called."""
    seed_everything(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, num_classes))


def count_training_forwards(model: nn.Module) -> list[int]:
    """Count forward calls made in train mode, i.e. optimisation steps, leaving evaluation out."""
    calls = [0]

    def count(module: nn.Module, inputs: object, output: object) -> None:
        """Forward hook: add one per call made while training."""
        calls[0] += module.training

    model.register_forward_hook(count)
    return calls


def test_fit_learns_well_above_chance(fashion: DataSet) -> None:
    history = fit(make_mlp(), fashion, epochs=2, progress=False)
    assert len(history.train_loss) == len(history.test_accuracy) == 2
    assert history.train_loss[1] < history.train_loss[0] and history.test_loss[1] < history.test_loss[0]
    assert history.test_accuracy[-1] > 0.6
    assert 0 < history.seconds < 60


def test_same_seed_gives_identical_histories(fashion: DataSet) -> None:
    runs = [asdict(fit(make_mlp(), fashion, epochs=2, optimizer="sgd", lr=0.05, max_steps_per_epoch=5,
                       progress=False)) for _ in range(2)]
    for run in runs:
        run.pop("seconds"), run.pop("train_seconds")
    assert runs[0] == runs[1]


def test_a_model_factory_is_built_after_the_seed_like_a_model_seeded_by_hand(fashion: DataSet) -> None:
    """fit(Factory) seeds, builds, trains: the run of a model built right after seed_everything(seed), number for
    number; anything else is refused with what was given."""
    def small() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))

    options = {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "max_steps_per_epoch": 5, "progress": False, "seed": 3}
    seed_everything(3)
    by_hand, from_factory = asdict(fit(small(), fashion, **options)), asdict(fit(small, fashion, **options))
    for run in (by_hand, from_factory):
        run.pop("seconds"), run.pop("train_seconds")
    assert from_factory == by_hand
    with pytest.raises(TypeError, match="or a function that builds one, got 3"):
        fit(3, fashion)


@pytest.mark.parametrize(("given_steps", "expected_steps"), [(None, 30), (7, 7)])
def test_fast_mode_caps_epochs_and_steps(fashion: DataSet, monkeypatch: pytest.MonkeyPatch,
                                         given_steps: int | None, expected_steps: int) -> None:
    monkeypatch.setenv("RESIDUAL_COURSE_FAST", "1")
    model = make_mlp()
    steps = count_training_forwards(model)
    history = fit(model, fashion, epochs=5, batch_size=16, max_steps_per_epoch=given_steps)
    assert len(history.train_loss) == 2
    assert steps[0] == 2 * expected_steps


def test_wrong_output_shape_says_what_came_back(fashion: DataSet) -> None:
    with pytest.raises(ValueError, match=r"returned \(128, 7\).*\(128, 10\)"):
        fit(make_mlp(num_classes=7), fashion, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"returned \(1024, 1, 28, 28\)"):
        evaluate(nn.Identity(), fashion.test)


def test_unknown_optimizer_and_bad_counts_are_refused(fashion: DataSet) -> None:
    with pytest.raises(ValueError, match="'adam', 'sgd'"):
        fit(make_mlp(), fashion, optimizer="rmsprop")
    with pytest.raises(ValueError, match="max_steps_per_epoch must be"):
        fit(make_mlp(), fashion, max_steps_per_epoch=0)


def test_evaluate_is_exact_and_restores_the_mode(fashion: DataSet) -> None:
    uniform = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    nn.init.zeros_(uniform[1].weight)
    nn.init.zeros_(uniform[1].bias)
    for training in (True, False):
        uniform.train(training)
        loss, accuracy = evaluate(uniform, fashion.test, batch_size=300)
        assert uniform.training is training
        assert loss == pytest.approx(math.log(10)) and accuracy == pytest.approx(0.1)  # argmax of ties is class 0
    assert all(parameter.grad is None for parameter in uniform.parameters())


def test_history_defaults_are_empty() -> None:
    assert History() == History([], [], [], [], 0.0)


def make_convnet() -> nn.Module:
    """A small CNN, the same initial weights every call, so the convolution-only options have something to act on."""
    seed_everything(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


LESSON_05_RECIPE = {"lr": 0.05, "optimizer": "nesterov", "schedule": "one-cycle", "weight_decay": 5e-4}


def test_lesson_05_recipe_with_augmentation_is_repeatable(fashion: DataSet) -> None:
    runs = [asdict(fit(make_convnet(), fashion, epochs=2, max_steps_per_epoch=4, augment=shift_and_flip,
                       progress=False, **LESSON_05_RECIPE)) for _ in range(2)]
    for run in runs:
        run.pop("seconds"), run.pop("train_seconds")
    assert runs[0] == runs[1]


def test_one_cycle_warms_up_then_anneals_over_every_step(fashion: DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    rates = []

    class RecordingOneCycle(torch.optim.lr_scheduler.OneCycleLR):
        """The real schedule, remembering the learning rate after each step."""

        def step(self, *args: object) -> None:
            super().step(*args)
            rates.append(self.get_last_lr()[0])

    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", RecordingOneCycle)
    fit(make_mlp(), fashion, epochs=2, max_steps_per_epoch=5, progress=False, **LESSON_05_RECIPE)
    used = rates[:-1]  # rates[k] drives step k; the schedule is built with one step and stepped after each of 10
    assert len(used) == 2 * 5
    assert used[0] < 0.05 / 10 and max(used) == pytest.approx(0.05) and used[-1] < 0.05 / 1000


def test_augment_gets_every_training_batch_on_its_device(fashion: DataSet) -> None:
    seen = []

    def spy(images: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(images.shape), images.device))
        return shift_and_flip(images)

    fit(make_mlp(), fashion, epochs=2, batch_size=100, max_steps_per_epoch=3, augment=spy, progress=False)
    assert seen == [((100, 1, 28, 28), fashion.train.images.device)] * 6


@pytest.mark.parametrize("fast_kernels", [True, False])
def test_on_the_cpu_no_autocast_and_channels_last_unless_turned_off(fashion: DataSet, fast_kernels: bool) -> None:
    model = make_convnet()
    states = []
    model[0].register_forward_pre_hook(
        lambda module, args: states.append((torch.is_autocast_enabled("cpu"), args[0].dtype)))
    fit(model, fashion, epochs=1, max_steps_per_epoch=2, fast_kernels=fast_kernels, progress=False)
    assert set(states) == {(False, torch.float32)}
    weight = model[3].weight  # 8 input channels: one memory layout or the other (1 channel would be both)
    assert weight.is_contiguous(memory_format=torch.channels_last) is fast_kernels
    assert weight.is_contiguous() is not fast_kernels


@pytest.mark.parametrize(("compile_option", "compiled"), [(None, False), (False, False), (True, True)])
def test_compile_only_when_asked_on_the_cpu(fashion: DataSet, monkeypatch: pytest.MonkeyPatch,
                                            compile_option: bool | None, compiled: bool) -> None:
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model: calls.append(model) or model)
    model = make_mlp()
    fit(model, fashion, epochs=1, max_steps_per_epoch=1, compile=compile_option, progress=False)
    assert calls == ([model] if compiled else [])


def test_unknown_schedule_is_refused(fashion: DataSet) -> None:
    with pytest.raises(ValueError, match="'constant', 'one-cycle'"):
        fit(make_mlp(), fashion, schedule="cosine")
