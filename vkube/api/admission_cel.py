"""CEL for admission: webhook ``matchConditions`` and ValidatingAdmissionPolicy expressions.

Kubernetes compiles these against an environment with ``object``, ``oldObject``, ``request``,
``params``, ``namespaceObject``, ``variables`` and ``authorizer``; vkube uses the same names with
cel-python. ``compile_expression`` refuses text that does not parse and identifiers outside the
environment ("undeclared reference"), with the words kube-apiserver writes into the Invalid
cause; ``Program.evaluate`` runs a compiled expression against an activation built by
``activation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CompileError", "Program", "compile_expression", "activation", "request_value", "referenced",
           "variables_map", "type_names", "from_cel",
           "WEBHOOK_VARIABLES", "POLICY_VARIABLES", "MUTATION_VARIABLES"]

#: the variables a webhook's matchConditions may use (``authorizer`` is not offered by vkube)
WEBHOOK_VARIABLES = frozenset({"object", "oldObject", "request", "authorizer"})
#: and a ValidatingAdmissionPolicy's expressions
POLICY_VARIABLES = frozenset({"object", "oldObject", "request", "params", "namespaceObject", "variables",
                              "authorizer"})
#: and a MutatingAdmissionPolicy's mutations, which construct ``Object{…}`` and ``JSONPatch{…}``
MUTATION_VARIABLES = POLICY_VARIABLES | {"Object", "JSONPatch"}
_BUILTINS = frozenset({"true", "false", "null", "has", "size", "int", "uint", "double", "string", "bytes",
                       "bool", "type", "dyn", "duration", "timestamp", "matches", "exists", "all",
                       "exists_one", "map", "filter", "in", "list", "map"})
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_ROOT = re.compile(r"(?<![.\w])([A-Za-z_]\w*)\b(?!\s*[(:])")  # not a call, not a field name in T{f: v}
_MACRO_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class CompileError(ValueError):
    """The expression cannot be used; ``str()`` is kube-apiserver's detail after the value."""


@dataclass(slots=True)
class Program:
    """A compiled expression. The transpiled runner is fast but mishandles some inputs (a
    ``null`` variable) and says only "evaluation error"; when it fails, the interpreter runs
    the expression and, if it succeeds, is used from then on; its error is the one raised."""

    text: str
    runner: Any
    functions: dict[str, Any]
    interpreted: Any = None
    use_interpreter: bool = False

    def evaluate(self, activation: dict[str, Any]) -> Any:
        if not self.use_interpreter:
            try:
                return self.runner.evaluate(activation)
            except Exception:
                pass
        if self.interpreted is None:
            import celpy

            env = celpy.Environment()
            self.interpreted = env.program(env.compile(self.text), functions=self.functions)
        result = self.interpreted.evaluate(activation)  # raises the interpreter's error
        self.use_interpreter = True  # the transpiled runner failed where the interpreter did not
        return result


def _undeclared(text: str, allowed: frozenset[str]) -> str | None:
    """The first root identifier that is neither a declared variable, a macro's bound name nor
    a CEL builtin (celpy has no type checker: this is the checker's undeclared-reference test)."""
    stripped = _STRING.sub("''", text)
    bound = set(_MACRO_VAR.findall(stripped))
    for name in _ROOT.findall(stripped):
        if name not in allowed and name not in bound and name not in _BUILTINS:
            return name
    return None


def compile_expression(text: Any, allowed: frozenset[str] = POLICY_VARIABLES) -> Program:
    """Compile once (when the configuration is written or read); raises CompileError."""
    if not isinstance(text, str) or not text.strip():
        raise CompileError("compilation failed: expression is empty")
    import celpy

    # vkube's CEL modules (~1.4 MiB resident) load with the first expression, as celpy does
    from vkube.api.cel import _quiet_transpiler
    from vkube.api.cel_compile import _syntax
    from vkube.api.cel_library import functions as _functions

    env = celpy.Environment(runner_class=celpy.CompiledRunner)
    _quiet_transpiler()
    functions = _functions()
    if re.search(r"\bauthorizer\b", text):  # the authz library's methods (check, allowed, …)
        from vkube.api.admission_authz import functions as authz_functions

        functions.update(authz_functions())
    try:
        ast = env.compile(text)
    except Exception as exc:  # celpy raises its parser's errors
        raise CompileError(f"compilation failed: {_syntax(exc)}") from None
    name = _undeclared(text, allowed)
    if name is not None:
        raise CompileError(f"compilation failed: ERROR: <input>:1:1: undeclared reference to '{name}' "
                           "(in container '')")
    try:
        runner = env.program(ast, functions=functions)
    except Exception:  # what the transpiler does not take runs interpreted
        interpreted = celpy.Environment()
        runner = interpreted.program(interpreted.compile(text), functions=functions)
    return Program(text, runner, functions)


def to_cel(value: Any) -> Any:
    import celpy

    return celpy.json_to_cel(value)


def request_value(review_request: dict[str, Any]) -> dict[str, Any]:
    """The ``request`` variable: the AdmissionRequest without the objects."""
    return {k: v for k, v in review_request.items() if k not in ("object", "oldObject")}


def referenced(texts: Any) -> frozenset[str]:
    """The environment's variables some of ``texts`` use (only those are converted to CEL)."""
    found: set[str] = set()
    for text in texts:
        if isinstance(text, str):
            found.update(n for n in POLICY_VARIABLES if re.search(rf"\b{n}\b", text))
    return frozenset(found)


def activation(*, obj: Any, old: Any, request: dict[str, Any], params: Any = None,
               namespace: Any = None, variables: dict[str, Any] | None = None,
               names: frozenset[str] = POLICY_VARIABLES) -> dict[str, Any]:
    """The variables an expression sees (those in ``names``); absent objects are CEL ``null``
    as upstream."""
    values = {"object": obj, "oldObject": old, "request": request, "params": params, "namespaceObject": namespace}
    out = {k: to_cel(v) for k, v in values.items() if k in names}
    if variables is not None:
        out["variables"] = variables_map(variables)
    return out


def variables_map(values: dict[str, Any]) -> Any:
    """``variables`` from already evaluated (CEL) values, each computed once."""
    from celpy import celtypes

    return celtypes.MapType({celtypes.StringType(k): v for k, v in values.items()})


def is_bool(value: Any) -> bool:
    from celpy import celtypes

    return isinstance(value, (bool, celtypes.BoolType))



def type_names() -> dict[str, Any]:
    """``Object`` and ``JSONPatch`` for mutation expressions: ``Object.spec{replicas: 1}``
    builds a map (an apply configuration), ``JSONPatch{op: "add", …}`` one patch operation.
    cel-python evaluates ``T{fields}`` by calling the value ``T`` with the fields."""
    from celpy import celtypes

    class TypeName(celtypes.MapType):
        def __init__(self, name: str) -> None:
            super().__init__({})
            self.name = name

        def __call__(self, fields: Any = None) -> Any:
            return celtypes.MapType(fields or {})

        def get(self, key: Any, default: Any = None) -> Any:
            return TypeName(f"{self.name}.{key}")

        def __getitem__(self, key: Any) -> Any:
            return TypeName(f"{self.name}.{key}")

        def __contains__(self, key: Any) -> bool:
            return True

    return {"Object": TypeName("Object"), "JSONPatch": TypeName("JSONPatch")}


def from_cel(value: Any) -> Any:
    """A CEL result as plain JSON values."""
    import json

    from celpy.adapter import CELJSONEncoder

    return json.loads(json.dumps(value, cls=CELJSONEncoder))
