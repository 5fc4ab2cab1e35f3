"""The helpers every lesson's checks share: each works on right code and turns each usual crash into its sentence."""

import functools
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from residual_course.checks.report import PropertyFailed
from residual_course.checks.subjects import (
    Clash,
    build,
    expect_batchnorm_modes,
    expect_device_and_gradient,
    expect_on_device,
    name_of,
    random_tensor,
    run,
)

CPU = torch.device("cpu")
ADDITION = Clash(("must match the size", "size of tensor"), "at the addition", "add a projection shortcut")


class Lambda(nn.Module):
    """A module whose forward is the given function: the smallest stand-in for learner code."""

    def __init__(self, function, with_parameter: bool = False):
        super().__init__()
        self.function = function
        self.weight = nn.Parameter(torch.ones(())) if with_parameter else None

    def forward(self, x):
        return self.function(x) if self.weight is None else self.function(x) * self.weight


def raising(message: str) -> Lambda:
    """A module whose forward raises RuntimeError(message), as PyTorch does on a clash."""

    def fail(x):
        raise RuntimeError(message)

    return Lambda(fail)


# ---------------------------------------------------------------- name_of, random_tensor


def test_name_of_gives_the_learners_name_or_the_default():
    assert name_of(nn.Linear, "block") == "Linear"
    assert name_of(functools.partial(nn.Linear, 3), "block") == "block"


def test_random_tensor_is_the_same_within_a_run_and_made_on_the_device():
    first = random_tensor(CPU, 2, 3, seed=5)
    assert first.shape == (2, 3) and first.device == CPU
    assert torch.equal(first, random_tensor(CPU, 2, 3, seed=5))
    assert torch.equal(random_tensor(CPU, 2, 3), random_tensor(CPU, 2, 3, seed=0))
    assert not torch.equal(first, random_tensor(CPU, 2, 3, seed=6))
    assert not torch.equal(first, torch.randn(2, 3, generator=torch.Generator().manual_seed(5))), "salted, not seed 5"


PROBES = ("import torch\nfrom residual_course.checks.subjects import probe_size, random_tensor\n"
          "print(random_tensor(torch.device('cpu'), 3, seed=5).tolist(), [probe_size(3, 9, k) for k in range(12)])")


def test_probes_come_from_the_runs_salt_so_every_run_draws_new_ones():
    """The grader's secret salt decides every probe input and size: one salt, the same probes; another, others;
    none given (a learner's own run), a fresh one per process."""
    def probes(salt: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "RESIDUAL_COURSE_CHECK_SALT"}
        env.update({"RESIDUAL_COURSE_CHECK_SALT": salt} if salt else {})
        return subprocess.run([sys.executable, "-c", PROBES], env=env, capture_output=True, text=True,
                              check=True).stdout

    assert probes("1234") == probes("1234") != probes("4321")
    assert probes(None) != probes(None)


# ---------------------------------------------------------------- build


def test_build_passes_the_arguments_and_moves_the_module_to_the_device():
    layer = build(nn.Linear, 3, 4, device=torch.device("meta"), call="Linear(3, 4)", bias=False)
    assert isinstance(layer, nn.Linear)
    assert (layer.in_features, layer.out_features, layer.bias) == (3, 4, None)
    assert layer.weight.device.type == "meta"


def test_build_refuses_what_is_not_a_module():
    with pytest.raises(PropertyFailed, match=r"^Block\(3\) returned a int, not an nn.Module$"):
        build(lambda width: width, 3, device=CPU, call="Block(3)")


# ---------------------------------------------------------------- run


def test_run_returns_the_output():
    inputs = random_tensor(CPU, 2, 3)
    assert torch.equal(run(Lambda(torch.relu), inputs, "Block(3)"), torch.relu(inputs))


def test_run_names_a_known_clash_where_it_happened_with_the_fix():
    with pytest.raises(PropertyFailed) as failure:
        run(raising("The size of tensor a (8) must match the size of tensor b (16)"), random_tensor(CPU, 2, 8),
            "Block(8, 16)", [Clash(("shapes cannot be multiplied",), "at a Linear layer", "unused"), ADDITION])
    assert str(failure.value) == ("Block(8, 16) fails at the addition on input of shape (2, 8) (The size of tensor a "
                                  "(8) must match the size of tensor b (16)): add a projection shortcut")


def test_run_recognises_a_clash_by_any_of_its_markers():
    with pytest.raises(PropertyFailed, match="fails at the addition"):
        run(raising("size of tensor a differs"), random_tensor(CPU, 2, 8), "Block(8)", [ADDITION])


def test_run_says_when_the_module_mixes_devices():
    message = "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"
    with pytest.raises(PropertyFailed) as failure:
        run(raising(message), random_tensor(CPU, 2, 8), "Block(8)", [ADDITION])
    assert str(failure.value).startswith(f"Block(8) mixes devices ({message}): create every new tensor on x.device")
    assert ".to(device) moves it" in str(failure.value)


def test_run_lets_other_errors_through_unchanged():
    with pytest.raises(RuntimeError, match="^something else$"):
        run(raising("something else"), random_tensor(CPU, 2, 8), "Block(8)", [ADDITION])
    with pytest.raises(KeyError):
        run(Lambda(lambda x: {}["conv3"]), random_tensor(CPU, 2, 8), "Block(8)")


def test_run_insists_on_a_tensor_and_says_what_to_return():
    with pytest.raises(PropertyFailed, match=r"^Block\(8\) returned a tuple, not a tensor: return one tensor$"):
        run(Lambda(lambda x: (x, x)), random_tensor(CPU, 2, 8), "Block(8)")
    with pytest.raises(PropertyFailed, match="returned a list, not a tensor: return the logits tensor$"):
        run(Lambda(lambda x: [x]), random_tensor(CPU, 2, 8), "MLP()", returns="the logits tensor")


# ---------------------------------------------------------------- expect_on_device, expect_device_and_gradient


def test_expect_on_device_returns_the_output_of_a_module_on_the_device():
    layer = nn.Linear(3, 2)
    inputs = random_tensor(CPU, 4, 3)
    assert torch.equal(expect_on_device(layer, inputs, CPU, "Linear(3, 2)"), layer(inputs))


def test_expect_on_device_finds_parameters_left_behind():
    with pytest.raises(PropertyFailed, match=r"^some parameters of Linear\(3, 2\) stayed on meta after \.to\(cpu\)"):
        expect_on_device(nn.Linear(3, 2, device="meta"), random_tensor(CPU, 4, 3), CPU, "Linear(3, 2)")


def test_expect_on_device_finds_an_output_elsewhere():
    with pytest.raises(PropertyFailed, match=r"^Block\(3\) returned its output on meta, expected cpu"):
        expect_on_device(Lambda(lambda x: x.to("meta")), random_tensor(CPU, 4, 3), CPU, "Block(3)")


def test_expect_on_device_runs_the_lessons_forward():
    def forward(module, inputs, call):
        raise PropertyFailed(f"{call} went through the lesson's forward")

    with pytest.raises(PropertyFailed, match="went through the lesson's forward"):
        expect_on_device(nn.Linear(3, 2), random_tensor(CPU, 4, 3), CPU, "Linear(3, 2)", forward)


def test_expect_device_and_gradient_accepts_a_differentiable_module_and_leaves_the_inputs_alone():
    inputs = random_tensor(CPU, 4, 3)
    expect_device_and_gradient(nn.Linear(3, 2), inputs, CPU, "Linear(3, 2)")
    assert not inputs.requires_grad


@pytest.mark.parametrize("function", [
    lambda x: x.detach(),  # no gradient reaches x
    lambda x: 0 * x,  # a zero gradient
    lambda x: x * float("inf"),  # a non-finite gradient
], ids=["detached", "zero", "infinite"])
def test_expect_device_and_gradient_wants_a_finite_non_zero_gradient_at_the_input(function):
    with pytest.raises(PropertyFailed, match=r"^no finite, non-zero gradient reaches the input of Block\(3\): avoid"):
        expect_device_and_gradient(Lambda(function, with_parameter=True), random_tensor(CPU, 4, 3), CPU, "Block(3)")


def test_expect_device_and_gradient_checks_the_device_first():
    with pytest.raises(PropertyFailed, match="stayed on meta"):
        expect_device_and_gradient(nn.Linear(3, 2, device="meta"), random_tensor(CPU, 4, 3), CPU, "Linear(3, 2)")


# ---------------------------------------------------------------- expect_batchnorm_modes


def test_expect_batchnorm_modes_accepts_batchnorm():
    expect_batchnorm_modes(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), random_tensor(CPU, 8, 3), "Block(3)",
                           "nn.BatchNorm1d(width)", "each Linear layer")


def test_expect_batchnorm_modes_wants_batch_statistics_in_train_mode():
    with pytest.raises(PropertyFailed) as failure:
        expect_batchnorm_modes(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), random_tensor(CPU, 8, 3), "Block(3)",
                               "nn.BatchNorm1d(width)", "each Linear layer")
    assert str(failure.value) == ("in train() mode one example's output of Block(3) ignores the rest of the batch: "
                                  "put an nn.BatchNorm1d(width) after each Linear layer")


def test_expect_batchnorm_modes_wants_running_statistics_in_eval_mode():
    always_batch_statistics = nn.BatchNorm2d(3, track_running_stats=False)
    with pytest.raises(PropertyFailed) as failure:
        expect_batchnorm_modes(always_batch_statistics, random_tensor(CPU, 8, 3, 4, 4), "Block(3)", "nn.BatchNorm2d",
                               "each convolution")
    assert str(failure.value) == ("in eval() mode one example's output of Block(3) still depends on the rest of the "
                                  "batch: use nn.BatchNorm2d, which switches to its running statistics in eval mode")
