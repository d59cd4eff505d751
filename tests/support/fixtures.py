"""The shared Gravitee v4 fixtures (shared/ lies beside the checkout): loading one, and rewriting its
placeholders to the test's brokers and topics of its own."""

import copy
import json

import requests

from support.gatehouse import ROOT
from support.mosquitto import unique_topic

FIXTURES = ROOT.parent / "shared" / "gravitee-v4-fixtures"
KAFKA_PLACEHOLDER = "bootstrap-server"


def load(relative):
    return json.loads((FIXTURES / relative).read_text())


def kafka_endpoints(definition):
    for group in definition["endpointGroups"]:
        for endpoint in group.get("endpoints", []):
            if endpoint.get("type") == "kafka":
                yield group, endpoint


def rewrite_kafka(definition, bootstrap, new_topic=None):
    """A copy with the placeholder bootstrap servers -> `bootstrap`; with new_topic, every topic it
    names -> a fresh one (consistently). Returns (definition, {old topic: new topic})."""
    definition = copy.deepcopy(definition)
    topics = {}
    for group, endpoint in kafka_endpoints(definition):
        if endpoint.get("configuration", {}).get("bootstrapServers") == KAFKA_PLACEHOLDER:
            endpoint["configuration"]["bootstrapServers"] = bootstrap
        if new_topic is None:
            continue
        for shared in (group.get("sharedConfiguration"), endpoint.get("sharedConfigurationOverride")):
            for side in ("consumer", "producer"):
                settings = (shared or {}).get(side) or {}
                if isinstance(settings.get("topics"), list):
                    settings["topics"] = [topics.setdefault(t, new_topic()) for t in settings["topics"]]
    return definition, topics


def rewrite_mqtt(relative, broker):
    """The fixture at `relative`, its placeholder broker -> `broker` and each topic -> one of this test's.
    Returns (definition, {old topic: new topic})."""
    definition = load(relative)
    topics = {}
    for group in definition["endpointGroups"]:
        for endpoint in group.get("endpoints", []):
            config = endpoint.get("configuration") or {}
            if config.get("serverHost") in ("mqtt5-host", "localhost"):
                config["serverHost"] = broker[0]
            if config.get("serverPort") == "mqtt5-port":
                config["serverPort"] = str(broker[1])
            for shared in (group.get("sharedConfiguration"), endpoint.get("sharedConfigurationOverride")):
                for side in ("consumer", "producer"):
                    settings = (shared or {}).get(side) or {}
                    if settings.get("topic"):
                        settings["topic"] = topics.setdefault(settings["topic"], unique_topic(settings["topic"]))
    return definition, topics


def assert_refused_by_the_test_kit(url):
    """A POST to an http-post entrypoint whose flow has the test kit's interrupt-message-request-phase:
    412, its message as text unless the client accepts JSON."""
    plain = requests.post(url, data=b"refused", timeout=15, headers={"Accept": None})
    assert plain.status_code == 412, plain.text
    assert plain.headers["Content-Type"].startswith("text/plain") and plain.text == "An error occurred"
    for accept in ("application/json", "*/*"):
        refused = requests.post(url, data=b"refused", timeout=15, headers={"Accept": accept})
        assert refused.status_code == 412, refused.text
        assert refused.json() == {"message": "An error occurred", "http_status_code": 412}
