"""Cyclic garbage collection paused while a command starts: imports, parsing and validating a file.

Starting allocates tens of thousands of objects that live as long as the process (modules, classes,
functions, the experiment), and the collector would scan them again and again to find next to no garbage:
about a tenth of ``mlchaos validate``'s time. Reference counting still frees everything at once; only
cycles wait until the block ends and the collector is back (as it was: a caller that had it off keeps it off).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; the collector's state is restored after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
