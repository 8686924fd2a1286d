"""Load and check an experiment in one step: what ``run``, ``plan``, ``validate`` and game days all do first."""

from __future__ import annotations

from mlchaos.experiment.loader import load_document
from mlchaos.experiment.models import Experiment, build_experiment
from mlchaos.experiment.problems import ProblemList
from mlchaos.experiment.validation import validate
from mlchaos.experiment.variables import Variables, load_variables


def load_checked(path: str, var: list[str], var_files: list[str]) -> tuple[Experiment, Variables]:
    """Load, validate and build an experiment; raise ProblemList with every problem."""
    variables = load_variables(var, var_files)
    doc = load_document(path)
    problems = validate(doc, variables)
    if problems:
        raise ProblemList(problems)
    return build_experiment(doc), variables
