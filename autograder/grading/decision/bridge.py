"""The conversation between the trusted process and the sandboxed student process: requests, replies, values.

Either side may ask the other something (protocol.py declares what) and, while answering, ask back (a student's
make_stage calls the trusted side's block factory). Requests nest, so one loop per side suffices: `Endpoint.request`
sends and then answers the other side's requests until its own reply arrives.

Values cross as data (see wire.py): None, booleans, numbers, strings, lists, tuples, string-keyed dicts, tensors,
devices, dtypes, the course's dataclasses (rebuilt field by field, from an allow-list), and references to objects
that stay on their side ({"ref": id, "side": "student"|"trusted", ...}), which each side turns into a proxy.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
from collections.abc import Callable

import torch

from autograder.grading.decision import protocol, wire
from autograder.grading.limits import FRAME_BYTES, REPLY_SECONDS

# Dataclasses that may cross by value: plain fields, rebuilt on the other side by the class's own constructor.
DATACLASSES = ("residual_course.training:History",)
# Exception types a student's error may be raised as on the trusted side, so checks' `except` clauses still match.
ERRORS = {cls.__name__: cls for cls in (NotImplementedError, ValueError, TypeError, RuntimeError, AttributeError,
                                        IndexError, KeyError, ZeroDivisionError, AssertionError, NameError)}
# torch.nn layers rebuilt natively on the other side, with the attributes their constructor takes.
STANDARD_MODULES: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"),
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
               "padding_mode"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
               "padding_mode"),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", "bias"),
    "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
    "ReLU": ("inplace",), "ReLU6": ("inplace",), "LeakyReLU": ("negative_slope", "inplace"),
    "ELU": ("alpha", "inplace"), "GELU": ("approximate",), "SiLU": ("inplace",), "Sigmoid": (), "Tanh": (),
    "Softplus": ("beta", "threshold"), "Identity": (), "Flatten": ("start_dim", "end_dim"),
    "Dropout": ("p", "inplace"), "Dropout2d": ("p", "inplace"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "AdaptiveAvgPool2d": ("output_size",), "AdaptiveMaxPool2d": ("output_size", "return_indices"),
    "Softmax": ("dim",), "LogSoftmax": ("dim",), "Sequential": (), "ModuleList": (),
}


def standard_init(module: torch.nn.Module) -> dict | None:
    """The constructor arguments of an exact torch.nn layer from STANDARD_MODULES, or None for any other module."""
    name = type(module).__name__
    if name not in STANDARD_MODULES or type(module) is not getattr(torch.nn, name, None):
        return None
    init = {}
    for attribute in STANDARD_MODULES[name]:
        value = getattr(module, attribute)
        if attribute == "bias":
            value = value is not None
        init[attribute] = list(value) if isinstance(value, tuple) else value
    return init


def rng_state() -> str:
    """torch's CPU generator as it stands, as text: sent with each call of a student's object."""
    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")


def set_rng_state(text: object) -> None:
    """Set torch's CPU generator to the state rng_state() sent, so that a seeded check's call builds what the
    same seed builds in the student's notebook; a malformed state leaves the generator alone."""
    if not isinstance(text, str) or len(text) > 20_000:
        return
    try:
        state = torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)
        if state.numel() == torch.get_rng_state().numel():
            torch.set_rng_state(state)
    except (ValueError, RuntimeError):
        return


class RemoteError(Exception):
    """Marker base: an error raised by code on the other side, re-raised here with its type name and message."""

    remote_line = ""


def remote_error(kind: str, message: str, line: str = "") -> Exception:
    """An exception of the same builtin type (so `except RuntimeError` still catches it), marked as remote."""
    base = ERRORS.get(kind, RuntimeError)
    error_type = type(f"Remote{base.__name__}", (base, RemoteError), {})
    error = error_type(message)
    error.remote_line = line
    error.remote_type = kind
    return error


Handler = Callable[[protocol.Request, list[bytes]], tuple[protocol.Reply, list[bytes]]]


class Endpoint:
    """One side's end of the conversation: send requests, answer the other side's, with sizes and times bounded."""

    def __init__(self, read_fd: int, write_fd: int, handle: Handler, max_bytes: int = FRAME_BYTES,
                 timeout: float | None = REPLY_SECONDS) -> None:
        self.read_fd, self.write_fd, self.handle = read_fd, write_fd, handle
        self.max_bytes, self.timeout = max_bytes, timeout

    def request(self, message: protocol.Request, blobs: list[bytes],
                *expected: type[protocol.Reply]) -> tuple[protocol.Reply, list[bytes]]:
        """Send a request; answer nested requests until its reply comes; return it (an Error reply is raised)."""
        self.start(message, blobs)
        return self.finish(*expected)

    def start(self, message: protocol.Request, blobs: list[bytes]) -> None:
        """Send a request without waiting: `finish` collects its reply later (only one may be pending)."""
        wire.send(self.write_fd, message.to_wire(), blobs)

    def finish(self, *expected: type[protocol.Reply]) -> tuple[protocol.Reply, list[bytes]]:
        """Answer the other side's requests until the reply to ours arrives."""
        while True:
            data, blobs = wire.receive(self.read_fd, self.timeout, self.max_bytes)
            if data.get("kind") == "request":
                self.answer(protocol.parse_request(data), blobs)
                continue
            if data.get("kind") != "reply":
                raise wire.WireError(f"unexpected message kind {str(data.get('kind'))[:50]!r}")
            reply = protocol.parse_reply(data, *expected)
            if isinstance(reply, protocol.Error):
                raise remote_error(reply.type, reply.message, reply.line)
            return reply, blobs

    def answer(self, message: protocol.Request, blobs: list[bytes]) -> None:
        """Handle one request of the other side and send the reply (an error becomes an Error reply)."""
        try:
            reply, reply_blobs = self.handle(message, blobs)
        except wire.WireError:
            raise
        except Exception as error:  # noqa: BLE001 (whatever went wrong becomes the reply, never a dead loop)
            reply, reply_blobs = error_reply(error), []
        wire.send(self.write_fd, reply.to_wire(), reply_blobs)

    def serve(self) -> None:
        """Answer requests until the other side closes the connection or says it is done."""
        while True:
            try:
                data, blobs = wire.receive(self.read_fd, None, self.max_bytes)
                message = protocol.parse_request(data)
            except wire.WireError:
                return
            if isinstance(message, protocol.Done):
                return
            self.answer(message, blobs)


def error_reply(error: BaseException) -> protocol.Error:
    """An error as a reply: its type name, its message, and the line of the last frame outside the libraries."""
    import traceback

    line = getattr(error, "remote_line", "")
    if not line:
        frames = traceback.extract_tb(error.__traceback__)
        ours = [f for f in frames if "site-packages" not in f.filename and "/autograder/grading/" not in f.filename]
        line = (ours[-1].line or "").strip() if ours else ""
    kind = getattr(error, "remote_type", type(error).__name__)
    return protocol.Error(str(kind)[:100], str(error)[:2000], line[:300])


class Codec:
    """Values to data and back; `to_ref` / `from_ref` are the side's own ways with objects that stay put."""

    def __init__(self, to_ref: Callable[[object, list[bytes]], dict], from_ref: Callable[[dict, list[bytes]], object],
                 device: Callable[[], torch.device | None] = lambda: None) -> None:
        self.to_ref, self.from_ref, self.device = to_ref, from_ref, device

    def encode(self, value: object, blobs: list[bytes]) -> object:
        """Data for a value; objects that cannot travel become references."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return wire.plain_json(float(value) if isinstance(value, float) else int(value))
        if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
            return wire.tensor_to_wire(value, blobs)
        if isinstance(value, torch.nn.Parameter):
            return wire.tensor_to_wire(value.detach(), blobs)
        if isinstance(value, list):
            return [self.encode(v, blobs) for v in value]
        if isinstance(value, tuple):
            return {"tuple": [self.encode(v, blobs) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.encode(v, blobs) for k, v in value.items()}}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, torch.dtype):
            return {"dtype": str(value).removeprefix("torch.")}
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and _qualified(type(value)) in DATACLASSES:
            return {"dataclass": _qualified(type(value)),
                    "fields": {f.name: self.encode(getattr(value, f.name), blobs) for f in dataclasses.fields(value)}}
        return self.to_ref(value, blobs)

    def decode(self, value: object, blobs: list[bytes]) -> object:
        """The value a piece of data stands for."""
        if isinstance(value, list):
            return [self.decode(v, blobs) for v in value]
        if not isinstance(value, dict):
            return value
        if "tensor" in value:
            return wire.tensor_from_wire(value, blobs, self.device())
        if "float" in value:
            return wire.float_from_json(value)
        if "tuple" in value:
            return tuple(self.decode(v, blobs) for v in value["tuple"])
        if "dict" in value:
            return {str(k): self.decode(v, blobs) for k, v in value["dict"].items()}
        if "device" in value:
            return torch.device(str(value["device"]))
        if "dtype" in value:
            dtype = wire.DTYPES.get(str(value["dtype"]))
            if dtype is None:
                raise wire.WireError(f"unknown dtype {value['dtype']!r}")
            return dtype
        if "dataclass" in value:
            if value["dataclass"] not in DATACLASSES:
                raise wire.WireError(f"{value['dataclass']!r} may not cross by value")
            cls = _resolve(value["dataclass"])
            names = {f.name for f in dataclasses.fields(cls)}
            fields = {k: self.decode(v, blobs) for k, v in value["fields"].items() if k in names}
            return cls(**fields)
        if "ref" in value:
            return self.from_ref(value, blobs)
        raise wire.WireError(f"unknown value {str(value)[:200]}")


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(qualified: str) -> type:
    """The class named "module:Qualname" (only ever called on names from an allow-list)."""
    module, _, name = qualified.partition(":")
    value = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value
