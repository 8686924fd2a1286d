"""Find the driver functions that experiments can call (shown by ``mlchaos discover``)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlchaos.experiment.extensions import Extension, extension_activities, use_chaostoolkit_logging
from mlchaos.experiment.problems import suggest

DRIVER_PACKAGE = "drivers"
# driver modules whose public functions experiments call, and the kind of those functions; a module
# may narrow its list with ``__all__`` and name its probes in ``PROBES`` (drivers.model.traffic does), and a
# facade (drivers.docker.actions) lists in ``__all__`` the functions it re-exports from its package's modules
FUNCTION_MODULES = {"actions": "action", "probes": "probe", "traffic": "action"}
HOOKS = {"preflight"}  # module functions mlchaos calls itself, not activities


@dataclass(frozen=True)
class DriverFunction:
    """One public function of a driver module."""

    module: str
    name: str
    kind: str
    signature: str
    summary: str


def driver_module_names() -> list[str]:
    """Dotted names of every ``drivers.<x>.actions`` / ``probes`` / ``traffic`` module."""
    try:
        package = importlib.import_module(DRIVER_PACKAGE)
    except ImportError:
        return []
    names = []
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{DRIVER_PACKAGE}."):
        if not info.ispkg:
            continue
        sub = importlib.util.find_spec(info.name)
        locations = sub.submodule_search_locations if sub else None
        for child in pkgutil.iter_modules(locations or []):
            if child.name in FUNCTION_MODULES:
                names.append(f"{info.name}.{child.name}")
    return sorted(names)


def driver_functions() -> Iterator[DriverFunction | tuple[str, str]]:
    """Every public function of every driver module, or (module, error) when one fails to import."""
    use_chaostoolkit_logging()
    for module_name in driver_module_names():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # report, never hide, a driver that cannot load
            yield module_name, f"{type(exc).__name__}: {exc}"
            continue
        package, _, kind_name = module_name.rpartition(".")
        default_kind = FUNCTION_MODULES[kind_name]
        listed = getattr(module, "__all__", None)
        probes = set(getattr(module, "PROBES", ()))
        for name, func in sorted(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(func):
                continue
            if func.__module__ != module_name and not _reexported(name, func, listed, package):
                continue
            if name in HOOKS or (listed is not None and name not in listed):
                continue
            kind = "probe" if name in probes else default_kind
            doc = inspect.getdoc(func) or ""
            yield DriverFunction(
                module=module_name,
                name=name,
                kind=kind,
                signature=_render_signature(func),
                summary=doc.splitlines()[0] if doc else "(no docstring)",
            )


def extension_functions(extension: Extension) -> Iterator[DriverFunction | tuple[str, str]]:
    """The activities a Chaos Toolkit extension's own ``discover`` lists, as driver functions; (module, error) when
    the extension fails to import or to discover."""
    try:
        for module, name, kind, func in extension_activities(extension):
            doc = inspect.getdoc(func) or ""
            yield DriverFunction(module=module, name=name, kind=kind, signature=_render_signature(func),
                                 summary=doc.splitlines()[0] if doc else "(no docstring)")
    except Exception as exc:  # report, never hide, an extension that cannot load
        yield extension.module, f"{type(exc).__name__}: {exc}"


def _reexported(name: str, func: Any, listed: Any, package: str) -> bool:
    """True for a function a facade module (``drivers.docker.actions``) lists in ``__all__`` and imports from a
    module of the same driver package (``drivers.docker.lifecycle``): it is the facade's own."""
    return listed is not None and name in listed and func.__module__.startswith(f"{package}.")


def _render_signature(func: object) -> str:
    return str(function_signature(func))


def import_driver_module(name: str) -> tuple[Any, str]:
    """Import a driver module (a Chaos Toolkit extension's too: logzero as ``chaos`` provides it); on failure
    return (None, a message with close matches)."""
    use_chaostoolkit_logging()
    try:
        return importlib.import_module(name), ""
    except ModuleNotFoundError as exc:
        if exc.name and name != exc.name and not name.startswith(f"{exc.name}."):
            return None, f"module {name} imports {exc.name!r}, which is not installed"
        return None, f"no Python module {name!r}{suggest(name, driver_module_names())}"
    except Exception as exc:  # a driver that fails while importing
        return None, f"module {name} failed to import: {type(exc).__name__}: {exc}"


_SIGNATURES: dict[Any, inspect.Signature] = {}  # a function's signature, worked out once per process


def function_signature(func: Any) -> inspect.Signature:
    """The signature with string annotations evaluated where possible (cached: thousands of activities may
    call the same driver function)."""
    try:
        return _SIGNATURES[func]
    except (KeyError, TypeError):  # not seen yet, or a callable that cannot be a key
        pass
    try:
        signature = inspect.signature(func, eval_str=True)
    except Exception:  # an annotation that cannot be evaluated: keep the strings
        signature = inspect.signature(func)
    with contextlib.suppress(TypeError):
        _SIGNATURES[func] = signature
    return signature


def accepts_dry_run(spec: dict[str, Any]) -> bool:
    """True when the activity's provider is a python driver function with a ``dry_run`` parameter."""
    provider = spec.get("provider", {})
    if provider.get("type") != "python":
        return False
    module, _ = import_driver_module(provider["module"])
    func = getattr(module, provider["func"], None) if module else None
    return func is not None and "dry_run" in function_signature(func).parameters
