"""CORS of an API's HTTP listener, edited on the portal's Entrypoints tab and checked at save and
import: a saved block reaches the gateway once redeployed; a bad origin expression, method or max
age is refused beside its field (or by field in the management API's answer) with nothing stored;
what a page shows of an origin is escaped; a viewer cannot change it."""

import html
import re
import uuid

import requests

from support.apis import mock_api
from support.browser import assert_accessible, by_id, expect, logged_in_page
from support.browser import field_error as error_beside
from support.portal import add_user, csrf_token, field_error, login, portal_login

APP = "https://app.example.com"
BAD_REGEX = "https://("
SCRIPT = "<script>alert(1)</script>"


def cors_api(cors=None):
    """A message API whose clients publish with http-post, with that cors block (or none)."""
    d = mock_api(path="/cors-" + uuid.uuid4().hex[:8], name="CORS " + uuid.uuid4().hex[:6])
    d["listeners"][0]["entrypoints"] = [{"type": "http-post"}]
    if cors is not None:
        d["listeners"][0]["cors"] = cors
    return d


def exported(server, api_id):
    response = server.mgmt("GET", f"/apis/{api_id}/_export/definition")
    assert response.status_code == 200, response.text
    body = response.json()
    return body.get("api", body)


def cors_form(token, **fields):
    """The Entrypoints form with http-post kept and the CORS fieldset shown and filled."""
    form = {
        "csrf_token": token,
        "entrypoint.http-post": "on",
        "qos.http-post": "auto",
        "cors_fieldset": "1",
        "cors_fields": "1",
        "cors.enabled": "on",
        "cors.allowOrigin": f"{APP}\r\nhttps://.*\\.trusted\\.example",
        "cors.allowMethods": "POST, OPTIONS",
        "cors.allowHeaders": "Content-Type\r\nX-Trace",
        "cors.exposeHeaders": "X-Request-Id",
        "cors.maxAge": "600",
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def preflight(server, path, origin):
    return requests.options(
        server.gateway + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-trace",
        },
        timeout=10,
    )


def test_cors_edited_on_the_entrypoints_tab_is_applied_once_redeployed(shared_server):
    server = shared_server
    d = cors_api()
    path = d["listeners"][0]["paths"][0]["path"]
    api_id = server.deploy_api(d)
    browser = portal_login(server)
    url = server.portal + f"/apis/{api_id}/entrypoints"
    page = browser.get(url)
    assert page.status_code == 200 and "Cross-origin requests (CORS)" in page.text
    assert 'name="cors.allowOrigin"' not in page.text  # off: its settings hidden
    token = csrf_token(page.text)

    # Ticking Enabled shows the settings, with Gravitee's default max age.
    shown = browser.post(url + "/_cors", data={"csrf_token": token, "cors_fieldset": "1", "cors.enabled": "on"})
    assert shown.status_code == 200 and 'name="cors.allowOrigin"' in shown.text
    assert re.search(r'id="cors.maxAge" min="-1" value="86400"', shown.text)
    hidden = browser.post(url + "/_cors", data={"csrf_token": token, "cors_fieldset": "1"})
    assert hidden.status_code == 200 and 'name="cors.allowOrigin"' not in hidden.text

    saved = browser.post(url, data=cors_form(token))
    assert "Entrypoints saved: http-post; CORS enabled. Redeploy to apply." in saved.text
    assert exported(server, api_id)["listeners"][0]["cors"] == {
        "enabled": True,
        "allowOrigin": [APP, r"https://.*\.trusted\.example"],
        "allowMethods": ["POST", "OPTIONS"],
        "allowHeaders": ["Content-Type", "X-Trace"],
        "exposeHeaders": ["X-Request-Id"],
        "allowCredentials": False,
        "maxAge": 600,
    }
    again = browser.get(url).text
    assert f"{APP}\nhttps://.*\\.trusted\\.example</textarea>" in again and 'value="POST, OPTIONS"' in again

    # Not applied until redeployed: the gateway still answers without CORS.
    assert "Access-Control-Allow-Origin" not in preflight(server, path, APP).headers
    server.wait_serving(api_id, server.deploy(api_id))
    allowed = preflight(server, path, "https://eu.trusted.example")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://eu.trusted.example"
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert allowed.headers["Access-Control-Max-Age"] == "600"
    refused = preflight(server, path, "https://evil.example")
    assert refused.status_code == 400 and "Access-Control-Allow-Origin" not in refused.headers
    posted = requests.post(server.gateway + path, data=b"x", headers={"Origin": "https://evil.example"}, timeout=10)
    assert posted.status_code == 403

    # Switched off, the settings are kept for next time.
    off = browser.post(url, data=cors_form(token, **{"cors.enabled": None}))
    assert "Entrypoints saved: http-post. Redeploy to apply." in off.text
    cors = exported(server, api_id)["listeners"][0]["cors"]
    assert cors["enabled"] is False and cors["allowOrigin"] == [APP, r"https://.*\.trusted\.example"]


def test_a_bad_origin_method_or_max_age_is_refused_beside_its_field_and_nothing_is_saved(shared_server):
    server = shared_server
    # runPolicies is Gravitee's, not on the form: kept as it is.
    api_id = server.import_api(cors_api({"enabled": True, "allowOrigin": [APP], "runPolicies": True}))
    before = exported(server, api_id)
    browser = portal_login(server)
    url = server.portal + f"/apis/{api_id}/entrypoints"
    token = csrf_token(browser.get(url).text)

    bad = browser.post(
        url,
        data=cors_form(
            token,
            **{"cors.allowOrigin": f"{APP}\r\n{BAD_REGEX}", "cors.allowMethods": "POST, GE T", "cors.maxAge": "-5"},
        ),
    )
    assert bad.status_code == 400 and 'id="error-summary"' in bad.text
    assert field_error(bad, "cors.allowOrigin").startswith(
        "'https://(' is neither an origin nor a regular expression (missing ), unterminated subpattern"
    )
    assert "such as https://.*\\.example\\.com" in field_error(bad, "cors.allowOrigin")
    assert field_error(bad, "cors.allowMethods") == (
        "'GE T' is not an HTTP method name: write one such as GET, without spaces."
    )
    assert field_error(bad, "cors.maxAge").startswith("maxAge must be a whole number of seconds, at least 0")
    assert f"{APP}\n{BAD_REGEX}</textarea>" in bad.text  # shown as typed, to be corrected
    not_a_number = browser.post(url, data=cors_form(token, **{"cors.maxAge": "soon"}))
    assert not_a_number.status_code == 400 and field_error(not_a_number, "cors.maxAge").startswith("maxAge must be")
    assert exported(server, api_id) == before

    kept = browser.post(url, data=cors_form(token, **{"cors.maxAge": "-1"}))
    assert kept.status_code == 200 and "CORS enabled. Redeploy to apply." in kept.text
    cors = exported(server, api_id)["listeners"][0]["cors"]
    assert cors["maxAge"] == -1 and cors["runPolicies"] is True


def test_an_import_with_a_bad_cors_block_is_refused_naming_each_field(shared_server):
    server = shared_server
    bad = cors_api(
        {
            "enabled": "yes",
            "allowOrigin": ["*", BAD_REGEX],
            "allowMethods": ["GET", "GE T"],
            "allowHeaders": "Content-Type",
            "exposeHeaders": ["X-Trace\r\nSet-Cookie: a=b"],
            "runPolicies": 1,
            "maxAge": -2,
        }
    )
    response = server.mgmt("POST", "/apis/_import/definition", json=bad)
    assert response.status_code == 400, response.text
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert fields.keys() == {
        "listeners[0].cors.enabled",
        "listeners[0].cors.runPolicies",
        "listeners[0].cors.allowOrigin[1]",
        "listeners[0].cors.allowMethods[1]",
        "listeners[0].cors.allowHeaders",
        "listeners[0].cors.exposeHeaders[0]",
        "listeners[0].cors.maxAge",
    }
    assert fields["listeners[0].cors.enabled"] == "enabled must be true or false."
    assert (
        fields["listeners[0].cors.allowHeaders"]
        == 'allowHeaders must be a list of text values, such as ["Content-Type"].'
    )
    assert fields["listeners[0].cors.exposeHeaders[0]"].endswith(
        "is not a header name: write one such as X-Request-Id, without spaces."
    )
    assert bad["name"] not in [api["name"] for api in server.mgmt("GET", "/apis").json()["data"]]
    not_an_object = cors_api()
    not_an_object["listeners"][0]["cors"] = ["*"]
    refused = server.mgmt("POST", "/apis/_import/definition", json=not_an_object)
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "listeners[0].cors"

    # Credentials with any origin is Gravitee's and kept (the origin itself is named); a
    # replace with a bad block leaves the stored definition as it was.
    good = cors_api(
        {"enabled": True, "allowOrigin": ["*"], "allowCredentials": True, "runPolicies": False, "maxAge": -1}
    )
    api_id = server.import_api(good)
    before = exported(server, api_id)
    replaced = server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=dict(good, listeners=bad["listeners"]))
    assert replaced.status_code == 400 and "listeners[0].cors.allowOrigin[1]" in replaced.text
    assert exported(server, api_id) == before


def test_a_script_in_an_origin_is_shown_escaped_and_a_viewer_cannot_change_cors(shared_server):
    server = shared_server
    # A regular expression that compiles is Gravitee's to accept; the page must show it as text.
    api_id = server.import_api(cors_api({"enabled": True, "allowOrigin": [APP]}))
    browser = portal_login(server)
    url = server.portal + f"/apis/{api_id}/entrypoints"
    token = csrf_token(browser.get(url).text)
    saved = browser.post(url, data=cors_form(token, **{"cors.allowOrigin": SCRIPT}))
    assert "CORS enabled. Redeploy to apply." in saved.text
    page = browser.get(url).text
    assert SCRIPT not in page and html.escape(SCRIPT) + "</textarea>" in page
    refused = browser.post(url, data=cors_form(token, **{"cors.allowOrigin": SCRIPT + "(", "cors.maxAge": SCRIPT}))
    assert refused.status_code == 400 and SCRIPT not in refused.text
    assert field_error(refused, "cors.allowOrigin").startswith(f"'{SCRIPT}(' is neither an origin")
    before = exported(server, api_id)

    name = "cors-viewer-" + uuid.uuid4().hex[:6]
    add_user(server, browser, name, "viewer")
    viewer = login(server, name)
    seen = viewer.get(url)
    assert seen.status_code == 200 and re.search(r'<fieldset id="cors" disabled>', seen.text)
    assert html.escape(SCRIPT) in seen.text and SCRIPT not in seen.text
    token = csrf_token(seen.text)
    for path in ("", "/_cors"):
        denied = viewer.post(url + path, data=cors_form(token, **{"cors.allowOrigin": "*"}))
        assert denied.status_code == 403
    assert exported(server, api_id) == before


def test_in_a_browser_ticking_enabled_reveals_the_cors_settings(shared_server, browser):
    server = shared_server
    api_id = server.import_api(cors_api())
    page = logged_in_page(browser, server)
    page.goto(server.portal + f"/apis/{api_id}/entrypoints")
    origins = by_id(page, "cors.allowOrigin")
    expect(origins).to_have_count(0)
    by_id(page, "cors.enabled").check()
    expect(origins).to_be_visible()
    expect(by_id(page, "cors.maxAge")).to_have_value("86400")
    assert_accessible(page, "the Entrypoints tab with CORS enabled")
    by_id(page, "cors.enabled").uncheck()
    expect(origins).to_have_count(0)

    by_id(page, "cors.enabled").check()
    origins.fill(BAD_REGEX)
    page.get_by_role("button", name="Save").click()
    expect(error_beside(page, "cors.allowOrigin")).to_contain_text("is neither an origin nor a regular expression")
    expect(page.locator("#error-summary")).to_contain_text("Allowed origins:")
    origins.fill(APP)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Entrypoints saved: http-post; CORS enabled. Redeploy to apply.")).to_be_visible()
    assert exported(server, api_id)["listeners"][0]["cors"]["allowOrigin"] == [APP]
