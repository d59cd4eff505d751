"""End-to-end through a real browser: create a message API in the portal, give it a second mock
endpoint, deploy, start, and read its messages from the gateway."""

import re

import requests

from support.browser import DOCS, by_id, expect, field_error, htmx_idle, logged_in_page


def test_create_message_api_with_two_mock_endpoints_in_the_browser(server, browser):
    page = logged_in_page(browser, server)
    portal = server.portal
    expect(page.get_by_role("heading", name="APIs")).to_be_visible()

    # 2. The create-API wizard, one step at a time. General: an empty name is refused beside the field.
    page.get_by_role("link", name="Create API").first.click()
    expect(page).to_have_url(portal + "/apis/new")
    expect(page.get_by_role("heading", name="Create an API")).to_be_visible()
    expect(page.locator('input[name="type"][value="message"]')).to_be_checked()
    page.fill("#path", "/browser-demo")
    page.get_by_role("button", name="Next: Entrypoints").click()
    expect(field_error(page, "name")).to_have_text("Give the API a name.")
    expect(page.locator("#path")).to_have_value("/browser-demo")
    page.fill("#name", "Browser demo")
    page.get_by_role("button", name="Next: Entrypoints").click()

    # 3. Entrypoints: conditional sections swapped in by HTMX.
    sse = page.get_by_role("checkbox", name="Server-Sent Events")
    http_get = page.get_by_role("checkbox", name="HTTP GET")
    expect(page.locator("#section-sse")).to_have_count(0)
    sse.check()
    htmx_idle(page)
    expect(page.locator("#section-sse")).to_be_visible()
    expect(page.locator("#section-sse").get_by_label("Heartbeat interval (ms)")).to_have_value("5000")

    sse.uncheck()
    htmx_idle(page)
    expect(page.locator("#section-sse")).to_have_count(0)
    expect(sse).not_to_be_checked()

    http_get.check()
    htmx_idle(page)
    expect(page.locator("#section-http-get")).to_be_visible()
    expect(page.locator("#section-http-get").get_by_label("Limit messages count")).to_have_value("500")
    sse.check()
    htmx_idle(page)
    expect(page.locator("#section-sse")).to_be_visible()
    expect(page.locator("#section-http-get")).to_be_visible()
    page.get_by_role("button", name="Next: Endpoint").click()

    # 4. Endpoint: the Mock; a negative interval is refused beside the field, nothing created.
    page.select_option("#endpoint_type", "mock")
    htmx_idle(page)
    expect(page.locator("#endpoint_type")).to_have_value("mock")
    by_id(page, "cfg.messageContent").fill("hello from the browser")
    by_id(page, "cfg.messageInterval").fill("-5")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "portal-create-api.png"), full_page=True)
    page.get_by_role("button", name="Next: Plan").click()
    expect(field_error(page, "cfg.messageInterval")).to_contain_text("must be at least 0")
    assert server.mgmt("GET", "/apis").json()["data"] == []
    expect(by_id(page, "cfg.messageContent")).to_have_value("hello from the browser")  # as it was sent
    # Back and forth keeps what was chosen on the other steps.
    page.get_by_role("button", name="Back: Entrypoints").click()
    expect(sse).to_be_checked()
    expect(http_get).to_be_checked()
    page.get_by_role("button", name="Next: Endpoint").click()
    expect(page.locator("#endpoint_type")).to_have_value("mock")

    # 5. Fix the input; key-less plan; the summary; create the API.
    by_id(page, "cfg.messageInterval").fill("100")
    page.get_by_role("button", name="Next: Plan").click()
    expect(page.locator("#plan_type")).to_have_value("key-less")
    page.get_by_role("button", name="Next: Summary").click()
    expect(page.locator("#form")).to_contain_text("Browser demo")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("API Browser demo created")
    expect(page.get_by_role("heading", name=re.compile("Browser demo"))).to_be_visible()
    apis = server.mgmt("GET", "/apis").json()["data"]
    assert len(apis) == 1, apis
    api_id = apis[0]["id"]
    expect(page).to_have_url(f"{portal}/apis/{api_id}")

    page.get_by_role("link", name="Endpoints → Backend services").click()
    expect(page.get_by_role("heading", name="Backend services")).to_be_visible()
    expect(page.locator("tr", has_text="Default endpoint")).to_be_visible()
    page.get_by_role("link", name="Add an endpoint", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Add an endpoint"))).to_be_visible()

    inherit = page.get_by_role("checkbox", name="Inherit the group's shared configuration")
    expect(inherit).to_be_checked()
    expect(page.locator("#shared-override")).to_have_count(0)
    inherit.uncheck()
    htmx_idle(page)
    expect(page.locator("#shared-override")).to_be_visible()
    expect(page.locator("#shared-override")).to_contain_text("Mock endpoints have no shared settings.")
    inherit.check()
    htmx_idle(page)
    expect(page.locator("#shared-override")).to_have_count(0)
    expect(inherit).to_be_checked()

    page.fill("#name", "Second endpoint")
    by_id(page, "cfg.messageContent").fill("hello from the second endpoint")
    by_id(page, "cfg.messageInterval").fill("100")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint Second endpoint added")
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.locator("tr", has_text="Second endpoint")).to_contain_text("inherits the group configuration")

    # 5. Deploy from the banner, then start.
    banner = page.locator("#deploy-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("not deployed changes — redeploy to apply")
    page.screenshot(path=str(DOCS / "portal-endpoints.png"), full_page=True)
    banner.get_by_role("button", name="Deploy").click()
    expect(page.locator(".flash")).to_contain_text("Deployed revision 1")
    expect(page.get_by_role("heading", name="Backend services")).to_be_visible()
    expect(page.locator("#deploy-banner")).to_have_count(0)
    expect(page.get_by_text("not deployed changes")).to_have_count(0)

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".flash")).to_contain_text("API started.")
    expect(page.locator("h1 .state")).to_have_text("started")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    server.wait_serving(api_id, 1)
    seen = set()
    for _ in range(2):  # round-robin: one subscription per endpoint
        response = requests.get(
            server.gateway + "/browser-demo?limit=1", headers={"Accept": "application/json"}, timeout=10
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert len(items) == 1, items
        seen.add(items[0]["content"])
    assert seen == {"hello from the browser", "hello from the second endpoint"}
    page.close()
