"""GPU faults: exhaust a GPU's memory with a bounded hog held by a detached helper process.

Plain CUDA driver calls through ctypes (``cuda.py``); the allocation plan is pure Python
(``planning.py``); the helper process is ``python -m drivers.gpu.hog``.
"""
