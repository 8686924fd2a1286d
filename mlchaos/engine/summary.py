"""The end-of-run summary a person reads (``mlchaos run`` and every experiment of a game day)."""

from __future__ import annotations

from mlchaos.engine.result import RunResult


def print_summary(result: RunResult) -> None:
    """The end-of-run summary a person reads."""
    counts = result.counts
    print()
    print(f"verdict: {result.verdict.upper()} (exit {result.exit_code})  {result.title}")
    print(f"  {counts.get('succeeded', 0)} passed, {counts.get('failed', 0)} failed"
          f" in {result.duration:.2f}s; journal status: {result.status}")
    budgeted = {(b.alert, b.kind) for b in result.budgets}
    for measurement in result.measurements:
        if (measurement.alert, measurement.kind) not in budgeted:
            print(f"  {measurement.describe()}")
    for budget in result.budgets:
        print(f"  {'ok  ' if budget.met else 'FAIL'} {budget.describe()}")
    for failure in result.failures:
        if not any(failure == b.describe() for b in result.budgets):
            print(f"  - {failure}")
    if result.abort is not None and result.abort.kind != "refused":
        print(f"  ! aborted: {result.abort.message}")
    for guard in result.guards:
        if guard.get("tripped"):
            print(f"  ! guard {guard['name']} tripped after {guard['tripped_at']}s: {guard['explanation']}")
    if result.left_undone:
        print(f"  ! rollbacks left undone: {', '.join(result.left_undone)}"
              " -- the fault may still be in place; check the targets")
        if result.journal_path:
            print(f"    undo what the journal recorded: mlchaos recover {result.journal_path}")
    if result.journal_path:
        print(f"  journal: {result.journal_path}")
