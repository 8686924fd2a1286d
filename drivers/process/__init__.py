"""Process faults on sandbox model-server replicas (kill, terminate, pause) and their probes.

Only processes recorded in the sandbox state are ever signalled, and each pid is
checked against ``/proc/<pid>/cmdline`` just before the signal.
"""
