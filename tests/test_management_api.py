"""The management REST API: auth, errors by field, import / replace / export, deploy, start, stop."""

import requests

from support.apis import mock_api
from support.gatehouse import MGMT

JSON = {"Accept": "application/json"}


def test_auth_and_openapi(server):
    anonymous = requests.get(server.portal + MGMT + "/apis", timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert anonymous.json()["message"].startswith("Authentication required")
    wrong = requests.get(server.portal + MGMT + "/apis", auth=("admin", "nope"), timeout=5)
    assert wrong.status_code == 401
    spec = requests.get(server.portal + "/management/v2/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.") and MGMT + "/apis/_import/definition" in spec["paths"]


def test_errors_name_the_field_and_save_nothing(server):
    bad = mock_api()
    bad["name"] = ""
    bad["listeners"][0]["paths"][0]["path"] = "no-slash"
    bad["listeners"][0]["entrypoints"][2]["configuration"] = {"heartbeatIntervalInMs": 500}
    bad["endpointGroups"][0]["endpoints"][0]["configuration"]["messageInterval"] = "often"
    response = server.mgmt("POST", "/apis/_import/definition", json=bad)
    assert response.status_code == 400
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert fields == {
        "name": "The API needs a name.",
        "listeners[0].paths[0].path": "A context path must start with '/' and contain no spaces.",
        "listeners[0].entrypoints[2].configuration.heartbeatIntervalInMs": (
            "Heartbeat interval (ms): must be at least 2000"
        ),
        "endpointGroups[0].endpoints[0].configuration.messageInterval": (
            "Interval between messages (ms): must be a number"
        ),
    }
    assert server.mgmt("GET", "/apis").json()["data"] == []
    not_json = server.mgmt("POST", "/apis/_import/definition", data="{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["message"] == "The body is not valid JSON."
    api_id = server.import_api(mock_api(path="/bodies"))
    for path in ("/apis/_import/definition", f"/apis/{api_id}/plans", "/applications", f"/apis/{api_id}/subscriptions"):
        for body in ([1], "text", 7):
            refused = server.mgmt("POST", path, json=body)
            assert refused.status_code == 400 and refused.json()["message"] == "The body must be a JSON object.", path
    for path, body in (
        (f"/apis/{api_id}/plans", {"name": 5, "security": {"type": "API_KEY"}}),
        ("/applications", {"name": ["App"]}),
        ("/applications", {"name": "App", "clientId": 7}),
    ):
        refused = server.mgmt("POST", path, json=body)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] in ("name", "clientId"), refused.text
    assert [api["id"] for api in server.mgmt("GET", "/apis").json()["data"]] == [api_id]
    assert server.mgmt("GET", "/applications").json()["data"] == []
    missing = server.mgmt("GET", "/apis/does-not-exist")
    assert missing.status_code == 404 and missing.json()["message"] == "No API with id does-not-exist."


def test_import_replace_export_deploy_start_stop(server):
    api_id = server.import_api(mock_api(content="first"))
    api = server.mgmt("GET", f"/apis/{api_id}").json()
    assert api["state"] == "STOPPED" and api["type"] == "MESSAGE" and api["definitionVersion"] == "V4"
    assert api["gatehouse"]["undeployedChanges"] is True and api["gatehouse"]["blockingParts"] == []

    conflict = server.mgmt("POST", "/apis/_import/definition", json=mock_api(path="/demo/", name="Other"))
    assert conflict.status_code == 409 and "/demo" in conflict.json()["message"]

    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    assert [p["security"]["type"] for p in exported["plans"]] == ["KEY_LESS"]  # a key-less plan was added
    assert exported["plans"][0]["status"] == "PUBLISHED"

    assert server.mgmt("POST", f"/apis/{api_id}/_start").status_code == 204  # deploys first: never deployed
    server.wait_serving(api_id, 1)
    assert (
        requests.get(server.gateway + "/demo?limit=1", headers=JSON, timeout=5).json()["items"][0]["content"] == "first"
    )
    again = server.mgmt("POST", f"/apis/{api_id}/_start")
    assert again.status_code == 400 and again.json()["message"] == "The API is already started."

    exported["api"]["endpointGroups"][0]["endpoints"][0]["configuration"]["messageContent"] = "second"
    replaced = server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported)
    assert replaced.status_code == 200 and replaced.json()["id"] == api_id and replaced.json()["state"] == "STARTED"
    assert replaced.json()["gatehouse"]["undeployedChanges"] is True
    # Editing never changes what the gateway serves; Deploy does.
    assert server.runtime()["apis"][api_id] == 1
    assert (
        requests.get(server.gateway + "/demo?limit=1", headers=JSON, timeout=5).json()["items"][0]["content"] == "first"
    )
    assert server.deploy(api_id) == 2
    server.wait_serving(api_id, 2)
    assert (
        requests.get(server.gateway + "/demo?limit=1", headers=JSON, timeout=5).json()["items"][0]["content"]
        == "second"
    )

    refused = server.mgmt("DELETE", f"/apis/{api_id}")
    assert refused.status_code == 400 and refused.json()["message"] == "Stop the API before deleting it."
    assert server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
    server.wait_serving(api_id, None)
    assert requests.get(server.gateway + "/demo", timeout=5).status_code == 404
    assert server.mgmt("DELETE", f"/apis/{api_id}").status_code == 204
    assert server.mgmt("GET", f"/apis/{api_id}").status_code == 404


def test_plans_this_gateway_cannot_enforce_block_deploy_by_name(server):
    definition = mock_api()
    definition["plans"] = [
        {"id": "p1", "name": "Gold", "security": {"type": "OAUTH2"}, "mode": "STANDARD", "status": "PUBLISHED"},
        {
            "id": "p2",
            "name": "Tokens",
            "security": {
                "type": "JWT",
                "configuration": {"signature": "RSA_RS256", "publicKeyResolver": "GATEWAY_KEYS"},
            },
        },
    ]
    api_id = server.import_api(definition)
    assert server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["blockingParts"] == [
        "plan type oauth2 not available yet (plan Gold)",
        "JWT keys: only the key given here or a JWKS URL are available yet (plan Tokens)",
    ]
    refused = server.mgmt("POST", f"/apis/{api_id}/deployments")
    assert refused.status_code == 400
    assert "plan type oauth2 not available yet" in refused.json()["message"]
    assert server.mgmt("POST", f"/apis/{api_id}/_start").status_code == 400
    assert server.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STOPPED"


def test_sse_heartbeat_and_http_get_duration_limit(server):
    definition = mock_api(
        interval=10_000,
        entrypoints=[
            {"type": "sse", "configuration": {"heartbeatIntervalInMs": 2000}},
            {"type": "http-get", "configuration": {"messagesLimitDurationMs": 300}},
        ],
    )
    api_id = server.import_api(definition)
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    with requests.get(
        server.gateway + "/demo", headers={"Accept": "text/event-stream"}, stream=True, timeout=10
    ) as sse:
        lines = sse.iter_lines(decode_unicode=True)
        head = [next(lines) for _ in range(8)]
    assert head == ["retry: 2000", "", "id: 0", "event: message", "data: hello", "", ":", ""]
    polled = requests.get(server.gateway + "/demo", headers=JSON, timeout=5)
    assert polled.elapsed.total_seconds() < 2
    assert [i["id"] for i in polled.json()["items"]] == ["0"]
