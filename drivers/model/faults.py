"""What the model fault modules share: undo paths, the change record, the checks every model action makes.

Change records name the rollbacks ``drivers.model.actions.<func>`` (:data:`ROLLBACKS`), the
facade journals keep, wherever the function lives now; the record's target arguments (where
the replicas are, :meth:`~drivers.model.endpoints.Scope.arguments`) go into its parameters
and its undo, so ``mlchaos recover`` finds the replicas again.
"""

from __future__ import annotations

from typing import Any

from drivers._common.checks import is_number
from drivers._common.undo import Rollbacks
from drivers.model.endpoints import Endpoint, Scope, environment
from mlchaos.driver_kit import ChangeRecord, DriverError, announce

ROLLBACKS = Rollbacks("drivers.model.actions")
CLEAR_FUNC = ROLLBACKS.path("clear_model_faults")
RESTORE_FUNC = ROLLBACKS.path("restore_model_version")
RESTORE_PUSHED_FUNC = ROLLBACKS.path("restore_pushed_model")
Labels = dict[str, Any] | list[str] | None


def announce_record(action: str, scope: Scope, chosen: list[Endpoint], population: list[str],
                    parameters: dict[str, Any], undo: dict[str, Any], dry_run: bool) -> ChangeRecord:
    """The change record, announced; the target arguments go into the parameters and the undo (none for the
    sandbox, whose records stay as they were)."""
    if undo:
        undo = {**undo, "arguments": {**undo["arguments"], **scope.arguments()}}
    record = ChangeRecord(
        driver="model", action=action, targets=[e.target() for e in chosen],
        parameters={**parameters, **scope.arguments()}, undo=undo, dry_run=dry_run,
        environment=environment(chosen), population=population,
    )
    announce(record)
    return record


def admin_scope(scope: Scope, what: str) -> Scope:
    """Refuse, before selecting anything, an admin fault on servers by URL (nothing could undo it either)."""
    if scope.target == "url":
        raise DriverError(f"{what} needs the admin endpoint, which answers loopback clients only: use target "
                          "sandbox or docker (docker exec), not url")
    return scope


def check_timeout(timeout: Any) -> None:
    """A call's timeout: a number of seconds in (0, 60]."""
    if not is_number(timeout) or not 0 < timeout <= 60:
        raise DriverError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
