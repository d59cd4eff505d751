"""The Policies tab (Policy Studio) on a real server, as a browser without JavaScript uses it: flows
and steps added, edited, reordered, disabled and deleted through its forms, each checked in the
stored definition (management REST API); refused saves leave the definition as it was and say why
beside the field; viewers may look, not change."""

import re
import uuid

from support.apis import mock_api, proxy_api
from support.plans import plan
from support.portal import add_user, csrf_token, login, portal_login

BAD = "{#request.headers['x'] == }"


def studio(server, definition=None):
    """A message API and an admin's session on its Policies tab: (session, api id, token, base URL)."""
    path = "/studio-" + uuid.uuid4().hex[:8]
    api_id = server.import_api(definition or mock_api(path=path, name="Studio"))
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/policies")
    assert page.status_code == 200 and "All plans" in page.text
    return browser, api_id, csrf_token(page.text), f"/apis/{api_id}/policies"


def post(server, browser, token, path, data=None):
    return browser.post(server.portal + path, data={"csrf_token": token, **(data or {})}, allow_redirects=False)


def exported(server, api_id):
    return server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()["api"]


def error_beside(html, name):
    """The error paragraph of an input, which the input points at (aria-describedby)."""
    assert re.search(rf'id="{re.escape(name)}"[^>]*aria-invalid="true"', html), f"{name} is not marked invalid"
    return re.search(rf'<p class="error" id="{re.escape(name)}-error">([^<]*)</p>', html).group(1)


def channel_flow(name="Orders"):
    return {
        "flow.name": name,
        "flow.enabled": "on",
        "channel.on": "on",
        "channel.channel": "/orders",
        "channel.channelOperator": "EQUALS",
        "channel.operations": ["SUBSCRIBE"],
        "channel.entrypoints": ["sse", "not-an-entrypoint-of-the-api"],
    }


def add_flow(server, browser, token, base, data):
    assert post(server, browser, token, base + "/api/flows").status_code == 302
    index = len(exported(server, browser_api(base))["flows"]) - 1
    saved = post(server, browser, token, f"{base}/api/flows/{index}/edit", data)
    assert saved.status_code == 302, saved.text
    return index


def browser_api(base):
    return base.split("/")[2]


def add_header_step(server, browser, token, base, flow, phase="subscribe", value="yes", **extra):
    return post(
        server,
        browser,
        token,
        f"{base}/api/flows/{flow}/{phase}/new?policy=transform-headers",
        {"step.name": "Studio header", "step.enabled": "on", "cfg.addHeaders": f"X-Studio: {value}", **extra},
    )


def test_a_channel_flow_and_a_transform_headers_step_are_stored_as_built(shared_server):
    server = shared_server
    browser, api_id, token, base = studio(server)
    flow = add_flow(server, browser, token, base, channel_flow())
    saved = add_header_step(
        server, browser, token, base, flow, **{"step.condition": "{#request.headers['x-want'] != null}"}
    )
    assert saved.status_code == 302, saved.text

    d = exported(server, api_id)
    assert d["flows"] == [
        {
            "name": "Orders",
            "enabled": True,
            "selectors": [
                {
                    "type": "CHANNEL",  # the export's spelling
                    "channel": "/orders",
                    "channelOperator": "EQUALS",
                    "operations": ["SUBSCRIBE"],
                    "entrypoints": ["sse"],  # only the API's own entrypoints are offered, or kept
                }
            ],
            "request": [],
            "response": [],
            "publish": [],
            "subscribe": [
                {
                    "name": "Studio header",
                    "policy": "transform-headers",
                    "enabled": True,
                    "configuration": {"addHeaders": [{"name": "X-Studio", "value": "yes"}]},
                    "condition": "{#request.headers['x-want'] != null}",
                }
            ],
        }
    ]
    page = browser.get(server.portal + base).text
    assert "channel EQUALS /orders · SUBSCRIBE · sse" in page and "Studio header" in page
    assert 'id="deploy-banner"' in page  # not deployed yet: the tab says so, with its Deploy button

    # Flow execution is on the same page.
    assert (
        post(server, browser, token, base + "/execution", {"mode": "BEST_MATCH", "matchRequired": "on"}).status_code
        == 302
    )
    assert exported(server, api_id)["flowExecution"] == {"mode": "BEST_MATCH", "matchRequired": True}
    refused = post(server, browser, token, base + "/execution", {"mode": "SOMETIMES"})
    assert refused.status_code == 400 and "choose DEFAULT or BEST_MATCH" in error_beside(refused.text, "mode")


def test_bad_expressions_are_refused_beside_their_field_and_nothing_is_saved(shared_server):
    server = shared_server
    browser, api_id, token, base = studio(server)
    flow = add_flow(server, browser, token, base, channel_flow())
    assert add_header_step(server, browser, token, base, flow).status_code == 302
    before = exported(server, api_id)

    in_value = add_header_step(server, browser, token, base, flow, value=BAD)
    assert in_value.status_code == 400
    assert "Expression error at position" in error_beside(in_value.text, "cfg.addHeaders")
    assert 'id="error-summary"' in in_value.text and "Traceback" not in in_value.text
    assert BAD.replace("'", "&#39;") in in_value.text  # what was typed is shown again, to be fixed

    in_condition = post(
        server, browser, token, f"{base}/api/flows/{flow}/subscribe/0/edit",
        {"step.name": "Studio header", "step.enabled": "on", "cfg.addHeaders": "X-Studio: yes", "step.condition": BAD},
    )  # fmt: skip
    assert in_condition.status_code == 400
    assert "Expression error at position" in error_beside(in_condition.text, "step.condition")

    in_message_condition = add_header_step(server, browser, token, base, flow, **{"step.messageCondition": BAD})
    assert "Expression error" in error_beside(in_message_condition.text, "step.messageCondition")

    in_selector = post(
        server, browser, token, f"{base}/api/flows/{flow}/edit", dict(channel_flow(), **{"flow.condition": BAD})
    )
    assert in_selector.status_code == 400
    assert "Expression error at position" in error_beside(in_selector.text, "flow.condition")

    no_name = post(server, browser, token, f"{base}/api/flows/{flow}/edit", dict(channel_flow(), **{"flow.name": ""}))
    assert no_name.status_code == 400 and "Name is required" in error_beside(no_name.text, "flow.name")
    assert exported(server, api_id) == before


def test_reorder_disable_and_delete_flows_and_steps(shared_server):
    server = shared_server
    browser, api_id, token, base = studio(server)
    first = add_flow(server, browser, token, base, channel_flow("First"))
    second = add_flow(server, browser, token, base, channel_flow("Second"))
    for value in ("one", "two"):
        assert add_header_step(server, browser, token, base, first, value=value).status_code == 302

    def names():
        d = exported(server, api_id)
        return [f["name"] for f in d["flows"]], [
            s["configuration"]["addHeaders"][0]["value"] for s in d["flows"][0]["subscribe"]
        ]

    assert names() == (["First", "Second"], ["one", "two"])
    assert post(server, browser, token, f"{base}/api/flows/{first}/subscribe/1/up").status_code == 302
    assert names() == (["First", "Second"], ["two", "one"])
    assert post(server, browser, token, f"{base}/api/flows/{first}/subscribe/0/toggle").status_code == 302
    assert exported(server, api_id)["flows"][0]["subscribe"][0]["enabled"] is False
    assert post(server, browser, token, f"{base}/api/flows/{first}/subscribe/0/delete").status_code == 302
    assert names() == (["First", "Second"], ["one"])

    assert post(server, browser, token, f"{base}/api/flows/{second}/up").status_code == 302
    assert names()[0] == ["Second", "First"]
    assert post(server, browser, token, f"{base}/api/flows/1/toggle").status_code == 302
    assert exported(server, api_id)["flows"][1]["enabled"] is False
    page = browser.get(server.portal + base).text
    assert re.search(r"First <span class=\"badge\">disabled</span>", page)
    assert post(server, browser, token, f"{base}/api/flows/0/delete").status_code == 302
    assert [f["name"] for f in exported(server, api_id)["flows"]] == ["First"]
    assert post(server, browser, token, f"{base}/api/flows/5/delete").status_code == 404


def test_a_plan_has_flows_of_its_own_and_htmx_gets_the_studio_back(shared_server):
    server = shared_server
    d = mock_api(path="/studio-plan-" + uuid.uuid4().hex[:6], name="Studio plans")
    d["plans"] = [plan("keys", "API_KEY")]
    browser, api_id, token, base = studio(server, d)
    page = browser.get(server.portal + base).text
    assert "Plan " in page and f"{base}/keys/flows" in page
    hx = {"HX-Request": "true"}
    added = browser.post(server.portal + base + "/keys/flows", data={"csrf_token": token}, headers=hx)
    assert added.status_code == 200 and added.text.lstrip().startswith('<div id="studio"')
    assert 'id="flow-form"' in added.text  # the new flow's form opens
    assert 'hx-swap-oob="true"' in added.text and 'id="deploy-banner"' in added.text
    refused = browser.post(
        server.portal + base + "/keys/flows/0/edit",
        data={"csrf_token": token, **channel_flow(""), "flow.name": ""},
        headers=hx,
    )
    assert refused.status_code == 400 and 'id="studio"' in refused.text and "Name is required" in refused.text
    stored = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()["plans"]
    assert [p["flows"][0]["name"] for p in stored] == ["Flow 1"]
    assert "flows" not in exported(server, api_id) or not exported(server, api_id)["flows"]


def test_a_viewer_sees_the_tab_and_gets_403_on_each_action(shared_server):
    server = shared_server
    browser, api_id, token, base = studio(server)
    flow = add_flow(server, browser, token, base, channel_flow())
    assert add_header_step(server, browser, token, base, flow).status_code == 302
    name = "studio-viewer-" + uuid.uuid4().hex[:6]
    add_user(server, browser, name, "viewer")
    viewer = login(server, name)
    page = viewer.get(server.portal + base)
    assert page.status_code == 200 and "Studio header" in page.text and "Read only" in page.text
    assert "/toggle" not in page.text and "Add a flow" not in page.text
    before = exported(server, api_id)
    viewer_token = csrf_token(page.text)
    actions = [
        ("POST", "/execution"),
        ("POST", "/api/flows"),
        ("GET", "/api/flows/0/edit"),
        ("POST", "/api/flows/0/edit"),
        ("POST", "/api/flows/0/toggle"),
        ("POST", "/api/flows/0/up"),
        ("POST", "/api/flows/0/down"),
        ("POST", "/api/flows/0/delete"),
        ("GET", "/api/flows/0/subscribe/new"),
        ("POST", "/api/flows/0/subscribe/new?policy=transform-headers"),
        ("GET", "/api/flows/0/subscribe/0/edit"),
        ("POST", "/api/flows/0/subscribe/0/edit"),
        ("POST", "/api/flows/0/subscribe/0/toggle"),
        ("POST", "/api/flows/0/subscribe/0/up"),
        ("POST", "/api/flows/0/subscribe/0/down"),
        ("POST", "/api/flows/0/subscribe/0/delete"),
        ("POST", "/_fields?policy=transform-headers"),
    ]
    for method, path in actions:
        answer = viewer.request(
            method,
            server.portal + base + path,
            data={"csrf_token": viewer_token, **channel_flow()},
            allow_redirects=False,
        )
        assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
        assert "ask an admin" in answer.text
    assert exported(server, api_id) == before


def test_a_proxy_api_has_path_selectors_and_only_the_request_and_response_phases(shared_server):
    server = shared_server
    browser, api_id, token, base = studio(server, proxy_api(["http://127.0.0.1:9"], path="/studio-proxy"))
    assert post(server, browser, token, base + "/api/flows").status_code == 302
    page = browser.get(server.portal + base + "/api/flows/0/edit").text
    assert 'name="http.methods"' in page and 'name="channel.on"' not in page
    page = browser.get(server.portal + base).text
    assert 'id="phase-api-0-publish"' not in page and 'id="phase-api-0-response"' in page
    refused = post(
        server,
        browser,
        token,
        base + "/api/flows/0/edit",
        {"flow.name": "Reads", "http.on": "on", "http.path": "items", "http.pathOperator": "EQUALS"},
    )
    assert refused.status_code == 400 and "it starts with &#39;/&#39;" in error_beside(refused.text, "http.path")
    form = {"flow.name": "Reads", "flow.enabled": "on", "http.on": "on", "http.path": "/items"}
    saved = post(server, browser, token, base + "/api/flows/0/edit", dict(form, **{"http.pathOperator": "EQUALS"}))
    assert saved.status_code == 302, saved.text
    selectors = exported(server, api_id)["flows"][0]["selectors"]
    assert [(s["path"], s["pathOperator"], s["methods"]) for s in selectors] == [("/items", "EQUALS", [])]
    with_methods = {"http.methods": ["GET", "HEAD", "BREW"], "http.pathOperator": "STARTS_WITH"}
    assert post(server, browser, token, base + "/api/flows/0/edit", dict(form, **with_methods)).status_code == 302
    assert exported(server, api_id)["flows"][0]["selectors"][0]["methods"] == ["GET", "HEAD"]
    assert post(server, browser, token, base + "/api/flows/0/publish/new?policy=latency").status_code == 404
    assert browser.get(server.portal + base + "/api/flows/0/request/new?policy=message-filtering").status_code == 400


def test_an_imported_flow_is_shown_and_its_step_edited_keeping_what_the_form_does_not_show(shared_server):
    server = shared_server
    d = mock_api(path="/studio-import-" + uuid.uuid4().hex[:6], name="Studio import")
    step = {"name": "Old", "policy": "transform-headers", "configuration": {"removeHeaders": ["a"], "custom": 1}}
    selector = {"type": "CHANNEL", "channel": "/in", "channelOperator": "EQUALS", "operations": ["SUBSCRIBE"]}
    d["flows"] = [{"name": "Imported", "selectors": [selector], "subscribe": [step]}]
    browser, api_id, token, base = studio(server, d)
    page = browser.get(server.portal + base).text
    assert "channel EQUALS /in · SUBSCRIBE · any entrypoint" in page and "Old" in page
    form = browser.get(server.portal + base + "/api/flows/0/subscribe/0/edit").text
    assert re.search(r'<textarea name="cfg.removeHeaders"[^>]*>a</textarea>', form)
    assert 'id="channel.on"' not in form  # the step's form, not the flow's
    saved = post(
        server,
        browser,
        token,
        base + "/api/flows/0/subscribe/0/edit",
        {"step.name": "New", "step.enabled": "on", "cfg.removeHeaders": "b"},
    )
    assert saved.status_code == 302, saved.text
    stored = exported(server, api_id)["flows"][0]["subscribe"][0]
    assert stored["name"] == "New" and stored["configuration"] == {"removeHeaders": ["b"], "custom": 1}


def test_a_credential_header_of_a_step_is_never_shown_and_kept_when_the_form_is_saved(shared_server):
    server = shared_server
    d = mock_api(path="/studio-secret-" + uuid.uuid4().hex[:6], name="Studio secret")
    secret = "Bearer s3cr3t-" + uuid.uuid4().hex
    step = {
        "name": "Auth",
        "policy": "transform-headers",
        "configuration": {
            "addHeaders": [{"name": "Authorization", "value": secret}, {"name": "X-Plain", "value": "p"}]
        },
    }
    d["flows"] = [{"name": "Out", "selectors": [], "publish": [step]}]
    browser, api_id, token, base = studio(server, d)
    form = browser.get(server.portal + base + "/api/flows/0/publish/0/edit").text
    assert secret not in form and secret not in browser.get(server.portal + base).text
    shown = re.search(r'<textarea name="cfg.addHeaders"[^>]*>([^<]*)</textarea>', form).group(1)
    saved = post(
        server,
        browser,
        token,
        base + "/api/flows/0/publish/0/edit",
        {"step.name": "Auth", "step.enabled": "on", "cfg.addHeaders": shown.replace("&#34;", '"')},
    )
    assert saved.status_code == 302, saved.text
    stored = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    headers = stored["api"]["flows"][0]["publish"][0]["configuration"]["addHeaders"]
    assert headers == [{"name": "Authorization", "value": secret}, {"name": "X-Plain", "value": "p"}]
    assert secret not in server.mgmt("GET", f"/apis/{api_id}/_export/definition").text
