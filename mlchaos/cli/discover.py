"""``mlchaos discover [PACKAGE]``: list every driver action and probe, and those of the installed Chaos Toolkit
extensions, with their signatures and summaries."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``discover [PACKAGE]``."""
    parser = commands.add_parser(
        "discover", help="list every driver action and probe (mlchaos' and installed Chaos Toolkit extensions')")
    parser.add_argument("package", nargs="?",
                        help="only this: an installed Chaos Toolkit extension, by distribution "
                             "(chaostoolkit-prometheus) or module (chaosprometheus), or 'drivers' (mlchaos' own). "
                             "Nothing is installed (chaos discover runs pip)")
    return parser


def main(args: argparse.Namespace) -> int:
    """One block per module; exit 1 when a module fails to import (named, never hidden), 2 for an unknown package."""
    from mlchaos.engine import exit_codes
    from mlchaos.experiment.driver_registry import DriverFunction, driver_functions, extension_functions
    from mlchaos.experiment.extensions import discoverable, find_extension, installed_extensions

    package = getattr(args, "package", None)
    if package in (None, "drivers", "mlchaos"):
        sources = [("mlchaos drivers", driver_functions())]
    else:
        extension = find_extension(package)
        if extension is None:
            known = ", ".join(f"{e.module} ({e.distribution})" for e in installed_extensions()) or "none"
            print(f"error: no installed Chaos Toolkit extension {package!r} (installed: {known}); mlchaos "
                  f"installs nothing: pip install it first", file=sys.stderr)
            return exit_codes.INVALID
        sources = []
    extensions = installed_extensions() if package is None else ([] if sources else [extension])
    for ext in extensions:
        title = f"Chaos Toolkit extension {ext.distribution} {ext.version} ({ext.module})"
        if discoverable(ext):
            sources.append((title, extension_functions(ext)))
        else:
            sources.append((f"{title}: no discover() function (controls or a CLI plugin): no activities", iter(())))
    status = exit_codes.OK
    for title, items in sources:
        status = max(status, _print_block(title, items, DriverFunction, exit_codes.DEVIATED))
    return status


def _print_block(title: str, items: Any, function_type: type, failed: int) -> int:
    status = 0
    current = None
    print(f"# {title}")
    for item in items:
        if not isinstance(item, function_type):
            module, error = item
            print(f"{module}: FAILED TO IMPORT: {error}", file=sys.stderr)
            status = failed
            continue
        if item.module != current:
            current = item.module
            print(f"\n{item.module}")
        print(f"  {item.kind:<6} {item.name}{item.signature}")
        print(f"         {item.summary}")
    print()
    return status
