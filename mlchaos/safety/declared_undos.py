"""Which functions recovery may call from a journal: the undos drivers declare, and nothing else.

A journal is data that names code: a change record's ``undo.func`` (``module.function``) is
called by ``mlchaos recover``, the guardian and the runner's safety net. A journal that was
edited, or written by something else, could name any function (``os.mkdir``, a driver's own
fault). So a driver declares each function that undoes one of its faults with
:func:`undo_function` (the driver kit re-exports it), and :func:`resolve` hands recovery a
function only when

* the path is ``module.function`` made of plain identifiers, none of them private (``_x``);
* the module is not part of Python's standard library (refused without importing it);
* the module imports, and the attribute is a function declared with :func:`undo_function`.

Anything else raises :class:`UndoRefused` saying why; nothing named by the journal is called.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mlchaos.errors import InvalidInput

MARK = "__mlchaos_undo__"
F = TypeVar("F", bound=Callable[..., Any])


class UndoRefused(InvalidInput):
    """A change record names a function that is not a declared undo: it is never called."""


def undo_function(func: F) -> F:
    """Declare ``func`` an undo: recovery may call it when a journal's change record names it."""
    setattr(func, MARK, True)
    return func


def is_declared(func: Any) -> bool:
    """True for a function declared with :func:`undo_function`."""
    return inspect.isfunction(func) and getattr(func, MARK, None) is True


def resolve(path: Any) -> Callable[..., Any]:
    """The declared undo function ``path`` names (``package.module.function``); UndoRefused when it is not one."""
    if not isinstance(path, str):
        raise UndoRefused(f"the undo function must be named by a string 'module.function', got {path!r}")
    module_name, _, name = path.rpartition(".")
    parts = path.split(".")
    if not module_name or not all(part.isidentifier() for part in parts):
        raise UndoRefused(f"{path!r} is not a function path 'module.function'")
    if any(part.startswith("_") for part in parts):
        raise UndoRefused(f"{path} names a private module or function")
    if parts[0] in sys.stdlib_module_names or parts[0] in sys.builtin_module_names:
        raise UndoRefused(f"{path} is in Python's standard library ({parts[0]}), not a driver's declared undo")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a missing or broken module: the same refusal, with the reason
        raise UndoRefused(f"{path}: module {module_name} cannot be imported ({type(exc).__name__}: {exc})") from None
    func = getattr(module, name, None)
    if func is None:
        raise UndoRefused(f"{path}: module {module_name} has no function {name!r}")
    if not is_declared(func):
        raise UndoRefused(f"{path} is not declared as an undo by its driver (mlchaos.driver_kit.undo_function)")
    return func
