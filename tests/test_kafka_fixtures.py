"""The Kafka fixtures of the shared Gravitee v4 data (`messages/kafka/*`, `messages/*/*kafka*`
without the webhook ones, `http/failover/kafka-two-endpoints.json`), run against a real broker
(Tansu).

Each fixture is loaded and rewritten as a test must: the placeholder `bootstrapServers`
(`bootstrap-server`) becomes the test broker, and every topic it names becomes a fresh topic of
the test (the same name -> the same fresh topic, across consumer and producer), so that tests do
not see each other's messages. Deliberately bad values (`wrong`, `http://localhost:9098`) are
kept. Then the fixture is imported and either

- deploys, starts and behaves as its name says (BEHAVIOUR), or
- is refused at deploy (400) naming the first of its `gatehouse.blockingParts` (BLOCKED, which
  records the parts each one lacks).

A few derived variants (ids `<fixture>+<change>`) run what a blocked fixture would do once its
blocker is taken out, or what a `-failure` fixture tests with a broker that cannot be reached.

Timing: a new consumer group's first fetch on Tansu comes ~3 s after it joins; the http-get
fixtures that deploy as they are already wait up to 10 s (messagesLimitDurationMs 10000), so
their values are kept; calls that expect fewer messages than messagesLimitCount pass `?limit=`
so as not to wait out that duration. Every test has a client identifier (consumer group) of its
own.

One gatehouse server serves the whole module; every test deletes its APIs after it, since many
fixtures share the context path /test.
"""

import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from gateway_runtime.http import client_identifier
from support.fixtures import FIXTURES, assert_refused_by_the_test_kit, kafka_endpoints, load, rewrite_kafka
from support.gatehouse import free_port
from support.kafka import consume, produce
from support.streams import read_sse
from support.streams import sse_messages as read_messages

JSON = {"Accept": "application/json"}
BAD_BOOTSTRAP = "is not host:port; give a comma-separated list such as broker1:9092,broker2:9092"

# fixture -> the blocking parts it has once `bootstrap-server` is rewritten to the test broker.
BLOCKED = {
    # Gravitee's dynamic endpoint configuration: an attribute and an expression in the consumer's
    # settings (autoOffsetReset), both read by Gravitee's endpoint only.
    "messages/http-get/http-get-entrypoint-kafka-endpoint-dynamic-configuration.json": [
        "attribute gravitee.attributes.endpoint.kafka.consumer.topics (for Gravitee's endpoint; "
        "the kafka endpoint here does not read it)",
        "expression language ({#...})",
    ],
    # Its `wrong` bootstrap value is the point of the fixture: kept (see the +closed-port variant).
    "messages/http-get/http-get-entrypoint-kafka-endpoint-failure.json": [f"endpoint default: 'wrong' {BAD_BOOTSTRAP}"],
    # The topics attribute chooses where a message is produced; this API only consumes.
    "messages/http-get/http-get-entrypoint-kafka-endpoint-override-topic.json": [
        "attribute gravitee.attribute.kafka.topics for consuming (the kafka endpoint reads it when publishing only)"
    ],
    "messages/http-get/http-get-entrypoint-kafka-endpoint-secret.json": ["secret references ({#secrets...})"],
    "messages/http-get/http-get-entrypoint-kafka-endpoint-with-tenants.json": ["tenants on endpoint test-topic-2"],
    # The first endpoint's `http://localhost:9098` is the failing endpoint of the failover test: kept.
    "http/failover/kafka-two-endpoints.json": [f"endpoint default: 'http://localhost:9098' {BAD_BOOTSTRAP}"],
}


def kafka_fixture_files():
    """Every Kafka fixture of this module's share: messages/kafka/*, messages/*/*kafka* (not the
    webhook ones) and the Kafka failover fixture."""
    files = set(FIXTURES.glob("messages/kafka/*.json")) | set(FIXTURES.glob("messages/*/*kafka*.json"))
    files = {f for f in files if f.parent.name != "webhook"}
    files.add(FIXTURES / "http/failover/kafka-two-endpoints.json")
    return sorted(str(f.relative_to(FIXTURES)) for f in files)


# ----- the server, shared by the module -----
@pytest.fixture
def server(shared_server):
    return shared_server


@pytest.fixture
def client():
    """A client identifier of this test only: its consumer groups are its own."""
    return "kf-" + uuid.uuid4().hex[:12]


# ----- rewriting a fixture -----


def http_path(definition):
    return next(li for li in definition["listeners"] if li["type"] == "http")["paths"][0]["path"]


def entrypoint(definition, kind):
    return next(e for li in definition["listeners"] for e in li.get("entrypoints", []) if e["type"] == kind)


def get(server, path, client, **params):
    response = requests.get(
        server.gateway + path, params=params, timeout=30, headers={**JSON, "X-Gravitee-Client-Identifier": client}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "error" not in body, body
    return body


def next_nonempty(server, path, client, polls=3):
    """The client's next GET (limit=1) that brings a message. A poll may end empty at its
    messagesLimitDurationMs (10 s) while the client's group rebalances: a client polls again, and what
    matters is that the next message comes then, neither lost nor twice. (In CI under load it never
    came: a rebalance had taken the partition before the first poll's subscription closed, the seek
    of its close failed, and its consumer stayed, never polled, holding the group; now closing gives
    it back whatever happened: tests/test_kafka.py, the test of a subscription closed while its
    partitions are revoked.)"""
    for _ in range(polls):
        body = get(server, path, client, limit=1)
        if body["items"]:
            return body
    return body


def contents(body):
    return [item["content"] for item in body["items"]]


def committed(bootstrap, api_id, client, topic, expected, timeout=5):
    """The offset committed for the client's group on the topic, once it is `expected` (or the
    last one seen after timeout)."""
    group = api_id + "-" + client_identifier({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": client})
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            offset = consumer.committed(TopicPartition(topic, 0))
            if offset == expected or time.monotonic() > deadline:
                return offset
            time.sleep(0.05)
    finally:
        consumer.close()


def sse_messages(server, path, client, count, timeout=15):
    with requests.get(
        server.gateway + path,
        stream=True,
        timeout=30,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": client},
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        return read_messages(stream, count, timeout)


def ws_connect(server, path, client):
    return websocket.create_connection(
        server.gateway.replace("http", "ws", 1) + path, timeout=15, header=[f"X-Gravitee-Client-Identifier: {client}"]
    )


def assert_nothing_more(ws, wait=1.0):
    ws.settimeout(wait)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()


# ----- blocked fixtures -----
@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(server, tansu, relative):
    server.assert_blocked(rewrite_kafka(load(relative), tansu.bootstrap)[0], BLOCKED[relative])


# ----- fixtures that deploy: what each one does -----
def http_get_plain(server, tansu, api_id, definition, topics, client):
    """http-get, qos auto, messagesLimitCount 2, headers and metadata in the payload."""
    topic = topics["test-topic"]
    produce(tansu.bootstrap, topic, "m0", "m1", headers=[("origin", b"fixture")])
    produce(tansu.bootstrap, topic, "m2")
    first = get(server, "/test", client)  # stops at the fixture's messagesLimitCount (2)
    assert contents(first) == ["m0", "m1"]
    item = first["items"][0]
    assert item["headers"] == {"origin": ["fixture"]}
    assert item["metadata"]["topic"] == topic and item["metadata"]["offset"] == "0"
    assert first["pagination"]["nextCursor"] == first["items"][1]["id"]
    assert contents(get(server, "/test", client, limit=1)) == ["m2"]  # the same client goes on


def http_get_qos(qos, path, topic_name, limit):
    """http-get with the given qos and messagesLimitCount: the messages, then the commits."""

    def check(server, tansu, api_id, definition, topics, client):
        assert entrypoint(definition, "http-get")["qos"] == qos
        topic = topics[topic_name]
        produce(tansu.bootstrap, topic, *[f"m{i}" for i in range(limit + 1)])
        first = get(server, path, client)
        assert contents(first) == [f"m{i}" for i in range(limit)]
        assert first["items"][0]["metadata"]["topic"] == topic
        # at-most-once commits before the response is written, at-least-once after: both
        # leave the group's offset after the last message returned.
        assert committed(tansu.bootstrap, api_id, client, topic, limit) == limit
        assert contents(next_nonempty(server, path, client)) == [f"m{limit}"]
        assert committed(tansu.bootstrap, api_id, client, topic, limit + 1) == limit + 1

    return check


def qos_fixture(qos, path, topic_name, limit):
    """messages/kafka/kafka-endpoint-qos-*.json (their webhook listener: test_webhook_fixtures): http-get and sse with
    the qos given and, for auto and none, a websocket that publishes to the topic."""

    def check(server, tansu, api_id, definition, topics, client):
        topic = topics[topic_name]
        for kind in ("http-get", "sse") + (("websocket",) if qos in ("auto", "none") else ()):
            assert entrypoint(definition, kind)["qos"] == qos
        if qos in ("at-least-once", "at-most-once"):  # messagesLimitCount 1
            http_get_qos(qos, path, topic_name, limit)(server, tansu, api_id, definition, topics, client)
            assert [e["data"] for e in sse_messages(server, path, client + "-sse", 2)] == ["m0", "m1"]
        elif qos == "auto":  # messagesLimitCount 10, no headers/metadata in the payload
            produce(tansu.bootstrap, topic, "m0")
            ws = ws_connect(server, path, client + "-ws")
            try:
                assert ws.recv() == "m0"
                ws.send("from the socket")  # published to the topic, consumed back
                assert ws.recv() == "from the socket"
            finally:
                ws.close()
            body = get(server, path, client, limit=2)
            assert contents(body) == ["m0", "from the socket"]
            assert set(body["items"][0]) == {"id", "content"}  # headersInPayload/metadataInPayload false
            assert [e["data"] for e in sse_messages(server, path, client + "-sse", 2)] == ["m0", "from the socket"]
        else:  # none: no group, no commit; each subscriber gets what is produced while it is there
            produce(tansu.bootstrap, topic, "before")
            with requests.get(
                server.gateway + path,
                stream=True,
                timeout=30,
                headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": client + "-sse"},
            ) as sse:
                assert read_sse(sse, 1) == [{"retry": "5000"}]  # subscribed from here on
                ws = ws_connect(server, path, client + "-ws")
                try:
                    ws.send("from the socket")  # read after the socket subscribed: comes back
                    assert ws.recv() == "from the socket"
                    produce(tansu.bootstrap, topic, "m1")
                    assert ws.recv() == "m1"
                finally:
                    ws.close()
                assert [e["data"] for e in read_messages(sse, 2, timeout=10)] == ["from the socket", "m1"]
            assert contents(get_while_producing(server, path, client, tansu.bootstrap, topic)) == ["later"]

    return check


def get_while_producing(server, path, client, bootstrap, topic):
    """A GET (limit=1) answered by what is produced while it waits (qos none reads from the end)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, server, path, client, limit=1)
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        try:
            while not pending.done():
                producer.send(topic, value=b"later").get(10)
                time.sleep(0.2)
        finally:
            producer.close()
        return pending.result()


def http_post_plain(server, tansu, api_id, definition, topics, client):
    """http-post, requestHeadersToMessage: the body and the request headers land on the topic."""
    response = requests.post(
        server.gateway + "/test", data=b"posted", timeout=15, headers={"X-Order": "o-1", "Content-Type": "text/plain"}
    )
    assert response.status_code == 202, response.text
    [record] = consume(tansu.bootstrap, topics["test-topic"], 1)  # and nothing else
    assert record.value == b"posted"
    headers = {name: value for name, value in record.headers}
    assert headers["x-order"] == b"o-1" and headers["content-type"] == b"text/plain"


def sse_plain(server, tansu, api_id, definition, topics, client):
    produce(tansu.bootstrap, topics["test-topic"], "m0", "m1", "m2")
    events = sse_messages(server, "/test", client, 3)
    assert [e["data"] for e in events] == ["m0", "m1", "m2"]
    assert all(e.get("id") for e in events)  # resumable by Last-Event-ID


def websocket_check(path, publisher, subscriber):
    def check(server, tansu, api_id, definition, topics, client):
        ws_entrypoint = entrypoint(definition, "websocket")
        config = ws_entrypoint["configuration"]
        assert (config["publisher"]["enabled"], config["subscriber"]["enabled"]) == (publisher, subscriber)
        none = ws_entrypoint.get("qos") == "none"
        topic = topics["test-topic"]
        if subscriber and not none:
            produce(tansu.bootstrap, topic, "m0", "m1")  # autoOffsetReset earliest: read from the start
        ws = ws_connect(server, path, client)
        probes = 0
        try:
            if subscriber and none:  # reads from the end: produce once the socket surely subscribed
                probes = wait_subscribed(ws, tansu.bootstrap, topic)
                produce(tansu.bootstrap, topic, "m0", "m1")
            if subscriber:
                received = []
                while len(received) < 2:
                    frame = ws.recv()
                    if frame != "probe":
                        received.append(frame)
                assert received == ["m0", "m1"]
            ws.send("from the socket")
            if publisher and subscriber:
                assert ws.recv() == "from the socket"  # published, consumed back
            elif subscriber:
                assert_nothing_more(ws)  # a frame from a client that may not publish is dropped
        finally:
            ws.close()
        expected = (
            ["probe"] * probes + (["m0", "m1"] if subscriber else []) + (["from the socket"] if publisher else [])
        )
        assert [r.value.decode() for r in consume(tansu.bootstrap, topic, len(expected))] == expected

    return check


def wait_subscribed(ws, bootstrap, topic, timeout=15):
    """Produce `probe` until the socket gets one (then it is subscribed); how many were produced."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    ws.settimeout(0.2)
    try:
        deadline = time.monotonic() + timeout
        for probes in itertools.count(1):
            producer.send(topic, value=b"probe").get(10)
            try:
                assert ws.recv() == "probe"
                return probes
            except websocket.WebSocketTimeoutException:
                assert time.monotonic() < deadline, "the socket got nothing"
    finally:
        ws.settimeout(15)
        producer.close()


def unreachable_get(server, tansu, api_id, definition, topics, client):
    """The -failure fixture with a closed port for `wrong`: a clear error, not a hang or a 500."""
    started = time.monotonic()
    response = requests.get(
        server.gateway + "/test-failure", timeout=30, headers={**JSON, "X-Gravitee-Client-Identifier": client}
    )
    assert time.monotonic() - started < 15
    assert response.status_code == 502, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    bootstrap = next(kafka_endpoints(definition))[1]["configuration"]["bootstrapServers"]
    assert response.json() == {"message": f"The endpoint failed: the Kafka brokers at {bootstrap} cannot be reached"}


def unreachable_post(server, tansu, api_id, definition, topics, client):
    started = time.monotonic()
    response = requests.post(server.gateway + "/http-post-entrypoint-kafka-endpoint-failure", data=b"lost", timeout=30)
    assert time.monotonic() - started < 15
    assert response.status_code == 502, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    bootstrap = next(kafka_endpoints(definition))[1]["configuration"]["bootstrapServers"]
    assert response.json() == {"message": f"The endpoint failed: the Kafka brokers at {bootstrap} cannot be reached"}


def refused_by_the_policy(server, tansu, api_id, definition, topics, client):
    """http-post-...-failure.json: the test kit's interrupt-message-request-phase refuses every
    message (412), as text unless the client accepts JSON; nothing is produced."""
    url = server.gateway + "/http-post-entrypoint-kafka-endpoint-failure"
    assert_refused_by_the_test_kit(url)
    assert consume(tansu.bootstrap, topics["test-topic"], 0, settle=2) == []


def fresh_topic(bootstrap):
    """A topic no fixture names, created here: where only an override can send a message."""
    name = "kf-override-" + uuid.uuid4().hex
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return name


def override_topic(server, tansu, api_id, definition, topics, client):
    """http-post-...-override-topic.json: its flow's request phase sets gravitee.attribute.kafka.topics
    from X-Topic-Override-Request-Level, its publish phase from X-Topic-Override-Message-Level (the
    message's attribute wins); with neither, the configured topic. A name that is no topic: 400.
    Posted to /test as Gravitee's own test does (see test_override_topic_flow_runs_on_the_context_path_itself)."""
    configured = topics["test-topic"]
    request_level, message_level = fresh_topic(tansu.bootstrap), fresh_topic(tansu.bootstrap)

    def post(body, **headers):
        return requests.post(server.gateway + "/test", data=body, timeout=15, headers=headers)

    for body, headers in (
        (b"configured", {}),
        (b"request-level", {"X-Topic-Override-Request-Level": request_level}),
        (b"message-level", {"X-Topic-Override-Message-Level": message_level}),
        (
            b"both",
            {"X-Topic-Override-Request-Level": request_level, "X-Topic-Override-Message-Level": message_level},
        ),
    ):
        response = post(body, **headers)
        assert response.status_code == 202, (body, response.text)
    for header in ("X-Topic-Override-Request-Level", "X-Topic-Override-Message-Level"):
        bad = post(b"bad", **{header: "bad topic!"})
        assert bad.status_code == 400, bad.text
        assert bad.json()["message"] == "The topic 'bad topic!' chosen for the message is not a Kafka topic name"

    def landed(topic, count):
        return [r.value for r in consume(tansu.bootstrap, topic, count, settle=1)]

    assert landed(configured, 1) == [b"configured"]
    assert landed(request_level, 1) == [b"request-level"]
    assert landed(message_level, 2) == [b"message-level", b"both"]


def closed_port(definition):
    for _, endpoint in kafka_endpoints(definition):
        endpoint["configuration"]["bootstrapServers"] = f"127.0.0.1:{free_port()}"


def without_flows(definition):
    definition["flows"] = []


def first_closed(definition):
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["bootstrapServers"] = f"127.0.0.1:{free_port()}"


def failover_to_the_second_endpoint(server, tansu, api_id, definition, topics, client):
    """http/failover/kafka-two-endpoints.json, its first endpoint's `http://localhost:9098` made a
    closed port: what the balancer gives to it is retried on the second one (Tansu) once the first
    fails to connect: a post lands on the topic; an http-get returns what is there."""
    response = requests.post(server.gateway + "/test", data=b"posted", timeout=30)
    assert response.status_code == 202, response.text
    assert [r.value for r in consume(tansu.bootstrap, topics["test-topic"], 1)] == [b"posted"]
    produce(tansu.bootstrap, topics["test-topic"], "m1")
    assert contents(get(server, "/test", client)) == ["posted", "m1"]


# id -> (fixture, changes to the rewritten copy, check). The ids are the fixture paths; a
# `+change` suffix marks a derived variant.
BEHAVIOUR = {
    "messages/http-get/http-get-entrypoint-kafka-endpoint.json": ((), http_get_plain),
    "messages/http-get/http-get-entrypoint-kafka-endpoint-at-least-once.json": (
        (),
        http_get_qos("at-least-once", "/test-at-least-once", "test-topic", 2),
    ),
    "messages/http-get/http-get-entrypoint-kafka-endpoint-at-most-once.json": (
        (),
        http_get_qos("at-most-once", "/test-at-most-once", "test-topic", 2),
    ),
    "messages/http-post/http-post-entrypoint-kafka-endpoint.json": ((), http_post_plain),
    "messages/http-post/http-post-entrypoint-kafka-endpoint-failure.json": ((), refused_by_the_policy),
    "messages/http-post/http-post-entrypoint-kafka-endpoint-override-topic.json": ((), override_topic),
    "messages/sse/sse-entrypoint-kafka-endpoint.json": ((), sse_plain),
    "messages/websocket/websocket-entrypoint-kafka-endpoint-publisher-subscriber.json": (
        (),
        websocket_check("/test", True, True),
    ),
    "messages/websocket/websocket-entrypoint-kafka-endpoint-publisher.json": (
        (),
        websocket_check("/test", True, False),
    ),
    "messages/websocket/websocket-entrypoint-kafka-endpoint-subscriber.json": (
        (),
        websocket_check("/test-auto", False, True),
    ),
    "messages/websocket/websocket-entrypoint-kafka-endpoint-subscriber-none.json": (
        (),
        websocket_check("/test-none", False, True),
    ),
    # The qos fixtures' HTTP listener (their webhook listener: test_webhook_fixtures).
    "messages/kafka/kafka-endpoint-qos-at-least-once.json": (
        (),
        qos_fixture("at-least-once", "/test-qos-at-least-once", "test-topic-qos-at-least-once", 1),
    ),
    "messages/kafka/kafka-endpoint-qos-at-most-once.json": (
        (),
        qos_fixture("at-most-once", "/test-qos-at-most-once", "test-topic-qos-at-most-once", 1),
    ),
    "messages/kafka/kafka-endpoint-qos-auto.json": (
        (),
        qos_fixture("auto", "/test-qos-auto", "test-topic-qos-auto", 10),
    ),
    "messages/kafka/kafka-endpoint-qos-none.json": (
        (),
        qos_fixture("none", "/test-qos-none", "test-topic-qos-none", 10),
    ),
    "http/failover/kafka-two-endpoints.json+first-closed": ((first_closed,), failover_to_the_second_endpoint),
    # Derived: the -failure fixtures with a broker that cannot be reached (a closed port).
    "messages/http-get/http-get-entrypoint-kafka-endpoint-failure.json+closed-port": ((closed_port,), unreachable_get),
    "messages/http-post/http-post-entrypoint-kafka-endpoint-failure.json+closed-port": (
        (closed_port, without_flows),
        unreachable_post,
    ),
}


@pytest.mark.parametrize("case", sorted(BEHAVIOUR))
def test_fixture_deploys_and_behaves_as_named(server, tansu, new_topic, client, case):
    relative = case.partition("+")[0]
    changes, check = BEHAVIOUR[case]
    definition, topics = rewrite_kafka(load(relative), tansu.bootstrap, new_topic)
    for change in changes:
        change(definition)
    api_id = server.deploy_api(definition)
    check(server, tansu, api_id, definition, topics, client)


def test_every_kafka_fixture_is_covered():
    covered = set(BLOCKED) | {case.partition("+")[0] for case, (changes, _) in BEHAVIOUR.items() if not changes}
    assert sorted(covered) == kafka_fixture_files()
    assert not set(BLOCKED) & {case for case, (changes, _) in BEHAVIOUR.items() if not changes}


# Gravitee's own test posts to /test: a message API's flows are chosen by channel and condition, its
# http selector (`/:newTopic`, which `/` would not match) is not applied (and the import says so).
def test_override_topic_flow_runs_on_the_context_path_itself(server, tansu, new_topic):
    relative = "messages/http-post/http-post-entrypoint-kafka-endpoint-override-topic.json"
    definition = rewrite_kafka(load(relative), tansu.bootstrap, new_topic)[0]
    server.deploy_api(definition)
    chosen = fresh_topic(tansu.bootstrap)
    response = requests.post(
        server.gateway + "/test", data=b"posted", timeout=15, headers={"X-Topic-Override-Request-Level": chosen}
    )
    assert response.status_code == 202, response.text
    assert [r.value for r in consume(tansu.bootstrap, chosen, 1, timeout=3)] == [b"posted"]
