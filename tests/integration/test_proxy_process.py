"""The proxy process (`python -m mlchaos.proxy`), its Toxiproxy-compatible API, the proxy
drivers against it, and the sandbox's proxy (one per replica, healed by up, stopped by down)."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from drivers.model import probes as model_probes
from drivers.proxy import actions, probes
from mlchaos.errors import DriverError
from mlchaos.safety.changes import reset_sink, set_sink
from mlchaos.sandbox import procs
from tests.support.polling import wait_until
from tests.support.proxy_process import start_proxy


@pytest.fixture
def proxy_api(tmp_path: Path) -> Iterator[str]:
    """A proxy process on free ports with one proxy 'direct' in front of a sandbox-free HTTP server."""
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                               "--directory", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
    upstream_port = int(re.search(r"port (\d+)", line).group(1))
    (tmp_path / "index.html").write_text("hello")
    # no API token from this worker's environment: this proxy's API is the unauthenticated loopback one
    try:
        proxy = start_proxy(tmp_path / "proxy", [{"name": "web", "listen": "127.0.0.1:0",
                                                  "upstream": f"127.0.0.1:{upstream_port}"}])
        try:
            yield proxy.api
        finally:
            assert proxy.stop() == 0
    finally:
        server.kill()
        server.wait()


def test_the_api_speaks_toxiproxy(proxy_api):
    api = proxy_api
    version = requests.get(f"{api}/version", timeout=5)
    assert version.ok and version.json()["version"], version.text
    listing = requests.get(f"{api}/proxies", timeout=5).json()
    assert set(listing) == {"web"} and listing["web"]["enabled"] is True and listing["web"]["toxics"] == []
    created = requests.post(f"{api}/proxies", json={"name": "other", "listen": "127.0.0.1:0",
                                                    "upstream": listing["web"]["upstream"]}, timeout=5)
    assert created.status_code == 201 and not created.json()["listen"].endswith(":0")
    assert requests.post(f"{api}/proxies", json={"name": "other", "listen": "127.0.0.1:0",
                                                 "upstream": "127.0.0.1:1"}, timeout=5).status_code == 409
    toxic = requests.post(f"{api}/proxies/web/toxics", json={"type": "latency", "attributes": {"latency": 50}},
                          timeout=5)
    assert toxic.status_code == 200
    assert toxic.json() | {"expires_at": None} == {
        "name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
        "attributes": {"latency": 50, "jitter": 0}, "ttl": None, "expires_at": None}
    updated = requests.post(f"{api}/proxies/web/toxics/latency_downstream", json={"attributes": {"latency": 80}},
                            timeout=5)
    assert updated.json()["attributes"]["latency"] == 80
    assert requests.get(f"{api}/proxies/web/toxics", timeout=5).json()[0]["name"] == "latency_downstream"
    errors = [
        requests.get(f"{api}/proxies/nope", timeout=5),
        requests.delete(f"{api}/proxies/web/toxics/nope", timeout=5),
        requests.post(f"{api}/proxies/web/toxics", json={"type": "latency", "attributes": {"latency": -1}}, timeout=5),
        requests.post(f"{api}/proxies/web/toxics", json={"type": "nope"}, timeout=5),
        requests.post(f"{api}/proxies/web/toxics", data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=5),
        requests.put(f"{api}/proxies/web", json={}, timeout=5),
    ]
    assert [r.status_code for r in errors] == [404, 404, 400, 400, 400, 405]
    assert all(r.json()["error"] for r in errors)
    assert requests.delete(f"{api}/proxies/web/toxics/latency_downstream", timeout=5).status_code == 204
    assert requests.post(f"{api}/proxies/web", json={"enabled": False}, timeout=5).json()["enabled"] is False
    assert requests.post(f"{api}/reset", timeout=5).status_code == 204
    assert requests.get(f"{api}/proxies/web", timeout=5).json()["enabled"] is True
    assert requests.delete(f"{api}/proxies/other", timeout=5).status_code == 204


def test_the_drivers_work_against_any_api_url(proxy_api):
    api = proxy_api
    announced = []
    token = set_sink(announced.append)
    try:
        before = probes.proxy_latency_ms("web", requests=5, path="/index.html", url=api)
        record = actions.add_toxic("web", "latency", {"latency": 120}, ttl=30, url=api)
    finally:
        reset_sink(token)
    assert [r.action for r in announced] == ["add-toxic"], "announced before it was applied"
    assert record["undo"] == {"func": "drivers.proxy.actions.remove_toxic",
                              "arguments": {"proxy": "web", "name": "latency_downstream", "url": api}}
    assert record["toxic"]["ttl"] == 30 and record["toxic"]["expires_at"] > time.time()
    slow = probes.proxy_latency_ms("web", requests=3, path="/index.html", url=api)
    assert before < 50 and 115 <= slow < 400
    assert [t["name"] for t in probes.list_toxics("web", url=api)] == ["latency_downstream"]
    assert actions.remove_toxic("web", "latency_downstream", url=api)["removed"] is True
    assert actions.remove_toxic("web", "latency_downstream", url=api)["removed"] is False, "idempotent"
    actions.disable_proxy("web", url=api)
    assert probes.proxy_enabled("web", url=api) is False
    with pytest.raises(DriverError, match="none of 2 requests"):
        probes.proxy_latency_ms("web", requests=2, url=api)
    assert actions.enable_proxy("web", url=api) == {"proxy": "web", "enabled": True, "already": []}
    default_ttl = actions.add_toxic("web", "bandwidth", {"rate": 100}, url=api)
    assert default_ttl["parameters"]["ttl"] == actions.SAFETY_TTL
    assert actions.reset(url=api)["toxics_left"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "latncy"}, "unknown toxic type 'latncy'"),
        ({"type": "latency", "attributes": {"latency": -3}}, "latency must be a number >= 0"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity must be a number in [0, 1]"),
        ({"type": "latency", "stream": "both"}, "stream must be upstream"),
        ({"type": "latency", "ttl": -1}, "ttl must be a positive number of seconds"),
        ({"type": "latency", "proxy": "nope"}, "no proxy 'nope'"),
    ],
)
def test_the_driver_validates_before_changing_anything(proxy_api, kwargs, message):
    api = proxy_api
    announced = []
    token = set_sink(announced.append)
    try:
        with pytest.raises(DriverError) as caught:
            actions.add_toxic(**{"proxy": "web", **kwargs}, url=api)
    finally:
        reset_sink(token)
    assert message in str(caught.value)
    assert announced == [] and probes.list_toxics("web", url=api) == []


def test_the_sandbox_proxies_every_replica_and_heals(sandbox):
    replicas = sandbox.replicas("model")
    api = sandbox.proxy_api_url()
    listing = requests.get(f"{api}/proxies", headers=sandbox.proxy().api_headers(), timeout=5).json()
    assert {name: (p["listen"], p["upstream"]) for name, p in listing.items()} == {
        **{r.name: (f"127.0.0.1:{r.proxy_port}", f"127.0.0.1:{r.port}") for r in replicas},
        # the second proxy of each replica carries only Prometheus' scrapes
        **{f"{r.name}-metrics": (f"127.0.0.1:{r.metrics_proxy_port}", f"127.0.0.1:{r.port}") for r in replicas},
    }
    assert all(r.client_url == r.proxy_url for r in replicas)
    assert model_probes.all_replicas_healthy()  # through the proxies
    # a fault on one proxy: the model probes see it, the replica itself is fine
    actions.disable_proxy("model-0")
    assert model_probes.healthy_replica_count() == 2
    actions.add_toxic("model-1", "latency", {"latency": 200})
    assert model_probes.latency_percentile(50, requests=4, exclude=["model-0", "model-2"]) >= 190
    # a dead proxy process is restarted by up with the same ports; toxics and disabled proxies are healed
    pid = sandbox.proxy().pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not procs.is_alive(pid) and not sandbox.proxy().alive(pid), 5, "the proxy to die")
    healed = sandbox.up(replicas=3, timeout=60, monitoring=False)
    assert [(r.name, r.proxy_port) for r in healed] == [(r.name, r.proxy_port) for r in replicas]
    assert sandbox.proxy().pid() != pid and sandbox.proxy_api_url() == api
    assert model_probes.all_replicas_healthy()
    # a live proxy with faults is healed in place by up
    actions.add_toxic("model-2", "latency", {"latency": 500})
    actions.disable_proxy("model-1")
    live_pid = sandbox.proxy().pid()
    sandbox.up(replicas=3, timeout=60, monitoring=False)
    assert sandbox.proxy().pid() == live_pid
    assert all(probes.toxic_count(r.name) == 0 and probes.proxy_enabled(r.name) for r in replicas)


def test_a_toxic_ttl_expires_without_any_call(sandbox):
    actions.add_toxic("model-0", "latency", {"latency": 300}, ttl=0.5)
    assert probes.proxy_latency_ms("model-0", requests=1) >= 290
    wait_until(lambda: probes.toxic_count("model-0") == 0, 5, "the toxic to expire")
    assert probes.proxy_latency_ms("model-0", requests=3) < 50


def test_down_stops_the_proxy(tmp_path, monkeypatch):
    from mlchaos.sandbox.manager import Sandbox

    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path))
    sandbox = Sandbox(tmp_path)
    sandbox.up(replicas=1, timeout=60, monitoring=False)
    pid = sandbox.proxy().pid()
    assert sandbox.proxy().alive(pid)
    sandbox.down()
    assert not sandbox.proxy().alive(pid) and sandbox.proxy().api_url() is None
    with pytest.raises(DriverError, match="sandbox proxy is not running"):
        actions.add_toxic("model-0", "latency", {"latency": 1})


def test_dry_runs_resolve_the_proxy_and_change_nothing(proxy_api):
    api = proxy_api
    found = requests.get(f"{api}/proxies/web", timeout=5)
    assert found.ok, found.text
    upstream = found.json()["upstream"]
    for name in ("api", "web-metrics"):  # another client proxy, and one that carries only scrapes
        requests.post(f"{api}/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream},
                      timeout=5).raise_for_status()
    before = requests.get(f"{api}/proxies", timeout=5).json()
    announced = []
    token = set_sink(announced.append)
    try:
        toxic = actions.add_toxic("web", "latency", {"latency": 100}, ttl=30, url=api, dry_run=True)
        disabled = actions.disable_proxy("web", url=api, dry_run=True)
        scrapes = actions.add_toxic("web-metrics", "timeout", {"timeout": 0}, url=api, dry_run=True)
        with pytest.raises(DriverError, match="no proxy 'nope'"):
            actions.disable_proxy("nope", url=api, dry_run=True)  # resolved against the live API
    finally:
        reset_sink(token)
    assert [(r.action, r.dry_run) for r in announced] == [("add-toxic", True), ("disable-proxy", True),
                                                          ("add-toxic", True)]
    assert requests.get(f"{api}/proxies", timeout=5).json() == before  # nothing changed
    assert toxic["targets"][0]["details"]["listen"] == before["web"]["listen"]
    assert (toxic["environment"], toxic["population"]) == (api, ["api", "web"])  # the client proxies
    assert (disabled["environment"], disabled["population"]) == (api, ["api", "web"])
    assert scrapes["population"] == ["web-metrics"]  # a scrape proxy is one of the scrape proxies
    real = actions.add_toxic("web", "latency", {"latency": 100}, ttl=30, url=api)
    assert set(real) == set(toxic) | {"toxic"}
    assert {k: v for k, v in real.items() if k not in ("toxic", "dry_run", "announced_at")} == {
        k: v for k, v in toxic.items() if k not in ("dry_run", "announced_at")}


def test_undos_run_again_change_nothing(proxy_api):
    api = proxy_api
    record = actions.add_toxic("web", "latency", {"latency": 50}, ttl=30, url=api)
    assert actions.remove_toxic(**record["undo"]["arguments"])["already"] == []
    for _ in range(2):
        again = actions.remove_toxic(**record["undo"]["arguments"])
        assert (again["removed"], again["already"], again["toxics_left"]) == (False, ["latency_downstream"], [])
    disabled = actions.disable_proxy("web", url=api)
    assert actions.enable_proxy(**disabled["undo"]["arguments"]) == {"proxy": "web", "enabled": True, "already": []}
    for _ in range(2):
        assert actions.enable_proxy(**disabled["undo"]["arguments"]) == {
            "proxy": "web", "enabled": True, "already": ["web"]}
    # after the fault was undone another way (POST /reset), the undos find nothing to do either
    actions.disable_proxy("web", url=api)
    record = actions.add_toxic("web", "latency", {"latency": 50}, ttl=30, url=api)
    actions.reset(url=api)
    assert actions.remove_toxic(**record["undo"]["arguments"])["already"] == ["latency_downstream"]
    assert actions.enable_proxy("web", url=api)["already"] == ["web"]
    assert probes.proxy_enabled("web", url=api) is True and probes.list_toxics("web", url=api) == []


def test_the_sandbox_proxy_takes_only_its_own_token_and_mlchaos_sends_it(tmp_path, monkeypatch):
    """Loopback is reachable by every user of the machine: reaching the sandbox's proxy API is not enough to
    steer it. Its token (made at the first start, 0600) is sent by the drivers and the sandbox, and a token
    configured for another proxy (MLCHAOS_PROXY_TOKEN) is neither required by it nor sent to it."""
    from mlchaos.sandbox.manager import Sandbox

    other = "a-token-meant-for-another-proxy-0123456789"
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN", other)
    sandbox = Sandbox(tmp_path)
    try:
        sandbox.up(replicas=1, timeout=60, monitoring=False)
        api, token_file = sandbox.proxy_api_url(), sandbox.proxy().token_file
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert requests.get(f"{api}/proxies", timeout=5).status_code == 401
        assert requests.get(f"{api}/proxies", headers={"Authorization": f"Bearer {other}"}, timeout=5).status_code \
            == 401
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert sandbox.proxy().api_headers() == auth
        assert "model-0" in requests.get(f"{api}/proxies", headers=auth, timeout=5).json()
        actions.add_toxic("model-0", "latency", {"latency": 10})  # the driver sends the sandbox's token
        assert probes.toxic_count("model-0") == 1
        pid = sandbox.proxy().pid()
        sandbox.up(replicas=1, timeout=60, monitoring=False)  # heals through the API: with the token
        assert sandbox.proxy().pid() == pid and probes.toxic_count("model-0") == 0
    finally:
        sandbox.down()
