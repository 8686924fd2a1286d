"""A real nginx in front of a model server, as KServe's ingress is: routing by ``Host``, basic auth required.

Debian's nginx-light answers only requests for :data:`HOST_NAME` carrying :data:`USER` / :data:`PASSWORD`
(basic auth) and proxies them to the upstream; any other Host gets 404, no credentials 401. Used by the
serving-endpoint tests (probes, model faults and their recovery, the traffic generator).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from mlchaos.lib.files import free_ports
from tests.support.components import require_component
from tests.support.polling import wait_until

NGINX = "/usr/sbin/nginx"
HOST_NAME = "model.default.example.com"
USER, PASSWORD = "serving-client", "nginx-basic-pw-91d0c2"
PASSWORD_VARIABLE = "MLCHAOS_TEST_SERVING_PASSWORD"  # what the declarations read the password from


def declaration(url: str) -> dict[str, object]:
    """The ``serving`` endpoint a user would declare for the gateway at ``url`` (password from the environment)."""
    return {"url": url, "headers": {"Host": HOST_NAME}, "timeout": 5,
            "basic_auth": {"username": USER, "password_env": PASSWORD_VARIABLE}}


@contextmanager
def gateway(folder: Path, upstream: str) -> Iterator[str]:
    """nginx proxying to ``upstream`` (a model server's base URL); yields its URL, stops it after."""
    require_component("nginx", bool(shutil.which(NGINX)), "apt-get install nginx-light "
                                                          "(scripts/install-system-packages.sh)")
    folder.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    (folder / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    temp = "".join(f"{kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
    (folder / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off;
  {temp}
  server {{ listen 127.0.0.1:{port} default_server; return 404; }}
  server {{
    listen 127.0.0.1:{port};
    server_name {HOST_NAME};
    auth_basic "model";
    auth_basic_user_file {folder / 'htpasswd'};
    location / {{ proxy_pass {upstream}; }}
  }}
}}
""")
    log = folder / "nginx.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder), "-g", "daemon off;"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 404
        except requests.RequestException:
            return False

    try:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text()}")
        wait_until(listening, timeout=20, what=f"nginx on {url} (its output: {log})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
