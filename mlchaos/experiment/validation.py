"""Check a parsed experiment and report every problem at once, each with where it is.

Nothing here executes an activity. Python providers are imported (to check that the
function exists and that the arguments fit its signature), exactly as chaostoolkit does.

What Chaos Toolkit accepts, mlchaos accepts, with a warning where it advises otherwise
(:func:`examine` returns both); where mlchaos deliberately rejects more, docs/chaostoolkit.md
lists it with its reason (``tests/unit/test_validation_parity.py`` compares the two validators).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlchaos.experiment import endpoint_sources
from mlchaos.experiment.control_declarations import declaration_problems, declarations
from mlchaos.experiment.endpoint_sources import template_names
from mlchaos.experiment.endpoints import check_endpoints
from mlchaos.experiment.loader import Document, Where, pointer_join, pointer_of
from mlchaos.experiment.problems import Problem, suggest
from mlchaos.experiment.provider_checks import ProviderChecks
from mlchaos.experiment.settings import SETTINGS_CHECKS
from mlchaos.experiment.variables import Variables

TOP_LEVEL_KEYS = {
    "version", "title", "description", "tags", "contributions", "configuration", "secrets",
    "steady-state-hypothesis", "method", "rollbacks", "extensions", "controls", "runtime", "dry_run",
}
ACTIVITY_KEYS = {
    "type", "name", "provider", "tolerance", "background", "pauses", "timeout", "ref",
    "controls", "configuration", "secrets", "dry", "description", "tags",
}
CHECKS = {**SETTINGS_CHECKS, "endpoints": check_endpoints}  # endpoints are checked in their own module
MAX_SECONDS = 7 * 24 * 3600  # timeouts and pauses: a week (more overflows the OS's timed waits)
ENV_VAR_TYPES = {"str", "string", "int", "integer", "float", "number", "bytes", "bool", "json"}
_SINGLE_VARIABLE = re.compile(r"\$\{([^{}$]+)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # would reach a terminal: escape sequences

@dataclass(frozen=True)
class Findings:
    """What validation found: problems keep the experiment from running, warnings do not."""

    problems: list[Problem]
    warnings: list[Problem]


def examine(doc: Document, variables: Variables | None = None) -> Findings:
    """Every problem and every warning in ``doc``, each sorted by line."""
    checker = _Checker(doc, variables or Variables())
    problems = list(checker.run())
    return Findings(sorted(problems, key=lambda p: p.line or 0), sorted(checker.warnings, key=lambda p: p.line or 0))


def validate(doc: Document, variables: Variables | None = None) -> list[Problem]:
    """Every problem in ``doc``; an empty list means it may run."""
    return examine(doc, variables).problems


class _Checker(ProviderChecks):
    """Every problem of an experiment document, each located by pointer and line."""

    def __init__(self, doc: Document, variables: Variables):
        super().__init__(doc)
        self.data: dict[str, Any] = doc.data
        self.variables = variables
        self.var_file_endpoints = variables.endpoints
        self.names: set[str] = set()
        self.warnings: list[Problem] = []
        self._known: set[str] | None = None

    def warn(self, pointer: str, message: str) -> None:
        """Note something that does not keep the experiment from running but deserves a word."""
        self.warnings.append(self.problem(pointer, message))

    def run(self) -> Iterator[Problem]:
        data = self.data
        for key in sorted(set(data) - TOP_LEVEL_KEYS):
            yield self.problem(f"/{key}", f"unknown key {key!r}{suggest(key, TOP_LEVEL_KEYS)}")
        yield from self.check_controls()
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            yield self.problem("/title", "required: a non-empty string 'title'")
        elif _CONTROL.search(title):
            yield self.problem("/title", "the title contains control characters")
        description = data.get("description")
        if not isinstance(description, str) or not description:
            yield self.problem("/description", "required: a non-empty string 'description' (Chaos Toolkit requires "
                                               "one too)")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            yield self.problem("/tags", "must be a list of strings")
        else:
            for index, tag in enumerate(tags):
                if not tag:
                    yield self.problem(f"/tags/{index}", "a tag must be a non-empty string")
            yield from self._check_ml_test_score_tags(tags)
        yield from self._check_dry_run()
        yield from self.check_configuration()
        yield from self.check_secrets()
        yield from self.check_extensions()
        yield from self.check_endpoints()
        self.names = set(self._activity_names())
        hypothesis = data.get("steady-state-hypothesis")
        if "steady-state-hypothesis" in data:  # present but null is refused, as chaoslib does (it crashes on it)
            yield from self.check_hypothesis(hypothesis)
        method = data.get("method")
        if method is None:
            yield self.problem("/method", "required: a 'method' list of activities (an empty list checks only the "
                                          "steady-state hypothesis)")
        elif not isinstance(method, list):
            yield self.problem("/method", "must be a list of activities")
        else:
            if not method and not (isinstance(hypothesis, dict) and hypothesis.get("probes")):
                self.warn("/method", "the method is empty and there is no steady-state hypothesis: the run "
                                     "checks nothing")
            for index, activity in enumerate(method):
                yield from self.check_activity(activity, f"/method/{index}")
        yield from self.each(data.get("rollbacks", []), "/rollbacks", "must be a list of actions",
                             lambda activity, pointer: self.check_activity(activity, pointer, rollback=True))
        yield from self.check_references()

    def _check_dry_run(self) -> Iterator[Problem]:
        """``dry_run: true`` makes ``mlchaos run`` plan the experiment (change nothing); Chaos Toolkit ignores it."""
        if "dry_run" not in self.data:
            return
        if not isinstance(self.data["dry_run"], bool):
            yield self.problem("/dry_run", f"dry_run must be true or false, got {self.data['dry_run']!r}")
        elif self.data["dry_run"]:
            self.warn("/dry_run", "dry_run: true: mlchaos only plans this experiment (as `mlchaos plan`: probes run, "
                                  "actions change nothing); Chaos Toolkit ignores this key and would run it for real")

    # --- configuration, secrets, extensions -------------------------------------------
    def check_configuration(self) -> Iterator[Problem]:
        def entry(key: str, value: Any, pointer: str) -> Iterator[Problem]:
            if key not in self.variables.configuration and isinstance(value, dict) and "type" in value:
                yield from self._check_env_reference(value, pointer, "configuration", allow_default=True)

        yield from self.each_entry(self.data.get("configuration", {}), "/configuration", "must be a mapping", entry)

    def check_secrets(self) -> Iterator[Problem]:
        def secret(_key: str, value: Any, pointer: str) -> Iterator[Problem]:
            if isinstance(value, dict) and "type" in value:
                yield from self._check_env_reference(value, pointer, "secret", allow_vault=True)

        def scope(name: str, values: Any, pointer: str) -> Iterator[Problem]:
            if name in self.variables.secrets and isinstance(values, dict):
                return
            yield from self.each_entry(values, pointer, "a secrets scope must be a mapping", secret)

        yield from self.each_entry(self.data.get("secrets", {}), "/secrets", "must be a mapping of scopes", scope)

    def _check_ml_test_score_tags(self, tags: list[str]) -> Iterator[Problem]:
        """``ml-test-score:<section>-<n>`` tags must name a rubric test (the report scores them)."""
        from mlchaos.experiment.ml_test_score import TAG_PREFIX, parse_reference

        for i, tag in enumerate(tags):
            if not tag.lower().startswith(TAG_PREFIX):
                continue
            tests, sections, bad = parse_reference(tag[len(TAG_PREFIX):])
            why = bad or [f"names the {s} section but no test of it (write e.g. {s}-1)" for s in sections]
            if not tests and not why:
                why = ["names no rubric test (write e.g. ml-test-score:monitoring-3)"]
            if why:
                yield self.problem(f"/tags/{i}", f"{tag!r}: {'; '.join(why)}")

    def _check_env_reference(
        self, value: dict[str, Any], pointer: str, what: str, allow_vault: bool = False, allow_default: bool = False
    ) -> Iterator[Problem]:
        kind = value.get("type")
        if kind == "vault" and allow_vault:
            return
        if kind != "env":
            yield self.problem(pointer_join(pointer, "type"), f"unknown {what} type {kind!r}")
            return
        key = value.get("key")
        if not isinstance(key, str) or not key:
            yield self.problem(pointer, f"an env {what} needs a 'key' naming the variable")
            return
        has_default = allow_default and "default" in value
        if key not in os.environ and key not in self.variables.environment and not has_default:
            hint = "and has no default " if allow_default else "(a secret has no default) "
            yield self.problem(
                pointer,
                f"environment variable {key} is not set {hint}(set it, or pass --var / --var-file)",
            )
            return
        kind = value.get("env_var_type")
        if kind is None or not allow_default:
            return
        if kind not in ENV_VAR_TYPES:
            yield self.problem(pointer_join(pointer, "env_var_type"),
                               f"env_var_type must be one of {', '.join(sorted(ENV_VAR_TYPES))}, got {kind!r}")
            return
        yield from self._check_env_conversion(value, key, kind, pointer)

    def _check_env_conversion(self, value: dict[str, Any], key: str, kind: str, pointer: str) -> Iterator[Problem]:
        """The variable's value (or the default) must convert to ``env_var_type``; the value is never shown."""
        from chaoslib import convert_to_type

        raw = self.variables.environment.get(key, os.environ.get(key, value.get("default")))
        try:
            convert_to_type(kind, raw)
        except Exception as exc:  # any conversion failure: int(), float(), json.loads(), .lower()
            source = "its default" if key not in os.environ and key not in self.variables.environment else "its value"
            yield self.problem(pointer, f"environment variable {key}: {source} is not a valid {kind}"
                               f" ({type(exc).__name__})")

    def check_extensions(self) -> Iterator[Problem]:
        extensions = self.data.get("extensions", [])
        if not isinstance(extensions, list):
            yield self.problem("/extensions", "must be a list")
            return
        for index, ext in enumerate(extensions):
            pointer = f"/extensions/{index}"
            if not isinstance(ext, dict) or not isinstance(ext.get("name"), str) or not ext["name"].strip():
                yield self.problem(pointer, "an extension must be a mapping with a non-empty 'name'")
                continue
            if ext["name"] != "mlchaos":
                continue
            for key, value in ext.items():
                if key == "name":
                    continue
                here = pointer_join(pointer, key)
                check = CHECKS.get(key)
                if key == "endpoints":
                    continue  # with the var files' endpoints, variables substituted: check_endpoints
                if check is None:
                    yield self.problem(
                        here, f"unknown mlchaos setting {key!r}{suggest(key, CHECKS)}"
                    )
                    continue
                if key.endswith("_timeout") and _too_many_seconds(value):
                    yield self.problem(here, f"{key}: at most {MAX_SECONDS} seconds (7 days), got {value!r}")
                    continue
                found = [self.problem(here + sub, f"{key}: {message}") for sub, message in check(value)]
                yield from found
                if key in ("recovery", "guards") and not found:
                    for number, probe in enumerate(value):
                        yield from self.check_probe_with_tolerance(probe, pointer_join(here, number))

    def check_endpoints(self) -> Iterator[Problem]:
        """The endpoints the experiment and the var files declare, ``${name}`` substituted with what is known
        now: their problems (secret references naming nothing among them), missing files and insecure TLS
        (warnings); each in the file that declares it."""
        values = self._endpoint_values()
        for source in endpoint_sources.sources(self.data, self.variables, self.doc.path):
            doc = source.doc or self.doc
            findings = endpoint_sources.examine(source, values)
            for sub, message in findings.problems + endpoint_sources.secret_reference_problems(
                    findings, self.data.get("secrets")):
                yield doc.problem(source.pointer + sub, f"endpoints: {message}")
            for sub, message in findings.warnings:
                self.warnings.append(doc.problem(source.pointer + sub, f"endpoints: {message}"))

    def _endpoint_values(self) -> endpoint_sources.Values:
        """What ``${name}`` in an endpoint declaration may be substituted with now: the configuration and the
        secrets whose values are known before the run (not a vault secret's), and which of them are sensitive."""
        config = self.data.get("configuration")
        names = set(self.variables.configuration) | (set(config) if isinstance(config, dict) else set())
        configuration: dict[str, Any] = {}
        sensitive: list[str] = []
        for name in names:
            found, value = self._configured_value(name)
            if found:
                configuration[name] = value
                if self._env_backed(name):
                    sensitive.append(str(value))
        secrets = self._known_secrets()
        sensitive += [str(v) for scope in secrets.values() for v in scope.values() if v is not None]
        return endpoint_sources.Values(configuration, secrets, frozenset(self.known_variables()), tuple(sensitive))

    def _known_secrets(self) -> dict[str, dict[str, Any]]:
        """The secrets whose values are known now (literal or from a set environment variable), by scope; a var
        file's scope replaces the experiment's whole, as chaoslib's ``load_secrets`` does."""
        block = self.data.get("secrets")
        known: dict[str, dict[str, Any]] = {}
        for scope, entries in (block.items() if isinstance(block, dict) else ()):
            given = self.variables.secrets.get(scope)
            entries = given if isinstance(entries, dict) and isinstance(given, dict) else entries
            if not isinstance(entries, dict):
                continue
            known[scope] = {}
            for key, value in entries.items():
                if not isinstance(value, dict):
                    known[scope][key] = value
                elif value.get("type") == "env" and isinstance(value.get("key"), str):
                    raw = self.variables.environment.get(value["key"], os.environ.get(value["key"]))
                    if raw is not None:
                        known[scope][key] = raw
        return known

    # --- controls ----------------------------------------------------------------------
    def check_controls(self) -> Iterator[Problem]:
        """Chaos Toolkit controls, wherever declared: chaoslib's rules, and the module must import."""
        data = self.data
        places = [("/controls", data)]
        hypothesis = data.get("steady-state-hypothesis")
        if isinstance(hypothesis, dict):
            places.append(("/steady-state-hypothesis/controls", hypothesis))
            places += [(f"/steady-state-hypothesis/probes/{i}/controls", p)
                       for i, p in enumerate(_as_list(hypothesis.get("probes"))) if isinstance(p, dict)]
        for section in ("method", "rollbacks"):
            places += [(f"/{section}/{i}/controls", a) for i, a in enumerate(_as_list(data.get(section)))
                       if isinstance(a, dict)]
        for pointer, holder in places:
            if "controls" in holder and not isinstance(holder["controls"], list):
                yield self.problem(pointer, "controls must be a list of controls")
        top = _as_list(data.get("controls"))
        names = {c["name"] for c in top if isinstance(c, dict) and isinstance(c.get("name"), str) and "ref" not in c}
        for pointer, control in declarations(data):
            for where, message in declaration_problems(control, names):
                yield self.problem(pointer + where, message)

    # --- hypothesis and activities ------------------------------------------------------
    def check_hypothesis(self, hypothesis: Any) -> Iterator[Problem]:
        base = "/steady-state-hypothesis"
        if not isinstance(hypothesis, dict):
            yield self.problem(base, "must be a mapping with 'title' and 'probes'")
            return
        if not isinstance(hypothesis.get("title"), str) or not hypothesis.get("title"):
            yield self.problem(f"{base}/title", "required: the hypothesis needs a title")
        yield from self.each(hypothesis.get("probes", []), f"{base}/probes", "must be a list of probes",
                             self.check_probe_with_tolerance)

    def check_probe_with_tolerance(self, probe: Any, pointer: str) -> Iterator[Problem]:
        yield from self.check_activity(probe, pointer)
        if not isinstance(probe, dict) or "ref" in probe:
            return
        if probe.get("type") == "action":
            yield self.problem(f"{pointer}/type", "only probes may check a steady state")
        if "tolerance" not in probe:
            yield self.problem(pointer, "a steady-state probe needs a 'tolerance'")
        elif not isinstance(probe["tolerance"], (bool, int, str)):  # those are always fine: nothing to check
            yield from self.check_tolerance(probe["tolerance"], f"{pointer}/tolerance")

    def check_activity(self, activity: Any, pointer: str, rollback: bool = False) -> Iterator[Problem]:
        if not isinstance(activity, dict):
            yield self.problem(pointer, "an activity must be a mapping")
            return
        if "ref" in activity:
            if not isinstance(activity["ref"], str) or not activity["ref"]:
                yield self.problem(f"{pointer}/ref", "a reference must be a non-empty string")
            return
        for key in [] if activity.keys() <= ACTIVITY_KEYS else sorted(set(activity) - ACTIVITY_KEYS):
            yield self.problem(
                pointer_join(pointer, key), f"unknown key {key!r}{suggest(key, ACTIVITY_KEYS)}"
            )
        kind = activity.get("type")
        if kind not in ("action", "probe"):
            yield self.problem(f"{pointer}/type", f"type must be 'action' or 'probe', got {kind!r}")
        if not isinstance(activity.get("name"), str) or not activity.get("name"):
            yield self.problem(f"{pointer}/name", "required: a non-empty 'name'")
        elif _CONTROL.search(activity["name"]):
            yield self.problem(f"{pointer}/name", "the name contains control characters")
        timeout = activity.get("timeout")
        if timeout is None:
            pass
        elif not _positive_number_or_var(timeout):
            yield self.problem(f"{pointer}/timeout", f"timeout must be a positive number, got {timeout!r}")
        elif _too_many_seconds(timeout):
            yield self.problem(f"{pointer}/timeout", f"timeout must be at most {MAX_SECONDS} seconds (7 days)")
        elif isinstance(timeout, str):
            yield from self._check_template_seconds(timeout, f"{pointer}/timeout", "timeout must be")
            self.warn(f"{pointer}/timeout", f"timeout {timeout}: Chaos Toolkit rejects a timeout that is not a "
                                            f"number (`chaos validate` fails); mlchaos resolves it")
        pauses = activity.get("pauses")
        if pauses is not None:
            if not isinstance(pauses, dict) or set(pauses) - {"before", "after"}:
                yield self.problem(f"{pointer}/pauses", "pauses takes only 'before' and 'after'")
            else:
                for key, value in pauses.items():
                    if not _positive_number_or_var(value, allow_zero=True):
                        yield self.problem(
                            f"{pointer}/pauses/{key}", f"a pause is a number of seconds, got {value!r}"
                        )
                    elif _too_many_seconds(value):
                        yield self.problem(f"{pointer}/pauses/{key}", f"a pause is at most {MAX_SECONDS} seconds")
                    elif isinstance(value, str):
                        yield from self._check_template_seconds(
                            value, f"{pointer}/pauses/{key}", "a pause must be", allow_zero=True)
        if "background" in activity and not isinstance(activity["background"], bool):
            yield self.problem(f"{pointer}/background", "background must be true or false")
        if rollback and activity.get("background") is True:
            self.warn(f"{pointer}/background", "mlchaos runs rollbacks one after another, in order: this rollback "
                                               "does not run in the background (Chaos Toolkit would run it alongside "
                                               "the next ones)")
        provider = activity.get("provider")
        yield from self.check_provider(provider, f"{pointer}/provider")
        if isinstance(provider, dict) and ("timeout" in provider or provider.get("type") == "process"):
            yield from self._check_provider_extras(provider, f"{pointer}/provider")
        yield from self.check_variables(activity, pointer)

    def _check_provider_extras(self, provider: Any, pointer: str) -> Iterator[Problem]:
        """A provider's own ``timeout`` (seconds; for http also ``[connect, read]``), and process arguments
        given as a string (deprecated) or a mapping (deprecated by Chaos Toolkit)."""
        if not isinstance(provider, dict):
            return
        if "timeout" in provider:
            yield from self._check_provider_timeout(provider["timeout"], provider.get("type"), f"{pointer}/timeout")
        args = provider.get("arguments")
        if provider.get("type") != "process" or args is None:
            return
        if isinstance(args, str):
            try:
                shlex.split(args)
            except ValueError as exc:
                yield self.problem(f"{pointer}/arguments", f"process arguments cannot be split: {exc}")
                return
            self.warn(f"{pointer}/arguments", "process arguments as a string are deprecated (write a list): mlchaos "
                                              "splits them like a shell would (shlex) but runs no shell, so pipes, "
                                              "redirections, globs and $VARIABLES are passed as they are")
        elif isinstance(args, dict):
            self.warn(f"{pointer}/arguments", "process arguments as a mapping are deprecated (write a list): each "
                                              "key is followed by its value, in order")

    def _check_provider_timeout(self, timeout: Any, kind: Any, pointer: str) -> Iterator[Problem]:
        if kind == "http" and isinstance(timeout, list):
            if len(timeout) != 2 or not all(_positive_number_or_var(t) and not isinstance(t, str) for t in timeout):
                yield self.problem(pointer, f"an http timeout is seconds or [connect, read] seconds, got {timeout!r}")
            return
        if not _positive_number_or_var(timeout):
            yield self.problem(pointer, f"the provider's timeout must be a positive number of seconds, got "
                                        f"{timeout!r}")
        elif _too_many_seconds(timeout):
            yield self.problem(pointer, f"the provider's timeout must be at most {MAX_SECONDS} seconds (7 days)")
        elif isinstance(timeout, str):
            yield from self._check_template_seconds(timeout, pointer, "the provider's timeout must be")

    def _check_template_seconds(
        self, text: str, pointer: str, what: str, allow_zero: bool = False
    ) -> Iterator[Problem]:
        """``${name}`` used as seconds: one configuration value, known now and a sane number (else it would
        only fail at run time, perhaps in the middle of the rollbacks)."""
        match = _SINGLE_VARIABLE.fullmatch(text)
        if match is None:
            yield self.problem(pointer, f"{what} a number of seconds or a single ${{name}}, got {text!r}")
            return
        name = match[1]
        found, value = self._configured_value(name)
        if not found:
            if name not in self.variables.configuration and name not in (self.data.get("configuration") or {}) \
                    and name in self.known_variables():
                yield self.problem(pointer, f"{what} a number of seconds from the configuration, not the secret {text}")
            return  # unresolved or unset: reported elsewhere
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            seconds = math.nan
        if isinstance(value, bool) or not (0 <= seconds <= MAX_SECONDS) or (seconds == 0 and not allow_zero):
            shown = "its value" if self._env_backed(name) else repr(value)
            yield self.problem(
                pointer, f"{what} a positive number of seconds (at most {MAX_SECONDS}), got {shown} from {text}"
            )

    def _env_backed(self, name: str) -> bool:
        config = self.data.get("configuration")
        entry = config.get(name) if isinstance(config, dict) else None
        return name not in self.variables.configuration and isinstance(entry, dict) and entry.get("type") == "env"

    def _configured_value(self, name: str) -> tuple[bool, Any]:
        """(True, value) when ``name``'s configuration value is known before the run."""
        if name in self.variables.configuration:
            return True, self.variables.configuration[name]
        config = self.data.get("configuration")
        if not isinstance(config, dict) or name not in config:
            return False, None
        entry = config[name]
        if not isinstance(entry, dict) or "type" not in entry:
            return True, entry
        if entry.get("type") != "env" or not isinstance(entry.get("key"), str):
            return False, None
        key = entry["key"]
        raw = self.variables.environment.get(key, os.environ.get(key, entry.get("default")))
        if raw is None or entry.get("env_var_type") is None:
            return raw is not None, raw
        from chaoslib import convert_to_type

        try:
            return True, convert_to_type(entry["env_var_type"], raw)
        except Exception:  # reported by the env check
            return False, None

    # --- variables and references ---------------------------------------------------
    def known_variables(self) -> set[str]:
        """The names a ``${name}`` may use: configuration and secrets, the file's and the command line's (worked
        out once: neither changes while the file is checked)."""
        if self._known is not None:
            return self._known
        names = set(self.variables.configuration)
        config = self.data.get("configuration")
        if isinstance(config, dict):
            names |= set(config)
        for source in (self.data.get("secrets"), self.variables.secrets):
            if isinstance(source, dict):
                for scope in source.values():
                    if isinstance(scope, dict):
                        names |= set(scope)
        self._known = names
        return names

    def check_variables(self, activity: dict[str, Any], pointer: str) -> Iterator[Problem]:
        found: list[tuple[Where, str]] = []
        _templated(activity, pointer, found)
        for where, text in found:
            for name in template_names(text):
                known = self.known_variables()
                if name not in known:
                    yield self.problem(
                        pointer_of(where),
                        f"unresolved variable ${{{name}}}: not in configuration or secrets"
                        f"{suggest(name, known)} (or pass --var {name}=...)",
                    )

    def _activity_names(self) -> Iterator[str]:
        for section in ("method", "rollbacks"):
            for activity in _as_list(self.data.get(section)):
                if isinstance(activity, dict) and isinstance(activity.get("name"), str):
                    yield activity["name"]
        hypothesis = self.data.get("steady-state-hypothesis")
        if isinstance(hypothesis, dict):
            for probe in _as_list(hypothesis.get("probes")):
                if isinstance(probe, dict) and isinstance(probe.get("name"), str):
                    yield probe["name"]

    def check_references(self) -> Iterator[Problem]:
        for section in ("method", "rollbacks"):
            items = self.data.get(section)
            if not isinstance(items, list):
                continue
            for index, activity in enumerate(items):
                if isinstance(activity, dict) and isinstance(activity.get("ref"), str):
                    ref = activity["ref"]
                    if ref not in self.names:
                        yield self.problem(
                            f"/{section}/{index}/ref",
                            f"no activity named {ref!r}{suggest(ref, self.names)}",
                        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _too_many_seconds(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > MAX_SECONDS


def _positive_number_or_var(value: Any, allow_zero: bool = False) -> bool:
    if isinstance(value, str):
        return value.startswith("${") and value.endswith("}")
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return False
    return value >= 0 if allow_zero else value > 0


def _templated(value: Any, where: Where, found: list[tuple[Where, str]]) -> None:
    """Add to ``found`` every string in ``value`` that may hold a ``${name}`` (it has a ``$``), in document order,
    with where it is (its pointer is built only for a problem)."""
    if isinstance(value, str):
        if "$" in value:
            found.append((where, value))
        return
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if isinstance(item, str):
            if "$" in item:
                found.append(((where, key), item))
        elif isinstance(item, (dict, list)):
            _templated(item, (where, key), found)

