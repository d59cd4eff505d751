"""Helpers for the RabbitMQ tests: the shared local broker (127.0.0.1:5672, guest/guest), names
of this test only, direct pika clients, and the gateway's connections seen from the broker side.

The broker is shared with other work: every test uses exchanges and queues named after itself
and removes them afterwards; the fault tests close only the gateway's own connections."""

import json
import re
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import requests

from gateway_runtime.http import client_identifier

HOST, PORT = "127.0.0.1", 5672
QUEUE_PREFIX = "gravitee/gio-gateway/"


def broker_up():
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
        return True
    except OSError:
        return False


def connect():
    return pika.BlockingConnection(
        pika.ConnectionParameters(HOST, PORT, client_properties={"connection_name": "gatehouse-tests"})
    )


class Names:
    """Exchange names of one test, and the clean-up of what the test made."""

    def __init__(self, test_name):
        self.base = re.sub(r"[^a-zA-Z0-9]+", "-", test_name)[-40:].strip("-") + "-" + uuid.uuid4().hex[:6]
        self.exchanges, self.queues = set(), set()
        self.api_ids = set()

    def exchange(self, label="x"):
        name = f"gh-{self.base}-{label}"
        self.exchanges.add(name)
        return name

    def queue(self, label="q"):
        name = f"gh-{self.base}-{label}"
        self.queues.add(name)
        return name

    def cleanup(self):
        connection = connect()
        channel = connection.channel()
        for name in self.exchanges:
            channel.exchange_delete(name)
        for name in self.queues | {q for api in self.api_ids for q in queues_of(api)}:
            channel.queue_delete(name)
        for api in self.api_ids:
            channel.queue_delete("gatehouse/queues-of/" + api)
        connection.close()


def declare(exchange, exchange_type="topic", durable=False, queue=None, arguments=None):
    """Declare an exchange (and a queue bound to it with `#`, when named)."""
    connection = connect()
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type, durable=durable)
    if queue:
        channel.queue_declare(queue, arguments=arguments)
        channel.queue_bind(queue, exchange, "#")
    connection.close()


def publish(exchange, routing_key, *bodies, headers=None, **properties):
    """Publish directly, with publisher confirms."""
    connection = connect()
    channel = connection.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(
            exchange,
            routing_key,
            body.encode() if isinstance(body, str) else body,
            pika.BasicProperties(headers=headers, **properties),
        )
    connection.close()


class Tap:
    """A queue of the test's own bound to an exchange: what was published there, seen directly."""

    def __init__(self, exchange, routing_key="#", exchange_type="topic", auto_delete=False):
        self.connection = connect()
        self.channel = self.connection.channel()
        self.channel.exchange_declare(exchange, exchange_type, auto_delete=auto_delete)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, exchange, routing_key)

    def take(self, count, timeout=10):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
            else:
                got.append((body, properties))
        return got

    def close(self):
        self.connection.close()


def queue_state(name):
    """(ready messages, consumers) of a queue, or None when it does not exist."""
    connection = connect()
    try:
        method = connection.channel().queue_declare(name, passive=True).method
        return method.message_count, method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


def queue_of(api_id, client, qos="auto"):
    """The gateway's queue for a test client (its X-Gravitee-Client-Identifier) of an API."""
    identifier = client_identifier({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_GRAVITEE_CLIENT_IDENTIFIER": client})
    return f"{QUEUE_PREFIX}{api_id}-{identifier}" + ("-none" if qos == "none" else "")


def consuming(api_id, client, qos="auto", consumers=1):
    wait_for(
        lambda: (queue_state(queue_of(api_id, client, qos)) or (0, 0))[1] >= consumers,
        what=f"{consumers} consumer(s) of client {client}",
    )


def get(gateway, path, client, **params):
    response = requests.get(
        gateway + path,
        params=params,
        timeout=30,
        headers={"Accept": "application/json", "X-Gravitee-Client-Identifier": client},
    )
    assert response.status_code == 200, response.text
    return response.json()


def get_while(gateway, path, api_id, client, action, **params):
    """A GET that waits for messages, answered by what `action` publishes once it consumes."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, gateway, path, client, **params)
        consuming(api_id, client)
        action()
        return pending.result()


def wait_for(condition, timeout=10, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.05)


def rabbitmqctl(*args):
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def list_queues():
    return [row["name"] for row in json.loads(rabbitmqctl("list_queues", "name", "--formatter", "json") or "[]")]


def unacknowledged(queue):
    """Messages the queue delivered and has not had acknowledged (0 when it does not exist)."""
    rows = json.loads(rabbitmqctl("list_queues", "name", "messages_unacknowledged", "--formatter", "json") or "[]")
    return next((row["messages_unacknowledged"] for row in rows if row["name"] == queue), 0)


def queues_of(api_id):
    return [name for name in list_queues() if name.startswith(f"{QUEUE_PREFIX}{api_id}-")]


def gateway_connections(api_id):
    """{pid: connection_name} of the broker's connections named for this API by the gateway."""
    # The JSON listing has the client properties but writes pids in a form close_connection does
    # not take; the plain listing has usable pids. Both name each connection by its addresses.
    rows = json.loads(rabbitmqctl("list_connections", "name", "client_properties", "--formatter", "json") or "[]")
    named = {}
    for row in rows:
        properties = {p[0]: p[2] for p in row["client_properties"]}
        if properties.get("connection_name", "").startswith(f"gatehouse/{api_id}/"):
            named[row["name"]] = properties["connection_name"]
    found = {}
    for line in rabbitmqctl("list_connections", "pid", "name", "--no-table-headers").splitlines():
        pid, _, name = line.partition("\t")
        if name in named:
            found[pid] = named[name]
    return found


def close_gateway_connections(api_id):
    """Close, from the broker side, exactly the gateway's connections of this API."""
    closed = gateway_connections(api_id)
    for pid in closed:
        rabbitmqctl("close_connection", pid, "closed by the fault test")
    return closed


def deploy(server, names, definition):
    """Deploy, and have the test's clean-up delete the queues the gateway makes for the API."""
    api_id = server.deploy_api(definition)
    names.api_ids.add(api_id)
    return api_id
