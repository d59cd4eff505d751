"""The MQTT fixtures of the shared Gravitee v4 data (`messages/mqtt5/*`, `messages/*/*mqtt5*`
without the webhook one, `http/failover/mqtt-two-endpoints.json`) against the machine's Mosquitto.

Each fixture is rewritten as a test must: the placeholder host and port (`mqtt5-host`,
`localhost` / `mqtt5-port`) become the local broker, and every topic becomes a topic of this test
(the same name -> the same new topic). Deliberately bad values (`wrong`, `invalid-host` / `-1`)
are kept. Then it either deploys and behaves as its name says (BEHAVIOUR), or is refused at deploy
naming its blocking parts (BLOCKED); `+change` ids are variants with a blocker taken out, or
(`-failure+no-flows`) without the policy a `-failure` fixture fails by."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from support.fixtures import FIXTURES, assert_refused_by_the_test_kit, rewrite_mqtt
from support.mosquitto import Collector, publish, shared_broker, unique_topic
from support.streams import read_sse, sse_messages

JSON = {"Accept": "application/json"}

BLOCKED = {
    "messages/mqtt5/mqtt5-endpoint-secret.json": ["secret references ({#secrets...})"],
    # A WebSocket whose clients both publish and subscribe, on an endpoint with one side only.
    "messages/mqtt5/mqtt5-endpoint-failure.json": [
        "entrypoint websocket publishes messages, but endpoint 'default' (mqtt5) of group 'default-group' is not "
        "configured to produce (Use Producer)"
    ],
    "messages/mqtt5/mqtt5-endpoint-publish.json": [
        "entrypoint websocket delivers messages to its clients, but endpoint 'default' (mqtt5) of group "
        "'default-group' is not configured to consume (Use Consumer)"
    ],
    # The first endpoint's port -1 is the failing endpoint of the failover test: kept.
    "http/failover/mqtt-two-endpoints.json": ["endpoint default: Server port: '-1' is not a port number (1 to 65535)"],
}


def mqtt_fixture_files():
    files = set(FIXTURES.glob("messages/mqtt5/*.json")) | set(FIXTURES.glob("messages/*/*mqtt5*.json"))
    files = {f for f in files if f.parent.name != "webhook"}
    files.add(FIXTURES / "http/failover/mqtt-two-endpoints.json")
    return sorted(str(f.relative_to(FIXTURES)) for f in files)


@pytest.fixture
def broker():
    return shared_broker()


@pytest.fixture
def server(shared_server):
    return shared_server


@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(server, broker, relative):
    server.assert_blocked(rewrite_mqtt(relative, broker)[0], BLOCKED[relative])


def ws_connect(server, path, client):
    return websocket.create_connection(
        server.gateway.replace("http", "ws", 1) + path, timeout=15, header=[f"X-Gravitee-Client-Identifier: {client}"]
    )


def sse_stream(server, path, client):
    stream = requests.get(
        server.gateway + path,
        stream=True,
        timeout=20,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": client},
    )
    assert read_sse(stream, 1) == [{"retry": "5000"}]
    return stream


def messages(stream, count):
    return [e["data"] for e in sse_messages(stream, count)]


def failure(server, broker, definition, topics, client):
    """host `wrong`: every entrypoint tells the client, none hangs."""
    expected = "the MQTT broker at wrong:1234 cannot be reached: no such host wrong"
    got = requests.get(server.gateway + "/test-failure", headers=JSON, timeout=15)
    assert got.status_code == 502 and got.json() == {"message": f"The endpoint failed: {expected}"}
    with requests.get(
        server.gateway + "/test-failure", stream=True, timeout=15, headers={"Accept": "text/event-stream"}
    ) as stream:
        assert read_sse(stream, 2)[1] == {"event": "error", "data": expected}


def websocket_publish(path):
    def check(server, broker, definition, topics, client):
        [topic] = topics.values()
        direct = Collector(broker, topic)
        ws = ws_connect(server, path, client)
        try:
            ws.send("from the socket")
            assert [m.payload for m in direct.get(1)] == [b"from the socket"]
        finally:
            ws.close()
            direct.close()

    return check


def http_post(path, retained):
    def check(server, broker, definition, topics, client):
        [topic] = topics.values()
        direct = Collector(broker, topic)
        try:
            response = requests.post(server.gateway + path, data=b"posted", timeout=15, headers={"X-Order": "o-1"})
            assert response.status_code == 202
            [message] = direct.get(1)
            assert message.payload == b"posted" and ("x-order", "o-1") in message.properties.UserProperty
        finally:
            direct.close()
        if retained:  # a subscriber that comes later still gets it
            later = Collector(broker, topic)
            try:
                [message] = later.get(1)
                assert message.payload == b"posted" and message.retain
            finally:
                later.close()
            publish(broker, topic, b"", retain=True)

    return check


def subscriber(path, entrypoint):
    def check(server, broker, definition, topics, client):
        [topic] = topics.values()
        if entrypoint == "sse":
            with sse_stream(server, path, client) as stream:
                publish(broker, topic, b"m0")
                publish(broker, topic, b"m1")
                assert messages(stream, 2) == ["m0", "m1"]
            return
        ws = ws_connect(server, path, client)
        try:
            # The socket subscribes after the upgrade: publish until it receives (then in order).
            ws.settimeout(0.3)
            for _ in range(30):
                publish(broker, topic, b"probe")
                try:
                    assert ws.recv() == "probe"
                    break
                except websocket.WebSocketTimeoutException:
                    continue
            ws.settimeout(10)
            publish(broker, topic, b"m0")
            publish(broker, topic, b"m1")
            assert [ws.recv(), ws.recv()] == ["m0", "m1"]
        finally:
            ws.close()

    return check


def qos_fixture(path, qos):
    """The qos fixtures' HTTP listener: SSE with the fixture's qos gets what is published, in
    order; a websocket (auto, none) publishes back through the endpoint."""

    def check(server, broker, definition, topics, client):
        [topic] = topics.values()
        with sse_stream(server, path, client) as stream:
            publish(broker, topic, b"m0")
            if qos in ("auto", "none"):
                ws = ws_connect(server, path, client + "-ws")
                try:
                    ws.send("from the socket")
                    assert messages(stream, 2) == ["m0", "from the socket"]
                finally:
                    ws.close()
            else:
                assert messages(stream, 1) == ["m0"]
        if qos != "none":
            response = requests.get(
                server.gateway + path, headers=JSON, timeout=15, params={"limit": 1}, allow_redirects=False
            )
            assert response.status_code == 200 and "error" not in response.json()

    return check


def refused_by_the_policy(server, broker, definition, topics, client):
    """http-post-...-failure.json: the test kit's interrupt-message-request-phase refuses every
    message (412), as text unless the client accepts JSON; nothing is published."""
    [topic] = topics.values()
    direct = Collector(broker, topic)
    try:
        url = server.gateway + "/http-post-entrypoint-mqtt5-endpoint-failure"
        assert_refused_by_the_test_kit(url)
        assert direct.nothing_within(1.5)
    finally:
        direct.close()


def topic_from_attribute(server, broker, definition, topics, client):
    """http-post-...-attribute.json: its flow sets gravitee.attribute.mqtt5.topic from X-New-Topic,
    and the message goes there instead of the configured topic; a topic with a wildcard: 400."""
    [configured] = topics.values()
    chosen = unique_topic("attribute")
    # The wildcard one, under a prefix of this test: a subscriber of prefix/# would see it arrive.
    prefix = unique_topic("wildcard")
    on_configured, on_chosen, under_prefix = (Collector(broker, t) for t in (configured, chosen, prefix + "/#"))
    url = server.gateway + "/topic-from-attribute"
    try:
        response = requests.post(url, data=b"to the header's topic", timeout=15, headers={"X-New-Topic": chosen})
        assert response.status_code == 202, response.text
        assert [m.payload for m in on_chosen.get(1)] == [b"to the header's topic"]
        response = requests.post(url, data=b"to the configured topic", timeout=15)
        assert response.status_code == 202, response.text
        assert [m.payload for m in on_configured.get(1)] == [b"to the configured topic"]
        wildcard = f"{prefix}/+/b"
        refused = requests.post(url, data=b"nowhere", timeout=15, headers={**JSON, "X-New-Topic": wildcard})
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"] == (
            f"The topic {wildcard!r} chosen for the message: a topic to publish to cannot hold the wildcards + or #"
        )
        assert under_prefix.nothing_within(1.5)
        assert on_configured.nothing_within(0.1) and on_chosen.nothing_within(0.1)
    finally:
        for collector in (on_configured, on_chosen, under_prefix):
            collector.close()


def closed_port_first(definition):
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["serverPort"] = "1"


def failover_to_the_second_endpoint(server, broker, definition, topics, client):
    """http/failover/mqtt-two-endpoints.json with the first endpoint's port -1 made a valid port
    of a host that does not exist: every call that the balancer gives to it is retried on the
    second one (the local broker): posts arrive, and an http-get gets what is published."""
    [topic] = topics.values()
    direct = Collector(broker, topic)
    try:
        for i in range(2):
            response = requests.post(server.gateway + "/test", data=f"posted-{i}".encode(), timeout=20)
            assert response.status_code == 202, response.text
        assert sorted(m.payload for m in direct.get(2)) == [b"posted-0", b"posted-1"]
    finally:
        direct.close()
    with ThreadPoolExecutor(1) as pool:
        # qos none: only what is published while the poll is subscribed reaches it.
        poll = pool.submit(
            requests.get, server.gateway + "/test", headers={**JSON, "X-Gravitee-Client-Identifier": client}, timeout=30
        )
        sent = 0
        while not poll.done() and sent < 200:
            publish(broker, topic, f"live-{sent}".encode())
            sent += 1
            time.sleep(0.05)
        got = poll.result()
    assert got.status_code == 200, got.text
    items = [item["content"] for item in got.json()["items"]]
    assert len(items) == 2 and all(item.startswith("live-") for item in items), items


def without_flows(definition):
    definition["flows"] = []


def websocket_only(side):
    """The WebSocket entrypoint with only this side on (publisher or subscriber)."""

    def change(definition):
        for entrypoint in definition["listeners"][0]["entrypoints"]:
            if entrypoint["type"] == "websocket":
                other = "subscriber" if side == "publisher" else "publisher"
                entrypoint["configuration"] = {side: {"enabled": True}, other: {"enabled": False}}

    return change


BEHAVIOUR = {
    "messages/mqtt5/mqtt5-endpoint-failure.json+websocket-subscriber": ((websocket_only("subscriber"),), failure),
    "messages/mqtt5/mqtt5-endpoint-publish.json+websocket-publisher": (
        (websocket_only("publisher"),),
        websocket_publish("/test-publish"),
    ),
    "messages/http-post/http-post-entrypoint-mqtt5-endpoint.json": ((), http_post("/test", False)),
    "messages/http-post/http-post-entrypoint-mqtt5-endpoint-retained.json": (
        (),
        http_post("/http-post-endpoint-mqtt5-endpoint-retained", True),
    ),
    "messages/sse/sse-entrypoint-mqtt5-endpoint.json": ((), subscriber("/test", "sse")),
    "messages/websocket/websocket-entrypoint-mqtt5-endpoint-publisher.json": ((), websocket_publish("/test")),
    "messages/websocket/websocket-entrypoint-mqtt5-endpoint-subscriber.json": (
        (),
        subscriber("/test-auto", "websocket"),
    ),
    "messages/websocket/websocket-entrypoint-mqtt5-endpoint-subscriber-none.json": (
        (),
        subscriber("/test-none", "websocket"),
    ),
    "messages/mqtt5/mqtt5-endpoint-qos-at-least-once.json": (
        (),
        qos_fixture("/test-qos-at-least-once", "at-least-once"),
    ),
    "messages/mqtt5/mqtt5-endpoint-qos-at-most-once.json": ((), qos_fixture("/test-qos-at-most-once", "at-most-once")),
    "messages/mqtt5/mqtt5-endpoint-qos-auto.json": ((), qos_fixture("/test-qos-auto", "auto")),
    "messages/mqtt5/mqtt5-endpoint-qos-none.json": ((), qos_fixture("/test-qos-none", "none")),
    "http/failover/mqtt-two-endpoints.json+closed-port": ((closed_port_first,), failover_to_the_second_endpoint),
    "messages/http-post/http-post-entrypoint-mqtt5-endpoint-attribute.json": ((), topic_from_attribute),
    "messages/http-post/http-post-entrypoint-mqtt5-endpoint-failure.json": ((), refused_by_the_policy),
    # Without its interrupt policy, the -failure fixture publishes as the plain one does.
    "messages/http-post/http-post-entrypoint-mqtt5-endpoint-failure.json+no-flows": (
        (without_flows,),
        http_post("/http-post-entrypoint-mqtt5-endpoint-failure", False),
    ),
}


@pytest.mark.parametrize("case", sorted(BEHAVIOUR))
def test_fixture_deploys_and_behaves_as_named(server, broker, case):
    relative = case.partition("+")[0]
    changes, check = BEHAVIOUR[case]
    definition, topics = rewrite_mqtt(relative, broker)
    for change in changes:
        change(definition)
    server.deploy_api(definition)
    check(server, broker, definition, topics, "fx-" + uuid.uuid4().hex[:10])


def test_every_mqtt_fixture_is_covered():
    covered = set(BLOCKED) | {case.partition("+")[0] for case, (changes, _) in BEHAVIOUR.items() if not changes}
    assert sorted(covered) == mqtt_fixture_files()
