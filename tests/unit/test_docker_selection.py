"""Target selection of drivers.docker with plain data (no engine)."""

from __future__ import annotations

import pytest

from drivers.docker.selection import (
    PROJECT_LABEL,
    Candidate,
    Mode,
    candidates_from_api,
    check_seed,
    choose,
    eligible,
    is_skipped,
    parse_mode,
    parse_selector,
)
from mlchaos.errors import DriverError, TargetNotFound

MODEL = {"mlchaos.target": "model"}


def fleet(n: int = 4) -> list[Candidate]:
    found = [Candidate(f"{i:064x}", f"stack-model-{i}", MODEL | {PROJECT_LABEL: "a" if i < 2 else "b"})
             for i in range(n)]
    found.append(Candidate("f" * 64, "stack-model-skip", MODEL | {"mlchaos.skip": "true"}))
    found.append(Candidate("e" * 64, "stack-db", {PROJECT_LABEL: "a"}))
    found.append(Candidate("d" * 64, "stack-model-down", MODEL, state="exited"))
    return found


def names(chosen: list[Candidate]) -> list[str]:
    return [c.name for c in chosen]


@pytest.mark.parametrize("labels", [MODEL, ["mlchaos.target=model"], ["mlchaos.target"]])
def test_label_forms_select_the_same_containers(labels: object) -> None:
    selector = parse_selector(labels)
    assert names(eligible(fleet(), selector, ("running",))) == [f"stack-model-{i}" for i in range(4)]


def test_pattern_project_and_states_narrow_the_selection() -> None:
    assert names(eligible(fleet(), parse_selector(name_pattern=r"model-[13]$"))) == ["stack-model-1", "stack-model-3"]
    assert names(eligible(fleet(), parse_selector(MODEL, project="b"))) == ["stack-model-2", "stack-model-3"]
    assert names(eligible(fleet(), parse_selector(name_pattern="db", project="a"))) == ["stack-db"]
    assert "stack-model-down" in names(eligible(fleet(), parse_selector(MODEL), states=None))
    assert parse_selector(MODEL, project="b").label_filters() == ["mlchaos.target=model", f"{PROJECT_LABEL}=b"]


def test_skip_label_and_own_container_are_never_candidates() -> None:
    selector = parse_selector(name_pattern="skip")
    assert eligible(fleet(), selector) == []
    with pytest.raises(TargetNotFound, match="mlchaos.skip=true are never targeted"):
        choose(fleet(), selector, Mode(all=True), 1)
    assert names(eligible(fleet(), parse_selector(MODEL), ("running",), exclude_ids=["0" * 64])) == [
        f"stack-model-{i}" for i in range(1, 4)]
    assert is_skipped({"mlchaos.skip": "True"}) and not is_skipped({"mlchaos.skip": "false"}) and not is_skipped({})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "empty selector"),
    ({"name_pattern": "model-["}, "not a valid regular expression"),
    ({"name_pattern": ""}, "non-empty regular expression"),
    ({"labels": {}}, "empty selector"),
    ({"labels": "mlchaos.target=model"}, "mapping or a list"),
    ({"labels": ["=model"]}, "invalid label key"),
    ({"labels": MODEL, "project": ""}, "project must be"),
])
def test_bad_selectors_are_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DriverError, match=message):
        parse_selector(**kwargs)


@pytest.mark.parametrize(("mode", "matches", "expected"), [
    (Mode(count=2), 4, 2), (Mode(all=True), 4, 4), (Mode(percentage=50), 4, 2), (Mode(percentage=50), 3, 1),
    (Mode(percentage=30), 3, 0), (Mode(percentage=30, at_least_one=True), 3, 1), (Mode(percentage=100), 7, 7),
    (Mode(percentage=33.4), 3, 1), (Mode(percentage=10, at_least_one=True), 0, 0),
])
def test_how_many(mode: Mode, matches: int, expected: int) -> None:
    assert mode.how_many(matches) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, "count must be"), ({"count": True}, "count must be"), ({"count": 1.5}, "count must be"),
    ({"percentage": 0}, "percentage must be"), ({"percentage": 101}, "percentage must be"),
    ({"count": 1, "all": True}, "only one of"), ({"count": 1, "percentage": 5}, "only one of"),
    ({"all": "yes"}, "all must be"), ({"at_least_one": 1}, "at_least_one must be"),
])
def test_bad_modes_are_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DriverError, match=message):
        parse_mode(**kwargs)


def test_default_mode_is_one_container() -> None:
    assert parse_mode() == Mode(count=1)


def test_choose_counts_and_errors() -> None:
    selector = parse_selector(MODEL)
    assert len(choose(fleet(), selector, Mode(count=3), 5)) == 3
    assert len(choose(fleet(), selector, Mode(all=True), 5)) == 4
    with pytest.raises(DriverError, match="count=5 but only 4"):
        choose(fleet(), selector, Mode(count=5), 5)
    with pytest.raises(TargetNotFound, match="rounds down to 0"):
        choose(fleet(), selector, Mode(percentage=20), 5)
    with pytest.raises(TargetNotFound, match="no container"):
        choose(fleet(), parse_selector({"app": "nothing"}), Mode(count=1), 5)


def test_same_seed_same_choice_whatever_the_listing_order() -> None:
    selector = parse_selector(MODEL)
    first = choose(fleet(8), selector, Mode(count=3), 42)
    assert choose(list(reversed(fleet(8))), selector, Mode(count=3), 42) == first
    assert len({tuple(names(choose(fleet(8), selector, Mode(count=3), s))) for s in range(20)}) > 1
    assert names(first) == sorted(names(first))


def test_seeds() -> None:
    assert check_seed(7) == 7
    assert isinstance(check_seed(None), int)
    with pytest.raises(DriverError, match="seed must be"):
        check_seed("7")  # type: ignore[arg-type]


def test_candidates_from_the_engine_listing() -> None:
    entries = [{"Id": "a" * 64, "Names": ["/web-1"], "Labels": {"k": "v"}, "State": "paused"},
               {"Id": "b" * 64, "Names": None, "Labels": None, "State": "running"}]
    assert candidates_from_api(entries) == [Candidate("a" * 64, "web-1", {"k": "v"}, "paused"),
                                            Candidate("b" * 64, "b" * 12, {}, "running")]
