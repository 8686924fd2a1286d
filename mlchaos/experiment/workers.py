"""The daemon threads activities run on, so that a caller can stop waiting for one (its timeout) and move on.

A worker runs one job at a time and goes back to the pool when it has finished; one stuck past its caller's
timeout is simply not reused until it returns (a new one is started meanwhile). The caller gets a lock,
released when the job has finished.

A job reaches its worker through a pipe: writing one byte releases the GIL and wakes the worker in the same
system call, so the worker takes the GIL at once, while the caller goes on to wait. Handed over through a
queue, the worker woke up while the caller still held the GIL and had to be woken a second time to get it:
about three times the cost of handing over a trivial activity (benchmarks/README.md).
"""

from __future__ import annotations

import _thread
import contextvars
import os
import threading
from collections.abc import Callable

LockType = _thread.LockType


class _Worker:
    """One daemon thread, its pipe of jobs and its current job."""

    __slots__ = ("job", "reader", "writer")

    def __init__(self) -> None:
        self.reader, self.writer = os.pipe()
        self.job: tuple[contextvars.Context, Callable[[], None], LockType] | None = None


class WorkerPool:
    """Daemon threads that run jobs; an idle one is reused (starting a thread per job costs about twice as much)."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._guard = _thread.allocate_lock()

    def submit(self, func: Callable[[], None]) -> LockType:
        """Run ``func`` on a worker; the returned lock is released when it has finished."""
        done = _thread.allocate_lock()
        done.acquire()
        with self._guard:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker()
            threading.Thread(target=self._work, args=(worker,), daemon=True, name="mlchaos-activity").start()
        worker.job = (contextvars.copy_context(), func, done)
        os.write(worker.writer, b"\0")
        return done

    def _work(self, worker: _Worker) -> None:
        while True:
            os.read(worker.reader, 1)
            job, worker.job = worker.job, None
            if job is None:  # never: one byte per job, written after the job
                continue
            context, func, done = job
            try:
                context.run(func)
            finally:
                with self._guard:  # back in the pool before the caller wakes: its next job may come at once
                    self._idle.append(worker)
                done.release()


POOL = WorkerPool()


def in_background(func: Callable[[], None]) -> LockType:
    """Run ``func`` on a worker thread; the returned lock is released when it has finished."""
    return POOL.submit(func)
