"""A driver whose client library is not installed (``make demo`` installs mlchaos without the Docker and Kubernetes
clients) fails validation naming the package to install, before anything runs. The library is hidden by making
``find_spec`` answer None for it alone: both are installed here."""

from __future__ import annotations

import importlib.util

import pytest

from drivers._common import packages
from mlchaos.experiment.pipeline import load_checked
from mlchaos.experiment.problems import ProblemList
from tests.support.paths import EXPERIMENTS


@pytest.mark.parametrize(("experiment", "hidden"), [("docker-kill-replica.yaml", "docker")])
def test_a_missing_client_library_is_a_validation_error_naming_it(experiment: str, hidden: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(packages, "find_spec", lambda name, *a: None if name == hidden else real(name, *a))
    with pytest.raises(ProblemList) as error:
        load_checked(str(EXPERIMENTS / experiment), [], [])
    text = str(error.value)
    assert f"needs the Python package '{hidden}', which is not installed: `pip install {hidden}`" in text
    assert experiment in text


def test_an_installed_client_library_is_no_problem() -> None:
    assert packages.missing("docker", "docker", "drivers.docker") == []
    assert packages.missing("kubernetes", "kubernetes", "drivers.kubernetes") == []
    assert packages.missing("mlchaos_no_such_module", "x", "drivers.x")[0].startswith("drivers.x needs")
