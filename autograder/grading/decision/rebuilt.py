"""A student's module as the trusted side holds it: its parameters, and the graphs its forward pass exported.

`StudentModule` is an ordinary nn.Module of the trusted process. It owns the student's parameters and buffers
(copied as data, under the student's names and in the student's order, so state_dict and parameters() line up),
and for each input signature (shapes, dtype, device, memory layout, train or eval mode) it asks the student's side
once for the graph of the student's forward pass on such inputs, then runs that graph itself (graphs.run_graph)
with its own tensors, on copies of its inputs (a graph that writes into its input cannot reach the caller's).
Checks can therefore zero its weights, switch its mode, move it to the GPU, hook its layers and take gradients
through it, and no student code runs.

Each new graph is checked before it runs: its operations against the allow-list (and, for a block exercise,
against what a correct block needs: exercises.py), and its computation against the student's module itself: the
student's side runs the module eagerly on fresh salted inputs with fresh random weights, and the outputs must
match the graph's on the same inputs and weights (a module that computes one thing while torch.export traces it
and another when it runs is a GraphMismatch).

Layers are recognised from what the graph computes: a conv2d node whose weight is the parameter "x.weight" makes
"x" an nn.Conv2d (of the node's stride, padding and groups) that owns that parameter, and so on for Linear,
BatchNorm and pooling, so that forward hooks (probes.trace_forward) see them as they see the student's layers.
A module of the trusted side that the student's module calls (a block factory's block, a stage handed in) runs
as itself: the graph names it, and it is called, hooks and weights and all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autograder.grading.decision.exercises import Exercise
from autograder.grading.decision.graphs import (
    TRUSTED_CALL,
    ExportFailed,
    GraphError,
    check_spec,
    decode_arg,
    module_tensor,
    placeholder_values,
    run_graph,
)
from autograder.grading.decision.wire import DTYPES, tensor_from_wire
from residual_course.checks.subjects import salted_seed

Signature = tuple[tuple[tuple[int, ...], str, str, str], ...]
# (signature, mode, inputs, {name: tensor}, seed) -> the eager module's outputs and buffers, from the student's side
Verify = Callable[[Signature, bool, list[Tensor], dict[str, Tensor], int], tuple[list[Tensor], dict[str, Tensor]]]


class GraphMismatch(RuntimeError):
    """The graph torch.export gave is not what the student's module computes when it runs: evidence of tampering."""
# Graphs by (family, signature, mode): modules that one student callable built from the same plain arguments are
# the same computation, so BasicBlock(16, 16) is exported once however many copies the checks build.
SHARED_GRAPHS: dict[tuple, tuple[dict, list[bytes], dict[str, Tensor]]] = {}


class _Conv2d(nn.Conv2d):
    """A student's 2-D convolution: the graph's stride, padding, dilation and groups, the student's weight."""

    def forward(self, x: Tensor, stride: list[int], padding: Any, dilation: list[int], groups: int) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)


class _Linear(nn.Linear):
    """A student's linear layer."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class _BatchNorm:
    """A student's BatchNorm: batch statistics in train(), running ones in eval(), as the graph's eps and momentum."""

    def forward(self, x: Tensor, momentum: float | None, eps: float) -> Tensor:
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch,
                            0.0 if momentum is None else momentum, eps)


class _BatchNorm1d(_BatchNorm, nn.BatchNorm1d):
    pass


class _BatchNorm2d(_BatchNorm, nn.BatchNorm2d):
    pass


class _MaxPool2d(nn.MaxPool2d):
    def forward(self, x: Tensor, *config: object) -> Tensor:
        return torch.ops.aten.max_pool2d.default(x, *config)


class _AvgPool2d(nn.AvgPool2d):
    def forward(self, x: Tensor, *config: object) -> Tensor:
        return torch.ops.aten.avg_pool2d.default(x, *config)


class _AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    def forward(self, x: Tensor, output_size: list[int]) -> Tensor:
        return torch.ops.aten.adaptive_avg_pool2d.default(x, output_size)


_POOLS = {"aten::max_pool2d.default": lambda a: _MaxPool2d(*_pad(a, 5, [[], [], [0, 0], [1, 1], False])),
          "aten::avg_pool2d.default": lambda a: _AvgPool2d(*_pad(a, 5, [[], [], [0, 0], False, True])),
          "aten::adaptive_avg_pool2d.default": lambda a: _AdaptiveAvgPool2d(a[0])}


def _pad(args: list, count: int, defaults: list) -> list:
    """The first `count` arguments after the input, filling omitted ones with the schema's defaults."""
    given = list(args)
    values = given + defaults[len(given):count]
    if values[1] == []:  # stride defaults to the kernel size
        values[1] = values[0]
    return values


CONVS = ("aten::conv2d.default", "aten::conv2d.padding")  # padding as numbers, or "same" / "valid"
_LAYER_TARGETS = frozenset({*CONVS, "aten::linear.default", "aten::batch_norm.default", *_POOLS})


class StudentModule(nn.Module):
    """The trusted side's copy of a student's module: the student's tensors, forward by exported graphs."""

    def __init__(self, name: str, state: list[dict], blobs: list[bytes], device: torch.device | None,
                 trusted: Callable[[int], object], export: Callable[[Signature, bool], tuple[dict, list[bytes]]],
                 call_trusted: Callable[..., Tensor], training: bool) -> None:
        super().__init__()
        self._student_name = name
        self._export, self._call_trusted = export, call_trusted
        self._refused = lambda reason: ExportFailed(reason)  # the trusted side records why a graph was refused
        self._mismatch = lambda reason: GraphMismatch(reason)  # ...and a graph that is not the module
        self.exercise: Exercise | None = None  # a block exercise's narrower rules (set by the trusted side)
        self.verify: Verify | None = None  # runs the student's module eagerly (set by the trusted side)
        self._graphs: dict[tuple, tuple[dict, list[bytes], dict[str, Tensor]]] = {}
        self.family: tuple | None = None  # modules built by the same call share graphs (set by the trusted side)
        self._layers: dict[tuple[str, str], nn.Module] = {}  # (path, kind) -> layer recognised in a graph
        self._layer_of_node: dict[int, dict[str, nn.Module]] = {}
        placed: list[str] = []
        for entry in state:  # in the student's order: parameters(), buffers() and state_dict() keep it
            path, kind = str(entry["name"]), entry["kind"]
            if any(path.startswith(f"{other}.") for other in placed):
                continue  # a tensor of a trusted module placed whole
            if kind == "module":
                module = trusted(int(entry["trusted"]))
                if not isinstance(module, nn.Module):
                    raise TypeError(f"{path} is not a module of the trusted side")
                self._place(path, module)
                placed.append(path)
                continue
            if entry.get("trusted") is not None:
                tensor = trusted(int(entry["trusted"]))
                if not isinstance(tensor, Tensor):
                    raise TypeError(f"{path} is not a tensor of the trusted side")
            else:
                tensor = tensor_from_wire(entry["value"], blobs, device)
            owner, _, leaf = path.rpartition(".")
            holder = self._container(owner)
            if kind == "parameter":
                if not isinstance(tensor, nn.Parameter):
                    tensor = nn.Parameter(tensor.detach(), requires_grad=bool(entry.get("requires_grad", True)))
                holder.register_parameter(leaf, tensor)
            elif kind == "buffer":
                holder.register_buffer(leaf, tensor, persistent=bool(entry.get("persistent", True)))
            else:
                raise TypeError(f"unknown kind of state {kind!r}")
        self.holds_lent = bool(placed) or any(e.get("trusted") is not None for e in state)
        self.train(training)

    def extra_repr(self) -> str:
        return f"the graded copy of {self._student_name}"

    # ------------------------------------------------------------ structure

    def _container(self, path: str) -> nn.Module:
        """The module at a dotted path, creating empty containers on the way."""
        module: nn.Module = self
        for part in filter(None, path.split(".")):
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        return module

    def _place(self, path: str, module: nn.Module) -> None:
        """Put a module at a dotted path, taking over whatever the container there held."""
        owner, _, leaf = path.rpartition(".")
        parent = self._container(owner)
        old = parent._modules.get(leaf)
        if old is not None and old is not module:
            for name, value in old._parameters.items():
                if name not in module._parameters or module._parameters[name] is None:
                    module._parameters[name] = value
            for name, value in old._buffers.items():
                module._buffers.setdefault(name, value)
            for name, value in old._modules.items():
                module._modules.setdefault(name, value)
        parent._modules[leaf] = module  # same key: the order of parameters and state_dict stays the student's

    def prepare_for(self, *inputs: Tensor) -> None:
        """Learn the layers from a graph before forward hooks are attached (probes.forward_hooks calls this)."""
        self._graph(inputs)

    # ------------------------------------------------------------ forward

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Run the student's graph for inputs like these on this module's own tensors (and copies of the inputs)."""
        spec, blobs, constants = self._graph(inputs)
        env = placeholder_values(spec, module_tensor(self), constants, [x.clone() for x in inputs])
        layers = self._layer_of_node[id(spec)]

        def special(node: dict, args: list, kwargs: dict) -> object:
            if node["target"] == TRUSTED_CALL:
                tensors, ident = args
                return self._call_trusted(int(ident), *tensors)
            layer = layers.get(node["name"])
            if layer is None:
                return NotImplemented
            return _call_layer(layer, node["target"], args, kwargs)

        values = run_graph(spec, env, blobs, None, special)
        outputs = []
        for entry, value in zip(spec["outputs"], values, strict=True):
            if entry["kind"] == "buffer_mutation":
                with torch.no_grad():
                    self.get_buffer(entry["target"]).copy_(value)
            elif entry["kind"] == "user_output":
                outputs.append(value)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _graph(self, inputs: tuple[Tensor, ...]) -> tuple[dict, list[bytes], dict[str, Tensor]]:
        """The exported graph for inputs like these in the current mode (asked for once, then kept)."""
        if not all(isinstance(x, Tensor) for x in inputs):
            kinds = ", ".join(type(x).__name__ for x in inputs)
            raise TypeError(f"grading passes tensors only to {self._student_name}'s forward, got ({kinds})")
        signature = tuple(_signature(x) for x in inputs)
        key = (signature, self.training)
        if key not in self._graphs:
            shared = SHARED_GRAPHS.get((self.family, *key)) if self.family is not None else None
            if shared is None:
                spec, blobs = self._export(signature, self.training)
                try:
                    check_spec(spec, frozenset({TRUSTED_CALL}))
                    if self.exercise is not None:
                        self.exercise.check(spec, self._student_name)
                except GraphError as error:
                    raise self._refused(str(error)) from None
                constants = {entry["name"]: tensor_from_wire(entry["value"], blobs)
                             for entry in spec["placeholders"] if entry["kind"] == "constant"}
                self._verified(spec, blobs, constants, signature, inputs)
                shared = (spec, blobs, constants)
                if self.family is not None:
                    SHARED_GRAPHS[(self.family, *key)] = shared
            self._graphs[key] = shared
            self._layer_of_node[id(shared[0])] = self._recognise_layers(shared[0], shared[1])
        return self._graphs[key]

    def _verified(self, spec: dict, blobs: list[bytes], constants: dict[str, Tensor], signature: Signature,
                  called_with: tuple[Tensor, ...]) -> None:
        """The graph computes what the student's module computes: on fresh salted inputs and random weights (in this
        mode, from one random seed), the student's side's eager outputs equal the graph's here. Integer inputs (labels,
        indices) keep the values of the call being answered: only they are sure to be in range."""
        if self.verify is None or any(node["target"] == TRUSTED_CALL for node in spec["nodes"]):
            return  # a module built around the grader's own blocks: their state lives on both sides (see README)
        key = (self._student_name, signature, self.training)
        generator = torch.Generator().manual_seed(salted_seed("verify", key))
        inputs = [_random_like(shape, dtype, device, layout, generator) if x.is_floating_point() else x.detach().clone()
                  for (shape, dtype, device, layout), x in zip(signature, called_with, strict=True)]
        state = {}
        for entry in spec["placeholders"]:
            if entry["kind"] in ("parameter", "buffer"):
                current = module_tensor(self)(entry["kind"], entry["target"])
                state[entry["target"]] = _random_weight(current, entry["kind"], generator)
        seed = int(torch.randint(0, 2**31, (1,), generator=generator))
        eager, eager_buffers = self.verify(signature, self.training, inputs, state, seed)
        copies = {name: tensor.clone() for name, tensor in state.items()}
        env = placeholder_values(spec, lambda _, name: copies[name], constants, [x.clone() for x in inputs])
        torch.manual_seed(seed)
        with torch.no_grad():
            values = run_graph(spec, env, blobs, None, self._trusted_calls_only)
        graphed = [v for e, v in zip(spec["outputs"], values, strict=True) if e["kind"] == "user_output"]
        for entry, value in zip(spec["outputs"], values, strict=True):
            if entry["kind"] == "buffer_mutation":
                copies[entry["target"]] = value
        problem = _disagreement(eager, graphed, "output") or _disagreement(
            [eager_buffers[n] for n in sorted(eager_buffers)], [copies[n] for n in sorted(eager_buffers)], "buffer")
        if problem:
            raise self._mismatch(f"{self._student_name} computes something else when it runs than the graph "
                                 f"torch.export traced ({problem}): grading used neither")

    def _trusted_calls_only(self, node: dict, args: list, kwargs: dict) -> object:
        """run_graph's special: a trusted module called inside the student's graph runs as itself."""
        if node["target"] == TRUSTED_CALL:
            tensors, ident = args
            return self._call_trusted(int(ident), *tensors)
        return NotImplemented

    def _recognise_layers(self, spec: dict, blobs: list[bytes]) -> dict[str, nn.Module]:
        """Give each conv, linear, BatchNorm and pooling node a layer module, at the student's path for it."""
        tensors = {e["name"]: (e["kind"], e["target"]) for e in spec["placeholders"] if e["kind"] != "input"}
        layers: dict[str, nn.Module] = {}
        for node in spec["nodes"]:
            if node["target"] not in _LAYER_TARGETS:
                continue
            args = [a if _is_ref(a) or isinstance(a, list) and any(map(_is_ref, a)) else decode_arg(a, {}, blobs, None)
                    for a in node["args"]]
            layer = self._layer_for(node, args, tensors)
            if layer is not None:
                layers[node["name"]] = layer
        return layers

    def _layer_for(self, node: dict, args: list, tensors: dict[str, tuple[str, str]]) -> nn.Module | None:
        """The layer module a node runs as, made (or found) at the path of the tensors it reads."""
        target = node["target"]
        if target in (*CONVS, "aten::linear.default", "aten::batch_norm.default"):
            names = {"aten::batch_norm.default": (1, 2, 3, 4)}.get(target, (1, 2))
            slots = [_tensor_name(args, i, tensors) for i in names]
            owner = _common_owner([s for s in slots if s is not None])
            expected = {1: "weight", 2: "bias", 3: "running_mean", 4: "running_var"}
            if owner is None or any(s is not None and s != f"{owner}.{expected[i]}".lstrip(".")
                                    for i, s in zip(names, slots, strict=True)) or not owner:
                return None
            return self._layer_at(owner, target, lambda: _new_layer(self, node, owner, args))
        if target in _POOLS:
            path = node.get("module") or ""
            if not path or path in {p for p, _ in self._layers} or self._has_tensors(path):
                path = f"pool_{len(self._layers)}" if not path else f"{path}_pool"
            return self._layer_at(path, target, lambda: _POOLS[target](args[1:]))
        return None

    def _has_tensors(self, path: str) -> bool:
        try:
            module = self.get_submodule(path)
        except AttributeError:
            return False
        return bool(module._parameters or module._buffers)

    def _layer_at(self, path: str, kind: str, make: Callable[[], nn.Module]) -> nn.Module:
        """One layer module per path and kind: graphs of other input shapes reuse the same one."""
        if (path, kind) not in self._layers:
            layer = make().train(self.training)  # a layer found after .eval() is in eval mode too
            self._place(path, layer)
            self._layers[(path, kind)] = layer
        return self._layers[(path, kind)]


def _is_ref(value: object) -> bool:
    return isinstance(value, dict) and "node" in value


def _tensor_name(args: list, index: int, tensors: dict[str, tuple[str, str]]) -> str | None:
    """The student's name of the parameter or buffer in argument `index`, when it is one."""
    if index >= len(args) or not _is_ref(args[index]):
        return None
    found = tensors.get(args[index]["node"])
    return found[1] if found and found[0] in ("parameter", "buffer") else None


def _common_owner(names: list[str]) -> str | None:
    """"conv1" for ["conv1.weight", "conv1.bias"]; None when the tensors live in different modules."""
    owners = {name.rpartition(".")[0] for name in names}
    return owners.pop() if len(owners) == 1 else None


def _new_layer(module: StudentModule, node: dict, owner: str, args: list) -> nn.Module:
    """A layer of the right kind and size around the student's own tensors (no new parameters are made)."""
    holder, target = module.get_submodule(owner), node["target"]
    weight, bias = holder._parameters.get("weight"), holder._parameters.get("bias")
    meta = torch.device("meta")
    if target in CONVS:
        stride, padding, dilation, groups = _conv_config(args)
        layer = _Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride, padding,
                        dilation, groups, bias=bias is not None, device=meta)
    elif target == "aten::linear.default":
        layer = _Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=meta)
    else:
        running = holder._buffers.get("running_mean")
        features = (weight if weight is not None else running).shape[0]
        rank = len((node.get("meta") or {}).get("shape", [0, 0, 0, 0]))
        cls = _BatchNorm2d if rank == 4 else _BatchNorm1d
        layer = cls(features, affine=weight is not None, track_running_stats=running is not None, device=meta)
    for name in list(layer._parameters):
        layer._parameters[name] = holder._parameters.get(name)
    for name in list(layer._buffers):
        layer._buffers[name] = holder._buffers.get(name)
    return layer


def _conv_config(args: list) -> tuple[list[int], object, list[int], int]:
    """conv2d's stride, padding, dilation and groups, with the schema's defaults for those export left out."""
    defaults = [[1, 1], [0, 0], [1, 1], 1]
    stride, padding, dilation, groups = [args[3 + i] if 3 + i < len(args) else d for i, d in enumerate(defaults)]
    return stride, padding, dilation, int(groups)


def _call_layer(layer: nn.Module, target: str, args: list, kwargs: dict) -> Tensor:
    """Call a recognised layer with the node's input and configuration, so its hooks see the call."""
    if target in CONVS:
        return layer(args[0], *_conv_config(args))  # the bias (args[2]) is the layer's own
    if target == "aten::linear.default":
        return layer(args[0])
    if target == "aten::batch_norm.default":
        x = args[0]
        _, _, _, _, _, _, momentum, eps, _ = list(args) + [None] * (9 - len(args))
        if x.dim() != 4 and isinstance(layer, nn.BatchNorm2d) or x.dim() == 4 and isinstance(layer, nn.BatchNorm1d):
            raise RuntimeError(f"expected a batch of {'4' if isinstance(layer, nn.BatchNorm2d) else '2 or 3'}-D "
                               f"inputs for this BatchNorm, got {x.dim()}-D")
        return layer(x, momentum, 1e-5 if eps is None else eps)
    return layer(args[0], *args[1:])


def _random_like(shape: tuple[int, ...], dtype: str, device: str, layout: str,
                 generator: torch.Generator) -> Tensor:
    """A standard-normal input of a floating-point signature."""
    value = torch.randn(shape, generator=generator).to(DTYPES[dtype])
    value = value.to("cuda" if device == "cuda" and torch.cuda.is_available() else "cpu")
    return value.to(memory_format=torch.channels_last) if layout == "channels_last" else value


def _random_weight(current: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """A random, non-degenerate value for a weight: a He-scaled matrix or kernel, a vector around 0 (parameters);
    positive statistics (buffers); integer tensors (a batch count) as they are."""
    if not current.is_floating_point():
        return current.detach().clone()
    if kind == "buffer":
        value = 0.5 + torch.rand(current.shape, generator=generator)
    elif current.dim() >= 2:
        value = torch.randn(current.shape, generator=generator) * (2 / max(1, current[0].numel())) ** 0.5
    else:
        value = 0.5 * torch.randn(current.shape, generator=generator)
    return value.to(device=current.device, dtype=current.dtype)


def _disagreement(eager: list[Tensor], graphed: list[object], what: str) -> str:
    """How two lists of results differ ('' when they agree within float tolerance)."""
    if len(eager) != len(graphed):
        return f"{len(eager)} {what}s against {len(graphed)}"
    for index, (a, b) in enumerate(zip(eager, graphed, strict=True)):
        if not isinstance(b, Tensor) or tuple(a.shape) != tuple(b.shape):
            return f"{what} {index} has shape {tuple(a.shape)} against {getattr(b, 'shape', type(b).__name__)}"
        tolerance = 1e-3 if a.device.type == "cuda" else 1e-4
        if not torch.allclose(a.to(b.device, b.dtype), b.detach(), rtol=tolerance, atol=tolerance, equal_nan=True):
            gap = (a.to(b.device, b.dtype) - b.detach()).abs().max().item()
            return f"{what} {index} differs by up to {gap:.3g}"
    return ""


def _signature(x: Tensor) -> tuple[tuple[int, ...], str, str, str]:
    """What an exported graph is specialised to: shape, dtype, device type and memory layout."""
    layout = "channels_last" if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else "contiguous"
    return tuple(int(n) for n in x.shape), str(x.dtype).removeprefix("torch."), x.device.type, layout
