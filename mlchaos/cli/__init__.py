"""The ``mlchaos`` command line. Heavy modules are imported inside commands, so that
``mlchaos --help`` stays fast."""

from __future__ import annotations

import argparse
import sys

EXIT_CODES_HELP = """exit codes:
  0    the steady state held, every activity succeeded, rollbacks ran
  1    the hypothesis deviated, an activity failed, or the system did not recover
  2    invalid input: nothing was executed
  3    a rollback failed or was abandoned: a fault may still be in place
  4    refused: a blast-radius bound, the environment allow-list or the emergency
       stop forbade a fault (nothing, or nothing more, was injected; rollbacks ran)
  5    aborted: a guard tripped, the run exceeded max_duration or `mlchaos stop`;
       rollbacks ran
  130  interrupted by SIGINT (Ctrl-C), after rollbacks ran
  143  stopped by SIGTERM, after rollbacks ran
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlchaos",
        description="Chaos experiments for ML model-serving services.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run one experiment", epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("file", help="experiment file (.json, .yaml, .yml)")
    run.add_argument("--journal", default="journal.json",
                     help="where to write the journal (default: journal.json)")
    _add_var_options(run)
    run.add_argument("--dry-run", action="store_true",
                     help="the same as `mlchaos plan`: resolve targets and run probes, change nothing")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    from mlchaos.cli.report import add_report_parser, add_run_options

    add_run_options(run)

    plan = commands.add_parser("plan", help="show what a run would hit and check its bounds; change nothing",
                               epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("file", help="experiment file (.json, .yaml, .yml)")
    plan.add_argument("--journal", default=None, help="also write the plan's journal to this file")
    _add_var_options(plan)
    plan.add_argument("--quiet", action="store_true", help="print only the plan and the summary")

    stop = commands.add_parser("stop", help="emergency stop: abort every run on this host and refuse new ones")
    stop.add_argument("--reason", default="", help="why (recorded and shown to refused runs)")
    stop.add_argument("--wait", type=float, default=120.0,
                      help="seconds to wait for the runs to roll back and exit (default 120)")
    stop.add_argument("--clear", action="store_true", help="disengage the emergency stop")

    recover = commands.add_parser("recover", help="undo what the journal of a dead run recorded (idempotent)")
    recover.add_argument("journals", nargs="*", metavar="JOURNAL")
    recover.add_argument("--all", action="store_true",
                         help="recover every registered run whose runner died or stopped beating")
    recover.add_argument("--heartbeat-timeout", type=float, default=10.0,
                         help="with --all: seconds without a heartbeat after which a run is dead (default 10)")
    recover.add_argument("--force", action="store_true", help="recover even while the run's runner is alive")

    validate = commands.add_parser("validate", help="check experiment files, execute nothing")
    validate.add_argument("files", nargs="+", metavar="FILE")
    _add_var_options(validate)

    commands.add_parser("discover", help="list every driver action and probe")

    add_report_parser(commands)

    from mlchaos.cli import gameday as gameday_command

    gameday = commands.add_parser("gameday", help="run a suite of experiments now, or on a schedule",
                                  epilog=gameday_command.GAMEDAY_HELP,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    gameday_command.add_arguments(gameday)
    _add_var_options(gameday)

    sandbox = commands.add_parser("sandbox", help="manage the local ML sandbox")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    up = sandbox_commands.add_parser("up", help="start the reference model replicas")
    up.add_argument("--replicas", type=int, default=3, help="number of replicas (default 3)")
    up.add_argument("--base-port", type=int, default=0,
                    help="first port (replica i listens on base+i); 0 picks free ports")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until ready")
    up.add_argument("--no-monitoring", dest="monitoring", action="store_false",
                    help="do not start Prometheus, Alertmanager and the blackbox exporter")
    sandbox_commands.add_parser("down", help="stop every sandbox process")
    sandbox_commands.add_parser("status", help="show the sandbox processes and monitoring URLs")

    rules = commands.add_parser("rules", help="print the ML-serving Prometheus alert rules")
    rules.add_argument("--profile", choices=["sandbox", "staging"], default="staging",
                       help="windows for a 1 s sandbox scrape or for a real deployment (default staging)")
    rules.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                       help="override one rule parameter, e.g. --set down_for=2m (repeatable)")
    rules.add_argument("--tests", action="store_true",
                       help="print the matching `promtool test rules` file instead of the rules")
    return parser


def _add_var_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--var", action="append", default=[], metavar="NAME[:TYPE]=VALUE",
                        help="override a configuration value (TYPE: str, int, float, bool)")
    parser.add_argument("--var-file", action="append", default=[], metavar="FILE",
                        help="JSON/YAML file with 'configuration' and 'secrets', or a .env file")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlchaos`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mlchaos import __version__

        print(f"mlchaos {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from mlchaos.cli import commands

    handler = {
        "run": commands.run,
        "plan": commands.plan,
        "stop": commands.stop,
        "recover": commands.recover,
        "validate": commands.validate,
        "discover": commands.discover,
        "sandbox": commands.sandbox,
        "rules": commands.rules,
        "report": commands.report,
        "gameday": commands.gameday,
    }[args.command]
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

