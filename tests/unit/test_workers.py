"""The worker threads activities run on (mlchaos.experiment.workers): a job runs in its caller's context, its lock is
released when it has finished, a worker whose caller stopped waiting is not given a job until it returns, and then
is reused; several threads may hand over jobs at once. Timeouts are enforced by the caller's wait (a lock), so
these tests wait on events, never on time."""

from __future__ import annotations

import contextvars
import threading

from mlchaos.experiment.execution import Waiter, execute
from mlchaos.experiment.workers import POOL, WorkerPool

WHO = contextvars.ContextVar("who", default="nobody")


def test_a_job_runs_on_another_thread_in_its_callers_context() -> None:
    pool = WorkerPool()
    seen: dict[str, object] = {}
    token = WHO.set("the caller")
    try:
        done = pool.submit(lambda: seen.update(who=WHO.get(), thread=threading.get_ident()))
    finally:
        WHO.reset(token)
    assert done.acquire(timeout=30)
    assert seen == {"who": "the caller", "thread": seen["thread"]} and seen["thread"] != threading.get_ident()


def test_a_stuck_worker_is_left_alone_and_reused_once_it_returns() -> None:
    pool = WorkerPool()
    release, threads = threading.Event(), []
    stuck = pool.submit(lambda: (threads.append(threading.get_ident()), release.wait(30)))
    assert not stuck.acquire(timeout=0.05)  # its caller stops waiting (a timeout)
    for _ in range(3):  # meanwhile every job gets another worker, and that one is reused
        done = pool.submit(lambda: threads.append(threading.get_ident()))
        assert done.acquire(timeout=30)
    assert len(set(threads)) == 2 and threads[0] not in threads[1:]
    release.set()
    assert stuck.acquire(timeout=30)
    while len(pool._idle) < 2:  # the stuck one goes back to the pool right before it releases its lock
        threading.Event().wait(0.001)
    done = pool.submit(lambda: threads.append(threading.get_ident()))
    assert done.acquire(timeout=30) and threads[-1] in threads[:2]


def test_threads_may_hand_over_jobs_at_once() -> None:
    pool = WorkerPool()
    results: list[int] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        for step in range(50):
            box: list[int] = []
            assert pool.submit(lambda n=number * 100 + step, box=box: box.append(n)).acquire(timeout=30)
            with lock:
                results.extend(box)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(30)
    assert sorted(results) == sorted(n * 100 + step for n in range(4) for step in range(50))


def test_an_activity_that_outlives_its_timeout_is_abandoned_and_the_next_one_runs() -> None:
    """What the runner relies on: execute() stops waiting at the timeout; the late job keeps its worker."""
    release = threading.Event()
    spec = {"type": "probe", "name": "slow", "provider": {"type": "python", "module": "testdrivers", "func": "echo",
                                                            "arguments": {"value": 1}}}
    submitted = POOL.submit(lambda: release.wait(30))
    try:
        outcome = execute(spec, {}, {}, 30.0, Waiter())
        assert outcome.succeeded and outcome.output == 1
        late = execute({**spec, "provider": {**spec["provider"], "func": "sleep", "arguments": {"seconds": 2}}},
                       {}, {}, 0.05, Waiter())
        assert not late.succeeded and late.error == "timed out after 0.05s"
        again = execute(spec, {}, {}, 30.0, Waiter())
        assert again.succeeded and again.output == 1
    finally:
        release.set()
        assert submitted.acquire(timeout=30)
