"""RabbitMQ endpoint end to end: a gateway process, the local RabbitMQ broker, and clients over
every entrypoint. Each test uses exchanges of its own (see support.rabbit.Names) and removes them."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from support import rabbit
from support.apis import exchange, mock_api, rabbit_api
from support.gatehouse import free_port
from support.portal import portal_login
from support.rabbit import (
    Tap,
    close_gateway_connections,
    consuming,
    declare,
    deploy,
    gateway_connections,
    list_queues,
    publish,
    queue_of,
    queue_state,
    unacknowledged,
    wait_for,
)
from support.streams import read_sse, sse_messages

JSON = {"Accept": "application/json"}


@pytest.fixture
def server(shared_server):
    return shared_server


def get(server, client, path="/orders", **params):
    return rabbit.get(server.gateway, path, client, **params)


def get_while(server, api_id, client, action, **params):
    return rabbit.get_while(server.gateway, "/orders", api_id, client, action, **params)


def contents(body):
    return [item["content"] for item in body["items"]]


def sse(server, client, path="/orders"):
    stream = requests.get(
        server.gateway + path,
        stream=True,
        timeout=30,
        headers={"Accept": "text/event-stream", "X-Gravitee-Client-Identifier": client},
    )
    assert stream.status_code == 200
    assert read_sse(stream, 1) == [{"retry": "2000"}]  # subscribed: the queue is bound
    return stream


ROUTING = {
    # exchange type: (binding routing key, extra consumer settings, [(routing key, headers, body)], delivered)
    "topic": (
        "orders.*.eu",
        {},
        [
            ("orders.new.eu", None, "a"),
            ("orders.new.us", None, "b"),
            ("orders.new.big.eu", None, "c"),
            ("orders.old.eu", None, "d"),
        ],
        ["a", "d"],
    ),
    "direct": ("eu", {}, [("eu", None, "a"), ("us", None, "b"), ("eu.x", None, "c"), ("eu", None, "d")], ["a", "d"]),
    "fanout": ("ignored", {}, [("x", None, "a"), ("", None, "b"), ("ignored", None, "c")], ["a", "b", "c"]),
    "headers": (
        "",
        {
            "bindingHeaders": [{"name": "region", "value": "eu"}, {"name": "kind", "value": "order"}],
            "headersMatch": "all",
        },
        [
            ("", {"region": "eu", "kind": "order"}, "a"),
            ("", {"region": "eu"}, "b"),
            ("", {"region": "us", "kind": "order"}, "c"),
            ("", {"region": "eu", "kind": "order", "x": "1"}, "d"),
        ],
        ["a", "d"],
    ),
}


@pytest.mark.parametrize("kind", sorted(ROUTING))
def test_each_exchange_type_routes_as_rabbitmq_does(server, names, kind):
    binding, extra, published, delivered = ROUTING[kind]
    name = names.exchange(kind)
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name, kind), binding), consumer_extra=extra))

    def send():
        for key, headers, body in published:
            publish(name, key, body, headers=headers)

    # In publishing order, with each message that must not arrive between two that must.
    assert contents(get_while(server, api_id, "router", send, limit=len(delivered))) == delivered


def test_publish_over_http_post_and_websocket_consume_over_http_get_sse_and_websocket(server, names):
    name = names.exchange()
    api_id = deploy(
        server, names, rabbit_api(consumer=(exchange(name), "orders.#"), producer=(exchange(name), "orders.new"))
    )
    stream = sse(server, "sse-client")
    ws = websocket.create_connection(
        server.gateway.replace("http", "ws", 1) + "/orders",
        timeout=15,
        header=["X-Gravitee-Client-Identifier: ws-client"],
    )
    try:
        consuming(api_id, "ws-client")
        posted = requests.post(
            server.gateway + "/orders", data=b"from http-post", timeout=10, headers={"X-Trace": "t-1"}
        )
        assert posted.status_code == 202, posted.text
        ws.send("from the socket")
        assert [ws.recv(), ws.recv()] == ["from http-post", "from the socket"]
        events = sse_messages(stream, 2)
        assert [e["data"] for e in events] == ["from http-post", "from the socket"]
        assert "x-trace: t-1" in events[0]["comments"]  # request header -> AMQP header -> SSE comment
    finally:
        ws.close()
        stream.close()
    # The http-get client was not there when they were published: it gets what comes next.
    polled = get_while(
        server,
        api_id,
        "poller",
        lambda: publish(name, "orders.late", "late", headers={"h": "v"}, app_id="billing", type="invoice", priority=3),
        limit=1,
    )
    [item] = polled["items"]
    assert item["content"] == "late" and item["headers"] == {"h": ["v"]}
    meta = item["metadata"]
    assert {k: meta[k] for k in ("exchange", "routingKey", "appId", "type", "priority")} == {
        "exchange": name,
        "routingKey": "orders.late",
        "appId": "billing",
        "type": "invoice",
        "priority": "3",
    }
    assert int(meta["deliveryTag"]) >= 1


def test_content_type_travels_as_the_amqp_property_both_ways(server, names):
    """Issue 15, fault 9: a publish carries the request's Content-Type in the AMQP content_type
    property (request headers to message or not), a WebSocket frame its kind (text/plain for a text
    frame); a consumed message's content_type is its contentType metadata."""
    name = names.exchange()
    definition = rabbit_api(consumer=(exchange(name), "in.#"), producer=(exchange(name), "out.new"))
    post = next(e for e in definition["listeners"][0]["entrypoints"] if e["type"] == "http-post")
    post["configuration"]["requestHeadersToMessage"] = False
    api_id = deploy(server, names, definition)
    tap = Tap(name, "out.#")
    try:
        for body, content_type in ((b'{"n": 1}', "application/json"), (b"plain", "text/plain")):
            posted = requests.post(
                server.gateway + "/orders", data=body, headers={"Content-Type": content_type}, timeout=10
            )
            assert posted.status_code == 202, posted.text
        ws = websocket.create_connection(
            server.gateway.replace("http", "ws", 1) + "/orders",
            timeout=15,
            header=["X-Gravitee-Client-Identifier: ct-ws"],
        )
        ws.send("from the socket")
        ws.send_binary(b"\x00\x01")
        got = tap.take(4)
        ws.close()
    finally:
        tap.close()
    print("on the broker:", [(body, properties.content_type) for body, properties in got])
    assert [(body, properties.content_type) for body, properties in got] == [
        (b'{"n": 1}', "application/json"),
        (b"plain", "text/plain"),
        (b"from the socket", "text/plain"),
        (b"\x00\x01", "application/octet-stream"),
    ]
    polled = get_while(
        server, api_id, "ct-poller", lambda: publish(name, "in.x", '{"a": 1}', content_type="application/json"), limit=1
    )
    [item] = polled["items"]
    print("consumed metadata:", item["metadata"])
    assert item["content"] == '{"a": 1}' and item["metadata"]["contentType"] == "application/json"


def test_two_client_ids_each_get_all_messages_and_one_ids_two_connections_share_them(server, names):
    name = names.exchange()
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name), "#")))
    streams = {"a1": sse(server, "a"), "a2": sse(server, "a"), "b": sse(server, "b")}
    consuming(api_id, "a", consumers=2)
    try:
        publish(name, "k", *[f"m{i}" for i in range(10)])
        b = [e["data"] for e in sse_messages(streams["b"], 10)]
        assert b == [f"m{i}" for i in range(10)]  # every message, in order
        a1 = [e["data"] for e in sse_messages(streams["a1"], 5)]
        a2 = [e["data"] for e in sse_messages(streams["a2"], 5)]
        assert sorted(a1 + a2, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(10)]  # each once
        assert a1 and a2  # the broker shares them out between the two connections
    finally:
        for stream in streams.values():
            stream.close()


@pytest.mark.parametrize("qos", ["at-least-once", "at-most-once"])
def test_at_least_once_redelivers_an_unwritten_message_after_a_disconnect(start_server, names, qos):
    """The gateway holds delivered messages it has not written yet (the GET waits for more) when
    it dies: at-least-once gets them again from the broker, at-most-once acknowledged them."""
    server = start_server()
    name = names.exchange()
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name), "#"), qos=qos, get_duration_ms=5000))
    queue = queue_of(api_id, "alo")
    answers = []

    def wait_for_five():
        try:
            answers.append(get(server, "alo", limit=5))
        except requests.ConnectionError:
            answers.append("cut off")

    waiting = threading.Thread(target=wait_for_five)
    waiting.start()
    wait_for(lambda: queue_state(queue) == (0, 1), what="the GET to consume")
    publish(name, "k", "m0", "m1", "m2")
    held = 3 if qos == "at-least-once" else 0  # at-most-once acknowledges on delivery
    wait_for(
        lambda: queue_state(queue)[0] == 0 and unacknowledged(queue) == held,
        what="the three messages to reach the gateway",
    )
    server.proc.kill()  # nothing was written to the client
    server.proc.wait()
    waiting.join()
    assert answers == ["cut off"]
    again = start_server()
    again.wait_serving(api_id, 1)
    body = get(again, "alo", limit=3)
    assert contents(body) == (["m0", "m1", "m2"] if qos == "at-least-once" else [])


def test_a_durable_queue_keeps_messages_while_no_client_is_connected(server, names):
    name = names.exchange()
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name), "#")))
    assert get(server, "away", limit=1)["items"] == []  # the queue is made
    queue = queue_of(api_id, "away")
    publish(name, "k", "m0", "m1", "m2")
    assert queue_state(queue) == (3, 0)  # kept while nobody consumes
    assert contents(get(server, "away", limit=3)) == ["m0", "m1", "m2"]
    # acknowledged, and the poll's consumer cancelled (just after its answer left)
    wait_for(lambda: queue_state(queue) == (0, 0), timeout=5, what="an empty queue with no consumer")


def test_queue_expiry_is_configurable_and_queues_go_when_the_api_is_deleted(server, names):
    name = names.exchange()
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name), "#"), consumer_extra={"queueExpiry": 3}))
    get(server, "brief", limit=1)
    # Watched with rabbitmqctl: a passive declare would count as a use and restart the clock.
    assert queue_of(api_id, "brief") in list_queues()
    wait_for(lambda: queue_of(api_id, "brief") not in list_queues(), timeout=10, what="the unused queue to expire")

    kept = deploy(server, names, rabbit_api(consumer=(exchange(name), "#"), path="/kept"))
    for client in ("c1", "c2"):
        get(server, client, path="/kept", limit=1)
        assert queue_state(queue_of(kept, client)) == (0, 0)
    assert server.mgmt("POST", f"/apis/{kept}/_stop").status_code == 204
    assert server.mgmt("DELETE", f"/apis/{kept}").status_code == 204
    assert queue_state(queue_of(kept, "c1")) is None and queue_state(queue_of(kept, "c2")) is None
    assert queue_state("gatehouse/queues-of/" + kept) is None


def test_publisher_confirms_a_refused_message_is_an_error_for_the_client(server, names):
    """A queue that rejects what exceeds its length makes the broker nack: with confirms (qos
    auto) the client is told; without (qos none) the gateway cannot know."""
    name = names.exchange()
    declare(name, queue=names.queue("full"), arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    deploy(server, names, rabbit_api(producer=(exchange(name), "k")))
    assert requests.post(server.gateway + "/orders", data=b"fits", timeout=10).status_code == 202
    refused = requests.post(server.gateway + "/orders", data=b"too many", timeout=10)
    assert refused.status_code == 502
    assert refused.json() == {
        "message": "The endpoint failed: the RabbitMQ broker at 127.0.0.1:5672 refused the message (nack)"
    }
    deploy(server, names, rabbit_api(producer=(exchange(name), "k"), path="/fire", qos="none"))
    assert requests.post(server.gateway + "/fire", data=b"dropped", timeout=10).status_code == 202


def test_an_exchange_declared_otherwise_is_a_clear_error_naming_it(server, names):
    name = names.exchange()
    declare(name)  # durable=false
    declare(names.exchange("durable"), durable=True)
    deploy(
        server,
        names,
        rabbit_api(
            consumer=(exchange(name, durable=True), "#"),
            producer=(exchange(names.exchange("durable"), durable=False), "k"),
        ),
    )
    polled = requests.get(server.gateway + "/orders", headers=JSON, timeout=10)
    assert polled.status_code == 502
    assert polled.json() == {
        "message": f"The endpoint failed: exchange '{name}' exists with durable=false; "
        "this endpoint declares durable=true"
    }
    posted = requests.post(server.gateway + "/orders", data=b"x", timeout=10)
    assert posted.status_code == 502
    assert posted.json()["message"] == (
        f"The endpoint failed: exchange '{names.exchange('durable')}' exists "
        "with durable=true; this endpoint declares durable=false"
    )


def test_consumer_and_producer_never_swap_exchanges(server, names):
    incoming, outgoing = names.exchange("in"), names.exchange("out")
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(incoming), "#"), producer=(exchange(outgoing), "k")))
    tap = Tap(outgoing)
    try:

        def send():
            assert requests.post(server.gateway + "/orders", data=b"outbound", timeout=10).status_code == 202
            publish(incoming, "k", "inbound")

        assert contents(get_while(server, api_id, "swap", send, limit=2)) == ["inbound"]
        assert [body for body, _ in tap.take(1)] == [b"outbound"]
        assert tap.take(1, timeout=0.5) == []
    finally:
        tap.close()


def test_a_waiting_consumer_does_not_block_other_requests(server, names):
    name = names.exchange()
    api_id = deploy(
        server, names, rabbit_api(consumer=(exchange(name), "#"), producer=(exchange(name), "k"), get_duration_ms=4000)
    )
    server.deploy_api(mock_api(path="/mock", count=1, interval=0))
    with ThreadPoolExecutor(8) as pool:
        waiting = [pool.submit(get, server, f"idle-{i}") for i in range(6)]
        for i in range(6):
            consuming(api_id, f"idle-{i}")
        for _ in range(5):  # fewer than the GETs' limit (10): they go on waiting
            started = time.monotonic()
            mock = requests.get(server.gateway + "/mock", headers=JSON, timeout=10)
            posted = requests.post(server.gateway + "/orders", data=b"while waiting", timeout=10)
            assert mock.status_code == 200 and posted.status_code == 202
            assert time.monotonic() - started < 0.5
        assert all(not w.done() for w in waiting)  # they were waiting all along
        assert [contents(w.result()) for w in waiting] == [["while waiting"] * 5] * 6


def test_the_broker_closing_the_gateways_connections_loses_nothing_confirmed(server, names):
    name = names.exchange()
    api_id = deploy(server, names, rabbit_api(consumer=(exchange(name), "#"), producer=(exchange(name), "k")))
    tap = Tap(name)
    stream = sse(server, "fault")
    confirmed, stop = [], threading.Event()

    def post_all():
        i = 0
        while not stop.is_set():
            body = f"m{i}"
            if requests.post(server.gateway + "/orders", data=body.encode(), timeout=15).status_code == 202:
                confirmed.append(body)
            i += 1

    poster = threading.Thread(target=post_all)
    poster.start()
    try:
        wait_for(lambda: len(confirmed) >= 20, what="posts before the fault")
        ours = gateway_connections(api_id)
        assert set(ours.values()) == {f"gatehouse/{api_id}/broker"} and len(ours) == 2  # producer, SSE
        assert close_gateway_connections(api_id) == ours
        count = len(confirmed)
        wait_for(lambda: len(confirmed) >= count + 20, what="posts after the fault")
        wait_for(
            lambda: len(gateway_connections(api_id)) == 2, what=f"the gateway to reconnect (log: {server.log[-1500:]})"
        )
    finally:
        stop.set()
        poster.join()
    received, deadline = set(), time.monotonic() + 30
    while not set(confirmed) <= received and time.monotonic() < deadline:
        received.update(e["data"] for e in sse_messages(stream, 1, timeout=deadline - time.monotonic()))
    stream.close()
    assert set(confirmed) <= received  # at least once: a message may come twice, none is lost
    tapped, deadline = set(), time.monotonic() + 10
    while not set(confirmed) <= tapped and time.monotonic() < deadline:  # a retried publish may come twice
        tapped.update(body.decode() for body, _ in tap.take(1, timeout=1))
    tap.close()  # the test's own connection was left open by the fault
    assert set(confirmed) <= tapped


def test_a_broker_that_cannot_be_reached_is_a_clear_error_and_shows_in_the_portal(server, names):
    closed = free_port()
    definition = rabbit_api(consumer=(exchange(names.exchange()), "#"), producer=(exchange(names.exchange()), "k"))
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["serverPort"] = closed
    api_id = deploy(server, names, definition)
    expected = f"the RabbitMQ broker at 127.0.0.1:{closed} cannot be reached"
    started = time.monotonic()
    polled = requests.get(server.gateway + "/orders", headers=JSON, timeout=20)
    assert (polled.status_code, polled.json()) == (502, {"message": f"The endpoint failed: {expected}"})
    posted = requests.post(server.gateway + "/orders", data=b"x", timeout=20)
    assert (posted.status_code, posted.json()) == (502, {"message": f"The endpoint failed: {expected}"})
    assert time.monotonic() - started < 10
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    status_url = re.search(r'hx-get="([^"]+/_status)"', page.text).group(1)
    status = browser.get(server.portal + status_url).text
    assert "unreachable" in status and f"127.0.0.1:{closed}" in status
