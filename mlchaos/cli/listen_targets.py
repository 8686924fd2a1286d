"""The named listen targets the command line knows (``notifications: {listen: NAME}``): the sandbox's and the
compose stack's alert sinks.

The core resolves names only through these (see :mod:`mlchaos.experiment.pipeline`): the engine never
imports the sandbox.
"""

from __future__ import annotations

from mlchaos.containers.listen_target import DockerNotifications
from mlchaos.experiment.pipeline import ListenTargets
from mlchaos.sandbox.listen_target import SandboxNotifications

LISTEN_TARGETS: ListenTargets = {"sandbox": SandboxNotifications(), "docker": DockerNotifications()}
