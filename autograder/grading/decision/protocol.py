"""What the trusted side and the student's side say to each other, declared once: each message and its fields.

Both sides build their messages from these classes and read the other's through `parse`, which refuses a message
whose fields are missing or of the wrong kind (the student's side is untrusted: what it sends is checked here
before anything reads it). Values inside a message (arguments, results, module state) are encoded by bridge.Codec
and wire.py; references to objects that stay on their side are the `*Ref` records below.

Requests of the trusted side: RunCells first (the student's answer cells, then nothing of the student's runs
unasked), then GetValue, GetAttribute, Call, Export (a module's graph for inputs like these) and Verify (run the
module eagerly on the trusted side's inputs and weights, so the graph can be shown to be the module), and Done.
While answering, the student's side may ask back: CallTrusted (run a lent trusted object) and TrustedGraph (a lent
module's graph, to trace it inside a student's module).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from autograder.grading.decision.wire import WireError

OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")  # optimisers that may be lent to the student's side


class Side(StrEnum):
    """Whose object a reference names: it stays there, the other side holds a proxy or look-alike."""

    STUDENT = "student"
    TRUSTED = "trusted"


class Kind(StrEnum):
    """What a referenced object is."""

    MODULE = "module"
    CALLABLE = "callable"
    OPTIMIZER = "optimizer"
    OBJECT = "object"


# ---------------------------------------------------------------- checking fields


def _check(record: Any) -> Any:
    """Refuse a record whose fields are not of their declared kinds (bool is not an int; object: anything)."""
    hints = typing.get_type_hints(type(record))
    for item in dataclasses.fields(record):
        value, expected = getattr(record, item.name), hints[item.name]
        origin = typing.get_origin(expected) or expected
        if origin in (typing.Union, types.UnionType):
            kinds = tuple(typing.get_origin(a) or a for a in typing.get_args(expected))
        else:
            kinds = (origin,)
        if object in kinds or Any in kinds:
            continue
        ok = isinstance(value, tuple(k for k in kinds if k is not type(None))) or (value is None and
                                                                                 type(None) in kinds)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        if not ok:
            raise WireError(f"{type(record).__name__}.{item.name} is a {type(value).__name__}, not {expected}")
    return record


def _from_fields(cls: type, data: dict) -> Any:
    """A record from a message's dict: every declared field, nothing else."""
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    missing = required - set(data)
    if missing:
        raise WireError(f"a {cls.__name__} without {', '.join(sorted(missing))}")
    return _check(cls(**{k: v for k, v in data.items() if k in names}))


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A request: its `op` names it on the wire."""

    op: ClassVar[str]

    def to_wire(self) -> dict:
        return {"kind": "request", "op": self.op, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}


@dataclass(frozen=True)
class RunCells(Request):
    """Run these cells in order: the released notebook's ordinary cells and the student's answer cells."""

    op: ClassVar[str] = "run"
    cells: list


@dataclass(frozen=True)
class GetValue(Request):
    """What an answer cell bound to one of the names its solution defines."""

    op: ClassVar[str] = "value"
    cell: str
    name: str


@dataclass(frozen=True)
class GetAttribute(Request):
    """An attribute of a student object."""

    op: ClassVar[str] = "getattr"
    target: int
    name: str


@dataclass(frozen=True)
class Call(Request):
    """Call a student object with encoded arguments; `rng` is the trusted side's CPU generator as it stands."""

    op: ClassVar[str] = "call"
    target: int
    args: list  # encoded by bridge.Codec
    kwargs: dict  # encoded by bridge.Codec: {"dict": {name: value}}
    rng: str = ""


@dataclass(frozen=True)
class Export(Request):
    """The graph of a student module (or function) for inputs of these signatures, in this mode."""

    op: ClassVar[str] = "export"
    target: int
    inputs: list  # [[shape, dtype, device type, layout], ...]
    training: bool
    function: bool = False


@dataclass(frozen=True)
class Verify(Request):
    """Run a student module eagerly on these inputs with these weights (by the graph's names), in this mode, from
    this random seed; put its own weights back afterwards."""

    op: ClassVar[str] = "verify"
    target: int
    inputs: list  # encoded tensors
    state: dict  # name -> encoded tensor, for every parameter and buffer the graph reads
    training: bool
    seed: int
    function: bool = False


@dataclass(frozen=True)
class Done(Request):
    """Nothing more will be asked: the student's side exits."""

    op: ClassVar[str] = "done"


@dataclass(frozen=True)
class CallTrusted(Request):
    """(Asked by the student's side.) Run a lent trusted object with encoded arguments."""

    op: ClassVar[str] = "call-trusted"
    target: int
    args: list
    kwargs: dict


@dataclass(frozen=True)
class TrustedGraph(Request):
    """(Asked by the student's side.) The graph of a lent trusted module or function for inputs like these."""

    op: ClassVar[str] = "trusted-graph"
    target: int
    inputs: list  # [[shape, dtype, device type], ...]
    training: bool


REQUESTS: dict[str, type[Request]] = {cls.op: cls for cls in (RunCells, GetValue, GetAttribute, Call, Export, Verify,
                                                               Done, CallTrusted, TrustedGraph)}


def parse_request(data: dict) -> Request:
    """The request a message carries (WireError for an unknown op or a malformed one)."""
    cls = REQUESTS.get(data.get("op"))
    if cls is None:
        raise WireError(f"unknown request {str(data.get('op'))[:50]!r}")
    return _from_fields(cls, data)


# ---------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """A reply: its `reply` names it on the wire."""

    reply: ClassVar[str]

    def to_wire(self) -> dict:
        return {"kind": "reply", "reply": self.reply,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}


@dataclass(frozen=True)
class Ran(Reply):
    """What each answer cell bound (grade id -> names), the error each one raised, and what of this side's own code
    the student's code changed."""

    reply: ClassVar[str] = "ran"
    bound: dict
    errors: dict
    changed: list = field(default_factory=list)  # the grader's own code the student's code rewrote while it ran


@dataclass(frozen=True)
class Value(Reply):
    """A value, and what the call did to the trusted look-alikes it was given (their tensors, modes, optimisers)."""

    reply: ClassVar[str] = "value"
    value: object
    sync: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Graph(Reply):
    """A module's computation as data (graphs.export_graph)."""

    reply: ClassVar[str] = "graph"
    graph: dict


@dataclass(frozen=True)
class ExportFailed(Reply):
    """Why torch.export could not trace the module."""

    reply: ClassVar[str] = "export-failed"
    reason: str


@dataclass(frozen=True)
class Outputs(Reply):
    """The eager module's outputs, and its buffers after the call (by the graph's names)."""

    reply: ClassVar[str] = "outputs"
    outputs: list
    buffers: dict


@dataclass(frozen=True)
class Error(Reply):
    """The other side's code raised: the error's type name, message and the line it came from."""

    reply: ClassVar[str] = "error"
    type: str
    message: str
    line: str = ""


REPLIES: dict[str, type[Reply]] = {cls.reply: cls for cls in (Ran, Value, Graph, ExportFailed, Outputs, Error)}


def parse_reply(data: dict, *expected: type[Reply]) -> Reply:
    """The reply a message carries, which must be an Error or one of the expected kinds."""
    cls = REPLIES.get(data.get("reply"))
    if cls is None or cls is not Error and cls not in expected:
        raise WireError(f"unexpected reply {str(data.get('reply'))[:50]!r}")
    return _from_fields(cls, data)


# ---------------------------------------------------------------- references


@dataclass(frozen=True)
class StateEntry:
    """One tensor of a student module, in state_dict order: a copy, or a lent trusted tensor or module by id."""

    name: str
    kind: str  # "parameter", "buffer" or "module" (a lent trusted module placed whole)
    requires_grad: bool = False
    value: object = None  # encoded tensor (kind parameter or buffer, not lent)
    trusted: int | None = None  # the lent trusted tensor's or module's id


@dataclass(frozen=True)
class StudentRef:
    """A student object by reference; a module carries its state, its mode and where its classes come from."""

    ref: int
    kind: str
    name: str
    side: str = Side.STUDENT
    training: bool = True
    state: list = field(default_factory=list)  # [StateEntry as dict, ...] (modules)
    classes: list = field(default_factory=list)  # where each class inside it comes from, read from its code
    relabelled: list = field(default_factory=list)  # classes whose __module__ names another origin than their code


@dataclass(frozen=True)
class TrustedRef:
    """A trusted object lent to the student's side; a module carries its description, an optimiser its groups
    and state, a callable its plain attributes."""

    ref: int
    kind: str
    name: str
    side: str = Side.TRUSTED
    module: dict = field(default_factory=dict)  # ModuleDescription as dict (modules)
    groups: list = field(default_factory=list)  # optimisers
    state: list = field(default_factory=list)  # optimisers: [[tensor id, {name: value}], ...]
    attrs: dict = field(default_factory=dict)  # callables


@dataclass(frozen=True)
class ModuleDescription:
    """A trusted module as the student's side rebuilds it: class, constructor arguments (torch.nn's own layers),
    mode, tensors by id, children."""

    id: int
    name: str
    standard: bool
    init: dict
    training: bool
    params: list  # [[name, id, encoded tensor, requires_grad, encoded grad or None], ...]
    buffers: list  # [[name, id, encoded tensor, persistent], ...]
    children: list  # [[name, ModuleDescription as dict], ...]


def record(cls: type, data: object) -> Any:
    """A reference or state record from its dict (WireError when it is not one)."""
    if not isinstance(data, dict):
        raise WireError(f"a {cls.__name__} that is not a dict")
    return _from_fields(cls, data)


def as_dict(value: Any) -> dict:
    """A record as the dict that goes on the wire."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
