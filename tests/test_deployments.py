"""Deployments in the portal and the management API: no identical revision, the change summary
of the deploy banner, comparing revisions (secrets masked), restoring one, and Stop's confirmation."""

import html
import re
import uuid

from support.apis import kafka_api, mock_api
from support.portal import csrf_token, portal_login

SASL_PASSWORD = "sasl-" + uuid.uuid4().hex[:12]
NEW_SASL_PASSWORD = "sasl-new-" + uuid.uuid4().hex[:12]


def jaas(password):
    return f'org.apache.kafka.common.security.plain.PlainLoginModule required username="gw" password="{password}";'


def sasl_kafka_api(password, topic="orders"):
    """A Kafka API whose group's shared configuration holds a JAAS password (never started here:
    deploying makes a revision without reaching a broker)."""
    d = kafka_api("127.0.0.1:9", topic, path="/k-" + uuid.uuid4().hex[:8])
    d["endpointGroups"][0]["sharedConfiguration"]["security"] = {
        "protocol": "SASL_PLAINTEXT",
        "sasl": {"saslMechanism": "PLAIN", "saslJaasConfig": jaas(password)},
    }
    return d


def banner_summary(page):
    found = re.search(r'<span id="deploy-summary">([^<]*)</span>', page.text)
    return found.group(1) if found else None


def revisions_listed(browser, server, api_id):
    page = browser.get(server.portal + f"/apis/{api_id}/deployments")
    return [int(r) for r in re.findall(r'<tr id="revision-(\d+)">', page.text)]


def secret_of(server, api_id):
    full = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    return full["api"]["endpointGroups"][0]["sharedConfiguration"]["security"]["sasl"]["saslJaasConfig"]


def reimport(server, api_id, change):
    """Change the API through the management API: its full export, changed, imported again."""
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    change(exported["api"]["endpointGroups"][0])
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported).status_code == 200


def test_a_deploy_without_change_makes_no_revision_and_says_so(shared_server):
    server = shared_server
    api_id = server.import_api(mock_api(path="/same-" + uuid.uuid4().hex[:8]))
    assert server.deploy(api_id) == 1

    again = server.mgmt("POST", f"/apis/{api_id}/deployments")
    assert again.status_code == 200, again.text
    assert again.json()["revision"] == 1
    assert again.json()["message"] == "Nothing to deploy: the draft equals revision 1."

    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}")
    assert banner_summary(page) is None  # nothing to deploy: no banner
    deployed = browser.post(server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": csrf_token(page.text)})
    assert deployed.status_code == 200
    assert "Nothing to deploy: the draft equals revision 1." in deployed.text
    assert revisions_listed(browser, server, api_id) == [1]
    assert server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["deployedRevision"] == 1


def test_the_banner_says_what_changed_since_the_last_deployment(shared_server):
    server = shared_server
    api_id = server.import_api(mock_api(path="/summary-" + uuid.uuid4().hex[:8]))
    browser = portal_login(server)
    assert banner_summary(browser.get(server.portal + f"/apis/{api_id}")) == "never deployed"
    server.deploy(api_id)

    page = browser.get(server.portal + f"/apis/{api_id}/endpoints")
    endpoint_id = re.search(r"/endpoints/(\d+)/edit", page.text).group(1)
    saved = browser.post(
        server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit",
        data={
            "csrf_token": csrf_token(page.text),
            "name": "mock",
            "weight": "1",
            "cfg.messageInterval": "100",
            "cfg.messageContent": "changed",
        },
    )
    assert "Endpoint mock saved. Redeploy to apply." in saved.text
    assert banner_summary(saved) == "1 endpoint changed"
    plan = server.mgmt("POST", f"/apis/{api_id}/plans", json={"name": "Gold", "security": {"type": "API_KEY"}})
    assert plan.status_code == 201, plan.text

    for path in ("", "/endpoints", "/plans", "/deployments"):  # every page with the API header
        assert (
            banner_summary(browser.get(server.portal + f"/apis/{api_id}{path}")) == "1 endpoint changed, 1 plan added"
        )
    assert server.deploy(api_id) == 2
    assert banner_summary(browser.get(server.portal + f"/apis/{api_id}")) is None


def test_revisions_and_the_draft_compare_with_secrets_masked(shared_server):
    server = shared_server
    definition = sasl_kafka_api(SASL_PASSWORD)
    api_id = server.import_api(definition)
    assert server.deploy(api_id) == 1

    def change(group):
        shared = group["sharedConfiguration"]
        shared["consumer"]["topics"] = shared["producer"]["topics"] = ["invoices"]
        shared["security"]["sasl"]["saslJaasConfig"] = jaas(NEW_SASL_PASSWORD)
        shared["security"]["protocol"] = "SASL_SSL"  # a changed line next to the secret, so that it shows

    reimport(server, api_id, change)
    assert server.deploy(api_id) == 2

    browser = portal_login(server)
    diff = browser.get(server.portal + f"/apis/{api_id}/deployments/compare", params={"from": "1", "to": "2"})
    assert diff.status_code == 200
    text = html.unescape(diff.text)
    assert "From the revision 1 to the revision 2: 1 endpoint group changed." in text
    assert re.search(r'<del>-\s+"orders"</del>', text) and re.search(r'<ins>\+\s+"invoices"</ins>', text)
    assert re.search(r'<del>-\s+"protocol": "SASL_PLAINTEXT",</del>', text)
    assert '"saslJaasConfig": "********"' in text
    assert SASL_PASSWORD not in text and NEW_SASL_PASSWORD not in text

    # The draft against the last deployment (the default): a description changed.
    page = browser.get(server.portal + f"/apis/{api_id}/general")
    saved = browser.post(
        server.portal + f"/apis/{api_id}/general",
        data={
            "csrf_token": csrf_token(page.text),
            "name": definition["name"],
            "version": "1",
            "description": "Invoices now",
            "path.0": definition["listeners"][0]["paths"][0]["path"],
        },
    )
    assert "General settings saved. Redeploy to apply." in saved.text
    assert banner_summary(saved) == "description changed"
    draft = html.unescape(browser.get(server.portal + f"/apis/{api_id}/deployments/compare").text)
    assert "From the revision 2 to the draft: description changed." in draft
    assert re.search(r'<ins>\+\s+"description": "Invoices now",?</ins>', draft)
    assert SASL_PASSWORD not in draft and NEW_SASL_PASSWORD not in draft

    missing = browser.get(server.portal + f"/apis/{api_id}/deployments/compare", params={"from": "7"})
    assert missing.status_code == 404 and "has no revision 7" in missing.text
    same = browser.get(server.portal + f"/apis/{api_id}/deployments/compare", params={"from": "2", "to": "2"})
    assert "The definitions of the revision 2 and the revision 2 are the same." in same.text


def test_restore_makes_the_draft_equal_to_a_revision_with_its_real_secrets(shared_server):
    server = shared_server
    definition = sasl_kafka_api(SASL_PASSWORD)
    api_id = server.import_api(definition)
    server.deploy(api_id)

    def change(group):
        group["sharedConfiguration"]["security"]["sasl"]["saslJaasConfig"] = jaas(NEW_SASL_PASSWORD)
        group["endpoints"][0]["configuration"]["bootstrapServers"] = "127.0.0.1:19"

    reimport(server, api_id, change)
    assert server.deploy(api_id) == 2

    browser = portal_login(server)
    confirm = browser.get(server.portal + f"/apis/{api_id}/deployments/1/restore")
    assert confirm.status_code == 200 and "Restore revision 1?" in confirm.text
    assert "keeps serving revision 2 until you deploy" in confirm.text
    assert secret_of(server, api_id) == jaas(NEW_SASL_PASSWORD)  # asking changes nothing
    restored = browser.post(
        server.portal + f"/apis/{api_id}/deployments/1/restore", data={"csrf_token": csrf_token(confirm.text)}
    )
    assert "The draft now equals revision 1. Deploy to serve it." in restored.text
    assert banner_summary(restored) == "1 endpoint group changed, 1 endpoint changed"
    assert secret_of(server, api_id) == jaas(SASL_PASSWORD)  # the real secret, not the mask
    endpoint = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert endpoint["configuration"]["bootstrapServers"] == "127.0.0.1:9"

    assert server.deploy(api_id) == 3
    same = browser.get(server.portal + f"/apis/{api_id}/deployments/compare", params={"from": "1", "to": "3"})
    assert "The definitions of the revision 1 and the revision 3 are the same." in same.text
    assert revisions_listed(browser, server, api_id) == [3, 2, 1]


def test_stop_asks_first_and_says_clients_are_dropped(shared_server):
    server = shared_server
    api_id = server.deploy_api(mock_api(path="/stop-" + uuid.uuid4().hex[:8]))
    browser = portal_login(server)
    confirm = browser.get(server.portal + f"/apis/{api_id}/stop")
    assert confirm.status_code == 200
    assert "Stop the API Demo?" in confirm.text and "connected clients" in confirm.text
    assert ">Yes, stop</button>" in confirm.text
    assert server.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STARTED"  # asking stops nothing
    stopped = browser.post(server.portal + f"/apis/{api_id}/stop", data={"csrf_token": csrf_token(confirm.text)})
    assert "API stopped: the gateway no longer serves it." in stopped.text
    assert server.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STOPPED"
    again = browser.get(server.portal + f"/apis/{api_id}/stop")
    assert "The API is already stopped." in again.text
