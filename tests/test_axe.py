"""axe-core (vendored, tests/vendor/axe-core) in Chromium on the portal's main pages, each with its
conditional sections open: no serious or critical violation."""

import pytest

from support.apis import mock_api
from support.browser import assert_accessible, by_id, expect, htmx_idle, logged_in_page

pytestmark = pytest.mark.usefixtures("shared_server")

KAFKA = {
    "name": "Orders",
    "apiVersion": "1.0",
    "definitionVersion": "4.0.0",
    "type": "message",
    "listeners": [
        {"type": "http", "paths": [{"path": "/axe-orders"}], "entrypoints": [{"type": "http-post"}, {"type": "sse"}]}
    ],
    "endpointGroups": [
        {
            "name": "Default group",
            "type": "kafka",
            "sharedConfiguration": {"producer": {"enabled": True, "topics": ["orders"]}},
            "endpoints": [
                {
                    "name": "Default endpoint",
                    "type": "kafka",
                    "inheritConfiguration": True,
                    "configuration": {"bootstrapServers": "127.0.0.1:9092"},
                }
            ],
        }
    ],
}


def choose(page, field_id, value):
    by_id(page, field_id).select_option(value)
    htmx_idle(page)
    expect(by_id(page, field_id)).to_have_value(value)


def test_api_list_and_the_overview_of_a_deployed_api(module_server, browser):
    api_id = module_server.deploy_api(mock_api(path="/axe-demo"))
    page = logged_in_page(browser, module_server)
    page.goto(module_server.portal + "/apis")
    assert_accessible(page, "the API list")
    page.goto(f"{module_server.portal}/apis/{api_id}")
    page.locator("#connect").wait_for()
    assert_accessible(page, "the overview of a deployed API")
    for tab in ("General", "Entrypoints", "Deployments"):
        page.get_by_role("link", name=tab, exact=True).click()
        assert_accessible(page, f"the {tab} tab")


def test_every_wizard_step(module_server, browser):
    page = logged_in_page(browser, module_server)
    page.goto(module_server.portal + "/apis/new")
    assert_accessible(page, "the wizard: General")
    page.get_by_role("button", name="Next: Entrypoints").click()
    assert_accessible(page, "the wizard: General refused (errors shown)")
    page.fill("#name", "Orders")
    page.fill("#path", "/axe-wizard")
    page.get_by_role("button", name="Next: Entrypoints").click()
    for label in ("HTTP GET", "HTTP POST", "Server-Sent Events", "WebSocket"):
        page.get_by_role("checkbox", name=label).check()
        htmx_idle(page)
    assert_accessible(page, "the wizard: Entrypoints, every entrypoint chosen")
    page.get_by_role("button", name="Next: Endpoint").click()
    choose(page, "endpoint_type", "kafka")
    open_every_security_section(page)
    expect(by_id(page, "shared.security.sasl.saslMechanism")).to_be_visible()
    assert_accessible(page, "the wizard: Endpoint, Kafka over SASL_SSL with both stores")
    for endpoint_type in ("mqtt5", "rabbitmq", "solace", "mock"):
        choose(page, "endpoint_type", endpoint_type)
        assert_accessible(page, f"the wizard: Endpoint, {endpoint_type}")
    page.get_by_role("button", name="Next: Plan").click()
    for plan_type in ("api-key", "jwt"):
        choose(page, "plan_type", plan_type)
        assert_accessible(page, f"the wizard: Plan, {plan_type}")
    choose(page, "plan_type", "key-less")
    page.get_by_role("button", name="Next: Summary").click()
    assert_accessible(page, "the wizard: Summary")


def open_every_security_section(page):
    """SASL_SSL with a JKS trust store "with certificates" and a PEM key store "with key"."""
    for name, value in (
        ("protocol", "SASL_SSL"),
        ("ssl.trustStore.type", "JKS"),
        ("ssl.trustStore.with", "certificates"),
        ("ssl.keyStore.type", "PEM"),
        ("ssl.keyStore.with", "key"),
    ):
        choose(page, "shared.security." + name, value)


def test_group_page_with_every_section_open(module_server, browser):
    api_id = module_server.import_api(KAFKA)
    page = logged_in_page(browser, module_server)
    page.goto(f"{module_server.portal}/apis/{api_id}/endpoints")
    assert_accessible(page, "Backend services")
    page.get_by_role("link", name="Edit the group Default group").click()
    open_every_security_section(page)
    choose(page, "shared.use", "both")
    for section in (
        "shared.security.sasl.saslMechanism",
        "shared.security.ssl.trustStore.certificates",
        "shared.security.ssl.keyStore.key",
        "shared.producer.topics",
        "shared.consumer.topics",
    ):
        expect(by_id(page, section)).to_be_visible()
    assert_accessible(page, "the group page, every section open")
    by_id(page, "shared.security.ssl.trustStore.certificates").fill("not a store")
    page.get_by_role("button", name="Save").click()
    page.locator("#error-summary").wait_for()
    assert_accessible(page, "the group page after a refused save")


def test_plan_form(module_server, browser):
    api_id = module_server.deploy_api(mock_api(path="/axe-plans"))
    page = logged_in_page(browser, module_server)
    page.goto(f"{module_server.portal}/apis/{api_id}/plans")
    assert_accessible(page, "the plans page")
    page.goto(f"{module_server.portal}/apis/{api_id}/plans/new")
    for plan_type in ("key-less", "api-key", "jwt", "push"):
        choose(page, "type", plan_type)
        assert_accessible(page, f"the plan form, {plan_type}")
