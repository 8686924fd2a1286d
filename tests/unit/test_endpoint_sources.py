"""Endpoint declarations from var files and ``${name}`` variables: merging by name, validation naming the file and
the place, substitution by chaoslib's rules, secrets never shown, what the run records for recovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlchaos.errors import InvalidInput
from mlchaos.experiment.endpoint_sources import recorded_endpoints, resolve_endpoints
from mlchaos.experiment.pipeline import load_checked
from mlchaos.experiment.problems import ProblemList
from mlchaos.experiment.variables import load_variables
from mlchaos.safety import exact_records
from tests.support.bad_experiments import valid

SECRET_HOST = "secret-host-name-5d1c"
KUBE = {"namespace": "monitoring", "service": "prometheus", "port": 9090, "context": "staging"}
QUERY = {"type": "probe", "name": "q", "provider": {
    "type": "python", "module": "drivers.prometheus.probes", "func": "query_value",
    "arguments": {"query": "up", "endpoint": "prom-b"}}}


def _experiment(tmp_path: Path, endpoints: dict[str, Any] | None = None, **top: Any) -> Path:
    data = valid() | top
    if endpoints is not None:
        data["extensions"] = [{"name": "mlchaos", "endpoints": endpoints}]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data))
    return path


def _vars(tmp_path: Path, data: Any, name: str = "vars.yaml") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _resolved(path: Path, var_files: list[str], var: list[str] | None = None,
              secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    experiment, variables = load_checked(str(path), var or [], var_files)
    configuration = {**experiment.configuration, **variables.configuration}
    return resolve_endpoints(experiment.raw, variables, experiment.source, configuration, secrets or {})


def test_a_var_file_endpoint_replaces_the_experiments_of_the_same_name_whole(tmp_path):
    path = _experiment(tmp_path, {"prometheus": {"url": "https://prom-a:9090", "headers": {"X-Scope-OrgID": "a"}},
                                  "alertmanager": {"url": "https://am:9093"}})
    (tmp_path / "staging").mkdir()
    first = _vars(tmp_path / "staging", {"endpoints": {"prometheus": {"url": "https://prom-b:9090",
                                                                      "ca_file": "certs/ca.pem"},
                                                       "serving": {"url": "https://model:8443"},
                                                       "k": {"kubernetes": KUBE | {"kubeconfig": "kube/config"}}}})
    second = _vars(tmp_path, {"endpoints": {"serving": {"url": "https://model-2:8443"}}}, "more.json")
    resolved = _resolved(path, [first, second])
    assert resolved == {
        "prometheus": {"url": "https://prom-b:9090", "ca_file": str(tmp_path / "staging" / "certs" / "ca.pem")},
        "alertmanager": {"url": "https://am:9093"},  # the experiment's, untouched
        "serving": {"url": "https://model-2:8443"},  # a later var file's replaces an earlier one's
        "k": {"kubernetes": KUBE | {"kubeconfig": str(tmp_path / "staging" / "kube" / "config")}},
    }


def test_problems_of_a_var_files_endpoints_name_the_file_the_place_and_the_line(tmp_path):
    path = _experiment(tmp_path)
    var_file = _vars(tmp_path, {"configuration": {"x": 1},
                                "endpoints": {"prometheus": {"url": "ftp://prom", "basic_auth": {"username": "u"}}}})
    with pytest.raises(ProblemList) as failure:
        load_checked(str(path), [], [var_file])
    found = {p.pointer: p for p in failure.value.problems}
    assert set(found) == {"/endpoints/prometheus/url", "/endpoints/prometheus/basic_auth"}
    url = found["/endpoints/prometheus/url"]
    assert url.file == var_file and url.line == 5 and "endpoint 'prometheus': url must be http(s)" in url.message
    assert str(found["/endpoints/prometheus/basic_auth"]).startswith(f"{var_file}:6: /endpoints/prometheus/basic_auth:"
                                                                     " endpoints: endpoint 'prometheus': basic_auth "
                                                                     "needs exactly one of password_file")


@pytest.mark.parametrize(("content", "pointer", "message"), [
    ({"endpoints": ["prometheus"]}, "/endpoints", "must be a mapping"),
    ({"endpoint": {}}, "", "only 'configuration', 'secrets' and 'endpoints'"),
])
def test_a_malformed_endpoints_section_is_a_problem_of_the_var_file(tmp_path, content, pointer, message):
    var_file = _vars(tmp_path, content)
    with pytest.raises(ProblemList) as failure:
        load_variables([], [var_file])
    (problem,) = failure.value.problems
    assert (problem.file, problem.pointer) == (var_file, pointer) and message in problem.message


def test_an_activity_may_name_an_endpoint_only_a_var_file_declares(tmp_path):
    path = _experiment(tmp_path, method=[QUERY])
    with pytest.raises(ProblemList, match=r"no endpoint named 'prom-b' is declared \(declared: none"):
        load_checked(str(path), [], [])
    var_file = _vars(tmp_path, {"endpoints": {"prom-b": {"url": "https://prom-b:9090"}}})
    experiment, variables = load_checked(str(path), [], [var_file])
    assert variables.endpoints == {"prom-b": {"url": "https://prom-b:9090"}} and experiment.title


def test_variables_are_substituted_as_chaoslib_substitutes_arguments(tmp_path):
    """``${name}`` from the configuration (the experiment's, a var file's, --var), whole values keeping their type."""
    path = _experiment(tmp_path, {"prometheus": {"url": "${prometheus_url}", "timeout": "${prom_timeout}",
                                                 "headers": {"X-Scope-OrgID": "team-${tenant}",
                                                             "X-Literal": "$${not_a_variable}"}}},
                       configuration={"prom_timeout": 7})
    var_file = _vars(tmp_path, {"configuration": {"prometheus_url": "https://prom.staging:9090"}})
    resolved = _resolved(path, [var_file], ["tenant=a"])
    assert resolved == {"prometheus": {"url": "https://prom.staging:9090", "timeout": 7,
                                       "headers": {"X-Scope-OrgID": "team-a", "X-Literal": "${not_a_variable}"}}}


def test_an_unresolved_variable_is_one_clear_problem(tmp_path):
    path = _experiment(tmp_path, {"p": {"url": "${prometheus_ur}"}}, configuration={"prometheus_url": "https://p"})
    with pytest.raises(ProblemList) as failure:
        load_checked(str(path), [], [])
    (problem,) = failure.value.problems  # the url's own check waits for a value: not a second problem
    assert problem.pointer == "/extensions/0/endpoints/p/url"
    assert "endpoint 'p': unresolved variable ${prometheus_ur}: not in configuration or secrets (did you mean " \
           "'prometheus_url'?)" in problem.message


def test_a_secret_substituted_into_a_declaration_is_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHAOS_TEST_HOST", SECRET_HOST)
    path = _experiment(tmp_path, {"p": {"url": "${host}", "basic_auth": {"username": "${host}",
                                                                          "password_env": "MLCHAOS_TEST_PW"}}},
                       secrets={"s": {"host": {"type": "env", "key": "MLCHAOS_TEST_HOST"}}})
    with pytest.raises(ProblemList) as failure:
        load_checked(str(path), [], [])
    (problem,) = failure.value.problems
    assert "url must be http(s)://HOST[:PORT][/PATH] (no query) or k8s://NAMESPACE/SERVICE:PORT, got '***'" \
           in problem.message
    assert SECRET_HOST not in str(failure.value)


def test_a_value_known_only_at_run_time_is_checked_by_the_run(tmp_path):
    """A vault secret has no value before the run: validation lets its ``${name}`` be; the run checks the result,
    naming the file and the place, and never showing the value."""
    path = _experiment(tmp_path, {"p": {"url": "${vault_url}"}},
                       secrets={"s": {"vault_url": {"type": "vault", "path": "secret/prom"}}})
    experiment, variables = load_checked(str(path), [], [])
    resolved = resolve_endpoints(experiment.raw, variables, path, {}, {"s": {"vault_url": "https://prom:9090"}})
    assert resolved == {"p": {"url": "https://prom:9090"}}
    with pytest.raises(InvalidInput) as failure:
        resolve_endpoints(experiment.raw, variables, path, {}, {"s": {"vault_url": SECRET_HOST}}, [SECRET_HOST])
    assert f"{path}: /extensions/0/endpoints/p/url: endpoint 'p': url must be" in str(failure.value)
    assert SECRET_HOST not in str(failure.value)
    with pytest.raises(InvalidInput, match=r"unresolved variable \$\{vault_url\}"):
        resolve_endpoints(experiment.raw, variables, path, {}, {})


def test_the_run_records_its_endpoints_redacted_for_recovery(tmp_path, run_experiment, monkeypatch):
    """The journal holds the declarations the run used (the var file's, substituted): what ``mlchaos recover``
    and the guardian rebuild the endpoints an undo names from; a secret substituted into one is ``***``."""
    monkeypatch.setenv("MLCHAOS_TEST_USER", SECRET_HOST)
    monkeypatch.setenv("MLCHAOS_TEST_PW", "a-password-read-at-the-start")
    data = valid() | {"secrets": {"s": {"user": {"type": "env", "key": "MLCHAOS_TEST_USER"}}}}
    var_file = _vars(tmp_path, {"configuration": {"prom_url": "https://prom:9090"}, "endpoints": {"prometheus": {
        "url": "${prom_url}", "basic_auth": {"username": "${user}", "password_env": "MLCHAOS_TEST_PW"}}}})
    variables = load_variables([], [var_file])
    result, journal, console = run_experiment(data, variables)
    assert result.exit_code == 0, console
    assert journal["mlchaos"]["endpoints"] == {"prometheus": {
        "url": "https://prom:9090", "basic_auth": {"username": "***", "password_env": "MLCHAOS_TEST_PW"}}}
    assert recorded_endpoints(journal) == journal["mlchaos"]["endpoints"]
    assert SECRET_HOST not in json.dumps(journal) + console
    assert "a-password-read-at-the-start" not in json.dumps(journal) + console


def test_a_journal_of_an_older_mlchaos_gives_its_experiments_endpoints():
    experiment = valid() | {"extensions": [{"name": "mlchaos", "endpoints": {"p": {"url": "https://p"}}}]}
    assert recorded_endpoints({"experiment": experiment, "mlchaos": {}}) == {"p": {"url": "https://p"}}
    assert recorded_endpoints({"mlchaos": {}}) == {}


def test_the_exact_records_keep_the_endpoints_exactly(state_dir):
    records = exact_records.ExactRecords.for_run("run-1", None, [SECRET_HOST],
                                                 {"p": {"url": "https://p", "basic_auth": {"username": SECRET_HOST}}})
    records.add_change({"action": "a"})
    loaded = exact_records.load(records.path, "run-1")
    assert loaded is not None and loaded.endpoints == records.endpoints
    assert loaded.secrets == [SECRET_HOST]  # it occurs in them: recovery redacts it in what it reports
    older = json.loads(records.path.read_text())
    del older["endpoints"]
    records.path.write_text(json.dumps(older))
    assert exact_records.load(records.path, "run-1").endpoints == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(("kubernetes", "pointer", "message"), [
    ({"context": ""}, "context", "context must be a context name of the kubeconfig"),
    ({"kubeconfig": 3}, "kubeconfig", "kubeconfig must be a kubeconfig file's path"),
    ({"cluster": "x"}, "cluster", "unknown kubernetes key 'cluster'"),
])
def test_a_kubernetes_endpoints_context_and_kubeconfig_are_checked(tmp_path, kubernetes, pointer, message):
    base = {"namespace": "monitoring", "service": "prometheus", "port": 9090}
    path = _experiment(tmp_path, {"p": {"kubernetes": base | kubernetes}})
    with pytest.raises(ProblemList) as failure:
        load_checked(str(path), [], [])
    (problem,) = failure.value.problems
    assert problem.pointer == f"/extensions/0/endpoints/p/kubernetes/{pointer}" and message in problem.message


def test_a_missing_kubeconfig_is_a_warning_relative_to_the_experiment(tmp_path):
    path = _experiment(tmp_path, {"p": {"kubernetes": {"namespace": "m", "service": "s", "port": 1,
                                                       "context": "staging", "kubeconfig": "kube/config"}}})
    experiment, _ = load_checked(str(path), [], [])
    assert any(f"kubeconfig {tmp_path / 'kube' / 'config'} does not exist here" in w for w in experiment.warnings)
