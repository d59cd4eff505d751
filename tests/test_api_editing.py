"""Editing an API after creation: the General tab (name, version, description, context paths) and
the Entrypoints tab, validated as an import is, with nothing saved on error."""

import re
import uuid

import requests

from support.apis import mock_api
from support.portal import csrf_token, field_error, portal_login

PASSWORD = "correct horse battery"


def unique_path(prefix):
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


def viewer_session(server, admin):
    """A signed-in portal session of a new viewer."""
    name = "viewer-" + uuid.uuid4().hex[:6]
    token = csrf_token(admin.get(server.portal + "/users").text)
    made = admin.post(
        server.portal + "/users",
        data={"csrf_token": token, "username": name, "role": "viewer", "password": PASSWORD},
        allow_redirects=False,
    )
    assert made.status_code == 302, made.text
    viewer = requests.Session()
    token = csrf_token(viewer.get(server.portal + "/login").text)
    assert (
        viewer.post(
            server.portal + "/login",
            allow_redirects=False,
            data={"csrf_token": token, "username": name, "password": PASSWORD},
        ).status_code
        == 302
    )
    return viewer


def api_of(server, api_id):
    return server.mgmt("GET", f"/apis/{api_id}").json()


def test_general_tab_renames_and_refuses_a_context_path_of_another_api(shared_server):
    server = shared_server
    path, other_path = unique_path("general"), unique_path("taken")
    api_id = server.import_api(mock_api(path=path, name="Before"))
    server.import_api(mock_api(path=other_path, name="Other"))
    server.deploy(api_id)
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/general")
    assert page.status_code == 200 and f'value="{path}"' in page.text and 'value="Before"' in page.text
    token = csrf_token(page.text)

    saved = browser.post(
        server.portal + f"/apis/{api_id}/general",
        data={
            "csrf_token": token,
            "name": "Orders",
            "version": "2.0",
            "description": "All the orders",
            "path.0": path,
            "host.0": "",
            "path.1": "/orders-v2",
            "host.1": "api.example.com",
        },
    )
    assert "General settings saved. Redeploy to apply." in saved.text
    assert re.search(r'<span id="deploy-summary">[^<]*name changed', saved.text)
    api = api_of(server, api_id)
    assert (api["name"], api["apiVersion"], api["description"]) == ("Orders", "2.0", "All the orders")
    assert api["listeners"][0]["paths"] == [{"path": path}, {"path": "/orders-v2", "host": "api.example.com"}]
    assert [e["type"] for e in api["listeners"][0]["entrypoints"]] == ["http-get", "http-post", "sse", "websocket"]

    conflict = browser.post(
        server.portal + f"/apis/{api_id}/general",
        data={
            "csrf_token": token,
            "name": "Renamed again",
            "version": "3.0",
            "path.0": path,
            "path.1": other_path + "/",
            "host.1": "",
        },
    )
    assert conflict.status_code == 409
    assert field_error(conflict, "path.1") == f"The context path {other_path} is already used by the API 'Other'."
    assert 'id="error-summary"' in conflict.text and 'href="#path.1"' in conflict.text
    assert 'value="Renamed again"' in conflict.text  # what was typed comes back
    assert api_of(server, api_id) == api  # nothing saved

    bad = browser.post(
        server.portal + f"/apis/{api_id}/general",
        data={"csrf_token": token, "name": "", "path.0": "orders", "path.1": "", "host.1": "x.example"},
    )
    assert bad.status_code == 400
    assert field_error(bad, "name") == "Give the API a name."
    assert field_error(bad, "path.0").startswith("A context path starts with '/'")
    assert field_error(bad, "path.1") == "Give the context path served on the host x.example, or clear the host."
    none = browser.post(
        server.portal + f"/apis/{api_id}/general", data={"csrf_token": token, "name": "No paths", "path.0": ""}
    )
    assert none.status_code == 400
    assert field_error(none, "path.0") == "Keep at least one context path: clients reach the API on it."
    assert api_of(server, api_id) == api

    # A viewer reads the tab but cannot save it.
    viewer = viewer_session(server, browser)
    read_only = viewer.get(server.portal + f"/apis/{api_id}/general")
    assert (
        read_only.status_code == 200
        and "<fieldset disabled" in read_only.text
        and ">Save</button>" not in read_only.text
    )
    refused = viewer.post(
        server.portal + f"/apis/{api_id}/general",
        data={"csrf_token": csrf_token(read_only.text), "name": "Mine", "path.0": path},
    )
    assert refused.status_code == 403
    assert api_of(server, api_id)["name"] == "Orders"


def test_entrypoints_tab_adds_and_removes_entrypoints_with_their_settings(shared_server):
    server = shared_server
    api_id = server.import_api(
        mock_api(
            path=unique_path("entrypoints"),
            entrypoints=[{"type": "http-get", "configuration": {"messagesLimitCount": 7}}, {"type": "http-post"}],
        )
    )
    server.deploy(api_id)
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/entrypoints")
    assert page.status_code == 200
    assert re.search(r'name="entrypoint.http-get" id="entrypoint.http-get" checked', page.text)
    assert not re.search(r'name="entrypoint.sse" id="entrypoint.sse" checked', page.text)
    assert 'name="ep.http-get.messagesLimitCount"' in page.text and 'value="7"' in page.text
    token = csrf_token(page.text)

    # Ticking SSE shows its settings and only the qos this API's Mock endpoint offers.
    refreshed = browser.post(
        server.portal + f"/apis/{api_id}/entrypoints/_fields",
        data={"csrf_token": token, "entrypoint.http-post": "on", "entrypoint.sse": "on"},
    )
    assert refreshed.status_code == 200 and 'id="section-sse"' in refreshed.text
    assert 'id="section-http-get"' not in refreshed.text
    assert 'name="ep.sse.heartbeatIntervalInMs"' in refreshed.text
    offered = re.findall(
        r"<option[^>]*>([a-z-]+)</option>", refreshed.text.split('id="qos.sse"')[1].split("</select>")[0]
    )
    assert offered and "auto" in offered

    before = api_of(server, api_id)
    form = {
        "csrf_token": token,
        "entrypoint.http-post": "on",
        "qos.http-post": "auto",
        "entrypoint.sse": "on",
        "qos.sse": "auto",
        "ep.sse.heartbeatIntervalInMs": "100",
    }
    bad = browser.post(server.portal + f"/apis/{api_id}/entrypoints", data=form)
    assert bad.status_code == 400
    assert field_error(bad, "ep.sse.heartbeatIntervalInMs") == "Heartbeat interval (ms): must be at least 2000"
    assert 'id="error-summary"' in bad.text
    wrong_qos = browser.post(
        server.portal + f"/apis/{api_id}/entrypoints",
        data=dict(form, **{"ep.sse.heartbeatIntervalInMs": "3000", "qos.sse": "exactly-once"}),
    )
    assert wrong_qos.status_code == 400
    assert field_error(wrong_qos, "qos.sse").startswith("Server-Sent Events offers here the quality of service")
    last = browser.post(server.portal + f"/apis/{api_id}/entrypoints", data={"csrf_token": token})
    assert last.status_code == 400
    assert "Keep at least one entrypoint: clients reach the API through them." in last.text
    assert api_of(server, api_id) == before  # nothing saved

    saved = browser.post(
        server.portal + f"/apis/{api_id}/entrypoints", data=dict(form, **{"ep.sse.heartbeatIntervalInMs": "3000"})
    )
    assert "Entrypoints saved: http-post, sse. Redeploy to apply." in saved.text
    assert re.search(r'<span id="deploy-summary">1 entrypoint added, 1 entrypoint removed', saved.text)
    entrypoints = api_of(server, api_id)["listeners"][0]["entrypoints"]
    assert [e["type"] for e in entrypoints] == ["http-post", "sse"]
    assert entrypoints[1]["configuration"]["heartbeatIntervalInMs"] == 3000

    # Deployed, the gateway serves SSE and no longer http-get.
    assert server.deploy(api_id) == 2
    server.start_api(api_id)
    server.wait_serving(api_id, 2)
    path = before["listeners"][0]["paths"][0]["path"]
    with requests.get(server.gateway + path, headers={"Accept": "text/event-stream"}, stream=True, timeout=10) as sse:
        assert sse.status_code == 200 and sse.headers["Content-Type"].startswith("text/event-stream")
    plain = requests.get(server.gateway + path, headers={"Accept": "application/json"}, timeout=10)
    assert plain.status_code != 200
