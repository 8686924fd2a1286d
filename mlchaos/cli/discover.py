"""``mlchaos discover``: list every driver action and probe with its signature and summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``discover``."""
    return commands.add_parser("discover", help="list every driver action and probe")


def main(_args: argparse.Namespace) -> int:
    """One block per driver module; exit 1 when a driver module fails to import (named, never hidden)."""
    from mlchaos.engine import exit_codes
    from mlchaos.experiment.driver_registry import DriverFunction, driver_functions

    status = exit_codes.OK
    current = None
    for item in driver_functions():
        if not isinstance(item, DriverFunction):
            module, error = item
            print(f"{module}: FAILED TO IMPORT: {error}", file=sys.stderr)
            status = exit_codes.DEVIATED
            continue
        if item.module != current:
            current = item.module
            print(f"\n{item.module}")
        print(f"  {item.kind:<6} {item.name}{item.signature}")
        print(f"         {item.summary}")
    return status
