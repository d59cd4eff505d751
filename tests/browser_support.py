"""What the axe-core and journey browser tests share: axe-core (vendored in tests/vendor/axe-core, for
the tests only) run in the page, and screenshots for docs/ taken when GATEHOUSE_SCREENSHOTS=1."""
import os
from pathlib import Path

from test_browser import DOCS, htmx_idle

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
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

