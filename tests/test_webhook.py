"""The webhook entrypoint on real servers: a real local HTTP receiver; Mock, Kafka (Tansu) and
RabbitMQ endpoints; retries with backoff, the dead-letter endpoint, failure and resume, the
SSRF guard. Across processes: test_webhook_processes."""

import itertools
import threading
import time

import pytest

from support.gatehouse import launch
from support.kafka import consume, produce
from support.rabbit import QUEUE_PREFIX, declare, publish, queue_state, wait_for
from support.webhook import ALLOW_PRIVATE, hook, kafka_group, mock_group, push_subscribe, wait_state, webhook_api


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("webhook"), **ALLOW_PRIVATE)
    yield server
    server.stop()


@pytest.fixture
def server(module_server):
    """The module's server (callbacks on 127.0.0.1 allowed), emptied of APIs after each test."""
    yield module_server
    module_server.delete_all_apis()


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


def gaps(calls):
    return [round(b.at - a.at, 2) for a, b in itertools.pairwise(calls)]


def test_a_receiver_failing_three_times_gets_the_message_at_the_fourth_attempt_after_the_backoff(server, receiver):
    target = receiver(lambda n, body, headers: 500 if n <= 3 else 200)
    api_id = server.deploy_api(webhook_api([mock_group(1)], qos="at-least-once"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook", retry=("EXPONENTIAL", 5, 0.2, 0.5)))
    calls = target.wait(lambda calls: any(c.status == 200 for c in calls))
    assert [c.status for c in calls] == [500, 500, 500, 200]
    # exponential from 0.2 s, capped at 0.5 s: 0.2, 0.4, 0.5
    for gap, wanted in zip(gaps(calls), (0.2, 0.4, 0.5), strict=True):
        assert wanted - 0.02 <= gap <= wanted + 0.3, gaps(calls)
    state = wait_state(server, api_id, subscription["id"], "active", lambda s: len(s["deliveries"]) == 4)
    assert [(d["attempt"], d["status"], d["outcome"]) for d in reversed(state["deliveries"])] == [
        (1, 500, "failed"),
        (2, 500, "failed"),
        (3, 500, "failed"),
        (4, 200, "delivered"),
    ]
    assert '"status": 500' in state["deliveries"][-1]["detail"]


def test_linear_backoff_grows_by_the_initial_delay(server, receiver):
    target = receiver(lambda n, body, headers: 503 if n <= 3 else 200)
    api_id = server.deploy_api(webhook_api([mock_group(1)], qos="at-most-once"))
    push_subscribe(server, api_id, hook(target.url + "/hook", retry=("LINEAR", 4, 0.15, 10)))
    calls = target.wait(lambda calls: len(calls) == 4)
    for gap, wanted in zip(gaps(calls), (0.15, 0.3, 0.45), strict=True):
        assert wanted - 0.02 <= gap <= wanted + 0.3, gaps(calls)


def test_without_a_dead_letter_endpoint_the_subscription_fails_stops_and_resumes(server, receiver):
    answers = {"status": 500}
    target = receiver(lambda n, body, headers: answers["status"])
    api_id = server.deploy_api(webhook_api([mock_group(3, interval=50)], qos="at-least-once"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook", retry=("LINEAR", 2, 0.05, 0.05)))
    failed = wait_state(server, api_id, subscription["id"], "failed")
    assert "Message 0 not delivered after 2 attempts: HTTP 500" == failed["detail"]
    assert len(target.calls) == 2  # stopped: nothing more is tried
    answers["status"] = 200
    response = server.mgmt("POST", f"/apis/{api_id}/subscriptions/{subscription['id']}/_resume")
    assert response.status_code == 200, response.text
    target.wait(lambda calls: len(target.accepted()) == 3)
    assert wait_state(server, api_id, subscription["id"], "active")["detail"] is None
    assert server.mgmt("POST", f"/apis/{api_id}/subscriptions/{subscription['id']}/_resume").status_code == 400


def test_retry_now_cuts_a_long_backoff_short(server, receiver):
    target = receiver(lambda n, body, headers: 500 if n == 1 else 200)
    api_id = server.deploy_api(webhook_api([mock_group(1)], qos="at-least-once"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook", retry=("LINEAR", 3, 60, 60)))
    retrying = wait_state(server, api_id, subscription["id"], "retrying")
    assert retrying["detail"] == "Message 0: attempt 1 got HTTP 500"
    response = server.mgmt("POST", f"/apis/{api_id}/subscriptions/{subscription['id']}/_retry")
    assert response.status_code == 200, response.text
    calls = target.wait(lambda calls: len(calls) == 2, timeout=5)
    assert calls[1].status == 200 and calls[1].at - calls[0].at < 5


def test_basic_bearer_and_oauth2_credentials_are_sent(server, receiver):
    tokens = []

    def answer(n, body, headers):
        if body.startswith(b"grant_type"):
            tokens.append((headers["Authorization"], body))
            return 200, {"access_token": f"token-{len(tokens)}", "expires_in": 3600}
        return 200

    target = receiver(answer)
    api_id = server.deploy_api(webhook_api([mock_group(2)]))
    auths = {
        "basic": {"type": "basic", "basic": {"username": "u", "password": "p w"}},
        "token": {"type": "token", "token": {"value": "s3cret"}},
        "oauth2": {
            "type": "oauth2",
            "oauth2": {
                "endpoint": target.url + "/oauth-token",
                "clientId": "app",
                "clientSecret": "shh",
                "scopes": ["a", "b"],
            },
        },
    }
    for kind, auth in auths.items():
        created = push_subscribe(server, api_id, hook(f"{target.url}/{kind}", auth=auth))
        masked = created["consumerConfiguration"]["entrypointConfiguration"]["auth"]
        assert "p w" not in str(masked) and "s3cret" not in str(masked) and "shh" not in str(masked)
    target.wait(lambda calls: all(len([c for c in calls if c.path == f"/{k}"]) == 2 for k in auths))
    by_path = {c.path: c.headers.get("Authorization") for c in target.calls}
    assert by_path["/basic"] == "Basic dTpwIHc="
    assert by_path["/token"] == "Bearer s3cret"
    assert by_path["/oauth-token"] == "Basic YXBwOnNoaA=="  # the client credentials, at the token endpoint
    assert by_path["/oauth2"] == "Bearer token-1"
    assert tokens == [("Basic YXBwOnNoaA==", b"grant_type=client_credentials&scope=a+b")]  # fetched once


def test_concurrency_is_honoured_for_auto_and_forced_to_one_for_at_least_once(server, receiver):
    # per path: the last /auto call may still be finishing when the first /at-least-once one arrives
    running, peak, lock = {}, {}, threading.Lock()
    target = receiver()
    handler = target.server.RequestHandlerClass
    original = handler.do_POST

    def slow(self):
        with lock:
            running[self.path] = running.get(self.path, 0) + 1
            peak[self.path] = max(peak.get(self.path, 0), running[self.path])
        time.sleep(0.1)
        send_response = self.send_response

        def answer(*args):
            # a call ends as its answer leaves: the gateway may send the next one before this
            # handler thread runs again, and counting it still running would be our own race
            with lock:
                running[self.path] -= 1
            send_response(*args)

        self.send_response = answer
        original(self)

    handler.do_POST = slow
    for qos in ("auto", "at-least-once"):
        api_id = server.deploy_api(
            webhook_api(
                [mock_group(8, interval=0)],
                qos=qos,
                name=f"Webhook {qos}",
                configuration={"http": {"maxConcurrentConnections": 4}},
            )
        )
        push_subscribe(server, api_id, hook(f"{target.url}/{qos}"))
        target.wait(lambda calls, qos=qos: len([c for c in calls if c.path == f"/{qos}"]) == 8)
    assert peak == {"/auto": 4, "/at-least-once": 1}


def test_a_private_callback_is_refused_without_the_setting(start_server):
    server = start_server()
    api_id = server.deploy_api(webhook_api([mock_group(1)]))
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/",
        "http://[::1]/hook",
        "http://192.168.0.1/",
    ):
        refused = push_subscribe(server, api_id, hook(url), expect=400)
        assert "loopback, link-local or private address" in refused["errors"][0]["message"], refused
    refused = push_subscribe(server, api_id, hook("ftp://example.com/"), expect=400)
    assert "is not an http:// or https:// URL" in refused["message"]


# ----- brokers -----
def test_kafka_messages_are_delivered_in_order_and_committed(server, receiver, tansu, new_topic):
    topic = new_topic()
    target = receiver()
    api_id = server.deploy_api(webhook_api([kafka_group(tansu.bootstrap, topic)], qos="at-least-once"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook"))
    produce(tansu.bootstrap, topic, *[f"k{i}" for i in range(10)])
    target.wait(lambda calls: len(calls) >= 10, timeout=30)
    assert target.accepted() == [f"k{i}" for i in range(10)]
    state = wait_state(server, api_id, subscription["id"], "active", lambda s: len(s["deliveries"]) >= 10)
    assert {d["outcome"] for d in state["deliveries"]} == {"delivered"}


def test_rabbitmq_messages_are_delivered_in_order(server, receiver, names):
    exchange = names.exchange()
    declare(exchange)
    target = receiver()
    group = {
        "name": "rabbit",
        "type": "rabbitmq",
        "endpoints": [
            {
                "name": "broker",
                "type": "rabbitmq",
                "inheritConfiguration": False,
                "configuration": {"serverHost": "127.0.0.1", "serverPort": 5672},
                "sharedConfigurationOverride": {
                    "security": {"auth": {"username": "guest", "password": "guest"}},
                    "consumer": {
                        "enabled": True,
                        "routingKey": "orders.#",
                        "exchange": {"name": exchange, "type": "topic", "durable": False, "autoDelete": False},
                    },
                },
            }
        ],
    }
    api_id = server.deploy_api(webhook_api([group], qos="at-least-once"))
    names.api_ids.add(api_id)
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook"))
    wait_for(
        lambda: (queue_state(f"{QUEUE_PREFIX}{api_id}-{subscription['id']}") or (0, 0))[1] >= 1,
        what="the subscription's queue consumer",
    )
    publish(exchange, "orders.new", *[f"r{i}" for i in range(10)], headers={"X-Order": "yes"})
    target.wait(lambda calls: len(calls) >= 10)
    assert target.accepted() == [f"r{i}" for i in range(10)]
    assert target.calls[0].headers.get("X-Order") == "yes"


def test_a_receiver_that_never_recovers_sends_every_message_to_the_dead_letter_endpoint(
    server, receiver, tansu, new_topic
):
    dlq_topic = new_topic()
    target = receiver(lambda n, body, headers: 500 if n % 3 else 200)  # one call in three succeeds
    groups = [mock_group(12, interval=5), kafka_group(tansu.bootstrap, dlq_topic, consume=False, name="dead")]
    api_id = server.deploy_api(webhook_api(groups, qos="at-least-once", dlq="dead-kafka"))
    subscription = push_subscribe(server, api_id, hook(target.url + "/hook", retry=("LINEAR", 2, 0.01, 0.01)))
    # calls 1, 2 fail (message 0 is dead-lettered), call 3 succeeds (message 1), and so on
    target.wait(lambda calls: len(calls) == 18)
    dead = [r.value.decode() for r in consume(tansu.bootstrap, dlq_topic, 6)]
    delivered = target.accepted()
    assert (len(delivered), len(dead)) == (6, 6)
    assert all(body == "message" for body in delivered + dead)
    state = wait_state(server, api_id, subscription["id"], until=lambda s: s["deliveries"][0]["messageId"] == "11")
    assert [(d["messageId"], d["outcome"], d["detail"]) for d in state["deliveries"][:2]] == [
        ("11", "delivered", '{"status": 200}'),
        ("10", "dead-lettered", "after 2 attempts (HTTP 500)"),
    ]
    assert state["state"] == "active"


def test_the_callback_address_is_checked_again_at_each_delivery(monkeypatch):
    """DNS can change after the subscription was saved: each call resolves and checks again."""
    import socket
    from types import SimpleNamespace

    from gateway_runtime.entrypoints.webhook import SUBSCRIPTION
    from gateway_runtime.messages import Message
    from gateway_runtime.webhook import caller as webhook

    monkeypatch.delenv("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    addresses = iter(["93.184.216.34", "10.0.0.7"])
    monkeypatch.setattr(
        webhook.socket,
        "getaddrinfo",
        lambda *args, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(addresses), 80))],
    )
    webhook.check_callback("http://hooks.example/in")  # public when saved
    entry = SimpleNamespace(concurrency=1, connect_timeout=1, read_timeout=1, config={})
    caller = webhook.Caller(entry, SUBSCRIPTION.with_defaults({"callbackUrl": "http://hooks.example/in"}))
    with pytest.raises(webhook.Refused, match=r"resolves to 10\.0\.0\.7"):
        caller.post(Message(b"x"))
