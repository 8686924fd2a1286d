"""Compare mlchaos with Chaos Toolkit's ``chaos`` CLI: startup, validation and runner overhead.

Run from anywhere:

    .venv/bin/python benchmarks/startup_and_overhead.py [--runs N] [--probes P]

It prints figures only; nothing here asserts anything about timing. Every figure is the
median wall-clock time of N subprocess runs (time.perf_counter around subprocess.run),
mlchaos and chaos runs alternated, after one discarded warm-up run of each command.
chaos gets --no-version-check (no network) and --no-log-file (no chaostoolkit.log in the
working directory), and HOME points to an empty temporary folder for both tools.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MLCHAOS = str(BIN / "mlchaos")
CHAOS = str(BIN / "chaos")
EXPERIMENT = "experiments/kill-one-replica.yaml"
# Global chaos options: never look for a new version online, never write chaostoolkit.log.
CHAOS_GLOBAL = ["--no-version-check", "--no-log-file"]


def env_with(pythonpath: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    env["HOME"] = home  # keep chaos away from the user's ~/.chaostoolkit settings
    # Let both tools cache bytecode as they would for a user (the warm-up run writes the .pyc files).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_once(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    return time.perf_counter() - start, proc


def measure_pair(ml_cmd: list[str], ch_cmd: list[str], runs: int, cwd: str, env: dict[str, str],
                 ml_after=None, ch_after=None):
    """Time both commands, alternating mlchaos and chaos so background load hits both alike.

    One warm-up run of each is discarded (page cache, .pyc files). Returns, per tool,
    (sorted times in seconds, the last CompletedProcess, after() results of the timed runs).
    """
    result = {}
    for key, cmd, after in (("ml", ml_cmd, ml_after), ("ch", ch_cmd, ch_after)):
        _, proc = time_once(cmd, cwd, env)
        if after:
            after(proc)
        result[key] = ([], proc, [])
    for _ in range(runs):
        for key, cmd, after in (("ml", ml_cmd, ml_after), ("ch", ch_cmd, ch_after)):
            elapsed, proc = time_once(cmd, cwd, env)
            times, _, checks = result[key]
            times.append(elapsed)
            if after:
                checks.append(after(proc))
            result[key] = (times, proc, checks)
    return tuple((sorted(t), p, c) for t, p, c in (result["ml"], result["ch"]))


def count_probes(journal: dict) -> int:
    """Probe runs recorded in a Chaos Toolkit-format journal (hypothesis, method, rollbacks)."""
    total = 0
    for when in ("before", "after"):
        state = (journal.get("steady_states") or {}).get(when) or {}
        total += len(state.get("probes") or [])
    for during in (journal.get("steady_states") or {}).get("during") or []:
        total += len((during or {}).get("probes") or [])
    for section in ("run", "rollbacks"):
        total += sum(1 for r in journal.get(section) or [] if r.get("activity", {}).get("type") == "probe")
    return total


def journal_summary(path: Path) -> tuple[str, int, int]:
    """(status, probe runs, failed probe runs) from a journal file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__})", -1, -1
    failed = sum(1 for r in data.get("run") or [] if r.get("status") != "succeeded")
    for when in ("before", "after"):
        state = (data.get("steady_states") or {}).get(when) or {}
        failed += sum(1 for p in state.get("probes") or [] if p.get("status") != "succeeded")
    return str(data.get("status")), count_probes(data), failed


CONTROL_HOOKS = [f"{scope}_{level}_control" for level in ("experiment", "hypothesis", "method", "rollback", "activity")
                 for scope in ("before", "after")]


def write_overhead_experiment(tmp: Path, probes: int, control: bool = False) -> Path:
    """``probes`` trivial hypothesis probes and one in the method; with ``control``, a Chaos Toolkit control that
    declares every hook and does nothing (what each control call costs)."""
    (tmp / "benchprobes.py").write_text("def ok() -> bool:\n    return True\n", encoding="utf-8")
    (tmp / "benchcontrol.py").write_text("".join(f"def {hook}(context, **kwargs):\n    return None\n\n\n"
                                                 for hook in CONTROL_HOOKS), encoding="utf-8")

    def probe(name: str, tolerance: bool = True) -> dict:
        item = {"type": "probe", "name": name,
                "provider": {"type": "python", "module": "benchprobes", "func": "ok"}}
        if tolerance:
            item["tolerance"] = True
        return item

    experiment = {
        "version": "1.0.0",
        "title": f"{probes} trivial probes",
        "description": "Runner overhead benchmark: every probe returns True at once.",
        "steady-state-hypothesis": {
            "title": "all trivial probes return true",
            "probes": [probe(f"ok-{i:03d}") for i in range(probes)],
        },
        "method": [probe("method-ok", tolerance=False)],
        "rollbacks": [],
    }
    if control:
        experiment["controls"] = [{"name": "noop", "provider": {"type": "python", "module": "benchcontrol"}}]
    path = tmp / ("overhead-control.json" if control else "overhead.json")
    path.write_text(json.dumps(experiment, indent=2), encoding="utf-8")
    return path


def rc_list(values) -> str:
    values = sorted(set(values))
    return ",".join(str(v) for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None,
                        help="timed runs per command (default: 15 for startup/validation, 5 for overhead)")
    parser.add_argument("--probes", type=int, default=200, help="steady-state probes in the overhead experiment")
    args = parser.parse_args()
    startup_runs = args.runs or 15
    overhead_runs = args.runs or 5

    # versions for the header only
    import chaoslib
    import chaostoolkit

    import mlchaos

    print(f"machine: nproc={os.cpu_count()}  python {platform.python_version()} ({sys.executable})")
    print(f"         {platform.platform()}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"         load average at start: {load}")
    print(f"versions: mlchaos {mlchaos.__version__}, chaostoolkit {chaostoolkit.__version__}, "
          f"chaostoolkit-lib {chaoslib.__version__}")
    print(f"runs: {startup_runs} (startup, validation), {overhead_runs} (run); median wall time of "
          "subprocess.run, mlchaos/chaos runs alternated, one warm-up run of each discarded")
    print()

    # (label, mlchaos sorted times, chaos sorted times, exit codes text)
    rows: list[tuple[str, list[float], list[float], str]] = []
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="mlchaos-bench-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir()
        repo_env = env_with(str(REPO), str(home))

        # 1. startup
        (ml_t, ml_p, ml_codes), (ch_t, ch_p, ch_codes) = measure_pair(
            [MLCHAOS, "--help"], [CHAOS, "--help"], startup_runs, str(REPO), repo_env,
            ml_after=lambda p: p.returncode, ch_after=lambda p: p.returncode)
        rows.append(("startup: --help", ml_t, ch_t, f"{rc_list(ml_codes)} / {rc_list(ch_codes)}"))

        # 2. validation of the repo's experiment (drivers importable from the repo root)
        (ml_t, ml_p, ml_codes), (ch_t, ch_p, ch_codes) = measure_pair(
            [MLCHAOS, "validate", EXPERIMENT], [CHAOS, *CHAOS_GLOBAL, "validate", EXPERIMENT],
            startup_runs, str(REPO), repo_env,
            ml_after=lambda p: p.returncode, ch_after=lambda p: p.returncode)
        rows.append((f"validate {Path(EXPERIMENT).name}", ml_t, ch_t, f"{rc_list(ml_codes)} / {rc_list(ch_codes)}"))
        if any(ml_codes):
            notes.append("validate: mlchaos REJECTED the experiment: " + (ml_p.stdout + ml_p.stderr).strip()[-400:])
        if any(ch_codes):
            notes.append("validate: chaos REJECTED the experiment: " + (ch_p.stdout + ch_p.stderr).strip()[-400:])
        if not any(ml_codes) and not any(ch_codes):
            notes.append("validate: both tools accept the experiment (exit 0 on every run)")

        # 3. runner overhead: the same experiment with 1 and with N hypothesis probes
        probe_env = env_with("", str(home))
        runs_by_size: dict[int, tuple[list[float], list[float], list, list]] = {}
        for size, control in ((1, False), (args.probes, False), (args.probes, True)):
            work = tmp / f"work-{size}{'-control' if control else ''}"
            work.mkdir()
            experiment = write_overhead_experiment(work, size, control)
            probe_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(work), os.environ.get("PYTHONPATH", "")) if p)
            j1, j2 = work / "journal-mlchaos.json", work / "journal-chaos.json"
            ml_cmd = [MLCHAOS, "run", str(experiment), "--journal", str(j1), "--quiet"]
            ch_cmd = [CHAOS, *CHAOS_GLOBAL, "run", str(experiment), "--journal-path", str(j2)]

            def check(journal: Path):
                def after(proc: subprocess.CompletedProcess):
                    summary = (proc.returncode, *journal_summary(journal))
                    journal.unlink(missing_ok=True)
                    return summary
                return after

            (ml_t, ml_p, ml_checks), (ch_t, ch_p, ch_checks) = measure_pair(
                ml_cmd, ch_cmd, overhead_runs, str(work), probe_env, ml_after=check(j1), ch_after=check(j2))
            if not control:
                runs_by_size[size] = (ml_t, ch_t, ml_checks, ch_checks)
            label = f"run: {size}+1 trivial probes" + (", a no-op control on every hook" if control else "")
            rows.append((label, ml_t, ch_t,
                         f"{rc_list(c[0] for c in ml_checks)} / {rc_list(c[0] for c in ch_checks)}"))

            def describe(name: str, checks, proc) -> str:
                statuses = rc_list(c[1] for c in checks)
                line = (f"{name:<8} journal status={statuses}  probe runs={rc_list(c[2] for c in checks)}"
                        f"  failed probes={rc_list(c[3] for c in checks)}")
                if any(c[0] for c in checks) or statuses != "completed":
                    line += "\n           output: " + (proc.stdout + proc.stderr).strip()[-400:]
                return line

            equal = (rc_list(c[2] for c in ml_checks) == rc_list(c[2] for c in ch_checks)
                     and all(c[1] == "completed" for c in ml_checks + ch_checks))
            notes.append(f"run journals, {size}+1 probes{' with a control' if control else ''} (checked after every "
                         "run):")
            notes.append("  " + describe("mlchaos", ml_checks, ml_p))
            notes.append("  " + describe("chaos", ch_checks, ch_p))
            notes.append("  same work: " + ("yes, both completed with the same number of probe runs" if equal
                                            else "NO -- these timings are not about equal work"))

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    def spread(times: list[float]) -> str:
        return f"{ms(times[0])}-{ms(times[-1])}"

    med = statistics.median
    width = max(len(r[0]) for r in rows)
    header = (f"{'measurement':<{width}}  {'mlchaos ms':>10}  {'(min-max)':>13}  {'chaos ms':>9}  {'(min-max)':>13}"
              f"  {'mlchaos/chaos':>13}  exit (ml / chaos)")
    print(header)
    print("-" * len(header))
    for name, ml, ch, codes in rows:
        print(f"{name:<{width}}  {ms(med(ml)):>10}  {spread(ml):>13}  {ms(med(ch)):>9}  {spread(ch):>13}"
              f"  {med(ml) / med(ch):>12.2f}x  {codes}")
    print()

    small, big = runs_by_size[1], runs_by_size[args.probes]
    big_runs = max((c[2] for c in big[2]), default=0)
    small_runs = max((c[2] for c in small[2]), default=0)
    if big_runs > 0:
        ml_per, ch_per = med(big[0]) / big_runs, med(big[1]) / big_runs
        print(f"per probe run, whole {args.probes}+1-probe run / {big_runs} probe runs (startup included):")
        print(f"    mlchaos {ml_per * 1000:.3f} ms   chaos {ch_per * 1000:.3f} ms   ratio {ml_per / ch_per:.2f}x")
    if big_runs > small_runs:
        extra = big_runs - small_runs
        ml_marginal = (med(big[0]) - med(small[0])) / extra
        ch_marginal = (med(big[1]) - med(small[1])) / extra
        ratio = f"{ml_marginal / ch_marginal:.2f}x" if ch_marginal > 0 else "n/a (chaos figure lost in noise)"
        print(f"per probe run, marginal: ({args.probes}+1-probe run - 1+1-probe run) / {extra} extra probe runs:")
        print(f"    mlchaos {ml_marginal * 1000:.3f} ms   chaos {ch_marginal * 1000:.3f} ms   ratio {ratio}")
        ml_low = (big[0][0] - small[0][0]) / extra
        ch_low = (big[1][0] - small[1][0]) / extra
        ratio = f"{ml_low / ch_low:.2f}x" if ch_low > 0 else "n/a (chaos figure lost in noise)"
        print("    same from the fastest runs (less sensitive to other load on the machine):")
        print(f"    mlchaos {ml_low * 1000:.3f} ms   chaos {ch_low * 1000:.3f} ms   ratio {ratio}")
    print()
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
