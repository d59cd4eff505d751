"""Access logs over real sockets (issue 20, begun): one line per request with its API, plan,
subscription, status and time, as JSON lines or text; never the query (an API key travels there)."""

import json
import socket
from pathlib import Path

import requests

from support.apis import mock_api
from support.gatehouse import environment, refused_start, until
from support.http_backends import url
from support.plans import plan, proxy_api


def access_lines(server):
    lines = Path(server.proc.log_path).read_text().splitlines()
    return [line for line in lines if "gatehouse.access" in line]


def test_each_request_is_one_json_line_with_its_api_plan_and_subscription_and_no_api_key(start_server, http_backends):
    server = start_server(GATEHOUSE_ACCESS_LOG="on", GATEHOUSE_LOG_FORMAT="json")
    keyed = server.deploy_api(proxy_api("/logged", url(http_backends[0]), [plan("gold", "API_KEY")]))
    key = server.subscribe(keyed, "gold")["apiKey"]
    until(lambda: requests.get(server.gateway + "/logged", params={"api-key": key}, timeout=10).ok, timeout=5)
    mock = server.deploy_api(mock_api(path="/posted"))
    for _ in range(3):
        assert requests.get(server.gateway + "/logged/orders", params={"api-key": key}, timeout=10).status_code == 200
    assert requests.get(server.gateway + "/nowhere", timeout=10).status_code == 404
    assert requests.post(server.gateway + "/posted", data=b"x", timeout=10).status_code == 202

    def logged():  # what came after the key started to work (the GETs of /logged waiting for it)
        return [e for e in map(json.loads, access_lines(server)) if e["path"] != "/logged"]

    until(lambda: len(logged()) == 5, timeout=5)  # written every 0.2 s
    lines = logged()
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/logged/orders", 200),
        ("GET", "/logged/orders", 200),
        ("GET", "/logged/orders", 200),
        ("GET", "/nowhere", 404),
        ("POST", "/posted", 202),
    ]
    first = lines[0]
    assert (first["api"], first["entrypoint"], first["plan"]) == (keyed, "http-proxy", "gold")
    assert first["subscription"] and first["client"] == "127.0.0.1" and first["duration_ms"] > 0
    assert first["level"] == "INFO" and first["logger"] == "gatehouse.access"
    assert (lines[3]["api"], lines[4]["api"], lines[4]["entrypoint"]) == ("", mock, "http-post")
    assert key not in Path(server.proc.log_path).read_text()  # the query is never logged


def test_a_path_cannot_forge_a_line_of_the_text_log(start_server):
    server = start_server(GATEHOUSE_ACCESS_LOG="on")
    with socket.create_connection(("127.0.0.1", server.gateway_port), timeout=10) as sock:
        forged = b"/x%0d%0a2026-01-01%20ERROR%20gatehouse.access:%20forged%22"  # an encoded line break stays encoded
        sock.sendall(b"GET " + forged + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 404")
    until(lambda: len(access_lines(server)) == 1, timeout=5)
    (line,) = access_lines(server)
    assert " 404 " in line and "forged" in line and "\n" not in line
    assert not any(line.startswith("2026-01-01") for line in Path(server.proc.log_path).read_text().splitlines())


def test_wrong_log_settings_stop_the_start_naming_them(tmp_path):
    for name, value, message in (
        ("GATEHOUSE_LOG_FORMAT", "xml", "GATEHOUSE_LOG_FORMAT must be text or json, not 'xml'"),
        ("GATEHOUSE_ACCESS_LOG", "maybe", "GATEHOUSE_ACCESS_LOG must be on or off, not 'maybe'"),
    ):
        done = refused_start(tmp_path, environment(tmp_path, **{name: value}))
        assert done.returncode == 2 and message in done.stderr, done.stderr[-500:]
