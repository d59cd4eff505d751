"""The create-API wizard over HTTP, as a browser without JavaScript (or with htmx) posts it, against
a real server and real brokers: each step, its refusals, the APIs it makes (Kafka on Tansu, MQTT 5,
RabbitMQ, Mock) working at once; and Deploy refusing entrypoints that the endpoints cannot serve."""

import html
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from typing import ClassVar

import pytest
import requests

from gateway_runtime.definition import capabilities
from support.apis import mock_api
from support.mosquitto import shared_broker
from support.portal import csrf_token, portal_login
from support.streams import next_message

JSON = {"Accept": "application/json"}


@pytest.fixture
def server(shared_server):
    return shared_server


class Controls(HTMLParser):
    """The controls of the wizard's form (or of an HTMX answer), each with the ids of the elements
    around it, and its buttons: what a browser would submit."""

    VOID: ClassVar[set[str]] = {"input", "br", "img", "meta", "link", "hr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.controls, self.buttons, self.stack, self.select, self.textarea = [], [], [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.VOID:
            self.stack.append((tag, attrs.get("id")))
        regions = {i for _, i in self.stack if i}
        if tag == "input" and attrs.get("name") and attrs.get("type") != "submit":
            self.controls.append(
                dict(
                    name=attrs["name"],
                    kind=attrs.get("type", "text"),
                    value=attrs.get("value", "on" if attrs.get("type") in ("checkbox", "radio") else ""),
                    checked="checked" in attrs,
                    regions=regions,
                )
            )
        elif tag == "select":
            self.select = dict(name=attrs["name"], kind="select", value=None, options=[], regions=regions)
            self.controls.append(self.select)
        elif tag == "option" and self.select is not None:
            self.select["options"].append(attrs.get("value"))
            if "selected" in attrs:
                self.select["value"] = attrs.get("value")
        elif tag == "textarea":
            self.textarea = dict(name=attrs["name"], kind="textarea", value="", regions=regions)
            self.controls.append(self.textarea)
        elif tag == "button" and attrs.get("name"):
            self.buttons.append(dict(name=attrs["name"], value=attrs.get("value", ""), text=""))

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea["value"] += data
        elif self.stack and self.stack[-1][0] == "button" and self.buttons:
            self.buttons[-1]["text"] += data.strip()
        elif self.stack and self.stack[-1][0] == "option" and self.select and self.select["options"][-1] is None:
            self.select["options"][-1] = data.strip()

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        if tag == "textarea":
            self.textarea = None
        if tag not in self.VOID and self.stack:
            self.stack.pop()


class Wizard:
    """A signed-in person walking the create-API wizard."""

    def __init__(self, server):
        self.server = server
        self.browser = portal_login(server)
        self.load(self.browser.get(server.portal + "/apis/new"))

    def load(self, response):
        self.response = response
        form = response.text.split('id="create-api"', 1)[1].split("</form>", 1)[0]
        parsed = Controls(form)
        self.controls, self.buttons = parsed.controls, parsed.buttons
        return response

    @property
    def text(self):
        """The page's text, as read (tags left out)."""
        return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", self.response.text)))

    def control(self, name, value=None):
        found = [c for c in self.controls if c["name"] == name and (c["kind"] != "radio" or c["value"] == value)]
        assert found, f"the page shows no input {name}: {sorted({c['name'] for c in self.controls})}"
        return found[0]

    def value(self, name):
        control = self.control(name)
        if control["kind"] == "checkbox":
            return control["checked"]
        return control["value"] if control["kind"] != "select" else control["value"] or control["options"][0]

    def fill(self, **values):
        """Type into (tick, choose) the inputs the page shows."""
        for name, value in values.items():
            if self.control(name)["kind"] == "radio":
                for c in self.controls:
                    if c["name"] == name:
                        c["checked"] = c["value"] == value
            elif self.control(name)["kind"] == "checkbox":
                self.control(name)["checked"] = bool(value)
            else:
                control = self.control(name)
                assert control["kind"] != "select" or value in control["options"], (name, control["options"])
                control["value"] = value

    def submission(self):
        out = []
        for c in self.controls:
            if c["kind"] in ("checkbox", "radio"):
                if c["checked"]:
                    out.append((c["name"], c["value"]))
            elif c["kind"] == "select":
                out.append((c["name"], c["value"] or c["options"][0]))
            else:
                out.append((c["name"], c["value"]))
        return out

    def change(self, region, **values):
        """What htmx does when a controlling input changes: post the form to the refresh URL and
        swap in the answer (the region, and the wizard's list of shown sections out of band)."""
        self.fill(**values)
        answer = self.browser.post(self.server.portal + "/apis/new/_fields", data=self.submission(), timeout=30)
        assert answer.status_code == 200, answer.text
        self.controls = [c for c in self.controls if not c["regions"] & {region, "wizard-seen"}] + Controls(
            answer.text
        ).controls

    def press(self, text, **values):
        self.fill(**values)
        (button,) = [b for b in self.buttons if b["text"] == text or b["text"].startswith(text + ":")]
        response = self.browser.post(
            self.server.portal + "/apis/new",
            allow_redirects=False,
            timeout=60,
            data=self.submission() + [(button["name"], button["value"])],
        )
        return self.load(response) if response.status_code != 302 else response

    def next(self, **values):
        response = self.press("Next", **values)
        assert response.status_code == 200, self.errors()
        return response

    def errors(self):
        """The messages shown beside the fields."""
        return [html.unescape(e) for e in re.findall(r'<p class="error" id="[^"]+">([^<]*)</p>', self.response.text)]

    def to_endpoint(self, name, path, *entrypoints, **settings):
        self.next(name=name, path=path)
        for entrypoint in entrypoints:
            self.change("entrypoint-fields", **{f"entrypoint.{entrypoint}": True})
        self.next(**settings)


def apis(server):
    return server.mgmt("GET", "/apis").json()["data"]


def created(server, response):
    assert response.status_code == 302, response.text
    return response.headers["Location"].rsplit("/", 1)[-1]


def post_until_received(server, path, stream, body=b"hello"):
    """POST through the gateway until the SSE stream (subscribed meanwhile) receives one: the
    consumer may join its broker a moment after the stream opens."""
    with ThreadPoolExecutor(1) as pool:
        event = pool.submit(next_message, stream, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            posted = requests.post(server.gateway + path, data=body, timeout=10)
            assert posted.status_code == 202, posted.text
            try:
                return event.result(timeout=0.5)
            except TimeoutError:
                continue
        raise AssertionError("the stream received nothing")


def post_and_stream(server, path):
    with requests.get(
        server.gateway + path, headers={"Accept": "text/event-stream"}, stream=True, timeout=30
    ) as stream:
        assert stream.status_code == 200
        event = post_until_received(server, path, stream)
    assert event["event"] == "message" and event["data"] == "hello", event


# ----- working APIs, one per backend -----
def test_wizard_makes_a_kafka_api_that_produces_and_consumes_at_once(server, tansu, new_topic):
    topic = new_topic()
    wizard = Wizard(server)
    assert "Create an API: General" in wizard.text
    wizard.to_endpoint("Orders on Kafka", "/" + topic, "http-post", "sse")
    wizard.change("wizard-endpoint", endpoint_type="kafka")
    # What a broker endpoint needs to work, with a producer and a consumer on the path's topic.
    assert wizard.value("shared.use") == "both"
    assert wizard.value("shared.producer.topics") == topic and wizard.value("shared.consumer.topics") == topic
    assert wizard.value("shared.security.protocol") == "PLAINTEXT"
    wizard.change("wizard-endpoint", **{"shared.security.protocol": "SASL_SSL"})
    assert wizard.value("shared.security.sasl.saslMechanism") and wizard.control("shared.security.ssl.trustStore.type")
    wizard.change("wizard-endpoint", **{"shared.security.protocol": "PLAINTEXT"})
    assert not [c for c in wizard.controls if c["name"].startswith("shared.security.sasl")]
    wizard.next(**{"cfg.bootstrapServers": tansu.bootstrap, "shared.consumer.autoOffsetReset": "earliest"})
    assert "Create an API: Plan" in wizard.text and wizard.value("plan_type") == "key-less"
    wizard.next()
    assert "Create an API: Summary" in wizard.text
    for line in (
        f"Bootstrap servers: {tansu.bootstrap}",
        f"Producer topics: {topic}",
        f"Consumer topics: {topic}",
        "Default Keyless (UNSECURED)",
    ):
        assert line in wizard.text
    api_id = created(server, wizard.press("Create and deploy"))
    server.wait_serving(api_id, 1)
    assert server.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STARTED"
    post_and_stream(server, "/" + topic)


def test_wizard_makes_a_mock_api_and_create_and_deploy_serves_at_once(server):
    wizard = Wizard(server)
    wizard.to_endpoint("Mock feed", "/wizard-mock", "http-get")
    wizard.change("wizard-endpoint", endpoint_type="mock")
    wizard.next(**{"cfg.messageContent": "from the wizard", "cfg.messageInterval": "10"})
    wizard.next()
    response = wizard.press("Create and deploy")
    api_id = created(server, response)
    page = wizard.browser.get(server.portal + response.headers["Location"])
    assert "API Mock feed created, deployed and started" in page.text
    server.wait_serving(api_id, 1)
    got = requests.get(server.gateway + "/wizard-mock?limit=2", headers=JSON, timeout=10)
    assert got.status_code == 200 and [i["content"] for i in got.json()["items"]] == ["from the wizard"] * 2


def test_wizard_makes_an_mqtt_api_that_publishes_and_subscribes(server):
    host, port = shared_broker()
    path = "/wizard-mqtt-" + uuid.uuid4().hex[:8]
    wizard = Wizard(server)
    wizard.to_endpoint("MQTT orders", path, "http-post", "sse")
    wizard.change("wizard-endpoint", endpoint_type="mqtt5")
    assert wizard.value("shared.producer.topic") == path[1:] == wizard.value("shared.consumer.topic")
    wizard.next(**{"cfg.serverHost": host, "cfg.serverPort": str(port)})
    wizard.next()
    api_id = created(server, wizard.press("Create and deploy"))
    server.wait_serving(api_id, 1)
    post_and_stream(server, path)


def test_wizard_makes_a_rabbitmq_api_that_publishes_and_consumes(server, names):
    exchange = names.exchange("wizard")
    wizard = Wizard(server)
    wizard.to_endpoint("Rabbit orders", "/" + exchange, "http-post", "sse")
    wizard.change("wizard-endpoint", endpoint_type="rabbitmq")
    assert wizard.value("shared.producer.exchange.name") == exchange == wizard.value("shared.consumer.exchange.name")
    assert wizard.value("shared.producer.routingKey") == exchange == wizard.value("shared.consumer.routingKey")
    wizard.next(
        **{
            "cfg.serverHost": "127.0.0.1",
            "cfg.serverPort": "5672",
            "shared.security.auth.username": "guest",
            "shared.security.auth.password": "guest",
        }
    )
    wizard.next()
    api_id = created(server, wizard.press("Create and deploy"))
    names.api_ids.add(api_id)
    server.wait_serving(api_id, 1)
    post_and_stream(server, "/" + exchange)


# ----- each step's refusals: 400, errors by the fields, nothing created -----
def test_each_step_refuses_bad_values_and_nothing_is_created(server):
    server.import_api(mock_api(path="/taken", name="Taken"))
    wizard = Wizard(server)
    refused = wizard.press("Next", name="", path="orders")
    assert refused.status_code == 400 and "Create an API: General" in wizard.text
    assert wizard.errors() == ["Give the API a name.", "The context path must start with '/', for example /orders."]
    assert 'aria-invalid="true" aria-describedby="name-error"' in refused.text and 'href="#path"' in refused.text
    wizard.next(name="Orders", path="/taken")

    refused = wizard.press("Next")
    assert refused.status_code == 400 and wizard.errors() == ["Choose at least one entrypoint."]
    wizard.change("entrypoint-fields", **{"entrypoint.http-post": True})
    assert wizard.control("qos.http-post")["options"] == ["none", "auto"]  # only what HTTP POST offers
    wizard.control("qos.http-post")["value"] = "at-least-once"  # a forged choice
    refused = wizard.press("Next")
    assert refused.status_code == 400 and wizard.errors() == ["HTTP POST offers the quality of service none, auto."]
    wizard.next(**{"qos.http-post": "auto"})

    wizard.change("wizard-endpoint", endpoint_type="kafka")
    refused = wizard.press("Next", **{"cfg.bootstrapServers": ""})
    assert refused.status_code == 400 and "Bootstrap servers is required" in wizard.errors()
    wizard.change("wizard-endpoint", **{"shared.use": "consumer"})
    assert not [c for c in wizard.controls if c["name"].startswith("shared.producer.topics")]
    refused = wizard.press("Next", **{"cfg.bootstrapServers": "127.0.0.1:9092"})
    assert refused.status_code == 400
    assert wizard.errors() == [
        "entrypoint http-post publishes messages, but endpoint 'Default endpoint' (kafka) of "
        "group 'Default group' is not configured to produce (Use Producer)."
    ]
    wizard.change("wizard-endpoint", **{"shared.use": "both"})
    refused = wizard.press("Next")
    assert refused.status_code == 400 and wizard.errors() == ["Producer topics is required"]
    wizard.next(**{"shared.producer.topics": "orders"})

    wizard.change("wizard-plan", plan_type="jwt")
    refused = wizard.press("Next", publicKey="not a key")
    assert refused.status_code == 400
    assert wizard.errors() == ["The public key must be in PEM form (-----BEGIN PUBLIC KEY-----)."]
    wizard.change("wizard-plan", plan_type="key-less")
    wizard.next()

    # The context path taken by another API: found when creating, shown on the General step.
    refused = wizard.press("Create")
    assert refused.status_code == 400 and "Create an API: General" in wizard.text
    assert wizard.errors() == ["The context path /taken is already used by the API 'Taken'."]
    assert [api["name"] for api in apis(server)] == ["Taken"]
    wizard.next(path="/free")
    for _ in range(3):
        wizard.next()
    api_id = created(server, wizard.press("Create"))
    assert [api["name"] for api in apis(server)] == ["Orders", "Taken"]
    assert server.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STOPPED"


def test_api_key_plan_made_by_the_wizard_refuses_calls_without_a_key(server):
    wizard = Wizard(server)
    wizard.to_endpoint("Keyed feed", "/wizard-keyed", "http-get")
    wizard.change("wizard-endpoint", endpoint_type="mock")
    wizard.next(**{"cfg.messageInterval": "10"})
    wizard.change("wizard-plan", plan_type="api-key")
    wizard.next(plan_name="Partners")
    assert "Partners (api-key)" in wizard.text
    api_id = created(server, wizard.press("Create and deploy"))
    server.wait_serving(api_id, 1)
    (plan,) = server.mgmt("GET", f"/apis/{api_id}/plans").json()["data"]
    assert plan["security"]["type"] == "API_KEY" and plan["status"] == "PUBLISHED"
    assert requests.get(server.gateway + "/wizard-keyed", headers=JSON, timeout=10).status_code == 401
    key = server.subscribe(api_id, plan["id"])["apiKey"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the gateway reads subscriptions within a poll
        keyed = requests.get(
            server.gateway + "/wizard-keyed?limit=1", timeout=10, headers={**JSON, "X-Gravitee-Api-Key": key}
        )
        if keyed.status_code == 200:
            break
        time.sleep(0.2)
    assert keyed.status_code == 200, keyed.text


def test_secrets_typed_in_a_step_stay_on_the_server_and_are_shown_as_set(server):
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="s3cr3t-jaas";'
    wizard = Wizard(server)
    wizard.to_endpoint("SASL orders", "/wizard-sasl", "http-post")
    wizard.change("wizard-endpoint", endpoint_type="kafka")
    wizard.change("wizard-endpoint", **{"shared.security.protocol": "SASL_PLAINTEXT"})
    wizard.change("wizard-endpoint", **{"shared.security.sasl.saslJaasConfig": jaas, "shared.use": "producer"})
    assert wizard.control("shared.security.sasl.saslJaasConfig")["value"] == ""  # not echoed back
    wizard.next(**{"cfg.bootstrapServers": "127.0.0.1:9092", "shared.security.sasl.saslMechanism": "PLAIN"})
    assert "s3cr3t" not in wizard.response.text and "Create an API: Plan" in wizard.text
    assert "shared.security.sasl.saslJaasConfig" not in {c["name"] for c in wizard.controls}
    assert "s3cr3t" not in wizard.response.headers.get("Set-Cookie", "")  # encrypted in the session
    wizard.press("Back")
    assert "set: leave empty to keep it" in wizard.response.text and "s3cr3t" not in wizard.response.text
    wizard.next()
    wizard.next()
    assert "SASL JAAS config: set" in wizard.text and "s3cr3t" not in wizard.response.text
    api_id = created(server, wizard.press("Create"))
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition?includeSecrets=true").json()
    shared = exported["api"]["endpointGroups"][0]["sharedConfiguration"]
    assert shared["security"]["sasl"] == {"saslMechanism": "PLAIN", "saslJaasConfig": jaas}


# ----- Deploy refuses what the endpoints cannot serve -----
def test_deploy_refuses_http_post_on_a_consumer_only_kafka_endpoint_naming_both(server):
    definition = {
        "name": "Consumer only",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": "/consumer-only"}],
                "entrypoints": [{"type": "http-post"}, {"type": "sse"}],
            }
        ],
        "endpointGroups": [
            {
                "name": "Default group",
                "type": "kafka",
                "sharedConfiguration": {"consumer": {"enabled": True, "topics": ["orders"]}},
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
    expected = (
        "entrypoint http-post publishes messages, but endpoint 'Default endpoint' (kafka) of group "
        "'Default group' is not configured to produce (Use Producer)"
    )
    api_id = server.import_api(definition)
    refused = server.mgmt("POST", f"/apis/{api_id}/deployments")
    assert refused.status_code == 400 and expected in refused.json()["message"]
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}")
    assert expected in html.unescape(page.text)
    answer = browser.post(server.portal + f"/apis/{api_id}/deploy", data={"csrf_token": csrf_token(page.text)})
    assert expected in html.unescape(answer.text)
    assert server.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["deployedRevision"] is None
    assert api_id not in server.runtime()["apis"]


def test_capabilities_follow_the_effective_shared_configuration_and_the_websocket_toggles():
    def api(entrypoint, shared=None, override=None, kind="kafka"):
        endpoint = {
            "name": "e",
            "type": kind,
            "inheritConfiguration": override is None,
            "sharedConfigurationOverride": override,
        }
        return {
            "type": "message",
            "listeners": [{"entrypoints": [entrypoint]}],
            "endpointGroups": [{"name": "g", "type": kind, "sharedConfiguration": shared, "endpoints": [endpoint]}],
        }

    consumer = {"consumer": {"enabled": True}}
    assert capabilities.problems(api({"type": "sse"}, consumer)) == []
    assert capabilities.problems(api({"type": "http-post"}, consumer)) == [
        "entrypoint http-post publishes messages, but endpoint 'e' (kafka) of group 'g' is not configured to "
        "produce (Use Producer)"
    ]
    # The override counts, not the group's, when the endpoint does not inherit.
    assert capabilities.problems(api({"type": "sse"}, consumer, override={"producer": {"enabled": True}})) == [
        "entrypoint sse delivers messages to its clients, but endpoint 'e' (kafka) of group 'g' is not "
        "configured to consume (Use Consumer)"
    ]
    subscriber_only = {"type": "websocket", "configuration": {"publisher": {"enabled": False}}}
    assert capabilities.problems(api(subscriber_only, consumer)) == []
    assert len(capabilities.problems(api({"type": "websocket"}, consumer))) == 1
    for kind in ("mqtt5", "rabbitmq", "solace"):
        assert len(capabilities.problems(api({"type": "http-get"}, {"producer": {"enabled": True}}, kind=kind))) == 1
    assert capabilities.problems(api({"type": "http-post"}, kind="mock")) == []
    assert capabilities.problems(dict(api({"type": "http-post"}, consumer), type="proxy")) == []
