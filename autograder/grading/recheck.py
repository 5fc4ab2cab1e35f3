"""Re-check a submission in a fresh process that imports the checks itself, and report any tampering it saw.

Plain nbgrader runs the student's cells and the tests in one kernel, so a solution cell can make wrong code pass:
replace `torch.allclose`, redefine a check function, swallow the tests' exceptions. This harness (run isolated,
with the job on stdin) imports torch, numpy and the course package first and keeps its own references to them. It
then runs the released notebook's ordinary cells, the student's answer cells and the instructor's test cells, in
order. After every cell it compares the watched modules with its references: whatever a student's cell replaced is
put back and reported. Test cells run under the harness's own try/except, so their verdict is the harness's.

The result is one line on stdout: the job's nonce followed by JSON {grade_id: error or null, "tampering": [...]}.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pkgutil
import sys
import traceback
import types

WATCHED_PACKAGES = ("torch", "torch.nn", "torch.nn.functional", "numpy", "residual_course")
GUARDED_ORIGINS = ("residual_course", "torch", "numpy", "matplotlib", "builtins")


def _watched_modules() -> dict[str, types.ModuleType]:
    """builtins, torch and numpy's main modules, and every module of the course package."""
    modules = {"builtins": builtins}
    for name in WATCHED_PACKAGES:
        modules[name] = importlib.import_module(name)
    package = modules["residual_course"]
    for info in pkgutil.walk_packages(package.__path__, prefix="residual_course."):
        modules[info.name] = importlib.import_module(info.name)
    return modules


class Watch:
    """Reference copies of what must not change, and a way to find and undo changes."""

    def __init__(self, shell: object) -> None:
        import torch

        self.shell = shell
        self.modules = _watched_modules()
        self.namespaces = {name: dict(vars(module)) for name, module in self.modules.items()}
        classes = {"torch.Tensor": torch.Tensor, "torch._C.TensorBase": torch._C.TensorBase,
                   "torch.nn.Module": torch.nn.Module, "BaseException": BaseException, "AssertionError": AssertionError}
        self.classes = {name: (cls, dict(vars(cls))) for name, cls in classes.items()}
        self.environment = dict(os.environ)
        self.hooks = {"sys.excepthook": sys.excepthook, "shell.custom_exceptions": shell.custom_exceptions}
        self.sys_modules = {name: sys.modules[name] for name in self.modules}

    def undo_changes(self) -> list[str]:
        """Put back every replaced or deleted attribute, hook and environment variable; name each one."""
        changes = []
        for name, module in self.modules.items():
            if sys.modules.get(name) is not self.sys_modules[name]:
                changes.append(f"sys.modules['{name}'] was replaced")
                sys.modules[name] = self.sys_modules[name]
            current = vars(module)
            for attribute, original in self.namespaces[name].items():
                if current.get(attribute, _MISSING) is not original:
                    changes.append(f"{name}.{attribute} was replaced")
                    setattr(module, attribute, original)
        for qualified, (cls, original_dict) in self.classes.items():
            for attribute, original in original_dict.items():
                if vars(cls).get(attribute, _MISSING) is not original:
                    changes.append(f"{qualified}.{attribute} was replaced")
                    setattr(cls, attribute, original)
            for attribute in set(vars(cls)) - set(original_dict):  # an override of an inherited method
                changes.append(f"{qualified}.{attribute} was replaced")
                delattr(cls, attribute)
        if sys.excepthook is not self.hooks["sys.excepthook"]:
            changes.append("sys.excepthook was replaced")
            sys.excepthook = self.hooks["sys.excepthook"]
        if self.shell.custom_exceptions != self.hooks["shell.custom_exceptions"]:
            changes.append("IPython's exception handler was replaced (set_custom_exc)")
            self.shell.set_custom_exc((), None)
        if dict(os.environ) != self.environment:
            changes.append("environment variables were changed")
            os.environ.clear()
            os.environ.update(self.environment)
        return changes


_MISSING = object()


def _guarded(value: object) -> bool:
    """Names bound to the course's or the libraries' functions, classes and modules must keep their binding."""
    if isinstance(value, types.ModuleType):
        return value.__name__.split(".")[0] in GUARDED_ORIGINS
    origin = getattr(value, "__module__", None)
    return callable(value) and isinstance(origin, str) and origin.split(".")[0] in GUARDED_ORIGINS


def run(job: dict) -> dict:
    """Run the cells of the job in order; return each test cell's error (None when it passed) and the tampering."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    watch = Watch(shell)
    guarded: dict[str, object] = {}
    verdicts: dict[str, str | None] = {}
    tampering: list[str] = []
    for cell in job["cells"]:
        kind, gid, source = cell["kind"], cell.get("grade_id"), cell["source"]
        if kind == "test":
            for name, value in guarded.items():
                shell.user_ns[name] = value
            verdicts[gid] = _run_test(shell, gid, source)
        else:
            shell.run_cell(source, silent=True, store_history=False)
        where = f"cell '{gid}'" if gid else "an ordinary cell"
        tampering += [f"{change} ({where})" for change in watch.undo_changes()]
        if kind == "code":
            guarded.update({name: value for name, value in shell.user_ns.items()
                            if not name.startswith("_") and _guarded(value)})
        elif kind == "solution":
            for name, value in guarded.items():
                if shell.user_ns.get(name, _MISSING) is not value:
                    tampering.append(f"`{name}` from the lesson was redefined ({where})")
                    shell.user_ns[name] = value
    return {"verdicts": verdicts, "tampering": tampering}


def _run_test(shell: object, gid: str, source: str) -> str | None:
    """Execute one test cell under the harness's own try/except: its verdict cannot be intercepted by the shell."""
    try:
        code = compile(shell.transform_cell(source), f"<test cell {gid}>", "exec")
        exec(code, shell.user_ns)  # noqa: S102 (the instructor's test cell, run on purpose)
    except BaseException as error:  # noqa: BLE001 (every failure of a test cell is a verdict, SystemExit included)
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return last or type(error).__name__
    return None


def main() -> None:
    """Read the job from stdin, run it, print the nonce and the result as the last line."""
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    with open(os.devnull, "w") as nowhere:  # what the cells print is not the verdict: a flood must not hide it
        sys.stdout = sys.stderr = nowhere
        try:
            result = run(job)
        finally:  # a failure of the harness itself still shows its traceback
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os.write(1, f"\n{nonce}{json.dumps(result)}\n".encode())
    os._exit(0)  # nothing a cell left running (a thread, an atexit hook) writes after the verdict


if __name__ == "__main__":
    main()
