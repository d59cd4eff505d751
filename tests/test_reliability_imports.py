"""Issue 15, fault 8: an import names every part Gatehouse keeps but does not apply. A part whose
absence only loses something for the operator (analytics, logs, traces) is a warning and the API
deploys; a part whose absence would let through what Gravitee refuses (plan selection rules,
sharding tags, listener servers) or that cannot run at all (a NATIVE Kafka API) is kept and
blocks Deploy, by name.

Each test imports through the management API of a real `gatehouse serve`, and reads what a user
reads: the import answer, the Deploy answer and the portal's pages."""

import copy
import re

import requests

from support.apis import mock_api
from support.gatehouse import ADMIN_PASSWORD

FIELD_WARNINGS = (
    "analytics.enabled",
    "analytics.logging",
    "analytics.tracing",
    "listeners[0].pathMappings",
    "groups",
    "categories",
    "visibility",
)


def unapplied_definition():
    """A Mock message API (it deploys) with every warned part, exported as Gravitee does."""
    api = mock_api(path="/unapplied", name="Unapplied parts")
    api["listeners"][0].update(
        cors={"enabled": True, "allowOrigin": ["https://app.example.com"]}, pathMappings=["/orders/:id"]
    )
    api.update(
        analytics={
            "enabled": True,
            "tracing": {"enabled": True, "verbose": False},
            "logging": {"mode": {"entrypoint": True, "endpoint": True}, "content": {"headers": True, "payload": True}},
        },
        properties=[{"key": "region", "value": "eu", "encrypted": False}],
        groups=["group1"],
        categories=["orders"],
        visibility="PRIVATE",
        state="STARTED",
    )
    return {
        "api": api,
        "members": [{"id": "m-1", "displayName": "John Doe"}],
        "pages": [{"id": "p-1", "name": "openapi.json", "type": "SWAGGER", "content": "{}"}],
        "metadata": [{"key": "email-support", "value": "support@example.com"}],
    }


def portal(server):
    browser = requests.Session()
    page = browser.get(server.portal + "/login")
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text).group(1)
    done = browser.post(
        server.portal + "/login",
        data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD},
        allow_redirects=False,
    )
    assert done.status_code == 302, done.text
    return browser


def unescaped(html):
    return html.replace("&#39;", "'").replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")


def test_every_unapplied_part_is_a_warning_naming_its_field_and_the_api_still_deploys(shared_server):
    answer = shared_server.mgmt("POST", "/apis/_import/definition", json=unapplied_definition())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    kept = body["gatehouse"]["warnings"]
    print("warnings:", *kept, sep="\n  ")
    print("import notes:", *body["warnings"], sep="\n  ")
    unnamed = [
        field
        for field in FIELD_WARNINGS
        if not any(w.startswith(f"{field} is kept but not applied yet: ") for w in kept)
    ]
    assert unnamed == [], f"kept without a word: {unnamed}"
    assert "analytics.logging is kept but not applied yet: no request or message logs are written" in kept
    notes = body["warnings"]
    assert any(n.startswith("state STARTED is not applied: the API is imported stopped") for n in notes), notes
    assert [n.split(" ")[0] for n in notes if " not imported" in n] == ["members", "pages", "metadata"], notes
    assert body["state"] == "STOPPED" and body["gatehouse"]["blockingParts"] == []

    # Importing it again over the API says it again.
    api_id = body["id"]
    again = shared_server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=unapplied_definition())
    assert again.status_code == 200, again.text
    assert again.json()["gatehouse"]["warnings"] == kept
    assert (
        "state STARTED is not applied: the API stays stopped; an import changes its draft only"
        in again.json()["warnings"]
    )

    # Kept: the export gives them back; warned parts do not block: it deploys and serves.
    exported = shared_server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()["api"]
    assert exported["analytics"]["logging"]["content"] == {"headers": True, "payload": True}
    assert exported["listeners"][0]["cors"]["allowOrigin"] == ["https://app.example.com"]
    revision = shared_server.deploy(api_id)
    shared_server.start_api(api_id)
    shared_server.wait_serving(api_id, revision)
    served = requests.get(
        shared_server.gateway + "/unapplied", params={"limit": 1}, timeout=10, headers={"Accept": "application/json"}
    )
    assert served.status_code == 200, served.text

    # The portal shows the same warnings on the API's page.
    page = portal(shared_server).get(f"{shared_server.portal}/apis/{api_id}")
    assert page.status_code == 200
    missing = [w for w in kept if w not in unescaped(page.text)]
    assert missing == [], f"not shown on the API page: {missing}"


BLOCKING = {
    "selectionRule of plan Keyless": lambda api: api.update(
        plans=[
            {
                "id": "p1",
                "name": "Keyless",
                "security": {"type": "key-less"},
                "mode": "standard",
                "status": "published",
                "selectionRule": "{#request.headers['X-Tier'] == 'gold'}",
            }
        ]
    ),
    "tags (sharding tags internal)": lambda api: api.update(tags=["internal"]),
    "listeners[0].servers (server-internal)": lambda api: api["listeners"][0].update(servers=["server-internal"]),
}


def test_parts_whose_absence_would_let_through_what_gravitee_refuses_block_deploy_by_name(shared_server):
    refused = {}
    for name, change in BLOCKING.items():
        definition = copy.deepcopy(mock_api(path="/blocked-" + str(len(refused)), name=name))
        change(definition)
        answer = shared_server.mgmt("POST", "/apis/_import/definition", json=definition)
        assert answer.status_code == 201, answer.text
        parts = answer.json()["gatehouse"]["blockingParts"]
        deploy = shared_server.mgmt("POST", f"/apis/{answer.json()['id']}/deployments")
        refused[name] = (parts, deploy.status_code, deploy.json().get("message", ""))
    print(*(f"{k}: {v}" for k, v in refused.items()), sep="\n")
    assert {
        name: (any(p.startswith(name) for p in parts), status, name in message)
        for name, (parts, status, message) in refused.items()
    } == {name: (True, 400, True) for name in BLOCKING}


NATIVE_ID = "native-kafka-orders"


def native_kafka_export():
    """A NATIVE API (Kafka listener) in the management form, as Gravitee 4.6+ exports one."""
    return {
        "export": {"date": "2025-01-10T10:00:00Z", "apimVersion": "4.6.0"},
        "api": {
            "id": NATIVE_ID,
            "name": "Kafka native orders",
            "apiVersion": "1.0",
            "definitionVersion": "V4",
            "type": "NATIVE",
            "state": "STOPPED",
            "analytics": {"enabled": False},
            "listeners": [
                {
                    "type": "KAFKA",
                    "host": "orders",
                    "port": 9092,
                    "entrypoints": [{"type": "native-kafka", "configuration": {}}],
                }
            ],
            "endpointGroups": [
                {
                    "name": "Default Native endpoint group",
                    "type": "native-kafka",
                    "loadBalancer": {"type": "ROUND_ROBIN"},
                    "sharedConfiguration": {"security": {"protocol": "PLAINTEXT"}},
                    "endpoints": [
                        {
                            "name": "Default Native proxy",
                            "type": "native-kafka",
                            "weight": 1,
                            "inheritConfiguration": True,
                            "secondary": False,
                            "configuration": {"bootstrapServers": "kafka:9092"},
                            "sharedConfigurationOverride": {},
                        }
                    ],
                }
            ],
            "flows": [{"name": "all", "enabled": True, "interact": [], "connect": [], "publish": [], "subscribe": []}],
        },
        "plans": [
            {
                "id": "keyless",
                "name": "Keyless",
                "security": {"type": "KEY_LESS"},
                "mode": "STANDARD",
                "status": "PUBLISHED",
                "flows": [],
            }
        ],
        "members": [],
        "metadata": [],
        "pages": [],
    }


def links(html, api_id, seen):
    """The API's own pages a page links to, not yet in `seen`."""
    return sorted(set(re.findall(r'href="(/apis/' + re.escape(api_id) + r'/[^"#?]*)"', html)) - set(seen))


NATIVE_PART = "the Kafka native listener (type NATIVE) is not supported yet"


def test_a_native_kafka_api_is_kept_blocks_deploy_naming_it_and_every_portal_page_answers(shared_server):
    answer = shared_server.mgmt("POST", "/apis/_import/definition", json=native_kafka_export())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    print("blocking parts:", body["gatehouse"]["blockingParts"])
    assert body["type"] == "NATIVE" and body["gatehouse"]["blockingParts"][0] == NATIVE_PART
    api_id = body["id"]
    deploy = shared_server.mgmt("POST", f"/apis/{api_id}/deployments")
    assert deploy.status_code == 400 and NATIVE_PART in deploy.json()["message"], deploy.text
    assert shared_server.mgmt("POST", f"/apis/{api_id}/_start").status_code != 204

    # Kept as it was: the export gives back the Kafka listener.
    exported = shared_server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    assert exported["api"]["type"] == "NATIVE"
    assert exported["api"]["listeners"][0] == {
        "type": "KAFKA",
        "host": "orders",
        "port": 9092,
        "entrypoints": [{"type": "native-kafka", "configuration": {}}],
    }

    # The list, the overview, its tabs and the pages they link to (plans, failover ...).
    browser = portal(shared_server)
    overview = browser.get(f"{shared_server.portal}/apis/{api_id}")
    pages = {"/apis": browser.get(shared_server.portal + "/apis").status_code, f"/apis/{api_id}": overview.status_code}
    below = []
    for href in links(overview.text, api_id, pages):
        page = browser.get(shared_server.portal + href)
        pages[href] = page.status_code
        below.append(page.text)
    for href in {href for html in below for href in links(html, api_id, pages)}:
        pages[href] = browser.get(shared_server.portal + href).status_code
    print("pages:", pages)
    assert len(pages) >= 8, pages  # general, entrypoints, endpoints, plans, deployments, a group ...
    assert {page: status for page, status in pages.items() if status != 200} == {}
    assert NATIVE_PART in unescaped(overview.text)
    assert "Kafka native orders" in browser.get(shared_server.portal + "/apis").text
