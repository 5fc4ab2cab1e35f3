"""Run a learner's code against named properties and report each as PASS or FAIL with a hint."""

from __future__ import annotations

import contextlib
import functools
import inspect
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import torch

from residual_course.runtime import get_device

_LIBRARY_DIRS = (str(Path(torch.__file__).parent), str(Path(__file__).parents[1]))


class PropertyFailed(Exception):
    """A property of the learner's code does not hold; the message says which and how to fix it."""


class CheckFailed(AssertionError):
    """Raised at the end of a check when any property failed; shown to learners without a traceback."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the learner already read the FAIL lines."""
        return [f"CheckFailed: {self}"]


def claim(holds: bool, sentence: str) -> None:
    """A lesson's measured claim about the learner's code: when it does not hold, one sentence (no traceback)."""
    if not holds:
        raise CheckFailed(sentence)


class Property(NamedTuple):
    """One checkable property: a short key for `only=`, the sentence a learner reads, and its test."""

    key: str
    description: str
    test: Callable[..., None]  # test(device) once bound to a subject; test(subject, device, **options) as declared


Test = TypeVar("Test", bound=Callable[..., None])


class Check:
    """A learner-facing check: its properties, each declared once beside its test, and the options they share.

    A test is `test(subject, device, **options)` and receives the options its signature names, the check's
    defaults filled in, and any `derived` value, computed from the options (so one test can serve two checks
    whose options differ). Calling the check runs its properties: `check_plain_mlp(plain_mlp, only=["depth"])`.
    The title and each description may name the subject (`{name}`) and the options (`{budget:,}`).
    """

    def __init__(self, subject: str, doc: str, title: str = "{name}",
                 derived: dict[str, Callable[..., object]] | None = None, **defaults: object) -> None:
        self.subject, self.title, self.defaults, self.__doc__ = subject, title, defaults, doc
        self.derived = derived or {}
        self.properties: list[Property] = []

    def property(self, key: str, description: str) -> Callable[[Test], Test]:
        """Declare the decorated test as property `key`; the test is returned as it was, for other checks to use."""
        def declare(test: Test) -> Test:
            if key in self.keys():
                raise ValueError(f"{self.subject}: property {key!r} is declared twice")
            if not set(_option_names(test)) <= set(self.defaults) | set(self.derived):
                raise ValueError(f"{self.subject}: property {key!r} takes options the check does not have")
            self.properties.append(Property(key, description, test))
            return test
        return declare

    def keys(self) -> list[str]:
        """The keys a grade cell may name in `only=`, in the order the properties run."""
        return [prop.key for prop in self.properties]

    def __call__(self, subject: object, only: str | Sequence[str] | None = None, **options: object) -> None:
        """Run the properties (those named in `only`) on the learner's subject, with these options (by name)."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise TypeError(f"this check takes no option {', '.join(unknown)}; its options are "
                            f"{', '.join(self.defaults) or 'none'}")
        settings = self.defaults | options
        for name, derive in self.derived.items():
            settings[name] = derive(**{option: settings[option] for option in inspect.signature(derive).parameters})
        words = {"name": getattr(subject, "__name__", self.subject), **settings}
        bound = [Property(prop.key, prop.description.format(**words), functools.partial(prop.test, subject, **{
                     option: settings[option] for option in _option_names(prop.test)}))
                 for prop in self.properties]
        run_properties(self.title.format(**words), bound, only)


def _option_names(test: Callable[..., None]) -> list[str]:
    """The options a property's test takes: its parameters after the subject and the device."""
    return list(inspect.signature(test).parameters)[2:]


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Switch TF32 off for the duration of a check, so GPU results compare with CPU tolerances."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def describe_error(error: BaseException) -> str:
    """Turn an exception raised by learner code into one sentence that points at the learner's line."""
    if isinstance(error, NotImplementedError):
        return "not implemented yet: replace `raise NotImplementedError()` in the cell marked # YOUR CODE HERE"
    remote_line = getattr(error, "remote_line", "")  # raised by the learner's code in the grader's sandbox
    if remote_line:
        return f"your code raised {getattr(error, 'remote_type', type(error).__name__)}: {error} (at `{remote_line}`)"
    frames = traceback.extract_tb(error.__traceback__)
    where = ""
    for frame in reversed(frames):
        if not frame.filename.startswith(_LIBRARY_DIRS):
            where = f" (at `{(frame.line or '').strip()}`)"
            break
    return f"your code raised {type(error).__name__}: {error}{where}"


def run_properties(subject: str, properties: Sequence[Property], only: str | Sequence[str] | None = None) -> None:
    """Check each property on the course's device, print PASS/FAIL lines, raise CheckFailed if any failed.

    A FAIL line names the property; the line under it says what broke and how to fix it. An exercise that is
    not written yet is said so once, not once per property.
    """
    selected = _select(properties, only)
    device = get_device()
    where = "cuda" if device.type == "cuda" else "cpu (no GPU found)"
    print(f"Checking {subject} on {where}")
    failures = []
    with exact_float32():
        for prop in selected:
            try:
                prop.test(device)
            except PropertyFailed as failure:
                failures.append(prop.key)
                print(f"  FAIL  {prop.description}\n        {failure}")
            except NotImplementedError as error:
                print(f"  FAIL  {describe_error(error)}")
                raise CheckFailed(f"{subject} is not implemented yet") from None
            except Exception as error:  # learner code may raise anything; report it as a sentence
                failures.append(prop.key)
                print(f"  FAIL  {prop.description}\n        {describe_error(error)}")
            else:
                print(f"  PASS  {prop.description}")
    if failures:
        raise CheckFailed(f"{len(failures)} of {len(selected)} properties of {subject} failed: {', '.join(failures)}")
    print(f"{subject}: all {len(selected)} checked properties hold." if len(selected) > 1
          else f"{subject}: the checked property holds.")


def _select(properties: Sequence[Property], only: str | Sequence[str] | None) -> list[Property]:
    """Pick the properties named in `only` (all when None), refusing names that do not exist."""
    if only is None:
        return list(properties)
    wanted = [only] if isinstance(only, str) else list(only)
    known = [prop.key for prop in properties]
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"unknown property {unknown}; choose from {known}")
    return [prop for prop in properties if prop.key in wanted]
