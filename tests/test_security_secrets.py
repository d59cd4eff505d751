"""Issue 14, defect 5 and two items of 12: secrets that are not connector settings are secrets too.

Credential headers of endpoints and groups (Authorization, Cookie, X-Api-Key, *-Token...), a
target's `user:password@`, properties marked `encrypted: true`, secret-looking keys of resources
and of other parts nobody declared: encrypted in the database, masked in the management API (for
viewers as for admins), exports, deployment and compare pages and logs, clear only in an admin's
`includeSecrets=true` export, and kept when a masked export is imported again. Also: a webhook's
OAuth2 token endpoint on a private address is refused at save, and JWT plans may require `exp`.
"""

import json
import re
import time
import uuid
from pathlib import Path

import jwt
import requests

from support.apis import proxy_api
from support.database import MARKER, sqlite_dump
from support.gatehouse import ADMIN_PASSWORD, until
from support.http_backends import url
from support.plans import SECRET, bearer, call, hs_plan, refused, served, token
from support.plans import proxy_api as plans_proxy_api
from support.portal import add_user, csrf_token, login, mgmt_as, portal_login
from support.webhook import PUSH_PLAN, hook, mock_group, push_subscribe, webhook_api

MASK = "********"
TAG = uuid.uuid4().hex[:10]
TARGET_PASSWORD = "target-pw-" + TAG
BEARER = "bearer-" + TAG
SESSION_TOKEN = "session-token-" + TAG
GROUP_API_KEY = "group-api-key-" + TAG
COOKIE = "cookie-" + TAG
PROPERTY_SECRET = "property-" + TAG
NEW_TOKEN = "new-token-" + TAG
CLIENT_SECRET = "client-secret-" + TAG
REDIS_PASSWORD = "redis-pw-" + TAG
VAULT_TOKEN = "vault-token-" + TAG
SECRETS = (
    TARGET_PASSWORD,
    BEARER,
    SESSION_TOKEN,
    GROUP_API_KEY,
    COOKIE,
    PROPERTY_SECRET,
    NEW_TOKEN,
    CLIENT_SECRET,
    REDIS_PASSWORD,
    VAULT_TOKEN,
)


def assert_no_secret(text, where):
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} holds secrets in clear: {leaked}"


def sealed_proxy(backend_url):
    """A proxy API whose endpoint sends credential headers to a backend behind `user:password@`."""
    target = backend_url.replace("http://", f"http://gateway:{TARGET_PASSWORD}@") + "/base"
    d = proxy_api([target], path="/sealed-" + TAG)
    group = d["endpointGroups"][0]
    group["sharedConfiguration"]["headers"] = [
        {"name": "X-Api-Key", "value": GROUP_API_KEY},
        {"name": "Cookie", "value": f"session={COOKIE}"},
    ]
    group["endpoints"][0].update(
        inheritConfiguration=False,
        sharedConfigurationOverride={
            "headers": [
                {"name": "Authorization", "value": f"Bearer {BEARER}"},
                {"name": "X-Session-Token", "value": SESSION_TOKEN},
                {"name": "X-Trace", "value": "visible-trace"},
            ]
        },
    )
    d["properties"] = [
        {"key": "db", "value": PROPERTY_SECRET, "encrypted": True},
        {"key": "region", "value": "eu-west", "encrypted": False},
    ]
    return d


def override_headers(exported):
    endpoint = exported["api"]["endpointGroups"][0]["endpoints"][0]
    return {h["name"]: h["value"] for h in endpoint["sharedConfigurationOverride"]["headers"]}


def test_headers_target_password_and_properties_are_sealed_masked_and_kept(start_server, http_backends):
    server = start_server(GATEHOUSE_LOG_LEVEL="DEBUG")
    backend_url = url(http_backends[0])
    api_id = server.deploy_api(sealed_proxy(backend_url))
    path = "/sealed-" + TAG
    echo = requests.get(server.gateway + path + "/x", timeout=10).json()
    assert (
        echo["headers"]["Authorization"] == f"Bearer {BEARER}" and echo["headers"]["X-Session-Token"] == SESSION_TOKEN
    )

    dump = sqlite_dump(server.workdir)
    assert_no_secret(dump, "the SQLite dump")
    assert "visible-trace" in dump and "eu-west" in dump  # only secrets are sealed
    # Draft and revision 1: the target's password, 2 group headers, 2 endpoint headers, 1 property;
    # then the key check value and the API-key hashing key.
    assert dump.count(MARKER) == 2 * 6 + 2, dump.count(MARKER)

    masked = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    assert_no_secret(json.dumps(masked), "the export")
    endpoint = masked["api"]["endpointGroups"][0]["endpoints"][0]
    masked_target = backend_url.replace("http://", f"http://gateway:{MASK}@") + "/base"
    assert endpoint["configuration"]["target"] == masked_target
    assert override_headers(masked) == {"Authorization": MASK, "X-Session-Token": MASK, "X-Trace": "visible-trace"}
    assert masked["api"]["endpointGroups"][0]["sharedConfiguration"]["headers"] == [
        {"name": "X-Api-Key", "value": MASK},
        {"name": "Cookie", "value": MASK},
    ]
    assert masked["api"]["properties"] == [
        {"key": "db", "value": MASK, "encrypted": True},
        {"key": "region", "value": "eu-west", "encrypted": False},
    ]
    for listing in (f"/apis/{api_id}", "/apis"):
        shown = server.mgmt("GET", listing)
        assert shown.status_code == 200 and MASK in shown.text
        assert_no_secret(shown.text, f"GET {listing}")

    # A viewer sees the masks too, and may not ask for the clear values.
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "vera", "viewer")
    for listing in (f"/apis/{api_id}", "/apis", f"/apis/{api_id}/_export/definition"):
        shown = mgmt_as(server, "vera", "GET", listing)
        assert shown.status_code == 200 and MASK in shown.text
        assert_no_secret(shown.text, f"a viewer's GET {listing}")
    assert (
        mgmt_as(
            server, "vera", "GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}
        ).status_code
        == 403
    )

    clear = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert (
        clear["api"]["endpointGroups"][0]["endpoints"][0]["configuration"]["target"]
        == backend_url.replace("http://", f"http://gateway:{TARGET_PASSWORD}@") + "/base"
    )
    assert override_headers(clear)["Authorization"] == f"Bearer {BEARER}"
    assert clear["api"]["properties"][0]["value"] == PROPERTY_SECRET

    # The masked export imported again, with one more credential header: the stored values stay.
    endpoint["sharedConfigurationOverride"]["headers"].append({"name": "X-Extra-Token", "value": NEW_TOKEN})
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=masked).status_code == 200
    server.wait_serving(api_id, server.deploy(api_id))
    echo = requests.get(server.gateway + path + "/x", timeout=10).json()
    assert echo["headers"]["Authorization"] == f"Bearer {BEARER}" and echo["headers"]["X-Extra-Token"] == NEW_TOKEN
    again = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert again["api"]["properties"] == clear["api"]["properties"]
    assert (
        again["api"]["endpointGroups"][0]["endpoints"][0]["configuration"]
        == clear["api"]["endpointGroups"][0]["endpoints"][0]["configuration"]
    )
    assert override_headers(again) == {**override_headers(clear), "X-Extra-Token": NEW_TOKEN}

    browser = portal_login(server)
    endpoints = browser.get(server.portal + f"/apis/{api_id}/endpoints").text
    edit = re.search(r"/endpoints/\d+/edit", endpoints).group(0)
    pages = ("/endpoints", edit, "/deployments/1", "/deployments/2", "/deployments/compare?from=1&to=2")
    for page in pages:
        shown = browser.get(server.portal + f"/apis/{api_id}{page}")
        assert shown.status_code == 200 and MASK in shown.text, page
        assert_no_secret(shown.text, f"the page /apis/<id>{page}")
    diff = browser.get(server.portal + f"/apis/{api_id}/deployments/compare?from=1&to=2").text
    assert "X-Extra-Token" in diff  # the change is shown, its value masked
    form = browser.get(server.portal + f"/apis/{api_id}{edit}").text
    assert "Authorization: ********" in form and masked_target in form

    log = Path(server.proc.log_path).read_text()
    assert "deployed as revision 2" in log
    assert_no_secret(log, "the server log")


def test_unmodelled_secrets_of_resources_and_parts_are_sealed_masked_and_kept(server, http_backends):
    d = proxy_api([url(http_backends[0])], path="/resources-" + TAG)
    d["resources"] = [
        {
            "name": "am",
            "type": "oauth2-am-resource",
            "enabled": True,
            "configuration": {
                "serverURL": "https://am.example.com",
                "clientId": "portal",
                "clientSecret": CLIENT_SECRET,
            },
        },
        {
            "name": "cache",
            "type": "cache-redis",
            "enabled": True,
            "configuration": {"standalone": {"host": "redis", "port": 6379}, "password": REDIS_PASSWORD},
        },
    ]
    d["endpointGroups"][0]["endpoints"][0]["vault"] = {"token": VAULT_TOKEN, "tokenEndpoint": "https://vault"}
    api_id = server.import_api(d)
    dump = sqlite_dump(server.workdir)
    assert_no_secret(dump, "the SQLite dump")
    assert "https://vault" in dump and "am.example.com" in dump

    masked = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    assert_no_secret(json.dumps(masked), "the export")
    resources = masked["api"]["resources"]
    assert resources[0]["configuration"] == {
        "serverURL": "https://am.example.com",
        "clientId": "portal",
        "clientSecret": MASK,
    }
    assert resources[1]["configuration"]["password"] == MASK
    assert masked["api"]["endpointGroups"][0]["endpoints"][0]["vault"] == {
        "token": MASK,
        "tokenEndpoint": "https://vault",
    }
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=masked).status_code == 200
    clear = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert clear["api"]["resources"] == d["resources"]
    assert clear["api"]["endpointGroups"][0]["endpoints"][0]["vault"]["token"] == VAULT_TOKEN
    assert_no_secret(sqlite_dump(server.workdir), "the SQLite dump after the import")


def test_a_pkcs12_key_store_content_is_a_secret_setting():
    from gateway_runtime.endpoints.http_proxy import SHARED

    values = {"ssl": {"keyStore": {"type": "PKCS12", "content": "MIIK-base64", "password": "pw"}}}
    assert SHARED.mask_secrets(values)["ssl"]["keyStore"] == {"type": "PKCS12", "content": MASK, "password": MASK}


# ----- 12: webhook OAuth2 token endpoints, JWT expiry -----
def no_exp(client_id):
    """A good HS256 token that never expires: it has no `exp` claim."""
    return jwt.encode({"sub": "someone", "client_id": client_id, "iat": int(time.time())}, SECRET, algorithm="HS256")


def test_a_private_oauth2_token_endpoint_is_refused_at_save(start_server):
    server = start_server()
    api_id = server.deploy_api(webhook_api([mock_group(1)]))
    public_callback = "http://93.184.216.34/hook"  # a literal public address: no name to resolve
    for endpoint in ("http://127.0.0.1:9/token", "http://10.1.2.3/token", "http://169.254.169.254/latest"):
        oauth2 = {"auth": {"type": "oauth2", "oauth2": {"endpoint": endpoint, "clientId": "c", "clientSecret": "s"}}}
        body = push_subscribe(server, api_id, hook(public_callback, **oauth2), expect=400)
        error = body["errors"][0]
        assert error["field"] == "consumerConfiguration.entrypointConfiguration.auth.oauth2.endpoint", body
        assert "a loopback, link-local or private address: OAuth2 token endpoints must be public" in error["message"]
        assert "GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true" in error["message"]
    listed = server.mgmt("GET", f"/apis/{api_id}/subscriptions").json()["data"]
    assert [s for s in listed if s["plan"]["id"] == PUSH_PLAN["id"]] == []  # nothing saved


def test_a_new_jwt_plan_requires_exp_and_an_imported_one_keeps_accepting_tokens_without(server, backend):
    path = f"/jwt-exp-{TAG}"
    imported = server.deploy_api(plans_proxy_api(path, backend, [hs_plan()]))
    client = f"client-{uuid.uuid4().hex[:8]}"
    application = server.application(client)
    server.subscribe(imported, "jwt-hs", application)
    without_exp = no_exp(client)
    until(lambda: call(server.gateway + path, bearer(without_exp)).status_code == 200)  # as before the setting

    created = server.mgmt(
        "POST",
        f"/apis/{imported}/plans",
        json={
            "name": "Strict",
            "security": {
                "type": "JWT",
                "configuration": {
                    "signature": "HMAC_HS256",
                    "publicKeyResolver": "GIVEN_KEY",
                    "resolverParameter": SECRET,
                },
            },
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["security"]["configuration"]["requireExp"] is True  # on by default
    strict = created.json()["id"]
    assert server.mgmt("POST", f"/apis/{imported}/plans/{strict}/_publish").status_code == 200
    assert server.mgmt("POST", f"/apis/{imported}/plans/jwt-hs/_close").status_code == 200
    server.subscribe(imported, strict, server.application(client + "-strict"))
    server.wait_serving(imported, server.deploy(imported))
    strict_client = client + "-strict"
    until(lambda: call(server.gateway + path, bearer(token(strict_client))).status_code == 200)
    assert served(call(server.gateway + path, bearer(token(strict_client))))
    refused(call(server.gateway + path, bearer(no_exp(strict_client))), 401, 'missing the "exp" claim')

    # Turned off explicitly, the plan accepts such tokens again (a PUT without it keeps the setting).
    plan = server.mgmt("GET", f"/apis/{imported}/plans/{strict}").json()
    kept = server.mgmt(
        "PUT",
        f"/apis/{imported}/plans/{strict}",
        json={
            "name": "Strict",
            "security": {"type": "JWT", "configuration": {"signature": "HMAC_HS256", "publicKeyResolver": "GIVEN_KEY"}},
        },
    )
    assert kept.status_code == 200 and kept.json()["security"]["configuration"]["requireExp"] is True, kept.text
    bad = server.mgmt(
        "PUT",
        f"/apis/{imported}/plans/{strict}",
        json={
            "name": "Strict",
            "security": {"type": "JWT", "configuration": dict(plan["security"]["configuration"], requireExp="yes")},
        },
    )
    assert bad.status_code == 400 and "requireExp must be true or false" in bad.text
    off = server.mgmt(
        "PUT",
        f"/apis/{imported}/plans/{strict}",
        json={
            "name": "Strict",
            "security": {
                "type": "JWT",
                "configuration": {"signature": "HMAC_HS256", "publicKeyResolver": "GIVEN_KEY", "requireExp": False},
            },
        },
    )
    assert off.status_code == 200 and off.json()["security"]["configuration"]["requireExp"] is False
    server.wait_serving(imported, server.deploy(imported))
    assert served(call(server.gateway + path, bearer(no_exp(strict_client))))


def test_the_plan_form_ticks_require_exp_for_a_new_jwt_plan_and_saves_it_unticked(server):
    api_id = server.import_api(proxy_api(["http://127.0.0.1:9"], path="/jwt-form-" + TAG))
    browser = portal_login(server)
    fields = browser.post(
        server.portal + f"/apis/{api_id}/plans/_fields",
        data={"csrf_token": csrf_token(browser.get(server.portal + f"/apis/{api_id}/plans/new").text), "type": "jwt"},
    ).text
    assert re.search(r'<input type="checkbox" id="requireExp" name="requireExp" checked', fields), fields
    page = browser.get(server.portal + f"/apis/{api_id}/plans/new").text
    saved = browser.post(
        server.portal + f"/apis/{api_id}/plans/new",
        data={
            "csrf_token": csrf_token(page),
            "name": "Lenient",
            "type": "jwt",
            "validation": "AUTO",
            "signature": "HMAC_HS256",
            "secret": SECRET,
            "requireExp_shown": "1",
        },
    )
    assert saved.status_code in (200, 302), saved.text
    plans = server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"]
    lenient = next(p for p in plans if p["name"] == "Lenient")
    assert lenient["security"]["configuration"]["requireExp"] is False
    assert SECRET not in json.dumps(plans)
