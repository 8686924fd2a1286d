"""Errors of the proxy core. Plain exceptions: the core knows nothing of HTTP
(:mod:`mlchaos.proxy.api` maps each one to a status code in one table)."""

from __future__ import annotations


class ProxyError(Exception):
    """Base class of the proxy core's errors."""


class ProxyNotFound(ProxyError):
    """No proxy with that name."""


class ToxicNotFound(ProxyError):
    """The proxy has no toxic with that name."""


class AlreadyExists(ProxyError):
    """A proxy or toxic with that name exists already (or the listen address is taken)."""


class InvalidProxy(ProxyError):
    """A proxy definition that cannot work (bad name, address or field)."""


class InvalidToxic(ProxyError):
    """A toxic definition that cannot work (unknown type, bad attribute, stream or toxicity)."""
