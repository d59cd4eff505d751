"""The HTTP proxy fixtures of the shared Gravitee v4 data (`http/api.json`, `http/failover/api-*.json`,
`http/sse/*.json`, `http/connectionfailure/*.json`, `http/post/*.json`,
`http/secrets/api-with-secrets.json`), run against a local stdlib backend.

Each fixture is loaded and rewritten as a test must: the placeholder backend `http://localhost:8080`
(and `https://localhost:8080`, `http://localhost:19996`) becomes the test backend, and
`${GATEWAY_HTTP_PORT}` becomes the gateway's port (the SSE proxy fixture proxies to the mock SSE
API served by the same gateway). Deliberately bad targets (`nonexistent-backend.invalid`,
`localhost:1`) are kept. Then the fixture is imported and either

- deploys, starts and behaves as its name says (BEHAVIOUR), or
- is refused at deploy (400) naming the first of its `gatehouse.blockingParts` (BLOCKED).

A few derived variants (ids `<fixture>+<change>`) run what a blocked fixture would do once its
blocker is taken out.

One gatehouse server serves the whole module; every test deletes its APIs after it, since most
fixtures share the context path /test.
"""

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from support import h2_backend
from support.fixtures import FIXTURES, load
from support.gatehouse import free_port
from support.streams import read_sse

PLACEHOLDERS = ("http://localhost:8080", "https://localhost:8080", "http://localhost:19996")
MUTATING = "group default-group has only test-kit endpoints, which are ignored: nothing to call"

# fixture -> the blocking parts it has once its targets are rewritten to the test backend.
BLOCKED = {
    "http/failover/api-mutating-failure-condition-post.json": [MUTATING],
    "http/failover/api-mutating-three-endpoints-post.json": [MUTATING],
    "http/secrets/api-with-secrets.json": ["secret references ({#secrets...})"],
}


def proxy_fixture_files():
    patterns = (
        "http/api.json",
        "http/failover/api-*.json",
        "http/sse/*.json",
        "http/connectionfailure/*.json",
        "http/post/*.json",
        "http/secrets/api-with-secrets.json",
    )
    return sorted({str(f.relative_to(FIXTURES)) for pattern in patterns for f in FIXTURES.glob(pattern)})


# ----- the backend: records what reaches it -----
class Recorder(BaseHTTPRequestHandler):
    """Answers every request with a JSON echo of it and records it. `?sleep=<s>` delays the answer
    (the number of requests in progress at once is tracked). `backend.script(prefix, *answers)`
    makes requests whose path starts with `prefix` get the given (status, delay) answers in turn,
    the last one repeating."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while length := int(self.rfile.readline().strip(), 16):
                data += self.rfile.read(length)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_one(self):
        body = self._body()
        backend = self.server
        with backend.lock:
            backend.active += 1
            backend.peak = max(backend.peak, backend.active)
            status, delay = backend.next_answer(self.path)
            record = {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": body.decode("latin-1"),
                "status": status,
            }
            backend.seen.append(record)  # on arrival: the order in which the gateway tried
        try:
            if "sleep=" in self.path:
                delay = float(self.path.split("sleep=")[1].split("&")[0])
            time.sleep(delay)
            answer = json.dumps(record).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("X-Backend", "recorder")
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up on a slow answer
        finally:
            with backend.lock:
                backend.active -= 1

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def reset(self):
        self.seen, self.active, self.peak, self.scripts = [], 0, 0, {}

    def script(self, prefix, *answers):
        self.scripts[prefix] = list(answers)

    def next_answer(self, path):
        for prefix, answers in self.scripts.items():
            if path.startswith(prefix):
                return answers.pop(0) if len(answers) > 1 else answers[0]
        return 200, 0

    def paths(self):
        return [r["path"] for r in self.seen]


@pytest.fixture(scope="module")
def backend():
    server = Backend(("127.0.0.1", free_port()), Recorder)
    server.lock = threading.Lock()
    server.reset()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder(backend):
    backend.reset()
    return backend


# ----- the server, shared by the module -----
@pytest.fixture
def server(shared_server):
    return shared_server


# ----- rewriting a fixture -----


def endpoints(definition):
    for group in definition["endpointGroups"]:
        yield from group.get("endpoints", [])


def rewrite(definition, backend_url, gateway_port):
    """A copy whose placeholder targets point at the test backend (and the gateway)."""
    definition = copy.deepcopy(definition)
    for endpoint in endpoints(definition):
        configuration = endpoint.get("configuration") or {}
        target = configuration.get("target")
        if not isinstance(target, str):
            continue
        for placeholder in PLACEHOLDERS:
            if target.startswith(placeholder):
                scheme = placeholder.split(":")[0]  # https stays https (the TLS handshake fixture)
                target = scheme + backend_url[len("http") :] + target[len(placeholder) :]
        configuration["target"] = target.replace("${GATEWAY_HTTP_PORT}", str(gateway_port))
    return definition


# ----- blocked fixtures -----
@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(server, backend, relative):
    server.assert_blocked(rewrite(load(relative), backend.url, server.gateway_port), BLOCKED[relative])


# ----- fixtures that deploy: what each one does -----
def plain_proxy(server, recorder, definition):
    """http/api.json: GET /test/... reaches <target>/... with its query; the answer comes back."""
    got = requests.get(server.gateway + "/test/items/7?a=1&b=two", headers={"X-Custom": "kept"}, timeout=10)
    assert got.status_code == 200, got.text
    assert got.headers["X-Backend"] == "recorder"
    echo = got.json()
    assert echo["method"] == "GET" and echo["path"] == "/endpoint/items/7?a=1&b=two"
    assert echo["headers"]["X-Custom"] == "kept"
    assert requests.get(server.gateway + "/test", timeout=10).json()["path"] == "/endpoint"
    # The flow selects GET only, with no policy: other methods are proxied as they are.
    deleted = requests.delete(server.gateway + "/test/items/7", timeout=10)
    assert deleted.status_code == 200 and deleted.json()["method"] == "DELETE"
    assert [r["path"] for r in recorder.seen] == ["/endpoint/items/7?a=1&b=two", "/endpoint", "/endpoint/items/7"]


def post_http11(server, recorder, definition):
    """http/post/api-endpoint-http11.json: a POST body (sized and chunked) reaches the backend."""
    payload = json.dumps({"order": 42, "lines": ["a", "b"]})
    got = requests.post(
        server.gateway + "/test", data=payload, timeout=10, headers={"Content-Type": "application/json"}
    )
    assert got.status_code == 200, got.text
    echo = got.json()
    assert echo["method"] == "POST" and echo["path"] == "/endpoint" and echo["body"] == payload
    assert echo["headers"]["Content-Type"] == "application/json"
    chunked = requests.post(server.gateway + "/test/more", data=iter([b"part-1;", b"part-2"]), timeout=10)
    assert chunked.status_code == 200 and chunked.json()["body"] == "part-1;part-2"
    assert chunked.json()["path"] == "/endpoint/more"
    assert [r["method"] for r in recorder.seen] == ["POST", "POST"]


def post_http2(server, recorder, definition):
    """http/post/api-endpoint-http2.json: HTTP/2 (prior knowledge, clear text) to a backend that
    speaks it (the recorder does not); the POST body gets there whole."""
    with h2_backend.serving() as backend:
        server.delete_all_apis()
        definition["endpointGroups"][0]["endpoints"][0]["configuration"]["target"] = backend + "/endpoint"
        server.deploy_api(definition)
        got = requests.post(
            server.gateway + "/test", data=b'{"order": 42}', timeout=10, headers={"Content-Type": "application/json"}
        )
    assert got.status_code == 200, got.text
    assert got.json() == {
        "httpVersion": "2",
        "method": "POST",
        "path": "/endpoint",
        "query": "",
        "body": '{"order": 42}',
    }


def mock_sse(server, recorder, definition):
    """http/sse/api-mock-sse-backend.json: an SSE stream of `mock data` every millisecond."""
    with requests.get(
        server.gateway + "/sse-mock-endpoint", stream=True, timeout=10, headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = read_sse(stream, 6, timeout=5)
    messages = [e for e in events if e.get("event") == "message"]
    assert len(messages) >= 3, events
    assert all(e["data"] == "mock data" for e in messages)


def sse_proxy(server, recorder, definition):
    """http/sse/api-sse-proxy.json: proxies /test to the gateway's own mock SSE API; the events
    come through as they are produced (the stream never ends: read a few, then hang up)."""
    server.deploy_api(load("http/sse/api-mock-sse-backend.json"))
    with requests.get(
        server.gateway + "/test", stream=True, timeout=10, headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        started = time.monotonic()
        events = read_sse(stream, 6, timeout=5)
        assert time.monotonic() - started < 5
    messages = [e for e in events if e.get("event") == "message"]
    assert len(messages) >= 3, events
    assert all(e["data"] == "mock data" for e in messages)
    assert recorder.seen == []


def dns_failure(server, recorder, definition):
    """http/connectionfailure/api-dns-failure.json: a host that does not resolve -> 502, quickly."""
    started = time.monotonic()
    got = requests.get(server.gateway + "/test", timeout=15)
    assert time.monotonic() - started < 5
    assert got.status_code == 502, got.text
    assert got.json() == {"message": "the backend nonexistent-backend.invalid:8080 cannot be reached"}


def tiny_pool(server, recorder, definition):
    """http/connectionfailure/api-tiny-pool.json: maxConcurrentConnections 1 -> concurrent
    requests wait their turn for the one connection (readTimeout 2000 is not exceeded by each)."""
    assert (
        definition["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]["http"][
            "maxConcurrentConnections"
        ]
        == 1
    )
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: requests.get(f"{server.gateway}/test/{i}?sleep=0.4", timeout=15), range(3)))
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert sorted(a.json()["path"] for a in answers) == [f"/endpoint/{i}?sleep=0.4" for i in range(3)]
    assert recorder.peak == 1
    assert elapsed >= 1.2
    # a single call slower than readTimeout (2000 ms) -> 504
    slow = requests.get(server.gateway + "/test/slow?sleep=2.5", timeout=15)
    assert slow.status_code == 504 and "did not answer in time" in slow.json()["message"]


def round_robin_post(server, recorder, definition):
    bodies = [requests.post(server.gateway + "/test", data=f"b{i}", timeout=10).json() for i in range(3)]
    assert sorted(b["path"] for b in bodies) == ["/endpoint-1", "/endpoint-2", "/endpoint-3"]
    assert [b["body"] for b in bodies] == ["b0", "b1", "b2"]


def query_params_with_rest_path(server, recorder, definition):
    """... and a path after the context path goes into the target's path, before its query."""
    seen = [requests.get(server.gateway + "/test/sub?q=1", timeout=10).json()["path"] for _ in range(3)]
    assert sorted(seen) == [f"/endpoint-{n}/sub?e={n}&q=1" for n in (1, 2, 3)]


def refused_backend(server, recorder, definition):
    """localhost:1 refuses: without the template, the gateway's own 502."""
    got = requests.get(server.gateway + "/test", timeout=15)
    assert got.status_code == 502, got.text
    assert got.json() == {"message": "the backend localhost:1 cannot be reached"}


def umbrella_template(server, recorder, definition):
    """The refusal's key, GATEWAY_CLIENT_CONNECTION_REFUSED, has no template: its parent's answers."""
    got = requests.get(server.gateway + "/test", timeout=15)
    assert (got.status_code, got.text) == (503, "umbrella template fired")
    assert got.headers["Content-Type"].startswith("text/plain")


def tls_handshake_template(server, recorder, definition):
    """The template of the fine-grained key, as JSON, with the error's key, status and cause."""
    host = definition["endpointGroups"][0]["endpoints"][0]["configuration"]["target"].split("/")[2]
    got = requests.get(server.gateway + "/test", headers={"Accept": "application/json"}, timeout=15)
    assert got.status_code == 502 and got.headers["Content-Type"] == "application/json", got.text
    error = got.json()["error"]
    assert (error["code"], error["status"]) == ("GATEWAY_CLIENT_TLS_HANDSHAKE_ERROR", 502)
    assert error["detail"].startswith(f"the TLS handshake with the backend at {host} failed")
    assert recorder.seen == []


def tls_to_plain_backend(server, recorder, definition):
    """https:// to a plain HTTP backend: the TLS handshake fails -> 502, not a hang or a 500."""
    host = definition["endpointGroups"][0]["endpoints"][0]["configuration"]["target"].split("/")[2]
    started = time.monotonic()
    got = requests.get(server.gateway + "/test", timeout=15)
    assert time.monotonic() - started < 5
    assert got.status_code == 502, got.text
    assert got.json()["message"].startswith(f"the TLS handshake with the backend at {host} failed")
    assert recorder.seen == []  # the plain backend never saw an HTTP request


# ----- failover: slow is 0.75 s against a slowCallDuration of 500 ms -----
SLOW, FAST, ERROR = (200, 0.75), (200, 0), (500, 0)


def retried_on_slow_calls(server, recorder, definition):
    """http/failover/api-three-endpoints.json: endpoints 1 and 2 are slow, so a GET is retried on
    2 then 3 and gets 3's answer (with one Content-Length); a fast call is not retried; when every
    endpoint is slow, 502 after 1 + maxRetries attempts."""
    recorder.script("/endpoint-1", SLOW)
    recorder.script("/endpoint-2", SLOW)
    got = requests.get(server.gateway + "/test/x", timeout=10)
    assert got.status_code == 200, got.text
    assert got.json()["path"] == "/endpoint-3/x"
    assert got.raw.headers.getlist("Content-Length") == [str(len(got.content))]
    assert recorder.paths() == ["/endpoint-1/x", "/endpoint-2/x", "/endpoint-3/x"]
    recorder.reset()
    fast = requests.get(server.gateway + "/test/y", timeout=10)  # the cycle is back at endpoint-1
    assert fast.status_code == 200 and recorder.paths() == ["/endpoint-1/y"]
    recorder.reset()
    for prefix in ("/endpoint-1", "/endpoint-2", "/endpoint-3"):
        recorder.script(prefix, SLOW)
    started = time.monotonic()
    failed = requests.get(server.gateway + "/test/z", timeout=10)
    assert failed.status_code == 502, failed.text
    assert failed.json() == {"message": "the backend did not answer within 500 ms (after 3 attempts)"}
    assert 1.4 < time.monotonic() - started < 3
    assert sorted(recorder.paths()) == ["/endpoint-1/z", "/endpoint-2/z", "/endpoint-3/z"]


def retried_with_query(server, recorder, definition):
    """api-three-endpoints-query-params.json: the retry keeps the next target's own query."""
    recorder.script("/endpoint-1", SLOW)
    got = requests.get(server.gateway + "/test?q=1", timeout=10)
    assert got.status_code == 200 and got.json()["path"] == "/endpoint-2?e=2&q=1"
    assert recorder.paths() == ["/endpoint-1?e=1&q=1", "/endpoint-2?e=2&q=1"]


def refused_first(definition):
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["target"] = f"http://127.0.0.1:{free_port()}/x"


def post_retried_only_when_undelivered(server, recorder, definition):
    """api-three-endpoints-post.json, endpoint 1 refusing connections: a POST that never reached
    a backend is sent to the next one with its body; one that reached a slow backend is not sent
    again (it may still be applied), so 502 after one attempt."""
    got = requests.post(server.gateway + "/test", data="order-1", timeout=10)
    assert got.status_code == 200, got.text
    assert got.json()["path"] == "/endpoint-2" and got.json()["body"] == "order-1"
    recorder.reset()
    recorder.script("/endpoint", SLOW)
    slow = requests.post(server.gateway + "/test", data="order-2", timeout=10)
    assert slow.status_code == 502, slow.text
    assert slow.json() == {"message": "the backend did not answer within 500 ms"}
    assert [(r["path"], r["body"]) for r in recorder.seen] == [("/endpoint-3", "order-2")]


def retried_on_failure_condition(server, recorder, definition):
    """api-failure-condition.json ({#response.status >= 500}): 500 then 200 -> the client gets 200."""
    recorder.script("/endpoint", ERROR, FAST)
    got = requests.get(server.gateway + "/test", timeout=10)
    assert got.status_code == 200, got.text
    assert [r["status"] for r in recorder.seen] == [500, 200]


def post_retried_on_failure_condition(server, recorder, definition):
    """api-failure-condition-post.json: a POST answered 500 is sent again, with its body."""
    recorder.script("/endpoint", ERROR, FAST)
    got = requests.post(server.gateway + "/test", data="order-3", timeout=10)
    assert got.status_code == 200, got.text
    assert [(r["status"], r["body"]) for r in recorder.seen] == [(500, "order-3"), (200, "order-3")]


def forced_to_the_next_endpoint(server, recorder, definition):
    """api-three-endpoints-force-next.json: endpoints 1 and 2 answer 500 -> 3 answers."""
    recorder.script("/endpoint-1", ERROR)
    recorder.script("/endpoint-2", ERROR)
    got = requests.get(server.gateway + "/test", timeout=10)
    assert got.status_code == 200 and got.json()["path"] == "/endpoint-3"
    assert recorder.paths() == ["/endpoint-1", "/endpoint-2", "/endpoint-3"]


def forced_full_loop(server, recorder, definition):
    """api-three-endpoints-force-next-full-loop.json (maxRetries 4): all answer 500 -> tried
    1, 2, 3, 1, 2 in that order, then 502."""
    recorder.script("/endpoint-", ERROR)
    got = requests.get(server.gateway + "/test", timeout=10)
    assert got.status_code == 502
    assert got.json() == {
        "message": "the backend answered 500, which the API's failure condition counts as a failure (after 5 attempts)"
    }
    assert recorder.paths() == ["/endpoint-1", "/endpoint-2", "/endpoint-3", "/endpoint-1", "/endpoint-2"]


def only_one_endpoint(server, recorder, definition):
    """api-only-one-endpoint.json: a fast call is sent once; a slow first answer is retried."""
    assert requests.get(server.gateway + "/test", timeout=10).status_code == 200
    assert len(recorder.seen) == 1
    recorder.reset()
    recorder.script("/endpoint", SLOW, FAST)
    got = requests.get(server.gateway + "/test", timeout=10)
    assert got.status_code == 200 and len(recorder.seen) == 2


def circuit_per_api_key(server, recorder, definition):
    """api-one-circuit-breaker-per-subscription.json (maxRetries 1, maxFailures 2, perSubscription):
    two subscriptions to its api-key plan (two API keys) have a circuit each: one key's calls to a
    slow backend open its circuit (502, the backend is not called); the other key's call goes through."""
    api_id = server.api_named(definition["name"])
    one, two = ({"X-Gravitee-Api-Key": server.subscribe(api_id, "plan-apikey-id")["apiKey"]} for _ in range(2))
    deadline = time.monotonic() + 1
    while requests.get(server.gateway + "/test", headers=two, timeout=10).status_code != 200:  # the gateway's poll
        assert time.monotonic() < deadline
    recorder.reset()
    separate_circuits(server, recorder, one, two)


def without_api_key_plan(definition):
    definition["plans"] = [p for p in definition["plans"] if p["security"]["type"] == "key-less"]


def circuit_per_subscription(server, recorder, definition):
    """api-one-circuit-breaker-per-subscription.json (maxRetries 1, maxFailures 2): two calls of
    one client to a slow backend fail after 2 attempts each; its circuit is then open (502, the
    backend is not called); another client's circuit is closed and its call goes through."""
    separate_circuits(
        server, recorder, {"X-Gravitee-Client-Identifier": "client-one"}, {"X-Gravitee-Client-Identifier": "client-two"}
    )


def separate_circuits(server, recorder, one, two):
    """Two calls of client `one` to a slow backend fail after 2 attempts each; its circuit is then
    open (502, the backend is not called); client `two`'s circuit is closed and its call goes through."""
    recorder.script("/endpoint", SLOW)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: requests.get(server.gateway + "/test", headers=one, timeout=10), range(2)))
    assert [a.status_code for a in answers] == [502, 502]
    assert len(recorder.seen) == 4
    recorder.reset()
    recorder.script("/endpoint", FAST)
    opened = requests.get(server.gateway + "/test", headers=one, timeout=10)
    assert opened.status_code == 502 and "circuit open" in opened.json()["message"]
    assert recorder.seen == []
    other = requests.get(server.gateway + "/test", headers=two, timeout=10)
    assert other.status_code == 200 and len(recorder.seen) == 1


def short_open_state(definition):
    definition["failover"].update(maxRetries=0, maxFailures=2, openStateDuration=1000)


def circuit_closes_after_open_state(server, recorder, definition):
    """api-failure-condition.json with maxRetries 0, maxFailures 2, openStateDuration 1000: two
    500s open the circuit; calls then fail at once without reaching the backend until, 1 s later,
    one trial call goes through; it succeeds, so the circuit closes again."""
    recorder.script("/endpoint", ERROR)
    assert [requests.get(server.gateway + "/test", timeout=10).status_code for _ in range(2)] == [502, 502]
    opened_at = time.monotonic()
    refused = requests.get(server.gateway + "/test", timeout=10)
    assert refused.status_code == 502 and "circuit open" in refused.json()["message"]
    assert len(recorder.seen) == 2
    recorder.script("/endpoint", FAST)
    deadline = opened_at + 5
    while (got := requests.get(server.gateway + "/test", timeout=10)).status_code != 200:
        assert "circuit open" in got.json()["message"] and time.monotonic() < deadline
        time.sleep(0.05)
    assert time.monotonic() - opened_at >= 0.9  # opened_at is taken just after the circuit opened
    assert [r["status"] for r in recorder.seen] == [500, 500, 200]
    assert requests.get(server.gateway + "/test", timeout=10).status_code == 200


def without_templates(definition):
    del definition["responseTemplates"]


# id -> (changes to the rewritten copy, check). A `+change` suffix marks a derived variant.
def routed_to_the_second_group(server, recorder, definition):
    """http/failover/api-failover-dynamic-routing-group-capture.json: dynamic-routing's rule `/(.*)`
    sends every GET to the group `second` ({#endpoints['second']}), the captured path after it."""
    got = requests.get(server.gateway + "/test/orders/7?x=1", timeout=10)
    assert got.status_code == 200, got.text
    assert got.json()["path"] == "/second-group/orders/7?x=1"
    assert recorder.paths() == ["/second-group/orders/7?x=1"]  # the default group is never called


def balanced_over_the_second_group(server, recorder, definition):
    """http/failover/api-second-group-routing-to-a-endpoints-group.json: /dynamic-route/(.*) goes to
    the group second-group, balanced over its four endpoints; a path no rule matches is a 400."""
    paths = [requests.get(server.gateway + f"/test/dynamic-route/item{i}", timeout=10).json()["path"] for i in range(4)]
    assert sorted(paths) == [f"/second-group-endpoint-{n}/item{i}" for n, i in zip((1, 2, 3, 4), range(4), strict=True)]
    unmatched = requests.get(server.gateway + "/test/elsewhere", headers={"Accept": "application/json"}, timeout=10)
    assert unmatched.status_code == 400
    assert unmatched.json() == {"message": "No routing rule is matching path", "http_status_code": 400}
    assert all(not p.startswith("/default-group") for p in recorder.paths())


def routed_to_one_endpoint(server, recorder, definition):
    """http/failover/api-second-group-routing-to-one-endpoint.json: /dynamic-route/(.*) goes to the
    endpoint second-group-endpoint-1 alone, every time."""
    for i in range(3):
        got = requests.get(server.gateway + f"/test/dynamic-route/item{i}", timeout=10)
        assert got.status_code == 200 and got.json()["path"] == f"/second-group-endpoint-1/item{i}", got.text


BEHAVIOUR = {
    "http/api.json": ((), plain_proxy),
    "http/failover/api-failover-dynamic-routing-group-capture.json": ((), routed_to_the_second_group),
    "http/failover/api-second-group-routing-to-a-endpoints-group.json": ((), balanced_over_the_second_group),
    "http/failover/api-second-group-routing-to-one-endpoint.json": ((), routed_to_one_endpoint),
    "http/post/api-endpoint-http11.json": ((), post_http11),
    "http/sse/api-mock-sse-backend.json": ((), mock_sse),
    "http/sse/api-sse-proxy.json": ((), sse_proxy),
    "http/connectionfailure/api-dns-failure.json": ((), dns_failure),
    "http/connectionfailure/api-tiny-pool.json": ((), tiny_pool),
    "http/failover/api-three-endpoints.json": ((), retried_on_slow_calls),
    "http/failover/api-three-endpoints-query-params.json": ((), retried_with_query),
    "http/failover/api-three-endpoints-query-params.json+rest-path": ((), query_params_with_rest_path),
    "http/failover/api-three-endpoints-post.json": ((), round_robin_post),
    "http/failover/api-three-endpoints-post.json+first-refused": ((refused_first,), post_retried_only_when_undelivered),
    "http/failover/api-failure-condition.json": ((), retried_on_failure_condition),
    "http/failover/api-failure-condition-post.json": ((), post_retried_on_failure_condition),
    "http/failover/api-three-endpoints-force-next.json": ((), forced_to_the_next_endpoint),
    "http/failover/api-three-endpoints-force-next-full-loop.json": ((), forced_full_loop),
    "http/failover/api-only-one-endpoint.json": ((), only_one_endpoint),
    "http/failover/api-failure-condition.json+short-open-state": ((short_open_state,), circuit_closes_after_open_state),
    "http/failover/api-one-circuit-breaker-per-subscription.json": ((), circuit_per_api_key),
    "http/failover/api-one-circuit-breaker-per-subscription.json+keyless-only": (
        (without_api_key_plan,),
        circuit_per_subscription,
    ),
    # Derived: blocked fixtures once the blocker is taken out.
    "http/connectionfailure/api-refused-with-umbrella-template.json+no-template": (
        (without_templates,),
        refused_backend,
    ),
    "http/connectionfailure/api-tls-handshake-with-template.json+no-template": (
        (without_templates,),
        tls_to_plain_backend,
    ),
    "http/post/api-endpoint-http2.json": ((), post_http2),
    "http/connectionfailure/api-refused-with-umbrella-template.json": ((), umbrella_template),
    "http/connectionfailure/api-tls-handshake-with-template.json": ((), tls_handshake_template),
}


def cases():
    for case in sorted(BEHAVIOUR):
        yield pytest.param(case, id=case)


@pytest.mark.parametrize("case", cases())
def test_fixture_deploys_and_behaves_as_named(server, recorder, case):
    relative = case.partition("+")[0]
    changes, check = BEHAVIOUR[case]
    definition = rewrite(load(relative), recorder.url, server.gateway_port)
    for change in changes:
        change(definition)
    server.deploy_api(definition)
    check(server, recorder, definition)


def test_every_proxy_fixture_is_covered():
    covered = set(BLOCKED) | {case.partition("+")[0] for case, (changes, _) in BEHAVIOUR.items() if not changes}
    assert sorted(covered) == proxy_fixture_files()
    assert not set(BLOCKED) & {case for case, (changes, _) in BEHAVIOUR.items() if not changes}
