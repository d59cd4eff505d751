"""Kafka over TLS end to end: the gateway (security protocol SSL) -> stunnel4 (TLS, a certificate
from a CA made here) -> Tansu (plain, advertising the stunnel port). Trust stores as PEM, JKS and
PKCS12, by location under GATEHOUSE_CERTS_DIR and by content; a wrong CA is told to the client."""

import base64
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kafka.admin import KafkaAdminClient, NewTopic

from support.apis import message_api
from support.gatehouse import free_port, launch, wait_for_port
from support.pki import STORE_PASSWORD, STUNNEL, Pki
from support.tansu import Tansu

JSON = {"Accept": "application/json"}

pytestmark = pytest.mark.skipif(not os.path.exists(STUNNEL), reason="needs Debian's stunnel4")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("certs"))


class TlsBroker:
    """Tansu on a plain port, behind stunnel4 on a TLS port that Tansu advertises."""

    def __init__(self, workdir, pki):
        self.workdir = workdir
        self.pki = pki
        self.tls_port = free_port()
        self.tansu = Tansu(workdir, advertised_port=self.tls_port)
        self.bootstrap = f"127.0.0.1:{self.tls_port}"
        self.stunnel = None

    def start(self):
        self.tansu.start()
        config = self.workdir / "stunnel.conf"
        config.write_text(
            "\n".join(
                [
                    "foreground = yes",
                    "pid =",
                    "debug = notice",
                    "[kafka]",
                    f"accept = 127.0.0.1:{self.tls_port}",
                    f"connect = 127.0.0.1:{self.tansu.port}",
                    f"cert = {self.pki.server_pem}",
                    f"key = {self.pki.server_key_pem}",
                    "",
                ]
            )
        )
        self.stunnel_log = open(self.workdir / "stunnel.log", "w")
        self.stunnel = subprocess.Popen(
            [STUNNEL, str(config)], stdout=self.stunnel_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for_port(self.tls_port, self.stunnel, timeout=10)
        return self

    def create_topic(self):
        """A one-partition topic, created over TLS (which also proves the TLS set-up)."""
        name = f"tls-{uuid.uuid4().hex[:10]}"
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            security_protocol="SSL",
            ssl_cafile=str(self.pki.certs / "ca.pem"),
            bootstrap_timeout_ms=5000,
        )
        try:
            admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        finally:
            admin.close()
        return name

    def stop(self):
        if self.stunnel is not None and self.stunnel.poll() is None:
            self.stunnel.terminate()
            try:
                self.stunnel.wait(5)
            except subprocess.TimeoutExpired:
                self.stunnel.kill()
                self.stunnel.wait()
            self.stunnel_log.close()
        self.tansu.stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, pki):
    broker = TlsBroker(tmp_path_factory.mktemp("tls-broker"), pki).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, tls_broker):
    """One Gatehouse process for the module, with GATEHOUSE_CERTS_DIR set; each test its own APIs.
    (It needs tls_broker so that it stops first: its Kafka clients close while the broker is up.)"""
    workdir = tmp_path_factory.mktemp("gateway")
    server = launch(workdir, GATEHOUSE_CERTS_DIR=str(pki.certs))
    yield server
    server.stop()


def tls_api(bootstrap, topic, path, trust_store):
    get = {
        "messagesLimitCount": 1,
        "messagesLimitDurationMs": 9000,
        "headersInPayload": False,
        "metadataInPayload": True,
    }
    shared = {
        "security": {"protocol": "SSL", "ssl": {"trustStore": trust_store}},
        "producer": {"enabled": True, "topics": [topic]},
        "consumer": {"enabled": True, "topics": [topic], "autoOffsetReset": "earliest"},
    }
    entrypoints = [{"type": "http-get", "configuration": get}, {"type": "http-post", "configuration": {}}]
    return message_api(
        "kafka", path, entrypoints, shared, {"bootstrapServers": bootstrap}, f"Kafka TLS {path}", "kafka"
    )


def trust_stores(pki):
    """{variant: trust store} for every way a trust store can be given."""
    return {
        "pem-location": {"type": "PEM", "location": "ca.pem"},
        "pem-absolute-location": {"type": "PEM", "location": str(pki.certs / "ca.pem")},
        "pem-certificates": {"type": "PEM", "certificates": pki.read("ca.pem").decode()},
        "jks-location": {"type": "JKS", "location": "truststore.jks", "password": STORE_PASSWORD},
        "jks-content": {
            "type": "JKS",
            "certificates": base64.b64encode(pki.read("truststore.jks")).decode(),
            "password": STORE_PASSWORD,
        },
        "pkcs12-location": {"type": "PKCS12", "location": "truststore.p12", "password": STORE_PASSWORD},
        "pkcs12-content": {
            "type": "PKCS12",
            "certificates": base64.b64encode(pki.read("truststore.p12")).decode(),
            "password": STORE_PASSWORD,
        },
    }


ROUND_TRIPS = [
    ("PEM", ["pem-location", "pem-absolute-location", "pem-certificates"]),
    ("JKS", ["jks-location", "jks-content"]),
    ("PKCS12", ["pkcs12-location", "pkcs12-content"]),
]


def consume(server, path, client="tls"):
    return requests.get(server.gateway + path, headers={**JSON, "X-Gravitee-Client-Identifier": client}, timeout=20)


@pytest.mark.parametrize("kind, variants", ROUND_TRIPS, ids=[kind for kind, _ in ROUND_TRIPS])
def test_trust_store_round_trip_over_tls(gateway, tls_broker, pki, kind, variants):
    """Each way of giving the store: an API of its own on a topic of its own; the message posted
    through the gateway comes back through the gateway, over TLS both ways."""
    stores = trust_stores(pki)
    apis = []
    for variant in variants:
        topic, path = tls_broker.create_topic(), f"/tls-{variant}"
        gateway.deploy_api(tls_api(tls_broker.bootstrap, topic, path, stores[variant]))
        apis.append((variant, topic, path))
    for variant, _, path in apis:
        posted = requests.post(gateway.gateway + path, data=f"over TLS via {variant}".encode(), timeout=20)
        assert posted.status_code == 202, (variant, posted.text)
    # The first poll of a client waits for its group join (~3 s): the variants poll side by side.
    with ThreadPoolExecutor(len(apis)) as pool:
        responses = list(pool.map(lambda api: consume(gateway, api[2]), apis))
    for (variant, topic, _), got in zip(apis, responses, strict=True):
        assert got.status_code == 200, (variant, got.text)
        body = got.json()
        assert "error" not in body, (variant, body)
        assert [i["content"] for i in body["items"]] == [f"over TLS via {variant}"], (variant, body)
        assert body["items"][0]["metadata"]["topic"] == topic


def test_broker_certificate_from_another_ca_is_a_clear_502_and_does_not_hang(gateway, tls_broker):
    topic, path = tls_broker.create_topic(), "/tls-wrong-ca"
    gateway.deploy_api(tls_api(tls_broker.bootstrap, topic, path, {"type": "PEM", "location": "wrong-ca.pem"}))

    started = time.monotonic()
    posted = requests.post(gateway.gateway + path, data=b"never delivered", timeout=30)
    post_took = time.monotonic() - started
    started = time.monotonic()
    got = consume(gateway, path, client="wrong-ca")
    get_took = time.monotonic() - started

    for response, took in ((posted, post_took), (got, get_took)):
        assert response.status_code == 502, response.text
        message = response.json()["message"]
        assert message.startswith("The endpoint failed: "), message
        assert "127.0.0.1:" + str(tls_broker.tls_port) in message, message
        assert "certificate" in message.lower() and "verif" in message.lower(), message
        assert "trust store" in message.lower(), message
        assert "issued by CN=Gatehouse test CA" in message, message  # what to add to the trust store
        assert took < 10, f"{took:.1f} s: {message}"


@pytest.mark.parametrize("variant, kind", [("jks-content", "JKS"), ("pkcs12-location", "PKCS12")])
def test_trust_store_with_a_wrong_password_is_imported_but_blocks_deploy(gateway, tls_broker, pki, variant, kind):
    store = dict(trust_stores(pki)[variant], password="not-the-password")
    definition = tls_api(tls_broker.bootstrap, "never-used", f"/tls-wrong-password-{kind}", store)
    api_id = gateway.import_api(definition)  # 201: kept, so that it can be mended in the portal
    blocking = gateway.mgmt("GET", f"/apis/{api_id}").json()["gatehouse"]["blockingParts"]
    assert len(blocking) == 1 and blocking[0].startswith("group kafka: "), blocking
    assert f"the {kind} store does not open with this password: check the password" in blocking[0], blocking
    refused = gateway.mgmt("POST", f"/apis/{api_id}/deployments")
    assert refused.status_code == 400, refused.text
    assert f"the {kind} store does not open with this password" in refused.json()["message"], refused.text
    assert gateway.mgmt("POST", f"/apis/{api_id}/_start").status_code == 400
    assert gateway.mgmt("GET", f"/apis/{api_id}").json()["state"] == "STOPPED"


def test_tls_against_a_plain_listener_is_a_clear_502_not_a_hang(gateway, tansu):
    """The shared broker of the suite has no TLS: a TLS client would wait there for ever."""
    gateway.deploy_api(tls_api(tansu.bootstrap, "plain", "/tls-plain", {"type": "PEM", "location": "ca.pem"}))
    started = time.monotonic()
    posted = requests.post(gateway.gateway + "/tls-plain", data=b"x", timeout=30)
    assert posted.status_code == 502 and time.monotonic() - started < 12
    assert "did not answer a TLS handshake" in posted.json()["message"]
