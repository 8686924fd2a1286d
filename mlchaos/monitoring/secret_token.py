"""A receiver token in a Kubernetes Secret, taken fresh by each run, rotated at its end (``token_kubernetes_secret``).

For the in-cluster runner, whose Alertmanager reads the token from a Secret and needs time to reload
it (docs/staging.md). The Kubernetes calls are the Kubernetes driver's
(``drivers/kubernetes/receiver_token.py``), found by name when a run needs them, as undos are:
nothing in mlchaos imports a driver. :class:`SecretToken` keeps what the run took, so the run's end
rotates exactly that, and the records of both for the journal (never the token).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from mlchaos.errors import DriverError, InvalidInput
from mlchaos.experiment.driver_registry import import_driver_module
from mlchaos.experiment.settings import TokenSecret

DRIVER = "drivers.kubernetes.receiver_token"


class SecretToken:
    """The run's side of a rotating token: :meth:`take` at the start, :meth:`finish` at the end."""

    def __init__(self, spec: TokenSecret, configuration: dict[str, Any] | None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.configuration = configuration
        self.sleep = sleep
        self.claim = secrets.token_hex(8)  # who took the token, on the Secret (not the token)
        self.record: dict[str, Any] = {"secret": f"{spec.namespace}/{spec.name}", "key": spec.key, "claim": self.claim}
        self.dry_run = False

    def take(self, dry_run: bool = False) -> str:
        """The run's token. A plan only reads the Secret and gets a throw-away token nobody can send."""
        driver = self._driver()
        self.dry_run = dry_run
        spec = self.spec
        try:
            if dry_run:
                self.record["checked"] = driver.check(spec.namespace, spec.name, spec.key, self.configuration)
                return secrets.token_urlsafe(32)
            token, taken = driver.take(spec.namespace, spec.name, spec.key, spec.reload_seconds, self.claim,
                                       self.configuration, self.sleep)
        except DriverError as exc:
            raise InvalidInput(f"notifications: token_kubernetes_secret: {exc}") from None
        self.record["taken"] = taken
        return token

    def finish(self) -> str | None:
        """Rotate the token for the next run (not in a plan); what went wrong, or None."""
        if self.dry_run or "taken" not in self.record:
            return None
        spec = self.spec
        try:
            self.record["rotated"] = self._driver().rotate(spec.namespace, spec.name, spec.key, self.claim,
                                                           self.configuration)
        except DriverError as exc:
            self.record["rotated"] = {"rotated": False, "error": str(exc)}
            return (f"the receiver token in secret {self.record['secret']} was not rotated ({exc}): the next run "
                    f"finds it taken and rotates it before it listens")
        rotated = self.record["rotated"]
        if not rotated.get("rotated"):
            return f"the receiver token in secret {self.record['secret']} was not rotated: {rotated['why']}"
        return None

    @staticmethod
    def _driver() -> Any:
        module, problem = import_driver_module(DRIVER)
        if module is None:
            raise InvalidInput(f"notifications: token_kubernetes_secret needs {DRIVER}: {problem}")
        return module
