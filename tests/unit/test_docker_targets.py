"""What a Docker change record says about its targets and where it acts (plain data, no engine)."""

from __future__ import annotations

import pytest

from drivers.docker.client import environment_id
from drivers.docker.targets import details


def _inspect(labels: dict[str, str]) -> dict:
    return {"Id": "a" * 64, "Name": "/stack-model-0-1", "RestartCount": 2,
            "Config": {"Image": "mlchaos/model-server:latest", "Labels": labels},
            "State": {"Pid": 4321, "Status": "running"},
            "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}},
            "NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18100"}]}}}


def test_details_keep_every_label_and_surface_project_and_service():
    labels = {"com.docker.compose.project": "mlchaos", "com.docker.compose.service": "model-0",
              "mlchaos.service": "model", "mlchaos.target": "model", "org.opencontainers.image.title": "x",
              "team": "ml-serving"}
    found = details(_inspect(labels))
    assert found["labels"] == labels  # all of them: scopes may match any label
    assert (found["project"], found["service"]) == ("mlchaos", "model")
    assert found["instance"] == "127.0.0.1:18100" and found["pid"] == 4321


def test_service_falls_back_to_the_compose_service_and_absent_labels_add_nothing():
    compose_only = details(_inspect({"com.docker.compose.project": "p", "com.docker.compose.service": "web"}))
    assert (compose_only["project"], compose_only["service"]) == ("p", "web")
    bare = details(_inspect({}))
    assert bare["labels"] == {} and "project" not in bare and "service" not in bare


@pytest.mark.parametrize(("value", "expected"), [(None, "docker:unix:///var/run/docker.sock"),
                                                 ("", "docker:unix:///var/run/docker.sock"),
                                                 ("tcp://10.0.0.5:2376", "docker:tcp://10.0.0.5:2376")])
def test_the_environment_is_the_engine_address(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
    else:
        monkeypatch.setenv("DOCKER_HOST", value)
    assert environment_id() == expected
