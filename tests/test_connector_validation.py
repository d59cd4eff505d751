"""What the connector forms refuse at save, each with a message naming the field, nothing saved."""

import pytest

from gateway_runtime import registry
from support.apis import kafka_group_api, mock_api
from support.pki import STORE_PW, b64
from support.portal import KEY, TRUST, EndpointsPage, GroupPage, field


def refused(page, form, name, words):
    """Saving `form` is refused with `words` tied to input `name`; the group is unchanged."""
    before = page.shared(secrets=True)
    bad = page.save(**form)
    assert bad.status_code == 400, bad.text
    assert f'href="#{name}"' in bad.text and words in bad.text, (name, words)
    assert f'id="{name}-error"' in bad.text
    assert page.shared(secrets=True) == before


def test_a_bootstrap_server_port_out_of_range_is_refused(site):
    api_id = site.import_api(kafka_group_api())
    portal = EndpointsPage(site, api_id)
    url = site.portal + f"/apis/{api_id}/endpoints/{portal.endpoint_id}/edit"
    bad = portal.browser.post(
        url,
        data={
            "csrf_token": portal.token,
            "name": "b1",
            "weight": "1",
            "inheritConfiguration": "on",
            "cfg.bootstrapServers": "127.0.0.1:99999",
        },
    )
    assert bad.status_code == 400
    assert "Bootstrap servers: &#39;127.0.0.1:99999&#39; has port 99999, not between 1 and 65535" in bad.text
    assert 'href="#cfg.bootstrapServers"' in bad.text
    stored = site.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert stored["configuration"] == {"bootstrapServers": "127.0.0.1:9092"}


def ssl(**fields):
    return field({"security.protocol": "SSL", "use": "consumer", "consumer.topics": "orders", **fields})


@pytest.mark.parametrize(
    "source, name, words",
    [
        ("location", TRUST + "location", "Trust store location is required"),
        ("certificates", TRUST + "certificates", "Trust store certificates is required"),
    ],
)
def test_a_jks_trust_store_needs_the_field_of_its_pair(site, source, name, words):
    page = GroupPage(site, site.import_api(kafka_group_api()))
    refused(page, ssl(**{TRUST + "type": "JKS", TRUST + "with": source}), "shared." + name, words)


@pytest.mark.parametrize(
    "fields, name, words",
    [
        (
            {TRUST + "type": "PEM", TRUST + "with": "certificates", TRUST + "certificates": "garbage"},
            TRUST + "certificates",
            "not PEM certificates",
        ),
        (
            {
                TRUST + "type": "JKS",
                TRUST + "with": "location",
                TRUST + "location": "trust.jks",
                TRUST + "password": "wrong",
            },
            TRUST + "password",
            "does not open with this password",
        ),
        (
            {TRUST + "type": "PEM", TRUST + "with": "location", TRUST + "location": "missing.pem"},
            TRUST + "location",
            "no readable file",
        ),
        (
            {TRUST + "type": "PEM", TRUST + "with": "location", TRUST + "location": "../../etc/passwd"},
            TRUST + "location",
            "must lie under GATEHOUSE_CERTS_DIR",
        ),
        ({KEY + "type": "PEM", KEY + "with": "key", KEY + "key": "not a key"}, KEY + "key", "not a PEM private key"),
        (
            {KEY + "type": "PKCS12", KEY + "with": "location", KEY + "location": "client.p12"},
            KEY + "password",
            "Key store password is required",
        ),
        (
            {
                KEY + "type": "PKCS12",
                KEY + "with": "location",
                KEY + "location": "client.p12",
                KEY + "password": "nope",
            },
            KEY + "password",
            "does not open with this password",
        ),
    ],
)
def test_kafka_stores_are_checked_at_save(site, fields, name, words):
    page = GroupPage(site, site.import_api(kafka_group_api()))
    refused(page, ssl(**fields), "shared." + name, words)


def test_every_problem_of_a_save_is_named_at_once(site):
    """A field that fails its own check does not hide what the store checks find elsewhere."""
    page = GroupPage(site, site.import_api(kafka_group_api()))
    before = page.shared(secrets=True)
    bad = page.save(
        **ssl(
            **{
                TRUST + "type": "PEM",
                TRUST + "with": "location",
                TRUST + "location": "../../etc/passwd",
                KEY + "type": "PEM",
                KEY + "with": "key",
                KEY + "key": "not a key",
                KEY + "certificateChain": "not a certificate",
            }
        )
    )
    assert bad.status_code == 400
    assert "must lie under GATEHOUSE_CERTS_DIR" in bad.text and "not a PEM private key" in bad.text
    for name in (TRUST + "location", KEY + "key"):
        assert f'href="#shared.{name}"' in bad.text and f'id="shared.{name}-error"' in bad.text
    assert page.shared(secrets=True) == before


def test_good_stores_save(site, material):
    page = GroupPage(site, site.import_api(kafka_group_api()))
    saved = page.save(
        **ssl(
            **{
                TRUST + "type": "PKCS12",
                TRUST + "with": "certificates",
                TRUST + "certificates": b64(material.p12_truststore()),
                TRUST + "password": STORE_PW,
                KEY + "type": "PEM",
                KEY + "with": "key",
                KEY + "key": material.key_pem(),
                KEY + "certificateChain": material.chain_pem,
            }
        )
    )
    assert "Endpoint group brokers saved." in saved.text


def mqtt_api():
    definition = mock_api(path="/mqtt")
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "mqtt5",
            "endpoints": [
                {"name": "m1", "type": "mqtt5", "configuration": {"serverHost": "127.0.0.1", "serverPort": "1883"}}
            ],
        }
    ]
    return definition


def test_mqtt_producer_topics_refuse_wildcards(site):
    page = GroupPage(site, site.import_api(mqtt_api()))
    refused(
        page,
        field({"use": "producer", "producer.topic": "orders/#", "reconnectAttempt": "3"}),
        "shared.producer.topic",
        "a topic to publish to cannot hold the wildcards + or #",
    )
    refused(
        page,
        field({"use": "producer", "producer.topic": "orders/+/x"}),
        "shared.producer.topic",
        "cannot hold the wildcards",
    )


def test_ports_out_of_range_are_refused(site):
    api_id = site.import_api(mqtt_api())
    portal = EndpointsPage(site, api_id)
    bad = portal.browser.post(
        site.portal + f"/apis/{api_id}/endpoints/{portal.endpoint_id}/edit",
        data={
            "csrf_token": portal.token,
            "name": "m1",
            "weight": "1",
            "inheritConfiguration": "on",
            "cfg.serverHost": "127.0.0.1",
            "cfg.serverPort": "99999",
        },
    )
    assert bad.status_code == 400 and "Server port: &#39;99999&#39; is not a port number (1 to 65535)" in bad.text
    _, errors = registry.endpoint("http-proxy").configuration.validate({"target": "http://backend:99999/"})
    assert errors == {"target": "Target URL: 'http://backend:99999/' has a port that is not between 1 and 65535"}
