"""Load and check an experiment in one step: what ``run``, ``plan``, ``validate`` and game days all do first.

An experiment may ask its notification receiver to listen at a *named* place instead of a
``HOST:PORT`` (``extensions: [{name: mlchaos, notifications: {listen: sandbox}}]``). The core
does not know what a name means: the caller passes the :class:`ListenTarget` s it knows (the
command line passes the sandbox's), :func:`load_checked` asks the named one for its
validation-time problems, and :func:`listen_endpoint` turns the name into the address (and the file for the run's
receiver token) when the runner starts its receiver, so the engine never knows what a name means.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlchaos.errors import InvalidInput
from mlchaos.experiment.loader import Document, load_document
from mlchaos.experiment.models import Experiment, build_experiment
from mlchaos.experiment.problems import Problem, ProblemList, suggest
from mlchaos.experiment.settings import ADDRESS, SANDBOX, TokenSecret, mlchaos_extension_index
from mlchaos.experiment.validation import examine
from mlchaos.experiment.variables import Variables, load_variables


class ListenTarget(Protocol):
    """A named place the run's notification receiver may listen at (``notifications: {listen: NAME}``)."""

    def preflight(self) -> list[str]:
        """What keeps an experiment that listens here from running, found without starting anything."""

    def address(self) -> str:
        """``HOST:PORT`` to listen at now; raises InvalidInput saying why there is none."""

    def token_file(self) -> Path:
        """Where the run writes its receiver's token: the file the target's Alertmanager sends as its bearer."""


@dataclass(frozen=True)
class ListenEndpoint:
    """Where the run's receiver listens, and where its credential comes from (exactly one of the three)."""

    address: str  # HOST:PORT
    token_file: Path | None = None  # the run writes a fresh token here (0600)
    token_env: str | None = None  # the variable that holds the token the Alertmanager was given
    token_secret: TokenSecret | None = None  # the Kubernetes Secret each run takes a fresh token from, and rotates


ListenTargets = Mapping[str, ListenTarget]


def load_checked(path: str, var: list[str], var_files: list[str],
                 listen_targets: ListenTargets | None = None) -> tuple[Experiment, Variables]:
    """Load, validate and build an experiment; raise ProblemList with every problem. What validation advises
    (warnings) travels with the experiment (``Experiment.warnings``).

    With ``listen_targets`` (the command line passes the ones it knows), a named notification listener must
    be one of them, and its preflight problems are the experiment's; without, a name is left for
    :func:`listen_endpoint` to resolve (or refuse) when the run starts.
    """
    variables = load_variables(var, var_files)
    doc = load_document(path)
    findings = examine(doc, variables)
    problems = findings.problems
    if listen_targets is not None:
        problems = sorted(problems + _listen_problems(doc, listen_targets, problems), key=lambda p: p.line or 0)
    if problems:
        raise ProblemList(problems)
    warnings = tuple(str(warning) for warning in findings.warnings)
    return dataclasses.replace(build_experiment(doc), warnings=warnings), variables


def listen_endpoint(experiment: Experiment, listen_targets: ListenTargets | None = None) -> ListenEndpoint | None:
    """Where the run's notification receiver listens and how it authenticates: ``HOST:PORT`` with the
    experiment's ``token_file`` (relative to the experiment's folder), ``token_env`` or ``token_kubernetes_secret``,
    or a named target resolved through ``listen_targets`` (InvalidInput when it cannot be); None when there is no
    receiver."""
    settings = experiment.settings
    listen = settings.notifications_listen
    if listen is None:
        return None
    if ADDRESS.match(listen):
        token_file = settings.notifications_token_file
        path = None if token_file is None else Path(experiment.source).parent / Path(token_file).expanduser()
        return ListenEndpoint(listen, path, settings.notifications_token_env, settings.notifications_token_secret)
    target = (listen_targets or {}).get(listen)
    if target is None:
        raise InvalidInput(f"notifications: listen: {listen}: no such listen target here")
    try:
        return ListenEndpoint(target.address(), target.token_file())
    except InvalidInput as exc:
        raise InvalidInput(f"notifications: listen: {listen}: {exc}") from None


def _listen_problems(doc: Document, listen_targets: ListenTargets, found: list[Problem]) -> list[Problem]:
    """The named listen target's problems; none while validation already found the setting wrong."""
    index = mlchaos_extension_index(doc.data)
    if index is None:
        return []
    pointer = f"/extensions/{index}/notifications"
    if any(p.pointer == pointer or p.pointer.startswith(pointer + "/") for p in found):
        return []
    notifications = doc.data["extensions"][index].get("notifications")
    if not isinstance(notifications, dict):
        return []
    listen = notifications.get("listen", SANDBOX)
    if not isinstance(listen, str) or ADDRESS.match(listen) or not re.fullmatch(r"[a-z][a-z0-9_-]*", listen):
        return []
    target = listen_targets.get(listen)
    if target is None:
        known = ", ".join(sorted(listen_targets)) or "none"
        return [doc.problem(pointer, f"notifications: listen: {listen}: no such listen target here (known: {known})"
                                     f"{suggest(listen, listen_targets)}")]
    return [doc.problem(pointer, f"notifications: listen: {listen} {message}") for message in target.preflight()]
