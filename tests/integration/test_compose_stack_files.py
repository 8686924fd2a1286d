"""The compose stack's files: deploy/docker/ is what mlchaos.containers.configs renders, the compose
file is valid for docker-compose, and the Prometheus/Alertmanager configs pass their own checkers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from mlchaos.containers import configs, stack
from mlchaos.lib.programs import find_program
from tests.support.components import require_component
from tests.support.paths import ROOT


def test_deploy_docker_is_current() -> None:
    assert configs.stale() == [], "run: python -m mlchaos.containers.configs"


def test_the_container_prometheus_config_keeps_the_sandbox_jobs_and_labels() -> None:
    rendered = yaml.safe_load(configs.render()["prometheus/prometheus.yml"])
    jobs = [job["job_name"] for job in rendered["scrape_configs"]]
    assert jobs == ["model", "model-live", "model-ready", "model-tls", "model-tls-insecure", "blackbox"]
    assert "127.0.0.1" not in configs.render()["prometheus/prometheus.yml"]
    text = configs.render()["prometheus/targets/model.json"]
    assert '"instance"' not in text and '"model-0:8000"' in text and '"fault-proxy:18000"' in text
    am = yaml.safe_load(configs.render()["alertmanager/alertmanager.yml"])
    assert am["receivers"][0]["webhook_configs"][0]["url"] == "http://host.docker.internal:19095/alerts"


def test_compose_file_is_valid_and_publishes_on_loopback_only() -> None:
    compose = shutil.which("docker-compose")
    require_component("docker-compose", compose is not None, "apt-get install docker-compose")
    out = subprocess.run([compose, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    services = yaml.safe_load(out)["services"]
    assert {"model-0", "model-1", "model-2", "fault-proxy", "prometheus", "alertmanager", "blackbox"} <= set(services)
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", name
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
    for name in configs.REPLICAS:
        assert services[name]["labels"] == {"mlchaos.target": "model", "mlchaos.service": "model"}
    ports = stack.endpoints()
    assert ports.prometheus_url.endswith(":19090") and ports.model_urls["model-2"].endswith(":18002")


def test_prometheus_and_alertmanager_accept_the_rendered_configs(tmp_path: Path) -> None:
    promtool = find_program("/usr/bin/promtool")
    amtool = find_program("/usr/bin/amtool")
    require_component("promtool", promtool is not None, "apt-get install prometheus")
    rules = ROOT / "deploy" / "docker" / "prometheus" / "rules" / "ml-serving-rules.yml"
    subprocess.run([promtool, "check", "rules", str(rules)], check=True, capture_output=True, timeout=60)
    if amtool:
        am = ROOT / "deploy" / "docker" / "alertmanager" / "alertmanager.yml"
        subprocess.run([amtool, "check-config", str(am)], check=True, capture_output=True, timeout=60)
