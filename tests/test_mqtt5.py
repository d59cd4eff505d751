"""MQTT 5 endpoint end to end against the machine's Mosquitto (127.0.0.1:1883): every entrypoint,
user properties and metadata, retained messages, message expiry, sessions, qos none fan-out.
Every test has topics of its own; the broker is shared with others."""

import json
import time
import uuid

import pytest
import requests

from support.apis import mqtt_api
from support.gatehouse import free_port
from support.message_clients import JSON, clients_for
from support.mosquitto import Collector, publish, shared_broker, unique_topic
from support.streams import read_sse, sse_messages

poll, post, sse, ws_connect = clients_for("/mqtt")


@pytest.fixture
def broker():
    return shared_broker()


@pytest.fixture
def server(shared_server):
    return shared_server


def test_post_and_websocket_publish_http_get_sse_websocket_consume_with_user_properties(server, broker):
    topic = unique_topic("e2e")
    server.deploy_api(mqtt_api(broker, topic, get_count=3))
    direct = Collector(broker, topic)
    stream = sse(server)
    ws = ws_connect(server)
    try:
        poll(server, client="poller")  # the poller's subscription exists
        post(server, b"order 1", **{"X-Trace": "t-1", "Content-Type": "text/plain"})
        ws.send("from the socket")
        # The socket's frame is published when the gateway reads it: wait for it to reach the broker
        # before the direct publish, so that the order below is the order of the sends.
        received = direct.get(2)
        publish(broker, topic, b"direct", user_properties=[("origin", "paho"), ("origin", "twice")])

        # On the broker: the body, the request headers as user properties, the content type.
        received += direct.get(1)
        assert [m.payload for m in received] == [b"order 1", b"from the socket", b"direct"]
        first = received[0]
        assert ("x-trace", "t-1") in first.properties.UserProperty
        assert first.properties.ContentType == "text/plain" and first.qos == 1

        body = poll(server, client="poller")
        assert [i["content"] for i in body["items"]] == ["order 1", "from the socket", "direct"]
        assert body["items"][0]["headers"]["x-trace"] == ["t-1"]
        assert body["items"][2]["headers"] == {"origin": ["paho", "twice"]}  # user properties -> headers
        assert body["items"][0]["metadata"] == {
            "topic": topic,
            "qos": "1",
            "retain": False,
            "contentType": "text/plain",
        }
        assert "id" not in body["items"][0]  # MQTT has no position to resume from

        events = sse_messages(stream, 3)
        assert [e["data"] for e in events] == ["order 1", "from the socket", "direct"]
        assert "origin: twice" in events[2]["comments"]
        assert [ws.recv() for _ in range(3)] == ["order 1", "from the socket", "direct"]
    finally:
        ws.close()
        stream.close()
        direct.close()


def test_wildcard_consumer_topic_gets_every_matching_topic(server, broker):
    base = unique_topic("wild")
    api = mqtt_api(broker, f"{base}/eu/temp", consumer_topic=f"{base}/+/temp", get_count=2)
    server.deploy_api(api)
    poll(server, client="wild")
    publish(broker, f"{base}/us/temp", b"us")
    publish(broker, f"{base}/us/humidity", b"not this one")
    post(server, b"eu")
    items = poll(server, client="wild")["items"]
    assert sorted((i["content"], i["metadata"]["topic"]) for i in items) == [
        ("eu", f"{base}/eu/temp"),
        ("us", f"{base}/us/temp"),
    ]


def test_producer_settings_reach_the_broker_retained_expiry_response_topic(server, broker):
    topic = unique_topic("retained")
    server.deploy_api(
        mqtt_api(
            broker,
            topic,
            producer={"retained": True, "messageExpiryInterval": 120, "responseTopic": topic + "/replies"},
        )
    )
    post(server, b"last known value")
    later = Collector(broker, topic)  # subscribes after the publish: gets it only as retained
    try:
        [message] = later.get(1)
        assert message.payload == b"last known value" and message.retain
        assert message.properties.ResponseTopic == topic + "/replies"
        assert 0 < message.properties.MessageExpiryInterval <= 120
    finally:
        later.close()
    body = poll(server, client="late", get_count=1)  # the gateway's own late subscriber too
    assert [i["content"] for i in body["items"]] == ["last known value"]
    assert body["items"][0]["metadata"]["retain"] is True
    assert body["items"][0]["metadata"]["responseTopic"] == topic + "/replies"
    publish(broker, topic, b"", retain=True)  # clears the retained message


def test_message_expiry_drops_an_expired_message(server, broker):
    topic = unique_topic("expiry")
    # 3 s: a subscriber connecting on a loaded machine still finds it (with 1 s, once in CI, it did not).
    server.deploy_api(mqtt_api(broker, topic, producer={"retained": True, "messageExpiryInterval": 3}))
    post(server, b"short-lived")
    posted = time.monotonic()
    fresh = Collector(broker, topic)
    try:
        assert [m.payload for m in fresh.get(1)] == [b"short-lived"]  # retained while it lives
    finally:
        fresh.close()
    time.sleep(max(0.0, posted + 3.2 - time.monotonic()))  # the expiry itself is tested: past it, the broker drops it
    late = Collector(broker, topic)
    try:
        assert late.nothing_within(0.5)
    finally:
        late.close()
    assert poll(server, client="after-expiry")["items"] == []


@pytest.mark.parametrize("clean_start", [False, True])
def test_session_expiry_and_clean_start_decide_what_the_broker_kept_while_the_subscriber_was_away(
    server, broker, clean_start
):
    topic = unique_topic("session")
    shared = {"sessionExpiryInterval": 60, "cleanStart": clean_start}
    server.deploy_api(mqtt_api(broker, topic, shared=shared, get_count=2))
    client = "session-" + uuid.uuid4().hex[:8]
    assert poll(server, client=client)["items"] == []  # the session (and its subscription) exists
    # With a session expiry the gateway disconnects when its client leaves: the broker holds on.
    publish(broker, topic, b"while away 1")
    publish(broker, topic, b"while away 2")
    contents = [i["content"] for i in poll(server, client=client)["items"]]
    if clean_start:
        assert contents == []  # the next CONNECT discarded the session and what it held
    else:
        assert contents == ["while away 1", "while away 2"]


def test_at_least_once_gives_an_unwritten_message_to_the_next_poll(server, broker):
    topic = unique_topic("alo")
    server.deploy_api(mqtt_api(broker, topic, qos="at-least-once", get_count=1))
    poll(server, client="alo")
    for i in range(3):
        publish(broker, topic, f"m{i}".encode())
    got = [poll(server, client="alo")["items"][0]["content"] for _ in range(3)]
    assert got == ["m0", "m1", "m2"]


def test_qos_none_fans_out_every_message_to_every_client(server, broker):
    topic = unique_topic("fanout")
    server.deploy_api(mqtt_api(broker, topic, qos="none"))
    streams = [sse(server, client="same-for-all") for _ in range(3)]
    ws = ws_connect(server, client="same-for-all")
    try:
        publish(broker, topic, b"one")  # proves the socket subscribed before the rest goes out
        assert ws.recv() == "one"
        for i in range(5):
            post(server, f"m{i}".encode())
        expected = ["one"] + [f"m{i}" for i in range(5)]
        for stream in streams:
            assert [e["data"] for e in sse_messages(stream, 6)] == expected
        assert [ws.recv() for _ in range(5)] == expected[1:]
    finally:
        ws.close()
        for stream in streams:
            stream.close()


def test_unreachable_broker_is_a_clear_error_for_every_entrypoint(server):
    port = free_port()
    server.deploy_api(mqtt_api(("127.0.0.1", port), unique_topic("down")))
    expected = f"The endpoint failed: the MQTT broker at 127.0.0.1:{port} cannot be reached: connection refused"
    response = requests.get(server.gateway + "/mqtt", headers=JSON, timeout=15)
    assert response.status_code == 502 and response.json() == {"message": expected}
    response = requests.post(server.gateway + "/mqtt", data=b"x", timeout=15)
    assert response.status_code == 502 and response.json() == {"message": expected}
    with requests.get(server.gateway + "/mqtt", stream=True, timeout=15, headers={"Accept": "text/event-stream"}) as s:
        events = read_sse(s, 2)
    assert events[1] == {"event": "error", "data": expected.removeprefix("The endpoint failed: ")}
    assert json.dumps(events).count("Traceback") == 0
