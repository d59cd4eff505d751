"""A subscription's id is its Kafka consumer group suffix, as the broker (Tansu) knows the groups.

Tansu answers ListGroups with no groups, so the groups are asked for by name: the offsets each one
committed (at-least-once commits once the messages were written to the client)."""

import time

import requests
from kafka.admin import KafkaAdminClient

from support.apis import kafka_api
from support.kafka import produce


def read(server, headers):
    """The contents of the first call that brings messages: the key is live within a poll of the
    gateway, and a new consumer group takes a moment to join."""
    deadline = time.monotonic() + 15
    while True:
        got = requests.get(server.gateway + "/plans-kafka", headers=headers, timeout=20)
        if got.status_code == 200 and got.json()["items"]:
            return [item["content"] for item in got.json()["items"]]
        assert time.monotonic() < deadline, got.text


def test_a_subscriptions_id_names_its_kafka_consumer_group(server, tansu, new_topic):
    topic = new_topic()
    definition = kafka_api(tansu.bootstrap, topic, path="/plans-kafka", qos="at-least-once", get_duration_ms=3000)
    definition["plans"] = [{"id": "gold", "name": "Gold", "security": {"type": "api-key"}, "status": "published"}]
    api_id = server.deploy_api(definition)
    subscription = server.subscribe(api_id, "gold")
    produce(tansu.bootstrap, topic, b"for the subscriber")
    headers = {"Accept": "application/json", "X-Gravitee-Api-Key": subscription["apiKey"]}
    assert read(server, headers) == ["for the subscriber"]
    assert read(server, {**headers, "X-Gravitee-Client-Identifier": "second-reader"}) == ["for the subscriber"]

    group = f"{api_id}-{subscription['id']}"
    admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap)
    try:
        committed = {name: admin.list_group_offsets(name)[name] for name in (group, group + "-second-reader")}
        deadline = time.monotonic() + 10  # the offset is committed once the response was written
        while not all(committed.values()):
            assert time.monotonic() < deadline, committed
            committed = {name: admin.list_group_offsets(name)[name] for name in committed}
            time.sleep(0.1)
        assert admin.list_group_offsets(f"{api_id}-not-a-subscription")[f"{api_id}-not-a-subscription"] == {}
    finally:
        admin.close()
    assert [offset.offset for offset in committed[group].values()] == [1]
