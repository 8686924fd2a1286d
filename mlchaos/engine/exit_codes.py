"""Exit codes of ``mlchaos`` (documented in the README)."""

OK = 0                 # the steady state held, every activity succeeded, rollbacks ran
DEVIATED = 1           # the hypothesis deviated, an activity failed, or the system did not recover
INVALID = 2            # invalid input: nothing was executed
ROLLBACK_FAILED = 3    # a rollback failed or was abandoned: a fault may still be in place
REFUSED = 4            # refused: a bound, the environment allow-list or the emergency stop forbade a fault
ABORTED = 5            # aborted: a guard tripped, the run outlived max_duration or `mlchaos stop`; rolled back
# A signal stopped the run and the rollbacks ran: 128 + the signal's number, as a shell reports a process
# that a signal killed (mlchaos handles the signal, rolls back, then exits with it).
HANGUP = 129           # SIGHUP: the terminal went away
INTERRUPTED = 130      # SIGINT (Ctrl-C)
QUIT = 131             # SIGQUIT (Ctrl-backslash)
EXIT_GRACEFULLY = 138  # SIGUSR1 while the emergency stop is not engaged: Chaos Toolkit's exit_gracefully()
EXIT_UNGRACEFULLY = 140  # SIGUSR2: Chaos Toolkit's exit_ungracefully() (which skips rollbacks there; not here)
TERMINATED = 143       # SIGTERM
