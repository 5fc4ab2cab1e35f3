"""Answer cells that reach for the machinery a grader could be fooled with get a `review` flag (never a verdict).

The score comes from the trusted decision whatever an answer does; this only tells the instructor where to look:
frame introspection, the garbage collector, code objects, trace and profile hooks, ctypes, IPython's hooks and
transformers, tensor subclass dispatch, rewriting modules' or builtins' attributes, asking whether torch.export or
torch.compile is tracing, and reaching for the grader's own code (its modules, its objects, sys.modules). A name
spelled as a string (getattr(ip, "set_custom_exc")) is flagged like the name, and getattr, setattr or delattr with
a name computed at run time, __import__ and globals() are flagged as such.
"""

from __future__ import annotations

import ast

SUSPICIOUS_MODULES = {"gc": "the garbage collector", "ctypes": "ctypes", "inspect": "frame introspection",
                      "dis": "bytecode", "builtins": "the builtins module", "importlib": "importlib",
                      "autograder": "the grader's own code"}
SUSPICIOUS_CALLS = {"_getframe": "frame introspection", "settrace": "a trace hook", "setprofile": "a profile hook",
                    "currentframe": "frame introspection", "get_referrers": "the garbage collector",
                    "get_objects": "the garbage collector", "set_custom_exc": "IPython's exception handler",
                    "register_magic_function": "an IPython magic", "is_exporting": "torch.export's tracing flag",
                    "is_compiling": "torch.compile's tracing flag",
                    "is_dynamo_compiling": "torch.compile's tracing flag"}
SUSPICIOUS_ATTRIBUTES = {"__code__": "code-object assignment", "__torch_function__": "tensor dispatch",
                         "__torch_dispatch__": "tensor dispatch", "f_back": "frame introspection",
                         "f_globals": "frame introspection", "f_locals": "frame introspection",
                         "input_transformers_cleanup": "IPython's input transformers",
                         "input_transformers_post": "IPython's input transformers",
                         "ast_transformers": "IPython's AST transformers", "events": "IPython's event hooks",
                         "__globals__": "a function's globals", "__builtins__": "the builtins",
                         "SESSION": "the grader's own objects", "StudentSide": "the grader's own objects",
                         "trusted_call": "the grader's own objects"}


DYNAMIC = ("getattr", "setattr", "delattr")  # with a name built at run time, any attribute can be reached
SPELLED = {**SUSPICIOUS_CALLS, **{k: v for k, v in SUSPICIOUS_ATTRIBUTES.items() if k.startswith("__") or k in (
    "f_back", "f_globals", "f_locals", "input_transformers_cleanup", "input_transformers_post", "ast_transformers")}}
LIBRARY_ROOTS = frozenset({"torch", "nn", "F", "np", "numpy", "rc", "residual_course", "builtins", "sys", "os",
                           "IPython"})


def review_reasons(sources: dict[str, str]) -> list[str]:
    """One reason per answer cell (by grade id) and construct found in it, in cell order."""
    reasons = []
    for gid, source in sources.items():
        found = _constructs(source)
        if found:
            reasons.append(f"'{gid}' uses {', '.join(found)}")
    return reasons


def _constructs(source: str) -> list[str]:
    """What suspicious constructs a cell's code contains (an unparsable cell has none: it fails on its own)."""
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return []
    found: list[str] = []
    libraries = LIBRARY_ROOTS | _library_aliases(tree)
    sys_names = {"sys"} | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
                           for alias in node.names if alias.name == "sys" and alias.asname}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [SUSPICIOUS_MODULES[n.split(".")[0]] for n in names if n.split(".")[0] in SUSPICIOUS_MODULES]
            if isinstance(node, ast.ImportFrom):
                found += [SUSPICIOUS_CALLS[a.name] for a in node.names if a.name in SUSPICIOUS_CALLS]
        elif isinstance(node, ast.Attribute):
            if node.attr in SUSPICIOUS_CALLS:
                found.append(SUSPICIOUS_CALLS[node.attr])
            elif node.attr in SUSPICIOUS_ATTRIBUTES:
                found.append(SUSPICIOUS_ATTRIBUTES[node.attr])
            elif node.attr == "modules" and isinstance(node.value, ast.Name) and node.value.id in sys_names:
                found.append("sys.modules")
            elif isinstance(node.ctx, ast.Store) and _rooted_in(node, libraries):
                found.append(f"assignment to {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id in SUSPICIOUS_ATTRIBUTES:
            found.append(SUSPICIOUS_ATTRIBUTES[node.id])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval",
                                                                                                 "compile"):
            found.append(f"{node.func.id}()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC and \
                len(node.args) > 1 and not isinstance(node.args[1], ast.Constant) and not _on_self(node.args[0]):
            found.append(f"{node.func.id}() with a computed name")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("__import__",
                                                                                                 "globals"):
            found.append(f"{node.func.id}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SPELLED:
            found.append(f"{SPELLED[node.value]} (named in a string)")
    return list(dict.fromkeys(found))


def _on_self(node: ast.AST) -> bool:
    """`self` (a module's own layers, set in a loop: setattr(self, f"conv{i}", ...) is ordinary)."""
    return isinstance(node, ast.Name) and node.id == "self"


def _library_aliases(tree: ast.AST) -> set[str]:
    """Names an import binds to a library module: `report` in `import residual_course.checks.report as report`."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {alias.asname for alias in node.names if alias.asname and alias.name.split(".")[0]
                        in LIBRARY_ROOTS}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARY_ROOTS:
            aliases |= {alias.asname or alias.name for alias in node.names}
    return aliases


def _rooted_in(node: ast.Attribute, libraries: set[str]) -> bool:
    """`torch.x = ...`, `F.relu = ...`, `np.allclose = ...`, `report.y = ...` after importing it from the course."""
    while isinstance(node.value, ast.Attribute):
        node = node.value
    return isinstance(node.value, ast.Name) and node.value.id in libraries


def _without_magics(source: str) -> str:
    """IPython lines (%pip, !ls) are not Python: leave them out of the parse."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
