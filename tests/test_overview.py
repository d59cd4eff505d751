"""The API overview says where clients connect (a ready command per entrypoint, run here as a user
would paste it), and the overview and the API list show started / stopped / degraded, refreshed
by HTMX, with the endpoint and its error while a broker is down."""

import html
import re
import shlex
import subprocess
import time

import websocket

from support.apis import mock_api, mqtt_api, tcp_api
from support.browser import expect, logged_in_page
from support.gatehouse import until
from support.mosquitto import auth, unique_topic
from support.plans import hs_plan, plan, proxy_api
from support.portal import portal_login
from support.webhook import mock_group, webhook_api

KEY_HEADER = "X-Gravitee-Api-Key: <your key>"
# An HTTP GET returns after two messages rather than after its default duration.
FOUR = [
    {"type": "http-get", "configuration": {"messagesLimitCount": 2}},
    {"type": "http-post"},
    {"type": "sse"},
    {"type": "websocket"},
]


def connections(page_html):
    """{entrypoint type: (URL, command or None)} as the overview shows them; the command is the text
    its copy button copies, which must be what the page shows."""
    section = re.search(r'<section class="card" id="connect".*?</section>', page_html, re.S).group(0)
    found = {}
    for block in re.findall(
        r'<div class="connection".*?</div>\s*(?=<div class="connection"|</section>)', section, re.S
    ):
        kind = html.unescape(re.search(r'data-entrypoint="([^"]*)"', block).group(1))
        url = re.search(r'<code class="connect-url">(.*?)</code>', block)
        copied = re.search(r'data-copy="([^"]*)"', block)
        shown = re.search(r'<code class="connect-command">(.*?)</code>', block, re.S)
        command = html.unescape(copied.group(1)) if copied else None
        assert command == (html.unescape(shown.group(1)) if shown else None)
        found[kind] = (html.unescape(url.group(1)) if url else None, command)
    return found


def overview(browser_session, server, api_id):
    page = browser_session.get(f"{server.portal}/apis/{api_id}")
    assert page.status_code == 200, page.text
    return page.text


def run(command, *extra, timeout=10):
    """Run a command shown on the page (extra curl options appended), as a shell would split it."""
    return subprocess.run(shlex.split(command) + list(extra), capture_output=True, text=True, timeout=timeout)


def test_overview_commands_reach_every_entrypoint(server):
    api_id = server.deploy_api(mock_api(path="/demo", content="hi there", interval=50, entrypoints=FOUR))
    browser_session = portal_login(server)
    shown = connections(overview(browser_session, server, api_id))
    url = server.gateway + "/demo"
    assert shown == {
        "http-get": (url, f"curl -H 'Accept: application/json' {url}"),
        "http-post": (url, f"curl -d hello {url}"),
        "sse": (url, f"curl -N -H 'Accept: text/event-stream' {url}"),
        "websocket": (url.replace("http://", "ws://"), url.replace("http://", "ws://")),
    }

    got = run(shown["http-get"][1], "-s", "--fail")
    assert got.returncode == 0, got.stderr
    assert '"content": "hi there"' in got.stdout

    posted = run(shown["http-post"][1], "-s", "-o", "/dev/null", "-w", "%{http_code}")
    assert posted.stdout == "202", posted.stderr

    sse = subprocess.Popen(shlex.split(shown["sse"][1]) + ["-s"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        lines = []
        while "data: hi there" not in lines and time.monotonic() < deadline:
            lines.append(sse.stdout.readline().rstrip("\n"))
        assert "event: message" in lines and "data: hi there" in lines, lines
    finally:
        sse.kill()
        sse.wait()

    ws = websocket.create_connection(shown["websocket"][1], timeout=5)
    try:
        assert ws.recv() == "hi there"
    finally:
        ws.close()


def test_a_published_key_plan_adds_its_header_and_the_key_passes(server):
    definition = mock_api(path="/keyed", content="for key holders", entrypoints=FOUR)
    definition["plans"] = [plan("keys", "API_KEY")]
    api_id = server.deploy_api(definition)
    browser_session = portal_login(server)
    shown = connections(overview(browser_session, server, api_id))
    url = server.gateway + "/keyed"
    assert shown["http-get"][1] == f"curl -H 'Accept: application/json' -H '{KEY_HEADER}' {url}"
    assert shown["sse"][1] == f"curl -N -H 'Accept: text/event-stream' -H '{KEY_HEADER}' {url}"

    without = run(
        shown["http-get"][1].replace(f" -H '{KEY_HEADER}'", ""), "-s", "-o", "/dev/null", "-w", "%{http_code}"
    )
    assert without.stdout == "401"
    key = server.subscribe(api_id, "keys")["apiKey"]
    with_key = shown["http-get"][1].replace("<your key>", key)
    until(lambda: run(with_key, "-s", "--fail").returncode == 0, timeout=5)  # the gateway polls for new keys
    assert "for key holders" in run(with_key, "-s", "--fail").stdout

    jwt_only = mock_api(path="/signed", name="Signed")
    jwt_only["plans"] = [hs_plan()]
    jwt_id = server.deploy_api(jwt_only)
    signed = connections(overview(browser_session, server, jwt_id))
    assert "-H 'Authorization: Bearer <your JWT>'" in signed["http-post"][1]


def test_the_gateway_url_setting_overrides_the_base(start_server):
    server = start_server(GATEHOUSE_GATEWAY_URL="https://gateway.example.com/")
    definition = mock_api(path="/orders")
    definition["listeners"][0]["paths"].append({"path": "/eu", "host": "eu.example.com"})
    api_id = server.import_api(definition)
    browser_session = portal_login(server)
    page = overview(browser_session, server, api_id)
    assert "The gateway serves this API once it is deployed and started." in page
    blocks = re.findall(r'<div class="connection".*?data-copy="([^"]*)"', page, re.S)
    commands = [html.unescape(b) for b in blocks]
    assert "curl -H 'Accept: application/json' https://gateway.example.com/orders" in commands
    assert "curl -H 'Accept: application/json' https://eu.example.com/eu" in commands
    assert "wss://gateway.example.com/orders" in commands and "wss://eu.example.com/eu" in commands

    proxied = server.import_api(proxy_api("/legacy", "http://127.0.0.1:9", [plan("keys", "API_KEY")]))
    assert connections(overview(browser_session, server, proxied)) == {
        "http-proxy": (
            "https://gateway.example.com/legacy",
            f"curl -H '{KEY_HEADER}' https://gateway.example.com/legacy",
        )
    }
    tcp = server.import_api(tcp_api(["db.example.com"], 9))
    assert connections(overview(browser_session, server, tcp)) == {
        "tcp-proxy": (
            f"gateway.example.com:{server.tcp_port}",
            f"openssl s_client -connect gateway.example.com:{server.tcp_port} -servername db.example.com",
        )
    }
    pushed = server.import_api(webhook_api([mock_group(1)]))
    page = overview(browser_session, server, pushed)
    assert connections(page) == {"webhook": (None, None)}
    assert "Consumed by push subscriptions" in page


# ----- health -----
def poll_states(browser_session, server, api_id, until, timeout=15):
    """Poll the list's partial (as the page's HTMX does) until its state text satisfies until(text)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        response = browser_session.get(f"{server.portal}/apis/_states", params={f"shown.{api_id}": "stale"})
        assert response.status_code == 200
        text = text_of(response.text)
        if until(text):
            return response
        time.sleep(0.3)
    raise AssertionError(f"the state did not change as expected within {timeout} s: {text!r}")


def text_of(fragment):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def state_text(page_html, api_id):
    """What the API's state region of a page says."""
    return text_of(re.search(rf'id="state-{re.escape(api_id)}"[^>]*>(.*?)<input', page_html, re.S).group(1))


def test_a_stopped_broker_shows_degraded_with_the_endpoint_and_error_then_started(server, private_broker, browser):
    definition = mqtt_api(("127.0.0.1", private_broker.port), unique_topic("health"), path="/health", shared=auth())
    api_id = server.deploy_api(definition)
    browser_session = portal_login(server)
    assert state_text(browser_session.get(server.portal + "/apis").text, api_id) == "started"
    assert state_text(overview(browser_session, server, api_id), api_id) == "started"
    digest = re.search(
        rf'name="shown.{re.escape(api_id)}" value="([0-9a-f]+)"', browser_session.get(server.portal + "/apis").text
    ).group(1)
    unchanged = browser_session.get(f"{server.portal}/apis/_states", params={f"shown.{api_id}": digest})
    assert unchanged.status_code == 204 and unchanged.text == ""

    page = logged_in_page(browser, server)
    page.goto(f"{server.portal}/apis/{api_id}")
    badge = page.locator("h1 .state")
    expect(badge).to_have_text("started")
    listing = logged_in_page(browser, server)  # the API list, refreshed by its own poll
    listing.goto(f"{server.portal}/apis")
    row_state = listing.locator(f'[id="state-{api_id}"]')
    expect(row_state.locator(".state")).to_have_text("started")

    private_broker.stop()
    where = f"127.0.0.1:{private_broker.port}"
    poll_states(browser_session, server, api_id, lambda text: text.startswith("degraded"))
    expected = f"degraded endpoint broker: unreachable ({where}: Connection refused)"
    assert state_text(browser_session.get(server.portal + "/apis").text, api_id) == expected
    assert state_text(overview(browser_session, server, api_id), api_id) == expected
    expect(badge).to_have_text("degraded", timeout=10_000)  # the open page's HTMX poll
    expect(page.locator("h1 .api-health")).to_contain_text(f"endpoint broker: unreachable ({where}")
    expect(page.locator("h1 .api-health")).to_have_attribute("aria-live", "polite")
    expect(row_state).to_have_text(expected)

    private_broker.start()  # the same ports
    poll_states(browser_session, server, api_id, lambda text: text == "started")
    assert state_text(browser_session.get(server.portal + "/apis").text, api_id) == "started"
    expect(badge).to_have_text("started", timeout=10_000)
    expect(page.locator("h1 .problem")).to_have_count(0)
    expect(row_state).to_have_text("started")

    assert server.mgmt("POST", f"/apis/{api_id}/_stop").status_code == 204
    poll_states(browser_session, server, api_id, lambda text: text == "stopped")
