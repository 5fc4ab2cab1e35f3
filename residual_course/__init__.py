"""Helper package of the course "From vanishing gradients to residual blocks"."""

from importlib.metadata import version

from residual_course.runtime import fast_mode, get_device, one_thread_on_cpu, seed_everything

__version__ = version("residual-course")  # the one version number lives in pyproject.toml
__all__ = ["fast_mode", "get_device", "one_thread_on_cpu", "seed_everything", "__version__"]
