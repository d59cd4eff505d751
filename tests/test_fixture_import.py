"""Every real Gravitee v4 definition in the shared fixtures imports (201), deploys and serves or is
refused naming what it lacks, and survives export -> import -> export unchanged.

The fixtures are shared out over two servers (each with its own database) that work in parallel;
on each, an API is deleted before the next is imported, since many fixtures share the context
path /test."""

import copy
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import requests

from support.apis import pretty
from support.fixtures import FIXTURES

FIXTURE_COUNT = 127
SERVERS = 2  # each management request verifies the admin password (scrypt, ~0.1 s): share the load


def kit_only_parts(definition):
    """Parts that exist only in Gravitee's test kit (imported, ignored, named in a warning)."""
    api = definition.get("api", definition)
    text = json.dumps(definition)
    parts = {"message-flow-ready"} if '"policy": "message-flow-ready"' in text else set()
    for group in api.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            if endpoint.get("type") == "mutating-http-proxy":
                parts.add("mutating-http-proxy")
            if endpoint.get("type") == "mock":
                parts.update(
                    k for k in ("connectionErrors", "connectionLatencies") if k in (endpoint.get("configuration") or {})
                )
    return parts


def unapplied_fields(definition):
    """Fields kept but not applied that a fixture switches on: each must be named in a warning."""
    api = definition.get("api", definition)
    analytics = api.get("analytics") or {}
    fields = set()
    if analytics.get("enabled") is True:
        fields.add("analytics.enabled")
        if any(
            v is True
            for part in (analytics.get("logging") or {}).values()
            if isinstance(part, dict)
            for v in part.values()
        ):
            fields.add("analytics.logging")
        if (analytics.get("tracing") or {}).get("enabled"):
            fields.add("analytics.tracing")
    return fields | {key for key in ("groups", "categories") if api.get(key)}


# A first request per entrypoint type, and the status a started API answers it with.
SMOKE = {
    "sse": ("GET", "", {"Accept": "text/event-stream"}, 200),
    "http-get": ("GET", "?limit=1", {"Accept": "application/json"}, 200),
    "http-post": ("POST", "", {"Content-Type": "text/plain"}, 202),
}


# Fixtures whose flows answer the first request of an entrypoint otherwise, by design (what they do
# with the requests they are for is in tests/test_flows_fixtures.py).
FLOW_ANSWERS = {
    # Its flow reads the request's x-header-test, which the first request has not: Gravitee's 500 too.
    "messages/el/message-expression-language.json": {"http-post": 500},
    # The test kit's policy refuses every published message (412).
    "messages/http-post/http-post-entrypoint-rabbitmq-endpoint-failure.json": {"http-post": 412},
}


def unresolvable_broker(definition):
    """Does an endpoint name a broker host of Gravitee's test setup (`rabbitmq-host`, `wrong`)
    that does not resolve here? Then a 502 naming the unreachable broker is the right answer."""
    for group in definition.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            host = (endpoint.get("configuration") or {}).get("serverHost")
            if isinstance(host, str):
                try:
                    socket.getaddrinfo(host, None)
                except OSError:
                    return True
    return False


def smoke(server, definition, answers):
    """Problems answering one request per (smoke-testable) entrypoint of a started API; `answers`:
    entrypoint type -> the status its flows answer with instead."""
    problems = []
    unreachable = unresolvable_broker(definition)
    for listener in definition.get("listeners", []):
        if listener.get("type") != "http" or listener.get("paths", [{}])[0].get("host"):
            continue
        path = listener["paths"][0]["path"]
        for entrypoint in listener.get("entrypoints", []):
            if entrypoint["type"] not in SMOKE:
                continue
            method, query, headers, status = SMOKE[entrypoint["type"]]
            status = answers.get(entrypoint["type"], status)
            with requests.request(
                method,
                server.gateway + path + query,
                headers=headers,
                data=b"hi" if method == "POST" else None,
                stream=True,
                timeout=5,
            ) as response:
                if unreachable and response.status_code == 502 and b"cannot be reached" in response.content:
                    continue
                if response.status_code != status:
                    problems.append(
                        f"{entrypoint['type']} {method} {path} answered {response.status_code}, "
                        f"not {status}: {response.raw.read(300, decode_content=True)!r}"
                    )
    return problems


def fixture_files():
    return sorted(p for p in FIXTURES.rglob("*.json") if p.is_file())


def comparable(envelope):
    """The parts of an export that must survive a round trip."""
    api = copy.deepcopy(envelope["api"])
    api.pop("id", None)
    api.pop("state", None)
    plans = [{k: v for k, v in plan.items() if k != "id"} for plan in copy.deepcopy(envelope["plans"])]
    return {"api": api, "plans": plans}


def check_fixture(server, path, problems):
    """Import, deploy (or see it refused), round-trip and delete one fixture; append problems."""
    name = str(path.relative_to(FIXTURES))
    definition = json.loads(path.read_text())

    def fail(message):
        problems.append(f"{name}: {message}")

    response = server.mgmt("POST", "/apis/_import/definition", json=definition)
    if response.status_code != 201:
        return fail(f"import answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    api_id = body["id"]
    blocking, warnings = body["gatehouse"]["blockingParts"], body["gatehouse"]["warnings"]
    created = [api_id]
    try:
        for term in sorted(kit_only_parts(definition)):
            if not any(term in w for w in warnings):
                fail(f"test-kit part {term} not named in the warnings {warnings}")
            if any(term in part for part in blocking):
                fail(f"test-kit part {term} blocks deploy: {blocking}")
        for field in sorted(unapplied_fields(definition)):
            if not any(w.startswith(f"{field} is kept but not applied yet") for w in warnings):
                fail(f"{field} is kept without a warning: {warnings}")

        deployment = server.mgmt("POST", f"/apis/{api_id}/deployments")
        if blocking:
            if deployment.status_code != 400:
                fail(f"deploy with blocking parts {blocking} answered {deployment.status_code}")
            elif blocking[0] not in deployment.json().get("message", ""):
                fail(f"deploy refusal {deployment.json().get('message')!r} does not name {blocking[0]!r}")
        elif deployment.status_code != 202:
            fail(f"deploy answered {deployment.status_code}: {deployment.text[:500]}")
        else:
            started = server.mgmt("POST", f"/apis/{api_id}/_start")
            if started.status_code != 204:
                fail(f"start answered {started.status_code}: {started.text[:300]}")
            else:
                try:
                    server.wait_serving(api_id, deployment.json()["revision"])
                    for problem in smoke(server, definition, FLOW_ANSWERS.get(name, {})):
                        fail(problem)
                except AssertionError as exc:
                    fail(str(exc))
                stopped = server.mgmt("POST", f"/apis/{api_id}/_stop")
                if stopped.status_code != 204:
                    fail(f"stop answered {stopped.status_code}: {stopped.text[:300]}")

        first = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"})
        if first.status_code != 200:
            return fail(f"export answered {first.status_code}: {first.text[:300]}")
        first = first.json()
        if first["api"].get("definitionVersion") != "V4" or not isinstance(first.get("plans"), list):
            fail("export is not in the management form (definitionVersion V4, plans as a list)")
        deleted = server.mgmt("DELETE", f"/apis/{api_id}")
        if deleted.status_code != 204:
            return fail(f"delete answered {deleted.status_code}: {deleted.text[:300]}")
        created.remove(api_id)

        again = server.mgmt("POST", "/apis/_import/definition", json=first)
        if again.status_code != 201:
            return fail(f"re-import of the export answered {again.status_code}: {again.text[:500]}")
        created.append(again.json()["id"])
        if again.json()["gatehouse"]["blockingParts"] != blocking:
            fail(f"blocking parts changed on re-import: {blocking} -> {again.json()['gatehouse']['blockingParts']}")
        second = server.mgmt("GET", f"/apis/{created[-1]}/_export/definition", params={"includeSecrets": "true"}).json()
        if comparable(first) != comparable(second):
            fail(
                "export -> import -> export differs:\n"
                + pretty(comparable(first))
                + "\n---\n"
                + pretty(comparable(second))
            )
    finally:
        for leftover in created:
            if server.mgmt("DELETE", f"/apis/{leftover}").status_code != 204:
                server.mgmt("POST", f"/apis/{leftover}/_stop")
                server.mgmt("DELETE", f"/apis/{leftover}")
    return blocking


def check_share(server, paths):
    problems, blocked = [], []
    for path in paths:
        before = len(problems)
        blocking = check_fixture(server, path, problems)
        if len(problems) == before:
            blocked.append(bool(blocking))
    leftovers = server.mgmt("GET", "/apis").json()["data"]
    if leftovers:
        problems.append(f"APIs left behind: {[api['name'] for api in leftovers]}")
    return problems, blocked


def test_every_gravitee_fixture_imports_deploys_or_names_what_it_lacks(server, start_server, tmp_path):
    files = fixture_files()
    assert len(files) == FIXTURE_COUNT, f"expected {FIXTURE_COUNT} fixtures, found {len(files)}"
    # Each extra server gets its own database: they must not see each other's /test.
    servers = [server] + [start_server(f"sqlite:///{tmp_path}/share-{i}.db") for i in range(1, SERVERS)]
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(pool.map(check_share, servers, [files[i :: len(servers)] for i in range(len(servers))]))
    problems = [p for share_problems, _ in results for p in share_problems]
    blocked = [b for _, share_blocked in results for b in share_blocked]
    assert not problems, f"{len(problems)} problem(s) over {len(files)} fixtures:\n" + "\n".join(sorted(problems))
    assert len(blocked) == FIXTURE_COUNT
    assert not all(blocked), "no fixture deployed"
