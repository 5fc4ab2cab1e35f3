"""Messages between the sandboxed student process and the trusted process: JSON plus raw tensor bytes, no pickle.

A frame is an 8-byte header (JSON length, blob length), the JSON text, then the tensors' bytes back to back. JSON
refers to a tensor as {"tensor": index, "dtype", "shape", "device", "grad"}; decoding rebuilds it with
`torch.frombuffer`, so nothing in a frame can run code. Frames larger than the reader's limit are refused.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time

import torch

from autograder.grading.limits import FRAME_BYTES

HEADER = struct.Struct("<II")
DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool)}


class WireError(RuntimeError):
    """The other side sent something that is not a well-formed message, or stopped answering."""


def tensor_to_wire(tensor: torch.Tensor, blobs: list[bytes]) -> dict:
    """Describe a tensor and append its bytes; the other side rebuilds it on the same kind of device."""
    plain = torch.Tensor._make_subclass(torch.Tensor, tensor.detach()) if type(tensor) is not torch.Tensor else tensor
    dtype = str(plain.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise WireError(f"tensors of dtype {dtype} cannot be sent")
    data = plain.detach().to("cpu").contiguous()
    blobs.append(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return {"tensor": len(blobs) - 1, "dtype": dtype, "shape": list(data.shape), "device": plain.device.type,
            "grad": bool(plain.requires_grad)}


def tensor_from_wire(spec: dict, blobs: list[bytes], device: torch.device | None = None) -> torch.Tensor:
    """Rebuild a tensor from its description and bytes, on `device` (default: the device type it came from)."""
    try:
        dtype, shape, data = DTYPES[spec["dtype"]], [int(n) for n in spec["shape"]], blobs[int(spec["tensor"])]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise WireError(f"malformed tensor description {str(spec)[:200]}") from error
    count = math.prod(shape)
    if len(data) != count * torch.empty((), dtype=dtype).element_size():
        raise WireError(f"a tensor of shape {shape} and dtype {spec['dtype']} came with {len(data)} bytes")
    flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    tensor = flat.view(dtype).reshape(shape).clone()
    target = device or torch.device(spec.get("device") if spec.get("device") in ("cpu", "cuda") else "cpu")
    if target.type == "cuda" and not torch.cuda.is_available():
        target = torch.device("cpu")
    tensor = tensor.to(target)
    if spec.get("grad") and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def plain_json(value: object) -> object:
    """Floats JSON cannot spell (inf, nan) become {"float": "inf"}; everything else is left as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def float_from_json(value: dict) -> float:
    """The inverse of plain_json for non-finite floats."""
    text = value["float"]
    if text not in ("inf", "-inf", "nan"):
        raise WireError(f"not a float: {text!r}")
    return float(text)


def send(fd: int, message: dict, blobs: list[bytes]) -> None:
    """Write one frame."""
    blob = b"".join(blobs)
    sizes = [len(b) for b in blobs]
    text = json.dumps({"message": message, "blobs": sizes}, separators=(",", ":"), allow_nan=False).encode()
    _write_all(fd, HEADER.pack(len(text), len(blob)) + text + blob)


def receive(fd: int, timeout: float | None = None, max_bytes: int = FRAME_BYTES) -> tuple[dict, list[bytes]]:
    """Read one frame (refusing one over `max_bytes`, or none within `timeout` seconds)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    text_size, blob_size = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if text_size + blob_size > max_bytes:
        raise WireError(f"a message of {text_size + blob_size:,} bytes is over the {max_bytes:,}-byte limit")
    try:
        frame = json.loads(_read_exactly(fd, text_size, deadline))
        message, sizes = frame["message"], [int(n) for n in frame["blobs"]]
    except (ValueError, KeyError, TypeError) as error:
        raise WireError("a message that is not valid JSON") from error
    if not isinstance(message, dict) or sum(sizes) != blob_size or any(n < 0 for n in sizes):
        raise WireError("a message whose parts do not add up")
    blob = _read_exactly(fd, blob_size, deadline)
    blobs, offset = [], 0
    for size in sizes:
        blobs.append(blob[offset:offset + size])
        offset += size
    return message, blobs


def _write_all(fd: int, data: bytes) -> None:
    """os.write until everything is written (pipes take at most a buffer at a time)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    """Read exactly `size` bytes, or fail when the writer closes its end or the deadline passes."""
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WireError("the other process stopped answering (time limit)")
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise WireError("the other process closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
