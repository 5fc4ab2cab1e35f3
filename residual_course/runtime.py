"""Where the course runs: device choice, fast mode and seeding, decided once for every notebook."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

FAST_ENV_VARS = ("NBGRADER_EXECUTION", "CI", "RESIDUAL_COURSE_FAST")
REQUIRE_GPU_ENV_VAR = "RESIDUAL_COURSE_REQUIRE_GPU"


class GPURequiredError(RuntimeError):
    """Raised when the instructor asked for a GPU and none is present."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse an unknown option by name, listing the ones there are: early, not deep inside PyTorch."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: choose one of {', '.join(map(repr, choices))}.")


def fast_mode() -> bool:
    """True under autograding, in CI or when asked: training cells then shrink to seconds."""
    return any(_env_flag(name) for name in FAST_ENV_VARS)


def get_device() -> torch.device:
    """CUDA when present, else the CPU; refuses the CPU when a GPU is required for grading."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _env_flag(REQUIRE_GPU_ENV_VAR):
        raise GPURequiredError(
            f"{REQUIRE_GPU_ENV_VAR} is set but torch sees no CUDA GPU: refusing to run on the CPU. "
            "Check `nvidia-smi` and that the CUDA build of torch is installed, or unset the variable."
        )
    return torch.device("cpu")


def one_thread_on_cpu(device: torch.device) -> None:
    """On the CPU, one thread: small networks gain little from a second, and lose much (10x and more) when it waits
    for a core that something else is using."""
    if device.type == "cpu":
        torch.set_num_threads(1)


def seed_everything(seed: int = 0) -> None:
    """Make a run repeatable: Python, NumPy and torch (CPU and CUDA) draw the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
