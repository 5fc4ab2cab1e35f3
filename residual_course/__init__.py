"""Helper package of the course "From vanishing gradients to residual blocks"."""

from residual_course.runtime import fast_mode, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["fast_mode", "get_device", "seed_everything", "__version__"]
