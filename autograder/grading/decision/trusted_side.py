"""The trusted decision: the notebook's own checks and hidden tests, run in a process where no student code runs.

`python -m autograder.grading.decision.trusted_side READ_FD WRITE_FD` reads a job on stdin: the source notebook's
cells in order (ordinary cells, the students' answer cells' names, the instructor's test cells with their hidden
tests). It runs the ordinary and test cells itself, with torch, numpy and the course package of its own. Where an
answer cell stands, it binds the names that the instructor's solution defines there to what the sandboxed student
process (sandbox.py) reports: values as data, and functions, classes and modules as proxies. A proxy's call sends
its arguments to the sandbox as data and receives the result as data; a student module becomes a StudentModule
(rebuilt.py), which runs the student's exported graphs on the trusted side's own tensors. Each test cell's verdict
is its own outcome here: passed, or the error it raised.

The result is one line on stdout: the job's nonce, then JSON {"verdicts", "outputs", "export_failures",
"sandbox_error"}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from autograder.grading.decision import bridge, wire
from autograder.grading.decision.graphs import ExportFailed, export_graph, quiet_export
from autograder.grading.decision.rebuilt import StudentModule

OUTPUT_LIMIT = 20_000  # characters of a test cell's output kept for the feedback
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")


class StudentProxy:
    """Something of the student's that stays in the sandbox; the trusted side knows it by reference."""

    def __init__(self, trusted: Trusted, ref: int, name: str) -> None:
        self._trusted, self._ref, self.__name__ = trusted, ref, name

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._trusted.request({"op": "getattr", "target": self._ref, "name": name})

    def __repr__(self) -> str:
        return f"<{self.__name__} (the student's, in the sandbox)>"


class StudentCallable(StudentProxy):
    """A student's function or class: calling it sends the arguments as data and brings the result back as data.

    A function of tensors only is exported instead, like a module, and run here, so that gradients flow through
    it; if it cannot be exported it is called with the tensors as data (its result then carries no gradient).
    """

    def __call__(self, *args: object, **kwargs: object) -> object:
        if args and not kwargs and all(isinstance(a, Tensor) for a in args):
            function = self._trusted.function(self._ref, self.__name__)
            try:
                return function(*args)
            except ExportFailed:
                pass
        return self._trusted.request({"op": "call", "target": self._ref, "args": list(args), "kwargs": kwargs,
                                      "rng": bridge.rng_state()})


class Trusted:
    """The trusted process's end: the objects it lent the sandbox, and the proxies of the sandbox's objects."""

    def __init__(self, read_fd: int, write_fd: int, device: torch.device) -> None:
        self.device = device
        self.lent: dict[int, object] = {}  # trusted id -> a trusted object the sandbox holds a look-alike of
        self.lent_ids: dict[int, int] = {}  # id(object) -> trusted id
        self.codec = bridge.Codec(self._to_ref, self._from_ref)
        self.endpoint = bridge.Endpoint(read_fd, write_fd, self._handle)
        self.export_failures: list[str] = []
        self._graphs: dict[tuple, tuple[dict, list[bytes]]] = {}
        self._functions: dict[int, StudentModule] = {}

    # ------------------------------------------------------------ asking the sandbox

    def request(self, message: dict) -> object:
        """Send a request whose arguments are values; decode the reply's value, after applying its state."""
        blobs: list[bytes] = []
        encoded = {k: self.codec.encode(v, blobs) if k in ("args", "kwargs") else v for k, v in message.items()}
        reply, reply_blobs = self.endpoint.request(encoded, blobs)
        bridge.raise_if_error(reply)
        if "sync" in reply:
            self._apply(reply["sync"], reply_blobs)
        value = self.codec.decode(reply["value"], reply_blobs)
        plain = not blobs and "ref" not in json.dumps([encoded.get("args"), encoded.get("kwargs")])
        if isinstance(value, StudentModule) and message.get("op") == "call" and plain and not value.holds_lent:
            value.family = (message["target"], json.dumps([encoded["args"], encoded["kwargs"]]))
        return value

    def function(self, ref: int, name: str) -> StudentModule:
        """A student's function of tensors as a parameter-free module whose graphs are the function's."""
        if ref not in self._functions:
            module = StudentModule(name, [], [], None, self._lent_object,
                                   lambda signature, training: self._export(ref, name, signature, training, True),
                                   self._call_lent, False)
            module.family = ("function", ref)
            module._refused = lambda reason: self._refuse(name, reason)
            self._functions[ref] = module
        return self._functions[ref]

    def _refuse(self, name: str, reason: str) -> ExportFailed:
        """A graph the trusted side will not run (an operation outside the allow-list): recorded, for a person."""
        failure = f"{name} could not be graded automatically: {reason}"
        self.export_failures.append(failure)
        return ExportFailed(failure)

    def _export(self, ref: int, name: str, signature: tuple, training: bool,
                function: bool = False) -> tuple[dict, list[bytes]]:
        """The student module's graph for inputs like these (ExportFailed, recorded, when it cannot be traced)."""
        message = {"op": "export", "target": ref, "inputs": [list(s) for s in signature], "training": training,
                   "function": function}
        reply, blobs = self.endpoint.request(message, [])
        bridge.raise_if_error(reply)
        if "export_failed" in reply:
            reason = f"{name} could not be exported for grading: {reply['export_failed']}"
            if not function:  # a function that cannot be exported is called with its tensors as data instead
                self.export_failures.append(reason)
            raise ExportFailed(reason)
        return reply["graph"], blobs

    # ------------------------------------------------------------ values crossing

    def _lend(self, value: object) -> int:
        """The trusted id of an object the sandbox will hold a look-alike of."""
        if id(value) not in self.lent_ids:
            ident = len(self.lent) + 1
            self.lent[ident] = value
            self.lent_ids[id(value)] = ident
        return self.lent_ids[id(value)]

    def _to_ref(self, value: object, blobs: list[bytes]) -> dict:
        if isinstance(value, (StudentProxy, StudentModule)):
            return {"ref": value._ref, "side": "student"}
        ident = self._lend(value)
        if isinstance(value, nn.Module):
            return {"ref": ident, "side": "trusted", "kind": "module", "module": self._describe(value, blobs)}
        if isinstance(value, torch.optim.Optimizer) and type(value).__name__ in OPTIMIZERS:
            groups = [{**{k: self.codec.encode(v, blobs) for k, v in group.items() if k != "params"},
                       "params": [self._lend(p) for p in group["params"]]} for group in value.param_groups]
            state = [[self._lend(p), {k: self.codec.encode(v, blobs) for k, v in s.items()}]
                     for p, s in value.state.items()]
            return {"ref": ident, "side": "trusted", "kind": "optimizer", "class": type(value).__name__,
                    "groups": groups, "state": state}
        if callable(value):
            attrs = {k: v for k, v in vars(value).items() if not k.startswith("_")
                     and isinstance(v, (bool, int, float, str))} if hasattr(value, "__dict__") else {}
            return {"ref": ident, "side": "trusted", "kind": "callable",
                    "name": getattr(value, "__name__", type(value).__name__), "attrs": attrs}
        return {"ref": ident, "side": "trusted", "kind": "object", "name": type(value).__name__}

    def _describe(self, module: nn.Module, blobs: list[bytes]) -> dict:
        """A trusted module as the sandbox rebuilds it: class, constructor arguments, tensors with ids, children."""
        init = bridge.standard_init(module)
        params = [[name, self._lend(p), wire.tensor_to_wire(p.detach(), blobs), bool(p.requires_grad),
                   None if p.grad is None else wire.tensor_to_wire(p.grad, blobs)]
                  for name, p in module._parameters.items() if p is not None]
        buffers = [[name, self._lend(b), wire.tensor_to_wire(b, blobs), name not in module._non_persistent_buffers_set]
                   for name, b in module._buffers.items() if b is not None]
        children = [[name, self._describe(child, blobs)] for name, child in module._modules.items()
                    if child is not None]
        return {"id": self._lend(module), "class": type(module).__name__, "name": type(module).__name__,
                "standard": init is not None, "init": init or {}, "training": bool(module.training),
                "params": params, "buffers": buffers, "children": children}

    def _from_ref(self, spec: dict, blobs: list[bytes]) -> object:
        ref = int(spec["ref"])
        if spec.get("side") == "trusted":
            if ref not in self.lent:
                raise wire.WireError(f"the sandbox referred to trusted object {ref}, which was never lent")
            return self.lent[ref]
        name = str(spec.get("name", "object"))[:100]
        if spec.get("kind") == "module":
            module = StudentModule(name, spec["state"], blobs, None, self._lent_object,
                                   lambda signature, training: self._export(ref, name, signature, training),
                                   self._call_lent, bool(spec.get("training", True)))
            module._ref = ref
            classes = spec.get("classes")
            module.student_classes = tuple(str(c)[:200] for c in classes[:200]) if isinstance(classes, list) else ()
            module._refused = lambda reason: self._refuse(name, reason)
            return module
        if spec.get("kind") == "callable":
            return StudentCallable(self, ref, name)
        return StudentProxy(self, ref, name)

    def _lent_object(self, ident: int) -> object:
        if ident not in self.lent:
            raise wire.WireError(f"the sandbox referred to trusted object {ident}, which was never lent")
        return self.lent[ident]

    def _call_lent(self, ident: int, *inputs: Tensor) -> Tensor:
        """A trusted module called inside a student's graph: the real one runs, hooks and weights and all."""
        module = self._lent_object(ident)
        if not callable(module):
            raise TypeError("a student's graph called a trusted object that cannot be called")
        return module(*inputs)

    def _apply(self, sync: dict, blobs: list[bytes]) -> None:
        """Take over what a student's call did to the tensors, modes and optimisers it was lent."""
        for ident, spec in sync.get("tensors", []):
            tensor, new = self._lent_object(int(ident)), wire.tensor_from_wire(spec, blobs, None)
            if not isinstance(tensor, Tensor) or tensor.shape != new.shape:
                raise ValueError("the call changed the shape of a tensor it was given")
            with torch.no_grad():
                tensor.copy_(new)
        for ident, spec in sync.get("grads", []):
            parameter = self._lent_object(int(ident))
            grad = None if spec is None else wire.tensor_from_wire(spec, blobs, None).to(parameter.device)
            if grad is not None and grad.shape != parameter.shape:
                raise ValueError("the call left a gradient of the wrong shape")
            parameter.grad = grad
        for ident, training in sync.get("modes", []):
            module = self._lent_object(int(ident))
            if isinstance(module, nn.Module):
                module.training = bool(training)
        for ident, state in sync.get("optimizers", []):
            optimizer = self._lent_object(int(ident))
            if not isinstance(optimizer, torch.optim.Optimizer):
                continue
            optimizer.state.clear()
            for tensor_id, values in state:
                parameter = self._lent_object(int(tensor_id))
                optimizer.state[parameter] = {k: _to_device(self.codec.decode(v, blobs), parameter.device)
                                              for k, v in values.items()}

    # ------------------------------------------------------------ the sandbox asking

    def _handle(self, message: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
        """A request of the sandbox, made while it answers one of ours: run a lent object, or export it."""
        target = self._lent_object(int(message["target"]))
        out: list[bytes] = []
        if message.get("op") == "call":
            args = self.codec.decode(message.get("args", []), blobs)
            kwargs = self.codec.decode(message.get("kwargs", {"dict": {}}), blobs)
            return {"value": self.codec.encode(target(*args, **kwargs), out)}, out
        if message.get("op") == "graph":
            return self._trusted_graph(int(message["target"]), target, message)
        raise wire.WireError(f"unknown request {message.get('op')!r}")

    def _trusted_graph(self, ident: int, target: object, message: dict) -> tuple[dict, list[bytes]]:
        """The graph of a lent module or function for inputs like these (made once per shape and mode)."""
        key = (ident, json.dumps(message["inputs"]), bool(message.get("training")))
        if key not in self._graphs:
            inputs = tuple(torch.zeros(s[0], dtype=wire.DTYPES[s[1]], device=self.device if s[2] == "cuda" else "cpu")
                           for s in message["inputs"])
            module = target if isinstance(target, nn.Module) else _Function(target)
            was_training = module.training
            module.train(bool(message.get("training")))
            blobs: list[bytes] = []
            try:
                with quiet_export(), _without_hooks(module):
                    spec = export_graph(module, inputs, blobs)
            finally:
                module.train(was_training)
            self._graphs[key] = ({"graph": spec}, blobs)
        return self._graphs[key]


class _Function(nn.Module):
    """A trusted function as a module, so torch.export can trace it."""

    def __init__(self, function: object) -> None:
        super().__init__()
        self.function = function

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.function(*inputs)


@contextlib.contextmanager
def _without_hooks(module: nn.Module) -> Iterator[None]:
    """Trace a lent module without the checks' hooks on it (a hook that records or stops a forward pass)."""
    saved = [(m, m._forward_hooks, m._forward_pre_hooks) for m in module.modules()]
    for m, _, _ in saved:
        m._forward_hooks, m._forward_pre_hooks = type(m._forward_hooks)(), type(m._forward_pre_hooks)()
    try:
        yield
    finally:
        for m, hooks, pre_hooks in saved:
            m._forward_hooks, m._forward_pre_hooks = hooks, pre_hooks


def _to_device(value: object, device: torch.device) -> object:
    return value.to(device) if isinstance(value, Tensor) else value


# ---------------------------------------------------------------- the replay


def run(job: dict, trusted: Trusted) -> dict:
    """Run the notebook's trusted cells in order, binding the student's answers where their cells stand."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    verdicts: dict[str, str | None] = {}
    outputs: dict[str, str] = {}
    sandbox_cells = [c for c in job["cells"] if c["kind"] == "solution" or c["kind"] == "code" and not c.get("after")]
    trusted.endpoint.start({"op": "run", "cells": sandbox_cells}, [])
    ran: dict | None = None
    sandbox_error = ""
    for cell in job["cells"]:
        kind, gid = cell["kind"], cell.get("grade_id")
        if kind == "code" and cell.get("after"):
            continue  # a demonstration that uses the student's answer: no test cell needs it
        if kind == "code":
            with _captured():
                shell.run_cell(cell["source"], silent=True, store_history=False)
        elif kind == "solution":
            try:
                if ran is None:
                    reply, _ = trusted.endpoint.finish()
                    bridge.raise_if_error(reply)
                    ran = reply
                for name in cell["names"]:
                    shell.user_ns.pop(name, None)
                    if name in ran["bound"].get(gid, []):
                        shell.user_ns[name] = trusted.request({"op": "value", "cell": gid, "name": name})
            except wire.WireError as error:
                sandbox_error = sandbox_error or str(error)
                ran = ran or {"bound": {}, "errors": {}}
        else:
            if sandbox_error:
                verdicts[gid] = f"not decided: the student's process stopped answering ({sandbox_error})"
                continue
            verdicts[gid], outputs[gid] = _run_test(shell, gid, cell["source"])
    return {"verdicts": verdicts, "outputs": outputs, "export_failures": list(dict.fromkeys(trusted.export_failures)),
            "sandbox_error": sandbox_error}


def _run_test(shell: object, gid: str, source: str) -> tuple[str | None, str]:
    """Execute one test cell; its verdict is None when it passed, else the last line of its error."""
    sink = io.StringIO()
    verdict = None
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            code = compile(shell.transform_cell(source), f"<test cell {gid}>", "exec")
            exec(code, shell.user_ns)  # noqa: S102 (the instructor's test cell, run on purpose)
        except BaseException as error:  # noqa: BLE001 (every failure of a test cell is a verdict)
            kind = getattr(error, "remote_type", type(error).__name__)  # a student's error, by its own name
            verdict = f"{kind}: {error}" if str(error) else kind
            if not isinstance(error, AssertionError) or str(error):
                print(verdict)
    return verdict, sink.getvalue()[:OUTPUT_LIMIT]


@contextlib.contextmanager
def _captured() -> Iterator[None]:
    """Ordinary cells' output goes nowhere (the feedback shows the test cells' output only)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def main() -> None:
    """Read the job, decide, print the nonce and the result as the last line of stdout."""
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from residual_course.runtime import get_device

    trusted = Trusted(int(sys.argv[1]), int(sys.argv[2]), get_device())
    try:
        result = run(job, trusted)
    finally:
        with contextlib.suppress(OSError, wire.WireError):
            wire.send(trusted.endpoint.write_fd, {"kind": "request", "op": "done"}, [])
    os.write(1, f"\n{nonce}{json.dumps(result)}\n".encode())
    os._exit(0)


if __name__ == "__main__":
    main()
