"""Kafka reliability (issue 15, faults 2 and 6) against a private Tansu that the tests stop and
start, counted as a client counts: every post answered 202 arrives, in order, once, at an SSE
client that reconnects with Last-Event-ID; a post answered 502 never arrives; a 504 ("outcome
unknown") may or may not arrive and is counted apart."""

import importlib.util
import subprocess
import sys
import threading
import time

import pytest
import requests
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from gateway_runtime.http import client_identifier
from support.apis import message_api
from support.gatehouse import free_port, missing, wait_for_port
from support.tansu import Tansu

pytestmark = pytest.mark.slow  # stops and starts brokers

BACK_WITHIN_S = 5  # publishes succeed again this soon after the broker is back
LEAVE_WITHIN_S = 8  # an idle consumer has left its group this soon after its client's last poll


def kafka_api(bootstrap, topic, get_duration_ms=5000):
    entrypoints = [
        {"type": "http-post"},
        {"type": "sse", "configuration": {"heartbeatIntervalInMs": 2000}},
        {"type": "http-get", "configuration": {"messagesLimitCount": 10, "messagesLimitDurationMs": get_duration_ms}},
    ]
    shared = {
        "producer": {"enabled": True, "topics": [topic]},
        "consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": "earliest"},
    }
    return message_api(
        "kafka", "/events", entrypoints, shared, {"bootstrapServers": bootstrap}, "Reliable Kafka", "kafka"
    )


def deploy(server, definition):
    api_id = server.import_api(definition)
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    return api_id


def create_topic(bootstrap, name):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()


@pytest.fixture
def s3_store(tmp_path):
    """An S3 store (moto's server) for a Tansu whose topics outlive a restart: the environment Tansu reads."""
    try:
        import boto3
    except ImportError:
        boto3 = None
    if boto3 is None or importlib.util.find_spec("moto.server") is None:
        missing("moto[server] (an S3 store for a persistent Tansu)")
    port = free_port()
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
        env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
            "AWS_ALLOW_HTTP": "true",
        }
        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket="tansu")
        yield env
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def persistent_tansu(tmp_path, s3_store):
    broker = Tansu(tmp_path, storage="s3://tansu/", env=s3_store).start()
    yield broker
    broker.stop()


@pytest.fixture
def memory_tansu(tmp_path):
    broker = Tansu(tmp_path).start()
    yield broker
    broker.stop()


class Poster(threading.Thread):
    """One client posting 1, 2, 3, ... one after the other (so their order is defined), keeping
    each number's status and when its answer came."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.answers, self.stopping = url, [], threading.Event()
        self.bodies = {}  # status -> the bodies of the answers that were not 202

    def run(self):
        number = 0
        while not self.stopping.is_set():
            number += 1
            try:
                answer = requests.post(self.url, data=str(number), timeout=40)
                status = answer.status_code
            except requests.RequestException:
                status = None
            else:
                if status != 202:
                    self.bodies.setdefault(status, set()).add(answer.json()["message"])
            self.answers.append((number, status, time.monotonic()))
            time.sleep(0.05)

    def wait_for(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.answers) >= count, f"only {len(self.answers)} posts answered: {self.answers}"

    def stop(self):
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "a post did not return within its timeout"

    def numbers(self, status, after=0):
        return [n for n, s, _ in self.answers if s == status and n > after]


class SseReader(threading.Thread):
    """An SSE client that reconnects with Last-Event-ID whenever its stream ends or fails, or when
    told to (as a browser does after an error)."""

    def __init__(self, url, client):
        super().__init__(daemon=True)
        self.url, self.client = url, client
        self.received, self.last_id, self.connections = [], None, 0
        self.errors = []
        self.reconnect, self.stopping = threading.Event(), threading.Event()
        self.response = None

    def run(self):
        while not self.stopping.is_set():
            headers = {"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": self.client}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                self.response = requests.get(self.url, headers=headers, stream=True, timeout=(5, 10))
                self.connections += 1
                self.read(self.response)
            except (requests.RequestException, AttributeError, ValueError):
                pass  # closed under the reader, or the gateway failed: reconnect
            time.sleep(0.2)

    def read(self, response):
        """Until the stream ends or fails, or the reader is told to reconnect or stop (checked
        between events; the heartbeats make sure there are some)."""
        event = {}
        for line in response.iter_lines(decode_unicode=True):
            if line:
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
                continue
            if event.get("event") == "message":
                self.received.append(int(event["data"]))
                self.last_id = event["id"]
            elif event.get("event") == "error":
                self.errors.append(event["data"])
                return
            event = {}
            if self.stopping.is_set() or self.reconnect.is_set():
                self.reconnect.clear()
                response.close()
                return

    def wait_for(self, number, timeout=20):
        deadline = time.monotonic() + timeout
        while number not in self.received and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        if self.response is not None:
            self.response.close()
        self.join(15)


def summary(poster, reader, back_at):
    by_status = {}
    for _, status, _ in poster.answers:
        by_status[status] = by_status.get(status, 0) + 1
    first_ok = min((t for _, s, t in poster.answers if s == 202 and t >= back_at), default=None)
    return {
        "answers": by_status,
        "received": len(reader.received),
        "connections": reader.connections,
        "stream errors": reader.errors,
        "not 202 (number, status, s after the broker was back)": [
            (n, s, round(t - back_at, 2)) for n, s, t in poster.answers if s != 202
        ],
        "first 202 after the broker was back (s)": None if first_ok is None else round(first_ok - back_at, 2),
    }


def assert_delivery(poster, reader, back_at, accepted):
    """accepted: the numbers answered 202 that the broker can still hold."""
    refused, unknown = poster.numbers(502), poster.numbers(504)
    print(summary(poster, reader, back_at), "504:", unknown, "received:", reader.received, poster.bodies)
    assert not set(refused) & set(reader.received), f"answered 502 but delivered: {set(refused) & set(reader.received)}"
    # qos auto: what was delivered since the group's last commit (every 5 s) may come again after a
    # broker failure; nothing is lost, and the first time each message comes is in order.
    first_times = list(dict.fromkeys(reader.received))
    print(f"delivered twice: {len(reader.received) - len(first_times)}")
    assert first_times == sorted(first_times), "out of order"
    assert [n for n in first_times if n not in unknown] == accepted, "an accepted post is missing"
    for message in poster.bodies.get(504, ()):
        assert message.startswith("Outcome unknown: ") and "may or may not have been delivered" in message, message
    first_ok = min((t for _, s, t in poster.answers if s == 202 and t >= back_at), default=None)
    assert first_ok is not None and first_ok - back_at < BACK_WITHIN_S, (
        f"no publish succeeded within {BACK_WITHIN_S} s of the broker being back: {poster.answers[-10:]}"
    )


def test_accepted_posts_arrive_in_order_across_a_broker_restart_and_502s_never(start_server, persistent_tansu):
    """Broker down longer than a publish may wait: what the gateway answered 502 must not come later."""
    topic = "orders"
    create_topic(persistent_tansu.bootstrap, topic)
    server = start_server()
    deploy(server, kafka_api(persistent_tansu.bootstrap, topic))
    url = server.gateway + "/events"
    reader = SseReader(url, "reader")
    reader.start()
    poster = Poster(url)
    poster.start()
    reader.wait_for(3)  # the reader is in its group and reading
    assert reader.received, f"the SSE client got nothing before the outage: {reader.errors}"
    persistent_tansu.stop()
    time.sleep(12)  # the outage: longer than a publish waits for its broker
    persistent_tansu.start()
    back_at = time.monotonic()
    reader.reconnect.set()
    answered = len(poster.answers)
    poster.wait_for(answered + 20)
    poster.stop()
    last = max(poster.numbers(202), default=0)
    reader.wait_for(last)
    reader.stop()
    assert reader.connections >= 2
    assert_delivery(poster, reader, back_at, poster.numbers(202))


def test_producer_forgotten_by_a_restarted_broker_is_replaced(start_server, memory_tansu):
    """A broker that restarts empty (memory storage) no longer knows the idempotent producer's id:
    the endpoint makes a new producer instead of failing every publish until a redeploy."""
    topic = "orders"
    create_topic(memory_tansu.bootstrap, topic)
    server = start_server()
    deploy(server, kafka_api(memory_tansu.bootstrap, topic))
    url = server.gateway + "/events"
    poster = Poster(url)
    poster.start()
    poster.wait_for(5)
    memory_tansu.stop()
    before_restart = len(poster.answers)  # these were in the broker's memory: gone with it
    time.sleep(3)
    memory_tansu.start()
    create_topic(memory_tansu.bootstrap, topic)  # what the operator of an empty broker does
    back_at = time.monotonic()
    poster.wait_for(len(poster.answers) + 20)
    poster.stop()
    reader = SseReader(url, "after-restart")
    reader.start()
    reader.wait_for(max(poster.numbers(202), default=0))
    reader.stop()
    assert_delivery(poster, reader, back_at, poster.numbers(202, after=before_restart))
    assert "replacing its producer for the brokers at" in server.log  # the fault happened, and was dealt with
    assert "Traceback" not in server.log


# ----- fault 6: consumer groups -----
def group_members(bootstrap, group):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    # Tansu answers authorized operations kafka-python cannot name; they are not needed here.
    admin._process_acl_operations = lambda described: described
    try:
        return admin.describe_groups([group])[group]["members"]
    finally:
        admin.close()


def poll(server, client):
    response = requests.get(
        server.gateway + "/events",
        timeout=30,
        headers={"Accept": "application/json", "X-Gravitee-Client-Identifier": client},
    )
    assert response.status_code == 200, response.text
    return [item["content"] for item in response.json()["items"]]


def test_first_poll_of_a_new_client_waits_for_the_join_and_its_consumers_leave_quietly(start_server, tansu, new_topic):
    topic = new_topic()
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap)
    for i in range(3):
        producer.send(topic, f"m{i}".encode()).get(10)
    producer.close()
    server = start_server()
    # A duration shorter than the group join (~3 s): the join must not use it up.
    api_id = deploy(server, kafka_api(tansu.bootstrap, topic, get_duration_ms=1000))

    started = time.monotonic()
    first = poll(server, "newcomer")
    took = time.monotonic() - started
    print(f"first poll: {took:.2f} s, {first}")
    assert first == ["m0", "m1", "m2"]
    assert took < 10

    # Two polls of that client at once: two consumers in its group, each idle once its poll ended.
    pollers = [threading.Thread(target=poll, args=(server, "newcomer")) for _ in range(2)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join(30)
    group = f"{api_id}-" + client_identifier(
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": "newcomer"}
    )
    left_at = time.monotonic()
    while group_members(tansu.bootstrap, group) and time.monotonic() - left_at < LEAVE_WITHIN_S + 7:
        time.sleep(0.25)
    left_after = time.monotonic() - left_at
    print(f"the client's consumers left their group {left_after:.2f} s after its last poll")
    assert not group_members(tansu.bootstrap, group)
    assert left_after < LEAVE_WITHIN_S
    rebalancing = [line for line in server.log.splitlines() if "rebalancing" in line]
    assert len(rebalancing) <= 1, rebalancing
