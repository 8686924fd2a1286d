"""A local sandbox of model-server replicas to run chaos experiments against.

The public entry points are :class:`mlchaos.sandbox.manager.Sandbox` (start,
stop, inspect and restart replicas) and the reference OIP model server in
:mod:`mlchaos.sandbox.model_server`.
"""
