"""Docker container faults (kill, stop, pause, restart, hold down, block a port, netem, certificate swap) and probes.

Targets are chosen by :mod:`drivers.docker.selection` (labels and/or a name pattern, optionally
one compose project; never everything, never a container labelled ``mlchaos.skip=true``).
The ``docker`` SDK is imported only when a driver function runs.
"""
