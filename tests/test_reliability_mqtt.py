"""MQTT 5 reliability against a private Mosquitto (persistence on) that the tests stop and start:
what an at-least-once client counts when the broker restarts and when it reconnects itself, the
reconnect attempts honoured in either spelling, and the metadata a consumer reads.

The rule counted: at-least-once may deliver a message twice (duplicates are counted and printed),
but every http-post answered 202 arrives, the first arrival of each in the order of the posts."""

import threading
import time
import uuid

import pytest
import requests
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from support.gatehouse import launch
from support.mosquitto import PASSWORD, USER, Mosquitto, connect, unique_topic
from support.streams import next_message, read_sse

pytestmark = pytest.mark.slow  # stops and starts brokers

AUTH = {"security": {"auth": {"username": USER, "password": PASSWORD}}}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), tmp_path_factory.mktemp("certs"), persistence=True)
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("gw"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(server, broker):
    yield
    server.delete_all_apis()
    if broker.proc.poll() is not None:  # a test that failed during an outage
        broker.start()


def mqtt_api(broker, topic, qos="at-least-once", shared=None, endpoint_shared=None):
    """http-post publishes (QoS 1); sse and http-get consume with `qos`. `endpoint_shared`: the
    endpoint's own sharedConfigurationOverride (as the portal's form saves it) instead of the group's."""
    config = {
        "consumer": {"enabled": True, "topic": topic},
        "producer": {"enabled": True, "topic": topic},
        **AUTH,
        **(shared or {}),
    }
    endpoint = {
        "name": "broker",
        "type": "mqtt5",
        "inheritConfiguration": endpoint_shared is None,
        "configuration": {"serverHost": "127.0.0.1", "serverPort": broker.port},
    }
    if endpoint_shared is not None:
        endpoint["sharedConfigurationOverride"] = {**config, **endpoint_shared}
    return {
        "name": "MQTT reliability",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": "/mqtt"}],
                "entrypoints": [
                    {"type": "http-post", "qos": "auto"},
                    {"type": "sse", "qos": qos, "configuration": {"metadataAsComment": True}},
                    {
                        "type": "http-get",
                        "qos": qos,
                        "configuration": {
                            "messagesLimitCount": 1,
                            "messagesLimitDurationMs": 3000,
                            "metadataInPayload": True,
                        },
                    },
                ],
            }
        ],
        "endpointGroups": [{"name": "mqtt", "type": "mqtt5", "sharedConfiguration": config, "endpoints": [endpoint]}],
    }


class Reader(threading.Thread):
    """An SSE client that reconnects as a browser's EventSource does: the same client identifier,
    the Last-Event-ID of the last event it read. `drop()` makes it close its connection after the
    next message, whatever is still on its way, and reconnect at once."""

    def __init__(self, server, client):
        super().__init__(daemon=True)
        self.url, self.client = server.gateway + "/mqtt", client
        self.received, self.errors, self.connections = [], [], 0
        self.last_id = None
        self.subscribed = threading.Event()
        self.done = threading.Event()
        self.drops = 0

    def run(self):
        while not self.done.is_set():
            headers = {"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": self.client}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with requests.get(self.url, stream=True, headers=headers, timeout=(5, 15)) as stream:
                    self.connections += 1
                    self._read(stream)
            except requests.RequestException:
                pass
            self.done.wait(0.2 if self.errors else 0)

    def _read(self, stream):
        event = {}
        for line in stream.iter_lines(decode_unicode=True):
            if self.done.is_set():
                return
            if line:
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
                continue
            if "retry" in event:
                self.subscribed.set()
            elif event.get("event") == "error":
                self.errors.append(event["data"])
                return
            elif event.get("event") == "message":
                self.received.append(event["data"])
                self.last_id = event.get("id", self.last_id)
                if self.drops:
                    self.drops -= 1
                    return  # closes the connection with what is still unread
            event = {}

    def drop(self):
        self.drops += 1

    def wait_for(self, numbers, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not {str(n) for n in numbers} <= set(self.received):
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.join(20)


class Poster:
    """Posts 0, 1, 2, ... one at a time; what the gateway answered 202 is accepted, anything else
    (an error status, no answer) refused."""

    def __init__(self, server):
        self.url = server.gateway + "/mqtt"
        self.accepted, self.refused = [], []
        self.next = 0

    def post(self):
        number, self.next = self.next, self.next + 1
        try:
            status = requests.post(self.url, data=str(number).encode(), timeout=20).status_code
        except requests.RequestException:
            status = None
        (self.accepted if status == 202 else self.refused).append(number)
        return status


def count(poster, reader, label):
    """What a user counts: the accepted messages lost, the duplicates, and the order of first arrivals."""
    received = [int(data) for data in reader.received]
    lost = sorted(set(poster.accepted) - set(received))
    first = list(dict.fromkeys(received))
    twice = sorted({n for n in received if received.count(n) > 1})
    print(
        f"\n{label}: posted {poster.next}, accepted {len(poster.accepted)}, refused {len(poster.refused)}; "
        f"received {len(received)} ({len(received) - len(first)} duplicates: {twice}) over {reader.connections} "
        f"connections; lost {lost}; stream errors: {sorted(set(reader.errors))}"
    )
    return lost, first


@pytest.mark.parametrize("attempts", [3, 10])
def test_broker_restarted_while_messages_are_posted_loses_no_accepted_message(server, broker, attempts):
    """The broker is down 6 s or more (a post then waits up to 10 s for the publisher's connection):
    longer than 3 attempts' backoff (0.5 + 1 + 2 s: the gateway gives up, the stream ends, the
    client comes back), shorter than 10 attempts' (37.5 s: the stream stays)."""
    server.deploy_api(mqtt_api(broker, unique_topic("restart"), shared={"reconnectAttempts": attempts}))
    reader = Reader(server, "restart-" + uuid.uuid4().hex[:8])
    reader.start()
    assert reader.subscribed.wait(10)
    poster = Poster(server)
    try:
        for _ in range(10):
            assert poster.post() == 202
        broker.stop()
        down = time.monotonic()
        while time.monotonic() - down < 6:  # each post waits for the publisher's connection, or is refused
            poster.post()
            time.sleep(0.1)
        broker.start()
        for _ in range(20):
            poster.post()
        reader.wait_for(poster.accepted)
    finally:
        reader.stop()
    lost, first = count(poster, reader, f"broker restarted, {attempts} reconnect attempts")
    assert lost == []
    assert [n for n in first if n in poster.accepted] == poster.accepted  # in order
    assert poster.accepted[-20:] == list(range(poster.next - 20, poster.next))  # all accepted once it is back
    if attempts == 10:
        assert reader.connections == 1 and reader.errors == []  # the stream outlived the outage


def test_client_reconnecting_with_the_same_identity_while_messages_flow_loses_none(server, broker):
    server.deploy_api(mqtt_api(broker, unique_topic("reconnect")))
    reader = Reader(server, "same-" + uuid.uuid4().hex[:8])
    reader.start()
    assert reader.subscribed.wait(10)
    poster = Poster(server)
    try:
        for n in range(200):
            assert poster.post() == 202
            if n % 40 == 20:
                reader.drop()  # five times, with messages on their way each time
        reader.wait_for(poster.accepted)
    finally:
        reader.stop()
    lost, first = count(poster, reader, "client reconnected 5 times")
    assert lost == []
    assert reader.connections == 6
    assert first == poster.accepted  # in order


def test_reconnect_attempts_are_honoured_in_either_spelling(server, broker):
    """The broker down 5 s: 3 attempts (0.5 + 1 + 2 s of backoff) would give up, 5 attempts do not
    (0.5 + 1 + 2 + 4 s). Then 2 attempts, as the portal's form saves them, give up saying 2."""
    topic = unique_topic("attempts")
    address = ("127.0.0.1", broker.port)
    server.deploy_api(mqtt_api(broker, topic, qos="auto", shared={"reconnectAttempts": 5}))
    with sse(server) as stream:
        broker.stop()
        time.sleep(5)  # the outage itself is the condition tested
        broker.start()
        publish_until_read(address, topic, stream)
    server.delete_all_apis()

    server.deploy_api(mqtt_api(broker, topic, qos="auto", endpoint_shared={"reconnectAttempt": 2}))
    with sse(server) as stream:
        broker.stop()
        failed = next_message(stream, timeout=10)
    assert failed["event"] == "error"
    assert failed["data"] == (
        f"the MQTT broker at 127.0.0.1:{broker.port} cannot be reached: connection refused; "
        "gave up after 2 reconnect attempts"
    )


def sse(server):
    stream = requests.get(
        server.gateway + "/mqtt",
        stream=True,
        timeout=20,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": "attempts"},
    )
    assert read_sse(stream, 1) == [{"retry": "5000"}]
    return stream


def publish_until_read(address, topic, stream):
    """Publishes directly to the broker until the stream's next event, which must be the message."""
    client = connect(address, username=USER, password=PASSWORD)
    done = threading.Event()

    def keep_publishing():
        while not done.is_set():
            client.publish(topic, b"after the outage", qos=1)
            done.wait(0.2)

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        event = next_message(stream, timeout=15)
        assert (event["event"], event["data"]) == ("message", "after the outage")
    finally:
        done.set()
        publisher.join()
        client.disconnect()
        client.loop_stop()


def test_correlation_data_and_retain_reach_the_client_as_metadata(server, broker):
    topic = unique_topic("metadata")
    address = ("127.0.0.1", broker.port)
    server.deploy_api(mqtt_api(broker, topic))
    get = {"Accept": "application/json", "X-Gravitee-Client-Identifier": "meta"}
    assert requests.get(server.gateway + "/mqtt", headers=get, timeout=10).json()["items"] == []  # subscribed
    client = connect(address, username=USER, password=PASSWORD)
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = b"request-42"
        client.publish(topic, b"reply", qos=1, properties=properties).wait_for_publish(10)
        [item] = requests.get(server.gateway + "/mqtt", headers=get, timeout=10).json()["items"]
        client.publish(topic, b"as-xml", qos=1).wait_for_publish(10)
        xml = requests.get(server.gateway + "/mqtt", headers=dict(get, Accept="application/xml"), timeout=10).text
    finally:
        client.disconnect()
        client.loop_stop()
    assert item["content"] == "reply"
    assert item["metadata"]["correlationData"] == "request-42"
    assert item["metadata"]["retain"] is False  # a JSON boolean, not the string "False"
    assert '<entry name="retain">false</entry>' in xml, xml
