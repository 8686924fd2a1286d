"""Validation of the ``endpoints`` setting and of activities that name one; building the run's endpoint table.

The format (docs/experiment-format.md, "Endpoints")::

    extensions:
      - name: mlchaos
        endpoints:
          prometheus:
            url: https://prom.example:9090        # or kubernetes: {namespace, service, port, scheme, context,
                                                  #   kubeconfig}, or k8s://NS/SVC:PORT
            bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token   # or _env / _secret
            basic_auth: {username: u, password_file: ...}                           # or password_env / _secret
            ca_file: ..., client_cert_file: ..., client_key_file: ...
            insecure_skip_verify: false
            headers: {X-Scope-OrgID: team-a}
            timeout: 10

Problems (nothing runs): unknown keys, wrong types, url and kubernetes both (or neither), a client certificate
without its key, two credentials, a secret reference that is not ``scope.key`` of the experiment's ``secrets``,
an ``Authorization`` header, an activity naming an endpoint that is not declared, or giving ``url`` and
``endpoint`` together. Warnings: a file that does not exist here (it may on the machine that runs; a projected
ServiceAccount token exists only in the pod) and every ``insecure_skip_verify: true``.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlchaos.experiment.settings import ENV_NAME, mlchaos_extension
from mlchaos.lib.endpoints import K8S_URL, Endpoint, EndpointTable, resolve_path

ENDPOINT_KEYS = {"url", "kubernetes", "bearer_token_file", "bearer_token_env", "bearer_token_secret", "basic_auth",
                 "ca_file", "client_cert_file", "client_key_file", "insecure_skip_verify", "headers", "timeout"}
BASIC_AUTH_KEYS = {"username", "password_file", "password_env", "password_secret"}
KUBERNETES_KEYS = {"namespace", "service", "port", "scheme", "context", "kubeconfig"}
FILE_KEYS = ("bearer_token_file", "ca_file", "client_cert_file", "client_key_file")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
SECRET_REF = re.compile(r"^[^.\s]+\.[^.\s]+$")
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "cookie"}
SENSITIVE_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth")  # X-Auth-Token, X-API-Key...
MAX_TIMEOUT = 600


def check_endpoints(value: Any) -> Iterator[tuple[str, str]]:
    """(JSON pointer below ``endpoints``, message) of every problem of the setting."""
    if not isinstance(value, dict) or not value:
        yield "", "must be a mapping of endpoint names to {url or kubernetes, credentials, tls, headers, timeout}"
        return
    for name, data in value.items():
        here = f"/{name}"
        if not isinstance(name, str) or not NAME.match(name):
            yield here, f"an endpoint name must be letters, digits, '.', '_' or '-', got {name!r}"
            continue
        if not isinstance(data, dict):
            yield here, f"endpoint {name!r} must be a mapping with url or kubernetes, got {data!r}"
            continue
        for sub, message in _check_endpoint(data):
            yield here + sub, f"endpoint {name!r}: {message}"


def _check_endpoint(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in sorted(set(data) - ENDPOINT_KEYS, key=str):
        yield f"/{key}", f"unknown key {key!r} (use {', '.join(sorted(ENDPOINT_KEYS))})"
    url, kubernetes = data.get("url"), data.get("kubernetes")
    if url is not None and kubernetes is not None:
        yield "", "give url or kubernetes, not both"
    elif url is None and kubernetes is None:
        yield "", "needs url (http(s)://HOST:PORT or k8s://NAMESPACE/SERVICE:PORT) or kubernetes"
    if url is not None:
        yield from _check_url(url)
    if kubernetes is not None:
        yield from (("/kubernetes" + p, m) for p, m in _check_kubernetes(kubernetes))
    for key in FILE_KEYS:
        if key in data and not _text(data[key]):
            yield f"/{key}", f"{key} must be a file path, got {data[key]!r}"
    if "bearer_token_env" in data and not (isinstance(data["bearer_token_env"], str)
                                           and ENV_NAME.match(data["bearer_token_env"])):
        yield "/bearer_token_env", f"must be an environment variable's name, got {data['bearer_token_env']!r}"
    if "bearer_token_secret" in data and not _secret_ref(data["bearer_token_secret"]):
        yield "/bearer_token_secret", ("must be 'scope.key' of the experiment's secrets, got "
                                       f"{data['bearer_token_secret']!r}")
    tokens = [k for k in ("bearer_token_file", "bearer_token_env", "bearer_token_secret") if k in data]
    if len(tokens) > 1:
        yield f"/{tokens[1]}", f"give one of {', '.join(tokens)}, not several"
    if tokens and "basic_auth" in data:
        yield "/basic_auth", f"give {tokens[0]} or basic_auth, not both"
    if "basic_auth" in data:
        yield from (("/basic_auth" + p, m) for p, m in _check_basic_auth(data["basic_auth"]))
    cert, key = data.get("client_cert_file"), data.get("client_key_file")
    if (cert is None) != (key is None):
        missing, given = ("client_key_file", "client_cert_file") if key is None else ("client_cert_file",
                                                                                        "client_key_file")
        yield f"/{given}", f"{given} needs {missing} too (mTLS needs the certificate and its key)"
    insecure = data.get("insecure_skip_verify")
    if insecure is not None and not isinstance(insecure, bool):
        yield "/insecure_skip_verify", f"must be true or false, got {insecure!r}"
    if insecure is True and "ca_file" in data:
        yield "/insecure_skip_verify", "insecure_skip_verify ignores ca_file: give one of them"
    if "headers" in data:
        yield from (("/headers" + p, m) for p, m in _check_headers(data["headers"]))
    timeout = data.get("timeout")
    if timeout is not None and (not isinstance(timeout, numbers.Real) or isinstance(timeout, bool)
                                or not 0 < timeout <= MAX_TIMEOUT):
        yield "/timeout", f"timeout must be a number of seconds in (0, {MAX_TIMEOUT}], got {timeout!r}"


def _check_url(url: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(url, str):
        yield "/url", f"url must be a string, got {url!r}"
    elif url.startswith("k8s://"):
        match = K8S_URL.match(url)
        if match is None or not match["port"]:
            yield "/url", f"a k8s:// url is k8s://NAMESPACE/SERVICE:PORT, got {url!r}"
    elif not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url):
        yield "/url", ("url must be http(s)://HOST[:PORT][/PATH] (no query) or k8s://NAMESPACE/SERVICE:PORT, "
                       f"got {url!r}")


def _check_kubernetes(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict):
        yield "", f"kubernetes must be a mapping of {', '.join(sorted(KUBERNETES_KEYS))}, got {value!r}"
        return
    for key in sorted(set(value) - KUBERNETES_KEYS, key=str):
        yield f"/{key}", f"unknown kubernetes key {key!r} (use {', '.join(sorted(KUBERNETES_KEYS))})"
    for key in ("namespace", "service"):
        if not isinstance(value.get(key), str) or not DNS_LABEL.match(value[key]):
            yield f"/{key}", f"required: the Service's {key} (a DNS label), got {value.get(key)!r}"
    port = value.get("port")
    if not ((isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536)
            or (isinstance(port, str) and DNS_LABEL.match(port))):
        yield "/port", f"required: the Service's port (a number 1-65535 or the port's name), got {port!r}"
    if value.get("scheme", "http") not in ("http", "https"):
        yield "/scheme", f"scheme must be http or https, got {value.get('scheme')!r}"
    for key, what in (("context", "a context name of the kubeconfig"), ("kubeconfig", "a kubeconfig file's path")):
        if key in value and not _text(value[key]):
            yield f"/{key}", f"{key} must be {what}, got {value[key]!r}"


def _check_basic_auth(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict):
        yield "", "basic_auth must be a mapping {username, password_file | password_env | password_secret}"
        return
    for key in sorted(set(value) - BASIC_AUTH_KEYS, key=str):
        yield f"/{key}", (f"unknown basic_auth key {key!r} (use {', '.join(sorted(BASIC_AUTH_KEYS))}; a password is "
                          f"never written in the experiment)")
    if not _text(value.get("username")):
        yield "/username", f"required: a non-empty username, got {value.get('username')!r}"
    given = [k for k in ("password_file", "password_env", "password_secret") if k in value]
    if len(given) != 1:
        yield "", "basic_auth needs exactly one of password_file, password_env, password_secret"
    if "password_file" in value and not _text(value["password_file"]):
        yield "/password_file", f"must be a file path, got {value['password_file']!r}"
    env = value.get("password_env")
    if "password_env" in value and not (isinstance(env, str) and ENV_NAME.match(env)):
        yield "/password_env", f"must be an environment variable's name, got {value['password_env']!r}"
    if "password_secret" in value and not _secret_ref(value["password_secret"]):
        yield "/password_secret", f"must be 'scope.key' of the experiment's secrets, got {value['password_secret']!r}"


def _check_headers(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict):
        yield "", f"headers must be a mapping of header names to strings, got {value!r}"
        return
    for name, text in value.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            yield f"/{name}", f"not a valid header name: {name!r}"
        elif name.lower() in SENSITIVE_HEADERS or any(word in name.lower() for word in SENSITIVE_WORDS):
            yield f"/{name}", (f"{name} would write a credential into the experiment (journals and reports copy it): "
                               f"use bearer_token_file/_env/_secret or basic_auth")
        elif not isinstance(text, str) or "\n" in text or "\r" in text:
            yield f"/{name}", f"a header value must be a one-line string, got {text!r}"


def endpoint_warnings(value: dict[str, Any], base_dir: Path) -> Iterator[tuple[str, str]]:
    """(pointer, message) worth a word but not a refusal: missing files here, ``insecure_skip_verify``."""
    for name, data in value.items():
        files = [("", data, key) for key in FILE_KEYS]
        files += [("/basic_auth", data.get("basic_auth"), "password_file"),
                  ("/kubernetes", data.get("kubernetes"), "kubeconfig")]
        for section, mapping, key in files:
            if isinstance(mapping, dict) and isinstance(mapping.get(key), str) \
                    and not resolve_path(mapping[key], base_dir).is_file():
                yield f"/{name}{section}/{key}", (f"endpoint {name!r}: {key} {resolve_path(mapping[key], base_dir)}"
                                                  " does not exist here (the run fails unless it exists where it runs)")
        if data.get("insecure_skip_verify") is True:
            yield f"/{name}/insecure_skip_verify", (f"INSECURE: endpoint {name!r} skips TLS verification: anyone on "
                                                    f"the path can read its credentials and forge its answers")


def secret_problems(value: dict[str, Any], secrets: Any) -> Iterator[tuple[str, str]]:
    """Secret references that name no ``scope.key`` of the experiment's ``secrets`` block."""
    for name, data in value.items():
        refs = [("/bearer_token_secret", data.get("bearer_token_secret"))]
        basic = data.get("basic_auth")
        if isinstance(basic, dict):
            refs.append(("/basic_auth/password_secret", basic.get("password_secret")))
        for pointer, ref in refs:
            if not _secret_ref(ref):
                continue
            scope, key = ref.split(".")
            scoped = secrets.get(scope) if isinstance(secrets, dict) else None
            if not isinstance(scoped, dict) or key not in scoped:
                yield f"/{name}{pointer}", f"endpoint {name!r}: no secret {ref!r} in the experiment's secrets"


def activity_problems(arguments: Mapping[str, Any], declared: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """(argument, message) of an activity's ``endpoint`` argument: with ``url``, or naming nothing declared."""
    if "endpoint" not in arguments:
        return
    name = arguments["endpoint"]
    if name is None:
        return
    for key in ("url", "urls"):
        if arguments.get(key) is not None:
            yield "endpoint", f"give {key} or endpoint, not both"
    if not isinstance(name, str) or not name:
        yield "endpoint", f"endpoint must be the name of a declared endpoint, got {name!r}"
    elif "${" not in name and name not in (declared or {}):
        from mlchaos.experiment.problems import suggest

        known = ", ".join(sorted(declared or {})) or "none (declare them in extensions: mlchaos: endpoints)"
        yield "endpoint", f"no endpoint named {name!r} is declared (declared: {known}){suggest(name, declared or {})}"


def declared_endpoints(data: dict[str, Any]) -> dict[str, Any]:
    """The experiment's endpoint declarations (a mapping; empty when none or malformed)."""
    ext = mlchaos_extension(data) or {}
    value = ext.get("endpoints")
    return value if isinstance(value, dict) else {}


def endpoint_table(data: dict[str, Any], secrets: Mapping[str, Any] | None, base_dir: Path) -> EndpointTable | None:
    """The (validated) experiment's own endpoints as a table; None when it declares none."""
    return table_of(declared_endpoints(data), secrets, base_dir)


def table_of(declared: Mapping[str, Any], secrets: Mapping[str, Any] | None, base_dir: Path) -> EndpointTable | None:
    """Valid declarations (the run's: :func:`mlchaos.experiment.endpoint_sources.resolve_endpoints`) as the table
    a run (or a recovery) activates; None when there are none. Relative paths are relative to ``base_dir``."""
    if not declared:
        return None
    endpoints = {name: Endpoint.from_dict(name, value) for name, value in declared.items()}
    return EndpointTable(endpoints, dict(secrets or {}), base_dir)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _secret_ref(value: Any) -> bool:
    return isinstance(value, str) and bool(SECRET_REF.match(value))
