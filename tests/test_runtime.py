"""Device choice, fast mode and seeding: the switches every notebook relies on."""

import pytest
import torch

from residual_course import runtime


def test_fast_mode_follows_autograding_and_ci(monkeypatch):
    for name in runtime.FAST_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert not runtime.fast_mode()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert runtime.fast_mode()
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.setenv("CI", "false")
    assert not runtime.fast_mode()
    monkeypatch.setenv("CI", "true")
    assert runtime.fast_mode()


def test_device_is_cuda_exactly_when_available(monkeypatch):
    monkeypatch.delenv(runtime.REQUIRE_GPU_ENV_VAR, raising=False)
    assert runtime.get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_required_gpu_refuses_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(runtime.REQUIRE_GPU_ENV_VAR, "1")
    with pytest.raises(runtime.GPURequiredError, match="refusing to run on the CPU"):
        runtime.get_device()


def test_seed_makes_draws_repeatable():
    runtime.seed_everything(3)
    first = torch.randn(4)
    runtime.seed_everything(3)
    assert torch.equal(first, torch.randn(4))


def test_an_unknown_choice_is_refused_with_the_valid_ones():
    runtime.check_choice("norm", "batch", ("none", "batch"))
    with pytest.raises(ValueError, match="Unknown norm 'group': choose one of 'none', 'batch'"):
        runtime.check_choice("norm", "group", ("none", "batch"))


def test_one_thread_on_the_cpu_and_the_gpu_left_alone():
    threads = torch.get_num_threads()
    try:
        runtime.one_thread_on_cpu(torch.device("cuda"))
        assert torch.get_num_threads() == threads
        runtime.one_thread_on_cpu(torch.device("cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
