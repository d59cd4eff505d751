"""The webhook fixtures of the shared Gravitee v4 data (`messages/webhook/*`) and the webhook
listeners of the others (`grep -rl '"subscription"'`): each one whose parts are all supported
deploys and pushes what its endpoint gives to a real local receiver; the others are refused at
deploy naming what they lack.

Placeholders are rewritten as in each broker's fixture tests (the test broker's address, topics
and exchanges of this test); fixtures have no plan, so each gets a push plan to subscribe to.
Solace runs with the library's test double (no Solace broker runs here): a second API of the
test publishes to the double's topic.
"""

import subprocess

import pytest
import requests

from gateway_runtime.entrypoints.webhook import ORDERED
from support.apis import solace_api
from support.fixtures import FIXTURES, load, rewrite_kafka, rewrite_mqtt
from support.gatehouse import launch
from support.kafka import produce
from support.mosquitto import publish as mqtt_publish
from support.mosquitto import shared_broker
from support.rabbit import QUEUE_PREFIX, queue_state, wait_for
from support.rabbit import publish as amqp_publish
from support.solace import DOUBLE_URL, double_env
from support.webhook import ALLOW_PRIVATE, PUSH_PLAN, Receiver, hook, push_subscribe, wait_state

BLOCKED = {"messages/mqtt5/mqtt5-endpoint-secret.json": ["secret references ({#secrets...})"]}


def webhook_fixture_files():
    found = subprocess.run(["grep", "-rl", '"subscription"', str(FIXTURES)], capture_output=True, text=True).stdout
    return sorted(str(FIXTURES.joinpath(f).relative_to(FIXTURES)) for f in found.split())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    module_server = launch(tmp_path_factory.mktemp("webhook-fixtures"), **ALLOW_PRIVATE, **double_env())
    yield module_server
    module_server.stop()


@pytest.fixture
def receiver(server):
    made = Receiver()
    yield made
    made.close()
    server.delete_all_apis()


def subscribe(server, definition, receiver):
    definition["plans"] = [dict(PUSH_PLAN)]
    api_id = server.deploy_api(definition)
    subscription = push_subscribe(server, api_id, hook(receiver.url + "/hook"))
    return api_id, subscription["id"]


def delivered(receiver, wanted, definition, timeout=30):
    """In order for at-most-once and at-least-once; auto and none may call several at once."""
    receiver.wait(lambda calls: len(receiver.accepted()) >= len(wanted), timeout=timeout)
    webhook = next(li for li in definition["listeners"] if li["type"] == "subscription")["entrypoints"][0]
    got = receiver.accepted()[: len(wanted)]
    assert got == wanted if webhook.get("qos") in ORDERED else sorted(got) == sorted(wanted)


# ----- one check per endpoint type: (server, receiver, relative path, request) -----
def mock_check(count):
    def check(server, receiver, relative, request):
        definition = load(relative)
        subscribe(server, definition, receiver)
        delivered(receiver, ["message"] * count, definition)

    return check


def kafka_check(server, receiver, relative, request):
    tansu, new_topic = request.getfixturevalue("tansu"), request.getfixturevalue("new_topic")
    definition, topics = rewrite_kafka(load(relative), tansu.bootstrap, new_topic)
    subscribe(server, definition, receiver)
    produce(tansu.bootstrap, next(iter(topics.values())), "k1", "k2")
    delivered(receiver, ["k1", "k2"], definition)


def mqtt_check(server, receiver, relative, request):
    broker = shared_broker()
    definition, topics = rewrite_mqtt(relative, broker)
    api_id, sid = subscribe(server, definition, receiver)
    wait_state(server, api_id, sid, "active")
    topic = next(iter(topics.values()))
    # the subscription's MQTT session subscribes asynchronously: publish until the first arrives
    wait_for(lambda: mqtt_publish(broker, topic, "m0") or receiver.accepted(), what="the first MQTT message")
    mqtt_publish(broker, topic, "m1")
    receiver.wait(lambda calls: "m1" in receiver.accepted())


def rabbitmq_check(server, receiver, relative, request):
    names = request.getfixturevalue("names")
    definition = load(relative)
    endpoint = definition["endpointGroups"][0]["endpoints"][0]
    endpoint["configuration"]["serverHost"] = "127.0.0.1"
    endpoint["sharedConfigurationOverride"]["security"]["auth"] = {"username": "guest", "password": "guest"}
    exchange = endpoint["sharedConfigurationOverride"]["consumer"]["exchange"]
    exchange["name"] = names.exchange(exchange["name"])
    api_id, sid = subscribe(server, definition, receiver)
    names.api_ids.add(api_id)
    wait_for(lambda: (queue_state(f"{QUEUE_PREFIX}{api_id}-{sid}") or (0, 0))[1] >= 1, what="the queue's consumer")
    amqp_publish(exchange["name"], "a.routing.key", "r1", "r2")
    delivered(receiver, ["r1", "r2"], definition)


def solace_check(server, receiver, relative, request):
    definition = load(relative)
    endpoint = definition["endpointGroups"][0]["endpoints"][0]
    endpoint["configuration"]["url"] = DOUBLE_URL
    api_id, sid = subscribe(server, definition, receiver)
    wait_state(server, api_id, sid, "active")
    server.deploy_api(solace_api(topics=("test-topic",), path="/solace-publisher"))
    wait_for(
        lambda: (
            requests.post(server.gateway + "/solace-publisher", data=b"s1", timeout=10).status_code == 202
            and receiver.accepted()
        ),
        what="the first Solace message",
    )
    assert set(receiver.accepted()) == {"s1"}


BEHAVIOUR = {
    "messages/webhook/webhook-entrypoint-mock-endpoint.json": mock_check(10),
    "messages/metrics/webhook-entrypoint-mock-endpoint.json": mock_check(5),
    "messages/webhook/webhook-entrypoint-kafka-endpoint.json": kafka_check,
    "messages/webhook/webhook-entrypoint-mqtt5-endpoint.json": mqtt_check,
    "messages/webhook/webhook-entrypoint-rabbitmq-endpoint.json": rabbitmq_check,
    "messages/webhook/webhook-entrypoint-solace-endpoint.json": solace_check,
    **{
        f"messages/kafka/kafka-endpoint-qos-{qos}.json": kafka_check
        for qos in ("none", "auto", "at-most-once", "at-least-once")
    },
    **{
        f"messages/mqtt5/mqtt5-endpoint-qos-{qos}.json": mqtt_check
        for qos in ("none", "auto", "at-most-once", "at-least-once")
    },
}


@pytest.mark.parametrize("relative", sorted(BEHAVIOUR))
def test_fixture_deploys_and_delivers_to_the_callback(server, receiver, relative, request):
    BEHAVIOUR[relative](server, receiver, relative, request)


@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(server, receiver, relative):
    server.assert_blocked(rewrite_mqtt(relative, shared_broker())[0], BLOCKED[relative])


def test_every_webhook_fixture_is_covered():
    assert sorted(set(BEHAVIOUR) | set(BLOCKED)) == webhook_fixture_files()
