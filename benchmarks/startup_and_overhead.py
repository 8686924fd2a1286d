"""Compare mlchaos with Chaos Toolkit's ``chaos`` CLI: startup, validation and runner overhead.

Run from anywhere:

    .venv/bin/python benchmarks/startup_and_overhead.py [--runs N] [--probes P ...] [--baseline DIR]

It prints figures only; nothing here asserts anything about timing. Every figure is the
median wall-clock time of N subprocess runs (time.perf_counter around subprocess.run),
mlchaos and chaos runs alternated, after one discarded warm-up run of each command. The runs of
every experiment size are alternated together (each round runs every size of every tool), so the
per-activity figures, differences between sizes, do not drift with the machine's load; they are
also given in CPU time (user + system of the process, from getrusage), which load changes less.
``--baseline DIR`` times a second mlchaos checkout (its ``mlchaos`` and ``drivers`` first on
PYTHONPATH) in the same alternation: before and after a change, side by side in one run.
chaos gets --no-version-check (no network) and --no-log-file (no chaostoolkit.log in the
working directory), and HOME points to an empty temporary folder for both tools.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
NAMES = {"ml": "mlchaos", "base": "baseline", "ch": "chaos"}
# chaos as `pip install chaostoolkit` gives it: the CLI plugins other packages in the venv register (such as
# chaostoolkit-reporting's `report`, which imports matplotlib on every command) are hidden while it loads
CHAOS_BARE = (
    "import importlib.metadata as m, sys\n"
    "every = m.entry_points\n"
    "def plugins_hidden(**kw):\n"
    "    if not kw:\n"
    "        raise AttributeError('no dict interface: chaostoolkit asks again with a group')\n"
    "    return m.EntryPoints(()) if kw.get('group') == 'chaostoolkit.cli_plugins' else every(**kw)\n"
    "m.entry_points = plugins_hidden\n"
    "from chaostoolkit.__main__ import cli\n"
    "m.entry_points = every\n"
    "sys.argv[0] = 'chaos'\n"
    "sys.exit(cli())\n"
)
# Global chaos options: never look for a new version online, never write chaostoolkit.log.
CHAOS_GLOBAL = ["--no-version-check", "--no-log-file"]


def env_with(pythonpath: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    env["HOME"] = home  # keep chaos away from the user's ~/.chaostoolkit settings
    # Let both tools cache bytecode as they would for a user (the warm-up run writes the .pyc files).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_once(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess, float]:
    """(wall seconds, the process, its CPU seconds: user + system, its own children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(commands: dict, runs: int, cwd: str, after=None):
    """Time every command (key -> (argv, env) or (argv, env, cwd)), alternating them so background load hits all
    alike.

    One warm-up run of each is discarded (page cache, .pyc files). Returns, per key,
    (sorted times in seconds, the last CompletedProcess, after(key, proc) results of the timed runs,
    sorted CPU seconds).
    """
    def run(key, command):
        cmd, env, *where = command
        return time_once(cmd, where[0] if where else cwd, env)

    result: dict = {}
    for key, command in commands.items():
        _, proc, _ = run(key, command)
        if after:
            after(key, proc)
        result[key] = ([], proc, [], [])
    for _ in range(runs):
        for key, command in commands.items():
            elapsed, proc, cpu = run(key, command)
            times, _, checks, cpus = result[key]
            times.append(elapsed)
            cpus.append(cpu)
            if after:
                checks.append(after(key, proc))
            result[key] = (times, proc, checks, cpus)
    return {key: (sorted(t), p, c, sorted(u)) for key, (t, p, c, u) in result.items()}


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


def write_overhead_experiment(tmp: Path, probes: int) -> Path:
    (tmp / "benchprobes.py").write_text("def ok() -> bool:\n    return True\n", encoding="utf-8")

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
    path = tmp / "overhead.json"
    path.write_text(json.dumps(experiment, indent=2), encoding="utf-8")
    return path


def chaos_cli_plugins() -> list[str]:
    """``name (distribution)`` of every chaostoolkit CLI plugin installed (entry points the chaos CLI loads)."""
    from importlib.metadata import entry_points

    return sorted(f"{ep.name} ({ep.dist.name if ep.dist else '?'})"
                  for ep in entry_points(group="chaostoolkit.cli_plugins"))


def rc_list(values) -> str:
    values = sorted(set(values))
    return ",".join(str(v) for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None,
                        help="timed runs per command (default: 15 for startup/validation, 5 for overhead)")
    parser.add_argument("--probes", type=int, nargs="+", default=[200, 2000],
                        help="steady-state probes in the overhead experiments (default: 200 2000)")
    parser.add_argument("--chaos-plugins", action="store_true",
                        help="let chaos load the CLI plugins installed in the venv (hidden by default)")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="another mlchaos checkout (e.g. main's) timed alongside: before and after")
    args = parser.parse_args()
    startup_runs = args.runs or 15
    overhead_runs = args.runs or 5
    baseline = str(Path(args.baseline).resolve()) if args.baseline else None
    plugins = chaos_cli_plugins()
    chaos = [CHAOS] if args.chaos_plugins or not plugins else [sys.executable, "-c", CHAOS_BARE]

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
    print(f"mlchaos: {REPO}" + (f"; baseline: {baseline}" if baseline else ""))
    if plugins:  # chaos imports every one at start-up (chaostoolkit-reporting brings matplotlib: seconds)
        print(f"chaos CLI plugins installed: {', '.join(plugins)}: "
              + ("loaded (--chaos-plugins)" if args.chaos_plugins else "hidden, as a plain chaostoolkit install"))
    print(f"runs: {startup_runs} (startup, validation), {overhead_runs} (run); median wall time of "
          "subprocess.run, the tools' runs alternated, one warm-up run of each discarded")
    print()

    keys = ["ml", "base", "ch"] if baseline else ["ml", "ch"]
    # (label, {key: sorted times}, exit codes text)
    rows: list[tuple[str, dict[str, list[float]], str]] = []
    notes: list[str] = []

    def codes_of(measured) -> str:
        return " / ".join(rc_list(measured[k][2]) for k in keys)

    with tempfile.TemporaryDirectory(prefix="mlchaos-bench-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir()
        code_of = {"ml": str(REPO), "base": baseline, "ch": str(REPO)}
        envs = {k: env_with(code_of[k], str(home)) for k in keys}

        def rc(_key: str, proc: subprocess.CompletedProcess) -> int:
            return proc.returncode

        # 1. startup
        commands = {k: ([*chaos, "--help"] if k == "ch" else [MLCHAOS, "--help"], envs[k]) for k in keys}
        measured = measure(commands, startup_runs, str(REPO), rc)
        rows.append(("startup: --help", {k: measured[k][0] for k in keys}, codes_of(measured)))

        # 2. validation of the repo's experiment (drivers importable from the checkout's root)
        commands = {k: ([*chaos, *CHAOS_GLOBAL, "validate", EXPERIMENT] if k == "ch"
                        else [MLCHAOS, "validate", EXPERIMENT], envs[k]) for k in keys}
        measured = measure(commands, startup_runs, str(REPO), rc)
        rows.append((f"validate {Path(EXPERIMENT).name}", {k: measured[k][0] for k in keys}, codes_of(measured)))
        for k in keys:
            if any(measured[k][2]):
                proc = measured[k][1]
                notes.append(f"validate: {NAMES[k]} REJECTED the experiment: "
                             + (proc.stdout + proc.stderr).strip()[-400:])
        if not any(any(measured[k][2]) for k in keys):
            notes.append("validate: every tool accepts the experiment (exit 0 on every run)")

        # 3. runner overhead: the same experiment with 1 and with N hypothesis probes, every size of every tool in
        # one alternation (a run of each per round): load that changes while they run hits every size alike, and
        # the per-activity figures, differences between sizes, do not drift with it
        sizes = (1, *args.probes)
        commands, journals = {}, {}
        for size in sizes:
            work = tmp / f"work-{size}"
            work.mkdir()
            experiment = write_overhead_experiment(work, size)
            for k in keys:
                journal = journals[(size, k)] = work / f"journal-{k}.json"
                env = dict(envs[k])
                env["PYTHONPATH"] = os.pathsep.join(p for p in (str(work), env["PYTHONPATH"]) if p)
                cmd = ([*chaos, *CHAOS_GLOBAL, "run", str(experiment), "--journal-path", str(journal)]
                       if k == "ch" else [MLCHAOS, "run", str(experiment), "--journal", str(journal), "--quiet"])
                commands[(size, k)] = (cmd, env, str(work))

        def check(key: tuple[int, str], proc: subprocess.CompletedProcess) -> tuple:
            summary = (proc.returncode, *journal_summary(journals[key]))
            journals[key].unlink(missing_ok=True)
            return summary

        all_sizes = measure(commands, overhead_runs, str(tmp), check)
        runs_by_size: dict[int, dict[str, tuple[list[float], list, list[float]]]] = {}
        for size in sizes:
            measured = {k: all_sizes[(size, k)] for k in keys}
            runs_by_size[size] = {k: (measured[k][0], measured[k][2], measured[k][3]) for k in keys}
            rows.append((f"run: {size}+1 trivial probes", {k: measured[k][0] for k in keys},
                         " / ".join(rc_list(c[0] for c in measured[k][2]) for k in keys)))

            def describe(key: str, measured: dict = measured) -> str:
                _, proc, checks, _ = measured[key]
                statuses = rc_list(c[1] for c in checks)
                line = (f"{NAMES[key]:<8} journal status={statuses}  probe runs={rc_list(c[2] for c in checks)}"
                        f"  failed probes={rc_list(c[3] for c in checks)}")
                if any(c[0] for c in checks) or statuses != "completed":
                    line += "\n           output: " + (proc.stdout + proc.stderr).strip()[-400:]
                return line

            counts = {rc_list(c[2] for c in measured[k][2]) for k in keys}
            equal = len(counts) == 1 and all(c[1] == "completed" for k in keys for c in measured[k][2])
            notes.append(f"run journals, {size}+1 probes (checked after every run):")
            notes.extend("  " + describe(k) for k in keys)
            notes.append("  same work: " + ("yes, all completed with the same number of probe runs" if equal
                                            else "NO -- these timings are not about equal work"))

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    def spread(times: list[float]) -> str:
        return f"{ms(times[0])}-{ms(times[-1])}"

    med = statistics.median
    width = max(len(r[0]) for r in rows)
    header = f"{'measurement':<{width}}"
    for k in keys:
        header += f"  {NAMES[k] + ' ms':>12}  {'(min-max)':>13}"
    header += "".join(f"  {NAMES[k] + '/chaos':>14}" for k in keys if k != "ch")
    header += "  exit (" + " / ".join(NAMES[k] for k in keys) + ")"
    print(header)
    print("-" * len(header))
    for name, times, codes in rows:
        line = f"{name:<{width}}"
        for k in keys:
            line += f"  {ms(med(times[k])):>12}  {spread(times[k]):>13}"
        line += "".join(f"  {med(times[k]) / med(times['ch']):>13.2f}x" for k in keys if k != "ch")
        print(f"{line}  {codes}")
    print()

    small = runs_by_size[1]
    for size in args.probes:
        big = runs_by_size[size]
        big_runs = max((c[2] for c in big["ch"][1]), default=0)
        small_runs = max((c[2] for c in small["ch"][1]), default=0)
        if big_runs <= small_runs:
            continue
        extra = big_runs - small_runs
        print(f"per-activity overhead, {size}+1 probes: (its run - the 1+1-probe run) / {extra} extra probe runs")
        for label, pick, column in (("medians", lambda t: med(t), 0), ("fastest runs", lambda t: t[0], 0),
                                    ("cpu, medians", lambda t: med(t), 2)):
            per = {k: (pick(big[k][column]) - pick(small[k][column])) / extra for k in keys}
            parts = "   ".join(f"{NAMES[k]} {per[k] * 1000:.3f} ms" for k in keys)
            ratios = "   ".join(f"{NAMES[k]}/chaos {per[k] / per['ch']:.2f}x" if per["ch"] > 0 else "n/a"
                               for k in keys if k != "ch")
            print(f"    {label + ':':<14}{parts}   {ratios}")
    print()
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
