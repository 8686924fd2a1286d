"""Validation parity with Chaos Toolkit, proven by a differential test: the same experiments go to chaoslib's
own validator (``chaoslib.experiment.ensure_experiment_is_valid``) and to mlchaos', one field changed at a time
from valid experiments. What chaoslib accepts, mlchaos accepts (with a warning where it advises otherwise);
what chaoslib rejects, mlchaos rejects. Every exception is a deliberate difference listed in
docs/chaostoolkit.md (``tests.support.parity.STRICTER`` and ``LOOSER``)."""

from __future__ import annotations

import socket
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.parity import (
    BASES,
    DELETE,
    LOOSER,
    STRICTER,
    chaoslib_verdict,
    explanation,
    fields,
    mutated,
    verdicts,
)
from tests.support.paths import ROOT

FIELDS = fields()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither validator may reach the network: any attempt fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a validator tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _shown(value: Any) -> Any:
    return "<deleted>" if value is DELETE else value


def test_both_validators_accept_the_base_experiments() -> None:
    for name, base in BASES.items():
        verdict = verdicts(base)
        assert verdict.chaoslib_ok, f"{name}: chaoslib: {verdict.chaoslib_error}"
        assert verdict.mlchaos_ok and not verdict.warnings, f"{name}: {verdict.problems} {verdict.warnings}"


def test_every_single_field_mutation_gets_the_same_verdict_or_a_deliberate_difference() -> None:
    compared = 0
    differences: Counter[str] = Counter()
    unexplained = []
    for base, path, values in FIELDS:
        for value in values:
            verdict = verdicts(mutated(BASES[base], path, value))
            compared += 1
            if verdict.agree:
                continue
            why = explanation(verdict)
            if why is None:
                unexplained.append(f"{base} {'/'.join(map(str, path))} = {_shown(value)!r}: {verdict}")
            else:
                differences[why] += 1
    print(f"\ncompared {compared} experiments; deliberate differences: {dict(differences)}; "
          f"unexplained: {len(unexplained)}")
    assert compared >= 300
    assert unexplained == []


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**9) | st.floats(-1e9, 1e9, allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def one_field_changed(draw: st.DrawFn) -> tuple[str, tuple[str | int, ...], Any]:
    """A field of a base experiment and a new value: one it is known to matter for, or any JSON value."""
    base, path, values = draw(st.sampled_from(FIELDS))
    value = draw(st.sampled_from(values) | JSONISH)
    return base, path, value


@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(one_field_changed())
def test_generated_mutations_agree_or_differ_deliberately(change: tuple[str, tuple[str | int, ...], Any]) -> None:
    base, path, value = change
    verdict = verdicts(mutated(BASES[base], path, value))
    assert verdict.agree or explanation(verdict) is not None, (
        f"{base} {'/'.join(map(str, path))} = {_shown(value)!r}: {verdict}")


ADVISED = [  # chaoslib accepts them silently or with a deprecation; mlchaos accepts them and says why
    ("python", ("rollbacks", 0, "background"), True, "one after another"),
    ("python", ("dry_run",), True, "mlchaos only plans this experiment"),
    ("python", ("method", 0, "timeout"), "${limit}", "Chaos Toolkit rejects a timeout"),
    ("other", ("steady-state-hypothesis", "probes", 0, "provider", "arguments"), "-a 'b c'", "deprecated"),
    ("other", ("steady-state-hypothesis", "probes", 0, "provider", "arguments"), {"-a": "b"}, "deprecated"),
]


@pytest.mark.parametrize(("base", "path", "value", "warning"), ADVISED,
                         ids=[f"{'/'.join(map(str, a[1]))}={a[2]}" for a in ADVISED])
def test_what_mlchaos_runs_but_advises_against_carries_a_warning(base, path, value, warning) -> None:
    verdict = verdicts(mutated(BASES[base], path, value))
    assert verdict.mlchaos_ok, verdict.problems
    assert any(warning in w for w in verdict.warnings), verdict.warnings


def test_the_issues_disagreements_are_gone() -> None:
    """The cases measured on main (issue 17): now accepted or rejected as chaoslib does."""
    python = BASES["python"]
    accepted = [
        mutated(python, ("method", 0, "provider", "timeout"), 3),
        mutated(python, ("method",), []),
        mutated(BASES["other"], ("steady-state-hypothesis", "probes", 0, "provider", "arguments"), "-a b"),
        mutated(python, ("rollbacks", 0, "background"), True),
        mutated(python, ("dry_run",), False),
    ]
    rejected = [mutated(python, ("description",), DELETE), mutated(python, ("tags",), ["a", ""])]
    for data in accepted:
        verdict = verdicts(data)
        assert verdict.chaoslib_ok and verdict.mlchaos_ok, verdict
    for data in rejected:
        verdict = verdicts(data)
        assert not verdict.chaoslib_ok and not verdict.mlchaos_ok, verdict


def test_controls_are_accepted_as_chaoslib_accepts_them_but_their_module_must_import() -> None:
    control = {"name": "c", "provider": {"type": "python", "module": "testcontrols"}}
    for where in [("controls",), ("method", 0, "controls"), ("steady-state-hypothesis", "controls")]:
        verdict = verdicts(mutated(BASES["python"], where, [control]))
        assert verdict.chaoslib_ok and verdict.mlchaos_ok, (where, verdict)
    missing = verdicts(mutated(BASES["python"], ("controls",), [{"name": "c", "provider": {
        "type": "python", "module": "no_such_control_module"}}]))
    assert missing.chaoslib_ok  # chaoslib warns, then runs without it
    assert any("control module 'no_such_control_module' cannot be imported" in p for p in missing.problems)
    assert explanation(missing) == "controls"
    for bad in [{"name": "c"}, {"provider": {"type": "python", "module": "testcontrols"}},
                {"name": "c", "scope": "during", "provider": {"type": "python", "module": "testcontrols"}}]:
        verdict = verdicts(mutated(BASES["python"], ("controls",), [bad]))
        assert not verdict.chaoslib_ok and not verdict.mlchaos_ok, (bad, verdict)


def test_chaoslibs_validator_runs_no_activity(tmp_path) -> None:
    """It imports python providers' modules and looks programs up, but calls nothing: no trace is left."""
    trace = tmp_path / "trace"
    data = mutated(BASES["python"], ("method", 0), {"type": "action", "name": "write", "provider": {
        "type": "python", "module": "testdrivers", "func": "append_line",
        "arguments": {"path": str(trace), "text": "ran"}}})
    data["rollbacks"] = [{"type": "action", "name": "touch", "provider": {
        "type": "process", "path": "touch", "arguments": [str(trace)]}}]
    assert chaoslib_verdict(data) == (True, "")
    assert verdicts(data).mlchaos_ok
    assert not trace.exists()


def test_every_deliberate_difference_is_documented() -> None:
    text = (ROOT / "docs" / "chaostoolkit.md").read_text(encoding="utf-8")
    section = text.split("## Validation: where mlchaos differs", 1)[-1]
    assert section != text, "docs/chaostoolkit.md has no 'Validation: where mlchaos differs' section"
    for deliberate in STRICTER + LOOSER:
        assert f"**{deliberate.doc}**" in section, f"{deliberate.doc!r} is not listed in docs/chaostoolkit.md"
