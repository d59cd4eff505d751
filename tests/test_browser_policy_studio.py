"""The Policy Studio in a real browser: a flow built on a Mock message API (channel selector, a
transform-headers step on subscribe with a condition), deployed from the page, then seen by SSE
clients through the gateway; a bad expression is refused beside its field as typed and on save."""

import uuid

import requests

from support.apis import mock_api
from support.browser import assert_accessible, by_id, expect, field_error, htmx_idle, logged_in_page
from support.streams import read_sse

BAD = "{#request.headers['x'] == }"
CONDITION = "{#request.headers['x-want'] != null}"


def studio_comments(server, path, headers):
    """The comment lines of the first few SSE events a client with these headers receives."""
    with requests.get(
        server.gateway + path, headers={"Accept": "text/event-stream", **headers}, stream=True, timeout=10
    ) as stream:
        assert stream.status_code == 200, stream.text
        events = read_sse(stream, 4)
    assert len([e for e in events if e.get("event") == "message" or "data" in e]) >= 2, events
    return [comment for event in events for comment in event.get("comments", [])]


def test_build_a_flow_deploy_it_and_see_its_header_in_the_stream(shared_server, browser):
    server = shared_server
    path = "/studio-sse-" + uuid.uuid4().hex[:6]
    sse = [{"type": "sse", "configuration": {"headersAsComment": True}}]
    api_id = server.deploy_api(mock_api(path=path, name="Studio stream", interval=50, entrypoints=sse))
    assert "X-Studio: yes" not in studio_comments(server, path, {"X-Want": "1"})

    page = logged_in_page(browser, server)
    page.goto(server.portal + f"/apis/{api_id}/policies")
    expect(page.get_by_role("link", name="Policies")).to_have_attribute("aria-current", "page")

    # A flow: added, then named and aimed at the sse entrypoint's subscriptions.
    page.get_by_role("button", name="Add a flow to All plans").click()
    form = page.locator("#flow-form")
    expect(form).to_be_visible()
    assert_accessible(page, "the Policies tab with a flow's form open")
    by_id(page, "flow.name").fill("Studio flow")
    expect(by_id(page, "channel.on")).to_be_checked()
    by_id(page, "channel.operations.PUBLISH").uncheck()
    by_id(page, "channel.entrypoints.sse").check()
    form.get_by_role("button", name="Save flow").click()
    expect(page.locator("#studio-message")).to_contain_text("Flow Studio flow saved")
    expect(page.locator("#flow-api-0")).to_contain_text("channel STARTS_WITH / · SUBSCRIBE · sse")

    # A transform-headers step on subscribe; a bad condition is refused as typed, then on save.
    page.select_option('[id="policy-api-0-subscribe"]', "transform-headers")
    page.get_by_role("button", name="Add a step to the subscribe phase of Studio flow").click()
    step = page.locator("#step-form")
    expect(step).to_be_visible()
    by_id(page, "step.name").fill("Studio header")
    by_id(page, "cfg.addHeaders").fill("X-Studio: yes")
    condition = by_id(page, "step.condition")
    condition.fill(BAD)
    condition.press("End")  # a key typed: the live check runs on keyup
    live = step.locator(".field", has=condition).locator(".expression-check")
    expect(live).to_contain_text("Expression error at position")
    step.get_by_role("button", name="Add step").click()
    htmx_idle(page)
    expect(field_error(page, "step.condition")).to_contain_text("Expression error at position")
    expect(page.locator("#error-summary")).to_be_visible()
    assert_accessible(page, "the Policies tab with a refused step")
    assert server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()["api"]["flows"][0]["subscribe"] == []

    condition = by_id(page, "step.condition")
    condition.fill(CONDITION)
    condition.press("End")
    expect(page.locator("#step-form .field", has=condition).locator(".expression-check")).to_have_text(
        "The expression reads."
    )
    page.locator("#step-form").get_by_role("button", name="Add step").click()
    expect(page.locator("#studio-message")).to_contain_text("Step Studio header added in the subscribe phase")
    expect(page.locator('[id="phase-api-0-subscribe"]')).to_contain_text("Studio header")

    # Deploy from the page's banner, refreshed by the swaps: the page comes back with the revision.
    banner = page.locator("#deploy-banner")
    expect(banner).to_contain_text("flows")
    banner.get_by_role("button", name="Deploy").click()
    expect(page.locator(".flash")).to_contain_text("Deployed revision 2")
    expect(page.locator("#deploy-banner")).to_have_count(0)
    expect(page.get_by_role("heading", name="Policies")).to_be_visible()
    server.wait_serving(api_id, 2)

    assert "X-Studio: yes" in studio_comments(server, path, {"X-Want": "1"})
    assert "X-Studio: yes" not in studio_comments(server, path, {})
    page.close()
