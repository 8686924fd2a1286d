"""The fault proxy's API as a declared endpoint: a real ``python -m mlchaos.proxy`` that takes only its token.

Without the token the proxy driver fails naming the refusal; through an endpoint whose ``bearer_token_file``
holds it, faults go in and come out, by a run of the real CLI (the undo its change record names carries the
endpoint's name) and by ``mlchaos recover`` reading that journal in another process. The token shows nowhere.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from drivers.proxy import actions, probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from tests.support.environment import child_env
from tests.support.proxy_process import start_proxy

TOKEN = "proxy-endpoint-token-5b0e1f2a9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def proxy_api(tmp_path: Path) -> Iterator[str]:
    upstream = socket.create_server(("127.0.0.1", 0))
    try:
        proxy = start_proxy(tmp_path / "proxy", [{"name": "web", "listen": "127.0.0.1:0",
                                                  "upstream": f"127.0.0.1:{upstream.getsockname()[1]}"}], token=TOKEN)
        try:
            yield proxy.api
        finally:
            proxy.stop()
    finally:
        upstream.close()


def _toxics(api: str) -> list[str]:
    return [t["name"] for t in requests.get(f"{api}/proxies/web", headers=AUTH, timeout=5).json()["toxics"]]


def test_without_the_token_the_driver_names_the_refusal(proxy_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN", raising=False)
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN_FILE", raising=False)
    with pytest.raises(DriverError, match=rf"proxy API at {proxy_api} refused GET /proxies/web: HTTP 401"):
        probes.list_toxics("web", url=proxy_api)


def test_faults_go_in_and_out_through_the_endpoint(proxy_api: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN", raising=False)
    (tmp_path / "token").write_text(TOKEN)
    table = endpoints.EndpointTable({"proxy": endpoints.Endpoint.from_dict(
        "proxy", {"url": proxy_api, "bearer_token_file": str(tmp_path / "token")})})
    previous = endpoints.activate(table)
    try:
        record = actions.add_toxic("web", "latency", {"latency": 50}, endpoint="proxy", ttl=60)
        assert record["undo"]["arguments"] == {"proxy": "web", "name": "latency_downstream", "url": None,
                                               "endpoint": "proxy"}
        assert probes.toxic_count("web") == 1  # neither url nor endpoint: the endpoint named proxy
        assert actions.remove_toxic(**record["undo"]["arguments"])["removed"] is True
    finally:
        endpoints.activate(previous)
        table.close()
    assert _toxics(proxy_api) == []


def test_a_run_and_mlchaos_recover_reach_the_proxy_through_the_endpoint(proxy_api: str, tmp_path: Path) -> None:
    (tmp_path / "proxy.token").write_text(TOKEN + "\n")
    experiment = {
        "title": "latency through an authenticated proxy API", "description": "endpoint: proxy",
        "method": [
            {"type": "action", "name": "slow-down", "provider": {
                "type": "python", "module": "drivers.proxy.actions", "func": "add_toxic",
                "arguments": {"proxy": "web", "type": "latency", "attributes": {"latency": 40}, "ttl": 120,
                              "endpoint": "proxy"}}},
            {"type": "probe", "name": "one-toxic", "tolerance": 1, "provider": {
                "type": "python", "module": "drivers.proxy.probes", "func": "toxic_count",
                "arguments": {"proxy": "web"}}},
        ],
        "extensions": [{"name": "mlchaos", "endpoints": {
            "proxy": {"url": proxy_api, "bearer_token_file": "proxy.token"}}}],  # relative to the experiment
    }
    path = tmp_path / "proxy-endpoint.yaml"
    path.write_text(yaml.safe_dump(experiment))
    journal = tmp_path / "journal.json"
    env = child_env(MLCHAOS_PROXY_TOKEN=None, MLCHAOS_PROXY_TOKEN_FILE=None)
    run = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _toxics(proxy_api) == [], "the safety net undid the toxic through the endpoint"
    # a fault left behind (as after a crash): `mlchaos recover` reads the endpoint from the journal's experiment
    requests.post(f"{proxy_api}/proxies/web/toxics", headers=AUTH, timeout=5,
                  json={"name": "latency_downstream", "type": "latency", "stream": "downstream",
                        "attributes": {"latency": 40}})
    assert _toxics(proxy_api) == ["latency_downstream"]
    recover = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=env,
                             capture_output=True, text=True, timeout=120, cwd=tmp_path.parent)
    assert recover.returncode == 0, recover.stdout + recover.stderr
    assert _toxics(proxy_api) == []
    for text in (run.stdout, run.stderr, recover.stdout, recover.stderr, journal.read_text()):
        assert TOKEN not in text
