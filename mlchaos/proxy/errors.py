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


class Forbidden(ProxyError):
    """An address outside the allow-list: an upstream the proxy may not forward to, or a listen address it may
    not open (see :mod:`mlchaos.proxy.addresses`)."""


class ResetIncomplete(ProxyError):
    """``reset`` removed every toxic but could not re-enable some proxies; ``failed`` names them, with why."""

    def __init__(self, failed: dict[str, str]) -> None:
        self.failed = dict(failed)
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(self.failed.items()))
        super().__init__(f"reset removed every toxic and enabled every other proxy, but {len(self.failed)} "
                         f"could not be enabled: {listed}")
