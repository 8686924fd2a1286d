"""Run-time variables: ``--var name[:type]=value`` and ``--var-file`` (JSON, YAML or .env).

Unlike chaostoolkit-lib's ``merge_vars``, an unreadable or malformed var file is an
error that names the file, not a log line. A JSON or YAML var file may also declare
``endpoints`` (the schema of ``extensions: mlchaos: endpoints``): each replaces the experiment's
endpoint of the same name whole (a later file's, an earlier one's). They are checked with the
experiment (:mod:`mlchaos.experiment.validation`), each problem naming the var file and the place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.loader import MAX_FILE_BYTES, Document, decode, read_document
from mlchaos.experiment.problems import Problem, ProblemList

if TYPE_CHECKING:
    from mlchaos.experiment.models import Experiment

VAR_FILE_KEYS = ("configuration", "secrets", "endpoints")
_CONVERTERS = {"str": str, "int": int, "float": float, "bool": lambda v: v.lower() in {"1", "true", "yes", "on"}}


@dataclass
class Variables:
    """Values that override the experiment's configuration and secrets."""

    configuration: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)  # declared by var files: name -> declaration
    endpoint_sources: dict[str, Document] = field(default_factory=dict)  # name -> the var file that declared it


def parse_var(text: str) -> tuple[str, Any]:
    """Parse one ``name[:type]=value`` (type is str, int, float or bool)."""
    if "=" not in text:
        raise ValueError(f"--var {text!r}: expected name[:type]=value")
    name, value = text.split("=", 1)
    kind = "str"
    if ":" in name:
        name, kind = name.rsplit(":", 1)
    if not name:
        raise ValueError(f"--var {text!r}: the name is empty")
    if kind not in _CONVERTERS:
        raise ValueError(f"--var {text!r}: unknown type {kind!r} (use {', '.join(_CONVERTERS)})")
    try:
        return name, _CONVERTERS[kind](value)
    except ValueError:
        raise ValueError(f"--var {text!r}: {value!r} is not a valid {kind}") from None


def load_variables(var_args: list[str], var_files: list[str]) -> Variables:
    """Merge var files (in order) then ``--var`` values; raise ProblemList on any error."""
    result = Variables()
    problems: list[Problem] = []
    for name in var_files:
        try:
            _merge_file(Path(name), result)
        except ProblemList as exc:
            problems.extend(exc.problems)
    for text in var_args:
        try:
            key, value = parse_var(text)
        except ValueError as exc:
            problems.append(Problem("<command line>", "", None, str(exc)))
            continue
        result.configuration[key] = value
    if problems:
        raise ProblemList(problems)
    return result


def _merge_file(path: Path, into: Variables) -> None:
    suffix = path.suffix.lower()
    if suffix in {".json", ".yaml", ".yml"}:
        try:  # the experiment loader's limits: size, depth, aliases, UTF-8, finite numbers
            doc = read_document(path)
        except ProblemList as exc:
            raise ProblemList([replace(p, message=f"cannot read var file: {p.message}")
                               for p in exc.problems]) from None
        data = doc.data or {}
        if not isinstance(data, dict) or set(data) - set(VAR_FILE_KEYS):
            raise ProblemList(
                [Problem(str(path), "", None,
                         "a var file must be a mapping with only 'configuration', 'secrets' and 'endpoints'")]
            )
        for key in VAR_FILE_KEYS:
            section = data.get(key) or {}
            if not isinstance(section, dict):
                raise ProblemList([doc.problem(f"/{key}", "must be a mapping")])
        for key in ("configuration", "secrets"):
            getattr(into, key).update(data.get(key) or {})
        for name, declaration in (data.get("endpoints") or {}).items():
            into.endpoints[name] = declaration  # the whole declaration: nothing of an earlier one is kept
            into.endpoint_sources[name] = doc
        return
    try:
        with open(path, "rb") as handle:  # may be a pipe: --var-file <(...)
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ProblemList([Problem(str(path), "", None, f"cannot read var file: more than {MAX_FILE_BYTES} bytes")])
        text = decode(raw, path)
    except OSError as exc:
        raise ProblemList([Problem(str(path), "", None, f"cannot read var file: {exc}")]) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ProblemList([Problem(str(path), "", number, "expected NAME=value")])
        key, value = line.split("=", 1)
        into.environment[key.strip()] = value.strip().strip('"').strip("'")


def resolve_values(experiment: Experiment, variables: Variables) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load configuration and secrets (env-backed values, --var overrides); InvalidInput on failure."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    # chaostoolkit-lib reads env-backed values from os.environ: the .env variables are put there for
    # the resolution only, and the environment is restored after (they never leak into the process)
    saved = {name: os.environ.get(name) for name in variables.environment}
    os.environ.update(variables.environment)
    try:
        configuration = load_configuration(
            dict(experiment.configuration), dict(variables.configuration)
        )
        # chaostoolkit-lib drops --var values the experiment did not declare; mlchaos keeps them
        for key, value in variables.configuration.items():
            configuration.setdefault(key, value)
        secrets = load_secrets(dict(experiment.secrets), configuration, dict(variables.secrets))
    except ChaosException as exc:
        raise InvalidInput(f"{experiment.source}: {exc}") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return configuration, secrets
