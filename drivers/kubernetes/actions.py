"""Kubernetes faults against model-serving workloads, and the rollbacks that undo exactly what they did.

Every fault validates its arguments before the API is asked anything, selects its targets,
announces a :class:`~mlchaos.driver_kit.ChangeRecord` *before* it changes anything
(``environment: kubernetes:<context>``, so an allow-list refuses a production context
before anything is touched; ``population``: every eligible pod's name) and returns it. The
undo names the rollback and the exact objects (names and uids). Dry runs select and
announce exactly as for real and change nothing.

The state a rollback needs is kept in the cluster: on the changed object itself, in an
``mlchaos.io/...`` annotation (the replica count before, the Service's previous selector and
ports, the removed annotation's value), except a Secret's previous data, which goes to the
Secret ``mlchaos-backups`` beside it, where ``kubectl describe`` does not print it. So a
rollback works from the change record, from an experiment's static rollback list
(``restore_secret(namespace, secret)``), from ``mlchaos recover`` on another machine, or from
a TTL watchdog. A fault refuses to stack on an object that still has a backup (undo the
earlier one first). Rollbacks are idempotent
(``already`` lists what needed nothing), go on past individual failures and raise one
DriverError naming every failure at the end.

Selection arguments of the pod faults: ``namespace``, ``label_selector``
(``"app=model,tier in (a,b)"`` or ``{app: model}``), ``field_selector``, ``name_pattern``,
``count`` / ``percentage`` (+ ``at_least_one``) / ``all``, ``seed``. Connection arguments of
every function: ``kubeconfig``, ``context``, ``in_cluster`` (or the experiment's
``configuration``: ``kubeconfig``, ``kube_context``, ``kube_in_cluster``).

This module is the driver's face: each fault family lives in a module of its own (pods:
:mod:`~drivers.kubernetes.deletion`, :mod:`~drivers.kubernetes.scaling`; TLS:
:mod:`~drivers.kubernetes.certificates`; telemetry: :mod:`~drivers.kubernetes.metrics_port`,
:mod:`~drivers.kubernetes.scrape_annotation`; latency: :mod:`~drivers.kubernetes.routing`), and
every function is reached here, as experiments, change records (undo) and watchdog command
lines name it: ``drivers.kubernetes.actions.restore_scale``.
"""

from __future__ import annotations

from drivers.kubernetes.backups import REPLICAS_BACKUP, SCRAPE_BACKUP, SECRET_BACKUP, SERVICE_BACKUP
from drivers.kubernetes.certificates import restore_secret, swap_tls_certificate
from drivers.kubernetes.client import preflight as preflight  # the validation hook (not an activity)
from drivers.kubernetes.deletion import delete_pods
from drivers.kubernetes.faults import GONE, SAFETY_TTL
from drivers.kubernetes.metrics_port import block_metrics_port, unblock_metrics_port
from drivers.kubernetes.netpol import BLOCK_LABEL
from drivers.kubernetes.routing import restore_service, route_through_proxy
from drivers.kubernetes.scaling import restore_scale, scale_workload
from drivers.kubernetes.scrape_annotation import SCRAPE_ANNOTATION, remove_scrape_annotation, restore_scrape_annotation
from drivers.kubernetes.secret_backups import BACKUP_SECRET

__all__ = [
    "BACKUP_SECRET", "BLOCK_LABEL", "GONE", "REPLICAS_BACKUP", "SAFETY_TTL", "SCRAPE_ANNOTATION", "SCRAPE_BACKUP",
    "SECRET_BACKUP", "SERVICE_BACKUP", "block_metrics_port", "delete_pods", "remove_scrape_annotation", "restore_scale",
    "restore_scrape_annotation", "restore_secret", "restore_service", "route_through_proxy", "scale_workload",
    "swap_tls_certificate", "unblock_metrics_port",
]
