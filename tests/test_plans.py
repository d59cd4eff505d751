"""Plans as an API consumer meets them: key-less, api-key (header and query) and JWT (HS256,
RS256 with a given key or a JWKS URL) on a proxy API (local stdlib backend) and on a message API
(Mock endpoint over HTTP GET); plan statuses, manual validation, key renewal and revocation (also
as seen by a second process on one PostgreSQL database)."""

import time
import uuid
from typing import ClassVar

import jwt
import pytest
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.apis import mock_api
from support.gatehouse import until
from support.http_backends import JsonHandler, serve
from support.plans import SECRET, bearer, call, hs_plan, plan, proxy_api, refused, served, token


class Jwks(JsonHandler):
    keys: ClassVar[list[dict]] = []  # JWKs served now; a test changes it to rotate

    def payload(self):
        return {"keys": Jwks.keys}


@pytest.fixture(scope="module")
def jwks_url():
    httpd = serve(Jwks)
    yield f"http://127.0.0.1:{httpd.server_port}/jwks.json"
    httpd.shutdown()


@pytest.fixture
def server(shared_server):
    return shared_server


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key):
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(private_key, kid):
    return dict(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), kid=kid, use="sig")


def message_api(path, plans):
    return dict(
        mock_api(path=path, content="message", interval=0, entrypoints=[{"type": "http-get"}, {"type": "websocket"}]),
        plans=plans,
    )


KINDS = ("proxy", "message")


def deploy(server, backend, kind, plans, path=None):
    path = path or f"/{kind}-{uuid.uuid4().hex[:8]}"
    definition = proxy_api(path, backend, plans) if kind == "proxy" else message_api(path, plans)
    return server.deploy_api(definition), server.gateway + path + ("" if kind == "proxy" else "?limit=1")


# ----- key-less -----
@pytest.mark.parametrize("kind", KINDS)
def test_keyless_plan_serves_anyone_and_closing_it_leaves_no_plan(server, backend, kind):
    api_id, url = deploy(server, backend, kind, [plan("open", "KEY_LESS")])
    assert served(call(url))
    assert server.mgmt("POST", f"/apis/{api_id}/plans/open/_close").status_code == 200
    until(lambda: call(url).status_code == 401)
    refused(call(url), 401, "no published plan")


# ----- api-key -----
@pytest.mark.parametrize("kind", KINDS)
def test_api_key_plan(server, backend, kind):
    api_id, url = deploy(server, backend, kind, [plan("gold", "API_KEY")])
    other_id, _ = deploy(server, backend, kind, [plan("silver", "API_KEY")])
    subscription = server.subscribe(api_id, "gold")
    key = subscription["apiKey"]
    assert subscription["status"] == "ACCEPTED" and len(key) >= 32

    refused(call(url), 401, "needs an API key (header X-Gravitee-Api-Key or query parameter api-key)")
    refused(call(url, {"X-Gravitee-Api-Key": "not-a-key"}), 401, "Unknown, expired or revoked API key")
    until(lambda: call(url, {"X-Gravitee-Api-Key": key}).status_code == 200)  # the gateway's poll
    assert served(call(url, {"X-Gravitee-Api-Key": key}))
    assert served(call(url, params={"api-key": key}))
    if kind == "proxy":  # the key is not passed on (propagateApiKey false)
        assert call(url, {"X-Gravitee-Api-Key": key}).json()["apiKeyHeader"] is None
    elsewhere = server.subscribe(other_id, "silver")["apiKey"]
    until(lambda: call(url, {"X-Gravitee-Api-Key": elsewhere}).status_code == 403)
    refused(call(url, {"X-Gravitee-Api-Key": elsewhere}), 403, "no subscription to this API")

    keys = f"/apis/{api_id}/subscriptions/{subscription['id']}/api-keys"
    listed = server.mgmt("GET", keys).json()["data"]
    assert [k["prefix"] for k in listed] == [key[:6]] and "key" not in listed[0]  # shown once only
    renewed = server.mgmt("POST", keys + "/_renew")
    assert renewed.status_code == 201
    new_key = renewed.json()["key"]
    until(lambda: call(url, {"X-Gravitee-Api-Key": key}).status_code == 401)
    assert served(call(url, {"X-Gravitee-Api-Key": new_key}))

    revoked = server.mgmt("POST", f"{keys}/{renewed.json()['id']}/_revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    until(lambda: call(url, {"X-Gravitee-Api-Key": new_key}).status_code == 401)
    refused(call(url, {"X-Gravitee-Api-Key": new_key}), 401, "revoked")


def test_api_key_on_websocket_is_checked_before_the_handshake(server, backend):
    api_id, _ = deploy(server, backend, "message", [plan("gold", "API_KEY")], path="/ws-keys")
    key = server.subscribe(api_id, "gold")["apiKey"]
    url = server.gateway.replace("http", "ws") + "/ws-keys"
    with pytest.raises(websocket.WebSocketBadStatusException) as failed:
        websocket.create_connection(url, timeout=5)
    assert failed.value.status_code == 401 and b"needs an API key" in failed.value.resp_body
    until(lambda: call(server.gateway + "/ws-keys?limit=1", {"X-Gravitee-Api-Key": key}).status_code == 200)
    ws = websocket.create_connection(url, header=[f"X-Gravitee-Api-Key: {key}"], timeout=5)
    assert ws.recv() == "message"
    ws.close()


# ----- JWT -----
@pytest.mark.parametrize("kind", KINDS)
def test_jwt_hs256_plan(server, backend, kind):
    api_id, url = deploy(server, backend, kind, [hs_plan()])
    client = f"client-{uuid.uuid4().hex[:8]}"
    subscription = server.subscribe(api_id, "jwt-hs", server.application(client))
    assert "apiKey" not in subscription
    good = token(client)
    until(lambda: call(url, bearer(good)).status_code == 200)
    assert served(call(url, bearer(good)))
    refused(call(url), 401, "needs a JWT")
    refused(call(url, bearer(token(client, key=SECRET + "-wrong"))), 401, "Signature verification failed")
    refused(call(url, bearer(token(client, exp=int(time.time()) - 10))), 401, "expired")
    refused(call(url, bearer(token(client, nbf=int(time.time()) + 600))), 401, "not yet valid")
    refused(call(url, bearer(token(None))), 401, "no client_id claim")
    refused(call(url, bearer(token("nobody"))), 403, "Application nobody holds no subscription")

    closed = server.mgmt("POST", f"/apis/{api_id}/subscriptions/{subscription['id']}/_close")
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED"
    until(lambda: call(url, bearer(good)).status_code == 403)


@pytest.mark.parametrize("kind", KINDS)
def test_jwt_rs256_plan_with_a_given_public_key(server, backend, kind):
    signer, stranger = rsa_key(), rsa_key()
    api_id, url = deploy(
        server,
        backend,
        kind,
        [
            plan(
                "jwt-rs",
                "JWT",
                {"signature": "RSA_RS256", "publicKeyResolver": "GIVEN_KEY", "resolverParameter": pem(signer)},
            )
        ],
    )
    client = f"client-{uuid.uuid4().hex[:8]}"
    server.subscribe(api_id, "jwt-rs", server.application(client))
    until(lambda: call(url, bearer(token(client, signer, "RS256"))).status_code == 200)
    assert served(call(url, bearer(token(client, signer, "RS256"))))
    refused(call(url, bearer(token(client, stranger, "RS256"))), 401, "Signature verification failed")
    refused(call(url, bearer(token(client))), 401, "Invalid token")  # HS256 where RS256 is wanted


@pytest.mark.parametrize("kind", KINDS)
def test_jwt_rs256_plan_with_a_jwks_url_and_key_rotation(server, backend, jwks_url, kind):
    first, second, unknown = rsa_key(), rsa_key(), rsa_key()
    Jwks.keys = [jwk(first, "k1")]
    api_id, url = deploy(
        server,
        backend,
        kind,
        [
            plan(
                "jwt-jwks",
                "JWT",
                {"signature": "RSA_RS256", "publicKeyResolver": "JWKS_URL", "resolverParameter": jwks_url},
            )
        ],
    )
    client = f"client-{uuid.uuid4().hex[:8]}"
    server.subscribe(api_id, "jwt-jwks", server.application(client))
    until(lambda: call(url, bearer(token(client, first, "RS256", "k1"))).status_code == 200)
    assert served(call(url, bearer(token(client, first, "RS256", "k1"))))

    Jwks.keys = [jwk(first, "k1"), jwk(second, "k2")]  # rotation: a new key appears at the URL
    rotated = token(client, second, "RS256", "k2")
    until(lambda: call(url, bearer(rotated)).status_code == 200, timeout=5)  # refresh is rate-limited (2 s)
    refused(call(url, bearer(token(client, unknown, "RS256", "k3"))), 401, "kid k3")
    refused(call(url, bearer(token(client, unknown, "RS256", "k1"))), 401, "Signature verification failed")


# ----- plan statuses and validation -----
def test_plan_statuses(server, backend):
    api_id, url = deploy(server, backend, "proxy", [plan("open", "KEY_LESS")])
    created = server.mgmt(
        "POST", f"/apis/{api_id}/plans", json={"name": "Gold", "security": {"type": "API_KEY"}, "validation": "AUTO"}
    )
    assert created.status_code == 201 and created.json()["status"] == "STAGING"
    gold = created.json()["id"]
    app = server.application()
    staging = server.mgmt("POST", f"/apis/{api_id}/subscriptions", json={"applicationId": app["id"], "planId": gold})
    assert staging.status_code == 400 and "only published plans" in staging.json()["message"]
    assert server.mgmt("POST", f"/apis/{api_id}/plans/{gold}/_publish").json()["status"] == "PUBLISHED"
    key = server.subscribe(api_id, gold, app)["apiKey"]
    server.wait_serving(api_id, server.deploy(api_id))  # a new plan serves once deployed
    assert served(call(url, {"X-Gravitee-Api-Key": key}))
    assert served(call(url))  # the key-less plan still serves requests without a key

    assert server.mgmt("POST", f"/apis/{api_id}/plans/{gold}/_deprecate").json()["status"] == "DEPRECATED"
    late = server.mgmt(
        "POST", f"/apis/{api_id}/subscriptions", json={"applicationId": server.application()["id"], "planId": gold}
    )
    assert late.status_code == 400 and "is deprecated" in late.json()["message"]
    assert served(call(url, {"X-Gravitee-Api-Key": key}))  # existing subscriptions go on

    # Without the key-less plan, a request with no key is refused; then the key dies with its plan.
    assert server.mgmt("POST", f"/apis/{api_id}/plans/open/_close").json()["status"] == "CLOSED"
    until(lambda: call(url).status_code == 401)
    refused(call(url), 401, "needs an API key")
    assert server.mgmt("POST", f"/apis/{api_id}/plans/{gold}/_close").json()["status"] == "CLOSED"
    until(lambda: call(url, {"X-Gravitee-Api-Key": key}).status_code == 401)
    refused(call(url, {"X-Gravitee-Api-Key": key}), 401, "no published plan")
    again = server.mgmt("POST", f"/apis/{api_id}/plans/{gold}/_publish")
    assert again.status_code == 400 and "closing is final" in again.json()["message"]
    subscriptions = server.mgmt("GET", f"/apis/{api_id}/subscriptions").json()["data"]
    assert [s["status"] for s in subscriptions] == ["CLOSED"]


def test_manual_validation(server, backend):
    api_id, url = deploy(
        server, backend, "proxy", [plan("gold", "API_KEY", validation="MANUAL"), dict(hs_plan(), validation="MANUAL")]
    )
    pending = server.subscribe(api_id, "gold")
    assert pending["status"] == "PENDING" and "apiKey" not in pending
    keys = f"/apis/{api_id}/subscriptions/{pending['id']}/api-keys"
    early = server.mgmt("POST", keys + "/_renew")
    assert early.status_code == 400 and "pending" in early.json()["message"]
    accepted = server.mgmt("POST", f"/apis/{api_id}/subscriptions/{pending['id']}/_accept")
    assert accepted.json()["status"] == "ACCEPTED" and accepted.json()["processedBy"] == "admin"
    key = server.mgmt("POST", keys + "/_renew").json()["key"]
    until(lambda: call(url, {"X-Gravitee-Api-Key": key}).status_code == 200)

    client = f"client-{uuid.uuid4().hex[:8]}"
    waiting = server.subscribe(api_id, "jwt-hs", server.application(client))
    refused(call(url, bearer(token(client))), 403, "no subscription")
    rejected = server.mgmt(
        "POST", f"/apis/{api_id}/subscriptions/{waiting['id']}/_reject", json={"reason": "not for you"}
    )
    assert rejected.json()["status"] == "REJECTED" and rejected.json()["reason"] == "not for you"
    refused(call(url, bearer(token(client))), 403, "no subscription")


# ----- definitions carry plans -----
def test_plans_in_both_definition_forms_and_the_secret_masked_on_export(server, backend):
    gateway_form = proxy_api("/forms", backend, {})
    gateway_form["plans"] = {"jwt-hs": dict(hs_plan(), status="published")}  # gateway form: a map by id
    api_id = server.deploy_api(gateway_form)
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    (exported_plan,) = exported["plans"]
    assert exported_plan["security"] == {
        "type": "JWT",
        "configuration": {"signature": "HMAC_HS256", "publicKeyResolver": "GIVEN_KEY", "resolverParameter": "********"},
    }
    assert exported_plan["status"] == "PUBLISHED" and exported_plan["validation"] == "AUTO"
    full = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert full["plans"][0]["security"]["configuration"]["resolverParameter"] == SECRET

    # The masked export comes back (management form, plans beside the API): the secret is kept.
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported).status_code == 200
    assert (
        server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()["plans"][0][
            "security"
        ]["configuration"]["resolverParameter"]
        == SECRET
    )
    client = f"client-{uuid.uuid4().hex[:8]}"
    server.subscribe(api_id, "jwt-hs", server.application(client))
    unchanged = server.mgmt("POST", f"/apis/{api_id}/deployments")  # the round trip changed nothing to deploy
    assert unchanged.status_code == 200 and unchanged.json()["revision"] == 1, unchanged.text
    until(lambda: call(server.gateway + "/forms", bearer(token(client))).status_code == 200)
    assert served(call(server.gateway + "/forms", bearer(token(client))))


# ----- every gateway process, within a second -----
def test_revocation_is_seen_by_a_second_process_on_postgresql_within_1s(start_server, backend, postgres_url):
    first, second = start_server(postgres_url), start_server(postgres_url)
    api_id, _ = deploy(first, backend, "proxy", [plan("gold", "API_KEY")], path="/pg")
    second.wait_serving(api_id, 1)
    subscription = first.subscribe(api_id, "gold")
    key = subscription["apiKey"]
    urls = [first.gateway + "/pg", second.gateway + "/pg"]
    until(lambda: all(call(u, {"X-Gravitee-Api-Key": key}).status_code == 200 for u in urls))
    (listed,) = first.mgmt("GET", f"/apis/{api_id}/subscriptions/{subscription['id']}/api-keys").json()["data"]
    revoked = first.mgmt("POST", f"/apis/{api_id}/subscriptions/{subscription['id']}/api-keys/{listed['id']}/_revoke")
    assert revoked.status_code == 200
    took = until(lambda: call(second.gateway + "/pg", {"X-Gravitee-Api-Key": key}).status_code == 401)
    assert took < 1.0
