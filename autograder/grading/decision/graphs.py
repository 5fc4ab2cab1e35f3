"""A module's computation as plain data, and a trusted module that runs it: torch.export without the student's Python.

The sandboxed side calls `export_graph(module, inputs)`: torch.export traces the aten operations the module runs on
inputs of those shapes (data-dependent Python control flow cannot be traced, and says so), and the trace becomes a
JSON-able spec: placeholders (parameters, buffers and constants by their names in the module, then the inputs),
nodes (an operation from ALLOWED_OPS and its arguments) and outputs. The trusted side's `run_graph` walks such a
spec with its own tensors, calling each operation through `torch.ops` by name, so that the only code that runs is
torch's. An operation outside ALLOWED_OPS (file I/O, raw memory access, anything unusual) is refused.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from autograder.grading.decision.wire import float_from_json, plain_json, tensor_from_wire, tensor_to_wire

TRUSTED_CALL = "course::trusted.default"  # a module of the trusted side, called inside a student's module
SET_GRAD = "hop::wrap_with_set_grad_enabled"  # `with torch.no_grad():` inside forward
GETITEM = "operator.getitem"

# What a student's layer may compute: the aten operations of PyTorch's layers, tensor arithmetic, shapes and
# reductions (the "training IR" names torch.export records). Nothing here reads files or raw memory.
ALLOWED_OPS = frozenset(f"aten::{name}" for name in """
    conv1d.default conv2d.default conv2d.padding conv3d.default conv_transpose2d.input linear.default matmul.default
    mm.default bmm.default addmm.default baddbmm.default einsum.default
    batch_norm.default layer_norm.default group_norm.default instance_norm.default
    relu.default relu_.default sigmoid.default sigmoid_.default tanh.default tanh_.default gelu.default silu.default
    silu_.default leaky_relu.default leaky_relu_.default elu.default hardtanh.default hardtanh_.default relu6.default
    softplus.default mish.default hardswish.default hardsigmoid.default softmax.int log_softmax.int logsumexp.default
    dropout.default dropout_.default feature_dropout.default alpha_dropout.default
    max_pool2d.default max_pool1d.default avg_pool2d.default avg_pool1d.default adaptive_avg_pool2d.default
    adaptive_avg_pool1d.default adaptive_max_pool2d.default
    add.Tensor add.Scalar add_.Tensor add_.Scalar sub.Tensor sub.Scalar sub_.Tensor rsub.Scalar rsub.Tensor
    mul.Tensor mul.Scalar mul_.Tensor mul_.Scalar div.Tensor div.Scalar div_.Tensor div.Tensor_mode neg.default
    abs.default pow.Tensor_Scalar pow.Tensor_Tensor pow.Scalar sqrt.default rsqrt.default exp.default log.default
    log1p.default expm1.default square.default reciprocal.default sign.default floor.default ceil.default
    round.default clamp.default clamp_.default clamp_min.default clamp_max.default maximum.default minimum.default
    where.self where.ScalarOther where.ScalarSelf lt.Scalar lt.Tensor gt.Scalar gt.Tensor le.Scalar ge.Scalar
    eq.Scalar eq.Tensor ne.Scalar logical_not.default masked_fill.Scalar masked_fill.Tensor addcmul.default
    sum.default sum.dim_IntList mean.default mean.dim amax.default amin.default max.dim min.dim max.default
    min.default var.correction var.dim std.correction std.dim var_mean.correction prod.default cumsum.default
    norm.ScalarOpt_dim linalg_vector_norm.default argmax.default
    flatten.using_ints view.default reshape.default permute.default transpose.int t.default numpy_T.default
    mT.default unsqueeze.default
    squeeze.dim squeeze.dims squeeze.default expand.default expand_as.default repeat.default contiguous.default
    clone.default cat.default stack.default split.Tensor split_with_sizes.default chunk.default narrow.default
    slice.Tensor select.int index_select.default gather.default unbind.int pad.default constant_pad_nd.default
    flip.default roll.default unflatten.int movedim.int type_as.default
    zeros.default ones.default full.default zeros_like.default ones_like.default full_like.default empty_like.default
    new_zeros.default new_ones.default new_empty.default new_full.default arange.default arange.start
    arange.start_step eye.default fill_.Scalar zero_.default copy_.default detach.default alias.default
    lift_fresh_copy.default _to_copy.default to.dtype to.device to.dtype_layout
    scaled_dot_product_attention.default upsample_nearest2d.vec embedding.default
    index.Tensor index_put.default index_put_.default take.default take_along_dim.default one_hot.default
    cross_entropy_loss.default nll_loss.default nll_loss_nd.default mse_loss.default l1_loss.default
    smooth_l1_loss.default huber_loss.default binary_cross_entropy_with_logits.default kl_div.default
    argmin.default topk.default sort.default max.other min.other std_mean.correction logical_and.default
    logical_or.default bitwise_and.Tensor ge.Tensor le.Tensor ne.Tensor softmax.Dimname exp_.default
    sigmoid_backward.default erf.default sin.default cos.default cumprod.default diag.default diagonal.default
    tril.default triu.default outer.default dot.default vdot.default linalg_norm.default frobenius_norm.dim
    tensor_split.sections tensor_split.indices hsplit.int vsplit.int squeeze_.dim unsqueeze_.default
    t_.default transpose_.default clip.default clamp.Tensor fill.Scalar full_like.default rand_like.default
    randn_like.default bernoulli.p native_dropout.default var.default std.default sum.dim_DimnameList
    sub_.Scalar neg_.default abs_.default sqrt_.default div_.Scalar floor_divide.default remainder.Scalar
    remainder.Tensor fmod.Scalar atan2.default hardtanh_backward.default channel_shuffle.default
    pixel_shuffle.default adaptive_max_pool1d.default max_pool3d.default avg_pool3d.default
    adaptive_avg_pool3d.default conv_transpose1d.default convolution.default _convolution.default
    instance_norm.default native_batch_norm.default native_layer_norm.default group_norm.default
""".split())

_SCALARS = {"dtype": lambda v: _enum("dtype", v), "device": torch.device,
            "layout": lambda v: _enum("layout", v), "memory_format": lambda v: _enum("memory_format", v)}


class GraphError(RuntimeError):
    """A graph spec the trusted side will not run: malformed, or an operation outside ALLOWED_OPS."""


class ExportFailed(RuntimeError):
    """torch.export could not trace the module (its message says why): it needs a person to grade it."""


# ---------------------------------------------------------------- the sandboxed side: module -> spec

def export_graph(module: torch.nn.Module, inputs: tuple[Tensor, ...], blobs: list[bytes]) -> dict:
    """torch.export the module on these inputs and turn the program into a spec (constants appended to blobs)."""
    try:
        program = torch.export.export(module, inputs, strict=False)
    except Exception as error:  # noqa: BLE001 (every reason export gives up is reported, not raised further)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportFailed(f"{type(error).__name__}: {first_line[:300]}") from None
    return _spec(program.graph, program.graph_signature, program.constants, blobs)


def _spec(graph: torch.fx.Graph, signature: Any, constants: dict, blobs: list[bytes]) -> dict:
    """The program's placeholders, nodes and outputs as plain data."""
    kinds = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "constant", "USER_INPUT": "input"}
    placeholders = []
    for spec in signature.input_specs:
        kind = kinds.get(spec.kind.name)
        if kind is None:
            raise ExportFailed(f"the module takes an input of kind {spec.kind.name}, which grading does not support")
        entry = {"name": spec.arg.name, "kind": kind, "target": spec.target}
        if kind == "constant":
            entry["value"] = tensor_to_wire(constants[spec.target], blobs)
        placeholders.append(entry)
    nodes, outputs = _nodes(graph, blobs), []
    for spec, value in zip(signature.output_specs, _output_node(graph).args[0], strict=True):
        outputs.append({"kind": spec.kind.name.lower(), "target": spec.target, "value": _arg(value, blobs)})
    return {"placeholders": placeholders, "nodes": nodes, "outputs": outputs,
            "output_meta": [_meta(node) for node in _output_node(graph).args[0] if isinstance(node, torch.fx.Node)]}


def _nodes(graph: torch.fx.Graph, blobs: list[bytes]) -> list[dict]:
    """Every call in the graph, with the module path torch.export saw it in (for naming only)."""
    owner = graph.owning_module
    nodes = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target, args, body = _target_name(node.target), list(node.args), None
        if target == SET_GRAD:  # the block's own graph travels beside its arguments, as `body`
            enabled, submodule, *rest = args
            body = _subgraph(getattr(owner, submodule.target).graph, blobs)
            args = [enabled, *rest]
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
        entry = {"name": node.name, "target": target, "args": [_arg(a, blobs) for a in args],
                 "kwargs": {k: _arg(v, blobs) for k, v in node.kwargs.items()}, "module": str(path),
                 "meta": _meta(node)}
        if body is not None:
            entry["body"] = body
        nodes.append(entry)
    return nodes


def _subgraph(graph: torch.fx.Graph, blobs: list[bytes]) -> dict:
    """A nested graph (the body of a `no_grad` block): its inputs by position, its nodes and its outputs."""
    inputs = [node.name for node in graph.nodes if node.op == "placeholder"]
    outputs = [_arg(value, blobs) for value in _output_node(graph).args[0]]
    return {"inputs": inputs, "nodes": _nodes(graph, blobs), "outputs": outputs}


def _output_node(graph: torch.fx.Graph) -> torch.fx.Node:
    return next(node for node in graph.nodes if node.op == "output")


def _target_name(target: object) -> str:
    """aten::conv2d.default for an OpOverload; the few Python-level calls export emits get names of their own."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name}.{target._overloadname}"
    if target is operator.getitem:
        return GETITEM
    name = getattr(target, "__name__", type(target).__name__)
    if name == "wrap_with_set_grad_enabled":
        return SET_GRAD
    return f"python::{name}"


def _meta(node: torch.fx.Node) -> dict | None:
    """Shape and dtype of a node's value, when it is one tensor (the trusted side needs outputs' shapes)."""
    value = node.meta.get("val")
    if isinstance(value, Tensor):
        return {"shape": [int(n) for n in value.shape], "dtype": str(value.dtype).removeprefix("torch.")}
    return None


def _arg(value: object, blobs: list[bytes]) -> object:
    """One argument as plain data: node references by name, literals as they are."""
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if isinstance(value, (list, tuple)):
        return [_arg(v, blobs) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): _arg(v, blobs) for k, v in value.items()}}
    if isinstance(value, Tensor):
        return tensor_to_wire(value, blobs)
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return plain_json(value)
    raise ExportFailed(f"the graph holds a value grading cannot send: {type(value).__name__}")


def _enum(kind: str, name: str) -> object:
    """torch.float32 for ("dtype", "float32"), refusing names that are not of that kind."""
    value = getattr(torch, str(name), None)
    expected = {"dtype": torch.dtype, "layout": torch.layout, "memory_format": torch.memory_format}[kind]
    if not isinstance(value, expected):
        raise GraphError(f"not a {kind}: {name!r}")
    return value


class FunctionModule(torch.nn.Module):
    """A function of tensors as a parameter-free module, so that torch.export can trace it (either side's)."""

    def __init__(self, function: Callable[..., Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.function(*inputs)


# ---------------------------------------------------------------- the trusted side: spec -> computation


def placeholder_values(spec: dict, tensor: Callable[[str, str], Tensor], constants: dict[str, Tensor],
                       inputs: tuple[Tensor, ...] | list[Tensor]) -> dict[str, object]:
    """The graph's placeholders bound to values: parameters and buffers by `tensor(kind, name in the module)`, its
    constants, and the inputs in order."""
    env: dict[str, object] = {}
    user = iter(inputs)
    for entry in spec["placeholders"]:
        kind = entry["kind"]
        if kind in ("parameter", "buffer"):
            env[entry["name"]] = tensor(kind, entry["target"])
        elif kind == "constant":
            env[entry["name"]] = constants[entry["name"]]
        else:
            env[entry["name"]] = next(user)
    return env


def module_tensor(module: torch.nn.Module | None) -> Callable[[str, str], Tensor]:
    """placeholder_values' lookup for a module's own parameters and buffers."""
    def tensor(kind: str, name: str) -> Tensor:
        if module is None:
            raise GraphError(f"the graph reads {kind} {name}, but it belongs to no module")
        return module.get_parameter(name) if kind == "parameter" else module.get_buffer(name)

    return tensor


def user_outputs(spec: dict, values: list[object]) -> list[object]:
    """The values the module returns (not its buffers' updates)."""
    return [value for entry, value in zip(spec["outputs"], values, strict=True) if entry["kind"] == "user_output"]


def check_spec(spec: dict, extra_ops: frozenset[str] = frozenset()) -> None:
    """Refuse a spec with an operation outside the allow-list before running any of it."""
    for node in spec.get("nodes", []):
        target = node.get("target")
        if target in ALLOWED_OPS or target in extra_ops or target == GETITEM:
            continue
        if target == SET_GRAD:
            body = node.get("body")
            if not isinstance(body, dict):
                raise GraphError("a no_grad block came without its graph")
            check_spec(body, extra_ops)
            continue
        raise GraphError(f"the module runs {target}, an operation grading does not run")


def decode_arg(value: object, env: dict[str, object], blobs: list[bytes], device: torch.device | None) -> object:
    """The inverse of _arg, looking node references up in `env`."""
    if isinstance(value, list):
        return [decode_arg(v, env, blobs, device) for v in value]
    if isinstance(value, dict):
        if "node" in value:
            return env[value["node"]]
        if "tensor" in value:
            return tensor_from_wire(value, blobs, device)
        if "float" in value:
            return float_from_json(value)
        if "dict" in value:
            return {k: decode_arg(v, env, blobs, device) for k, v in value["dict"].items()}
        (kind, name), = value.items()
        if kind not in _SCALARS:
            raise GraphError(f"unknown argument kind {kind!r}")
        return _SCALARS[kind](name)
    return value


def _op(target: str) -> Callable[..., object]:
    """torch.ops.aten.conv2d.default for "aten::conv2d.default"."""
    namespace, _, rest = target.partition("::")
    name, _, overload = rest.partition(".")
    return getattr(getattr(getattr(torch.ops, namespace), name), overload)


Call = Callable[[dict, list, dict], object]  # (node, args, kwargs) -> value: how a side runs some nodes itself


def run_graph(spec: dict, env: dict[str, object], blobs: list[bytes], device: torch.device | None,
              special: Call | None = None) -> list[object]:
    """Run the nodes in order; `env` holds the placeholders' values; `special` runs the nodes it wants to."""
    for node in spec["nodes"]:
        args = [decode_arg(a, env, blobs, device) for a in node["args"]]
        kwargs = {k: decode_arg(v, env, blobs, device) for k, v in node["kwargs"].items()}
        value = special(node, args, kwargs) if special is not None else NotImplemented
        if value is NotImplemented:
            value = _call(node, args, kwargs, blobs, device, special)
        env[node["name"]] = value
    return [decode_arg(entry["value"] if isinstance(entry, dict) and "kind" in entry else entry, env, blobs, device)
            for entry in spec["outputs"]]


def _call(node: dict, args: list, kwargs: dict, blobs: list[bytes], device: torch.device | None,
          special: Call | None) -> object:
    """One node: an allowed aten operation, a getitem, or a `no_grad` block."""
    target = node["target"]
    if target == GETITEM:
        return operator.getitem(*args)
    if target == SET_GRAD:
        enabled, *inputs = args
        body = node["body"]
        with torch.set_grad_enabled(bool(enabled)):
            inner = dict(zip(body["inputs"], inputs, strict=True))
            outputs = run_graph(body, inner, blobs, device, special)
        return tuple(outputs)
    if target not in ALLOWED_OPS:
        raise GraphError(f"the module runs {target}, an operation grading does not run")
    return _op(target)(*args, **kwargs)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """torch.export logs warnings for ordinary student code; keep them out of the grading logs."""
    import logging

    loggers = [logging.getLogger(name) for name in ("torch._export", "torch.fx.experimental.symbolic_shapes",
                                                    "torch._dynamo", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
