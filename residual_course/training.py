"""One small training loop shared by every lesson, so notebooks compare architectures, not loops."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from residual_course.data import DataSet, Split
from residual_course.runtime import check_choice, fast_mode, seed_everything

OPTIMIZERS = ("adam", "sgd", "nesterov")
SCHEDULES = ("constant", "one-cycle")
# Device types where torch.compile pays for a lesson-sized run (compile=None turns it on there), as measured by
# benchmarks/bench.py: on the CPU it ran no faster than channels_last alone and adds a compile of up to a minute;
# on CUDA, benchmarks/device_run.sh measures it (see benchmarks/results.md) before it goes in here.
COMPILE_PAYS_ON: frozenset[str] = frozenset()
FAST_MAX_EPOCHS = 2
FAST_MAX_STEPS_PER_EPOCH = 30


@dataclass
class History:
    """Per-epoch curves of one run, as plain lists so notebooks can plot them directly."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    train_seconds: list[float] = field(default_factory=list)  # training time to the end of each epoch, no evaluation


def evaluate(model: nn.Module, split: Split, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a whole split, leaving weights, gradients and train/eval mode as found."""
    _check_is_module(model)
    _check_positive(batch_size=batch_size)
    if len(split) == 0:
        raise ValueError("Cannot evaluate on an empty split: it has no examples.")
    was_training = model.training
    model.eval()
    labels_needed = int(split.labels.max()) + 1  # a wider head is fine: the split may lack the last classes
    loss_sum = torch.zeros((), device=split.labels.device)
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    try:
        with torch.no_grad():
            for images, labels in zip(split.images.split(batch_size), split.labels.split(batch_size), strict=True):
                logits = _logits(model, images, labels_needed, at_least=True)
                loss_sum += F.cross_entropy(logits, labels, reduction="sum")
                correct += (logits.argmax(dim=1) == labels).sum()
    finally:
        model.train(was_training)
    return loss_sum.item() / len(split), correct.item() / len(split)


def fit(
    model: nn.Module | Callable[[], nn.Module],
    data: DataSet,
    epochs: int = 5,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 128,
    weight_decay: float = 0.0,
    seed: int = 0,
    max_steps_per_epoch: int | None = None,
    progress: bool = True,
    schedule: str = "constant",
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fast_kernels: bool = True,
    compile: bool | None = None,
) -> History:
    """Train a classifier with cross-entropy on the data's device, repeatably, shrinking itself in fast mode.

    Batches are random index slices of the in-memory data; losses stay on the device and are read once per epoch.
    `schedule="one-cycle"` anneals `lr` as `OneCycleLR(max_lr=lr)`; `augment` maps a batch of images to new ones on
    their device. `fast_kernels` keeps images and weights channels_last (faster convolutions on CPUs and GPUs) and
    on CUDA trains in bfloat16 autocast. `compile` runs the model through torch.compile; None turns it on where it
    pays (COMPILE_PAYS_ON). `model` may be a function that builds one (a class, a lambda): it is built after seeding
    with `seed`, so the same call starts from the same weights, with no seeding by hand.
    """
    if callable(model) and not isinstance(model, nn.Module):
        seed_everything(seed)
        model = model()
    _check_is_module(model)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    epochs, steps_per_epoch = _budget(epochs, batch_size, max_steps_per_epoch, len(data.train))
    seed_everything(seed)
    device = data.train.images.device
    bf16 = fast_kernels and device.type == "cuda"
    memory_format = torch.channels_last if fast_kernels and data.train.images.ndim == 4 else torch.preserve_format
    model.to(device, memory_format=memory_format)
    step_rule = _optimizer(optimizer, model, lr, weight_decay)
    scheduler = None
    if schedule == "one-cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(step_rule, max_lr=lr, total_steps=epochs * steps_per_epoch)
    use_compile = device.type in COMPILE_PAYS_ON if compile is None else compile
    forward = torch.compile(model) if use_compile else model
    shuffler = torch.Generator().manual_seed(seed)  # on the CPU: the same batches on every device
    step = _Step(forward, step_rule, scheduler, augment, memory_format, bf16, len(data.class_names))
    history = History()
    start = time.perf_counter()
    training_seconds = 0.0
    bar = tqdm(range(epochs), desc="epochs", unit="epoch", disable=not progress)
    for _ in bar:
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.train), generator=shuffler).to(device)
        train_loss, train_accuracy = _train_epoch(step, data.train, order.split(batch_size)[:steps_per_epoch])
        history.train_loss.append(train_loss)
        history.train_accuracy.append(train_accuracy)
        training_seconds += time.perf_counter() - epoch_start
        history.train_seconds.append(training_seconds)
        test_loss, test_accuracy = evaluate(model, data.test)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_accuracy)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}",
                        test_acc=f"{test_accuracy:.3f}")
    history.seconds = time.perf_counter() - start
    return history


def _budget(epochs: int, batch_size: int, max_steps_per_epoch: int | None, examples: int) -> tuple[int, int]:
    """The epochs and the steps per epoch a run makes: as asked, validated, and shrunk in fast mode."""
    _check_positive(epochs=epochs, batch_size=batch_size)
    if max_steps_per_epoch is not None:
        _check_positive(max_steps_per_epoch=max_steps_per_epoch)
    if fast_mode():
        epochs = min(epochs, FAST_MAX_EPOCHS)
        max_steps_per_epoch = min(max_steps_per_epoch or math.inf, FAST_MAX_STEPS_PER_EPOCH)
    return epochs, min(math.ceil(examples / batch_size), max_steps_per_epoch or math.inf)


class _Step(NamedTuple):
    """What one optimisation step of a run needs, fixed for the whole run."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    memory_format: torch.memory_format
    bf16: bool
    num_classes: int


def _train_epoch(step: _Step, split: Split, batches: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """One pass over the batches (index tensors): a step each; the mean loss and accuracy, read from the device once."""
    device = split.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for batch in batches:
        images, labels = split.images[batch], split.labels[batch]
        if step.augment is not None:
            images = step.augment(images)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.bf16):
            logits = _logits(step.forward, images.to(memory_format=step.memory_format), step.num_classes)
            loss = F.cross_entropy(logits, labels)
        step.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step.optimizer.step()
        if step.scheduler is not None:
            step.scheduler.step()
        loss_sum += loss.detach() * len(batch)
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(batch)
    return loss_sum.item() / seen, correct.item() / seen  # the epoch's one wait for the device


def _optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum 0.9 (Nesterov's for "nesterov"), over the model's parameters."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=name == "nesterov",
                           weight_decay=weight_decay)


def _logits(model: nn.Module, images: torch.Tensor, num_classes: int, at_least: bool = False) -> torch.Tensor:
    """Run the model and stop at a wrong head, where cross-entropy fails cryptically (on a GPU, a device assert)."""
    logits = model(images)
    if isinstance(logits, torch.Tensor) and logits.ndim == 2 and len(logits) == len(images):
        width = logits.shape[1]
        if width == num_classes or (at_least and width > num_classes):
            return logits
    got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else f"a {type(logits).__name__}"
    raise ValueError(f"The model returned {got} for a batch of {len(images)} images, but logits of shape "
                     f"(batch, num_classes) = ({len(images)}, {'at least ' if at_least else ''}{num_classes}) "
                     "were expected: check its last layer.")


def _check_is_module(model: object) -> None:
    """Catch a class or function passed as the model, which would otherwise fail with an AttributeError."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected a model (an nn.Module) or a function that builds one, got {model!r}.")


def _check_positive(**counts: int) -> None:
    """Reject zero or negative counts with their name, instead of an empty loop and a division by zero."""
    for name, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {count!r}.")
