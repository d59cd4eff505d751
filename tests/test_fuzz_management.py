"""Bad input: schemathesis fuzzes every management route from the app's own OpenAPI document, and
hypothesis every portal form, against a real server, with a fixed seed and a bounded budget. No
answer is a 5xx, a refused call stores nothing, no input comes back as markup, and every answer
carries the headers that stop a browser from running or framing what it gets."""

import re
import sqlite3

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from support.apis import mock_api
from support.gatehouse import ADMIN_PASSWORD
from support.plans import plan
from support.portal import add_user, login, post_form, user_id
from support.roles import ACTIONS, TABLE, app_routes

pytestmark = pytest.mark.slow  # hundreds of generated requests per route and form

SEED = 20261128
FUZZ = settings(
    deadline=None, database=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck)
)
# What a refused call must leave as it was: all but the failed-login counts, which count refusals.
STORED = (
    "users",
    "access_tokens",
    "apis",
    "listeners",
    "context_paths",
    "entrypoints",
    "endpoint_groups",
    "endpoints",
    "plans",
    "deployments",
    "applications",
    "subscriptions",
    "api_keys",
)
SCRIPT = "<script>alert(1)</script>"


def stored(server):
    with sqlite3.connect(server.workdir / "instance" / "gatehouse.db") as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in STORED}


def assert_safe_headers(response):
    # schemathesis gives each header as a list of values, requests as one string
    headers = CaseInsensitiveDict(
        {name: value[0] if isinstance(value, list) else value for name, value in response.headers.items()}
    )
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, headers
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"


@pytest.fixture(scope="module")
def fuzz_server(module_server):
    module_server.http.headers["Accept"] = "application/json"
    return module_server


# A Flask URL parameter: <name>, <converter:name> or <converter(arguments):name>.
URL_PARAMETER = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def document_paths(rule):
    """The OpenAPI paths of a Flask rule: <plan_id> and <int:key_id> become {planId} and {keyId},
    and an <any(...)> parameter gives one path per value (the document describes each action alone)."""
    paths, end = [""], 0
    for match in URL_PARAMETER.finditer(rule):
        converter, arguments, name = match.groups()
        values = (
            [value.strip() for value in arguments.split(",")]
            if converter == "any"
            else ["{" + re.sub(r"_(\w)", lambda m: m.group(1).upper(), name) + "}"]
        )
        paths = [path + rule[end : match.start()] + value for path in paths for value in values]
        end = match.end()
    return [path + rule[end:] for path in paths]


def test_the_openapi_document_describes_every_management_route(fuzz_server, tmp_path, monkeypatch):
    document = requests.get(fuzz_server.portal + "/management/v2/openapi.json").json()
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    routes = {
        (path, method)
        for endpoint, rule, methods in app_routes(tmp_path, monkeypatch)
        if endpoint.startswith("management.")
        for path in document_paths(rule.rule)
        for method in methods
    }
    assert described == routes


def test_fuzzed_management_calls_never_fail_on_our_side_nor_store_a_refused_call(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server.portal + "/management/v2/openapi.json")
    counts = {"calls": 0, "refused": 0, "accepted": 0, "targets": 0}

    def fresh():
        """An API with a published api-key plan (AUTO validation), an application subscribed to it,
        the subscription and its key: the ids the document's path parameters name. Each API gets a
        path of its own, as the one it replaces may still hold its path."""
        counts["targets"] += 1
        api_id = fuzz_server.import_api(
            dict(mock_api(path=f"/fuzz-target-{counts['targets']}"), plans=[plan("keys", "API_KEY")])
        )
        subscription = fuzz_server.subscribe(api_id, "keys")
        (key,) = fuzz_server.mgmt("GET", f"/apis/{api_id}/subscriptions/{subscription['id']}/api-keys").json()["data"]
        return {
            "apiId": api_id,
            "planId": "keys",
            "applicationId": subscription["application"]["id"],
            "subscriptionId": subscription["id"],
            "keyId": int(key["id"]),
        }

    real = fresh()

    def target():
        """Real ids for two calls in three, so that fuzzed bodies reach past the 404s (made again when a
        fuzzed call deleted the API, replaced its plans, or moved the plan or the subscription on:
        a closed one refuses every change before reading the body)."""
        found = fuzz_server.mgmt("GET", f"/apis/{real['apiId']}/plans/{real['planId']}")
        subscription = fuzz_server.mgmt("GET", f"/apis/{real['apiId']}/subscriptions/{real['subscriptionId']}")
        if (
            found.status_code != 200
            or found.json().get("status") != "PUBLISHED"
            or subscription.status_code != 200
            or subscription.json()["status"] != "ACCEPTED"
        ):
            real.update(fresh())
        return real

    strategy = schema.as_strategy() | schema.as_strategy(schemathesis.GenerationMode.NEGATIVE)

    @seed(SEED)
    @settings(FUZZ, max_examples=250)
    @given(case=strategy, real_ids=st.sampled_from(("none", "all", "all but the last")))
    def run(case, real_ids):
        if real_ids != "none" and (case.path_parameters or isinstance(case.body, dict)):
            ids = target()
            # "all but the last": the fuzzed last id (a plan's, a key's...) reaches the lookup under
            # its real API or subscription.
            names = re.findall(r"{(\w+)}", case.path)[: -1 if real_ids == "all but the last" else None]
            case.path_parameters.update({name: ids[name] for name in names})
            if isinstance(case.body, dict):
                # A new subscription's application and plan (a fuzzed string only, so as not to mend
                # a negative case): past "no such application", into subscribe's checks.
                case.body.update(
                    {name: ids[name] for name in ("applicationId", "planId") if isinstance(case.body.get(name), str)}
                )
        before = stored(fuzz_server)
        response = case.call_and_validate(
            session=fuzz_server.http,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )
        counts["calls"] += 1
        assert_safe_headers(response)
        if response.status_code >= 400:
            counts["refused"] += 1
            assert stored(fuzz_server) == before, f"{case.method} {case.formatted_path} stored part of a refused call"
        else:
            counts["accepted"] += 1

    run()
    assert counts["refused"] > 100 and counts["accepted"] > 20, counts  # both kinds were really exercised
    assert "Traceback" not in fuzz_server.log


# ----- portal forms -----
# Field names of every portal form (a form ignores those it does not know).
FIELDS = (
    "name",
    "path",
    "version",
    "description",
    "type",
    "endpoint_type",
    "entrypoint.http-get",
    "qos.http-get",
    "cfg.messageInterval",
    "cfg.messageContent",
    "cfg.messageCount",
    "group_name",
    "group_type",
    "load_balancer",
    "weight",
    "inheritConfiguration",
    "secondary",
    "username",
    "role",
    "password",
    "owner",
    "disabled",
    "next",
    "status",
    "validation",
    "signature",
    "publicKeyResolver",
    "secret",
    "publicKey",
    "jwksUrl",
    "client_id",
    "plan",
    "reason",
)
TEXT = st.one_of(
    st.just(SCRIPT),
    st.just('"><img src=x onerror=alert(1)>'),
    st.text(max_size=40),
    st.sampled_from(["", "/", "message", "proxy", "mock", "owner", "admin", "on", "-1", "9" * 30]),
)


def test_fuzzed_portal_forms_are_refused_cleanly_and_never_echo_markup(fuzz_server, tmp_path, monkeypatch):
    admin = login(fuzz_server, "admin", ADMIN_PASSWORD)
    api_id = fuzz_server.import_api(dict(mock_api(path="/form-target"), plans=[plan("keys", "API_KEY")]))
    subscription = fuzz_server.subscribe(api_id, "keys")
    (key,) = fuzz_server.mgmt("GET", f"/apis/{api_id}/subscriptions/{subscription['id']}/api-keys").json()["data"]
    endpoints = admin.get(f"{fuzz_server.portal}/apis/{api_id}/endpoints").text
    group_id = int(endpoints.split('id="group-')[1].split('"')[0])
    endpoint_id = int(endpoints.split('id="endpoint-')[1].split('"')[0])
    add_user(fuzz_server, admin, "fuzzed", "viewer")  # whose role the fuzzer may change, not the admin's
    values = {
        "api_id": api_id,
        "group_id": group_id,
        "endpoint_id": endpoint_id,
        "token_id": 1,
        "revision": 1,
        "user_id": user_id(fuzz_server, admin, "fuzzed"),
        "plan_id": "keys",
        "application_id": subscription["application"]["id"],
        "subscription_id": subscription["id"],
        "key_id": int(key["id"]),
        # the Policies tab's: the API has no flow, so those forms are refused as well
        "scope": "api",
        "flow": 0,
        "phase": "request",
        "step": 0,
    }
    forms = sorted(
        {
            rule.build({k: {**values, "action": ACTIONS.get(endpoint)}[k] for k in rule.arguments})[1]
            for endpoint, rule, methods in app_routes(tmp_path, monkeypatch)
            if "POST" in methods
            and TABLE[(endpoint, "POST")][-1] != 405
            and endpoint not in ("auth.logout", "auth.login")
        }
    )

    @seed(SEED)
    @settings(FUZZ, max_examples=150)
    @given(path=st.sampled_from(forms), data=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=8))
    def run(path, data):
        before = stored(fuzz_server)
        response = post_form(admin, fuzz_server, path, data)
        assert response.status_code < 500, (path, data, response.text[:500])
        assert_safe_headers(response)
        assert SCRIPT not in response.text and "<img src=x" not in response.text, (path, data)
        if response.status_code >= 400:
            assert stored(fuzz_server) == before, (path, data)

    run()
    assert "Traceback" not in fuzz_server.log


def test_every_portal_page_carries_the_security_headers(fuzz_server):
    admin = login(fuzz_server, "admin", ADMIN_PASSWORD)
    for path in (
        "/login",
        "/apis",
        "/apis/new",
        "/tokens",
        "/users",
        "/no-such-page",
        "/static/gatehouse.css",
        "/management/v2/openapi.json",
    ):
        assert_safe_headers(admin.get(fuzz_server.portal + path))
    # The pages load no inline script or style, which the policy would block.
    page = admin.get(fuzz_server.portal + "/apis").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page and " on" + "click=" not in page
