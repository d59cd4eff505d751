"""The webhook entrypoint on real servers: a real local HTTP receiver; Mock, Kafka (Tansu) and
RabbitMQ endpoints; retries with backoff, the dead-letter endpoint, failure and resume, the
SSRF guard, and restarts."""
import pytest

from webhook_support import ALLOW_PRIVATE, Receiver, hook, mock_group, push_subscribe, wait_state, webhook_api


@pytest.fixture
def receiver():
    made = []

    def make(answer=None):
        made.append(Receiver(answer) if answer else Receiver())
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def server(start_server):
    return start_server(**ALLOW_PRIVATE)


def test_mock_messages_are_delivered_in_order_with_their_headers(server, receiver):
    target = receiver()
    api_id = server.deploy_api(webhook_api([mock_group(5, content="m")], qos="at-least-once"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook", headers=[{"name": "X-Sub", "value": "1"}]))
    calls = target.wait(lambda calls: len(calls) >= 5)
    assert [c.body for c in calls] == [b"m"] * 5
    assert all(c.headers.get("X-Sub") == "1" for c in calls)
    state = wait_state(server, api_id, subscription["id"], "active", lambda s: len(s["deliveries"]) >= 5)
    assert [(d["outcome"], d["status"], d["attempt"]) for d in state["deliveries"]] == [("delivered", 200, 1)] * 5
    assert [d["messageId"] for d in state["deliveries"]] == ["4", "3", "2", "1", "0"]
