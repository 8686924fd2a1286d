"""Checking what an activity calls: its provider (python, process, http), the driver function's signature
and argument types, and its tolerance. Mixed into the experiment's validation (:mod:`mlchaos.experiment.validation`).

Python providers are imported to check that the function exists and that the arguments fit its signature, as
Chaos Toolkit does; nothing is called (but a driver module's ``preflight`` hook, which only inspects).
"""

from __future__ import annotations

import inspect
import numbers
import os
import re
import shutil
import types
import typing
from collections.abc import Iterator
from typing import Any

from mlchaos.experiment.checking import DocumentChecker
from mlchaos.experiment.driver_registry import HOOKS, function_signature, import_driver_module
from mlchaos.experiment.endpoints import activity_problems, declared_endpoints
from mlchaos.experiment.loader import Document, pointer_join
from mlchaos.experiment.problems import Problem, suggest

PROVIDER_KEYS = {
    "python": {"type", "module", "func", "arguments", "timeout", "secrets"},
    "process": {"type", "path", "arguments", "timeout", "secrets"},
    "http": {"type", "url", "method", "headers", "arguments", "timeout", "expected_status",
             "verify_tls", "secrets"},
}
INJECTED_PARAMETERS = ("configuration", "secrets")
_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,), dict: (dict,),
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,),
    "dict": (dict,),
}


class ProviderChecks(DocumentChecker):
    """The checks of providers, driver signatures and tolerances."""

    var_file_endpoints: dict[str, Any] = {}  # endpoints the var files declare (by name): declared as well

    def __init__(self, doc: Document):
        super().__init__(doc)
        self._modules: dict[str, tuple[Any, str, Any, Any]] = {}  # driver module name -> what _driver_module found
        self._endpoints: dict[str, Any] | None = None

    def check_provider(self, provider: Any, pointer: str) -> Iterator[Problem]:
        if not isinstance(provider, dict):
            yield self.problem(pointer, "required: a 'provider' mapping")
            return
        kind = provider.get("type")
        if not isinstance(kind, str) or kind not in PROVIDER_KEYS:
            yield self.problem(
                f"{pointer}/type", f"provider type must be python, process or http, got {kind!r}"
            )
            return
        for key in [] if provider.keys() <= PROVIDER_KEYS[kind] else sorted(set(provider) - PROVIDER_KEYS[kind]):
            yield self.problem(
                pointer_join(pointer, key),
                f"unknown key {key!r} for a {kind} provider{suggest(key, PROVIDER_KEYS[kind])}",
            )
        scopes = provider.get("secrets", [])
        known_scopes = self.doc.data.get("secrets") or {}
        if not isinstance(scopes, list):
            yield self.problem(f"{pointer}/secrets", "must be a list of secret scope names")
        else:
            for scope in scopes:
                if not isinstance(scope, str):
                    yield self.problem(f"{pointer}/secrets", f"a secrets scope name must be a string, got {scope!r}")
                elif isinstance(known_scopes, dict) and scope not in known_scopes:
                    yield self.problem(f"{pointer}/secrets", f"unknown secrets scope {scope!r}")
        if kind == "python":
            yield from self.check_python_provider(provider, pointer)
        elif kind == "process":
            path = provider.get("path")
            if not isinstance(path, str) or not path:
                yield self.problem(f"{pointer}/path", "required: the program to run")
            elif "${" in path:
                yield self.problem(f"{pointer}/path", f"program {path!r}: Chaos Toolkit looks the program up when it "
                                                      f"validates, before any ${{name}} is resolved: name it as is")
            elif not shutil.which(path):
                why = "is not executable" if os.path.isfile(path) else "not found on PATH"
                yield self.problem(f"{pointer}/path", f"program {path!r} {why}")
            args = provider.get("arguments")
            if args is not None and not isinstance(args, (str, list, dict)):
                yield self.problem(f"{pointer}/arguments", "must be a list of strings")
        else:
            url = provider.get("url")
            if not isinstance(url, str) or not url:
                yield self.problem(f"{pointer}/url", "required: the URL to call")
            elif "${" not in url and not re.match(r"^https?://", url):
                yield self.problem(f"{pointer}/url", f"not an http(s) URL: {url!r}")
            headers = provider.get("headers")
            if headers and not isinstance(headers, dict):
                yield self.problem(f"{pointer}/headers", f"headers must be a mapping of names to values, got "
                                                         f"{headers!r}")

    def check_python_provider(self, provider: dict[str, Any], pointer: str) -> Iterator[Problem]:
        module_name, func_name = provider.get("module"), provider.get("func")
        if not isinstance(module_name, str) or not module_name:
            yield self.problem(f"{pointer}/module", "required: the Python module of the driver")
            return
        if not isinstance(func_name, str) or not func_name:
            yield self.problem(f"{pointer}/func", "required: the function to call")
            return
        module, error, default, preflight = self._driver_module(module_name)
        if module is None:
            yield self.problem(f"{pointer}/module", error)
            return
        func = getattr(module, func_name, None)
        if not callable(func):
            public = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
            yield self.problem(
                f"{pointer}/func",
                f"module {module_name} has no function {func_name!r}{suggest(func_name, public)}",
            )
            return
        arguments = provider.get("arguments", {})
        if not isinstance(arguments, dict):
            yield self.problem(f"{pointer}/arguments", "python arguments must be a mapping")
            return
        try:
            function_signature(func)
        except (TypeError, ValueError) as exc:  # a builtin or a class without an inspectable signature
            yield self.problem(f"{pointer}/func", f"{module_name}.{func_name} is not a driver function: {exc}")
            return
        yield from self.check_signature(func, arguments, f"{pointer}/arguments", f"{module_name}.{func_name}")
        declared = self._declared_endpoints()
        # a driver module whose functions take a declared endpoint's name says so with DEFAULT_ENDPOINT (another
        # driver's ``endpoint`` argument may mean something else: the traffic probes' infer/feedback), and names
        # them with ENDPOINT_FUNCTIONS when only some of its functions do
        only = getattr(module, "ENDPOINT_FUNCTIONS", None)
        named = isinstance(default, str) and "endpoint" in function_signature(func).parameters \
            and (only is None or func_name in only)
        if named:
            for key, message in activity_problems(arguments, declared):
                yield self.problem(pointer_join(f"{pointer}/arguments", key), message)
        if callable(preflight) and func_name not in HOOKS:
            if named and default in declared and arguments.get("url") is None and arguments.get("endpoint") is None:
                arguments = {**arguments, "endpoint": default}  # the declared default stands for the sandbox
            for message in preflight(func_name, arguments):
                yield self.problem(pointer, message)

    def _driver_module(self, name: str) -> tuple[Any, str, Any, Any]:
        """(module, error, its ``DEFAULT_ENDPOINT``, its ``preflight`` hook): :func:`import_driver_module` and the
        look-ups, once per module and document (thousands of activities may name one)."""
        found = self._modules.get(name)
        if found is None:
            module, error = import_driver_module(name)
            found = (module, error, getattr(module, "DEFAULT_ENDPOINT", None), getattr(module, "preflight", None))
            self._modules[name] = found
        return found

    def _declared_endpoints(self) -> dict[str, Any]:
        """The document's declared endpoints (worked out once per document)."""
        if self._endpoints is None:
            self._endpoints = {**declared_endpoints(self.doc.data), **self.var_file_endpoints}
        return self._endpoints

    def check_signature(
        self, func: Any, arguments: dict[str, Any], pointer: str, name: str
    ) -> Iterator[Problem]:
        params = function_signature(func).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key in arguments:
            if key in INJECTED_PARAMETERS:
                yield self.problem(pointer_join(pointer, key), f"{key!r} is injected by the runner, not an argument")
            elif key not in params and not accepts_any:
                yield self.problem(
                    pointer_join(pointer, key),
                    f"{name}() has no argument {key!r}{suggest(key, params)}",
                )
        for pname, param in params.items():
            if pname in INJECTED_PARAMETERS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if param.default is param.empty and pname not in arguments:
                yield self.problem(pointer, f"{name}() needs argument {pname!r}")
            if pname in arguments:
                yield from self._check_type(param, arguments[pname], pointer_join(pointer, pname), name)

    def _check_type(self, param: inspect.Parameter, value: Any, pointer: str, name: str) -> Iterator[Problem]:
        if isinstance(value, str) and "${" in value:
            return
        expected = _accepted_types(param.annotation)
        if expected is None:
            return
        if param.default is None:  # ``when: str = None``, as Chaos Toolkit extensions write an optional argument
            expected = (*expected, type(None))
        bool_mismatch = isinstance(value, bool) and bool not in expected
        if bool_mismatch or not isinstance(value, expected):
            wanted = " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in expected}))
            yield self.problem(pointer, f"{name}() argument {param.name!r} must be {wanted}, got {value!r}")

    def check_tolerance(self, tolerance: Any, pointer: str) -> Iterator[Problem]:
        if isinstance(tolerance, float):
            yield self.problem(pointer, f"a tolerance cannot be a decimal number ({tolerance!r}): Chaos Toolkit "
                                        f"rejects it; write [low, high] or {{type: range, range: [low, high]}}")
            return
        if isinstance(tolerance, (bool, int, str)):
            return
        if isinstance(tolerance, list):
            numeric = len(tolerance) == 2 and all(isinstance(v, numbers.Number) for v in tolerance)
            if numeric and tolerance[0] > tolerance[1]:
                yield self.problem(pointer, f"range tolerance is empty: {tolerance[0]} > {tolerance[1]}")
            return
        if not isinstance(tolerance, dict):
            yield self.problem(pointer, f"unsupported tolerance {tolerance!r}")
            return
        kind = tolerance.get("type")
        if kind == "range":
            bounds = tolerance.get("range")
            if not (isinstance(bounds, list) and len(bounds) == 2
                    and all(isinstance(v, numbers.Number) for v in bounds)):
                yield self.problem(f"{pointer}/range", "a range tolerance needs 'range': [min, max]")
            elif bounds[0] > bounds[1]:
                yield self.problem(f"{pointer}/range", f"range is empty: {bounds[0]} > {bounds[1]}")
        elif kind == "regex":
            pattern = tolerance.get("pattern")
            if not isinstance(pattern, str):
                yield self.problem(f"{pointer}/pattern", "a regex tolerance needs a 'pattern' string")
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    yield self.problem(f"{pointer}/pattern", f"invalid regular expression: {exc}")
        elif kind == "jsonpath":
            if not isinstance(tolerance.get("path"), str):
                yield self.problem(f"{pointer}/path", "a jsonpath tolerance needs a 'path' string")
        elif kind == "probe":
            yield from self.check_provider(tolerance.get("provider"), f"{pointer}/provider")
            provider = tolerance.get("provider")
            if isinstance(provider, dict) and provider.get("type") == "python":
                args = provider.get("arguments")
                if args is not None and "value" in args:
                    yield self.problem(f"{pointer}/provider/arguments/value",
                                       "'value' is filled in with the probe's result")
        else:
            yield self.problem(
                f"{pointer}/type", f"tolerance type must be range, regex, jsonpath or probe, got {kind!r}"
            )


def _accepted_types(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation accepts, or None when it is not a simple one."""
    if annotation in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return (origin,)
    if origin in (typing.Union, types.UnionType):
        accepted: list[type] = []
        for arg in typing.get_args(annotation):
            if arg is type(None):
                accepted.append(type(None))
                continue
            inner = _accepted_types(arg)
            if inner is None:
                return None
            accepted.extend(inner)
        return tuple(accepted)
    return None
