"""Endpoints → Backend services through the portal's forms: edit, validate, delete, history."""
import re

from conftest import mock_api
from test_end_to_end import csrf_token, portal_login


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

    form = {"csrf_token": token, "name": "second", "weight": "0", "inheritConfiguration": "on",
            "cfg.messageInterval": "10", "cfg.messageContent": "two", "cfg.headers": "no colon here"}
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
    saved = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data={
        "csrf_token": token, "name": "first", "weight": "1", "cfg.messageInterval": "10", "cfg.messageContent": "uno"})
    assert "Endpoint first saved. Redeploy to apply." in saved.text
    endpoints = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"]
    assert [(e["name"], e.get("weight"), e["configuration"]["messageContent"], e.get("inheritConfiguration"))
            for e in endpoints] == [("first", 1, "uno", False), ("second", 3, "two", True)]
    assert endpoints[1]["configuration"]["headers"] == [{"name": "x-team", "value": "blue"}]

    confirm = browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/delete")
    assert "Delete the endpoint first?" in confirm.text
    deleted = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/delete", data={"csrf_token": token})
    assert "Endpoint first deleted. Redeploy to apply." in deleted.text
    assert [e["name"] for e in server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"]] == [
        "second"]

    browser.post(server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": token})
    history = browser.get(server.portal + f"/apis/{api_id}/deployments")
    assert re.search(r"<td>1 <span class=\"badge\">current</span></td>\s*<td>[\d\- :]+</td><td>admin</td>", history.text)
    revision = browser.get(server.portal + f"/apis/{api_id}/deployments/1")
    assert "&#34;messageContent&#34;: &#34;two&#34;" in revision.text
    missing = browser.get(server.portal + f"/apis/{api_id}/deployments/9")
    assert missing.status_code == 404 and "has no revision 9" in missing.text and "go to the API list" in missing.text


def test_endpoints_of_a_connector_not_built_yet_are_kept_but_not_editable(server):
    definition = mock_api()
    definition["endpointGroups"] = [{"name": "brokers", "type": "solace", "endpoints": [
        {"name": "s", "type": "solace", "configuration": {"url": "tcp://localhost:55555", "vpnName": "default"}}]}]
    api_id = server.import_api(definition)
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    assert "This gateway has no solace connector yet" in page.text and "/edit" not in page.text
    group_id = re.search(r'id="group-(\d+)"', page.text).group(1)
    refused = browser.post(server.portal + f"/apis/{api_id}/groups/{group_id}/endpoints/new",
                           data={"csrf_token": csrf_token(page.text), "name": "x"})
    assert refused.status_code == 400 and "cannot be edited here yet" in refused.text
    overview = browser.get(server.portal + f"/apis/{api_id}")
    assert "Deploy is blocked" in overview.text and "<li>endpoint solace</li>" in overview.text
