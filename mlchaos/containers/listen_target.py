"""``notifications: {listen: docker}``: the compose stack's alert sink as a named listen target.

The stack's Alertmanager posts to ``host.docker.internal:19095`` (the docker0 bridge address) with
the bearer token of ``deploy/docker/alertmanager/webhook.token``; the run listens there and writes a
fresh token into that file first, so only that Alertmanager can deliver to it.
"""

from __future__ import annotations

from pathlib import Path


class DockerNotifications:
    """``notifications: {listen: docker}``: the run listens where the compose stack's Alertmanager posts."""

    def preflight(self) -> list[str]:
        """Nothing to check without starting anything (the stack's own checks run when it starts)."""
        return []

    def address(self) -> str:
        """``HOST:PORT`` on the docker0 bridge, where the stack's Alertmanager sends its webhooks."""
        from mlchaos.containers.stack import sink_listen_address

        host, port = sink_listen_address()
        return f"{host}:{port}"

    def token_file(self) -> Path:
        """The stack Alertmanager's ``credentials_file`` (mounted read-only into its container)."""
        from mlchaos.containers.configs import TOKEN_FILE

        return TOKEN_FILE
