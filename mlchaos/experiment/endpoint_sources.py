"""Where a run's endpoint declarations come from: the experiment, var files, ``${name}`` variables, the journal.

* **Var files.** A JSON or YAML ``--var-file`` may declare ``endpoints`` (the schema of ``extensions: mlchaos:
  endpoints``); each replaces the experiment's endpoint of the same name *whole* (nothing of the experiment's
  declaration is kept), and a later var file's replaces an earlier one's. A relative file path in a var file's
  declaration (``ca_file``, ``bearer_token_file``, ``kubernetes.kubeconfig``...) is relative to that var file.
* **Variables.** ``${name}`` in a declaration's values is substituted from the configuration and the secrets,
  by chaoslib's rules as for an activity's arguments (a value that is one ``${name}`` keeps its type:
  ``timeout: ${t}`` is a number). A name that is neither is a problem; validation checks what it can know
  before the run (a vault secret's value is only known then, when the run checks the result again).
* **The journal.** The run writes the declarations it used (merged, substituted) into the journal
  (``mlchaos.endpoints``, redacted like the rest) and into its exact records, so ``mlchaos recover`` and the
  guardian rebuild the endpoints an undo names from the journal alone: :func:`recorded_endpoints`.

Messages never show a secret value: every sensitive value substituted into a declaration is masked.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.endpoints import check_endpoints, declared_endpoints, endpoint_warnings, secret_problems
from mlchaos.experiment.loader import pointer_join
from mlchaos.experiment.problems import Problem, suggest
from mlchaos.experiment.settings import mlchaos_extension_index

if TYPE_CHECKING:
    from mlchaos.experiment.variables import Variables

MASK = "***"
MIN_MASKED = 3  # as the journal's redaction: shorter values cannot be masked without mangling every message
PATH_KEYS = ("bearer_token_file", "ca_file", "client_cert_file", "client_key_file")
VAR_FILE_POINTER = "/endpoints"


@dataclass(frozen=True)
class Values:
    """What ``${name}`` may be substituted with: the configuration and the secrets known now, every name that will
    have a value at run time (``known``), and the values that must never be shown (``sensitive``)."""

    configuration: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    known: frozenset[str] = frozenset()
    sensitive: tuple[str, ...] = ()
    final: bool = False  # every value is known (the run): a name left is unresolved whatever ``known`` says


@dataclass(frozen=True)
class Source:
    """One place endpoints are declared: the file, the pointer of the mapping, its declarations, paths' folder."""

    file: str
    pointer: str
    declarations: Any
    base_dir: Path
    doc: Any = None  # the var file's Document (for line numbers), when there is one
    var_file: bool = False


@dataclass(frozen=True)
class Findings:
    """What checking one source found: its declarations substituted, problems and warnings (pointers below it)."""

    declarations: dict[str, Any]
    problems: list[tuple[str, str]]
    warnings: list[tuple[str, str]]


def template_names(text: str) -> Iterator[str]:
    """Names of ``${name}`` references. A bare ``$name`` is substituted when it is known but is
    not reported when it is not: it is common in text such as Prometheus templates."""
    for match in string.Template.pattern.finditer(text):
        if match.group("braced"):
            yield match.group("braced")


def sources(data: dict[str, Any], variables: Variables | None, experiment_file: str | Path) -> list[Source]:
    """The experiment's declarations, then each var file's (in the order their endpoints apply)."""
    found: list[Source] = []
    index = mlchaos_extension_index(data)
    if index is not None and "endpoints" in data["extensions"][index]:
        found.append(Source(str(experiment_file), f"/extensions/{index}/endpoints",
                            data["extensions"][index]["endpoints"], Path(experiment_file).parent))
    if variables is not None:
        by_file: dict[int, tuple[Any, dict[str, Any]]] = {}
        for name, declaration in variables.endpoints.items():
            doc = variables.endpoint_sources[name]
            by_file.setdefault(id(doc), (doc, {}))[1][name] = declaration
        for doc, declarations in by_file.values():
            found.append(Source(str(doc.path), VAR_FILE_POINTER, declarations, Path(doc.path).absolute().parent,
                                doc, var_file=True))
    return found


def examine(source: Source, values: Values) -> Findings:
    """Substitute ``${name}`` in one source's declarations, then check them (problems, warnings)."""
    value = source.declarations
    if not isinstance(value, dict) or not value:
        return Findings({}, list(check_endpoints(value)), [])
    declarations = substitute(value, values.configuration, values.secrets)
    available = set(values.configuration) | {k for scope in values.secrets.values() if isinstance(scope, Mapping)
                                              for k in scope}
    problems: list[tuple[str, str]] = []
    pending: list[str] = []
    for pointer, text in strings(value, ""):  # the declarations as written: ``$${x}`` is a literal ``${x}``
        for name in template_names(text):
            if name in available:
                continue
            pending.append(pointer)
            if values.final or name not in values.known:
                endpoint = pointer.split("/")[1]
                problems.append((pointer, f"endpoint {endpoint!r}: unresolved variable ${{{name}}}: not in "
                                          f"configuration or secrets{suggest(name, values.known)} (pass --var "
                                          f"{name}=... or a --var-file)"))
    problems += [(p, m) for p, m in check_endpoints(declarations) if not _under(p, pending)]
    warnings: list[tuple[str, str]] = []
    if not problems:
        warnings += [(p, m) for p, m in endpoint_warnings(declarations, source.base_dir) if not _under(p, pending)]
    if source.var_file:
        declarations = {name: _absolute(data, source.base_dir) for name, data in declarations.items()}
    return Findings(declarations, _masked(problems, values.sensitive), _masked(warnings, values.sensitive))


def secret_reference_problems(findings: Findings, secrets_block: Any) -> list[tuple[str, str]]:
    """Secret references (``bearer_token_secret``, ``password_secret``) naming no ``scope.key`` of the
    experiment's ``secrets``; none while the declarations have other problems."""
    if findings.problems:
        return []
    return list(secret_problems(findings.declarations, secrets_block))


def problem(source: Source, pointer: str, message: str) -> Problem:
    """A problem of ``source`` at ``pointer`` (below its declarations), with its line when the file has them."""
    where = source.pointer + pointer
    if source.doc is not None:
        return source.doc.problem(where, message)
    return Problem(source.file, where, None, message)


def resolve_endpoints(data: dict[str, Any], variables: Variables | None, experiment_file: str | Path,
                      configuration: Mapping[str, Any], secrets: Mapping[str, Any],
                      sensitive: Iterable[str] = ()) -> dict[str, Any]:
    """The run's endpoint declarations (every value known now): the experiment's, each replaced whole by a var
    file's of the same name, ``${name}`` substituted, a var file's relative paths made absolute.

    InvalidInput naming every problem's file and place (one only known now: a variable a vault secret fills).
    """
    values = Values(configuration, secrets, frozenset(), _sensitive(sensitive), final=True)
    merged: dict[str, Any] = {}
    problems: list[Problem] = []
    for source in sources(data, variables, experiment_file):
        findings = examine(source, values)
        found = findings.problems + secret_reference_problems(findings, data.get("secrets"))
        problems += [problem(source, p, m) for p, m in found]
        merged.update(findings.declarations)
    if problems:
        raise InvalidInput("endpoints:\n" + "\n".join(str(p) for p in problems))
    return merged


def recorded_endpoints(journal: Mapping[str, Any]) -> dict[str, Any]:
    """The endpoint declarations a journal's run used: those it recorded (``mlchaos.endpoints``), else (a journal
    of an older mlchaos) the ones its copy of the experiment declares."""
    section = journal.get("mlchaos")
    recorded = section.get("endpoints") if isinstance(section, Mapping) else None
    if isinstance(recorded, dict):
        return recorded
    experiment = journal.get("experiment")
    return declared_endpoints(experiment) if isinstance(experiment, dict) else {}


def substitute(value: dict[str, Any], configuration: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """Each declaration with ``${name}`` substituted as chaoslib substitutes an activity's arguments (names kept)."""
    from chaoslib import substitute as chaoslib_substitute

    return {name: chaoslib_substitute(data, dict(configuration), dict(secrets)) if isinstance(data, dict) else data
            for name, data in value.items()}


def _absolute(data: Any, base_dir: Path) -> Any:
    """A var file's declaration with its relative file paths made absolute (they are relative to the var file)."""
    if not isinstance(data, dict):
        return data
    found = dict(data)
    for key in PATH_KEYS:
        found[key] = _path(found.get(key), base_dir)
    for key, inner in (("basic_auth", "password_file"), ("kubernetes", "kubeconfig")):
        if isinstance(found.get(key), dict) and inner in found[key]:
            found[key] = {**found[key], inner: _path(found[key][inner], base_dir)}
    return {k: v for k, v in found.items() if v is not None or k in data}


def _path(value: Any, base_dir: Path) -> Any:
    if not isinstance(value, str) or not value or value.startswith("~") or Path(value).is_absolute():
        return value
    return str(base_dir / value)


def strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """(JSON pointer, text) of every string in ``value`` (below ``pointer``)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, pointer_join(pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, pointer_join(pointer, index))


def _under(pointer: str, pending: list[str]) -> bool:
    """True when ``pointer`` is at (or below) a value that still holds a variable: checked when the run knows it."""
    return any(pointer == p or pointer.startswith(p + "/") for p in pending)


def _sensitive(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if isinstance(v, str) and len(v) >= MIN_MASKED}, key=len, reverse=True))


def _masked(found: list[tuple[str, str]], sensitive: tuple[str, ...]) -> list[tuple[str, str]]:
    masked = []
    for pointer, message in found:
        for value in sensitive:
            message = message.replace(value, MASK)
        masked.append((pointer, message))
    return masked
