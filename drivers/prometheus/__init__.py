"""Prometheus: alert probes (``probes``) and monitoring faults such as an injected or broken rule file (``actions``).

Without a ``url`` argument they talk to the sandbox monitoring stack
(:mod:`drivers.prometheus.sandbox`: :func:`mlchaos.sandbox.monitoring_stack.endpoints`).
"""
