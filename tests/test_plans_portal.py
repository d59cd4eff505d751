"""The portal's Plans tab and Applications pages, as a person uses them: add an api-key plan with
manual validation, publish and deploy it; create an application, subscribe, have the owner accept,
get the key (shown once), call the API with it, revoke it. A JWT plan's HMAC secret is masked and
kept when the form leaves it blank."""
import re
import time

import requests

from conftest import mock_api
from test_end_to_end import csrf_token, portal_login


def post(browser, server, path, page, **data):
    return browser.post(server.portal + path, data={"csrf_token": csrf_token(page.text), **data})


def test_plan_application_subscription_and_key_in_the_portal(server):
    api_id = server.deploy_api(mock_api(path="/portal-plans", interval=0))
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/plans")
    assert page.status_code == 200 and "Default Keyless (UNSECURED)" in page.text

    form = browser.get(server.portal + f"/apis/{api_id}/plans/new")
    bad = post(browser, server, f"/apis/{api_id}/plans/new", form, name="", type="jwt", validation="AUTO",
               signature="RSA_RS256", publicKeyResolver="GIVEN_KEY", publicKey="not a key")
    assert bad.status_code == 400 and "Give the plan a name." in bad.text and "PEM form" in bad.text
    added = post(browser, server, f"/apis/{api_id}/plans/new", form, name="Gold", type="api-key",
                 validation="MANUAL")
    assert "Plan Gold added in staging" in added.text
    (plan_id,) = [p["id"] for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] == "Gold"]
    published = post(browser, server, f"/apis/{api_id}/plans/{plan_id}/status", added, status="published")
    assert "Plan Gold is published now" in published.text
    keyless = [p["id"] for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] != "Gold"]
    post(browser, server, f"/apis/{api_id}/plans/{keyless[0]}/status", published, status="closed")
    server.wait_serving(api_id, server.deploy(api_id))

    apps = browser.get(server.portal + "/applications")
    created = post(browser, server, "/applications", apps, name="Shop", description="the shop", client_id="")
    assert "Application Shop created" in created.text
    requested = post(browser, server, created.url[len(server.portal):] + "/subscriptions", created,
                     plan=f"{api_id}/{plan_id}")
    assert "the API owner accepts or rejects it" in requested.text and 'id="api-key"' not in requested.text

    plans_page = browser.get(server.portal + f"/apis/{api_id}/plans")
    subscription_id = re.search(r'id="subscription-([^"]+)"', plans_page.text).group(1)
    accepted = post(browser, server, f"/apis/{api_id}/subscriptions/{subscription_id}/accept", plans_page)
    assert "Subscription of Shop accepted" in accepted.text

    app_page = browser.get(created.url)
    got = post(browser, server, created.url[len(server.portal):] + f"/subscriptions/{subscription_id}/renew",
               app_page)
    key = re.search(r'<code id="api-key">([^<]+)</code>', got.text).group(1)
    assert key not in browser.get(created.url).text  # shown once
    url = server.gateway + "/portal-plans?limit=1"
    deadline = time.monotonic() + 1
    while requests.get(url, headers={"X-Gravitee-Api-Key": key}, timeout=5).status_code != 200:
        assert time.monotonic() < deadline
    assert requests.get(url, timeout=5).status_code == 401

    key_id = re.search(r'/keys/(\d+)/revoke', got.text).group(1)
    revoked = post(browser, server, created.url[len(server.portal):] + f"/keys/{key_id}/revoke", got)
    assert "revoked" in revoked.text
    deadline = time.monotonic() + 1
    while requests.get(url, headers={"X-Gravitee-Api-Key": key}, timeout=5).status_code != 401:
        assert time.monotonic() < deadline


def test_jwt_plan_secret_is_masked_and_kept_when_left_blank(server):
    api_id = server.import_api(mock_api(path="/portal-jwt"))
    browser = portal_login(server)
    form = browser.get(server.portal + f"/apis/{api_id}/plans/new")
    post(browser, server, f"/apis/{api_id}/plans/new", form, name="Tokens", type="jwt", validation="AUTO",
         signature="HMAC_HS256", publicKeyResolver="GIVEN_KEY", secret="s3cret-value-for-hmac")
    (plan,) = [p for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] == "Tokens"]
    assert plan["security"]["configuration"]["resolverParameter"] == "********"
    edit = browser.get(server.portal + f"/apis/{api_id}/plans/{plan['id']}/edit")
    assert "s3cret-value-for-hmac" not in edit.text and "kept when left blank" in edit.text
    saved = post(browser, server, f"/apis/{api_id}/plans/{plan['id']}/edit", edit, name="Tokens 2",
                 validation="AUTO", signature="HMAC_HS256", publicKeyResolver="GIVEN_KEY", secret="")
    assert "Plan Tokens 2 saved" in saved.text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    (kept,) = [p for p in exported["plans"] if p["name"] == "Tokens 2"]
    assert kept["security"]["configuration"]["resolverParameter"] == "s3cret-value-for-hmac"
