"""The mlchaos exception tree.

MlchaosError
 +-- InvalidInput        bad experiment / arguments: nothing was executed (exit 2)
 +-- DriverError         a driver could not do what it was asked (becomes a failed activity)
 |    +-- TargetNotFound a selector matched nothing
 +-- SandboxError        the local sandbox could not be started / stopped
 +-- CertificateError    a certificate or key could not be created, read or written (mlchaos.lib.certificates)
"""

from __future__ import annotations


class MlchaosError(Exception):
    """Base class of every error raised by mlchaos itself."""


class InvalidInput(MlchaosError):
    """The input is invalid; nothing was executed."""


class DriverError(MlchaosError):
    """A driver could not perform its action or probe."""


class TargetNotFound(DriverError):
    """A target selector matched nothing (never treated as 'everything')."""


class SandboxError(MlchaosError):
    """The local sandbox could not be managed."""


class CertificateError(MlchaosError):
    """A certificate or key could not be created, read or written (here, not in ``mlchaos.lib.certificates``, so
    code can catch it without importing ``cryptography``)."""
