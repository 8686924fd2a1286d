"""What several commands share on their command lines: the exit codes' help and the variable options."""

from __future__ import annotations

import argparse

EXIT_CODES_HELP = """exit codes:
  0    the steady state held, every activity succeeded, rollbacks ran
  1    the hypothesis deviated, an activity failed, or the system did not recover
  2    invalid input: nothing was executed
  3    a rollback failed or was abandoned: a fault may still be in place
  4    refused: a blast-radius bound, the environment allow-list or the emergency
       stop forbade a fault (nothing, or nothing more, was injected; rollbacks ran)
  5    aborted: a guard tripped, the run exceeded max_duration or `mlchaos stop`,
       or a Chaos Toolkit control raised InterruptExecution; rollbacks ran
  129  stopped by SIGHUP, after rollbacks ran
  130  interrupted by SIGINT (Ctrl-C), after rollbacks ran
  131  stopped by SIGQUIT, after rollbacks ran
  138  stopped by SIGUSR1 (Chaos Toolkit's exit_gracefully; with the emergency
       stop engaged SIGUSR1 is its abort: 5), after rollbacks ran
  140  stopped by SIGUSR2 (Chaos Toolkit's exit_ungracefully), after rollbacks ran
  143  stopped by SIGTERM, after rollbacks ran
"""


def add_var_options(parser: argparse.ArgumentParser) -> None:
    """``--var`` and ``--var-file``: values that override the experiment's configuration and secrets."""
    parser.add_argument("--var", action="append", default=[], metavar="NAME[:TYPE]=VALUE",
                        help="override a configuration value (TYPE: str, int, float, bool)")
    parser.add_argument("--var-file", action="append", default=[], metavar="FILE",
                        help="JSON/YAML file with 'configuration' and 'secrets', or a .env file")
