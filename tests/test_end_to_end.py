"""The whole path through a real server: portal login with CSRF, create, deploy, and every
entrypoint reading from (or publishing to) the Mock endpoint."""

import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest
import requests
import websocket

from support.apis import mock_api
from support.gatehouse import environment, refused_start
from support.portal import create_in_portal, csrf_token, portal_login
from support.streams import read_sse


def test_portal_create_deploy_and_every_entrypoint(server):
    database = server.workdir / "instance" / "gatehouse.db"
    with sqlite3.connect(database) as db:  # created by migrations on start, in WAL mode
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    browser = portal_login(server)
    bad = create_in_portal(server, browser, **{"cfg.messageInterval": "soon", "name": ""})
    assert bad.status_code == 400
    assert "Give the API a name." in bad.text and "Interval between messages (ms): must be a number" in bad.text
    assert server.mgmt("GET", "/apis").json()["data"] == []  # nothing half-saved

    created = create_in_portal(server, browser)
    assert created.status_code == 302, created.text
    api_id = created.headers["Location"].rsplit("/", 1)[-1]
    page = browser.get(server.portal + f"/apis/{api_id}")
    assert "not deployed changes" in page.text

    deployed = browser.post(server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": csrf_token(page.text)})
    assert "Deployed revision 1" in deployed.text and "not deployed changes" not in deployed.text
    started = browser.post(server.portal + f"/apis/{api_id}/start", data={"csrf_token": csrf_token(page.text)})
    assert "API started." in started.text
    server.wait_serving(api_id, 1)
    gateway = server.gateway + "/orders"

    as_json = requests.get(gateway, headers={"Accept": "application/json"}, timeout=5)
    assert as_json.status_code == 200 and as_json.headers["Content-Type"].startswith("application/json")
    body = as_json.json()
    assert [item["id"] for item in body["items"]] == ["0", "1", "2"]
    assert body["items"][0] == {
        "id": "0",
        "content": "order <created> & paid",
        "headers": {"region": ["eu"]},
        "metadata": {"source": "demo"},
    }
    assert body["pagination"] == {"nextCursor": "2", "limit": "3"}

    resumed = requests.get(gateway + "?cursor=2&limit=2", headers={"Accept": "application/json"}, timeout=5).json()
    assert [item["id"] for item in resumed["items"]] == ["3", "4"]

    as_xml = requests.get(gateway + "?limit=2", headers={"Accept": "application/xml"}, timeout=5)
    assert as_xml.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(as_xml.text)
    assert [i.findtext("id") for i in root.iter("item")] == ["0", "1"]
    assert root.find("items/item/content").text == "order <created> & paid"
    assert root.findtext("pagination/nextCursor") == "1"

    as_text = requests.get(gateway + "?limit=1", headers={"Accept": "text/plain"}, timeout=5)
    assert as_text.text.startswith("items\n\nitem\nid: 0\ncontent: order <created> & paid\n")
    assert "pagination\nnextCursor: 0\nlimit: 1" in as_text.text
    unsupported = requests.get(gateway, headers={"Accept": "image/png"}, timeout=5)
    assert unsupported.status_code == 400 and unsupported.text == "Unsupported accept header: image/png"

    with requests.get(gateway, headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as sse:
        assert sse.headers["Content-Type"] == "text/event-stream;charset=UTF-8"
        assert sse.headers["Cache-Control"] == "no-cache"
        events = read_sse(sse, 4)
    assert events[0] == {"retry": "2000"}
    assert [(e["id"], e["event"], e["data"]) for e in events[1:]] == [
        (str(i), "message", "order <created> & paid") for i in range(3)
    ]

    with requests.get(
        gateway, headers={"Accept": "text/event-stream", "Last-Event-ID": "41"}, stream=True, timeout=5
    ) as sse:
        events = read_sse(sse, 3)
    assert [e["id"] for e in events[1:]] == ["42", "43"]

    ws = websocket.create_connection(gateway.replace("http", "ws"), timeout=5)
    try:
        assert [ws.recv() for _ in range(3)] == ["order <created> & paid"] * 3
        ws.send("a message from the client")  # accepted by the mock and dropped
        assert ws.recv() == "order <created> & paid"
    finally:
        ws.close()

    posted = requests.post(gateway, data=b'{"order": 1}', timeout=5)
    assert posted.status_code == 202 and posted.text == ""

    unknown = requests.get(server.gateway + "/nothing-here", timeout=5)
    assert unknown.status_code == 404 and unknown.text == "No context-path matches the request URI."
    put = requests.put(gateway, data=b"x", timeout=5)
    assert put.status_code == 404 and put.text == "No entrypoint matches the incoming request."


@pytest.mark.parametrize("value", ["1MB", "0", "-5"])
def test_a_wrong_message_size_limit_stops_the_start_naming_it(tmp_path, value):
    done = refused_start(tmp_path, environment(tmp_path, GATEHOUSE_MAX_MESSAGE_BYTES=value), timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"GATEHOUSE_MAX_MESSAGE_BYTES must be a whole number of bytes greater than 0, not '{value}'" in done.stderr
    assert "Gatehouse portal:" not in done.stdout and "Traceback" not in done.stderr


def test_message_count_ends_streams_and_limits_apply(start_server):
    server = start_server(GATEHOUSE_MAX_MESSAGE_BYTES="64")
    api = {
        "name": "Counted",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": "/counted"}],
                "entrypoints": [
                    {"type": "sse", "configuration": {"headersAsComment": True, "metadataAsComment": True}},
                    {"type": "websocket"},
                    {"type": "http-post"},
                    {"type": "http-get"},
                ],
            }
        ],
        "endpointGroups": [
            {
                "name": "g",
                "type": "mock",
                "endpoints": [
                    {
                        "name": "m",
                        "type": "mock",
                        "configuration": {
                            "messageInterval": 0,
                            "messageContent": "line one\nline two",
                            "messageCount": 2,
                            "headers": [{"name": "h", "value": "1"}],
                            "metadata": [{"name": "m", "value": "2"}],
                        },
                    }
                ],
            }
        ],
    }
    api_id = server.import_api(api)
    server.start_api(api_id)
    server.wait_serving(api_id, 1)
    url = server.gateway + "/counted"

    with requests.get(url, headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as sse:
        events = read_sse(sse, 10)
    assert [(e["id"], e["data"], e["comments"]) for e in events[1:]] == [
        ("0", "line one\nline two", ["h: 1", "m: 2"]),
        ("1", "line one\nline two", ["h: 1", "m: 2"]),
    ]

    ws = websocket.create_connection(url.replace("http", "ws"), timeout=5)
    assert [ws.recv(), ws.recv()] == ["line one\nline two"] * 2
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1000
    ws.close()

    too_big = requests.post(url, data=b"x" * 65, timeout=5)
    assert too_big.status_code == 413 and "larger than 64 bytes" in too_big.json()["message"]
    assert requests.post(url, data=b"x" * 64, timeout=5).status_code == 202

    publish_only = mock_api(
        "/publish-only",
        entrypoints=[
            {"type": "websocket", "configuration": {"publisher": {"enabled": True}, "subscriber": {"enabled": False}}}
        ],
    )
    publish_only_id = server.import_api(publish_only)
    server.start_api(publish_only_id)
    server.wait_serving(publish_only_id, 1)
    ws = websocket.create_connection(server.gateway.replace("http", "ws") + "/publish-only", timeout=5)
    ws.send("y" * 64)  # within the limit, and no message comes back: the subscriber side is off
    ws.send("y" * 65)
    codes = []
    while True:
        opcode, frame = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            codes.append(int.from_bytes(frame[:2], "big"))
            break
    assert codes == [1009]
    ws.close()

    bad_limit = requests.get(url + "?limit=zero", headers={"Accept": "application/json"}, timeout=5)
    assert bad_limit.status_code == 400
    assert json.loads(requests.get(url, headers={"Accept": "application/json"}, timeout=5).text)["pagination"] == {
        "nextCursor": "1",
        "limit": "500",
    }
