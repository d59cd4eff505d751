"""Endpoints → Backend services through the portal's forms: edit, validate, delete, history."""

import re

import pytest

from support.apis import mock_api
from support.portal import csrf_token, portal_login


@pytest.fixture
def server(shared_server):
    """One server for the module: each test deploys APIs of its own, removed after it."""
    return shared_server


def test_edit_and_delete_endpoints_and_see_the_history(server):
    api_id = server.import_api(mock_api(content="one"))
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    assert "Backend services" in page.text and "not deployed changes" in page.text
    token = csrf_token(page.text)
    endpoint_id = re.search(r"/endpoints/(\d+)/edit", page.text).group(1)
    group_id = re.search(r"/groups/(\d+)/endpoints/new", page.text).group(1)

    last = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/delete", data={"csrf_token": token})
    assert "is the last one of group default" in last.text

    form = {
        "csrf_token": token,
        "name": "second",
        "weight": "0",
        "inheritConfiguration": "on",
        "cfg.messageInterval": "10",
        "cfg.messageContent": "two",
        "cfg.headers": "no colon here",
    }
    bad = browser.post(server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new", data=form)
    assert bad.status_code == 400
    assert "Weight must be a whole number of at least 1." in bad.text
    assert "Message headers: line &#39;no colon here&#39; is not &#39;name: value&#39;" in bad.text
    assert len(server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"]) == 1

    form.update({"weight": "3", "cfg.headers": "x-team: blue"})
    added = browser.post(server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new", data=form)
    assert "Endpoint second added. Redeploy to apply." in added.text
    duplicate = browser.post(server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new", data=form)
    assert "Another endpoint of this API is already named second." in duplicate.text

    edit = browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit")
    assert 'value="mock"' in edit.text and ">one</textarea>" in edit.text
    saved = browser.post(
        server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit",
        data={
            "csrf_token": token,
            "name": "first",
            "weight": "1",
            "cfg.messageInterval": "10",
            "cfg.messageContent": "uno",
        },
    )
    assert "Endpoint first saved. Redeploy to apply." in saved.text
    endpoints = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"]
    assert [
        (e["name"], e.get("weight"), e["configuration"]["messageContent"], e.get("inheritConfiguration"))
        for e in endpoints
    ] == [("first", 1, "uno", False), ("second", 3, "two", True)]
    assert endpoints[1]["configuration"]["headers"] == [{"name": "x-team", "value": "blue"}]

    confirm = browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/delete")
    assert "Delete the endpoint first?" in confirm.text
    deleted = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/delete", data={"csrf_token": token})
    assert "Endpoint first deleted. Redeploy to apply." in deleted.text
    assert [e["name"] for e in server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"]] == [
        "second"
    ]

    browser.post(server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": token})
    history = browser.get(server.portal + f"/apis/{api_id}/deployments")
    assert re.search(
        r"<td>1 <span class=\"badge\">current</span></td>\s*<td>[\d\- :]+</td><td>admin</td>", history.text
    )
    revision = browser.get(server.portal + f"/apis/{api_id}/deployments/1")
    assert "&#34;messageContent&#34;: &#34;two&#34;" in revision.text
    missing = browser.get(server.portal + f"/apis/{api_id}/deployments/9")
    assert missing.status_code == 404 and "has no revision 9" in missing.text and "go to the API list" in missing.text


def test_endpoints_of_a_connector_not_built_yet_are_kept_but_not_editable(server):
    definition = mock_api()
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "azure-service-bus",
            "endpoints": [
                {
                    "name": "s",
                    "type": "azure-service-bus",
                    "configuration": {"connectionString": "Endpoint=sb://example/"},
                }
            ],
        }
    ]
    api_id = server.import_api(definition)
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    assert "This gateway has no azure-service-bus connector yet" in page.text and "/edit" not in page.text
    group_id = re.search(r'id="group-(\d+)"', page.text).group(1)
    refused = browser.post(
        server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new",
        data={"csrf_token": csrf_token(page.text), "name": "x"},
    )
    assert refused.status_code == 400 and "cannot be edited here yet" in refused.text
    overview = browser.get(server.portal + f"/apis/{api_id}")
    assert "Deploy is blocked" in overview.text and "<li>endpoint azure-service-bus</li>" in overview.text


def test_add_and_delete_endpoint_groups(server):
    api_id = server.import_api(mock_api(content="one"))
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    token = csrf_token(page.text)
    assert "Add an endpoint group" in page.text
    first_group = re.search(r'id="group-(\d+)"', page.text).group(1)

    last = browser.post(server.portal + f"/apis/{api_id}/groups/{first_group}/delete", data={"csrf_token": token})
    assert "Endpoint group default is the last one of this API" in last.text

    form_page = browser.get(server.portal + f"/apis/{api_id}/groups/new")
    assert form_page.status_code == 200 and "Add an endpoint group" in form_page.text
    assert '<option value="mock"' in form_page.text and '<option value="http-proxy"' not in form_page.text
    assert 'value="weighted-random"' in form_page.text and 'id="endpoint-fields"' in form_page.text

    fields = browser.post(
        server.portal + f"/apis/{api_id}/groups/new/_fields",
        data={"csrf_token": token, "group_type": "mock", "cfg.messageContent": "kept"},
    )
    assert fields.status_code == 200 and ">kept</textarea>" in fields.text and 'id="endpoint-fields"' in fields.text

    form = {
        "csrf_token": token,
        "group_name": "default",
        "group_type": "mock",
        "load_balancer": "fastest",
        "name": "mock",
        "weight": "1",
        "inheritConfiguration": "on",
        "cfg.messageInterval": "-5",
        "cfg.messageContent": "two",
    }
    bad = browser.post(server.portal + f"/apis/{api_id}/groups/new", data=form)
    assert bad.status_code == 400
    assert "Another endpoint group of this API is already named default." in bad.text
    assert "Choose a load balancer: round-robin, random, weighted-round-robin, weighted-random." in bad.text
    assert "Another endpoint of this API is already named mock." in bad.text
    assert "must be at least 0" in bad.text
    assert ">two</textarea>" in bad.text  # the form comes back as sent
    assert len(server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"]) == 1

    form.update(
        {
            "group_name": "spare",
            "load_balancer": "weighted-random",
            "name": "spare one",
            "weight": "2",
            "cfg.messageInterval": "10",
        }
    )
    added = browser.post(server.portal + f"/apis/{api_id}/groups/new", data=form)
    assert "Endpoint group spare added with its endpoint spare one. Redeploy to apply." in added.text
    groups = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"]
    assert [(g["name"], g["type"], (g.get("loadBalancer") or {}).get("type")) for g in groups][1] == (
        "spare",
        "mock",
        "WEIGHTED_RANDOM",
    )  # the management API speaks the v4 wire form
    assert [(e["name"], e["weight"], e["configuration"]["messageContent"]) for e in groups[1]["endpoints"]] == [
        ("spare one", 2, "two")
    ]

    confirm = browser.get(server.portal + f"/apis/{api_id}/groups/{first_group}/delete")
    assert "Delete the endpoint group default?" in confirm.text
    deleted = browser.post(server.portal + f"/apis/{api_id}/groups/{first_group}/delete", data={"csrf_token": token})
    assert "Endpoint group default and its endpoints deleted. Redeploy to apply." in deleted.text
    groups = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"]
    assert [g["name"] for g in groups] == ["spare"]
    spare_group = re.search(r'id="group-(\d+)"', deleted.text).group(1)
    refused = browser.post(server.portal + f"/apis/{api_id}/groups/{spare_group}/delete", data={"csrf_token": token})
    assert "Endpoint group spare is the last one of this API" in refused.text
    missing = browser.post(server.portal + f"/apis/{api_id}/groups/{first_group}/delete", data={"csrf_token": token})
    assert missing.status_code == 404
