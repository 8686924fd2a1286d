"""mlchaos' reference systems as the model driver sees them: the sandbox replicas, its dataset and model catalogue,
and the compose stack's published replica URLs.

The one place drivers.model reaches ``mlchaos.sandbox`` and ``mlchaos.containers`` (the sandbox
replicas themselves through :mod:`drivers.process.sandbox`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.process.sandbox import is_alive, reap, replica_details, replicas, track
from mlchaos.sandbox.dataset import N_FEATURES, holdout_split, training_split

if TYPE_CHECKING:  # imported on first use (see __getattr__): the model server's module and the manager are not
    # needed to validate an experiment that imports drivers.model
    from mlchaos.sandbox.manager import Replica
    from mlchaos.sandbox.model import DEFECTS, VERSION_NAME

__all__ = ["DEFECTS", "N_FEATURES", "VERSION_NAME", "Replica", "holdout_split", "is_alive", "reap", "replica_details",
           "replicas", "stack_instances", "track", "training_split"]


def stack_instances() -> dict[str, str]:
    """The compose stack's published replica URLs (through its fault proxy, and direct) -> the ``instance``
    label its Prometheus gives that replica (``model-N:8000``, deploy/docker/prometheus/targets/model.json)."""
    from mlchaos.containers import configs, stack

    found = stack.endpoints()
    return {url: f"{name}:{configs.MODEL_PORT}"
            for by_name in (found.model_urls, found.direct_urls) for name, url in by_name.items()}


def __getattr__(name: str) -> Any:
    """``DEFECTS`` and ``VERSION_NAME`` (the model server's push rules) and ``Replica``, imported on first use."""
    if name in ("DEFECTS", "VERSION_NAME"):
        from mlchaos.sandbox import model

        return getattr(model, name)
    if name == "Replica":
        from mlchaos.sandbox.manager import Replica

        return Replica
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
