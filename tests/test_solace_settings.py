"""The Solace endpoint's settings: what the portal form and an import accept and refuse (URL,
topics with Solace's wildcards, authentication toggle, TLS trust store), checked through the
management API of a real server, and the connection settings the worker is given."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway_runtime.endpoints.solace import SPEC, SolaceEndpoint
from portal.connector_forms import from_form
from support.apis import solace_api


@pytest.fixture
def server(shared_server):
    return shared_server


def blocking(server, api):
    response = server.mgmt("POST", "/apis/_import/definition", json=api)
    assert response.status_code == 201, response.text
    return response.json()["gatehouse"]["blockingParts"]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("tcp://broker.example:55555", None),
        ("tcps://10.0.0.1", None),
        ("tcp://[::1]:55555", None),
        ("http://broker:55555", "URL: 'http://broker:55555' must be tcp://host[:port] or tcps://host[:port]"),
        ("broker:55555", "URL: 'broker:55555' must be tcp://host[:port] or tcps://host[:port]"),
        ("tcp://broker:70000", "URL: 'tcp://broker:70000' port 70000 is not between 1 and 65535"),
    ],
)
def test_url_must_be_tcp_or_tcps(server, url, problem):
    assert blocking(server, solace_api(url=url, path="/u")) == ([f"endpoint broker: {problem}"] if problem else [])
    server.delete_all_apis()


@pytest.mark.parametrize(
    "side, topic, problem",
    [
        ("consumer", "orders/*/eu", None),
        ("consumer", "orders/eu*", None),
        ("consumer", "orders/>", None),
        ("consumer", "orders/>/eu", "> must be the whole last level (as in orders/>)"),
        ("consumer", "orders/e*u", "* must end a level (as in orders/*/eu or orders/eu*)"),
        ("consumer", "orders//eu", "must not have an empty level (// or a leading or trailing /)"),
        ("producer", "orders/eu", None),
        ("producer", "orders/*", "a topic to publish to cannot hold the wildcards * or >"),
        ("producer", "orders/>", "a topic to publish to cannot hold the wildcards * or >"),
        ("producer", "x" * 251, "longer than Solace's limit of 250 bytes"),
    ],
)
def test_topics_are_checked_with_solace_wildcards(side, topic, problem):
    values = {"producer": {"enabled": True, "topics": ["p/ok"]}, "consumer": {"enabled": True, "topics": ["c/ok"]}}
    values[side]["topics"] = ["fine/one", topic]
    _, errors = SPEC.shared.validate(values)
    assert errors == ({f"{side}.topics": f"Topic '{topic}': {problem}"} if problem else {})


def test_form_sections_follow_their_toggles():
    form = {
        "s.producer.enabled": "on",
        "s.producer.topics": "a/b\nc/d",
        "s.producer.messageExpiryInterval": "30",
        "s.consumer.topics": "ignored/while/off",
        "s.security.auth.username": "user",
        "s.security.auth.password": "pw",
    }
    values, errors = from_form(SPEC.shared, form, "s.")
    assert errors == {}
    assert values["producer"] == {
        "enabled": True,
        "topics": ["a/b", "c/d"],
        "retained": False,
        "messageExpiryInterval": 30,
    }
    assert values["consumer"] == {"enabled": False}
    assert values["security"]["auth"] == {"enabled": False}  # the toggle is off: no credentials kept
    values, _ = from_form(SPEC.shared, {**form, "s.security.auth.enabled": "on"}, "s.")
    assert values["security"]["auth"] == {"enabled": True, "username": "user", "password": "pw"}
    _, errors = from_form(SPEC.shared, {"s.consumer.enabled": "on"}, "s.")
    assert errors == {"s.consumer.topics": "Consumer topics is required"}


def test_worker_connection_settings_credentials_and_tls_trust_directory():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    shared = SPEC.shared.with_defaults(
        {
            "security": {
                "auth": {"username": "u", "password": "p"},
                "ssl": {"hostnameVerifier": False, "trustStore": {"type": "PEM", "content": pem}},
            }
        }
    )
    endpoint = SolaceEndpoint(SPEC.configuration.with_defaults({"url": "tcps://broker:55443", "vpnName": "v"}), shared)
    try:
        settings = endpoint.service()
        assert {k: settings[k] for k in ("url", "vpn", "username", "password", "hostnameVerifier")} == {
            "url": "tcps://broker:55443",
            "vpn": "v",
            "username": "u",
            "password": "p",
            "hostnameVerifier": False,
        }
        # The Solace API trusts a directory of PEM files: the store's CA is one of them.
        [written] = Path(settings["trustStore"]).iterdir()
        assert x509.load_pem_x509_certificate(written.read_bytes()) == cert
        plain = SolaceEndpoint(
            SPEC.configuration.with_defaults({"url": "tcp://broker", "vpnName": "v"}),
            SPEC.shared.with_defaults({"security": {"auth": {"enabled": False, "username": "u"}}}),
        )
        assert plain.service() == {"key": plain.key, "url": "tcp://broker", "vpn": "v"}
        plain.close()
    finally:
        endpoint.close()
    assert not Path(settings["trustStore"]).exists()  # the PEM file lives as long as the endpoint
