"""The RabbitMQ fixtures of the shared Gravitee v4 data (`messages/*/*rabbitmq*` without the webhook
one, `http/failover/rabbitmq-two-endpoints.json`), run against the local RabbitMQ broker.

Each fixture is rewritten as a test must: the placeholder host `rabbitmq-host` becomes the local
broker, its `admin` credentials the broker's `guest`, and its exchange `my-exchange` an exchange
of the test's own. Deliberately bad values (`wrong`, `fake-host`, port -1) are kept. Then the
fixture either deploys and behaves as its name says (BEHAVIOUR), or is refused at deploy naming
what it lacks (BLOCKED). Derived variants (`<fixture>+<change>`) run what a blocked fixture would
do once its blocker is taken out, or what a `-failure` fixture would do, its flows taken out, with
a broker that cannot be reached.
"""

import copy
import json

import pytest
import requests
import websocket

from support.fixtures import FIXTURES, assert_refused_by_the_test_kit
from support.gatehouse import free_port
from support.rabbit import Tap, consuming, get, get_while, publish
from support.streams import read_sse, sse_messages

JSON = {"Accept": "application/json"}
ROUTING_KEY = "a.routing.key"

BLOCKED = {
    "messages/http-get/http-get-entrypoint-rabbitmq-endpoint-secret.json": ["secret references ({#secrets...})"],
    # The first endpoint's port -1 is the failing endpoint of the failover test: kept.
    "http/failover/rabbitmq-two-endpoints.json": ["endpoint default: Server port: must be between 1 and 65535"],
}


def fixture_files():
    files = {f for f in FIXTURES.glob("messages/*/*rabbitmq*.json") if f.parent.name != "webhook"}
    files.add(FIXTURES / "http/failover/rabbitmq-two-endpoints.json")
    return sorted(str(f.relative_to(FIXTURES)) for f in files)


@pytest.fixture
def server(shared_server):
    return shared_server


def rewrite(relative, exchange):
    definition = copy.deepcopy(json.loads((FIXTURES / relative).read_text()))
    for group in definition["endpointGroups"]:
        for endpoint in group["endpoints"]:
            if endpoint["configuration"].get("serverHost") == "rabbitmq-host":
                endpoint["configuration"]["serverHost"] = "127.0.0.1"
            shared = endpoint.get("sharedConfigurationOverride") or {}
            shared["security"] = {"auth": {"username": "guest", "password": "guest"}}
            for side in ("producer", "consumer"):
                if (shared.get(side) or {}).get("exchange", {}).get("name") == "my-exchange":
                    shared[side]["exchange"]["name"] = exchange
    return definition


def entrypoint(definition, kind):
    return next(e for li in definition["listeners"] for e in li["entrypoints"] if e["type"] == kind)


def http_get(path, qos):
    """messagesLimitCount 1, headers and metadata in the payload: one message with both."""

    def check(server, api_id, definition, exchange):
        assert entrypoint(definition, "http-get").get("qos", "auto") == qos
        body = get_while(
            server.gateway,
            path,
            api_id,
            "fixture",
            lambda: publish(exchange, ROUTING_KEY, "m0", "m1", headers={"origin": "fixture"}),
        )
        [item] = body["items"]
        assert item["content"] == "m0" and item["headers"] == {"origin": ["fixture"]}
        assert item["metadata"]["exchange"] == exchange and item["metadata"]["routingKey"] == ROUTING_KEY
        assert [i["content"] for i in get(server.gateway, path, "fixture")["items"]] == ["m1"]  # kept for the client

    return check


def http_post(server, api_id, definition, exchange):
    tap = Tap(exchange, auto_delete=True)  # as the fixtures declare it
    try:
        response = requests.post(server.gateway + "/test", data=b"posted", timeout=15, headers={"X-Order": "o-1"})
        assert response.status_code == 202, response.text
        [(body, properties)] = tap.take(1)
        assert body == b"posted" and properties.headers["x-order"] == "o-1"
    finally:
        tap.close()


def sse(server, api_id, definition, exchange):
    with requests.get(
        server.gateway + "/test",
        stream=True,
        timeout=30,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "fixture"},
    ) as stream:
        assert read_sse(stream, 1) == [{"retry": "5000"}]
        publish(exchange, ROUTING_KEY, "m0", "m1", "m2")
        assert [e["data"] for e in sse_messages(stream, 3)] == ["m0", "m1", "m2"]


def websocket_check(path, publisher, subscriber):
    def check(server, api_id, definition, exchange):
        ws_entrypoint = entrypoint(definition, "websocket")
        config = ws_entrypoint["configuration"]
        assert (config["publisher"]["enabled"], config["subscriber"]["enabled"]) == (publisher, subscriber)
        tap = Tap(exchange, auto_delete=True)  # as the fixtures declare it
        ws = websocket.create_connection(
            server.gateway.replace("http", "ws", 1) + path, timeout=15, header=["X-Gravitee-Client-Identifier: fixture"]
        )
        try:
            if subscriber:
                consuming(api_id, "fixture", ws_entrypoint.get("qos", "auto"))
                publish(exchange, ROUTING_KEY, "m0", "m1")
                assert [ws.recv(), ws.recv()] == ["m0", "m1"]
            ws.send("from the socket")
            if publisher and subscriber:
                assert ws.recv() == "from the socket"  # published, consumed back
            expected = (["m0", "m1"] if subscriber else []) + (["from the socket"] if publisher else [])
            assert [body.decode() for body, _ in tap.take(len(expected))] == expected
            assert tap.take(1, timeout=0.5) == []  # a frame from a client that may not publish is dropped
        finally:
            ws.close()
            tap.close()

    return check


def unreachable(method, path, host):
    def check(server, api_id, definition, exchange):
        response = requests.request(
            method, server.gateway + path, data=b"x" if method == "POST" else None, headers=JSON, timeout=30
        )
        assert response.status_code == 502, response.text
        assert response.json() == {"message": f"The endpoint failed: the RabbitMQ broker at {host} cannot be reached"}

    return check


def refused_by_the_policy(server, api_id, definition, exchange):
    """http-post-...-failure.json: the test kit's interrupt-message-request-phase refuses every
    message (412), as text unless the client accepts JSON; nothing is published."""
    tap = Tap(exchange, auto_delete=True)  # as the fixture declares it
    try:
        url = server.gateway + "/test-failure"
        assert_refused_by_the_test_kit(url)
        assert tap.take(1, timeout=1.5) == []
    finally:
        tap.close()


def closed_port(definition):
    definition["endpointGroups"][0]["endpoints"][0]["configuration"].update(
        serverHost="127.0.0.1", serverPort=CLOSED_PORT
    )


def without_flows(definition):
    definition["flows"] = []


def first_closed(definition):
    """The failing first endpoint (port -1 of a host that does not exist) on a valid, closed port."""
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["serverPort"] = CLOSED_PORT


def failover_pair(server, api_id, definition, exchange):
    """The two-endpoints fixture with failover: what the balancer gives to the failing endpoint is
    sent to the second one; what is posted comes back over http-get."""

    def post_two():
        for body in (b"one", b"two"):
            assert requests.post(server.gateway + "/test", data=body, timeout=10).status_code == 202

    assert [i["content"] for i in get_while(server.gateway, "/test", api_id, "fixture", post_two)["items"]] == [
        "one",
        "two",
    ]


CLOSED_PORT = free_port()
BEHAVIOUR = {
    "messages/http-get/http-get-entrypoint-rabbitmq-endpoint.json": ((), http_get("/test", "auto")),
    "messages/http-get/http-get-entrypoint-rabbitmq-endpoint-at-least-once.json": (
        (),
        http_get("/test-at-least-once", "at-least-once"),
    ),
    "messages/http-get/http-get-entrypoint-rabbitmq-endpoint-at-most-once.json": (
        (),
        http_get("/test-at-most-once", "at-most-once"),
    ),
    "messages/http-get/http-get-entrypoint-rabbitmq-endpoint-failure.json": (
        (),
        unreachable("GET", "/test-failure", "wrong:5672"),
    ),
    "messages/http-post/http-post-entrypoint-rabbitmq-endpoint.json": ((), http_post),
    "messages/sse/sse-entrypoint-rabbitmq-endpoint.json": ((), sse),
    "messages/websocket/websocket-entrypoint-rabbitmq-endpoint-publisher-subscriber.json": (
        (),
        websocket_check("/test", True, True),
    ),
    "messages/websocket/websocket-entrypoint-rabbitmq-endpoint-publisher.json": (
        (),
        websocket_check("/test", True, False),
    ),
    "messages/websocket/websocket-entrypoint-rabbitmq-endpoint-subscriber.json": (
        (),
        websocket_check("/test-auto", False, True),
    ),
    "messages/websocket/websocket-entrypoint-rabbitmq-endpoint-subscriber-none.json": (
        (),
        websocket_check("/test-none", False, True),
    ),
    "messages/http-post/http-post-entrypoint-rabbitmq-endpoint-failure.json": ((), refused_by_the_policy),
    # Without its interrupt policy, on a closed port: the broker that cannot be reached is told.
    "messages/http-post/http-post-entrypoint-rabbitmq-endpoint-failure.json+closed-port": (
        (closed_port, without_flows),
        unreachable("POST", "/test-failure", f"127.0.0.1:{CLOSED_PORT}"),
    ),
    "http/failover/rabbitmq-two-endpoints.json+first-closed": ((first_closed,), failover_pair),
}


@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(server, names, relative):
    server.assert_blocked(rewrite(relative, names.exchange()), BLOCKED[relative])


@pytest.mark.parametrize("case", sorted(BEHAVIOUR))
def test_fixture_deploys_and_behaves_as_named(server, names, case):
    relative = case.partition("+")[0]
    changes, check = BEHAVIOUR[case]
    exchange = names.exchange()
    definition = rewrite(relative, exchange)
    for change in changes:
        change(definition)
    api_id = server.deploy_api(definition)
    names.api_ids.add(api_id)
    check(server, api_id, definition, exchange)


def test_every_rabbitmq_fixture_is_covered():
    covered = set(BLOCKED) | {case.partition("+")[0] for case, (changes, _) in BEHAVIOUR.items() if not changes}
    assert sorted(covered) == fixture_files()
