"""An API's responseTemplates over real sockets: the gateway's own errors (a rate limit's 429, the
backend's 502, a refused origin) answered with the API's status, headers and body, picked by error
key (or its parent, or DEFAULT) and by the client's Accept; bad templates refused at import."""

import xml.etree.ElementTree as ET

import pytest
import requests

from support.apis import proxy_api
from support.gatehouse import free_port, until
from support.http_backends import url

LIMITED = {
    "RATE_LIMIT_TOO_MANY_REQUESTS": {
        "application/json": {
            "status": 429,
            "headers": {"X-Error-Key": "{#error.key}"},
            "body": '{"error": "{#error.message}", "limit": {#error.parameters[\'limit\']}}',
        },
        "application/xml": {
            "status": 429,
            "body": "<error><key>{#error.key}</key><limit>{#error.parameters['limit']}</limit>"
            "<path>{#request.path}</path></error>",
        },
    }
}


@pytest.fixture
def server(shared_server):
    return shared_server


def rate_limited(backend, path, templates):
    api = proxy_api([url(backend)], path=path)
    step = {
        "policy": "rate-limit",
        "configuration": {"rate": {"limit": 1, "periodTime": 1, "periodTimeUnit": "MINUTES"}},
    }
    api["flows"] = [{"name": "limit", "selectors": [], "request": [step]}]
    api["responseTemplates"] = templates
    return api


def test_a_429_answered_by_the_template_of_its_key_in_json_and_in_xml(server, http_backends):
    server.deploy_api(rate_limited(http_backends[0], "/templated", LIMITED))
    assert requests.get(server.gateway + "/templated", timeout=10).status_code == 200
    as_json = requests.get(server.gateway + "/templated", headers={"Accept": "application/json"}, timeout=10)
    assert as_json.status_code == 429 and as_json.headers["Content-Type"] == "application/json"
    assert as_json.json() == {
        "error": "Rate limit exceeded ! You reach the limit of 1 requests per 1 minutes",
        "limit": 1,
    }
    assert as_json.headers["X-Error-Key"] == "RATE_LIMIT_TOO_MANY_REQUESTS"
    assert int(as_json.headers["Retry-After"]) >= 1  # the policy's own headers stay
    # The best-rated media type the API has a template for.
    as_xml = requests.get(
        server.gateway + "/templated", headers={"Accept": "application/json;q=0.2, application/xml"}, timeout=10
    )
    assert as_xml.status_code == 429 and as_xml.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(as_xml.text)
    assert (root.findtext("key"), root.findtext("limit"), root.findtext("path")) == (
        "RATE_LIMIT_TOO_MANY_REQUESTS",
        "1",
        "/templated",
    )
    # No template for text/html and no */* one for the key: the gateway's own answer.
    plain = requests.get(server.gateway + "/templated", headers={"Accept": "text/html"}, timeout=10)
    assert plain.status_code == 429
    assert plain.text == "Rate limit exceeded ! You reach the limit of 1 requests per 1 minutes"


def test_a_502_answered_by_the_template_of_its_parent_key_in_json_and_xml(server):
    closed = free_port()  # nothing listens: the connection is refused
    api = proxy_api([f"http://127.0.0.1:{closed}/"], path="/down")
    api["responseTemplates"] = {
        "GATEWAY_CLIENT_CONNECTION_ERROR": {
            "application/xml": {"status": 503, "body": "<down key='{#error.key}'>{#error.cause}</down>"},
            "*/*": {
                "status": 503,
                "headers": {"Content-Type": "application/json", "Retry-After": "30"},
                "body": '{"down": "{#error.key}", "status": {#error.statusCode}}',
            },
        }
    }
    server.deploy_api(api)
    as_json = requests.get(server.gateway + "/down", timeout=10)  # requests sends Accept: */*
    assert as_json.status_code == 503 and as_json.headers["Retry-After"] == "30"
    assert as_json.json() == {"down": "GATEWAY_CLIENT_CONNECTION_REFUSED", "status": 502}
    as_xml = requests.get(server.gateway + "/down", headers={"Accept": "application/xml"}, timeout=10)
    root = ET.fromstring(as_xml.text)
    assert as_xml.status_code == 503 and root.get("key") == "GATEWAY_CLIENT_CONNECTION_REFUSED"
    assert root.text == f"the backend 127.0.0.1:{closed} cannot be reached"


def test_default_answers_a_key_with_no_template_of_its_own(server, http_backends):
    api = proxy_api([url(http_backends[0])], path="/origins")
    api["listeners"][0]["cors"] = {"enabled": True, "allowOrigin": ["https://app.example"]}
    api["responseTemplates"] = {
        "DEFAULT": {"*/*": {"status": 400, "body": "refused: {#error.key}"}},
        "RATE_LIMIT_TOO_MANY_REQUESTS": {"application/json": {"status": 429, "body": "{}"}},
    }
    server.deploy_api(api)
    refused = requests.get(server.gateway + "/origins", headers={"Origin": "https://evil.example"}, timeout=10)
    assert (refused.status_code, refused.text) == (400, "refused: CORS_ORIGIN_NOT_ALLOWED")
    allowed = requests.get(server.gateway + "/origins", headers={"Origin": "https://app.example"}, timeout=10)
    assert allowed.status_code == 200


def test_templates_that_cannot_be_used_are_refused_at_import_naming_the_field(server):
    before = server.mgmt("GET", "/apis").json()["data"]
    api = proxy_api(["http://127.0.0.1:1/"], path="/bad-templates")
    api["responseTemplates"] = {
        "DEFAULT": {
            "*/*": {"status": 700, "body": "{#error.key"},
            "json": {"status": 400},
        }
    }
    refused = server.mgmt("POST", "/apis/_import/definition", json=api)
    assert refused.status_code == 400
    fields = {e["field"]: e["message"] for e in refused.json()["errors"]}
    assert fields["responseTemplates.DEFAULT.*/*.status"] == "The status is a whole number from 100 to 599."
    assert "responseTemplates.DEFAULT.*/*.body" in fields
    assert "is not a media type" in fields["responseTemplates.DEFAULT.json"]
    assert server.mgmt("GET", "/apis").json()["data"] == before


def test_an_attacker_s_accept_header_neither_breaks_the_answer_nor_picks_a_template_it_does_not_name(
    server, http_backends
):
    server.deploy_api(rate_limited(http_backends[0], "/hostile", LIMITED))
    requests.get(server.gateway + "/hostile", timeout=10)
    for accept in ("application/json;q=abc", ";;;,,,", "application/*", "x" * 4000, "application/xml;q=0"):
        got = requests.get(server.gateway + "/hostile", headers={"Accept": accept}, timeout=10)
        assert got.status_code == 429, (accept, got.text)
        if accept == "application/json;q=abc":  # an unreadable q is 0: not this template, Gravitee's JSON
            assert got.json()["message"].startswith("Rate limit exceeded")
        else:
            assert "<error>" not in got.text and '"limit"' not in got.text


def test_a_plan_s_401_and_a_flow_s_404_answered_by_their_templates(server, http_backends):
    from support.plans import plan

    api = proxy_api([url(http_backends[0])], path="/keyed-templates")
    api["plans"] = [plan("gold", "API_KEY")]
    api["flowExecution"] = {"mode": "DEFAULT", "matchRequired": True}
    api["flows"] = [{"name": "orders", "selectors": [{"type": "http", "path": "/orders", "pathOperator": "EQUALS"}]}]
    api["responseTemplates"] = {
        "GATEWAY_PLAN_UNRESOLVABLE": {"application/json": {"status": 401, "body": '{"login": "{#error.key}"}'}},
        "FLOW_EXECUTION_FLOW_MATCHED_FAILURE": {"*/*": {"status": 404, "body": "no such resource"}},
    }
    api_id = server.deploy_api(api)
    refused = requests.get(server.gateway + "/keyed-templates/orders", headers={"Accept": "application/json"})
    assert refused.status_code == 401 and refused.json() == {"login": "GATEWAY_PLAN_UNRESOLVABLE"}
    key = server.subscribe(api_id, "gold")["apiKey"]
    keyed = {"X-Gravitee-Api-Key": key}
    orders = server.gateway + "/keyed-templates/orders"
    until(lambda: requests.get(orders, headers=keyed, timeout=10).status_code == 200, timeout=5)  # the gateway's poll
    unmatched = requests.get(server.gateway + "/keyed-templates/other", headers=keyed, timeout=10)
    assert (unmatched.status_code, unmatched.text) == (404, "no such resource")
