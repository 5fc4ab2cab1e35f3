"""The student's side of the trusted decision: it runs the student's cells, then answers the trusted side with data.

`python -m autograder.grading.decision.student_side READ_FD WRITE_FD` runs inside its own sandbox (jail/) under the
trusted side's direction (protocol.py). The first request carries the released notebook's ordinary cells and the
student's answer cells; it runs them, then hands over what each answer cell defined: plain values as data, and
functions, classes and modules as references. Every later request is one of: call this reference with these
arguments, read this attribute, export this module for inputs like these (graphs.export_graph), or run it eagerly
on these inputs and weights (so the trusted side can show that the graph it grades is what the module computes).
Whatever the student's code does in here, what leaves the process is data, which the trusted side checks against
its own computation.

Objects of the trusted side that it passes in (a model to measure, a block factory, an optimiser) arrive as
look-alikes: torch.nn modules rebuilt layer by layer from their description, with copies of their tensors, whose
forward pass runs the trusted side's exported graph; an optimiser of the same class over those copies; a callable
that asks the trusted side to run the real one. After each call, the tensors and optimiser state the student's code
changed go back with the reply. When a student's module that contains one of them is exported, the look-alike
appears in the graph as one opaque call (course::trusted), which the trusted side runs as the real object.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from autograder.grading.decision import bridge, protocol, wire
from autograder.grading.decision.graphs import (
    ExportFailed,
    FunctionModule,
    export_graph,
    module_tensor,
    placeholder_values,
    quiet_export,
    run_graph,
    user_outputs,
)
from autograder.grading.decision.protocol import Kind, Side
from residual_course.checks.subjects import class_origin


@torch.library.custom_op("course::trusted", mutates_args=())
def trusted_call(inputs: list[Tensor], ident: int) -> Tensor:
    """Placeholder op for a trusted module inside an exported student module; only its fake version runs."""
    raise RuntimeError("course::trusted runs only on the trusted side")


@trusted_call.register_fake
def _trusted_call_shape(inputs: list[Tensor], ident: int) -> Tensor:
    """The output's shape and dtype, from the trusted side's graph of that module for such inputs."""
    meta = SESSION.trusted_output_meta(ident, inputs)
    return inputs[0].new_empty(meta["shape"], dtype=wire.DTYPES[meta["dtype"]])


class StudentSide:
    """The student's objects by reference id, the trusted side's look-alikes by theirs, and the request handlers."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.objects: dict[int, object] = {}  # reference id -> a student object handed out
        self.trusted: dict[int, object] = {}  # trusted id -> local look-alike (modules, tensors, optimisers...)
        self.trusted_ids: dict[int, int] = {}  # id(local look-alike) -> trusted id
        self.codec = bridge.Codec(self._to_ref, self._from_ref)
        self.endpoint = bridge.Endpoint(read_fd, write_fd, self._handle)
        self.answers: dict[str, dict[str, object]] = {}  # grade id -> what the student's answer cell defined
        self.touched: list[int] = []  # trusted objects passed into the current call

    # ------------------------------------------------------------ references

    def _to_ref(self, value: object, blobs: list[bytes]) -> dict:
        """A student object stays here; the trusted side gets its id, kind and, for a module, its tensors."""
        if id(value) in self.trusted_ids:
            return {"ref": self.trusted_ids[id(value)], "side": Side.TRUSTED}
        ref = len(self.objects) + 1
        self.objects[ref] = value
        if isinstance(value, nn.Module):
            classes, relabelled = self._classes(value)
            return protocol.as_dict(protocol.StudentRef(ref, Kind.MODULE, type(value).__name__[:100],
                                                        training=bool(value.training),
                                                        state=self._describe(value, blobs), classes=classes,
                                                        relabelled=relabelled))
        kind = Kind.CALLABLE if callable(value) else Kind.OBJECT
        return protocol.as_dict(protocol.StudentRef(ref, kind, str(getattr(value, "__name__", type(value).__name__))))

    def _classes(self, module: nn.Module) -> tuple[list[str], list[str]]:
        """Where each class inside the student's module, and each class it derives from, comes from (read from its
        code: the checks refuse ready-made blocks), and the classes whose `__module__` claims another origin."""
        origins, relabelled, lent = set(), set(), []
        for path, sub in nn.Module.named_modules(module):  # torch's own methods: an override must not decide
            if id(sub) in self.trusted_ids:
                lent.append(path)
            elif not any(path.startswith(f"{p}.") for p in lent):
                for cls in type(sub).__mro__[:20]:
                    origin, claim = class_origin(cls)
                    origins.add(origin[:200])
                    if claim:
                        relabelled.add(f"{origin} calls itself {claim}"[:300])
        keep = sorted(name for name in origins if not name.startswith(("torch.", "builtins.")))
        return keep[:200], sorted(relabelled)[:20]

    def _describe(self, module: nn.Module, blobs: list[bytes]) -> list[dict]:
        """The module's tensors in state_dict order (trusted look-alikes by id, placed whole)."""
        whole = {}
        for path, sub in nn.Module.named_modules(module):  # torch's own methods: an override must not decide
            if path and id(sub) in self.trusted_ids and not any(path.startswith(f"{p}.") for p in whole):
                whole[path] = self.trusted_ids[id(sub)]
        parameters = {id(p) for _, p in nn.Module.named_parameters(module, remove_duplicate=False)}
        entries, placed = [], set()
        for name, tensor in nn.Module.state_dict(module, keep_vars=True).items():
            owner = next((p for p in whole if name.startswith(f"{p}.")), None)
            if owner is not None:
                if owner not in placed:
                    entries.append(protocol.StateEntry(owner, "module", trusted=whole[owner]))
                    placed.add(owner)
                continue
            kind = "parameter" if id(tensor) in parameters else "buffer"
            requires_grad = bool(getattr(tensor, "requires_grad", False))
            if id(tensor) in self.trusted_ids:
                entries.append(protocol.StateEntry(name, kind, requires_grad, trusted=self.trusted_ids[id(tensor)]))
            else:
                entries.append(protocol.StateEntry(name, kind, requires_grad,
                                                   value=wire.tensor_to_wire(tensor.detach(), blobs)))
        entries += [protocol.StateEntry(p, "module", trusted=m) for p, m in whole.items() if p not in placed]
        return [protocol.as_dict(entry) for entry in entries]

    def _from_ref(self, spec: dict, blobs: list[bytes]) -> object:
        """A reference from the trusted side: one of our own objects back, or a look-alike of one of theirs."""
        if spec.get("side") == Side.STUDENT:
            value = self.objects[int(spec["ref"])]
            if isinstance(value, nn.Module) and "state" in spec:
                self._take_back(value, spec, blobs)
            return value
        lent = protocol.record(protocol.TrustedRef, spec)
        if lent.kind == Kind.MODULE:
            value = self._module(protocol.record(protocol.ModuleDescription, lent.module), blobs)
        elif lent.kind == Kind.OPTIMIZER:
            value = self._optimizer(lent, blobs)
        elif lent.kind == Kind.CALLABLE:
            value = self.trusted.get(lent.ref) or TrustedCallable(self, lent.ref, lent.name, lent.attrs)
            self._remember(lent.ref, value)
        else:
            value = self.trusted.get(lent.ref) or TrustedObject(lent.name)
            self._remember(lent.ref, value)
        self.touched.append(lent.ref)
        return value

    @staticmethod
    def _take_back(module: nn.Module, spec: dict, blobs: list[bytes]) -> None:
        """Our module, back from the trusted side: its tensors and mode as grading left them (a forward pass in
        train mode moved its running statistics; a check put it in eval mode)."""
        tensors = {**dict(nn.Module.named_parameters(module, remove_duplicate=False)),
                   **dict(nn.Module.named_buffers(module, remove_duplicate=False))}
        with torch.no_grad():
            for name, value in dict(spec["state"]).items():
                if name in tensors:
                    tensors[name].copy_(wire.tensor_from_wire(value, blobs))
        module.train(bool(spec.get("training", module.training)))

    def _remember(self, ident: int, value: object) -> None:
        self.trusted[ident] = value
        self.trusted_ids[id(value)] = ident

    def _module(self, description: protocol.ModuleDescription, blobs: list[bytes]) -> nn.Module:
        """A local look-alike of a trusted module (reused, with fresh tensors, when it was sent before)."""
        module = self.trusted.get(description.id)
        if module is None:
            module = _build(description)
            module.forward = _OpaqueForward(module, description.id)
            self._remember(description.id, module)
        module.training = description.training
        for name, tensor_id, value, requires_grad, grad in description.params:
            parameter = self.trusted.get(tensor_id)
            if parameter is None:
                parameter = nn.Parameter(wire.tensor_from_wire(value, blobs).detach(), requires_grad=requires_grad)
                self._remember(tensor_id, parameter)
            else:
                with torch.no_grad():
                    parameter.data = wire.tensor_from_wire(value, blobs).detach()
            parameter.grad = None if grad is None else wire.tensor_from_wire(grad, blobs).detach()
            module._parameters[name] = parameter
        for name, tensor_id, value, persistent in description.buffers:
            buffer = wire.tensor_from_wire(value, blobs).detach()
            old = self.trusted.get(tensor_id)
            if old is not None:
                old.data = buffer
                buffer = old
            else:
                self._remember(tensor_id, buffer)
            module.register_buffer(name, buffer, persistent=persistent)
        for name, child in description.children:
            module._modules[name] = self._module(protocol.record(protocol.ModuleDescription, child), blobs)
        return module

    def _optimizer(self, lent: protocol.TrustedRef, blobs: list[bytes]) -> torch.optim.Optimizer:
        """An optimiser of the same class and settings over the look-alikes' parameters, with the same state."""
        if lent.name not in protocol.OPTIMIZERS:
            raise TypeError(f"optimiser {lent.name!r} cannot be sent to the student's side")
        groups = [{**{k: self.codec.decode(v, blobs) for k, v in group.items() if k != "params"},
                   "params": [self.trusted[int(p)] for p in group["params"]]} for group in lent.groups]
        optimizer = self.trusted.get(lent.ref)
        if optimizer is None:
            optimizer = getattr(torch.optim, lent.name)(groups)
            self._remember(lent.ref, optimizer)
        else:
            for group, fresh in zip(optimizer.param_groups, groups, strict=True):
                group.update(fresh)
        optimizer.state.clear()
        for tensor_id, values in lent.state:
            optimizer.state[self.trusted[int(tensor_id)]] = {k: self.codec.decode(v, blobs) for k, v in values.items()}
        return optimizer

    # ------------------------------------------------------------ requests

    def _handle(self, message: protocol.Request, blobs: list[bytes]) -> tuple[protocol.Reply, list[bytes]]:
        """One request of the trusted side."""
        out: list[bytes] = []
        if isinstance(message, protocol.RunCells):
            return self._run(message.cells), []
        if isinstance(message, protocol.Call):
            return self._call(message, blobs)
        if isinstance(message, protocol.GetValue):
            return protocol.Value(self.codec.encode(self.answers[message.cell][message.name], out)), out
        if isinstance(message, protocol.GetAttribute):
            value = getattr(self.objects[message.target], message.name)
            return protocol.Value(self.codec.encode(value, out)), out
        if isinstance(message, protocol.Export):
            return self._export(message)
        if isinstance(message, protocol.Verify):
            return self._run_eagerly(message, blobs)
        raise wire.WireError(f"the student's side does not answer {message.op!r}")

    def _run(self, cells: list[dict]) -> protocol.Ran:
        """Run the ordinary cells and the answers in order; keep what each answer cell bound to its names; say
        whether the student's code changed this side's own code while it ran."""
        from IPython.core.interactiveshell import InteractiveShell

        changed = _watch_own_code(self)  # taken before any student code runs, kept only in this frame
        shell = InteractiveShell.instance()
        bound, errors = {}, {}
        for cell in cells:
            before = {name: id(value) for name, value in shell.user_ns.items()}
            with _silenced():
                result = shell.run_cell(cell["source"], silent=True, store_history=False)
            if cell["kind"] != "solution":
                continue
            gid = cell["grade_id"]
            if not result.success:
                error = result.error_in_exec or result.error_before_exec
                errors[gid] = f"{type(error).__name__}: {str(error)[:300]}"
            # only what this cell (re)defined: a name the lesson set before the exercise is no answer
            self.answers[gid] = {name: shell.user_ns[name] for name in cell["names"]
                                 if name in shell.user_ns and before.get(name) != id(shell.user_ns[name])}
            bound[gid] = list(self.answers[gid])
        return protocol.Ran(bound, errors, changed())

    def _call(self, message: protocol.Call, blobs: list[bytes]) -> tuple[protocol.Value, list[bytes]]:
        """Call a student object with decoded arguments; send back the result and the state the call changed."""
        self.touched = []
        target = self.objects[message.target]
        args = self.codec.decode(message.args, blobs)
        kwargs = self.codec.decode(message.kwargs, blobs)
        if message.rng:  # the trusted side's generator as it stands: a seeded check builds the same weights
            bridge.set_rng_state(message.rng)
        value = target(*args, **kwargs)
        out: list[bytes] = []
        return protocol.Value(self.codec.encode(value, out), self._sync(out)), out

    def _sync(self, blobs: list[bytes]) -> dict:
        """The tensors, gradients, modes and optimiser state of the trusted look-alikes this call was given."""
        tensors, grads, modes, optimizers = [], [], [], []
        for ident in dict.fromkeys(self.touched):
            value = self.trusted.get(ident)
            if isinstance(value, nn.Module):
                for sub in value.modules():
                    sub_id = self.trusted_ids.get(id(sub))
                    if sub_id is not None:
                        modes.append([sub_id, bool(sub.training)])
                    for tensor in [*sub._parameters.values(), *sub._buffers.values()]:
                        tid = self.trusted_ids.get(id(tensor)) if tensor is not None else None
                        if tid is None:
                            continue
                        tensors.append([tid, wire.tensor_to_wire(tensor.detach(), blobs)])
                        if isinstance(tensor, nn.Parameter):
                            grad = None if tensor.grad is None else wire.tensor_to_wire(tensor.grad, blobs)
                            grads.append([tid, grad])
            elif isinstance(value, torch.optim.Optimizer):
                state = [[self.trusted_ids[id(p)], {k: self.codec.encode(v, blobs) for k, v in s.items()}]
                         for p, s in value.state.items() if id(p) in self.trusted_ids]
                optimizers.append([ident, state])
        return {"tensors": tensors, "grads": grads, "modes": modes, "optimizers": optimizers}

    def _subject(self, target: int, function: bool) -> nn.Module:
        """The student's module, or a student's function of tensors as a module."""
        subject = self.objects[target]
        if function:
            return FunctionModule(subject)
        if not isinstance(subject, nn.Module):
            raise TypeError("only modules and functions can be exported")
        return subject

    def _export(self, message: protocol.Export) -> tuple[protocol.Reply, list[bytes]]:
        """torch.export a student module on example inputs of the asked shapes, in the asked mode and device."""
        module = self._subject(message.target, message.function)
        inputs = tuple(_example(spec) for spec in message.inputs)
        device = inputs[0].device if inputs else torch.device("cpu")
        module.to(device)
        module.train(message.training)
        blobs: list[bytes] = []
        try:
            with quiet_export(), _silenced():
                spec = export_graph(module, inputs, blobs)
        except ExportFailed as error:
            with torch.no_grad(), _silenced():
                module(*inputs)  # the module's own error on such inputs (a wrong shape...) is the answer, if any
            return protocol.ExportFailed(str(error)), []
        return protocol.Graph(spec), blobs

    def _run_eagerly(self, message: protocol.Verify, blobs: list[bytes]) -> tuple[protocol.Outputs, list[bytes]]:
        """Run the module itself (not its graph) with the trusted side's inputs and weights; then put its own weights
        and mode back, so that nothing the trusted side does later sees them changed."""
        module = self._subject(message.target, message.function)
        inputs = [wire.tensor_from_wire(spec, blobs).detach() for spec in message.inputs]
        tensors = {**dict(nn.Module.named_parameters(module, remove_duplicate=False)),
                   **dict(nn.Module.named_buffers(module, remove_duplicate=False))}
        unknown = [name for name in message.state if name not in tensors]
        if unknown:
            raise KeyError(f"the module has no tensor {unknown[0]!r}, which its graph reads")
        saved = {name: tensors[name].detach().clone() for name in message.state}
        was_training = module.training
        out: list[bytes] = []
        try:
            with torch.no_grad():
                for name, spec in message.state.items():
                    tensors[name].copy_(wire.tensor_from_wire(spec, blobs))
            module.train(message.training)
            torch.manual_seed(message.seed)
            with torch.no_grad(), _silenced():
                result = module(*inputs)
            outputs = list(result) if isinstance(result, (tuple, list)) else [result]
            if not all(isinstance(value, Tensor) for value in outputs):
                raise TypeError("the module returned something other than tensors")
            reply = protocol.Outputs([wire.tensor_to_wire(value.detach(), out) for value in outputs],
                                     {name: wire.tensor_to_wire(tensors[name].detach(), out) for name in message.state
                                      if not isinstance(tensors[name], nn.Parameter)})
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    tensors[name].copy_(value)
            module.train(was_training)
        return reply, out

    # ------------------------------------------------------------ asking the trusted side

    def trusted_graph(self, ident: int, inputs: list[Tensor], training: bool) -> tuple[dict, list[bytes]]:
        """The trusted side's graph of one of its modules or functions, for inputs like these."""
        specs = [[list(x.shape), str(x.dtype).removeprefix("torch."), x.device.type] for x in inputs]
        reply, blobs = self.endpoint.request(protocol.TrustedGraph(ident, specs, training), [], protocol.Graph)
        return reply.graph, blobs

    def trusted_output_meta(self, ident: int, inputs: list[Tensor]) -> dict:
        module = self.trusted[ident]
        spec, _ = self.trusted_graph(ident, inputs, bool(getattr(module, "training", False)))
        if len(spec["output_meta"]) != 1 or spec["output_meta"][0] is None:
            raise TypeError("a module of the trusted side must return one tensor here")
        return spec["output_meta"][0]

    def run_trusted(self, ident: int, module: nn.Module | None, inputs: tuple[Tensor, ...]) -> Tensor:
        """Compute a trusted module or function here, on local tensors, by its graph (gradients flow)."""
        spec, blobs = self.trusted_graph(ident, list(inputs), bool(getattr(module, "training", False)))
        constants = {e["name"]: wire.tensor_from_wire(e["value"], blobs) for e in spec["placeholders"]
                     if e["kind"] == "constant"}
        env = placeholder_values(spec, module_tensor(module), constants, inputs)
        outputs = user_outputs(spec, run_graph(spec, env, blobs, None))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class TrustedCallable:
    """A function, class or factory of the trusted side, as the student's code sees it."""

    def __init__(self, side: StudentSide, ident: int, name: str, attrs: dict) -> None:
        self._side, self._ident, self.__name__ = side, ident, name
        for key, value in attrs.items():
            setattr(self, key, value)

    def __call__(self, *args: object, **kwargs: object) -> object:
        """With tensors: computed here by its graph, so gradients flow; otherwise run by the trusted side."""
        if args and all(isinstance(a, Tensor) for a in args) and not kwargs:
            return self._side.run_trusted(self._ident, None, args)
        blobs: list[bytes] = []
        message = protocol.CallTrusted(self._ident, self._side.codec.encode(list(args), blobs),
                                       self._side.codec.encode(kwargs, blobs))
        reply, reply_blobs = self._side.endpoint.request(message, blobs, protocol.Value)
        return self._side.codec.decode(reply.value, reply_blobs)

    def __repr__(self) -> str:
        return f"<{self.__name__} (grading)>"


class TrustedObject:
    """Any other trusted object: it can only be handed back."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name} (grading)>"


class _TrustedLayer(nn.Module):
    """A trusted module of a class of its own (not torch.nn's): its forward pass is the trusted side's graph."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._display_name = name

    def _get_name(self) -> str:
        return self._display_name


def _build(description: protocol.ModuleDescription) -> nn.Module:
    """An empty module of the described class: torch.nn's own layers by name, a _TrustedLayer otherwise."""
    if description.standard and description.name in bridge.STANDARD_MODULES:
        with torch.device("meta"):
            return getattr(nn, description.name)(**description.init)
    return _TrustedLayer(description.name)


class _OpaqueForward:
    """A lent module's forward: native (or the trusted side's graph), except inside torch.export, where it is one
    course::trusted call. A deep copy of a lent torch.nn layer is the student's own: its forward is its native one."""

    def __init__(self, module: nn.Module, ident: int) -> None:
        self.module, self.ident = module, ident

    def __call__(self, *inputs: Tensor) -> Tensor:
        if torch.compiler.is_exporting():
            return torch.ops.course.trusted(list(inputs), self.ident)
        if isinstance(self.module, _TrustedLayer):
            return SESSION.run_trusted(self.ident, self.module, inputs)
        return type(self.module).forward(self.module, *inputs)

    def __deepcopy__(self, memo: dict) -> object:
        copy = memo.get(id(self.module))  # copy.deepcopy registers the module's copy before copying its attributes
        if copy is None or isinstance(self.module, _TrustedLayer):
            return self
        return type(copy).forward.__get__(copy)


def _watch_own_code(side: StudentSide) -> Callable[[], list[str]]:
    """A snapshot of the code this process answers with (this side's methods and the functions it calls: export,
    the wire, torch.export), and a function that names whatever differs from it later: student code that rewrote
    them could answer with another module's graph. (Code that knows to rewrite this check first is beyond it: the
    README's "What grading guarantees" says what then still stands.)"""
    from autograder.grading.decision import graphs

    holders = {"StudentSide": (StudentSide, [n for n, v in vars(StudentSide).items() if callable(v)]),
               "student_side": (sys.modules[__name__], ["_example", "_silenced", "trusted_call", "_watch_own_code"]),
               "graphs": (graphs, ["export_graph", "_spec", "_nodes", "_arg"]),
               "wire": (wire, ["send", "receive", "tensor_to_wire", "tensor_from_wire"]),
               "bridge": (bridge, ["Endpoint", "Codec"]), "torch.export": (torch.export, ["export"]),
               "torch.compiler": (torch.compiler, ["is_exporting"]),
               "nn.Module": (nn.Module, ["__call__", "_call_impl", "train", "named_parameters", "named_buffers",
                                         "state_dict"])}
    watched = [(f"{label}.{name}", holder, name, getattr(holder, name)) for label, (holder, names) in holders.items()
               for name in names]
    codes = {label: getattr(value, "__code__", None) for label, _, _, value in watched}
    methods = set(vars(StudentSide))

    def changed() -> list[str]:
        found = [label for label, holder, name, value in watched if getattr(holder, name, None) is not value
                 or getattr(value, "__code__", None) is not codes[label]]
        found += [f"StudentSide.{name}" for name in vars(side) if name in methods]  # an instance attribute shadowing
        found += [f"StudentSide.{name}" for name in set(vars(StudentSide)) - methods]
        return sorted(set(found))

    return changed


def _example(spec: list) -> Tensor:
    """A random tensor of the asked shape, dtype, device and layout (values do not matter to export)."""
    shape, dtype, device, layout = spec
    device = device if device != "cuda" or torch.cuda.is_available() else "cpu"
    tensor = torch.randn(shape, device=device).to(wire.DTYPES[dtype]) if wire.DTYPES[dtype].is_floating_point \
        else torch.zeros(shape, dtype=wire.DTYPES[dtype], device=device)
    return tensor.to(memory_format=torch.channels_last) if layout == "channels_last" else tensor


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """What the student's code prints goes nowhere: the only output of this process is on the wire."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


SESSION: StudentSide


def main() -> None:
    """Serve the trusted side on the two file descriptors given on the command line."""
    global SESSION
    read_fd, write_fd = int(sys.argv[1]), int(sys.argv[2])
    os.environ.setdefault("MPLBACKEND", "Agg")
    SESSION = StudentSide(read_fd, write_fd)
    SESSION.endpoint.serve()
    os._exit(0)


if __name__ == "__main__":
    main()
