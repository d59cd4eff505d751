"""Portal users and roles on a real server: every route as each role and as anonymous, the
failed-login throttle (also across two processes on one PostgreSQL database), idle session
expiry, logout, and personal access tokens."""

import copy
import re
import time
import uuid

import requests

from support.apis import mock_api
from support.browser import add_user_in_browser, expect, logged_in_page
from support.gatehouse import ADMIN_PASSWORD, MGMT
from support.plans import plan
from support.portal import PASSWORD, add_user, csrf_token, login, mgmt_as, post_form, user_id
from support.roles import ACTIONS, ACTORS, LOGIN, TABLE, app_routes


def two_group_api(path):
    """A message API with two endpoint groups of two endpoints each, so that deleting one
    endpoint or one group reaches the confirm page instead of the last-one refusal; and a flow with
    a step, for the Policies tab's actions."""
    d = mock_api(path=path, name="Matrix " + path)
    group = d["endpointGroups"][0]
    group["endpoints"].append(dict(group["endpoints"][0], name="mock-2"))
    second = copy.deepcopy(group)
    second["name"] = "second"
    second["endpoints"][0]["name"], second["endpoints"][1]["name"] = "mock-3", "mock-4"
    d["endpointGroups"].append(second)
    step = {"name": "Tag", "policy": "transform-headers", "enabled": True, "configuration": {}}
    d["flows"] = [{"name": "All", "enabled": True, "selectors": [], "request": [step]}]
    return d


# Routes that change what the next actor would find: each request gets an API of its own (FRESH),
# or the subscription, API key, plan or application the route acts on (FRESH_OBJECTS).
FRESH = {
    "ui.start",
    "ui.stop",
    "ui.delete_api",
    "ui.delete_endpoint",
    "ui.delete_group",
    "management.delete_api",
    "management.replace_definition",
    "management.start",
    "management.deploy",
}  # a deploy of an unchanged API makes no revision (200)
FRESH_OBJECTS = {
    "consumers.plan_status",
    "consumers.process_subscription",
    "consumers.subscribe",
    "consumers.revoke_key",
    "consumers.close_subscription",
    "management.move_plan",
    "management.create_subscription",
    "management.process_subscription",
    "management.revoke_api_key",
}
# What each request sends to reach the status of the table rather than an empty body's refusal.
BODIES = {
    "management.import_definition": lambda m, v: mock_api(path="/i-" + uuid.uuid4().hex),
    "management.replace_definition": lambda m, v: mock_api(path="/i-" + uuid.uuid4().hex),
    "management.create_plan": lambda m, v: {"name": "Matrix plan", "security": {"type": "API_KEY"}},
    "management.update_plan": lambda m, v: {"name": "Keys", "security": {"type": "API_KEY"}},
    "management.create_application": lambda m, v: {"name": "Matrix app " + uuid.uuid4().hex[:6]},
    "management.create_subscription": lambda m, v: {"applicationId": v["application_id"], "planId": "keys"},
    "consumers.subscribe": lambda m, v: {"plan": f"{v['api_id']}/keys"},
    "consumers.plan_status": lambda m, v: {"status": "published"},
}


class Matrix:
    """The actors' sessions and the objects whose ids fill the URLs."""

    def __init__(self, server):
        self.server = server
        self.admin = login(server, "admin", ADMIN_PASSWORD)
        for name, role in (("viewer", "viewer"), ("owner", "owner"), ("other", "owner")):
            add_user(server, self.admin, name, role)
        self.target_user = user_id(server, self.admin, "viewer")
        self.passwords = {"admin": ADMIN_PASSWORD, "viewer": PASSWORD, "owner": PASSWORD, "other": PASSWORD}
        self.sessions = {}
        for actor in ACTORS:
            self.relogin(actor)
        mgmt_as(server, "other", "POST", "/apis/_import/definition", json=mock_api(path="/other-" + uuid.uuid4().hex))
        self.api = self.new_api(plans=[plan("keys", "API_KEY"), plan("manual", "API_KEY", validation="MANUAL")])
        assert mgmt_as(server, "owner", "POST", f"/apis/{self.api['id']}/deployments").status_code == 202
        self.application = self.new_application()
        self.subscription = self.new_subscription("keys", self.application)

    def relogin(self, actor):
        if actor == "anonymous":
            self.sessions[actor] = requests.Session()
        else:
            self.sessions[actor] = login(self.server, actor, self.passwords[actor])

    def new_api(self, plans=None):
        """An API owned by `owner`, with the ids of its groups and endpoints."""
        definition = two_group_api("/m-" + uuid.uuid4().hex)
        if plans:
            definition["plans"] = plans
        response = mgmt_as(self.server, "owner", "POST", "/apis/_import/definition", json=definition)
        assert response.status_code == 201, response.text
        api_id = response.json()["id"]
        page = self.sessions["admin"].get(f"{self.server.portal}/apis/{api_id}/endpoints").text
        return {
            "id": api_id,
            "groups": [int(x) for x in re.findall(r'id="group-(\d+)"', page)],
            "endpoints": [int(x) for x in re.findall(r'id="endpoint-(\d+)"', page)],
        }

    def owned(self, method, path, body=None):
        """A management call as `owner`, who owns the matrix API and its applications."""
        response = mgmt_as(self.server, "owner", method, path, json=body)
        assert response.ok, response.text
        return response.json()

    def new_application(self):
        return self.owned("POST", "/applications", {"name": "Matrix app " + uuid.uuid4().hex[:6]})["id"]

    def new_subscription(self, plan_id, application=None):
        """A subscription of (a new application of) `owner` to a plan of the matrix API, and its key's
        id (None while it awaits validation)."""
        api = self.api["id"]
        subscription = self.owned(
            "POST",
            f"/apis/{api}/subscriptions",
            {"applicationId": application or self.new_application(), "planId": plan_id},
        )
        keys = self.owned("GET", f"/apis/{api}/subscriptions/{subscription['id']}/api-keys")["data"]
        return {
            "id": subscription["id"],
            "application": subscription["application"]["id"],
            "key": int(keys[0]["id"]) if keys else None,
        }

    def url_values(self, endpoint, rule, actor):
        """Every value the route's URL (or its body) may need."""
        api = self.new_api() if endpoint in FRESH else self.api
        if endpoint == "ui.restore_deployment":  # rewrites the API's groups and endpoints: one of its own, deployed
            api = self.new_api()
            assert mgmt_as(self.server, "owner", "POST", f"/apis/{api['id']}/deployments").status_code == 202
        values = {
            "api_id": api["id"],
            "group_id": api["groups"][0],
            "endpoint_id": api["endpoints"][0],
            "revision": 1,
            "user_id": self.target_user,
            "plan_id": "keys",
            "action": ACTIONS.get(endpoint),
            "application_id": self.application,
            "subscription_id": self.subscription["id"],
            "key_id": self.subscription["key"],
            "scope": "api",
            "flow": 0,
            "phase": "request",
            "step": 0,
        }
        if endpoint in FRESH_OBJECTS:
            values.update(self.fresh_objects(set(rule.arguments), values["action"]))
        if "token_id" in rule.arguments:
            values["token_id"] = self.token_of(actor)
        return values

    def fresh_objects(self, arguments, action):
        """The subscription (and its key), plan or application a route acts on, of its own."""
        if arguments & {"subscription_id", "key_id"}:
            pending = action in ("accept", "reject", "_accept", "_reject")  # those need a MANUAL plan
            subscription = self.new_subscription("manual" if pending else "keys")
            return {
                "application_id": subscription["application"],
                "subscription_id": subscription["id"],
                "key_id": subscription["key"],
            }
        if "plan_id" in arguments:  # a plan in staging, to publish
            body = BODIES["management.create_plan"](self, {})
            return {"plan_id": self.owned("POST", f"/apis/{self.api['id']}/plans", body)["id"]}
        return {"application_id": self.new_application()}  # one that has not subscribed yet

    def token_of(self, actor):
        """A token of the actor's own to revoke (anonymous: someone's, which it may not touch)."""
        owner = "viewer" if actor == "anonymous" else actor
        client = self.sessions[owner]
        response = post_form(client, self.server, "/tokens", {"name": f"matrix-{uuid.uuid4().hex[:8]}"})
        assert response.status_code == 201, response.text
        return int(re.findall(r"/tokens/(\d+)/revoke", client.get(self.server.portal + "/tokens").text)[-1])

    def request(self, actor, endpoint, method, path, values):
        body = BODIES[endpoint](self, values) if endpoint in BODIES and method in ("POST", "PUT") else None
        if path.startswith("/management/"):
            auth = None if actor == "anonymous" else (actor, self.passwords[actor])
            return requests.request(
                method, self.server.portal + path, auth=auth, json=body, timeout=30, allow_redirects=False
            )
        client = self.sessions[actor]
        if method == "GET":
            return client.get(self.server.portal + path, allow_redirects=False)
        return post_form(client, self.server, path, body)


def check(response, expected, actor, where):
    if expected == LOGIN:
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), where
        return
    assert response.status_code == expected, f"{where}: {response.status_code} {response.text[:300]}"
    if expected == 403:
        assert "ask an admin" in response.text or "ask them" in response.text, where
    if expected == 401:
        assert "WWW-Authenticate" in response.headers, where


def test_every_route_answers_each_role_as_the_table_says(server, tmp_path, monkeypatch):
    routes = app_routes(tmp_path, monkeypatch)
    in_app = {(endpoint, method) for endpoint, _, methods in routes for method in methods}
    assert not in_app - TABLE.keys(), f"routes without a row in TABLE: {sorted(in_app - TABLE.keys())}"
    assert not TABLE.keys() - in_app, f"rows of TABLE for routes that are gone: {sorted(TABLE.keys() - in_app)}"

    on_path = {}  # a method missing from a rule may be another rule's on the same path
    for _, rule, methods in routes:
        on_path.setdefault(rule.rule, set()).update(methods)

    matrix = Matrix(server)
    checked = 0
    for endpoint, rule, methods in routes:
        for method in sorted(methods | ({"GET", "POST"} - on_path[rule.rule])):
            for actor, expected in zip(ACTORS, TABLE.get((endpoint, method), (405,) * len(ACTORS)), strict=True):
                values = matrix.url_values(endpoint, rule, actor)
                path = rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]
                response = matrix.request(actor, endpoint, method, path, values)
                check(response, expected, actor, f"{method} {path} ({endpoint}) as {actor}")
                checked += 1
                if endpoint == "auth.logout":
                    matrix.relogin(actor)
    assert checked >= len(TABLE) * len(ACTORS)


# ----- failed logins -----
def portal_attempt(server, username, password):
    client = requests.Session()
    token = csrf_token(client.get(server.portal + "/login").text)
    return client.post(
        server.portal + "/login",
        allow_redirects=False,
        data={"csrf_token": token, "username": username, "password": password},
    )


def test_five_wrong_passwords_lock_the_user_name_until_the_delay_passes(start_server):
    server = start_server(GATEHOUSE_LOGIN_LOCK_SECONDS="2")
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "alice", "viewer")

    # Successes are not counted, and one resets the count.
    for _ in range(4):
        assert "Wrong user name or password" in portal_attempt(server, "alice", "nope").text
    assert portal_attempt(server, "alice", PASSWORD).status_code == 302
    for _ in range(4):
        assert portal_attempt(server, "alice", "nope").status_code == 200
    assert portal_attempt(server, "alice", PASSWORD).status_code == 302

    for _ in range(5):
        assert portal_attempt(server, "alice", "nope").status_code == 200
    refused = portal_attempt(server, "alice", PASSWORD)
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    api = mgmt_as(server, "alice", "GET", "/apis")
    assert api.status_code == 429 and int(api.headers["Retry-After"]) >= 1
    assert login(server, "admin", ADMIN_PASSWORD)  # other names are not locked

    time.sleep(int(api.headers["Retry-After"]))  # the lock is a span of time: nothing to wait on but the clock
    assert mgmt_as(server, "alice", "GET", "/apis").status_code == 200
    assert portal_attempt(server, "alice", PASSWORD).status_code == 302


def test_wrong_passwords_for_many_names_lock_the_client_address(start_server):
    server = start_server(GATEHOUSE_LOGIN_MAX_FAILURES_PER_ADDRESS="6")
    for name in ("a1", "a2", "a3"):
        assert mgmt_as(server, name, "GET", "/apis").status_code == 401
        assert mgmt_as(server, name, "GET", "/apis").status_code == 401
    refused = mgmt_as(server, "admin", "GET", "/apis", password=ADMIN_PASSWORD)
    assert refused.status_code == 429, refused.text


def test_the_lock_holds_across_two_processes_on_one_postgresql_database(start_server, postgres_url):
    first = start_server(postgres_url)
    second = start_server(postgres_url)
    for server in (first, second, first, second, first):
        assert mgmt_as(server, "admin", "GET", "/apis", password="wrong").status_code == 401
    for server in (first, second):
        assert mgmt_as(server, "admin", "GET", "/apis", password=ADMIN_PASSWORD).status_code == 429
        assert portal_attempt(server, "admin", ADMIN_PASSWORD).status_code == 429


# ----- sessions -----
def test_an_idle_session_expires_and_an_active_one_does_not(start_server):
    server = start_server(GATEHOUSE_PERMANENT_SESSION_LIFETIME="3")
    client = login(server, "admin", ADMIN_PASSWORD)
    for _ in range(3):  # 4.5 s of activity, more than the lifetime: each request extends it
        time.sleep(1.5)
        assert client.get(server.portal + "/apis", allow_redirects=False).status_code == 200
    stolen = dict(client.cookies)
    time.sleep(4.2)  # idle for longer than the lifetime
    assert client.get(server.portal + "/apis", allow_redirects=False).headers["Location"].startswith("/login")
    # The server refuses the old cookie too, not only the client that dropped it.
    replay = requests.get(server.portal + "/apis", cookies=stolen, allow_redirects=False)
    assert replay.headers["Location"].startswith("/login")


def test_logout_ends_the_session(server):
    client = login(server, "admin", ADMIN_PASSWORD)
    page = client.get(server.portal + "/apis").text
    assert 'id="whoami" href="/account">admin <small>(admin)</small>' in page and "Log out admin" in page
    copied = dict(client.cookies)
    assert client.get(server.portal + "/logout").status_code == 405  # a link or image cannot log you out
    out = post_form(client, server, "/logout")
    assert out.status_code == 302 and out.headers["Location"] == "/login"
    assert client.get(server.portal + "/apis", allow_redirects=False).headers["Location"].startswith("/login")
    # A copy of the cookie, taken before the logout, is refused too: the session ended on the server.
    replay = requests.get(server.portal + "/apis", cookies=copied, allow_redirects=False)
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/login")


def test_a_password_change_ends_the_other_sessions_and_says_what_is_wrong(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "pat", "viewer")
    here, elsewhere = login(server, "pat"), login(server, "pat")
    page = here.get(server.portal + "/account").text
    assert "You are <strong>pat</strong>, with the role <strong>viewer</strong>" in page

    new = "a much longer new secret"
    refusals = [
        ({"current": "", "new": new, "repeat": new}, "current", "Enter your current password."),
        ({"current": "wrong password", "new": new, "repeat": new}, "current", "That is not your current password."),
        ({"current": PASSWORD, "new": "short", "repeat": "short"}, "new", "at least 10 characters"),
        ({"current": PASSWORD, "new": PASSWORD, "repeat": PASSWORD}, "new", "is the current one"),
        ({"current": PASSWORD, "new": new, "repeat": new + "!"}, "repeat", "The two new passwords differ"),
    ]
    for data, field, message in refusals:
        refused = post_form(here, server, "/account/password", data)
        assert refused.status_code == 400, refused.text
        error = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', refused.text, re.S)
        assert error and message in error.group(1), (field, refused.text)
        assert new not in refused.text and PASSWORD not in refused.text  # no password echoed back
    assert login(server, "pat").get(server.portal + "/account").status_code == 200  # still the old password

    changed = post_form(here, server, "/account/password", {"current": PASSWORD, "new": new, "repeat": new})
    assert changed.status_code == 302 and changed.headers["Location"] == "/account"
    assert "Password changed. Your other portal sessions were logged out" in here.get(server.portal + "/account").text
    assert elsewhere.get(server.portal + "/apis", allow_redirects=False).headers["Location"].startswith("/login")
    assert portal_attempt(server, "pat", PASSWORD).status_code == 200  # the login form again, with its error
    assert login(server, "pat", new).get(server.portal + "/apis").status_code == 200
    assert mgmt_as(server, "pat", "GET", "/apis", password=new).status_code == 200
    assert mgmt_as(server, "pat", "GET", "/apis").status_code == 401


def test_an_admin_sets_a_new_password_and_the_users_sessions_end(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "quinn", "owner")
    quinn = login(server, "quinn")
    target = f"/users/{user_id(server, admin, 'quinn')}/password"
    short = post_form(admin, server, target, {"password": "short"})
    assert short.status_code == 400 and "The new password needs at least 10 characters." in short.text
    assert quinn.get(server.portal + "/apis", allow_redirects=False).status_code == 200  # nothing changed

    assert post_form(quinn, server, target, {"password": "by quinn themself"}).status_code == 403
    done = post_form(admin, server, target, {"password": "given by the admin"})
    assert done.status_code == 302
    assert (
        "New password set for quinn: their portal sessions were logged out" in admin.get(server.portal + "/users").text
    )
    assert quinn.get(server.portal + "/apis", allow_redirects=False).headers["Location"].startswith("/login")
    assert login(server, "quinn", "given by the admin").get(server.portal + "/apis").status_code == 200


# ----- users -----
def test_admin_creates_users_changes_roles_and_disables_them(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "bob", "viewer")
    page = admin.get(server.portal + "/users").text
    assert "bob" in page and PASSWORD not in page and "scrypt" not in page and "pbkdf2" not in page

    taken = post_form(admin, server, "/users", {"username": "bob", "role": "owner", "password": PASSWORD})
    assert taken.status_code == 400 and "There is already a user named bob" in taken.text
    short = post_form(admin, server, "/users", {"username": "carol", "role": "owner", "password": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.text

    bob = login(server, "bob")
    assert mgmt_as(server, "bob", "POST", "/apis/_import/definition", json=mock_api()).status_code == 403
    bob_id = user_id(server, admin, "bob")
    assert post_form(admin, server, f"/users/{bob_id}", {"role": "owner"}).status_code == 302
    created = mgmt_as(server, "bob", "POST", "/apis/_import/definition", json=mock_api())
    assert created.status_code == 201
    assert '<dd id="owner">bob</dd>' in bob.get(f"{server.portal}/apis/{created.json()['id']}").text

    assert post_form(admin, server, f"/users/{bob_id}", {"role": "owner", "disabled": "on"}).status_code == 302
    assert bob.get(server.portal + "/apis", allow_redirects=False).headers["Location"].startswith("/login")
    assert "Wrong user name or password" in portal_attempt(server, "bob", PASSWORD).text
    assert mgmt_as(server, "bob", "GET", "/apis").status_code == 401

    admin_id = user_id(server, admin, "admin")
    last = post_form(admin, server, f"/users/{admin_id}", {"role": "viewer"})
    assert last.status_code == 400 and "last active admin" in last.text


def test_admin_hands_an_api_to_another_owner(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "olga", "owner")
    add_user(server, admin, "pete", "owner")
    api_id = mgmt_as(server, "olga", "POST", "/apis/_import/definition", json=mock_api()).json()["id"]
    assert mgmt_as(server, "pete", "POST", f"/apis/{api_id}/deployments").status_code == 403
    assert post_form(admin, server, f"/apis/{api_id}/owner", {"owner": "pete"}).status_code == 302
    assert mgmt_as(server, "pete", "POST", f"/apis/{api_id}/deployments").status_code == 202
    assert mgmt_as(server, "olga", "POST", f"/apis/{api_id}/deployments").status_code == 403


def test_an_owner_made_a_viewer_reads_but_no_longer_changes_the_subscriptions_of_their_application(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "fay", "owner")
    api_id = server.import_api(dict(mock_api(path="/demoted"), plans=[plan("keys", "API_KEY")]))
    application = mgmt_as(server, "fay", "POST", "/applications", json={"name": "Fay's app"}).json()
    subscription = mgmt_as(
        server,
        "fay",
        "POST",
        f"/apis/{api_id}/subscriptions",
        json={"applicationId": application["id"], "planId": "keys"},
    ).json()
    at = f"/apis/{api_id}/subscriptions/{subscription['id']}"
    (key,) = mgmt_as(server, "fay", "GET", at + "/api-keys").json()["data"]

    assert post_form(admin, server, f"/users/{user_id(server, admin, 'fay')}", {"role": "viewer"}).status_code == 302
    assert mgmt_as(server, "fay", "GET", at).json()["status"] == "ACCEPTED"
    for change in (at + f"/api-keys/{key['id']}/_revoke", at + "/_close", at + "/api-keys/_renew"):
        refused = mgmt_as(server, "fay", "POST", change)
        assert refused.status_code == 403 and "ask an admin for the owner role" in refused.json()["message"], change
    assert mgmt_as(server, "fay", "GET", at).json()["status"] == "ACCEPTED"
    assert mgmt_as(server, "fay", "GET", at + "/api-keys").json()["data"][0]["revoked"] is False


def test_the_plans_and_applications_pages_offer_only_the_actions_the_user_may_take(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    for name, role in (("ula", "owner"), ("walt", "owner"), ("vera", "viewer")):
        add_user(server, admin, name, role)
    api_id = mgmt_as(
        server,
        "ula",
        "POST",
        "/apis/_import/definition",
        json=dict(mock_api(path="/offered"), plans=[plan("manual", "API_KEY", validation="MANUAL")]),
    ).json()["id"]
    application = mgmt_as(server, "walt", "POST", "/applications", json={"name": "Walt's app"}).json()
    assert (
        mgmt_as(
            server,
            "walt",
            "POST",
            f"/apis/{api_id}/subscriptions",
            json={"applicationId": application["id"], "planId": "manual"},
        ).json()["status"]
        == "PENDING"
    )

    for name, manages in (("ula", True), ("admin", True), ("walt", False), ("vera", False)):
        client = admin if name == "admin" else login(server, name)
        page = client.get(f"{server.portal}/apis/{api_id}/plans").text
        assert "Walt&#39;s app" in page
        for action in ("Add a plan", "Configure", ">Deprecate</button>", ">Accept</button>", ">Reject</button>"):
            assert (action in page) is manages, (name, action)
        creates = "Create an application" in client.get(server.portal + "/applications").text
        assert creates is (name != "vera"), name


# ----- personal access tokens -----
def test_a_personal_access_token_is_shown_once_works_with_its_role_and_stops_when_revoked(server):
    admin = login(server, "admin", ADMIN_PASSWORD)
    add_user(server, admin, "dora", "owner")
    add_user(server, admin, "vic", "viewer")
    dora = login(server, "dora")
    created = post_form(dora, server, "/tokens", {"name": "ci-deploy"})
    assert created.status_code == 201
    token = re.search(r"<code>(ghp_[A-Za-z0-9_-]+)</code>", created.text).group(1)
    assert token not in dora.get(server.portal + "/tokens").text  # shown once

    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.portal + MGMT + "/apis", headers=bearer).status_code == 200
    made = requests.post(server.portal + MGMT + "/apis/_import/definition", headers=bearer, json=mock_api())
    assert made.status_code == 201
    assert requests.get(server.portal + MGMT + "/apis", headers={"Authorization": "Bearer ghp_nope"}).status_code == 401

    vic = login(server, "vic")
    vic_token = re.search(r"<code>(ghp_[^<]+)</code>", post_form(vic, server, "/tokens", {"name": "read"}).text)[1]
    viewer_call = requests.post(
        server.portal + MGMT + "/apis/_import/definition",
        headers={"Authorization": f"Bearer {vic_token}"},
        json=mock_api(path="/v"),
    )
    assert viewer_call.status_code == 403 and "ask an admin for the owner role" in viewer_call.json()["message"]

    token_id = re.search(r"/tokens/(\d+)/revoke", dora.get(server.portal + "/tokens").text).group(1)
    assert post_form(vic, server, f"/tokens/{token_id}/revoke").status_code == 404  # not vic's to revoke
    assert post_form(dora, server, f"/tokens/{token_id}/revoke").status_code == 302
    assert requests.get(server.portal + MGMT + "/apis", headers=bearer).status_code == 401


def test_in_a_browser_an_admin_adds_an_owner_who_makes_a_token_and_no_policy_blocks_the_pages(server, browser):
    blocked = []
    page = logged_in_page(browser, server)
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    add_user_in_browser(page, "erin", "owner")
    page.get_by_role("button", name="Log out admin").click()

    page.fill("#username", "erin")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#whoami")).to_have_text("erin (owner)")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.get_by_role("link", name="Tokens").click()
    page.fill("#token-name", "laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token code").inner_text()
    assert requests.get(server.portal + MGMT + "/apis", headers={"Authorization": f"Bearer {token}"}).ok
    page.goto(server.portal + "/users")
    expect(page.get_by_text("Only an admin can do this; ask an admin")).to_be_visible()
    page.screenshot(path=str(server.workdir / "forbidden.png"))
    assert blocked == []
