"""Keyboard, screen readers and small screens, in Chromium against a real `gatehouse serve`: focus
stays on the control that re-rendered a form section, the skip link, the collapsed menu and the
scrolling tables at 400 px, the plan-close confirmation (a plan name never reaches script text), and
the error summary that takes focus and links to invalid inputs."""

import re

import pytest

from support.apis import mock_api
from support.browser import by_id, expect, htmx_idle, launched_chromium, logged_in_page
from support.gatehouse import ADMIN_PASSWORD
from support.plans import plan
from support.webhook import PUSH_PLAN, mock_group, webhook_api

XSS_NAME = "Gold'+alert(1)+'"


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module: each test opens pages in contexts of its own."""
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, shared_server):
    page = logged_in_page(browser, shared_server)
    yield page
    page.context.close()


def active_id(page):
    return page.evaluate("document.activeElement && document.activeElement.id")


def tab_to(page, element_id, limit=80):
    """Press Tab until the element with this id has focus, as a keyboard user would."""
    for _ in range(limit):
        if active_id(page) == element_id:
            return
        page.keyboard.press("Tab")
    pytest.fail(f"#{element_id} never got focus with Tab")


def console_problems(page):
    """Script errors and console errors (a CSP violation is reported there), collected as they come."""
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    return problems


def test_changing_the_plan_type_with_the_keyboard_keeps_focus_on_the_type(shared_server, page):
    api_id = shared_server.import_api(mock_api(path="/a11y-plan"))
    page.goto(shared_server.portal + f"/apis/{api_id}/plans/new")
    expect(page.locator("#signature")).to_have_count(0)  # api-key: no JWT fields
    tab_to(page, "type")
    page.keyboard.press("ArrowDown")  # api-key -> jwt
    htmx_idle(page)
    expect(page.locator("#type")).to_have_value("jwt")
    expect(page.locator("#signature")).to_be_visible()
    assert active_id(page) == "type"
    expect(page.locator("#announcer")).to_have_text(re.compile(r"Form updated: \d+ fields"))

    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # -> key-less: no subscriptions, no JWT
    htmx_idle(page)
    expect(page.locator("#type")).to_have_value("key-less")
    expect(page.locator("#validation")).to_have_count(0)
    expect(page.locator("#signature")).to_have_count(0)
    assert active_id(page) == "type"


def test_toggling_inherit_with_space_keeps_focus_on_the_checkbox(shared_server, page):
    api_id = shared_server.import_api(mock_api(path="/a11y-endpoint"))
    page.goto(shared_server.portal + f"/apis/{api_id}/endpoints")
    href = page.locator('a[href*="/endpoints/new"]').first.get_attribute("href")
    page.goto(shared_server.portal + href)
    inherit = page.locator("#inheritConfiguration")
    expect(inherit).to_be_checked()
    expect(page.locator("#shared-override")).to_have_count(0)
    tab_to(page, "inheritConfiguration")
    page.keyboard.press("Space")
    htmx_idle(page)
    expect(page.locator("#shared-override")).to_be_visible()
    expect(inherit).not_to_be_checked()
    assert active_id(page) == "inheritConfiguration"
    expect(page.locator("#announcer")).to_have_text(re.compile(r"Form updated: \d+ fields?"))
    page.keyboard.press("Space")
    htmx_idle(page)
    expect(page.locator("#shared-override")).to_have_count(0)
    assert active_id(page) == "inheritConfiguration"


def test_the_skip_link_is_the_first_tab_stop_and_moves_focus_to_the_content(shared_server, page):
    page.goto(shared_server.portal + "/apis")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0  # shown once focused
    page.keyboard.press("Enter")
    assert active_id(page) == "content"
    page.keyboard.press("Tab")  # the next stop is inside the content, not back in the menu
    assert page.evaluate("document.getElementById('content').contains(document.activeElement)")


def test_at_400_px_the_menu_is_one_line_and_tables_scroll_inside_their_card(shared_server, browser):
    api_id = shared_server.import_api(
        {**mock_api(path="/a11y-narrow-with-a-rather-long-context-path"), "plans": [plan("keys", "API_KEY")]}
    )
    page = logged_in_page(browser, shared_server)
    try:
        page.set_viewport_size({"width": 400, "height": 800})
        page.goto(shared_server.portal + "/apis")
        header = page.locator("header.top")
        assert header.bounding_box()["height"] < 60  # one line: brand and the Menu button
        menu = page.get_by_role("button", name="Menu")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(page.get_by_role("link", name="Applications")).to_be_hidden()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_role("link", name="Applications")).to_be_visible()
        menu.click()
        expect(page.get_by_role("link", name="Applications")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        last = page.locator("table tbody tr").first.locator("td").last
        last.scroll_into_view_if_needed()
        box = last.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400

        page.goto(shared_server.portal + f"/apis/{api_id}/plans")
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        close = page.locator("#plan-keys").get_by_role("button", name="Close")
        close.scroll_into_view_if_needed()
        box = close.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400  # reachable inside the scrolled table
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
    finally:
        page.context.close()


def test_closing_a_plan_asks_first_and_its_name_never_runs_as_script(shared_server, page):
    api_id = shared_server.import_api(
        {**mock_api(path="/a11y-close"), "plans": [{**plan("gold", "API_KEY"), "name": XSS_NAME}]}
    )
    problems = console_problems(page)
    dialogs, answers = [], [False]

    def answer(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.accept() if answers[0] else dialog.dismiss()

    page.on("dialog", answer)
    page.goto(shared_server.portal + f"/apis/{api_id}/plans")
    row = page.locator("#plan-gold")
    row.get_by_role("button", name="Close").click()
    expect(row.locator(".state")).to_have_text("published")  # dismissed: nothing sent
    assert dialogs == [
        (
            "confirm",
            f"Close the plan {XSS_NAME}? Its subscriptions are closed and their keys stop working. Closing is final.",
        )
    ]

    answers[0] = True
    row.get_by_role("button", name="Close").click()
    expect(page.get_by_text(f"Plan {XSS_NAME} is closed now")).to_be_visible()
    expect(row.locator(".state")).to_have_text("closed")
    assert [kind for kind, _ in dialogs] == ["confirm", "confirm"]  # no alert(1)
    assert problems == []


def test_after_a_bad_save_the_error_summary_has_focus_and_links_to_invalid_inputs(shared_server, page):
    api_id = shared_server.import_api(mock_api(path="/a11y-errors"))
    plans_before = shared_server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"]
    page.goto(shared_server.portal + f"/apis/{api_id}/plans/new")
    page.select_option("#type", "jwt")
    htmx_idle(page)
    page.fill("#publicKey", "not a key")
    page.get_by_role("button", name="Save").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(page.locator("#announcer")).to_have_text(re.compile("2 problems to fix"))
    hrefs = summary.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert sorted(hrefs) == ["#name", "#publicKey"]
    for href in hrefs:
        target = by_id(page, href[1:])
        expect(target).to_have_attribute("aria-invalid", "true")
        described = target.get_attribute("aria-describedby")
        expect(by_id(page, described)).to_be_visible()
    expect(by_id(page, "publicKey-error")).to_contain_text("PEM form")
    summary.locator('a[href="#publicKey"]').click()
    expect(page.locator("#publicKey")).to_be_focused()
    assert shared_server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"] == plans_before  # nothing saved

    page.context.clear_cookies()
    page.goto(shared_server.portal + "/login")
    page.fill("#username", "admin")
    page.fill("#password", "wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator('#error-summary a[href="#password"]')).to_contain_text("Wrong user name or password")


def test_the_subscribe_form_shows_webhook_fields_only_for_a_push_plan(shared_server, page):
    definition = webhook_api([mock_group(1)], name="A11y push")
    api_id = shared_server.import_api({**definition, "plans": [plan("keys", "API_KEY"), dict(PUSH_PLAN)]})
    application = shared_server.application()
    page.goto(shared_server.portal + f"/applications/{application['id']}")
    choice = page.locator("#plan")
    expect(choice.locator("option:checked")).to_contain_text("(api-key)")
    expect(page.locator("#webhook-settings")).to_have_count(0)
    tab_to(page, "plan")
    page.keyboard.press("ArrowDown")  # -> the push plan
    htmx_idle(page)
    expect(choice.locator("option:checked")).to_contain_text("(push)")
    expect(by_id(page, "webhook.callbackUrl")).to_be_visible()
    assert active_id(page) == "plan"

    by_id(page, "webhook.callbackUrl").fill("nowhere")
    page.get_by_role("button", name="Subscribe").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.locator('a[href="#webhook.callbackUrl"]')).to_contain_text("is not an http:// or https:// URL")
    expect(choice.locator("option:checked")).to_contain_text("(push)")  # the choice made is kept
    expect(by_id(page, "webhook.callbackUrl")).to_have_value("nowhere")
    assert shared_server.mgmt("GET", f"/apis/{api_id}/subscriptions").json()["data"] == []  # nothing saved

    page.keyboard.press("Shift+Tab")
    tab_to(page, "plan")
    page.keyboard.press("ArrowUp")  # back to the api-key plan: no webhook
    htmx_idle(page)
    expect(page.locator("#webhook-settings")).to_have_count(0)
    assert active_id(page) == "plan"


def test_a_copy_button_puts_the_new_token_on_the_clipboard_and_says_so(shared_server, browser):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(shared_server.portal + "/login")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(shared_server.portal + "/tokens")
        page.fill("#token-name", "a11y")
        page.get_by_role("button", name="Create token").click()
        token = page.locator("#new-token .token code").inner_text()
        page.get_by_role("button", name="Copy the token").click()
        expect(page.locator("#announcer")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == token
        expect(page.get_by_role("button", name="Copy the token")).to_be_focused()
    finally:
        context.close()
