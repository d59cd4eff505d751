"""What the gateway refuses in front of backends (issue 14, defects 1, 9, 10 and 12's header flood),
over raw sockets against a real `gatehouse serve` and a backend that records every request it
gets, with its target exactly as it came."""

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from support.apis import mock_api
from support.plans import plan, proxy_api

SECRET = "a-long-enough-hmac-secret-for-hs256-tokens!"


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 to anything, after noting its method, raw target, headers and body."""

    protocol_version = "HTTP/1.1"  # keeps connections: a smuggled second request would be read too

    def handle_one_request(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        body = (
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked"
            else self._chunked()
        )
        self.server.seen.append(
            {
                "method": self.command,
                "target": self.path,
                "body": body.decode("latin-1"),
                "headers": {name.lower(): value for name, value in self.headers.items()},
            }
        )
        answer = json.dumps({"target": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        self.wfile.flush()

    def _chunked(self):
        body = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backend():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.daemon_threads = True
    httpd.seen = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def seen(backend):
    backend.seen.clear()
    return backend.seen


OPEN = plan("open", "KEY_LESS")


@pytest.fixture(scope="module")
def gateway(module_server, backend):
    """The gateway's port, serving `/api` -> the backend's `/base` and `/admin` -> its `/admin-area`."""
    url = f"http://127.0.0.1:{backend.server_port}"
    module_server.deploy_api(proxy_api("/api", url + "/base", [OPEN]))
    module_server.deploy_api(proxy_api("/admin", url + "/admin-area", [OPEN]))
    return module_server.gateway_port


def exchange(port, data, timeout=10):
    """Raw bytes to the gateway; (status line, everything it sent, whether it closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return received.split(b"\r\n", 1)[0].decode(), received, True
            received += chunk
        return received.split(b"\r\n", 1)[0].decode(), received, False


def get(port, target, headers=b""):
    return exchange(
        port, b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n" % (target.encode(), headers)
    )


def body_of(received):
    return received.split(b"\r\n\r\n", 1)[1]


def status_code(line):
    return int(line.split()[1])


# ----- defect 1: the path never leaves the target's base path -----
@pytest.mark.parametrize(
    "target",
    [
        "/api/../admin/secret.txt",  # curl --path-as-is
        "/api/%2e%2e/admin/secret.txt",
        "/api/.%2e/.%2e/admin/secret.txt",
        "/api/%2E%2E/%2e./admin/secret.txt",
        "/api%2f..%2fadmin/secret.txt",
        "/api/..%2fadmin/secret.txt",
        "/api/..%5cadmin/secret.txt",
        "/api/..\\admin/secret.txt",
        "/api/..;/admin/secret.txt",
        "/api/x/../../admin/secret.txt",
        "/api/..",
    ],
)
def test_a_path_climbing_out_of_its_context_path_is_refused(gateway, seen, target):
    line, received, _ = get(gateway, target)
    assert status_code(line) == 400, received
    assert b"context path" in body_of(received) or b"dot segment" in body_of(received)
    assert seen == []  # neither /api's backend path nor /admin's was called


@pytest.mark.parametrize(
    "target, forwarded",
    [
        ("/api/a%3fb%23c?x=1", "/base/a%3Fb%23c?x=1"),  # no query or fragment made up
        ("/api/files/x%2Fy%2Fz", "/base/files/x%2Fy%2Fz"),  # %2F is data, not a separator
        ("/api/one/../two/./three", "/base/two/three"),  # dot segments that stay inside
        ("/api/%2e/kept/", "/base/kept/"),
        ("/%61pi/%7Euser?q=%41&q=b+c", "/base/%7Euser?q=%41&q=b+c"),  # %61 is 'a': the same context path
        ("/api?only=query", "/base?only=query"),
        ("http://127.0.0.1/api/absolute-form?z", "/base/absolute-form?z"),
    ],
)
def test_the_rest_of_the_path_and_the_query_reach_the_backend_as_sent(gateway, seen, target, forwarded):
    line, received, _ = get(gateway, target)
    assert status_code(line) == 200, received
    assert [s["target"].lower() for s in seen] == [forwarded.lower()]  # escapes' hex case may change
    assert json.loads(body_of(received))["target"] == seen[0]["target"]


def test_a_path_resolving_into_another_api_from_none_is_routed_there(gateway, seen):
    """Not an escape: the client names no context path it then leaves (RFC 3986 makes them equal)."""
    line, _, _ = get(gateway, "/nowhere/../admin/page")
    assert status_code(line) == 200
    assert [s["target"] for s in seen] == ["/admin-area/page"]


@pytest.mark.parametrize("target", ["/api/a%zz", "/api/a%00b", "/api/a#b", "*"])
def test_a_malformed_target_is_refused(gateway, seen, target):
    line, received, _ = get(gateway, target)
    assert status_code(line) == 400, received
    assert seen == []


def test_message_apis_route_on_the_normalised_path(module_server, gateway):
    module_server.deploy_api(
        mock_api(path="/events", content="hi", interval=0, count=1, entrypoints=[{"type": "http-get"}])
    )
    line, received, _ = exchange(
        gateway, b"GET /events/./ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    assert status_code(line) == 200 and b'"hi"' in received
    assert status_code(get(gateway, "/events/../api/x")[0]) == 400


# ----- defect 9: credentials in the query string stay at the gateway -----
def test_an_api_key_in_the_query_is_not_forwarded_unless_propagated(module_server, gateway, backend, seen):
    url = f"http://127.0.0.1:{backend.server_port}"
    api_id = module_server.deploy_api(proxy_api("/keyed", url, [plan("gold", "API_KEY")]))
    kept_id = module_server.deploy_api(
        proxy_api("/keyed-kept", url, [plan("gold", "API_KEY", {"propagateApiKey": True})])
    )
    key, kept_key = (module_server.subscribe(i, "gold")["apiKey"] for i in (api_id, kept_id))
    wait_status(gateway, f"/keyed/x?api-key={key}", 200)
    seen.clear()
    assert status_code(get(gateway, f"/keyed/x?a=1&api-key={key}&b=%2F")[0]) == 200
    assert (
        status_code(get(gateway, "/keyed/x?api%2Dkey=" + key, b"X-Gravitee-Api-Key: " + key.encode() + b"\r\n")[0])
        == 200
    )
    assert [s["target"] for s in seen] == ["/x?a=1&b=%2F", "/x"]
    assert "x-gravitee-api-key" not in seen[1]["headers"]
    wait_status(gateway, f"/keyed-kept/x?api-key={kept_key}", 200)
    seen.clear()
    assert status_code(get(gateway, f"/keyed-kept/x?api-key={kept_key}")[0]) == 200
    assert [s["target"] for s in seen] == [f"/x?api-key={kept_key}"]


def test_a_jwt_in_the_query_is_not_forwarded(module_server, gateway, backend, seen):
    url = f"http://127.0.0.1:{backend.server_port}"
    api_id = module_server.deploy_api(
        proxy_api(
            "/tokens",
            url,
            [
                plan(
                    "jwt",
                    "JWT",
                    {"signature": "HMAC_HS256", "publicKeyResolver": "GIVEN_KEY", "resolverParameter": SECRET},
                )
            ],
        )
    )
    client = f"client-{uuid.uuid4().hex[:8]}"
    module_server.subscribe(api_id, "jwt", module_server.application(client))
    now = int(time.time())
    token = jwt.encode({"client_id": client, "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    wait_status(gateway, f"/tokens/x?access_token={token}", 200)
    seen.clear()
    assert status_code(get(gateway, f"/tokens/x?access_token={token}&page=2")[0]) == 200
    assert [s["target"] for s in seen] == ["/x?page=2"]


def wait_status(port, target, status, timeout=5):
    """Until the gateway's poll has taken a new subscription in."""
    deadline = time.monotonic() + timeout
    while status_code(get(port, target)[0]) != status:
        assert time.monotonic() < deadline, f"{target} not {status} within {timeout}s"
        time.sleep(0.05)


# ----- defect 10: framing in front of backends (RFC 9112) -----
SMUGGLED = b"GET /api/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize(
    "head, body, status",
    [
        (b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, 400),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 48\r\n", b"0\r\n\r\n" + SMUGGLED, 400),
        (b"Content-Length: 5\r\nContent-Length: 50\r\n", b"hello" + SMUGGLED, 400),
        (b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello", 400),
        (b"Content-Length: 5, 5\r\n", b"hello", 400),
        (b"Content-Length: 1_0\r\n", b"0123456789", 400),
        (b"Content-Length: +5\r\n", b"hello", 400),
        (b"X-Note: a\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"hello", 400),  # bare CR
        (b"X-Note: a\r\n folded\r\n", b"", 400),
        (b"Content-Length : 5\r\n", b"hello", 400),
        (b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n" + SMUGGLED, 400),
        (b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n" + SMUGGLED, 400),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n" + SMUGGLED, 501),
        (b"Host: other.example\r\nContent-Length: 0\r\n", b"", 400),  # a second Host
    ],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(gateway, seen, head, body, status):
    line, received, closed = exchange(
        gateway, b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n" + body
    )
    assert status_code(line) == status, received
    assert b"Connection: close" in received and closed
    assert seen == []  # neither the request nor what it smuggled reached the backend


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET  /api/x HTTP/1.1",
        b"GET /api/x\r HTTP/1.1",
        b"GET\t/api/x HTTP/1.1",
        b"GET /api/x HTTP/1.0\r\nTransfer-Encoding: chunked",
    ],
)
def test_a_malformed_request_line_or_chunked_http_1_0_is_refused(gateway, seen, request_line):
    line, received, closed = exchange(gateway, request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_code(line) == 400 and closed, received
    assert seen == []


def test_a_well_framed_chunked_upload_and_the_next_request_on_the_connection_pass(gateway, seen):
    upload = (
        b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    line, received, closed = exchange(
        gateway, upload + b"GET /api/next HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status_code(line) == 200 and closed
    assert len(re.findall(rb"HTTP/1\.1 200", received)) == 2
    assert [(s["target"], s["body"]) for s in seen] == [("/base/upload", "hello"), ("/base/next", "")]


def test_headers_the_connection_header_names_are_not_forwarded(gateway, seen):
    line, _, _ = get(
        gateway, "/api/hop", b"Connection: X-Hop-Secret, keep-alive\r\nX-Hop-Secret: s3cret\r\nX-End-To-End: kept\r\n"
    )
    assert status_code(line) == 200
    assert "x-hop-secret" not in seen[0]["headers"] and seen[0]["headers"]["x-end-to-end"] == "kept"


# ----- defect 12: a flood of headers -----
def test_more_than_100_headers_is_431_with_one_warning_line_not_a_traceback(module_server, gateway, seen):
    many = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(101))
    before = log_text(module_server)
    for _ in range(3):
        line, received, closed = get(gateway, "/api/many", many)
        assert status_code(line) == 431 and closed, received
    hundred = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(98))  # with Host and Connection: 100
    assert status_code(get(gateway, "/no-api-here", hundred)[0]) == 404  # the gateway took them: no route
    assert seen == []
    added = log_text(module_server)[len(before) :]
    assert "Traceback" not in added
    assert len(re.findall(r"more than 100 headers", added)) == 1, added


def log_text(server):
    with open(server.proc.log_path) as log:
        return log.read()
