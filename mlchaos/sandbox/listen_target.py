"""``notifications: {listen: sandbox}``: the sandbox's alert sink as a named listen target.

Kept apart from :mod:`mlchaos.sandbox.monitoring_stack` and importing it only when asked, so that
``validate`` and ``run`` of an experiment that never listens there do not pay for importing it.
"""

from __future__ import annotations

from pathlib import Path

from mlchaos.errors import DriverError, InvalidInput


class SandboxNotifications:
    """``notifications: {listen: sandbox}``: the run listens where the sandbox's Alertmanager sends its webhooks."""

    def preflight(self) -> list[str]:
        """The monitoring packages must be installed (the stack itself need not run to validate)."""
        from mlchaos.sandbox.monitoring_stack import preflight_for_sandbox

        return preflight_for_sandbox({}, needs_sandbox=True)

    def address(self) -> str:
        """``HOST:PORT`` of the sandbox's alert sink; InvalidInput when its monitoring stack is not running."""
        from mlchaos.sandbox.monitoring_stack import endpoints

        try:
            found = endpoints()
        except DriverError as exc:
            raise InvalidInput(str(exc)) from None
        return f"{found.sink_host}:{found.sink_port}"

    def token_file(self) -> Path:
        """The sandbox Alertmanager's ``credentials_file``: the run writes its receiver's token there."""
        from mlchaos.sandbox.monitoring_stack import Monitoring

        return Monitoring().token_file
