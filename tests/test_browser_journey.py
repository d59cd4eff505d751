"""A newcomer's journey, in Chromium alone (no JSON, no API call): log in, create an API on a broker
through the wizard, "Create and deploy", copy the commands the overview shows and run them with
curl; for Kafka, then configure TLS on the group's page and meet its validation."""

import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from support.browser import by_id, desktop_page, expect, field_error, htmx_idle, logged_in_page, screenshot
from support.gatehouse import missing
from support.mosquitto import shared_broker, unique_topic
from support.pki import jks_trust_store, make_ca

SET = "set: leave empty to keep it"
TRUST = "shared.security.ssl.trustStore."
KEY = "shared.security.ssl.keyStore."
SECRETS = (TRUST + "password", KEY + "key", KEY + "keyPassword")


@pytest.fixture(autouse=True)
def curl():
    if not shutil.which("curl"):
        missing("curl (apt-get install curl)")


# ----- the wizard and the overview, as a user goes through them -----
def create_and_deploy(page, name, path, entrypoints, endpoint_type, fill_endpoint, picture=False):
    """From the API list through every wizard step to "Create and deploy"; `fill_endpoint(page)`
    fills the Endpoint step. Ends on the new API's overview."""
    page.get_by_role("link", name="APIs", exact=True).first.click()
    page.get_by_role("link", name="Create API").first.click()
    page.fill("#name", name)
    page.fill("#path", path)
    page.get_by_role("button", name="Next: Entrypoints").click()
    for label in entrypoints:
        page.get_by_role("checkbox", name=label).check()
        htmx_idle(page)
    page.get_by_role("button", name="Next: Endpoint").click()
    page.select_option("#endpoint_type", endpoint_type)
    htmx_idle(page)
    fill_endpoint(page)
    if picture:
        screenshot(page, "portal-wizard")
    page.get_by_role("button", name="Next: Plan").click()
    expect(page.locator("#plan_type")).to_have_value("key-less")
    page.get_by_role("button", name="Next: Summary").click()
    expect(page.locator("#form")).to_contain_text(name)
    page.get_by_role("button", name="Create and deploy").click()
    expect(page.locator(".flash")).to_contain_text(f"API {name} created, deployed and started")
    expect(page.get_by_role("heading", name=re.compile(re.escape(name)))).to_be_visible()
    expect(page.locator("#connect")).to_be_visible()


def command(page, entrypoint):
    """The command of an entrypoint as its copy button holds it (what Copy puts on the clipboard)."""
    button = page.locator(f'#connect [data-entrypoint="{entrypoint}"] button[data-copy]')
    expect(button).to_have_count(1)
    return button.get_attribute("data-copy")


def curl_args(text, *options):
    """A curl command from the page, with options of the test's put after `curl`."""
    args = shlex.split(text)
    assert args[0] == "curl", text
    return [args[0], "--silent", "--show-error", *options, *args[1:]]


def post(text):
    """Run the page's POST command: the HTTP status it got."""
    done = subprocess.run(
        curl_args(text, "--output", "/dev/null", "--write-out", "%{http_code}", "--max-time", "10"),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


class Stream:
    """The page's SSE command running in the background; its lines read on a thread."""

    def __init__(self, text, seconds=30):
        self.proc = subprocess.Popen(
            curl_args(text, "--max-time", str(seconds)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, data, deadline, between=lambda: None):
        """True once `data:` <data> came; `between()` runs while none came (e.g. post again)."""
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                between()
                continue
            if line.startswith("event: error"):
                raise AssertionError(f"the stream said {line}: {self.lines.get(timeout=5)}")
            if line == f"data: {data}":
                return True
        return False

    def close(self):
        self.proc.kill()
        self.proc.wait()


def post_and_stream(page, message="hello", timeout=30):
    """The overview's SSE command receives what its POST command publishes. A subscription made as
    the stream opens may miss a message sent at once: POST again until one arrives."""
    publish, subscribe = command(page, "http-post"), command(page, "sse")
    assert f"-d {message} " in publish, publish
    stream = Stream(subscribe)
    try:
        statuses = []

        def again():
            statuses.append(post(publish))
            assert statuses[-1] == 202, statuses

        again()
        assert stream.wait_for(message, time.monotonic() + timeout, again), f"no message; POSTs: {statuses}"
    finally:
        stream.close()


def open_group_page(page, group="Default group"):
    page.get_by_role("link", name="Endpoints → Backend services").click()
    page.get_by_role("link", name=f"Edit the group {group}").click()
    expect(page.get_by_role("heading", name=re.compile(f"Edit the endpoint group {group}"))).to_be_visible()


def section_inputs(page, legend):
    """The ids of the inputs in the fieldset of that legend, in page order."""
    section = page.locator(f"fieldset:has(> legend:text-is('{legend}'))")
    expect(section).to_have_count(1)
    return section.locator("input:not([type=hidden]), select, textarea").evaluate_all("els => els.map(e => e.id)")


def choose(page, field_id, value):
    by_id(page, field_id).select_option(value)
    htmx_idle(page)
    expect(by_id(page, field_id)).to_have_value(value)


# ----- Kafka: the whole journey -----
def test_kafka_newcomer_journey(start_server, browser, tansu, new_topic, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    server = start_server(GATEHOUSE_CERTS_DIR=str(certs))
    page = desktop_page(logged_in_page(browser, server))
    topic = new_topic()

    def kafka(page):
        by_id(page, "cfg.bootstrapServers").fill(tansu.bootstrap)
        # The wizard's defaults yield a working API: producer and consumer, on a topic named after the path.
        expect(by_id(page, "shared.use")).to_have_value("both")
        expect(by_id(page, "shared.producer.topics")).to_have_value(topic)
        expect(by_id(page, "shared.consumer.topics")).to_have_value(topic)

    create_and_deploy(page, "Orders", "/" + topic, ["HTTP POST", "Server-Sent Events"], "kafka", kafka, picture=True)
    screenshot(page, "portal-overview")
    post_and_stream(page)

    # The group's shared configuration, on its own page: TLS, one store choice at a time.
    open_group_page(page)
    stored = shared_configuration(server, page)
    choose(page, "shared.security.protocol", "SSL")
    choose(page, TRUST + "type", "PEM")
    choose(page, TRUST + "with", "certificates")
    assert section_inputs(page, "SSL trust store") == [TRUST + "type", TRUST + "with", TRUST + "certificates"]
    choose(page, TRUST + "type", "JKS")
    choose(page, TRUST + "with", "location")
    assert section_inputs(page, "SSL trust store") == [
        TRUST + "type",
        TRUST + "with",
        TRUST + "location",
        TRUST + "password",
    ]
    choose(page, KEY + "type", "PEM")
    choose(page, KEY + "with", "key")
    assert section_inputs(page, "SSL key store") == [
        KEY + "type",
        KEY + "with",
        KEY + "certificateChain",
        KEY + "key",
        KEY + "keyPassword",
    ]
    screenshot(page, "portal-group")

    # Bad values: a location outside GATEHOUSE_CERTS_DIR, a chain that is no certificate, a key that is no key.
    by_id(page, TRUST + "location").fill(str(tmp_path / "elsewhere.jks"))
    by_id(page, TRUST + "password").fill("trust-s3cret-pw")
    by_id(page, KEY + "certificateChain").fill("not a certificate")
    by_id(page, KEY + "key").fill("not a key")
    by_id(page, KEY + "keyPassword").fill("key-s3cret-pw")
    save_refused(page, {TRUST + "location": "must lie under GATEHOUSE_CERTS_DIR"})
    expect(by_id(page, KEY + "certificateChain")).to_have_value("not a certificate")
    assert shared_configuration(server, page) == stored, "nothing saved"

    # The store's file put under the folder; its password as typed before, kept by the server. The
    # stores' contents are checked once every field is well formed: now the key store's turn.
    _, ca = make_ca("Journey CA")
    (certs / "journey-trust.jks").write_bytes(jks_trust_store(ca, "trust-s3cret-pw"))
    by_id(page, TRUST + "location").fill("journey-trust.jks")
    save_refused(page, {KEY + "certificateChain": "", KEY + "key": ""})
    expect(page.locator("#error-summary")).not_to_contain_text("Trust store")
    html = page.content()
    assert not [typed for typed in ("trust-s3cret-pw", "not a key", "key-s3cret-pw") if typed in html]
    assert shared_configuration(server, page) == stored, "nothing saved"

    choose(page, KEY + "type", "NONE")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Endpoint group Default group saved")
    expect(page.get_by_role("heading", name="Backend services")).to_be_visible()
    expect(page.locator("main")).to_contain_text("SSL")
    trust = shared_configuration(server, page)["security"]["ssl"]["trustStore"]
    assert (trust["type"], trust["location"]) == ("JKS", "journey-trust.jks"), trust


def save_refused(page, expected):
    """Save; the page comes back with an error beside each field of `expected` ({id: text in it}),
    each linked from the error summary, which has focus; secrets typed are kept but never shown."""
    # secret -> (what was typed now, whether the page already said it was set)
    typed = {
        secret: (by_id(page, secret).input_value(), by_id(page, secret).get_attribute("placeholder") == SET)
        for secret in SECRETS
        if by_id(page, secret).count()
    }
    page.get_by_role("button", name="Save").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    for field_id, text in expected.items():
        expect(field_error(page, field_id)).to_contain_text(text)
        expect(by_id(page, field_id)).to_have_attribute("aria-invalid", "true")
        expect(summary.locator(f'a[href="#{field_id}"]')).to_have_count(1)
    html = page.content()
    for secret, (value, was_set) in typed.items():
        expect(by_id(page, secret)).to_have_value("")
        if value or was_set:
            expect(by_id(page, secret)).to_have_attribute("placeholder", SET)
        assert not value or value not in html, f"{secret} is in the page"


def shared_configuration(server, page):
    """What is stored (read by the test, not by the user)."""
    return server.mgmt("GET", f"/apis/{api_id_of(page)}").json()["endpointGroups"][0]["sharedConfiguration"]


def api_id_of(page):
    """The API's id, as its pages' addresses carry it."""
    return re.search(r"/apis/([0-9a-f-]{36})", page.url).group(1)


# ----- MQTT 5, RabbitMQ, the Mock: wizard, Create and deploy, the overview's commands -----
def test_mqtt5_newcomer_journey(server, browser):
    host, port = shared_broker()
    page = logged_in_page(browser, server)
    topic = unique_topic("journey")

    def mqtt(page):
        by_id(page, "cfg.serverHost").fill(host)
        by_id(page, "cfg.serverPort").fill(str(port))
        expect(by_id(page, "shared.use")).to_have_value("both")
        by_id(page, "shared.producer.topic").fill(topic)
        by_id(page, "shared.consumer.topic").fill(topic)

    create_and_deploy(page, "Sensors", "/journey-mqtt", ["HTTP POST", "Server-Sent Events"], "mqtt5", mqtt)
    post_and_stream(page)


def test_rabbitmq_newcomer_journey(server, browser, names):
    page = logged_in_page(browser, server)
    exchange = names.exchange()

    def rabbit(page):
        by_id(page, "cfg.serverHost").fill("127.0.0.1")
        expect(by_id(page, "cfg.serverPort")).to_have_value("5672")
        expect(by_id(page, "shared.use")).to_have_value("both")
        for side in ("producer", "consumer"):
            by_id(page, f"shared.{side}.exchange.name").fill(exchange)
            expect(by_id(page, f"shared.{side}.routingKey")).to_have_value("journey-rabbit")

    create_and_deploy(page, "Payments", "/journey-rabbit", ["HTTP POST", "Server-Sent Events"], "rabbitmq", rabbit)
    names.api_ids.add(api_id_of(page))
    post_and_stream(page)


def test_mock_newcomer_journey(server, browser):
    page = logged_in_page(browser, server)
    content = f"mock-{uuid.uuid4().hex[:8]}"

    def mock(page):
        by_id(page, "cfg.messageContent").fill(content)
        by_id(page, "cfg.messageInterval").fill("200")

    create_and_deploy(page, "Demo", "/journey-mock", ["Server-Sent Events"], "mock", mock)
    stream = Stream(command(page, "sse"))
    try:
        assert stream.wait_for(content, time.monotonic() + 15), "the Mock's message did not come"
    finally:
        stream.close()
