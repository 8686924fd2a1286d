"""Kubernetes faults and probes against model-serving workloads in staging clusters.

Pods are chosen by :mod:`drivers.kubernetes.selection` (a namespace, a label selector
and/or a name pattern, optionally a field selector; never everything, never a pod labelled
``mlchaos.skip=true``); :mod:`drivers.kubernetes.client` connects (kubeconfig + context,
or the pod's service account) and translates every API error into mlchaos errors. The
``kubernetes`` client is imported only when a driver function runs.
"""
