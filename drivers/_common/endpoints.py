"""Which server a driver call goes to: a named endpoint (``endpoint``), a URL (``url``), a declared default, or
the sandbox's.

``endpoint`` names one of the experiment's declared endpoints (``extensions: mlchaos: endpoints``); giving
``url`` too is an error. With neither, the endpoint declared under the driver's default name
(``prometheus``, ``alertmanager``, ``pushgateway``, ``serving``, ``proxy``) is used when there is one, else
the driver's own fallback (the sandbox). :func:`http_for` is what every HTTP call of a driver goes through:
the session of the declared endpoint whose base URL the call goes to (it carries that endpoint's
credentials, CA, client certificate and headers), else plain ``requests``. Importing this module registers
the Kubernetes connector: a ``kubernetes`` endpoint (``k8s://NS/SERVICE:PORT``) is reached through the API
server's service proxy with the kubeconfig's credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlchaos.driver_kit import DriverError, endpoints


def connection(endpoint: str | None, url: str | None, default: str) -> endpoints.Connection | None:
    """The declared endpoint to use (named, else the declared ``default``), or None: use ``url`` / the sandbox."""
    if endpoint is not None and url is not None:
        raise DriverError(f"give url or endpoint, not both (got url={url!r}, endpoint={endpoint!r})")
    table = endpoints.active()
    name = endpoint
    if name is None:
        if url is not None or table is None or default not in table.endpoints:
            return None
        name = default
    if not isinstance(name, str) or not name:
        raise DriverError(f"endpoint must be the name of a declared endpoint, got {name!r}")
    if table is None:
        raise DriverError(f"endpoint {name!r}: no endpoints are active here (declare them in the experiment's "
                          f"extensions: mlchaos: endpoints)")
    try:
        return table.connection(name)
    except endpoints.EndpointUnavailable as exc:
        raise DriverError(str(exc)) from None


def base_url(endpoint: str | None, url: str | None, default: str,
             fallback: Callable[[str | None], str]) -> str:
    """The base URL to call: the endpoint's, else ``fallback(url)`` (the URL checked, or the sandbox's)."""
    found = connection(endpoint, url, default)
    return found.url if found is not None else fallback(url)


def http_for(url: str) -> tuple[Any, Callable[[float], float]]:
    """(what to call ``.request``/``.get``/``.post`` on, how to cap a timeout) for a call to ``url``."""
    try:
        found = endpoints.session_for(url)
    except endpoints.EndpointUnavailable as exc:
        raise DriverError(str(exc)) from None
    if found is None:
        import requests

        return requests, lambda timeout: timeout
    return found.session, found.request_timeout


def client_settings(url: str) -> dict[str, Any] | None:
    """What a child process needs to call ``url`` as :func:`http_for` would (the declared endpoint's credentials,
    CA, client certificate, headers; :func:`mlchaos.lib.endpoints.client_settings`), or None when no declared
    endpoint covers it. Secret: hand it over privately, never on a command line or in the environment."""
    try:
        found = endpoints.session_for(url)
    except endpoints.EndpointUnavailable as exc:
        raise DriverError(str(exc)) from None
    return None if found is None else endpoints.client_settings(found)


def _kubernetes_connector(endpoint: endpoints.Endpoint, session: Any) -> str:
    """In-cluster endpoints go through the API server's service proxy (drivers/kubernetes/service_proxy.py),
    imported only when one is used."""
    from drivers.kubernetes.service_proxy import endpoint_connector

    return endpoint_connector(endpoint, session)


endpoints.register_kubernetes_connector(_kubernetes_connector)


def endpoint_argument(endpoint: str | None) -> dict[str, str]:
    """``{"endpoint": name}`` for an undo's arguments when one was named, else ``{}``."""
    return {"endpoint": endpoint} if endpoint is not None else {}
