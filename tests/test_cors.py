"""CORS on an API's HTTP listener over real sockets, as a browser would speak it: preflights, the
Access-Control-* headers of every entrypoint's answer, origins refused before anything is sent on
and cors.runPolicies."""

import pytest
import requests
import websocket

from support.apis import mock_api, proxy_api
from support.http_backends import url

APP = "https://app.example.com"


@pytest.fixture
def server(shared_server):
    return shared_server


def with_cors(api, **settings):
    api["listeners"][0]["cors"] = {"enabled": True, "allowOrigin": [APP, r"https://.*\.trusted\.example"], **settings}
    return api


def test_a_preflight_is_answered_for_an_allowed_origin_and_refused_for_another(server):
    server.deploy_api(
        with_cors(mock_api(path="/cors"), allowMethods=["GET", "POST"], allowHeaders=["content-type"], maxAge=600)
    )
    asked = {"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = requests.options(server.gateway + "/cors", headers=asked, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert ok.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert (
        ok.headers["Access-Control-Allow-Headers"] == "content-type" and ok.headers["Access-Control-Max-Age"] == "600"
    )
    other = requests.options(server.gateway + "/cors", headers={**asked, "Origin": "https://evil.example"}, timeout=10)
    assert other.status_code == 400 and "Access-Control-Allow-Origin" not in other.headers
    wrong_method = requests.options(
        server.gateway + "/cors", headers={**asked, "Access-Control-Request-Method": "DELETE"}, timeout=10
    )
    assert wrong_method.status_code == 400


def test_every_entrypoint_s_answer_carries_the_headers_and_a_regex_origin_is_allowed(server, http_backends):
    server.deploy_api(with_cors(mock_api(path="/cors-msg", count=1), exposeHeaders=["X-Trace"]))
    server.deploy_api(with_cors(proxy_api([url(http_backends[0])], path="/cors-proxy")))
    origin = "https://eu.trusted.example"
    for method, path, headers in (
        ("GET", "/cors-msg", {"Accept": "application/json"}),
        ("POST", "/cors-msg", {"Content-Type": "text/plain"}),
        ("GET", "/cors-proxy/x", {}),
    ):
        got = requests.request(
            method,
            server.gateway + path,
            headers={"Origin": origin, **headers},
            data=b"x" if method == "POST" else None,
            timeout=10,
        )
        assert got.status_code in (200, 202), got.text
        assert got.headers["Access-Control-Allow-Origin"] == origin and got.headers["Vary"] == "Origin"
    with requests.get(
        server.gateway + "/cors-msg", headers={"Origin": origin, "Accept": "text/event-stream"}, stream=True, timeout=10
    ) as sse:
        assert sse.status_code == 200 and sse.headers["Access-Control-Allow-Origin"] == origin
        assert sse.headers["Access-Control-Expose-Headers"] == "X-Trace"


def test_a_request_from_an_origin_not_allowed_is_refused_before_anything_is_sent(server, http_backends):
    server.deploy_api(with_cors(proxy_api([url(http_backends[0])], path="/cors-refused")))
    refused = requests.post(
        server.gateway + "/cors-refused",
        data=b"x",
        headers={"Origin": "https://evil.example", "Accept": "application/json"},
        timeout=10,
    )
    assert refused.status_code == 403 and "may not call this API" in refused.json()["message"]
    assert requests.get(server.gateway + "/cors-refused", timeout=10).status_code == 200  # no Origin: not a browser
    server.deploy_api(with_cors(mock_api(path="/cors-ws")))
    ws_url = server.gateway.replace("http", "ws") + "/cors-ws"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused_ws:
        websocket.create_connection(ws_url, origin="https://evil.example", timeout=5)
    assert refused_ws.value.status_code == 403
    ws = websocket.create_connection(ws_url, origin=APP, timeout=5)
    assert ws.recv() == "hello"
    ws.close()


def test_with_credentials_the_origin_itself_is_named(server):
    server.deploy_api(with_cors(mock_api(path="/cors-cred", count=1), allowOrigin=["*"], allowCredentials=True))
    got = requests.get(server.gateway + "/cors-cred", headers={"Origin": APP, "Accept": "application/json"}, timeout=10)
    assert (
        got.headers["Access-Control-Allow-Origin"] == APP and got.headers["Access-Control-Allow-Credentials"] == "true"
    )


def test_run_policies_runs_the_plans_and_flows_on_preflights_and_only_then(server, http_backends):
    limit = {
        "policy": "rate-limit",
        "configuration": {"rate": {"limit": 1, "periodTime": 1, "periodTimeUnit": "MINUTES"}},
    }
    mark = {"policy": "transform-headers", "configuration": {"addHeaders": [{"name": "X-Flow", "value": "ran"}]}}
    flows = [{"name": "all", "selectors": [], "request": [limit], "response": [mark]}]
    asked = {"Origin": APP, "Access-Control-Request-Method": "GET"}

    skipped = with_cors(proxy_api([url(http_backends[0])], path="/preflight-skips"))
    skipped["flows"] = flows
    server.deploy_api(skipped)
    preflights = [requests.options(server.gateway + "/preflight-skips", headers=asked, timeout=10) for _ in range(2)]
    assert [p.status_code for p in preflights] == [200, 200] and "X-Flow" not in preflights[0].headers
    calls = [requests.get(server.gateway + "/preflight-skips", headers={"Origin": APP}, timeout=10) for _ in range(2)]
    assert [c.status_code for c in calls] == [200, 429]  # the preflights used none of the limit

    counted = with_cors(proxy_api([url(http_backends[0])], path="/preflight-runs"), runPolicies=True)
    counted["flows"] = flows
    server.deploy_api(counted)
    first = requests.options(server.gateway + "/preflight-runs", headers=asked, timeout=10)
    assert first.status_code == 200 and first.headers["X-Flow"] == "ran"
    assert first.headers["Access-Control-Allow-Origin"] == APP
    assert requests.options(server.gateway + "/preflight-runs", headers=asked, timeout=10).status_code == 429
