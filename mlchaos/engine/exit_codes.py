"""Exit codes of ``mlchaos`` (documented in the README)."""

OK = 0                 # the steady state held, every activity succeeded, rollbacks ran
DEVIATED = 1           # the hypothesis deviated, an activity failed, or the system did not recover
INVALID = 2            # invalid input: nothing was executed
ROLLBACK_FAILED = 3    # a rollback failed or was abandoned: a fault may still be in place
REFUSED = 4            # refused: a bound, the environment allow-list or the emergency stop forbade a fault
ABORTED = 5            # aborted: a guard tripped, the run outlived max_duration or `mlchaos stop`; rolled back
INTERRUPTED = 130      # SIGINT (Ctrl-C): the run stopped, rollbacks ran
TERMINATED = 143       # SIGTERM: the run stopped, rollbacks ran
