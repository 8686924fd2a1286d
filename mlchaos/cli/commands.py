"""The work behind each CLI command (argument parsing stays in ``cli``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlchaos.engine import exit_codes
from mlchaos.engine.console import Console
from mlchaos.engine.summary import print_summary
from mlchaos.errors import InvalidInput, MlchaosError
from mlchaos.experiment.pipeline import load_checked
from mlchaos.experiment.problems import Problem, ProblemList


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was executed.", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """``mlchaos run``: validate, then run one experiment."""
    from mlchaos.cli.report import preflight
    from mlchaos.engine.runner import Runner
    from mlchaos.journal.redaction import redacted_output

    try:
        experiment, variables = load_checked(args.file, args.var, args.var_file)
    except ProblemList as exc:
        _print_problems(exc.problems)
        return exit_codes.INVALID
    for problem in preflight(args):  # report and metrics options: fail before the drill, not after
        print(f"error: {problem}\nnothing was executed.", file=sys.stderr)
        return exit_codes.INVALID
    console = Console(quiet=args.quiet)
    journal = Path(args.journal) if args.journal else None
    mode = " (dry run: actions are not applied)" if args.dry_run else ""
    console.write(f"mlchaos run: {experiment.title}{mode}")
    console.write(f"  file: {experiment.source}   journal: {journal or 'none'}")
    with redacted_output(lambda: console.redactor):  # drivers' prints and logs, plan, summary: no secrets
        try:
            result = Runner(experiment, variables, journal, console, dry_run=args.dry_run).run()
        except InvalidInput as exc:
            print(f"error: {exc}\nnothing was executed.", file=sys.stderr)
            return exit_codes.INVALID
        if result.dry_run:
            print_plan(result)
        print_summary(result)
        publish_results(args, result)
    return result.exit_code


def publish_results(args: argparse.Namespace, result) -> None:
    """--report-dir, --metrics-textfile, --pushgateway: errors are printed; the run's exit code stands."""
    from mlchaos.cli.report import publish_run

    for error in publish_run(args, result.journal_path, result.dry_run):
        print(f"error: {error}", file=sys.stderr)


def report(args: argparse.Namespace) -> int:
    """``mlchaos report``: HTML, JUnit XML and Markdown reports of journals (mlchaos.reports)."""
    from mlchaos.cli.report import report_command

    return report_command(args)


def plan(args: argparse.Namespace) -> int:
    """``mlchaos plan``: resolve every target, exercise the probes, check the bounds; change nothing."""
    args.dry_run = True
    return run(args)


def print_plan(result) -> None:
    """What a run would do: each action's targets and undo, the guards, the bounds."""
    from mlchaos.safety.changes import is_change_record

    print()
    print(f"plan: {result.title}")
    for activity, outcome in result.planned:
        if activity.kind != "action":
            state = "ok" if outcome.succeeded else f"FAILED: {outcome.error}"
            print(f"  probe  {activity.name}  ({activity.target}): {state}")
            continue
        print(f"  action {activity.name}  ({activity.target})")
        output = outcome.output
        if not outcome.succeeded:
            print(f"         could not be resolved: {outcome.error}")
        elif is_change_record(output):
            targets = output.get("targets") or []
            population = output.get("population") or []
            for target in targets:
                details = target.get("details") or {}
                # the instance first (what alerts name), a container id short as docker shows it
                extra = ", ".join(f"{k} {str(details[k])[:12] if k == 'id' else details[k]}"
                                  for k in ("instance", "pid", "id", "url") if details.get(k))
                verb = "would send traffic to" if target.get("kind") == "traffic" else f"would hit {target.get('kind')}"
                print(f"         {verb} {target.get('name')}" + (f" ({extra[:120]})" if extra else ""))
            if population:
                print(f"         chosen from {len(population)} eligible: {', '.join(population[:10])}"
                      + (" ..." if len(population) > 10 else ""))
            print(f"         environment: {output.get('environment') or 'not reported by the driver'}")
            undo = output.get("undo") or {}
            if undo.get("func"):
                arguments = ", ".join(f"{k}={v!r}" for k, v in (undo.get("arguments") or {}).items())
                print(f"         undo: {undo['func']}({arguments[:160]})")
        else:
            print(f"         not resolved in advance: {output}")
    for guard in result.guards:
        print(f"  guard  {guard['name']}: now {guard['last_value']!r}")
    if result.bounds:
        print("  bounds:")
        for line in result.bounds:
            print(f"    {line}")
    else:
        print("  bounds: none declared (blast_radius, allowed_environments, MLCHAOS_ALLOWED_ENVIRONMENTS)")
    for refusal in result.refusals:
        print(f"  REFUSED: {refusal}")


def stop(args: argparse.Namespace) -> int:
    """``mlchaos stop``: engage the emergency stop (abort every run on this host), or clear it."""
    import time

    from mlchaos.safety import run_registry

    if args.clear:
        print("emergency stop cleared" if run_registry.clear_stop() else "the emergency stop was not engaged")
        return exit_codes.OK
    run_registry.engage_stop(args.reason)
    live = [e for e in run_registry.registered() if e.runner_alive()]
    for entry in live:
        run_registry.signal_abort(entry)
        print(f"aborting run {entry.run_id} (pid {entry.pid}): {entry.experiment}")
    print(f"emergency stop engaged: {len(live)} run(s) told to abort and roll back; new runs are refused "
          "until `mlchaos stop --clear`")
    deadline = time.monotonic() + args.wait
    while live and time.monotonic() < deadline:
        live = [e for e in live if e.registry_file.exists() and e.runner_alive()]
        time.sleep(0.1)
    for entry in live:
        print(f"still running after {args.wait:g}s: run {entry.run_id} (pid {entry.pid})", file=sys.stderr)
    return exit_codes.OK if not live else exit_codes.DEVIATED


def recover(args: argparse.Namespace) -> int:
    """``mlchaos recover``: undo what the journals of dead runs recorded (idempotent)."""
    from mlchaos.safety import run_registry
    from mlchaos.safety.undo import recover as recover_journal

    journals = [Path(j) for j in args.journals]
    if args.all:
        for entry in run_registry.registered():
            if entry.is_dead(args.heartbeat_timeout) and entry.journal:
                journals.append(Path(entry.journal))
                run_registry.unregister(entry)
    if not journals:
        print("nothing to recover" + (" (no dead run is registered)" if args.all else ": name a journal or --all"))
        return exit_codes.OK if args.all else exit_codes.INVALID
    alive = {Path(e.journal).resolve(): e for e in run_registry.registered() if e.journal and not e.is_dead(5.0)}
    status = exit_codes.OK
    for journal in journals:
        owner = alive.get(journal.resolve())
        if owner is not None and not args.force:
            print(f"error: {journal}: its run (pid {owner.pid}) is still running and will roll back itself; "
                  "use `mlchaos stop`, or --force", file=sys.stderr)
            status = max(status, exit_codes.INVALID)
            continue
        try:
            report = recover_journal(journal, by="mlchaos recover")
        except InvalidInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = max(status, exit_codes.INVALID)
            continue
        print(f"recover {journal}: {len(report.results)} recorded change(s)")
        for result in report.results:
            print(f"  {result.describe()}")
        if not report.ok:
            status = exit_codes.ROLLBACK_FAILED
    return status


def validate(args: argparse.Namespace) -> int:
    """``mlchaos validate``: check files, report every problem, execute nothing."""
    from mlchaos.experiment.inventory import inventory

    all_problems: list[Problem] = []
    for path in args.files:
        try:
            experiment, _ = load_checked(path, args.var, args.var_file)
        except ProblemList as exc:
            all_problems.extend(exc.problems)
            continue
        print(f"ok: {path}")
        for line in inventory(experiment.raw).lines():  # an experiment file is code: show what it loads and runs
            print(f"  {line}")
    if all_problems:
        _print_problems(all_problems)
        return exit_codes.INVALID
    return exit_codes.OK


def gameday(args: argparse.Namespace) -> int:
    """``mlchaos gameday``: run a suite of experiments now, or keep running it on a schedule."""
    from mlchaos.cli.gameday import main

    return main(args)


def discover(_args: argparse.Namespace) -> int:
    """``mlchaos discover``: list every driver function with its signature and summary."""
    from mlchaos.experiment.driver_registry import DriverFunction, driver_functions

    status = exit_codes.OK
    current = None
    for item in driver_functions():
        if not isinstance(item, DriverFunction):
            module, error = item
            print(f"{module}: FAILED TO IMPORT: {error}", file=sys.stderr)
            status = exit_codes.DEVIATED
            continue
        if item.module != current:
            current = item.module
            print(f"\n{item.module}")
        print(f"  {item.kind:<6} {item.name}{item.signature}")
        print(f"         {item.summary}")
    return status


def sandbox(args: argparse.Namespace) -> int:
    """``mlchaos sandbox up|down|status``."""
    from mlchaos.sandbox.manager import Sandbox

    box = Sandbox()
    try:
        if args.sandbox_command == "up":
            replicas = box.up(replicas=args.replicas, base_port=args.base_port, timeout=args.timeout,
                              monitoring=args.monitoring)
            for replica in replicas:
                _print_replica("ready", replica)
            _print_proxy(box)
            if args.monitoring:
                _print_monitoring(box)
            print(f"sandbox up: {len(replicas)} replicas{' with monitoring' if args.monitoring else ''}"
                  f" (state: {box.state_file})")
        elif args.sandbox_command == "down":
            monitoring_before = [r for r in box.monitoring().status() if r.state != "stopped"]
            stopped = box.down()
            print(f"sandbox down: stopped {len(stopped)} replicas and {len(monitoring_before)} monitoring processes")
        else:
            rows = box.status()
            if not rows:
                print("sandbox: not running")
            for row in rows:
                _print_replica(row.state, row.replica)
            if rows:
                _print_proxy(box)
            _print_monitoring(box)
    except MlchaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.DEVIATED
    return exit_codes.OK


def _print_replica(state: str, replica) -> None:
    """One line per replica: the URL clients use (through its fault proxy) and its other ports."""
    ports = [f"direct :{replica.port}"]
    if replica.tls_port:
        ports.append(f"https :{replica.tls_port}")
    if replica.metrics_proxy_port:
        ports.append(f"scrapes via :{replica.metrics_proxy_port}")
    print(f"{state:<18} {replica.name:<12} pid {replica.pid:<8} {replica.client_url}  ({', '.join(ports)})")


def _print_proxy(box) -> None:
    url = box.proxy().api_url()
    print(f"{'ready' if url else 'dead':<18} {'fault proxy':<12} {'':<12} {url or '(not running)'}"
          "  (Toxiproxy-compatible API)")


def _print_monitoring(box) -> None:
    """The monitoring processes, their URLs and where Alertmanager sends notifications."""
    monitoring = box.monitoring()
    rows = monitoring.status()
    if not rows:
        print("monitoring: not started (mlchaos sandbox up starts it; --no-monitoring skips it)")
        return
    for row in rows:
        print(f"{row.state:<18} {row.name:<12} pid {row.pid:<8} {row.url}")
    state = monitoring.recorded_endpoints()
    if state is not None:
        print(f"alert sink: {state.sink_url} (Alertmanager webhook; served by `mlchaos run` while it runs)")


def rules(args: argparse.Namespace) -> int:
    """``mlchaos rules``: print the rendered ML-serving alert rules (or their promtool tests)."""
    from mlchaos.monitoring.alert_rules import profile, render_rule_tests, render_rules

    try:
        params = profile(args.profile).with_overrides(args.overrides)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INVALID
    sys.stdout.write(render_rule_tests(params) if args.tests else render_rules(params))
    return exit_codes.OK
