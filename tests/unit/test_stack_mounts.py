"""What the compose stack mounts into its containers (docker-compose.yml read as YAML; no engine): the CA's
certificate reaches the blackbox exporter, the CA's key reaches no container."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlchaos.containers import configs
from tests.support.paths import ROOT


def _volumes() -> dict[str, list[str]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: list(service.get("volumes") or []) for name, service in services.items()}


def test_blackbox_gets_the_ca_certificate_alone():
    blackbox = _volumes()["blackbox"]
    assert "./deploy/docker/tls/ca/ca.crt:/etc/mlchaos/tls/ca.crt:ro" in blackbox
    assert [v for v in blackbox if v.startswith("./deploy/docker/tls/")] == [
        "./deploy/docker/tls/ca/ca.crt:/etc/mlchaos/tls/ca.crt:ro"]
    assert str(configs.CA_FILE) == "/etc/mlchaos/tls/ca.crt"  # where blackbox.yml looks for it


def test_no_container_mounts_the_ca_folder_or_its_key():
    sources = [(name, volume.split(":")[0].rstrip("/")) for name, volumes in _volumes().items() for volume in volumes]
    assert [s for s in sources if s[1] == "./deploy/docker/tls/ca" or s[1].endswith(".key")] == []
    assert [s for s in sources if s[1] == "./deploy/docker/tls"] == []  # nor the folder above it


def test_a_folder_left_where_the_ca_certificate_goes_is_replaced_by_it(tmp_path: Path):
    """`docker compose up` before the certificates exist makes an empty folder at a missing file mount's source."""
    (tmp_path / "ca" / "ca.crt").mkdir(parents=True)
    issued = configs.issue_certificates(tmp_path)
    assert (issued["ca_dir"] / "ca.crt").is_file() and (issued["ca_dir"] / "ca.key").is_file()
