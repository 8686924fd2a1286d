"""What a person reads at the end of a run: the plan of a dry run, and the summary (``mlchaos run`` and every
experiment of a game day). Errors, targets and outputs come from drivers and the network: every line is
printed with its control characters escaped (terminal escape sequences shown, never sent)."""

from __future__ import annotations

from mlchaos.engine.result import RunResult
from mlchaos.experiment.problems import printable_lines
from mlchaos.safety.changes import is_change_record


def _say(text: str = "") -> None:
    """Print a line of a summary or plan: what drivers and the network said has its control characters escaped."""
    print(printable_lines(text))


def print_summary(result: RunResult) -> None:
    """The end-of-run summary a person reads."""
    counts = result.counts
    _say()
    _say(f"verdict: {result.verdict.upper()} (exit {result.exit_code})  {result.title}")
    _say(f"  {counts.get('succeeded', 0)} passed, {counts.get('failed', 0)} failed"
          f" in {result.duration:.2f}s; journal status: {result.status}")
    budgeted = {(b.alert, b.kind) for b in result.budgets}
    for measurement in result.measurements:
        if (measurement.alert, measurement.kind) not in budgeted:
            _say(f"  {measurement.describe()}")
    for budget in result.budgets:
        counted = [m for m in result.measurements if (m.alert, m.kind) == (budget.alert, budget.kind)]
        beside = min(counted, key=lambda m: m.seconds).details() if counted else ""
        _say(f"  {'ok  ' if budget.met else 'FAIL'} {budget.describe()}{beside}")
    for failure in result.failures:
        if not any(failure == b.describe() for b in result.budgets):
            _say(f"  - {failure}")
    if result.abort is not None and result.abort.kind != "refused":
        _say(f"  ! aborted: {result.abort.message}")
    for guard in result.guards:
        if guard.get("tripped"):
            _say(f"  ! guard {guard['name']} tripped after {guard['tripped_at']}s: {guard['explanation']}")
    if result.left_undone:
        _say(f"  ! rollbacks left undone: {', '.join(result.left_undone)}"
              " -- the fault may still be in place; check the targets")
        if result.journal_path:
            _say(f"    undo what the journal recorded: mlchaos recover {result.journal_path}")
    if result.journal_path:
        _say(f"  journal: {result.journal_path}")


def print_plan(result: RunResult) -> None:
    """What a run would do: each action's targets and undo, the guards, the bounds."""
    _say()
    _say(f"plan: {result.title}")
    for activity, outcome in result.planned:
        if activity.kind != "action":
            state = "ok" if outcome.succeeded else f"FAILED: {outcome.error}"
            _say(f"  probe  {activity.name}  ({activity.target}): {state}")
            continue
        _say(f"  action {activity.name}  ({activity.target})")
        output = outcome.output
        if not outcome.succeeded:
            _say(f"         could not be resolved: {outcome.error}")
        elif is_change_record(output):
            targets = output.get("targets") or []
            population = output.get("population") or []
            for target in targets:
                details = target.get("details") or {}
                # the instance first (what alerts name), a container id short as docker shows it
                extra = ", ".join(f"{k} {str(details[k])[:12] if k == 'id' else details[k]}"
                                  for k in ("instance", "pid", "id", "url") if details.get(k))
                verb = "would send traffic to" if target.get("kind") == "traffic" else f"would hit {target.get('kind')}"
                _say(f"         {verb} {target.get('name')}" + (f" ({extra[:120]})" if extra else ""))
            if population:
                _say(f"         chosen from {len(population)} eligible: {', '.join(population[:10])}"
                      + (" ..." if len(population) > 10 else ""))
            _say(f"         environment: {output.get('environment') or 'not reported by the driver'}")
            undo = output.get("undo") or {}
            if undo.get("func"):
                arguments = ", ".join(f"{k}={v!r}" for k, v in (undo.get("arguments") or {}).items())
                _say(f"         undo: {undo['func']}({arguments[:160]})")
        else:
            _say(f"         not resolved in advance: {output}")
    for guard in result.guards:
        _say(f"  guard  {guard['name']}: now {guard['last_value']!r}")
    if result.bounds:
        _say("  bounds:")
        for line in result.bounds:
            _say(f"    {line}")
    else:
        _say("  bounds: none declared (blast_radius, allowed_environments, MLCHAOS_ALLOWED_ENVIRONMENTS)")
    for refusal in result.refusals:
        _say(f"  REFUSED: {refusal}")
