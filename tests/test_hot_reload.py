"""Hot reload: a deployment or start/stop reaches every process and worker within 1 s, open
streams are told to go away, nothing in flight fails, and nothing leaks."""

import threading
import time

import requests
import websocket

from support.apis import mock_api
from support.gatehouse import ADMIN_PASSWORD, MGMT, launch_gunicorn
from support.streams import read_sse

JSON = {"Accept": "application/json"}


def edit_content(server, api_id, content):
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    exported["api"]["endpointGroups"][0]["endpoints"][0]["configuration"]["messageContent"] = content
    response = server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported)
    assert response.status_code == 200, response.text


def change_description(server, api_id, text):
    """A change that alters no message: an unchanged API would not be deployed again."""
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    exported["api"]["description"] = text
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported).status_code == 200


def first_content(base_url, path="/demo", session=requests):
    response = session.get(base_url + path + "?limit=1", headers=JSON, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["items"][0]["content"]


def test_redeploy_sends_goaway_and_clients_resume_with_new_content(server):
    api_id = server.import_api(mock_api(content="before", interval=50))
    server.start_api(api_id)
    server.wait_serving(api_id, 1)

    failures, done = [], threading.Event()

    def poll_during_swap():
        with requests.Session() as s:
            while not done.is_set():
                r = s.get(server.gateway + "/demo?limit=1", headers=JSON, timeout=5)
                if r.status_code != 200 or not r.json()["items"]:
                    failures.append((r.status_code, r.text))

    pollers = [threading.Thread(target=poll_during_swap) for _ in range(3)]
    for t in pollers:
        t.start()
    with requests.get(
        server.gateway + "/demo", headers={"Accept": "text/event-stream"}, stream=True, timeout=10
    ) as sse:
        before = read_sse(sse, 3)
        assert [e["data"] for e in before[1:]] == ["before", "before"]
        edit_content(server, api_id, "after")
        assert server.deploy(api_id) == 2
        rest = read_sse(sse, 1000)  # until the server ends the stream
    done.set()
    for t in pollers:
        t.join()
    assert rest[-1]["event"] == "goaway"
    assert all(e.get("data") == "before" for e in rest[:-1])
    last_id = ([e for e in before + rest if "id" in e] or [{"id": None}])[-1]["id"]

    with requests.get(
        server.gateway + "/demo",
        headers={"Accept": "text/event-stream", "Last-Event-ID": last_id},
        stream=True,
        timeout=10,
    ) as sse:
        resumed = read_sse(sse, 3)
    assert [e["data"] for e in resumed[1:]] == ["after", "after"]
    assert resumed[1]["id"] == str(int(last_id) + 1)
    assert failures == []


def test_an_answered_start_deploy_or_stop_is_already_served_by_the_process_that_answered(server):
    """No window in which the portal says "deployed" and the gateway of the same process still
    answers 404 or the old revision (the watcher's poll is for other processes)."""
    api_id = server.import_api(mock_api("/at-once", content="v1"))
    server.start_api(api_id)
    with requests.Session() as client:
        assert client.get(server.gateway + "/at-once?limit=1", headers=JSON, timeout=5).status_code == 200
        for revision in range(2, 7):
            edit_content(server, api_id, f"v{revision}")
            assert server.deploy(api_id) == revision
            served = client.get(server.gateway + "/at-once?limit=1", headers=JSON, timeout=5).json()
            assert [item["content"] for item in served["items"]] == [f"v{revision}"]
        assert server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
        assert client.get(server.gateway + "/at-once?limit=1", headers=JSON, timeout=5).status_code == 404


def test_websocket_closes_1013_on_redeploy_and_stop(server):
    api_id = server.import_api(mock_api(interval=1000))
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    for action in ("deploy", "stop"):
        ws = websocket.create_connection(server.gateway.replace("http", "ws") + "/demo", timeout=5)
        assert ws.recv() == "hello"
        if action == "deploy":
            change_description(server, api_id, "redeployed")
            server.deploy(api_id)
        else:
            assert server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
        while True:
            opcode, frame = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert int.from_bytes(frame[:2], "big") == 1013 and frame[2:] == b"Try again later"
        ws.close()
    stopped = requests.get(server.gateway + "/demo", timeout=5)
    assert stopped.status_code == 404


def _spread(urls, count):
    """`count` requests, round-robin over the URLs, each on a new connection."""
    contents = []
    for i in range(count):
        with requests.Session() as s:
            contents.append(first_content(urls[i % len(urls)], session=s))
    return contents


def _assert_everyone_has_it_within_a_second(deploy, urls):
    deployed_at = deploy()
    time.sleep(max(0.0, deployed_at + 1.0 - time.monotonic()))  # the promise is about this moment
    assert _spread(urls, 50) == ["after"] * 50


def test_two_processes_on_one_postgresql_database_see_a_deployment_within_1s(start_server, postgres_url):
    first = start_server(postgres_url)
    second = start_server(postgres_url)
    api_id = first.import_api(mock_api(content="before", interval=0))
    first.start_api(api_id)
    second.wait_serving(api_id, 1)
    assert first_content(second.gateway) == "before"

    def deploy():
        edit_content(second, api_id, "after")
        second.deploy(api_id)
        return time.monotonic()

    _assert_everyone_has_it_within_a_second(deploy, [first.gateway, second.gateway])


def test_gunicorn_with_two_gevent_workers_sees_a_deployment_within_1s(tmp_path):
    server = launch_gunicorn(tmp_path)
    try:
        api_id = server.import_api(mock_api(content="before", interval=0))
        server.start_api(api_id)
        workers = set()
        deadline = time.monotonic() + 10
        while len(workers) < 2 and time.monotonic() < deadline:  # every worker answers for itself
            with requests.Session() as s:
                s.auth = ("admin", ADMIN_PASSWORD)
                stats = s.get(server.portal + MGMT + "/_runtime", timeout=5).json()
            if stats["apis"].get(api_id) == 1:
                workers.add(stats["pid"])
        assert len(workers) == 2, server.log

        def deploy():
            edit_content(server, api_id, "after")
            server.deploy(api_id)
            return time.monotonic()

        _assert_everyone_has_it_within_a_second(deploy, [server.gateway])
        ws = websocket.create_connection(server.gateway.replace("http", "ws") + "/demo", timeout=5)
        assert ws.recv() == "after"
        ws.close()
        with requests.get(
            server.gateway + "/demo", headers={"Accept": "text/event-stream"}, stream=True, timeout=5
        ) as sse:
            assert [e.get("data") for e in read_sse(sse, 3)] == [None, "after", "after"]
    finally:
        server.stop()


def test_twenty_redeploys_with_clients_connected_leak_nothing(server):
    api_id = server.import_api(mock_api(interval=200))
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    ws_url = server.gateway.replace("http", "ws") + "/demo"

    def connect_clients():
        sse = [
            requests.get(server.gateway + "/demo", headers={"Accept": "text/event-stream"}, stream=True, timeout=10)
            for _ in range(3)
        ]
        for stream in sse:
            assert read_sse(stream, 2)[1]["data"] == "hello"
        sockets = [websocket.create_connection(ws_url, timeout=5) for _ in range(2)]
        for ws in sockets:
            assert ws.recv() == "hello"
        return sse, sockets

    def redeploy(clients, revision):
        sse, sockets = clients
        change_description(server, api_id, f"revision {revision}")
        assert server.deploy(api_id) == revision
        for stream in sse:
            assert read_sse(stream, 1000)[-1]["event"] == "goaway"
            stream.close()
        for ws in sockets:
            while ws.recv_data(control_frame=True)[0] != websocket.ABNF.OPCODE_CLOSE:
                pass
            ws.close()
        server.wait_serving(api_id, revision)
        return connect_clients()

    def settled_counts(at_most=None):
        """Counts once every replaced revision has drained and closed its connectors, and (with
        `at_most`) the connections closed by the clients are gone: a leak never goes away."""
        deadline = time.monotonic() + 10
        while True:
            stats = server.runtime()
            counts = server.socket_count(), stats["greenlets"]
            settled = stats["retiring"] == 0 and (at_most is None or all(map(int.__le__, counts, at_most)))
            if settled or time.monotonic() > deadline:
                assert stats["retiring"] == 0
                return counts
            time.sleep(0.05)

    clients = redeploy(connect_clients(), 2)
    after_first = settled_counts()
    for revision in range(3, 22):
        clients = redeploy(clients, revision)
    after_twenty = settled_counts(at_most=after_first)
    assert after_twenty[0] <= after_first[0], f"sockets grew: {after_first} -> {after_twenty}"
    assert after_twenty[1] <= after_first[1], f"greenlets grew: {after_first} -> {after_twenty}"
    for stream in clients[0]:
        stream.close()
    for ws in clients[1]:
        ws.close()
