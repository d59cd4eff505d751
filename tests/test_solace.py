"""The Solace endpoint end to end: a real gateway, its real Solace worker process, and in that
worker the test double of solace-pubsubplus (support/solace_double.py) in place of the library, since no
Solace broker can run here. Everything a client sees crosses the real gateway <-> worker channel."""

import html
import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests
import websocket

from support.apis import solace_api
from support.gatehouse import free_port, launch
from support.message_clients import JSON
from support.portal import portal_login
from support.solace import double_env, poll, post, sse, wait_gone, worker_pids, ws_connect
from support.streams import next_message


@pytest.fixture(scope="module")
def double_server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("solace"), **double_env())
    yield server
    server.stop()


@pytest.fixture
def server(double_server):
    yield double_server
    double_server.delete_all_apis()


def test_publish_over_post_and_websocket_consume_over_http_get_sse_websocket_persistent(server):
    server.deploy_api(solace_api(topics=["orders/eu"], consumer_topics=["orders/*"], get_count=3))
    poll(server, client="poller")  # the poller's queue exists and attracts orders/*
    poll(server, client="w")  # so does the websocket client's: it gets what comes before it connects
    stream = sse(server)
    try:
        post(server, "ünïcode body".encode(), **{"X-Trace": "t-1", "X-Note": "café"})
        ws = ws_connect(server)
        try:
            ws.send_binary(b"\x00\xffbinary")
            items = poll(server, client="poller")["items"]
            assert [i["content"] for i in items[:1]] == ["ünïcode body"]
            assert len(items) == 2 and items[1]["content"] == "\x00\ufffdbinary"  # bytes crossed unchanged
            first = items[0]
            assert first["headers"]["x-trace"] == ["t-1"] and first["headers"]["x-note"] == ["café"]
            metadata = first["metadata"]
            assert metadata["destinationName"] == "orders/eu"
            assert metadata["isRedelivered"] is False and metadata["isCached"] is False
            assert re.fullmatch(r"solace-double/\d+/#\d{8}", metadata["senderId"])
            assert abs(int(metadata["senderTimestamp"]) / 1000 - time.time()) < 60

            events = [next_message(stream) for _ in range(2)]
            assert events[0]["data"] == "ünïcode body" and "x-trace: t-1" in events[0]["comments"]
            assert "destinationName: orders/eu" in events[0]["comments"]
            assert ws.recv() == "ünïcode body"
            assert ws.recv() == b"\x00\xffbinary"  # not UTF-8: a binary frame, byte for byte
        finally:
            ws.close()
    finally:
        stream.close()


def test_direct_subscription_for_qos_none_gets_only_what_comes_while_connected(server):
    server.deploy_api(solace_api(topics=["prices/eu"], consumer_topics=["prices/>"], qos="none"))
    post(server, b"before anyone listens")
    stream = sse(server)
    ws = ws_connect(server)
    try:
        # The websocket's receiver starts after its upgrade: publish until it has one.
        deadline = time.monotonic() + 10
        ws.settimeout(0.2)
        received = []
        while not received and time.monotonic() < deadline:
            post(server, b"live")
            try:
                received.append(ws.recv())
            except websocket.WebSocketTimeoutException:
                pass
        assert received == ["live"]
        event = next_message(stream)
        assert event["data"] == "live"  # a direct receiver has no queue: the earlier message is gone
        assert "isRedelivered: false" in event["comments"]
    finally:
        ws.close()
        stream.close()


def test_at_least_once_unwritten_message_comes_again_flagged_redelivered(server):
    api = solace_api(topics=["jobs/a"], qos="at-least-once", get_count=5, get_duration_ms=300)
    server.deploy_api(api)
    poll(server, client="c")
    post(server, b"one")
    post(server, b"two")
    # limit=1: both reach the gateway, one is written (and acknowledged); the other is not written.
    first = poll(server, client="c", limit=1)["items"]
    assert [(i["content"], i["metadata"]["isRedelivered"]) for i in first] == [("one", False)]
    again = poll(server, client="c")["items"]
    assert [(i["content"], i["metadata"]["isRedelivered"]) for i in again] == [("two", True)]
    assert poll(server, client="c")["items"] == []  # "one" was acknowledged: it does not come back


def test_broker_errors_are_clear_to_every_client_and_in_the_portal(server):
    closed = free_port()
    cases = {
        "/refused": (
            solace_api(url=f"tcp://127.0.0.1:{closed}", path="/refused"),
            f"Connection refused to tcp://127.0.0.1:{closed}",
        ),
        "/no-vpn": (solace_api(path="/no-vpn", vpn="nope"), "VPN not found or not available: 'nope'"),
        "/bad-password": (
            solace_api(path="/bad-password", shared={"security": {"auth": {"username": "admin", "password": "wrong"}}}),
            "Authentication failed",
        ),
    }
    for path, (api, expected) in cases.items():
        api_id = server.deploy_api(api)
        response = requests.post(server.gateway + path, data=b"x", timeout=15)
        assert response.status_code == 502 and expected in response.json()["message"], response.text
        response = requests.get(server.gateway + path, headers=JSON, timeout=15)
        assert response.status_code == 502 and expected in response.json()["message"], response.text
        with requests.get(
            server.gateway + path, stream=True, timeout=15, headers={"Accept": "text/event-stream"}
        ) as stream:
            event = next_message(stream)
            assert event["event"] == "error" and expected in event["data"]
        code, reason = ws_close(server, path)
        assert code == 1011 and expected in reason
        assert expected in endpoint_status(server, api_id)


def ws_close(server, path):
    """(code, reason) of the close frame a websocket client gets."""
    ws = ws_connect(server, path)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        return int.from_bytes(data[:2], "big"), data[2:].decode()
    finally:
        ws.close()


def endpoint_status(server, api_id):
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints").text
    status_url = re.search(r'/apis/[^"]+/endpoints/\d+/_status', page).group(0)
    return html.unescape(browser.get(server.portal + status_url).text)


RESUBSCRIBED = "subscribed again after the Solace worker process was killed by signal SIGKILL"


def kill_worker(server, resubscribing=1):
    """Kill the worker; wait until that many open subscriptions logged that they subscribed again."""

    def count():
        return Path(server.proc.log_path).read_text().count(RESUBSCRIBED)

    before = count()
    [pid] = worker_pids(server)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while count() < before + resubscribing:
        assert time.monotonic() < deadline, f"not subscribed again within 10 s: {server.log}"
        time.sleep(0.05)
    return pid


@pytest.mark.parametrize("qos", ["auto", "none"])
def test_after_a_worker_crash_open_streams_subscribe_again_on_a_new_worker(server, qos):
    path = f"/crash-{qos}"
    server.deploy_api(solace_api(topics=[f"crash/{qos}"], qos=qos, path=path))
    stream = sse(server, path=path, client=f"k-{qos}")
    try:
        post(server, b"before the crash", path=path)
        assert next_message(stream)["data"] == "before the crash"
        pid = kill_worker(server)
        assert worker_pids(server) != [pid]
        # The double's broker lived in the killed worker: the stream's queue was made again by
        # subscribing again, so it gets what is published from now on, on the same connection.
        post(server, b"after the crash", path=path)
        event = next_message(stream)
        assert (event["event"], event["data"]) == ("message", "after the crash")
    finally:
        stream.close()


def test_a_worker_that_keeps_dying_ends_the_stream_with_a_clear_error(server):
    server.deploy_api(solace_api(topics=["crash/loop"], path="/crash-loop"))
    stream = sse(server, path="/crash-loop", client="looping")
    try:
        for _ in range(3):
            kill_worker(server)
        kill_worker(server, resubscribing=0)
        event = next_message(stream)
        assert event["event"] == "error"
        assert (
            "the Solace worker process was killed by signal SIGKILL (4 times while this client was connected); "
            "reconnect to resume"
        ) in event["data"]
    finally:
        stream.close()
    post(server, b"a new worker serves the next call", path="/crash-loop")
    assert "killed by signal SIGKILL" in server.log


def test_worker_starts_on_first_use_and_stops_with_the_gateway(start_server):
    server = start_server(**double_env())
    server.deploy_api(solace_api(topics=["life/a"]))
    assert worker_pids(server) == []
    post(server, b"x")
    [pid] = worker_pids(server)
    server.stop()
    assert wait_gone(pid)


def test_response_topic_travels_as_a_user_property(server):
    server.deploy_api(solace_api(topics=["multi/a"], producer={"responseTopic": "multi/replies"}))
    poll(server, client="m")
    post(server, b"m", **{"X-Tag": "a, b"})
    [item] = poll(server, client="m")["items"]
    assert item["headers"]["x-tag"] == ["a, b"]
    assert item["headers"]["responseTopic"] == ["multi/replies"]
