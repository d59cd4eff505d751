"""A subscription's id is its RabbitMQ queue suffix, as the broker (the local RabbitMQ, see
support/rabbit.py) knows the queues: `gravitee/gio-gateway/<api id>-<subscription id>`, durable, keeping
what is published for the subscriber while it is away."""

import json

import requests

from support.apis import exchange, rabbit_api
from support.rabbit import QUEUE_PREFIX, deploy, publish, queue_state, queues_of, rabbitmqctl, wait_for


def read(server, headers):
    """One HTTP GET through the plan: 200 once the gateway knows the key (within a poll)."""
    response = requests.get(server.gateway + "/plans-rabbit", headers=headers, timeout=20)
    return response.json() if response.status_code == 200 else None


def durable(queue):
    rows = json.loads(rabbitmqctl("list_queues", "name", "durable", "--formatter", "json") or "[]")
    return next(row["durable"] for row in rows if row["name"] == queue)


def test_a_subscriptions_id_names_its_rabbitmq_queue(server, names):
    name = names.exchange()
    definition = rabbit_api(
        consumer=(exchange(name), "#"), path="/plans-rabbit", qos="at-least-once", get_duration_ms=500
    )
    definition["plans"] = [{"id": "gold", "name": "Gold", "security": {"type": "api-key"}, "status": "published"}]
    api_id = deploy(server, names, definition)
    subscription = server.subscribe(api_id, "gold")
    headers = {"Accept": "application/json", "X-Gravitee-Api-Key": subscription["apiKey"]}
    assert (
        requests.get(server.gateway + "/plans-rabbit", headers={"Accept": "application/json"}, timeout=10).status_code
        == 401
    )

    # The first call the gateway admits declares the subscriber's queue (none is there before).
    assert queues_of(api_id) == []
    assert wait_for(lambda: read(server, headers), what="the key to be admitted")["items"] == []
    queue = f"{QUEUE_PREFIX}{api_id}-{subscription['id']}"
    assert queues_of(api_id) == [queue]  # not one named after the client's address
    assert durable(queue) is True

    # Durable, and the subscription's own: it keeps what comes while its client is away.
    publish(name, "k", "for the subscriber")
    assert queue_state(queue) == (1, 0)
    assert [item["content"] for item in read(server, headers)["items"]] == ["for the subscriber"]
    assert queue_state(queue) == (0, 0)

    # A client of the subscription may run another queue, suffixed by its X-Gravitee-Client-Identifier.
    assert read(server, {**headers, "X-Gravitee-Client-Identifier": "second-reader"})["items"] == []
    assert sorted(queues_of(api_id)) == [queue, queue + "-second-reader"]
