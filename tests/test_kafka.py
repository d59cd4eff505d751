"""Kafka endpoint against a real Kafka-protocol broker (Tansu, started by the test suite)."""

import base64
import re
import time
from unittest.mock import ANY

import pytest
import requests
import websocket
from kafka import KafkaConsumer, TopicPartition

from gateway_runtime.endpoints.kafka import SPEC
from gateway_runtime.http import client_identifier
from gateway_runtime.messages import ClientContext, Message
from support.apis import kafka_api
from support.gatehouse import free_port
from support.kafka import produce
from support.portal import portal_login
from support.streams import next_message, read_sse, sse_messages
from support.tansu import Tansu

JSON = {"Accept": "application/json"}


def deploy(server, definition):
    api_id = server.import_api(definition)
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    return api_id


def poll(server, path="/orders", client="a", **params):
    response = requests.get(
        server.gateway + path, params=params, timeout=30, headers={**JSON, "X-Gravitee-Client-Identifier": client}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_post_then_get_with_headers_keys_metadata_and_cursor(server, tansu, new_topic):
    topic = new_topic()
    deploy(server, kafka_api(tansu.bootstrap, topic, get_count=3))
    for i in range(3):
        posted = requests.post(
            server.gateway + "/orders", data=f"order {i}".encode(), timeout=10, headers={"X-Trace": f"t{i}"}
        )
        assert posted.status_code == 202, posted.text
    produce(tansu.bootstrap, topic, b"keyed", key=b"customer-7", headers=[("origin", b"direct")])

    first = poll(server, limit=3)
    assert [item["content"] for item in first["items"]] == ["order 0", "order 1", "order 2"]
    assert first["items"][0]["headers"]["x-trace"] == ["t0"]
    meta = first["items"][0]["metadata"]
    assert meta["topic"] == topic and meta["offset"] == "0" and int(meta["sourceTimestamp"]) > 1_700_000_000_000
    cursor = first["pagination"]["nextCursor"]
    assert base64.b64decode(cursor).decode() == f"{topic}@{meta['partition']}#2"

    rest = poll(server, limit=1)  # the same client goes on where it stopped
    assert [item["content"] for item in rest["items"]] == ["keyed"]
    assert rest["items"][0]["metadata"]["key"] == "customer-7"
    assert rest["items"][0]["headers"] == {"origin": ["direct"]}

    again = poll(server, client="b", cursor=first["items"][0]["id"], limit=2)  # resume after message 0
    assert [item["content"] for item in again["items"]] == ["order 1", "order 2"]


def test_sse_resumes_exactly_after_last_event_id_and_websocket_round_trips(server, tansu, new_topic):
    topic = new_topic()
    deploy(server, kafka_api(tansu.bootstrap, topic))
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(5)], key=b"same-partition")
    with requests.get(
        server.gateway + "/orders",
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "sse-1"},
        stream=True,
        timeout=20,
    ) as sse:
        events = sse_messages(sse, 3)
    assert [e["data"] for e in events] == ["m0", "m1", "m2"]
    with requests.get(
        server.gateway + "/orders",
        headers={
            "Accept": "text/event-stream",
            "Last-Event-ID": events[1]["id"],
            "X-Gravitee-Client-Identifier": "sse-2",
        },
        stream=True,
        timeout=20,
    ) as sse:
        resumed = sse_messages(sse, 2)
    assert [e["data"] for e in resumed] == ["m2", "m3"]

    ws = websocket.create_connection(
        server.gateway.replace("http", "ws") + "/orders", timeout=15, header=["X-Gravitee-Client-Identifier: ws-1"]
    )
    try:
        assert [ws.recv() for _ in range(5)] == [f"m{i}" for i in range(5)]
        ws.send("from the socket")
        assert ws.recv() == "from the socket"  # published to the topic, consumed back
    finally:
        ws.close()


def test_clients_with_different_ids_each_get_every_message_same_id_share(server, tansu, new_topic):
    topic = new_topic(partitions=4)
    deploy(server, kafka_api(tansu.bootstrap, topic, get_count=20, get_duration_ms=6000))
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(8)])  # spread over partitions
    a = [i["content"] for i in poll(server, client="one")["items"]]
    b = [i["content"] for i in poll(server, client="two")["items"]]
    assert sorted(a) == sorted(b) == [f"m{i}" for i in range(8)]
    assert poll(server, client="one", messagesLimitDurationMs=500)["items"] == []  # nothing twice


@pytest.mark.parametrize("reset", ["earliest", "latest", "none"])
def test_auto_offset_reset(server, tansu, new_topic, reset):
    topic = new_topic()
    produce(tansu.bootstrap, topic, b"before")
    deploy(
        server,
        kafka_api(tansu.bootstrap, topic, consumer={"autoOffsetReset": reset}, get_count=1, get_duration_ms=6000),
    )
    if reset == "none":
        body = poll(server, client="fresh")
        assert body["items"] == [] and "autoOffsetReset is none" in body["error"]["message"]
        return
    if reset == "latest":
        assert poll(server, client="fresh")["items"] == []  # joins the group, positioned at the end
        produce(tansu.bootstrap, topic, b"after")
        assert [i["content"] for i in poll(server, client="fresh")["items"]] == ["after"]
    else:
        assert [i["content"] for i in poll(server, client="fresh")["items"]] == ["before"]


def test_topic_pattern(server, tansu, new_topic):
    eu, us, other = new_topic(), new_topic(), "elsewhere-" + new_topic()
    for topic in (eu, us, other):
        produce(tansu.bootstrap, topic, topic.encode())
    pattern = eu.rsplit("-", 1)[0] + "-[0-9]+"
    # The poll ends at the 2 messages; its long limit only leaves room for the pattern's metadata
    # lookup and the group join on a busy machine.
    deploy(
        server,
        kafka_api(
            tansu.bootstrap,
            eu,
            producer=False,
            get_count=2,
            get_duration_ms=16000,
            consumer={"topics": None, "topicPattern": pattern},
        ),
    )
    assert sorted(i["content"] for i in poll(server)["items"]) == sorted([eu, us])


def test_at_least_once_commits_what_was_written_and_a_returning_client_goes_on_from_there(
    start_server, tansu, new_topic
):
    server = start_server()
    topic = new_topic()
    api_id = deploy(server, kafka_api(tansu.bootstrap, topic, qos="at-least-once", get_count=2))
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(4)], key=b"one-partition")
    first = poll(server, client="alo")
    assert [i["content"] for i in first["items"]] == ["m0", "m1"]

    group = api_id + "-" + client_identifier({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": "alo"})
    partition = TopicPartition(topic, int(first["items"][0]["metadata"]["partition"]))
    deadline = time.monotonic() + 5
    while committed(tansu, group, partition) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the commit follows the write of the response
    assert committed(tansu, group, partition) == 2

    server.stop()  # its consumers go with it: the client comes back to a new gateway process
    again = start_server()
    again.wait_serving(api_id, 1)
    assert [i["content"] for i in poll(again, client="alo")["items"]] == ["m2", "m3"]


def committed(tansu, group, partition):
    consumer = KafkaConsumer(bootstrap_servers=tansu.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(partition)
    finally:
        consumer.close()


def test_qos_none_fans_every_record_out_to_every_client(server, tansu, new_topic):
    topic = new_topic(partitions=4)
    deploy(server, kafka_api(tansu.bootstrap, topic, qos="none"))
    streams = [
        requests.get(
            server.gateway + "/orders",
            stream=True,
            timeout=20,
            headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "same-for-all"},
        )
        for _ in range(3)
    ]
    for stream in streams:
        assert read_sse(stream, 1) == [{"retry": "5000"}]  # subscribed: what comes now is delivered
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(6)])
    for stream in streams:
        received = read_sse(stream, 6, timeout=10)
        assert sorted(e["data"] for e in received) == [f"m{i}" for i in range(6)]
        stream.close()


@pytest.mark.slow  # restarts the broker
def test_broker_restart_mid_stream_then_every_new_message_arrives_without_redeploy(server, tmp_path):
    broker = Tansu(tmp_path).start()  # a broker of its own: this test kills it
    try:
        definition = kafka_api(broker.bootstrap, "restarts")
        definition["listeners"][0]["entrypoints"][2]["configuration"] = {"heartbeatIntervalInMs": 2000}
        deploy(server, definition)
        stream = requests.get(
            server.gateway + "/orders",
            stream=True,
            timeout=60,
            headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "restart"},
        )
        produce(broker.bootstrap, "restarts", b"before")
        assert next_message(stream)["data"] == "before"  # after heartbeats while the group forms

        broker.stop()
        broker.start()  # same port, empty: the topic starts again at offset 0
        # The client keeps waiting (a heartbeat: the gateway polled the new broker and found nothing),
        # or is told of the failure; either way the broker is back for the gateway from then on.
        assert read_sse(stream, 1, timeout=20)[0] in ({"comments": [""]}, {"event": "error", "data": ANY})
        produce(broker.bootstrap, "restarts", *[f"after {i}".encode() for i in range(3)], key=b"one-partition")
        received = []
        deadline = time.monotonic() + 45
        while len(set(received)) < 3 and time.monotonic() < deadline:
            events = read_sse(stream, 1, timeout=deadline - time.monotonic())
            if not events:  # the stream ended after an error event: reconnect, as an SSE client does
                stream.close()
                stream = requests.get(
                    server.gateway + "/orders",
                    stream=True,
                    timeout=60,
                    headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "restart"},
                )
                continue
            received += [e["data"] for e in events if e.get("event") == "message"]
        stream.close()
        # qos auto: after a failure a message may come twice (offsets committed periodically), none is lost
        assert list(dict.fromkeys(received)) == ["after 0", "after 1", "after 2"]
    finally:
        broker.stop()


def test_at_most_once_commits_before_delivery_so_nothing_comes_twice(start_server, tansu, new_topic):
    server = start_server()
    topic = new_topic()
    api_id = deploy(server, kafka_api(tansu.bootstrap, topic, qos="at-most-once", get_count=2))
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(4)])
    first = poll(server, client="amo")
    assert [i["content"] for i in first["items"]] == ["m0", "m1"]
    group = api_id + "-" + client_identifier({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": "amo"})
    assert committed(tansu, group, TopicPartition(topic, 0)) == 2  # already when the client got them
    server.stop()
    again = start_server()
    again.wait_serving(api_id, 1)
    assert [i["content"] for i in poll(again, client="amo")["items"]] == ["m2", "m3"]


def test_broker_down_at_deploy_is_visible_in_the_portal_and_to_clients(server, tansu, new_topic):
    closed = f"127.0.0.1:{free_port()}"
    api_id = deploy(server, kafka_api(closed, new_topic()))  # deploys all the same
    started = time.monotonic()
    polled = requests.get(server.gateway + "/orders", headers=JSON, timeout=20)
    assert polled.status_code == 502 and time.monotonic() - started < 10
    assert polled.json()["message"] == f"The endpoint failed: the Kafka brokers at {closed} cannot be reached"
    with requests.get(
        server.gateway + "/orders", headers={"Accept": "text/event-stream"}, stream=True, timeout=20
    ) as sse:
        assert read_sse(sse, 2)[1] == {"event": "error", "data": f"the Kafka brokers at {closed} cannot be reached"}
    posted = requests.post(server.gateway + "/orders", data=b"x", timeout=20)
    assert posted.status_code == 502 and "cannot be reached" in posted.json()["message"]

    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    status_url = re.search(r'hx-get="([^"]+/_status)"', page.text).group(1)
    status = browser.get(server.portal + status_url).text
    assert "unreachable" in status and closed in status


def test_two_clients_with_the_same_identifier_share_the_messages(server, tansu, new_topic):
    topic = new_topic(partitions=4)
    definition = kafka_api(tansu.bootstrap, topic)
    definition["listeners"][0]["entrypoints"][2]["configuration"] = {"heartbeatIntervalInMs": 2000}
    deploy(server, definition)
    headers = {"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "shared"}
    streams = [requests.get(server.gateway + "/orders", headers=headers, stream=True, timeout=60) for _ in range(2)]
    for stream in streams:  # each is in the group once it idles with heartbeats after the join
        for _ in range(3):
            read_sse(stream, 1, timeout=10)
    produce(tansu.bootstrap, topic, *[f"m{i}".encode() for i in range(12)])
    got = [[], []]
    deadline = time.monotonic() + 20
    while len(got[0]) + len(got[1]) < 12 and time.monotonic() < deadline:
        for i, stream in enumerate(streams):
            got[i] += [e["data"] for e in read_sse(stream, 1, timeout=1) if e.get("event") == "message"]
    for stream in streams:
        stream.close()
    assert sorted(got[0] + got[1]) == sorted(f"m{i}" for i in range(12))  # every message, once
    assert got[0] and got[1]  # both took a share


def test_consumers_and_producer_are_closed_on_undeploy(server, tansu, new_topic):
    topic = new_topic()
    api_id = deploy(server, kafka_api(tansu.bootstrap, topic, get_count=1, get_duration_ms=4000))
    produce(tansu.bootstrap, topic, b"one")
    assert requests.post(server.gateway + "/orders", data=b"two", timeout=10).status_code == 202
    for client in ("c1", "c2", "c3"):
        poll(server, client=client)
    # the producer and the consumers still pooled (one that waited 5 s idle has left already)
    assert server.connections_to(tansu.port) >= 2
    assert server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
    deadline = time.monotonic() + 10
    while (held := server.connections_to(tansu.port)) or (stats := server.runtime())["apis"] or stats["retiring"]:
        stats = server.runtime()
        assert time.monotonic() < deadline, f"still open after stop: {stats}, {held} connections to the broker"
        time.sleep(0.1)


def test_check_topic_existence_answers_404_for_a_missing_topic(server, tansu):
    deploy(
        server,
        kafka_api(tansu.bootstrap, "never-created-topic", producer=False, consumer={"checkTopicExistence": True}),
    )
    missing = requests.get(server.gateway + "/orders", headers=JSON, timeout=20)
    assert missing.status_code == 404
    assert missing.json() == {"message": "The endpoint failed: no such topic: never-created-topic"}
    sse = requests.get(server.gateway + "/orders", headers={"Accept": "text/event-stream"}, timeout=20)
    assert sse.status_code == 404 and "no such topic" in sse.json()["message"]


def test_confluent_schema_registry_header_is_removed_when_asked(server, tansu, new_topic):
    topic = new_topic()
    deploy(server, kafka_api(tansu.bootstrap, topic, consumer={"removeConfluentHeader": True}, get_count=2))
    produce(tansu.bootstrap, topic, b'\x00\x00\x00\x00\x07{"id": 1}', b"plain")
    assert [i["content"] for i in poll(server, client="confluent")["items"]] == ['{"id": 1}', "plain"]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_producer_compression(server, tansu, new_topic, compression):
    topic = new_topic()
    definition = kafka_api(tansu.bootstrap, topic, get_count=1)
    group = definition["endpointGroups"][0]["sharedConfiguration"]
    group["producer"]["compressionType"] = compression
    deploy(server, definition)
    body = ("compressible " * 200).encode()
    assert requests.post(server.gateway + "/orders", data=body, timeout=10).status_code == 202
    consumer = KafkaConsumer(
        topic, bootstrap_servers=tansu.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert record.value == body


def test_record_keys_round_trip_through_the_connector(tansu, new_topic):
    """A message's `key` attribute becomes the record key and comes back as `key` metadata.
    (Over HTTP a client cannot set it: in Gravitee a policy sets that attribute.)"""
    topic = new_topic()
    shared = {
        "producer": {"enabled": True, "topics": [topic]},
        "consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": "earliest"},
    }
    kafka = SPEC.connector(
        SPEC.configuration.with_defaults({"bootstrapServers": tansu.bootstrap}), SPEC.shared.with_defaults(shared)
    )
    context = ClientContext("api", "keys")
    try:
        kafka.publish(context, Message(b"keyed", headers={"h": ["1"]}, metadata={"key": "customer-9"}))
        subscription = kafka.subscribe(context)
        batch = []
        deadline = time.monotonic() + 15
        while not batch and time.monotonic() < deadline:
            batch = subscription.next_batch(1, 10)
        subscription.close()
        assert [(m.content, m.metadata["key"], m.headers) for m in batch] == [(b"keyed", "customer-9", {"h": ["1"]})]
    finally:
        kafka.close()


def test_an_at_least_once_subscription_closed_while_its_partitions_are_revoked_gives_its_consumer_back(
    tansu, new_topic
):
    """A rebalance can leave a consumer without partitions between a delivery and the end of the
    request (seen in CI under load). Closing must still give the consumer back: kept as the client's
    stream, never polled again, it would hold the group's rebalance, and the client would get nothing
    more. What was delivered and not acknowledged comes again from the committed offset."""
    topic = new_topic()
    shared = {"consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": "earliest"}}
    kafka = SPEC.connector(
        SPEC.configuration.with_defaults({"bootstrapServers": tansu.bootstrap}), SPEC.shared.with_defaults(shared)
    )
    context = ClientContext("api", "revoked", "at-least-once")
    try:
        produce(tansu.bootstrap, topic, "m0", "m1")
        subscription = kafka.subscribe(context)
        batch = []
        deadline = time.monotonic() + 15
        while len(batch) < 2 and time.monotonic() < deadline:
            batch += subscription.next_batch(1, 2 - len(batch))
        assert [m.content for m in batch] == [b"m0", b"m1"]
        subscription.acknowledge(batch[:1])  # m1 delivered, not written to the client
        subscription.consumer.unsubscribe()  # its partitions revoked, as a rebalance in progress leaves them
        subscription.close()
        assert context.client_id not in kafka.streams  # given back, not kept as a stream of the client
        subscription.consumer.subscribe(topics=[topic])  # the rebalance over: it takes its partitions again
        again = kafka.subscribe(ClientContext("api", "revoked", "at-least-once"))
        assert again.consumer is subscription.consumer  # the client's next poll has it, in its group
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = again.next_batch(1, 10)
        assert [m.content for m in got] == [b"m1"]  # from the committed offset: neither lost nor twice
        again.close()
    finally:
        kafka.close()
