"""The GPU memory hog without a GPU: the allocation plan, the helper's hold loop and the driver's records
run against a fake CUDA API; the real call path must say clearly that this machine has no CUDA driver."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.gpu import actions, cuda, planning, probes
from drivers.gpu.hog import MARKER, hold_memory
from mlchaos.errors import DriverError
from mlchaos.experiment.loader import parse_text
from mlchaos.experiment.validation import validate
from mlchaos.lib import procfs
from mlchaos.safety import watchdog
from mlchaos.safety.changes import reset_sink, set_sink

GiB = 1 << 30
MiB = planning.MiB


def _has_libcuda() -> bool:
    try:
        ctypes.CDLL(cuda.LIBRARY)
    except OSError:
        return False
    return True


class FakeContext:
    def __init__(self, gpu: FakeCuda) -> None:
        self.gpu = gpu

    def memory_info(self) -> tuple[int, int]:
        return self.gpu.memory_info(0)

    def allocate(self, nbytes: int) -> int:
        if nbytes > self.gpu.memory_info(0)[0]:
            raise cuda.CudaError("cuMemAlloc_v2", 2)
        self.gpu.pointers[len(self.gpu.pointers) + 1 + len(self.gpu.freed)] = nbytes
        return max(self.gpu.pointers)

    def free(self, pointer: int) -> None:
        self.gpu.freed.append(self.gpu.pointers.pop(pointer))


class FakeCuda:
    """A device of ``total`` bytes, ``other`` of them used by someone else."""

    def __init__(self, total: int = 80 * GiB, other: int = 0) -> None:
        self.total, self.other = total, other
        self.pointers: dict[int, int] = {}
        self.freed: list[int] = []
        self.contexts = 0

    def memory_info(self, device: int) -> tuple[int, int]:
        return self.total - self.other - sum(self.pointers.values()), self.total

    @contextmanager
    def context(self, device: int):  # noqa: ANN201
        self.contexts += 1
        try:
            yield FakeContext(self)
        finally:
            self.contexts -= 1


# -- the plan ---------------------------------------------------------------------------------------------------

def test_a_fraction_is_of_the_total_memory_in_chunks():
    plan = planning.plan(free=80 * GiB, total=80 * GiB, fraction=0.5)
    assert plan.planned_bytes == plan.requested_bytes == 40 * GiB and not plan.capped
    assert plan.chunks == [planning.CHUNK_BYTES] * 160


def test_the_default_is_nine_tenths_and_a_remainder_is_the_last_chunk():
    plan = planning.plan(free=7 * GiB, total=7 * GiB)
    assert plan.requested_bytes == int(7 * GiB * 0.9)
    assert sum(plan.chunks) == plan.planned_bytes and 0 < plan.chunks[-1] < planning.CHUNK_BYTES
    assert all(c == planning.CHUNK_BYTES for c in plan.chunks[:-1])


def test_never_more_than_the_free_memory_less_the_margin():
    plan = planning.plan(free=20 * GiB, total=80 * GiB, fraction=0.9)
    assert plan.capped and plan.planned_bytes == 20 * GiB - planning.margin(80 * GiB)
    assert planning.margin(80 * GiB) == int(80 * GiB * 0.02)
    assert planning.margin(4 * GiB) == 256 * MiB  # the floor on a small device


def test_bytes_are_taken_as_asked_when_they_fit():
    plan = planning.plan(free=8 * GiB, total=8 * GiB, nbytes=300 * MiB)
    assert plan.planned_bytes == 300 * MiB and plan.chunks == [256 * MiB, 44 * MiB]


@pytest.mark.parametrize(("fraction", "nbytes", "message"), [
    (0.99, None, "fraction must be a number in (0, 0.98]"),
    (0, None, "fraction must be"),
    (-0.1, None, "fraction must be"),
    (True, None, "fraction must be"),
    ("half", None, "fraction must be"),
    (0.5, GiB, "not both"),
    (None, 0, "bytes must be a positive integer"),
    (None, 1.5, "bytes must be a positive integer"),
])
def test_bad_requests_are_refused(fraction, nbytes, message):
    with pytest.raises(DriverError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        planning.plan(free=8 * GiB, total=8 * GiB, fraction=fraction, nbytes=nbytes)


def test_nothing_to_take_above_the_margin_is_refused():
    with pytest.raises(DriverError, match="nothing to take above the 256 MiB safety margin"):
        planning.plan(free=200 * MiB, total=8 * GiB, fraction=0.5)


def test_impossible_figures_are_refused():
    with pytest.raises(DriverError, match="impossible"):
        planning.plan(free=9 * GiB, total=8 * GiB)


# -- the helper's hold loop -------------------------------------------------------------------------------------

def test_the_helper_takes_reports_holds_and_frees_everything():
    gpu, reports = FakeCuda(total=8 * GiB), []
    clock = iter(range(100))
    outcome = hold_memory(gpu, 0, [GiB, GiB, 512 * MiB], hold=3, report=reports.append, stopped=lambda: False,
                          clock=lambda: float(next(clock)), sleep=lambda s: None)
    assert reports == [outcome] and outcome["allocated"] == 2.5 * GiB and outcome["free"] == 5.5 * GiB
    assert gpu.pointers == {} and sorted(gpu.freed) == [512 * MiB, GiB, GiB] and gpu.contexts == 0


def test_the_helper_is_all_or_nothing():
    gpu, reports = FakeCuda(total=8 * GiB, other=7 * GiB), []
    outcome = hold_memory(gpu, 0, [512 * MiB, 512 * MiB, 512 * MiB], hold=60, report=reports.append,
                          stopped=lambda: False)
    assert "chunk 3 of 3" in outcome["error"] and "out of memory" in outcome["error"]
    assert gpu.pointers == {} and len(gpu.freed) == 2


def test_the_helper_stops_when_told():
    gpu, calls = FakeCuda(total=8 * GiB), []
    hold_memory(gpu, 0, [GiB], hold=3600, report=lambda o: None, stopped=lambda: len(calls) >= 2,
                sleep=calls.append)
    assert len(calls) == 2 and gpu.pointers == {}


# -- the driver, on a fake device -------------------------------------------------------------------------------

@pytest.fixture
def gpu(monkeypatch):
    fake = FakeCuda(total=80 * GiB, other=4 * GiB)
    monkeypatch.setattr(actions, "_cuda", lambda: fake)
    return fake


def test_a_dry_run_plans_and_starts_nothing(gpu, monkeypatch):
    monkeypatch.setattr(actions, "_start_helper", lambda *a: pytest.fail("a dry run started the hog"))
    record = actions.hog_gpu_memory(fraction=0.5, device=0, dry_run=True)
    assert record["dry_run"] and record["parameters"]["planned_bytes"] == 40 * GiB
    assert record["undo"]["func"] == actions.RELEASE_FUNC and record["undo"]["arguments"]["token"]
    assert record["targets"][0]["name"] == "gpu0" and record["environment"].startswith("local:")


def test_the_record_is_announced_before_the_helper_starts_and_names_it(gpu, monkeypatch):
    announced, started, watchdogs = [], [], []

    def start(device, chunks, hold, token):
        assert announced, "the helper started before the record was announced"
        started.append((device, sum(chunks), hold, token))
        return {"pid": 4242, "start_time": 777, "free": 1}

    monkeypatch.setattr(actions, "_start_helper", start)
    monkeypatch.setattr(watchdog, "start_watchdog", lambda after, func, args: watchdogs.append((after, args)) or 99)
    token = set_sink(announced.append)
    try:
        record = actions.hog_gpu_memory(bytes=GiB, ttl=120, hold=30)
    finally:
        reset_sink(token)
    arguments = record["undo"]["arguments"]
    assert started == [(0, GiB, 30, arguments["token"])]
    assert arguments | {} == {"pid": 4242, "token": arguments["token"], "start_time": 777, "device": 0,
                              "free_before": 76 * GiB, "watchdog_pid": 99}
    assert watchdogs == [(120, {k: v for k, v in arguments.items() if k != "watchdog_pid"})]


def test_the_helper_holds_for_the_ttl_when_no_hold_is_given_and_a_hog_must_be_bounded(gpu, monkeypatch):
    holds = []
    monkeypatch.setattr(actions, "_start_helper", lambda d, c, hold, t: holds.append(hold) or {"pid": 1,
                                                                                           "start_time": 1})
    actions.hog_gpu_memory(fraction=0.1, ttl=None, hold=5)
    monkeypatch.setattr(watchdog, "start_watchdog", lambda *a: 2)
    actions.hog_gpu_memory(fraction=0.1, ttl=45)
    assert holds == [5, 45]
    with pytest.raises(DriverError, match="must be bounded"):
        actions.hog_gpu_memory(fraction=0.1, ttl=None)
    with pytest.raises(DriverError, match="ttl must be a positive number"):
        actions.hog_gpu_memory(fraction=0.1, ttl=0)


def test_the_probes_read_the_device(gpu):
    assert probes.gpu_memory_free_bytes(0) == 76 * GiB
    assert probes.gpu_memory_used_fraction(0) == 0.05


def _fake_helper(token: str) -> subprocess.Popen:
    """A process with the helper's command line (no CUDA): what release_gpu_memory must end."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", MARKER, "--token", token])
    deadline = time.monotonic() + 10
    while MARKER.encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return process


def test_release_ends_exactly_the_helper_and_is_idempotent(gpu):
    mine, other = _fake_helper("tok-mine"), _fake_helper("tok-other")
    try:
        start = procfs.start_time(mine.pid)
        result = actions.release_gpu_memory(pid=mine.pid, token="tok-mine", start_time=start,
                                            free_before=76 * GiB)
        assert result["ended"] == [mine.pid] and result["already"] == [] and result["memory_free_again"] is True
        assert mine.poll() is not None and other.poll() is None
        again = actions.release_gpu_memory(pid=mine.pid, token="tok-mine", start_time=start)
        assert again["ended"] == [] and again["already"] == [mine.pid]
    finally:
        for process in (mine, other):
            process.kill()
            process.wait()


def test_release_by_token_alone_and_never_a_reused_pid(gpu):
    helper = _fake_helper("tok-recover")
    try:
        wrong = actions.release_gpu_memory(pid=helper.pid, start_time=procfs.start_time(helper.pid) + 1)
        assert wrong["ended"] == [] and helper.poll() is None  # another process now has that pid: left alone
        assert actions.release_gpu_memory(token="tok-recover")["ended"] == [helper.pid]
    finally:
        helper.kill()
        helper.wait()
    with pytest.raises(DriverError, match="pid or its token"):
        actions.release_gpu_memory()


def test_release_says_when_the_memory_is_not_free_again(gpu, monkeypatch):
    monkeypatch.setattr(actions, "EXIT_TIMEOUT", 0.3)
    result = actions.release_gpu_memory(token="tok-none", free_before=79 * GiB)
    assert result["memory_free_again"] is False and result["free_bytes"] == 76 * GiB


# -- the real call path on this machine --------------------------------------------------------------------------

NO_DRIVER = "no CUDA driver (libcuda.so.1) on this machine: "
needs_no_cuda = pytest.mark.skipif(_has_libcuda(), reason="this machine has a CUDA driver")


@needs_no_cuda
def test_the_real_path_says_there_is_no_cuda_driver():
    with pytest.raises(cuda.CudaUnavailable) as caught:
        actions.hog_gpu_memory(fraction=0.5, dry_run=True)
    assert str(caught.value).startswith(NO_DRIVER)
    assert actions.preflight("hog_gpu_memory", {"fraction": 0.5})[0].startswith(NO_DRIVER)
    assert probes.preflight("gpu_memory_free_bytes", {})[0].startswith(NO_DRIVER)
    assert actions.preflight("release_gpu_memory", {"pid": 1}) == []  # a rollback is never refused


@needs_no_cuda
def test_validation_reports_the_missing_driver_before_anything_runs():
    doc = parse_text(
        "title: t\ndescription: d\nmethod:\n  - type: action\n    name: hog\n    provider:\n      type: python\n"
        "      module: drivers.gpu.actions\n      func: hog_gpu_memory\n      arguments: {fraction: 0.5}\n",
        Path("gpu.yaml"),
    )
    messages = [p.message for p in validate(doc)]
    assert any(m.startswith(NO_DRIVER) for m in messages), messages


@needs_no_cuda
def test_the_helper_process_reports_the_missing_driver_in_one_line():
    done = subprocess.run([sys.executable, "-m", MARKER, "--device", "0", "--chunks", "[1024]", "--hold", "1"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout.startswith('{"error": "no CUDA driver (libcuda.so.1)')
    assert "Traceback" not in done.stderr


def test_a_bad_fraction_is_refused_at_validation_whatever_the_machine():
    assert "fraction must be" in actions.preflight("hog_gpu_memory", {"fraction": 0.99})[0]
