"""The portal's Plans tab and Applications pages, as a person uses them: add an api-key plan with
manual validation, publish and deploy it; create an application, subscribe, have the owner accept,
get the key (shown once), call the API with it, revoke it. A JWT plan's HMAC secret is masked and
kept when the form leaves it blank. In a browser: an admin adds an API owner, who makes an
application, subscribes it to an api-key plan and copies its key, with which a client calls the API."""

import re
import time

import requests

from support.apis import mock_api
from support.browser import add_user_in_browser, expect, logged_in_page
from support.gatehouse import until
from support.plans import JSON, plan, proxy_api
from support.portal import PASSWORD, csrf_token, portal_login


def post(client, server, path, page, **data):
    return client.post(server.portal + path, data={"csrf_token": csrf_token(page.text), **data})


def test_plan_application_subscription_and_key_in_the_portal(server):
    api_id = server.deploy_api(mock_api(path="/portal-plans", interval=0))
    client = portal_login(server)
    page = client.get(server.portal + f"/apis/{api_id}/plans")
    assert page.status_code == 200 and "Default Keyless (UNSECURED)" in page.text

    form = client.get(server.portal + f"/apis/{api_id}/plans/new")
    bad = post(
        client,
        server,
        f"/apis/{api_id}/plans/new",
        form,
        name="",
        type="jwt",
        validation="AUTO",
        signature="RSA_RS256",
        publicKeyResolver="GIVEN_KEY",
        publicKey="not a key",
    )
    assert bad.status_code == 400 and "Give the plan a name." in bad.text and "PEM form" in bad.text
    added = post(client, server, f"/apis/{api_id}/plans/new", form, name="Gold", type="api-key", validation="MANUAL")
    assert "Plan Gold added in staging" in added.text
    (plan_id,) = [p["id"] for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] == "Gold"]
    published = post(client, server, f"/apis/{api_id}/plans/{plan_id}/status", added, status="published")
    assert "Plan Gold is published now" in published.text
    keyless = [p["id"] for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] != "Gold"]
    post(client, server, f"/apis/{api_id}/plans/{keyless[0]}/status", published, status="closed")
    server.wait_serving(api_id, server.deploy(api_id))

    apps = client.get(server.portal + "/applications")
    created = post(client, server, "/applications", apps, name="Shop", description="the shop", client_id="")
    assert "Application Shop created" in created.text
    requested = post(
        client, server, created.url[len(server.portal) :] + "/subscriptions", created, plan=f"{api_id}/{plan_id}"
    )
    assert "the API owner accepts or rejects it" in requested.text and 'id="api-key"' not in requested.text

    plans_page = client.get(server.portal + f"/apis/{api_id}/plans")
    subscription_id = re.search(r'id="subscription-([^"]+)"', plans_page.text).group(1)
    accepted = post(client, server, f"/apis/{api_id}/subscriptions/{subscription_id}/accept", plans_page)
    assert "Subscription of Shop accepted" in accepted.text

    app_page = client.get(created.url)
    got = post(client, server, created.url[len(server.portal) :] + f"/subscriptions/{subscription_id}/renew", app_page)
    key = re.search(r'<code id="api-key">([^<]+)</code>', got.text).group(1)
    assert key not in client.get(created.url).text  # shown once
    url = server.gateway + "/portal-plans?limit=1"
    deadline = time.monotonic() + 1
    while requests.get(url, headers={"X-Gravitee-Api-Key": key}, timeout=5).status_code != 200:
        assert time.monotonic() < deadline
    assert requests.get(url, timeout=5).status_code == 401

    key_id = re.search(r"/keys/(\d+)/revoke", got.text).group(1)
    revoked = post(client, server, created.url[len(server.portal) :] + f"/keys/{key_id}/revoke", got)
    assert "revoked" in revoked.text
    deadline = time.monotonic() + 1
    while requests.get(url, headers={"X-Gravitee-Api-Key": key}, timeout=5).status_code != 401:
        assert time.monotonic() < deadline


def test_jwt_plan_secret_is_masked_and_kept_when_left_blank(server):
    api_id = server.import_api(mock_api(path="/portal-jwt"))
    client = portal_login(server)
    form = client.get(server.portal + f"/apis/{api_id}/plans/new")
    post(
        client,
        server,
        f"/apis/{api_id}/plans/new",
        form,
        name="Tokens",
        type="jwt",
        validation="AUTO",
        signature="HMAC_HS256",
        publicKeyResolver="GIVEN_KEY",
        secret="s3cret-value-for-hmac",
    )
    (plan,) = [p for p in server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] if p["name"] == "Tokens"]
    assert plan["security"]["configuration"]["resolverParameter"] == "********"
    edit = client.get(server.portal + f"/apis/{api_id}/plans/{plan['id']}/edit")
    assert "s3cret-value-for-hmac" not in edit.text and "kept when left blank" in edit.text
    saved = post(
        client,
        server,
        f"/apis/{api_id}/plans/{plan['id']}/edit",
        edit,
        name="Tokens 2",
        validation="AUTO",
        signature="HMAC_HS256",
        publicKeyResolver="GIVEN_KEY",
        secret="",
    )
    assert "Plan Tokens 2 saved" in saved.text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    (kept,) = [p for p in exported["plans"] if p["name"] == "Tokens 2"]
    assert kept["security"]["configuration"]["resolverParameter"] == "s3cret-value-for-hmac"


def test_in_a_browser_an_owner_subscribes_an_application_and_a_client_calls_the_api_with_its_key(
    server, browser, backend
):
    # The API: a proxy to a local backend, callable only with a key of its published api-key plan.
    api_id = server.deploy_api(proxy_api("/shop", backend, [plan("keys", "API_KEY")]))
    url = server.gateway + "/shop/items"

    admin = logged_in_page(browser, server)
    add_user_in_browser(admin, "olive", "owner")

    owner = logged_in_page(browser, server, "olive", PASSWORD)  # another person, at another browser
    owner.get_by_role("link", name="Applications").click()
    owner.fill("#name", "Storefront")
    owner.fill("#description", "the shop's web site")
    owner.get_by_role("button", name="Create").click()
    expect(owner.get_by_text("Application Storefront created")).to_be_visible()
    expect(owner.get_by_role("heading", name="Storefront")).to_be_visible()
    owner.select_option("#plan", label="Proxy /shop — Keys (api-key)")
    owner.get_by_role("button", name="Subscribe").click()
    expect(owner.locator("#new-key")).to_contain_text("Copy it now: it is shown this once")
    key = owner.locator("#api-key").inner_text()
    expect(owner.locator("#subscriptions tbody tr")).to_have_count(1)
    expect(owner.locator("#subscriptions .state")).to_have_text("accepted")

    owner.reload()  # shown once: the page no longer holds it, only its first characters
    expect(owner.locator("#api-key")).to_have_count(0)
    expect(owner.locator("#subscriptions")).to_contain_text(key[:6] + "…")
    assert key not in owner.content()

    # The client: the key works within a gateway poll; without one the API refuses the call.
    with_key = {**JSON, "X-Gravitee-Api-Key": key}
    until(lambda: requests.get(url, headers=with_key, timeout=5).status_code == 200)
    served = requests.get(url, headers=with_key, timeout=5)
    assert served.json() == {"backend": "ok", "apiKeyHeader": None}  # the key is not passed on to the backend
    assert requests.get(url, headers=JSON, timeout=5).status_code == 401
    assert requests.get(url, headers={**JSON, "X-Gravitee-Api-Key": key[:-1]}, timeout=5).status_code == 401
    assert server.mgmt("GET", f"/apis/{api_id}/subscriptions").json()["data"][0]["application"]["name"] == "Storefront"
