"""End-to-end through a real browser: create a proxy API in the portal against local HTTP backends,
add, edit and delete endpoints, add and delete an endpoint group, deploy, start, and call the gateway."""

import re

import pytest
import requests

from support.browser import by_id, expect, field_error, htmx_idle, logged_in_page
from support.http_backends import start_backend, url


@pytest.fixture
def two_backends():
    servers = [start_backend("alpha"), start_backend("beta")]
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_create_proxy_api_edit_its_endpoints_and_proxy_through_it(server, browser, two_backends):
    alpha, beta = two_backends
    page = logged_in_page(browser, server)
    page.on("dialog", lambda dialog: dialog.accept())  # the hx-confirm of the Delete buttons

    # 2. The wizard: a proxy API, HTTP proxy entrypoint, HTTP proxy endpoint to the alpha backend.
    page.get_by_role("link", name="Create API").first.click()
    expect(page.get_by_role("heading", name="Create an API")).to_be_visible()
    page.fill("#name", "Browser proxy")
    page.fill("#path", "/browser-proxy")
    page.locator('input[name="type"][value="proxy"]').check()
    page.get_by_role("button", name="Next: Entrypoints").click()
    page.get_by_role("checkbox", name="HTTP proxy").check()
    htmx_idle(page)
    expect(page.get_by_role("checkbox", name="HTTP proxy")).to_be_checked()
    page.get_by_role("button", name="Next: Endpoint").click()
    expect(page.locator("#endpoint_type")).to_have_value("http-proxy")
    by_id(page, "cfg.target").fill(url(alpha))
    page.get_by_role("button", name="Next: Plan").click()
    page.get_by_role("button", name="Next: Summary").click()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("API Browser proxy created")
    apis = server.mgmt("GET", "/apis").json()["data"]
    assert len(apis) == 1, apis
    api_id = apis[0]["id"]

    # 3. Backend services: add a second endpoint to the beta backend.
    page.get_by_role("link", name="Endpoints → Backend services").click()
    expect(page.get_by_role("heading", name="Backend services")).to_be_visible()
    expect(page.locator("tr", has_text="Default endpoint")).to_be_visible()
    page.get_by_role("link", name="Add an endpoint", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Add an endpoint"))).to_be_visible()
    page.fill("#name", "Beta endpoint")
    by_id(page, "cfg.target").fill(url(beta))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint Beta endpoint added")
    expect(page.locator("tbody tr")).to_have_count(2)

    # 4. Edit it: weight 3.
    page.locator("tr", has_text="Beta endpoint").get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit the endpoint Beta endpoint")).to_be_visible()
    expect(by_id(page, "cfg.target")).to_have_value(url(beta))
    page.fill("#weight", "3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint Beta endpoint saved")
    expect(page.locator("tr", has_text="Beta endpoint").locator("td").nth(3)).to_have_text("3")

    # 5. Delete the first endpoint (accepting the confirmation dialog).
    page.locator("tr", has_text="Default endpoint").get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint Default endpoint deleted")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tr", has_text="Default endpoint")).to_have_count(0)

    # 6. Add an endpoint group with its first endpoint, then delete it again.
    page.get_by_role("link", name="Add an endpoint group").click()
    expect(page.get_by_role("heading", name="Add an endpoint group")).to_be_visible()
    expect(page.locator("#group_type")).to_have_value("http-proxy")
    page.fill("#group_name", "Default group")
    page.select_option("#load_balancer", "weighted-random")
    page.fill("#name", "Spare endpoint")
    by_id(page, "cfg.target").fill(url(alpha))
    page.get_by_role("checkbox", name="Inherit the group's shared configuration").uncheck()
    htmx_idle(page)
    expect(page.locator("#shared-override")).to_be_visible()
    expect(by_id(page, "cfg.target")).to_have_value(url(alpha))  # kept across the HTMX refresh
    page.get_by_role("button", name="Add the group").click()
    expect(field_error(page, "group_name")).to_have_text(
        "Another endpoint group of this API is already named Default group."
    )
    expect(page.locator("#load_balancer")).to_have_value("weighted-random")
    page.fill("#group_name", "Spare group")
    page.get_by_role("button", name="Add the group").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint group Spare group added with its endpoint Spare endpoint")
    spare = page.locator("section.group", has_text="Spare group")
    expect(spare).to_contain_text("load balancer weighted-random")
    expect(spare.locator("tr", has_text="Spare endpoint")).to_contain_text("own configuration")
    spare.get_by_role("button", name="Delete group").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint group Spare group and its endpoints deleted")
    expect(page.locator("section.group")).to_have_count(1)
    page.get_by_role("button", name="Delete group").click()
    expect(page.locator(".flash.error")).to_contain_text("is the last one of this API")

    # 7. Deploy from the banner, then start.
    page.locator("#deploy-banner").get_by_role("button", name="Deploy").click()
    expect(page.locator(".flash")).to_contain_text("Deployed revision 1")
    expect(page.locator("#deploy-banner")).to_have_count(0)
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".flash")).to_contain_text("API started.")
    expect(page.locator("h1 .state")).to_have_text("started")

    # 8. The gateway proxies to the remaining endpoint: the beta backend.
    server.wait_serving(api_id, 1)
    for _ in range(3):
        response = requests.get(server.gateway + "/browser-proxy/items?x=1", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["X-Backend"] == "beta"
        assert response.json()["path"] == "/items?x=1"
    deployed = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"]
    assert [[(e["name"], e["weight"]) for e in g["endpoints"]] for g in deployed] == [[("Beta endpoint", 3)]]
    page.close()
