"""The gateway's life cycle and its clients' faults (issue 15, faults 4 and 7), against a real
`gatehouse serve`: SIGTERM with a request in flight, an SSE client that stops reading, and
request bodies that are malformed or cut short, sent over raw sockets."""

import itertools
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from support.apis import mock_api
from support.gatehouse import environment, launch_gunicorn, refused, refused_start
from support.http_backends import ANSWER, start_slow_backend
from support.mosquitto import Collector, shared_broker, unique_topic
from support.streams import next_message, read_sse

pytestmark = pytest.mark.slow  # stops gateways and waits out client timeouts

WRITE_TIMEOUT = 2
MARGIN = 3  # a loaded machine's scheduling, on top of a timeout


@pytest.fixture
def backend():
    httpd = start_slow_backend()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def proxy_api(path, backend):
    return {
        "name": f"Proxy {path}",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "proxy",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": [{"type": "http-proxy"}]}],
        "endpointGroups": [
            {
                "name": "backend",
                "type": "http-proxy",
                "endpoints": [
                    {
                        "name": "backend",
                        "type": "http-proxy",
                        "inheritConfiguration": False,
                        "configuration": {"target": f"http://127.0.0.1:{backend.server_port}"},
                    }
                ],
            }
        ],
    }


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


def kept_alive(port):
    """A connection that served one request and waits, kept alive, for the next."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while not answer.endswith(b"No context-path matches the request URI."):
        answer += sock.recv(4096)
    return sock


# ----- fault 4: shutdown cuts long requests -----
def test_sigterm_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_once_it_ended(start_server, backend):
    server = start_server(GATEHOUSE_SHUTDOWN_GRACE_SECONDS="30")  # the default (the tests' servers use 5)
    server.deploy_api(proxy_api("/slow", backend))
    server.deploy_api(mock_api("/ticks", interval=100))
    idle = kept_alive(server.gateway_port)
    stream = requests.get(server.gateway + "/ticks", headers={"Accept": "text/event-stream"}, stream=True, timeout=10)
    assert next_message(stream)["data"] == "hello"
    with ThreadPoolExecutor(1) as pool:
        # Longer than the 5 s the gateway used to give requests in flight before it exited.
        in_flight = pool.submit(requests.get, server.gateway + "/slow/report?seconds=7", timeout=30)
        assert backend.arrived.wait(10)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        until(
            lambda: refused(server.gateway_port) and refused(port_of(server.portal)),
            3,
            "both ports refuse new connections",
        )
        assert idle.recv(1) == b"", "the idle kept-alive connection is closed"
        assert time.monotonic() - signalled < 3
        events = read_sse(stream, 1000, timeout=5)
        assert events[-1]["event"] == "goaway"  # the stream was told to end, and it did
        assert server.proc.poll() is None and not in_flight.done()
        answer = in_flight.result()
        finished = time.monotonic()
    assert answer.status_code == 200 and answer.content == ANSWER
    assert server.proc.wait(timeout=10) == 0
    exited = time.monotonic()
    print(
        f"the request in flight: {answer.status_code}, {len(answer.content)} bytes, {finished - signalled:.1f} s "
        f"after SIGTERM; the process exited {exited - finished:.2f} s after it"
    )
    assert exited - finished < 2, f"exited {exited - finished:.1f} s after the last request ended"
    assert "Traceback" not in server.log


def test_past_the_grace_a_request_in_flight_is_cut_and_the_process_exits(start_server, backend):
    server = start_server(GATEHOUSE_SHUTDOWN_GRACE_SECONDS="1")
    server.deploy_api(proxy_api("/slow", backend))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, server.gateway + "/slow/report?seconds=5", timeout=30)
        assert backend.arrived.wait(10)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        server.proc.wait(timeout=10)
        took = time.monotonic() - signalled
        with pytest.raises(requests.ConnectionError):  # no answer: the connection ends
            in_flight.result()
    print(f"exited {took:.2f} s after SIGTERM, the 5 s request cut")
    assert 0.9 <= took <= 2.5, f"exited {took:.1f} s after SIGTERM, with a grace of 1 s"
    assert "the 1 s shutdown grace (GATEHOUSE_SHUTDOWN_GRACE_SECONDS) is over: closing the 1 connections" in server.log


@pytest.mark.parametrize(
    "name, value, wanted",
    [
        ("GATEHOUSE_SHUTDOWN_GRACE_SECONDS", "soon", "a number of seconds greater than 0, not 'soon'"),
        ("GATEHOUSE_WRITE_TIMEOUT_SECONDS", "-1", "a number of seconds greater than 0, not '-1'"),
    ],
)
def test_a_wrong_shutdown_or_write_setting_stops_the_start_naming_it(tmp_path, name, value, wanted):
    done = refused_start(tmp_path, environment(tmp_path, **{name: value}), timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{name} must be {wanted}" in done.stderr
    assert "Gatehouse portal:" not in done.stdout


# ----- fault 7: slow readers and bad bodies -----
def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


STOPS_READING = {
    "sse": b"GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    "websocket": b"GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
}


@pytest.mark.parametrize("kind", STOPS_READING)
def test_a_client_that_stops_reading_is_dropped_while_another_keeps_receiving(start_server, kind):
    server = start_server(GATEHOUSE_WRITE_TIMEOUT_SECONDS=str(WRITE_TIMEOUT))
    server.deploy_api(mock_api("/flood", content="x" * 4000, interval=1))  # ~4 MB/s to each client
    arrivals, reading, stop_at = [], threading.Event(), [time.monotonic() + 60]

    def read_on():
        with requests.get(
            server.gateway + "/flood", headers={"Accept": "text/event-stream"}, stream=True, timeout=10
        ) as normal:
            for line in normal.iter_lines():
                if line.startswith(b"data: x"):
                    arrivals.append(time.monotonic())
                    reading.set()
                if time.monotonic() > stop_at[0]:
                    return

    reader = threading.Thread(target=read_on, daemon=True)
    reader.start()
    assert reading.wait(10)
    rss_before = rss_kb(server.proc.pid)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    stuck.connect(("127.0.0.1", server.gateway_port))
    stuck.sendall(STOPS_READING[kind])
    connected = time.monotonic()
    # the gateway's end of this one connection, not its descriptor count (other sockets come and go)
    port = stuck.getsockname()[1]
    until(lambda: server.connections_to(port) == 1, 5, "the gateway serves the client that will stop reading")
    until(lambda: server.connections_to(port) == 0, WRITE_TIMEOUT + 8, "the client that reads nothing is dropped")
    dropped = time.monotonic() - connected
    rss_growth_mb = (rss_kb(server.proc.pid) - rss_before) / 1024
    stop_at[0] = time.monotonic() + 1  # the normal client reads one second more
    reader.join(15)
    stuck.settimeout(5)
    received, closed, deadline = b"", False, time.monotonic() + 10
    try:
        while not closed and time.monotonic() < deadline:  # what the kernel buffered, then the end
            chunk = stuck.recv(1 << 20)
            received += chunk
            closed = not chunk
    except ConnectionResetError:
        closed = True
    stuck.close()
    assert closed, "the gateway still writes to the client that read nothing"
    assert received.startswith(b"HTTP/1.1 200 OK" if kind == "sse" else b"HTTP/1.1 101 Switching Protocols")
    print(f"{kind}: dropped after {dropped:.1f} s, RSS grew {rss_growth_mb:.1f} MB, {len(received)} bytes buffered")
    assert WRITE_TIMEOUT - 0.5 <= dropped <= WRITE_TIMEOUT + MARGIN + 3, f"dropped after {dropped:.1f} s"
    assert rss_growth_mb < 30, f"the gateway grew by {rss_growth_mb:.0f} MB"
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) > 1000 and max(gaps) < 1, f"{len(arrivals)} messages, longest gap {max(gaps):.2f} s"
    assert "Traceback" not in server.log


def exchange(port, data, half_close=False, timeout=10):
    """Raw bytes to the gateway (then, with half_close, the end of what the client sends); the status
    line and everything it answered until it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received.split(b"\r\n", 1)[0].decode(), received


HEAD = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
BAD_BODIES = [  # (headers, body, whether the client then stops sending)
    (b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n", False),  # not a chunk size
    (b"Transfer-Encoding: chunked\r\n", b"5\r\nhel", True),  # cut short inside a chunk
    (b"Content-Length: 10\r\n", b"hello", True),  # cut short before its length
]


@pytest.fixture
def serving(start_server, tmp_path):
    """serving("serve" | "gunicorn"): a server; under gunicorn its own HTTP parser reads the body,
    and the gateway must turn what it hands over short into 400 too."""
    started = []

    def start(runner):
        if runner == "serve":
            return start_server()
        started.append(launch_gunicorn(tmp_path, workers=1))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def bad_bodies_refused_then(port, path, chunk):
    """Each of BAD_BODIES answered 400 saying the body could not be read; then the status line of
    the answer to a well-framed chunked body holding `chunk` (5 bytes)."""
    for headers, body, half_close in BAD_BODIES:
        line, received = exchange(port, HEAD % path + headers + b"\r\n" + body, half_close)
        assert line == "HTTP/1.1 400 Bad Request", received
        assert b"The request body could not be read" in received
    return exchange(port, HEAD % path + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + chunk + b"\r\n0\r\n\r\n")[0]


@pytest.mark.parametrize("runner", ["serve", "gunicorn"])
def test_a_malformed_or_cut_short_body_to_http_post_is_400_and_nothing_is_published(serving, runner):
    broker = shared_broker()
    topic = unique_topic("bad-bodies")
    server = serving(runner)
    server.deploy_api(
        {
            "name": "Bad bodies",
            "apiVersion": "1",
            "definitionVersion": "4.0.0",
            "type": "message",
            "listeners": [{"type": "http", "paths": [{"path": "/post"}], "entrypoints": [{"type": "http-post"}]}],
            "endpointGroups": [
                {
                    "name": "mqtt",
                    "type": "mqtt5",
                    "sharedConfiguration": {
                        "producer": {"enabled": True, "topic": topic},
                        "consumer": {"enabled": False},
                    },
                    "endpoints": [
                        {
                            "name": "broker",
                            "type": "mqtt5",
                            "inheritConfiguration": True,
                            "configuration": {"serverHost": broker[0], "serverPort": broker[1]},
                        }
                    ],
                }
            ],
        }
    )
    direct = Collector(broker, topic)
    try:
        assert bad_bodies_refused_then(server.gateway_port, b"/post", b"after") == "HTTP/1.1 202 Accepted"
        assert [m.payload for m in direct.get(1)] == [b"after"]
        assert direct.nothing_within(0.5)
    finally:
        direct.close()
    assert "Traceback" not in server.log
    assert server.log.count("The request body could not be read") == 1  # one line for the three


@pytest.mark.parametrize("runner", ["serve", "gunicorn"])
def test_a_malformed_or_cut_short_body_to_a_proxy_api_is_400_and_no_backend_gets_it_whole(serving, backend, runner):
    server = serving(runner)
    server.deploy_api(proxy_api("/store", backend))
    assert bad_bodies_refused_then(server.gateway_port, b"/store/x", b"whole") == "HTTP/1.1 200 OK"
    assert backend.complete == [b"whole"]
    assert "Traceback" not in server.log
