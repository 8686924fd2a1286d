"""The proxy API's request parser, guard, token and address allow-lists, without a server; the parser and the
guard are fuzzed with hypothesis (bounded): nothing crashes, and nothing they accept breaks their rules."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlchaos.lib import proxy_token as client_token
from mlchaos.proxy import token as server_token
from mlchaos.proxy.addresses import AddressPolicy, AllowList, Rule, is_loopback
from mlchaos.proxy.errors import Forbidden, InvalidProxy
from mlchaos.proxy.guard import ApiGuard, InsecureApi, host_name, presented_token, require_token
from mlchaos.proxy.request import BadRequest, RequestHead, parse_head

TOKEN = "guard-unit-test-token-0123456789"


def head(method: str = "GET", target: str = "/proxies", **headers: str) -> RequestHead:
    lines = [f"{method} {target} HTTP/1.1".encode()]
    lines += [f"{k.replace('_', '-')}: {v}".encode() for k, v in headers.items()]
    return parse_head(lines)


# -- parser ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lines, status, message", [
    ([], 400, "empty request"),
    ([b"GET /proxies"], 400, "METHOD /path HTTP/1.1"),
    ([b"GET  /proxies HTTP/1.1"], 400, "METHOD /path HTTP/1.1"),
    ([b"get /proxies HTTP/1.1"], 400, "bad method"),
    ([b"GET http://evil/proxies HTTP/1.1"], 400, "path starting with /"),
    ([b"GET /a\x00b HTTP/1.1"], 400, "path starting with /"),
    ([b"GET / HTTP/2.0"], 505, "unsupported HTTP version"),
    ([b"GET / HTTP/1.1", b"Host 127.0.0.1"], 400, "malformed header"),
    ([b"GET / HTTP/1.1", b"Host : 127.0.0.1"], 400, "malformed header"),
    ([b"GET / HTTP/1.1", b" folded: line"], 400, "malformed header"),
    ([b"GET / HTTP/1.1", b"X: a\x01b"], 400, "control characters"),
    ([b"GET / HTTP/1.1", b"Host: a", b"Host: b"], 400, "given twice"),
    ([b"POST / HTTP/1.1", b"Content-Length: 1", b"Content-Length: 2"], 400, "given twice"),
    ([b"POST / HTTP/1.1", b"Content-Length: +5"], 400, "Content-Length must be a number"),
    ([b"POST / HTTP/1.1", b"Content-Length: \xb2"], 400, "Content-Length must be a number"),
    ([b"POST / HTTP/1.1", b"Content-Length: " + b"9" * 40], 400, "Content-Length must be a number"),
    ([b"POST / HTTP/1.1", b"Transfer-Encoding: chunked"], 501, "Transfer-Encoding is not supported"),
    ([b"GET / HTTP/1.1"] + [b"X: y"] * 101, 431, "too many headers"),
    ([b"GET /" + b"a" * 9000 + b" HTTP/1.1"], 431, "over 8192 bytes"),
])
def test_ambiguous_requests_are_refused_with_the_reason(lines, status, message):
    with pytest.raises(BadRequest, match=message) as caught:
        parse_head(lines)
    assert caught.value.status == status


def test_a_well_formed_head_is_parsed():
    parsed = parse_head([b"POST /proxies/web?x=1 HTTP/1.1\r\n", b"Host: 127.0.0.1:8474\r\n",
                         b"content-length:  12 \r\n", b"Connection: close\r\n"])
    assert (parsed.method, parsed.path, parsed.content_length, parsed.keep_alive) == ("POST", "/proxies/web", 12,
                                                                                       False)
    assert parsed.headers["host"] == "127.0.0.1:8474"


# -- guard -------------------------------------------------------------------------------------------


def test_a_wildcard_bind_without_a_token_is_refused_but_loopback_is_not():
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "fault-proxy"):
        with pytest.raises(InsecureApi, match="MLCHAOS_PROXY_TOKEN"):
            ApiGuard(host)
        require_token(host, TOKEN)  # with a token: fine
    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        require_token(host, None)


@pytest.mark.parametrize("value, name", [
    ("127.0.0.1:8474", "127.0.0.1"), ("[::1]:8474", "::1"), ("LocalHost.", "localhost"),
    ("fault-proxy.ml-serving.svc:8474", "fault-proxy.ml-serving.svc"), ("[::1", "[::1"), ("a:b", "a:b"),
])
def test_host_names_are_read_from_the_host_header(value, name):
    assert host_name(value) == name


@pytest.mark.parametrize("bound, allowed, host, ok", [
    ("127.0.0.1", (), "127.0.0.1:1", True),
    ("127.0.0.1", (), "localhost", True),
    ("127.0.0.1", (), "[::1]:8474", True),
    ("127.0.0.1", (), "10.0.0.5", False),  # bound to loopback: no other address reaches it
    ("127.0.0.1", (), "evil.example", False),
    ("127.0.0.1", (), "127.0.0.1.nip.io", False),
    ("127.0.0.1", (), "localhost.evil.example", False),
    ("127.0.0.1", ("fault-proxy",), "FAULT-PROXY:8474", True),
    ("0.0.0.0", (), "10.0.0.5:8474", True),  # an address is not a name anyone could re-point
    ("0.0.0.0", (), "[fe80::1]:8474", True),
    ("0.0.0.0", (), "fault-proxy:8474", False),
    ("10.0.0.5", (), "10.0.0.5", True),
    ("10.0.0.5", (), "10.0.0.6", False),
])
def test_only_allowed_host_names_are_answered(bound, allowed, host, ok):
    guard = ApiGuard(bound, TOKEN, frozenset(allowed))
    refusal = guard.check(head(Host=host, Authorization=f"Bearer {TOKEN}"), b"")
    assert (refusal is None) == ok, refusal
    if not ok:
        assert refusal.status == 403 and "--allow-host" in refusal.message


def test_origins_and_cross_site_fetches_are_refused_unless_allowed():
    guard = ApiGuard("127.0.0.1", allowed_origins=frozenset({"https://UI.example/"}))
    assert guard.check(head(Host="127.0.0.1", Origin="https://ui.example"), b"") is None
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "https://ui.example.evil"},
                    {"Sec_Fetch_Site": "cross-site"}, {"Sec_Fetch_Site": "same-site"}):
        refusal = guard.check(head(Host="127.0.0.1", **headers), b"")
        assert refusal is not None and refusal.status == 403, headers
    assert guard.check(head(Host="127.0.0.1", Sec_Fetch_Site="none"), b"") is None  # typed in the address bar


@pytest.mark.parametrize("authorization, token", [
    (f"Bearer {TOKEN}", TOKEN), (f"bearer   {TOKEN}", TOKEN), ("Bearer", None), ("Token x", None), ("", None),
    ("Basic " + base64.b64encode(b"user:pa:ss").decode(), "pa:ss"), ("Basic " + base64.b64encode(b"nocolon").decode(),
                                                                     None),
    ("Basic !!!", None), ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
])
def test_the_token_is_read_from_bearer_or_basic_authorization(authorization, token):
    assert presented_token(authorization) == token


def test_without_the_right_token_every_route_is_refused():
    guard = ApiGuard("0.0.0.0", TOKEN)
    for method in ("GET", "POST", "DELETE", "PATCH"):
        for authorization in ("", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}0", f"Bearer {TOKEN.upper()}"):
            refusal = guard.check(head(method, Host="10.0.0.5", Authorization=authorization), b"")
            assert refusal is not None and refusal.status == 401
        assert guard.check(head(method, Host="10.0.0.5", Authorization=f"Bearer {TOKEN}"), b"") is None


def test_the_token_may_come_in_the_header_the_kubernetes_service_proxy_forwards():
    """The API server's service proxy removes Authorization before forwarding: X-Mlchaos-Proxy-Token carries it."""
    guard = ApiGuard("0.0.0.0", TOKEN)
    assert guard.check(head("POST", Host="10.0.0.5", X_Mlchaos_Proxy_Token=TOKEN), b"") is None
    for wrong in ("", TOKEN[:-1], TOKEN + "0", TOKEN.upper()):
        refusal = guard.check(head("POST", Host="10.0.0.5", X_Mlchaos_Proxy_Token=wrong), b"")
        assert refusal is not None and refusal.status == 401 and "X-Mlchaos-Proxy-Token" in refusal.message


@pytest.mark.parametrize("method, content_type, body, status", [
    ("POST", None, b"{}", 415),
    ("POST", "text/plain", b"{}", 415),
    ("POST", "application/x-www-form-urlencoded", b"", 415),  # an empty form is still a form
    ("DELETE", "multipart/form-data", b"", 415),
    ("POST", "application/json; charset=utf-8", b"{}", None),
    ("POST", "Application/JSON", b"{}", None),
    ("POST", None, b"", None),  # Toxiproxy clients' POST /reset
    ("GET", "text/plain", b"", None),
    ("GET", "text/plain", b"x", 415),
    ("POST", "application/jsonx", b"{}", 415),
])
def test_writes_take_json_only(method, content_type, body, status):
    headers = {"Host": "127.0.0.1"} | ({"Content_Type": content_type} if content_type else {})
    refusal = ApiGuard("127.0.0.1").check(head(method, **headers), body)
    assert (refusal and refusal.status) == status


# -- fuzzing -----------------------------------------------------------------------------------------

HEADER_NAMES = st.sampled_from(["Host", "Origin", "Authorization", "Content-Type", "Content-Length",
                                "Sec-Fetch-Site", "Connection", "Transfer-Encoding", "X-Other", "host", "HOST"])
HEADER_VALUES = st.one_of(
    st.sampled_from(["127.0.0.1:8474", "localhost", "evil.example", "10.0.0.5", "[::1]:1", "", "null",
                     "application/json", "text/plain", "http://evil.example", f"Bearer {TOKEN}", "Bearer x",
                     "Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode(), "0", "12", "chunked",
                     "cross-site", "same-origin"]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40),
)
VALID = {"Host": "127.0.0.1:8474", "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _headers(changes: tuple[dict[str, str], list[str], list[tuple[str, str]]]) -> list[bytes]:
    """A valid set of headers, some values replaced, some dropped, some added (so many requests pass the guard
    and every rule is exercised near its edge)."""
    replaced, dropped, added = changes
    headers = {**VALID, **replaced}
    pairs = [(k, v) for k, v in headers.items() if k not in dropped] + added
    return [f"{k}: {v}".encode("latin-1") for k, v in pairs]


LINES = st.tuples(st.dictionaries(st.sampled_from(list(VALID)), HEADER_VALUES, max_size=2),
                  st.lists(st.sampled_from(list(VALID)), max_size=2),
                  st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3)).map(_headers)
VALID_LINES = st.tuples(st.sampled_from(["GET", "POST", "DELETE", "PATCH"]),
                        st.sampled_from(["/proxies", "/reset", "/proxies/web/toxics?x=1"])).map(
    lambda t: f"{t[0]} {t[1]} HTTP/1.1".encode())
REQUEST_LINES = st.one_of(
    VALID_LINES, VALID_LINES, VALID_LINES,
    st.tuples(st.sampled_from(["GET", "POST", "DELETE", "PATCH", "PUT", "get", "", "POST POST"]),
              st.sampled_from(["/proxies", "/reset", "/", "*", "http://x/", "/a b", "/p\x00"]),
              st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""])).map(lambda t: " ".join(t).encode("latin-1")),
    st.binary(max_size=60),
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_fuzzers_starting_point_is_a_request_the_guard_accepts():
    parsed = parse_head([b"POST /proxies HTTP/1.1", *_headers(({}, [], []))])
    assert ApiGuard("0.0.0.0", TOKEN).check(parsed, b"{}") is None  # so the fuzzers explore near the edges


@FUZZ
@given(REQUEST_LINES, LINES, st.lists(st.binary(max_size=30), max_size=3))
def test_fuzzed_heads_are_parsed_or_refused_never_crash(request_line, headers, junk):
    lines = [request_line, *headers, *junk]
    try:
        parsed = parse_head(lines)
    except BadRequest as exc:
        assert 400 <= exc.status < 600 and str(exc)
        return
    assert parsed.method.isupper() and parsed.target.startswith("/")
    assert parsed.version in ("HTTP/1.0", "HTTP/1.1") and "transfer-encoding" not in parsed.headers
    assert parsed.content_length >= 0


@FUZZ
@given(REQUEST_LINES, LINES, st.binary(max_size=20))
def test_fuzzed_requests_the_guard_accepts_keep_every_rule(request_line, headers, body):
    try:
        parsed = parse_head([request_line, *headers])
    except BadRequest:
        return
    guard = ApiGuard("0.0.0.0", TOKEN)
    if guard.check(parsed, body) is not None:
        return
    h = parsed.headers
    assert guard.host_allowed(host_name(h["host"]))
    assert "origin" not in h and h.get("sec-fetch-site", "none").lower() in ("none", "same-origin")
    assert presented_token(h["authorization"]) == TOKEN
    if body or (parsed.method in ("POST", "PUT", "PATCH", "DELETE") and "content-type" in h):
        assert h["content-type"].split(";")[0].strip().lower() == "application/json"


# -- token -------------------------------------------------------------------------------------------


def test_the_token_is_read_from_a_file_or_the_environment(tmp_path: Path):
    file = tmp_path / "token"
    file.write_text(f"{TOKEN}\n")
    assert server_token.read_token(None, {}) is None
    assert server_token.read_token(None, {"MLCHAOS_PROXY_TOKEN": TOKEN}) == TOKEN
    assert server_token.read_token(None, {"MLCHAOS_PROXY_TOKEN_FILE": str(file), "MLCHAOS_PROXY_TOKEN": "x"}) == TOKEN
    assert server_token.read_token(file, {}) == TOKEN
    with pytest.raises(server_token.TokenError, match="cannot read the API token file"):
        server_token.read_token(tmp_path / "missing", {})
    for bad in ("short", "has a space in it......", "é" * 20):
        with pytest.raises(server_token.TokenError, match="16 to 4096 visible ASCII"):
            server_token.read_token(None, {"MLCHAOS_PROXY_TOKEN": bad})


def test_mlchaos_clients_read_the_same_variables_as_the_proxy(tmp_path: Path):
    assert (client_token.TOKEN_ENV, client_token.TOKEN_FILE_ENV) == (server_token.TOKEN_ENV,
                                                                     server_token.TOKEN_FILE_ENV)
    file = tmp_path / "token"
    file.write_text(f"  {TOKEN}\n")
    for environ in ({"MLCHAOS_PROXY_TOKEN": TOKEN}, {"MLCHAOS_PROXY_TOKEN_FILE": str(file)}):
        assert client_token.proxy_api_headers(environ) == {"Authorization": f"Bearer {TOKEN}",
                                                           "X-Mlchaos-Proxy-Token": TOKEN}
        assert client_token.proxy_token(environ) == server_token.read_token(None, environ)
    assert client_token.proxy_api_headers({}) == {}


# -- address allow-lists -----------------------------------------------------------------------------


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST.", True), ("a.localhost", True), ("0.0.0.0", False), ("10.0.0.1", False),
    ("127.0.0.1.nip.io", False), ("localhost.evil.example", False), ("", False),
])
def test_loopback_is_recognised_as_written_never_resolved(host, loopback):
    assert is_loopback(host) is loopback


def test_the_default_policy_allows_loopback_upstreams_on_unprivileged_ports_only():
    policy = AddressPolicy()
    for allowed in ("127.0.0.1:8000", "localhost:1024", "[::1]:65535"):
        policy.upstream.check(allowed)
    for refused in ("127.0.0.1:22", "127.0.0.1:0", "0.0.0.0:8000", "10.0.0.1:8000", "model-0:8000",
                    "127.0.0.1.nip.io:8000"):
        with pytest.raises(Forbidden, match=f"upstream {refused} is not allowed"):
            policy.upstream.check(refused)
    policy.listen.check("127.0.0.1:0")
    with pytest.raises(Forbidden, match="--allow-listen"):
        policy.listen.check("0.0.0.0:18000")
    policy.configured("0.0.0.0:18000", "model-0:8000")
    policy.listen.check("0.0.0.0:18000")
    policy.upstream.check("MODEL-0:8000")
    with pytest.raises(Forbidden):
        policy.upstream.check("model-0:8001")


def test_rules_take_wildcards_and_bad_rules_are_refused():
    strict = AllowList("upstream", "--allow-upstream", None)
    strict.allow(["db.internal:*", "*:9000", "[::2]:80"])
    assert [strict.allows(a) for a in ("db.internal:5", "x:9000", "[::2]:80", "127.0.0.1:8000")] == [
        True, True, True, False]
    assert strict.describe() == "db.internal:*, *:9000, [::2]:80"
    assert AddressPolicy.unrestricted().upstream.allows("203.0.113.9:22")
    for bad in ("nohost", ":80", "a:b", "a:70000"):
        with pytest.raises(InvalidProxy):
            Rule.parse(bad)
