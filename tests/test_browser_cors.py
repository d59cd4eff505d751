"""CORS in a real browser: a page on another origin (another port) uses EventSource, WebSocket and
a JSON fetch POST (preflighted) against an MQTT API whose listener allows that origin: the POST's
202 is seen by the page and its message arrives on both streams; against an API that does not
allow it, the browser blocks both kinds of POST and nothing reaches the broker (issue 19)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.apis import mqtt_api
from support.mosquitto import Collector, shared_broker, unique_topic

ROUND_TRIP = """async ([base, wsBase, body]) => {
  const seen = {sse: null, ws: null};
  const es = new EventSource(base);
  await new Promise((ok, ko) => { es.onopen = ok; es.onerror = () => ko('sse failed'); });
  es.onmessage = (e) => { seen.sse = e.data; };
  const ws = new WebSocket(wsBase.replace('http', 'ws'));
  await new Promise((ok, ko) => { ws.onopen = ok; ws.onerror = () => ko('ws failed'); });
  ws.onmessage = (e) => { seen.ws = typeof e.data === 'string' ? e.data : 'binary'; };
  await new Promise((ok) => setTimeout(ok, 500));  // both subscribed at the broker
  const posted = await fetch(base, {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
  for (let i = 0; i < 100 && !(seen.sse && seen.ws); i++) await new Promise((ok) => setTimeout(ok, 100));
  es.close(); ws.close();
  return {status: posted.status, ...seen};
}"""

BLOCKED = """async ([base, body]) => {
  const out = {};
  for (const type of ['application/json', 'text/plain']) {
    try { out[type] = (await fetch(base, {method: 'POST', headers: {'Content-Type': type}, body})).status; }
    catch (e) { out[type] = 'blocked'; }
  }
  return out;
}"""


@pytest.fixture
def page_origin():
    """An empty page on another origin (127.0.0.1 on a port of its own)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>another origin</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def cors_mqtt(path, topic, origins):
    api = mqtt_api(shared_broker(), topic, path=path)
    api["listeners"][0]["cors"] = {
        "enabled": True,
        "allowOrigin": origins,
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["content-type"],
    }
    return api


def test_a_page_on_an_allowed_origin_streams_and_posts_and_another_origin_is_blocked(
    shared_server, browser, page_origin
):
    server = shared_server
    allowed, refused = unique_topic("cors-ok"), unique_topic("cors-no")
    server.deploy_api(cors_mqtt("/cors-browser", allowed, [page_origin]))
    # The WebSocket through an API of its own on the same topic: one client (an address) of one MQTT
    # API shares its messages between its subscriptions, and the page's streams are one client.
    server.deploy_api(cors_mqtt("/cors-browser-ws", allowed, [page_origin]))
    server.deploy_api(cors_mqtt("/cors-browser-no", refused, ["https://other.example"]))
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(page_origin + "/")
        base = server.gateway + "/cors-browser"
        result = page.evaluate(ROUND_TRIP, [base, base + "-ws", '{"order": 1}'])
        assert result == {"status": 202, "sse": '{"order": 1}', "ws": '{"order": 1}'}, result
        collector = Collector(shared_broker(), refused)
        try:
            blocked = page.evaluate(BLOCKED, [server.gateway + "/cors-browser-no", '{"order": 2}'])
            assert blocked == {"application/json": "blocked", "text/plain": "blocked"}, blocked
            assert collector.nothing_within(1.5)  # neither reached the broker
        finally:
            collector.close()
    finally:
        context.close()
