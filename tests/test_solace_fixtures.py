"""The Solace fixtures of the shared Gravitee v4 data (`messages/*/*solace*` without the webhook
one, `http/failover/solace-two-endpoints.json`).

No Solace broker can run here, so each fixture that deploys runs with the REAL library against a
closed local port (the placeholder `solace-url` becomes `tcp://127.0.0.1:<closed>`) and must tell
every client which URL refused it. The failover fixture, whose first endpoint is meant to fail,
runs with the library's test double behind its second endpoint (as the broker that answers).
Deliberately bad values (`wrong`, `solace-invalid-url`) are kept: they are not Solace URLs and
block Deploy naming the field; `+change` variants take the blocker out, or the flows a `-failure`
fixture fails by. That the http-post `-failure` fixture's refused messages reach no broker is
seen on the double too.
"""

import copy
import json
import threading

import pytest
import requests
import websocket

from support.apis import solace_api
from support.fixtures import FIXTURES, assert_refused_by_the_test_kit
from support.gatehouse import free_port, launch
from support.solace import DOUBLE_URL, double_env, post, sse
from support.streams import next_message

JSON = {"Accept": "application/json"}
CLOSED_PORT = free_port()
CLOSED_URL = f"tcp://127.0.0.1:{CLOSED_PORT}"
REFUSED = f"Connection refused to {CLOSED_URL}"
NOT_A_URL = "must be tcp://host[:port] or tcps://host[:port]"

BLOCKED = {
    "messages/http-get/http-get-entrypoint-solace-endpoint-secret.json": ["secret references ({#secrets...})"],
    "messages/http-get/http-get-entrypoint-solace-endpoint-failure.json": [
        f"endpoint default: URL: 'wrong' {NOT_A_URL}"
    ],
    # The first endpoint is the failing one of the failover test: kept.
    "http/failover/solace-two-endpoints.json": [f"endpoint default: URL: 'solace-invalid-url' {NOT_A_URL}"],
}


def fixture_files():
    files = {f for f in FIXTURES.glob("messages/*/*solace*.json") if f.parent.name != "webhook"}
    files.add(FIXTURES / "http/failover/solace-two-endpoints.json")
    return sorted(str(f.relative_to(FIXTURES)) for f in files)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("solace-real"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def double_server(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("solace-double"), **double_env())
    yield server
    server.stop()


def rewrite(relative):
    definition = copy.deepcopy(json.loads((FIXTURES / relative).read_text()))
    for endpoint in definition["endpointGroups"][0]["endpoints"]:
        if endpoint["configuration"]["url"] == "solace-url":
            endpoint["configuration"]["url"] = CLOSED_URL
    return definition


def entrypoint(definition, kind):
    return next(e for li in definition["listeners"] for e in li["entrypoints"] if e["type"] == kind)


def refused(method, path):
    def check(server, definition):
        response = requests.request(
            method, server.gateway + path, data=b"x" if method == "POST" else None, headers=JSON, timeout=15
        )
        assert response.status_code == 502, response.text
        assert response.json() == {"message": f"The endpoint failed: {REFUSED}"}

    return check


def sse_refused(server, definition):
    with requests.get(
        server.gateway + "/test", stream=True, timeout=15, headers={"Accept": "text/event-stream"}
    ) as stream:
        assert next_message(stream) == {"event": "error", "data": REFUSED}


def websocket_refused(path, publisher, subscriber):
    def check(server, definition):
        config = entrypoint(definition, "websocket")["configuration"]
        assert (config["publisher"]["enabled"], config["subscriber"]["enabled"]) == (publisher, subscriber)
        ws = websocket.create_connection(server.gateway.replace("http", "ws", 1) + path, timeout=15)
        try:
            if not subscriber:
                ws.send("to publish")  # only a publish reaches the broker
            opcode, data = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert (int.from_bytes(data[:2], "big"), data[2:].decode()) == (1011, REFUSED)
        finally:
            ws.close()

    return check


def refused_by_the_policy(server, definition):
    """http-post-...-failure.json: the test kit's interrupt-message-request-phase refuses every
    message (412), as text unless the client accepts JSON. Against the closed port, a 412 and not
    the refused connection: the endpoint is not used."""
    url = server.gateway + "/test-failure"
    assert_refused_by_the_test_kit(url)


def closed_url(definition):
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["url"] = CLOSED_URL


def without_flows(definition):
    definition["flows"] = []


def first_closed_second_double(definition):
    first, second = definition["endpointGroups"][0]["endpoints"]
    first["configuration"]["url"] = CLOSED_URL
    second["configuration"]["url"] = DOUBLE_URL


def failover_pair(server, definition):
    """What the balancer gives to the refusing first endpoint goes to the second one: posts are
    accepted, and an http-get (messagesLimitCount 2) returns two of them."""
    server.deploy_api(solace_api(path="/warm-up"))  # the worker runs: no call waits for its start
    assert requests.post(server.gateway + "/warm-up", data=b"w", timeout=10).status_code == 202
    result = {}
    getter = threading.Thread(
        target=lambda: result.update(
            response=requests.get(
                server.gateway + "/test", headers={**JSON, "X-Gravitee-Client-Identifier": "fixture"}, timeout=15
            )
        )
    )
    getter.start()
    sent = 0
    # Until the getter's queue exists, a post reaches no one: post until the getter has two.
    while getter.is_alive() and sent < 200:
        response = requests.post(server.gateway + "/test", data=f"m{sent}".encode(), timeout=10)
        assert response.status_code == 202, response.text
        sent += 1
        getter.join(0.05)
    getter.join()
    contents = [i["content"] for i in result["response"].json()["items"]]
    assert len(contents) == 2 and int(contents[1][1:]) == int(contents[0][1:]) + 1, contents


CASES = {
    "messages/http-get/http-get-entrypoint-solace-endpoint.json": ((), refused("GET", "/test")),
    "messages/http-get/http-get-entrypoint-solace-endpoint-at-least-once.json": (
        (),
        refused("GET", "/test-at-least-once"),
    ),
    "messages/http-get/http-get-entrypoint-solace-endpoint-at-most-once.json": (
        (),
        refused("GET", "/test-at-most-once"),
    ),
    "messages/http-post/http-post-entrypoint-solace-endpoint.json": ((), refused("POST", "/test")),
    "messages/sse/sse-entrypoint-solace-endpoint.json": ((), sse_refused),
    "messages/websocket/websocket-entrypoint-solace-endpoint-publisher-subscriber.json": (
        (),
        websocket_refused("/test", True, True),
    ),
    "messages/websocket/websocket-entrypoint-solace-endpoint-publisher.json": (
        (),
        websocket_refused("/test", True, False),
    ),
    "messages/websocket/websocket-entrypoint-solace-endpoint-subscriber.json": (
        (),
        websocket_refused("/test-auto", False, True),
    ),
    "messages/websocket/websocket-entrypoint-solace-endpoint-subscriber-none.json": (
        (),
        websocket_refused("/test-none", False, True),
    ),
    "messages/http-get/http-get-entrypoint-solace-endpoint-failure.json+closed-url": (
        (closed_url,),
        refused("GET", "/test-failure"),
    ),
    "messages/http-post/http-post-entrypoint-solace-endpoint-failure.json": ((), refused_by_the_policy),
    # Without its interrupt policy: the broker that refuses is told.
    "messages/http-post/http-post-entrypoint-solace-endpoint-failure.json+closed-url": (
        (closed_url, without_flows),
        refused("POST", "/test-failure"),
    ),
}


@pytest.mark.parametrize("relative", sorted(BLOCKED))
def test_blocked_fixture_imports_and_deploy_names_what_it_lacks(real_server, relative):
    try:
        real_server.assert_blocked(rewrite(relative), BLOCKED[relative])
    finally:
        real_server.delete_all_apis()


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixture_deploys_and_reports_the_unreachable_broker_with_the_real_library(real_server, case):
    relative = case.partition("+")[0]
    changes, check = CASES[case]
    definition = rewrite(relative)
    for change in changes:
        change(definition)
    real_server.deploy_api(definition)
    try:
        check(real_server, definition)
    finally:
        real_server.delete_all_apis()


def test_failover_fixture_sends_what_the_refusing_endpoint_gets_to_the_second(double_server):
    definition = rewrite("http/failover/solace-two-endpoints.json")
    first_closed_second_double(definition)
    double_server.deploy_api(definition)
    try:
        failover_pair(double_server, definition)
    finally:
        double_server.delete_all_apis()


def test_failure_fixture_publishes_nothing_to_a_broker_that_answers(double_server):
    """The -failure fixture on the double: a subscriber of its topic, through an API of its own,
    gets the next message published there, never the refused one."""
    definition = rewrite("messages/http-post/http-post-entrypoint-solace-endpoint-failure.json")
    definition["endpointGroups"][0]["endpoints"][0]["configuration"]["url"] = DOUBLE_URL
    [topic] = definition["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]["producer"]["topics"]
    double_server.deploy_api(definition)
    double_server.deploy_api(solace_api(topics=(topic,), path="/watch"))
    try:
        with sse(double_server, path="/watch") as stream:
            refused_by_the_policy(double_server, definition)
            post(double_server, b"published after", path="/watch")
            assert next_message(stream)["data"] == "published after"
    finally:
        double_server.delete_all_apis()


def test_every_solace_fixture_is_covered():
    covered = set(BLOCKED) | {case for case, (changes, _) in CASES.items() if not changes}
    covered.add("http/failover/solace-two-endpoints.json")  # test_failover_fixture_...
    assert sorted(covered) == fixture_files()
