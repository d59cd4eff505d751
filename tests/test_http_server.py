"""The gateway port's own HTTP/1.1 server (issue 17): pipelining, chunked uploads, Expect:
100-continue, HEAD and a client that stops reading, over raw sockets against a real
`gatehouse serve`, an http-proxy API in front of a backend that keeps what it was sent."""

import itertools
import json
import os
import socket
import time

import pytest

from support.apis import mock_api
from support.gatehouse import launch, until
from support.http_backends import start_keeper
from support.plans import plan, proxy_api

WRITE_TIMEOUT = 2
MARGIN = 3  # a loaded machine's scheduling, on top of a timeout
HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def backend():
    server = start_keeper()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gatehouse(tmp_path_factory, backend):
    server = launch(tmp_path_factory.mktemp("http-server"), GATEHOUSE_WRITE_TIMEOUT_SECONDS=str(WRITE_TIMEOUT))
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    server.deploy_api(proxy_api("/up", url + "/base", [plan("open", "KEY_LESS")]))
    server.deploy_api(proxy_api("/keyed", url, [plan("gold", "API_KEY")]))
    server.deploy_api(mock_api("/flood", content="x" * 4000, interval=1, entrypoints=[{"type": "sse"}]))
    yield server
    server.stop()


@pytest.fixture
def bodies(backend):
    backend.bodies.clear()
    return backend.bodies


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.gateway_port), timeout=10)
    return sock, sock.makefile("rb")


def read_response(answers, head_only=False):
    """(status, headers with lower-case names, body) of the next response on the connection."""
    status = int(answers.readline().split()[1])
    headers = {}
    while (line := answers.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status < 200 or status in (204, 304):
        return status, headers, b""
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int(answers.readline().split(b";")[0], 16):
            body += answers.read(size)
            answers.readline()
        answers.readline()
        return status, headers, body
    return status, headers, answers.read(int(headers["content-length"]))


def test_three_requests_in_one_write_are_answered_in_order_on_the_connection(gatehouse):
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(b"".join(b"GET /up/%d HTTP/1.1\r\n%s\r\n" % (i, HOST) for i in (1, 2, 3)))
        paths = [json.loads(read_response(answers)[2])["path"] for _ in range(3)]
    assert paths == ["/base/1", "/base/2", "/base/3"]


def test_a_chunked_upload_reaches_the_backend_whole_and_the_next_request_is_served(gatehouse, bodies):
    # Uneven chunks, with CRLF CRLF inside the data (where a chunked body could seem to end).
    data = os.urandom(150_000) + b"\r\n\r\n0\r\n\r\n" + os.urandom(150_000)
    cuts = [0, 1, 4000, 70_000, 150_003, 150_009, 299_000, len(data)]
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (b - a, data[a:b]) for a, b in itertools.pairwise(cuts))
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(b"POST /up/file HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n" % HOST)
        for at in range(0, len(chunks), 50_000):  # in pieces: a piece may end anywhere in a chunk
            sock.sendall(chunks[at : at + 50_000])
        sock.sendall(b"0\r\nX-Trailer: t\r\n\r\nGET /up/next HTTP/1.1\r\n%s\r\n" % HOST)
        uploaded = read_response(answers)
        following = read_response(answers)
    assert uploaded[0] == 200 and json.loads(uploaded[2]) == {"size": len(data)}
    assert bodies == [data]
    assert following[0] == 200 and json.loads(following[2])["path"] == "/base/next"


def test_a_client_expecting_100_continue_gets_it_then_the_answer(gatehouse, bodies):
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(b"PUT /up/x HTTP/1.1\r\n%sContent-Length: 5\r\nExpect: 100-continue\r\n\r\n" % HOST)
        assert read_response(answers)[0] == 100  # before any byte of the body
        sock.sendall(b"hello")
        status, _, body = read_response(answers)
    assert status == 200 and json.loads(body) == {"size": 5}
    assert bodies == [b"hello"]


def test_a_refused_request_expecting_100_continue_gets_its_answer_without_it(gatehouse, bodies):
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(b"PUT /keyed/x HTTP/1.1\r\n%sContent-Length: 5\r\nExpect: 100-continue\r\n\r\n" % HOST)
        status, headers, _ = read_response(answers)
        assert status == 401
        assert headers["connection"] == "close"  # the body never sent: no next request can follow
        assert answers.read() == b""
    assert bodies == []


def test_head_gets_the_headers_without_a_body_and_the_connection_serves_on(gatehouse):
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(b"HEAD /up/h HTTP/1.1\r\n%s\r\n" % HOST)
        status, headers, _ = read_response(answers, head_only=True)
        sock.sendall(b"GET /up/after HTTP/1.1\r\n%s\r\n" % HOST)
        after = read_response(answers)  # the very next bytes: no body was written for HEAD
    assert status == 200 and int(headers["content-length"]) == len(json.dumps({"path": "/base/h"}))
    assert after[0] == 200 and json.loads(after[2])["path"] == "/base/after"


def test_an_sse_client_that_stops_reading_is_dropped_after_the_write_timeout(gatehouse):
    rss_before = gatehouse.rss_mb()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    with stuck:
        stuck.connect(("127.0.0.1", gatehouse.gateway_port))
        stuck.sendall(b"GET /flood HTTP/1.1\r\n%sAccept: text/event-stream\r\n\r\n" % HOST)
        connected, port = time.monotonic(), stuck.getsockname()[1]
        until(lambda: gatehouse.connections_to(port) == 1, 5)  # the gateway serves the stream
        until(lambda: gatehouse.connections_to(port) == 0, WRITE_TIMEOUT + 8)  # then drops it
        dropped = time.monotonic() - connected
    growth_mb = gatehouse.rss_mb() - rss_before
    assert WRITE_TIMEOUT - 0.5 <= dropped <= WRITE_TIMEOUT + MARGIN + 3, f"dropped after {dropped:.1f} s"
    assert growth_mb < 30, f"the gateway grew by {growth_mb:.0f} MB"
    assert "Traceback" not in gatehouse.log


@pytest.mark.parametrize(
    ("what", "request_head", "status", "message"),
    [
        (
            "request line",
            b"POST /up/" + b"a" * 8192 + b" HTTP/1.1\r\n" + HOST,
            414,
            b"request line is longer than 8192",
        ),
        (
            "header line",
            b"POST /up/x HTTP/1.1\r\n" + HOST + b"X-Big: " + b"b" * 65536 + b"\r\n",
            431,
            b"longer than 65536",
        ),
    ],
)
def test_a_request_line_or_header_line_past_its_limit_is_refused_and_the_connection_closed(
    gatehouse, bodies, what, request_head, status, message
):
    sock, answers = connect(gatehouse)
    with sock:
        sock.sendall(request_head + b"Content-Length: 2\r\n\r\nhi")
        got, _, body = read_response(answers)
        assert (got, message in body) == (status, True), (what, got, body[:200])
        assert answers.read() == b""  # closed: where the next request would start is unknown
    assert bodies == []  # the backend got nothing
    sock, answers = connect(gatehouse)  # under each limit, the same request is served
    with sock:
        head = b"POST /up/" + b"a" * 8000 + b" HTTP/1.1\r\n" + HOST + b"X-Big: " + b"b" * 60000 + b"\r\n"
        sock.sendall(head + b"Content-Length: 2\r\n\r\nhi")
        assert read_response(answers)[0] == 200
    assert bodies == [b"hi"]
