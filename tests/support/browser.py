"""The portal in Debian's Chromium under Playwright: launching it, a logged-in page, waiting for HTMX,
fields and their errors; axe-core (vendored in tests/vendor/axe-core, for the tests only) run in the
page, and screenshots for docs/ taken when GATEHOUSE_SCREENSHOTS=1."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.gatehouse import ADMIN_PASSWORD, ROOT
from support.portal import PASSWORD

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
# Bounds, not waits: with four xdist workers and Chromium on two cores, an HTMX swap was seen to take over 10 s.
expect.set_options(timeout=20_000)

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DOCS = ROOT / "docs"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
NARROW = 400


def axe(page):
    """The serious and critical violations axe-core finds in the page as it is now.

    The script is evaluated through the DevTools protocol, which the portal's CSP
    (default-src 'self') does not govern: a <script> tag of it would be refused, and the CSP under
    test stays on."""
    htmx_idle(page)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def readable(violations):
    """One paragraph per violation: its rule, impact and help, then each element and why it fails."""
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            lines.append(f"    {' '.join(node['target'])}: {node['html'][:200]}")
            lines.append(f"        {node['failureSummary'].replace(chr(10), ' ')}")
    return "\n".join(lines)


def assert_accessible(page, where):
    """No serious or critical violation in the page; the message names the page and each element."""
    violations = axe(page)
    assert not violations, f"axe-core on {where} ({page.url}):\n{readable(violations)}"


def screenshot(page, name):
    """docs/<name>.png at the page's width and docs/<name>-400.png at 400 px, when asked for
    (GATEHOUSE_SCREENSHOTS=1): the README's pictures, not written by every test run."""
    if os.environ.get("GATEHOUSE_SCREENSHOTS") != "1":
        return
    size = page.viewport_size
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus ring in the pictures
    for width, path in ((size["width"], DOCS / f"{name}.png"), (NARROW, DOCS / f"{name}-{NARROW}.png")):
        page.set_viewport_size({"width": width, "height": size["height"]})
        htmx_idle(page)
        page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def desktop_page(page):
    """The journey's pictures are 1280 px wide."""
    page.set_viewport_size({"width": 1280, "height": 900})
    return page


def by_id(page, element_id):
    """Ids like `cfg.messageInterval` hold dots, which a CSS `#id` selector would misread."""
    return page.locator(f'[id="{element_id}"]')


def htmx_idle(page):
    """Wait until no HTMX request is in flight and the last swap has settled."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def field_error(page, field_id):
    """The error paragraph inside the same .field block as the input: the error beside the field."""
    block = page.locator(".field.has-error").filter(has=by_id(page, field_id))
    expect(block).to_have_count(1)
    return block.locator(f'[id="{field_id}-error"]')


@contextmanager
def launched_chromium():
    """Debian's Chromium under Playwright, closed on the way out."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def logged_in_page(browser, server, username="admin", password=ADMIN_PASSWORD):
    """A page of the portal, logged in as the admin (or the given user), in a browser context of its
    own: pages of two users are two people at two browsers."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server.portal + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name=f"Log out {username}")).to_be_visible()
    return page


def add_user_in_browser(page, username, role):
    """As an admin, on the Users page: a user with the test password."""
    page.get_by_role("link", name="Users").click()
    page.fill("#new-username", username)
    page.select_option("#new-role", role)
    page.fill("#new-password", PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text(f"User {username} created with the role {role}")).to_be_visible()
