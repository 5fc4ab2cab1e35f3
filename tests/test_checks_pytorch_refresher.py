"""Lesson 00's checks: correct MLPs, training steps and losses in any style pass; each mistake fails its hint."""

import pytest
import torch
from fixtures import pytorch_refresher as fx

from residual_course.checks import CheckFailed
from residual_course.checks.pytorch_refresher import check_cross_entropy, check_mlp, check_train_epoch, check_train_step
from residual_course.formulas import mlp_params


def failing(check, subject, capsys) -> tuple[set[str], str]:
    """Run a check expected to fail; return the keys that failed and what the learner read."""
    with pytest.raises(CheckFailed) as failure:
        check(subject)
    keys = set(str(failure.value).split(": ", 1)[1].split(", "))
    return keys, capsys.readouterr().out


def test_parameter_formula():
    assert mlp_params() == 235_146
    assert mlp_params(784, (), 10) == 7_850
    assert mlp_params(12, (7,), 3) == 13 * 7 + 8 * 3


@pytest.mark.parametrize("model", [fx.SequentialMLP, fx.ModuleListMLP])
def test_correct_mlps_in_other_styles_pass(model, capsys):
    check_mlp(model)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("model", "broken", "hint"), [
    (fx.SoftmaxMLP, {"logits"}, "ends in softmax"),
    (fx.LogSoftmaxMLP, {"logits"}, "ends in log_softmax"),
    (fx.ReluHeadMLP, {"logits"}, "free to be negative"),
    (fx.LinearOnlyMLP, {"relu"}, "collapse into a single Linear"),
    (fx.SigmoidMLP, {"relu"}, "use ReLU (not sigmoid or tanh)"),
    (fx.PythonListMLP, {"parameters", "relu"}, "nn.Sequential or nn.ModuleList"),
    (fx.NoFlattenMLP, {"shape", "logits", "gradient", "device"}, "flatten each image"),
])
def test_each_mlp_mistake_fails_its_property_with_a_hint(model, broken, hint, capsys):
    keys, printed = failing(check_mlp, model, capsys)
    assert keys == broken
    assert hint in printed


@pytest.mark.parametrize("step", [fx.train_step_reference, fx.train_step_zero_grad_last])
def test_correct_training_steps_pass(step, capsys):
    check_train_step(step)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("step", "broken", "hint"), [
    (fx.train_step_no_zero_grad, {"zero grad"}, "call optimizer.zero_grad()"),
    (fx.train_step_returns_tensor, {"float"}, "loss.item()"),
    (fx.train_step_loss_after_step, {"loss value"}, "the loss *after* the step"),
    (fx.train_step_no_step, {"one step", "learns", "zero grad"}, "optimizer.step()"),
    (fx.train_step_softmax_then_ce, {"loss value", "one step", "learns", "zero grad"}, "no softmax"),
])
def test_each_training_step_mistake_fails_its_property_with_a_hint(step, broken, hint, capsys):
    keys, printed = failing(check_train_step, step, capsys)
    assert keys == broken
    assert hint in printed


@pytest.mark.parametrize("loss", [fx.cross_entropy_logsumexp, fx.cross_entropy_shifted])
def test_correct_cross_entropies_pass(loss, capsys):
    check_cross_entropy(loss)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("loss", "broken", "hint"), [
    (fx.cross_entropy_naive, {"stable"}, "log(0) = -inf"),
    (fx.cross_entropy_sum, {"value", "gradient", "stable"}, "take the mean"),
    (fx.cross_entropy_of_softmax, {"value", "gradient", "stable"}, "applies softmax before the cross-entropy"),
])
def test_each_cross_entropy_mistake_fails_its_property_with_a_hint(loss, broken, hint, capsys):
    keys, printed = failing(check_cross_entropy, loss, capsys)
    assert keys == broken
    assert hint in printed


def test_unfinished_exercises_are_reported_as_not_implemented(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for check in (check_mlp, check_train_step, check_cross_entropy):
        with pytest.raises(CheckFailed, match="is not implemented yet"):
            check(stub)
        assert capsys.readouterr().out.count("not implemented yet") == 1  # said once, not once per property


# ---------------------------------------------------------------- train_epoch, in several styles and mistakes

def epoch_by_randperm(model, optimizer, images, labels, batch_size=128, step=None):
    order = torch.randperm(len(images), device=images.device)
    total = 0.0
    for batch in order.split(batch_size):
        total += step(model, optimizer, images[batch], labels[batch]) * len(batch)
    return total / len(images)


def epoch_by_dataloader(model, optimizer, images, labels, batch_size=128, step=None):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=batch_size,
                                         shuffle=True)
    losses = [(step(model, optimizer, x, y), len(x)) for x, y in loader]
    return sum(loss * n for loss, n in losses) / len(images)


def epoch_unweighted(model, optimizer, images, labels, batch_size=128, step=None):
    losses = [step(model, optimizer, images[b], labels[b]) for b in torch.randperm(len(images)).split(batch_size)]
    return sum(losses) / len(losses)


def epoch_in_stored_order(model, optimizer, images, labels, batch_size=128, step=None):
    total = 0.0
    for start in range(0, len(images), batch_size):
        batch = slice(start, start + batch_size)
        total += step(model, optimizer, images[batch], labels[batch]) * len(images[batch])
    return total / len(images)


def epoch_images_shuffled_alone(model, optimizer, images, labels, batch_size=128, step=None):
    total = 0.0
    for number, batch in enumerate(torch.randperm(len(images)).split(batch_size)):
        total += step(model, optimizer, images[batch], labels[number * batch_size:][:len(batch)]) * len(batch)
    return total / len(images)


def epoch_drops_the_last_batch(model, optimizer, images, labels, batch_size=128, step=None):
    batches = [b for b in torch.randperm(len(images)).split(batch_size) if len(b) == batch_size]
    return sum(step(model, optimizer, images[b], labels[b]) for b in batches) / len(batches)


@pytest.mark.parametrize("epoch", [epoch_by_randperm, epoch_by_dataloader])
def test_correct_epochs_in_other_styles_pass(epoch, capsys):
    check_train_epoch(epoch)
    assert "FAIL" not in capsys.readouterr().out


@pytest.mark.parametrize(("epoch", "broken", "hint"), [
    (epoch_unweighted, {"mean"}, "weight each batch's loss by its size"),
    (epoch_in_stored_order, {"shuffled"}, "the order they are stored"),
    (epoch_images_shuffled_alone, {"every example once"}, "the same indices"),
    (epoch_drops_the_last_batch, {"every example once", "batches", "mean"}, "keep the last, smaller batch"),
])
def test_each_epoch_mistake_fails_its_property_with_a_hint(epoch, broken, hint, capsys):
    keys, printed = failing(check_train_epoch, epoch, capsys)
    assert keys == broken and hint in printed
