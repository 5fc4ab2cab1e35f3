"""One small training loop shared by every lesson, so notebooks compare architectures, not loops."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from residual_course.data import DataSet, Split
from residual_course.runtime import fast_mode, seed_everything

OPTIMIZERS = ("adam", "sgd")
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
    model: nn.Module,
    data: DataSet,
    epochs: int = 5,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 128,
    weight_decay: float = 0.0,
    seed: int = 0,
    max_steps_per_epoch: int | None = None,
    progress: bool = True,
) -> History:
    """Train a classifier with cross-entropy on the data's device, repeatably, shrinking itself in fast mode."""
    _check_is_module(model)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}: choose one of {', '.join(map(repr, OPTIMIZERS))}.")
    _check_positive(epochs=epochs, batch_size=batch_size)
    if max_steps_per_epoch is not None:
        _check_positive(max_steps_per_epoch=max_steps_per_epoch)
    if fast_mode():
        epochs = min(epochs, FAST_MAX_EPOCHS)
        max_steps_per_epoch = min(max_steps_per_epoch or math.inf, FAST_MAX_STEPS_PER_EPOCH)
    seed_everything(seed)
    device = data.train.images.device
    model.to(device)
    params = model.parameters()
    if optimizer == "adam":
        step_rule = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        step_rule = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    shuffler = torch.Generator().manual_seed(seed)  # on the CPU: the same batches on every device
    num_classes = len(data.class_names)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="epochs", unit="epoch", disable=not progress)
    for _ in bar:
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        order = torch.randperm(len(data.train), generator=shuffler).to(device)
        for batch in order.split(batch_size)[:max_steps_per_epoch]:
            images, labels = data.train.images[batch], data.train.labels[batch]
            logits = _logits(model, images, num_classes)
            loss = F.cross_entropy(logits, labels)
            step_rule.zero_grad(set_to_none=True)
            loss.backward()
            step_rule.step()
            loss_sum += loss.detach() * len(batch)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(batch)
        history.train_loss.append(loss_sum.item() / seen)
        history.train_accuracy.append(correct.item() / seen)
        test_loss, test_accuracy = evaluate(model, data.test)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_accuracy)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}",
                        test_acc=f"{test_accuracy:.3f}")
    history.seconds = time.perf_counter() - start
    return history


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
        raise TypeError(f"Expected a model (an nn.Module instance), got {model!r}; a class needs calling: MyNet().")


def _check_positive(**counts: int) -> None:
    """Reject zero or negative counts with their name, instead of an empty loop and a division by zero."""
    for name, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {count!r}.")
