"""Slow clients and descriptor floods (issue 14, defect 4), against a real `gatehouse serve`
over raw sockets: header and keep-alive timeouts on every listener, streams they must not cut,
and a flood of idle gateway connections that must leave the portal answering."""

import http.client
import os
import resource
import selectors
import socket
import time

import pytest
import requests
import websocket

from gateway_runtime.listeners import Limits, SettingError
from support.apis import mock_api
from support.gatehouse import environment, launch, refused_start
from support.streams import next_message

HEADER_TIMEOUT = 2
KEEPALIVE_TIMEOUT = 3
MARGIN = 3  # a loaded machine's scheduling, on top of a timeout
BYTE_EVERY = 5  # seconds between the bytes a slow client sends
HTTP_HEAD = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
TLS_HELLO = bytes.fromhex("160301")  # how a TLS record starts: the server waits for the rest


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = launch(
        tmp_path_factory.mktemp("limits"),
        GATEHOUSE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        GATEHOUSE_KEEPALIVE_TIMEOUT_SECONDS=str(KEEPALIVE_TIMEOUT),
    )
    yield server
    server.stop()


def port_of(url):
    return int(url.rsplit(":", 1)[1])


class SlowClient:
    """A connection that sends `head` at once (if any), then `drip` one byte every BYTE_EVERY seconds."""

    def __init__(self, port, head, drip):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.opened = time.monotonic()
        self.sock.sendall(head)
        self.sock.setblocking(False)
        self.drip, self.next_byte, self.received, self.closed = drip, self.opened, b"", None

    def send_due_byte(self, now):
        if self.closed is None and now >= self.next_byte and self.drip:
            try:
                self.sock.send(self.drip[:1])
            except OSError:
                return
            self.drip, self.next_byte = self.drip[1:], now + BYTE_EVERY

    def read(self, now):
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:  # reset by the server: closed as well
            data = b""
        self.received += data
        if not data:
            self.closed = now - self.opened


def drive(clients, until):
    """Send each client's bytes when due and note when the server closes it, until all are closed."""
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        while time.monotonic() < until and any(c.closed is None for c in clients):
            now = time.monotonic()
            for client in clients:
                client.send_due_byte(now)
            for key, _ in selector.select(timeout=0.2):
                key.data.read(time.monotonic())
                if key.data.closed is not None:
                    selector.unregister(key.fileobj)


def test_300_clients_sending_a_header_byte_every_5_s_are_closed_after_the_header_timeout(limited):
    http_ports = [limited.gateway_port] * 140 + [port_of(limited.portal)] * 140
    clients = []
    try:
        clients += [SlowClient(port, HTTP_HEAD, b"X-Slow: " + b"a" * 50) for port in http_ports]
        clients += [SlowClient(limited.tcp_port, b"", TLS_HELLO) for _ in range(20)]
        drive(clients, until=time.monotonic() + HEADER_TIMEOUT + BYTE_EVERY + MARGIN + 5)
        still_open = [c for c in clients if c.closed is None]
        assert still_open == [], f"{len(still_open)} of {len(clients)} slow clients are still connected"
        times = sorted(c.closed for c in clients)
        assert HEADER_TIMEOUT - 0.3 <= times[0] and times[-1] <= HEADER_TIMEOUT + MARGIN, times
        answers = {c.received.split(b"\r\n", 1)[0] for c in clients[: len(http_ports)]}
        assert answers == {b"HTTP/1.1 408 Request Timeout"}
        assert all(c.received == b"" for c in clients[len(http_ports) :])  # TLS: the handshake is given up
    finally:
        for client in clients:
            client.sock.close()


def request(sock, path):
    """One GET on a kept-alive connection; the response's status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response.status


@pytest.mark.parametrize("listener, path, status", [("portal", "/login", 200), ("gateway", "/nothing-here", 404)])
def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(limited, listener, path, status):
    port = port_of(getattr(limited, listener))
    with socket.create_connection(("127.0.0.1", port), timeout=KEEPALIVE_TIMEOUT + MARGIN) as sock:
        assert request(sock, path) == status
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle past the header timeout: only the keep-alive one applies
        assert request(sock, path) == status
        idle_from = time.monotonic()
        assert sock.recv(1) == b""
        assert KEEPALIVE_TIMEOUT - 0.3 <= time.monotonic() - idle_from <= KEEPALIVE_TIMEOUT + MARGIN


def test_streams_and_a_slow_steady_upload_outlast_both_timeouts(limited):
    api_id = limited.deploy_api(mock_api("/long", content="tick", interval=300))
    url = limited.gateway + "/long"
    outlast = HEADER_TIMEOUT + KEEPALIVE_TIMEOUT + 1
    try:
        with requests.get(url, headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as sse:
            ws = websocket.create_connection(url.replace("http", "ws"), timeout=5)
            try:
                started = time.monotonic()
                while time.monotonic() - started < outlast:
                    assert next_message(sse)["data"] == "tick"
                    assert ws.recv() == "tick"
            finally:
                ws.close()

        body = b"0123456789"
        with socket.create_connection(("127.0.0.1", limited.gateway_port), timeout=5) as sock:
            sock.sendall(b"POST /long HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n")
            for i in range(len(body)):  # one byte every 0.7 s: 7 s in all, steadily
                sock.sendall(body[i : i + 1])
                time.sleep(outlast / len(body))
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 202 and response.read() == b""
    finally:
        assert limited.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
        assert limited.mgmt("DELETE", f"/apis/{api_id}").status_code == 204


def open_files(soft, hard):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def soft_open_file_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    return int(line.split()[3])


def test_260_idle_gateway_connections_under_ulimit_256_leave_the_portal_answering(start_server):
    # Timeouts far beyond the test: the portal must answer because the gateway's share is capped.
    server = start_server(
        preexec_fn=open_files(64, 256),
        GATEHOUSE_HEADER_TIMEOUT_SECONDS="300",
        GATEHOUSE_KEEPALIVE_TIMEOUT_SECONDS="300",
    )
    assert soft_open_file_limit(server.proc.pid) == 256  # raised from 64 to the hard limit
    assert "open-file limit: 256 descriptors (raised from 64)" in server.log
    idle = []
    try:
        idle += [socket.create_connection(("127.0.0.1", server.gateway_port), timeout=5) for _ in range(260)]
        started = time.monotonic()
        login = requests.get(server.portal + "/login", timeout=2)
        assert login.status_code == 200 and time.monotonic() - started < 2
        assert server.mgmt("GET", "/apis").status_code == 200
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 15
    while True:  # the connections waiting in the backlog are accepted, see their client gone, and end
        try:
            answer = requests.get(server.gateway + "/nothing-here", timeout=2)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, "the gateway does not answer again after the flood"
    assert answer.status_code == 404
    assert server.log.count("Too many open files") <= 1 and "Traceback" not in server.log, server.log


def test_past_the_gateway_cap_counting_its_tcp_port_a_client_waits_until_a_connection_ends(start_server):
    server = start_server(GATEHOUSE_MAX_CONNECTIONS_GATEWAY="4")
    held = []
    try:
        for _ in range(3):  # each answered once, so each holds its place (kept alive) before the next step
            held.append(socket.create_connection(("127.0.0.1", server.gateway_port), timeout=5))
            held[-1].sendall(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = http.client.HTTPResponse(held[-1])
            answer.begin()
            answer.read()
        descriptors = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        held.append(socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5))
        held[-1].sendall(TLS_HELLO)  # a handshake under way holds its place
        deadline = time.monotonic() + 5  # its place is taken once the server has accepted it
        while len(os.listdir(f"/proc/{server.proc.pid}/fd")) <= descriptors:
            assert time.monotonic() < deadline, "the server did not accept the TCP connection"
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", server.gateway_port), timeout=1) as waiting:
            waiting.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            with pytest.raises(TimeoutError):
                waiting.recv(1)
            assert requests.get(server.portal + "/login", timeout=2).status_code == 200
            held.pop().close()  # the TCP connection: its place goes to the waiting client
            waiting.settimeout(5)
            response = http.client.HTTPResponse(waiting)
            response.begin()
            assert response.status == 404 and response.read() == b"No context-path matches the request URI."
    finally:
        for sock in held:
            sock.close()


def test_a_wrong_limit_setting_stops_the_start_naming_it(tmp_path):
    env = environment(tmp_path, GATEHOUSE_MAX_CONNECTIONS_PORTAL="lots")
    done = refused_start(tmp_path, env)
    assert done.returncode == 2
    assert "GATEHOUSE_MAX_CONNECTIONS_PORTAL must be a whole number greater than 0, not 'lots'" in done.stderr
    assert "Gatehouse portal:" not in done.stdout


def test_the_caps_default_to_shares_of_the_free_descriptors_and_settings_override_them():
    assert Limits.from_environment(1000, {}) == Limits(
        header_timeout=10.0, keepalive_timeout=30.0, max_gateway=350, max_portal=100
    )
    assert Limits.from_environment(2, {}).max_portal == 1
    given = Limits.from_environment(
        1000, {"GATEHOUSE_MAX_CONNECTIONS_GATEWAY": "7", "GATEHOUSE_HEADER_TIMEOUT_SECONDS": "2.5"}
    )
    assert (given.max_gateway, given.header_timeout) == (7, 2.5)
    for name, value in (
        ("GATEHOUSE_KEEPALIVE_TIMEOUT_SECONDS", "0"),
        ("GATEHOUSE_HEADER_TIMEOUT_SECONDS", "nan"),
        ("GATEHOUSE_MAX_CONNECTIONS_GATEWAY", "1.5"),
    ):
        with pytest.raises(SettingError, match=name):
            Limits.from_environment(1000, {name: value})
