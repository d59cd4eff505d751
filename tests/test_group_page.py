"""The endpoint group page (Backend services -> the group -> Edit): the shared configuration from
the connector's declaration, the seed's choices one at a time, and what the page says after a save."""

import re

import pytest

from support.apis import kafka_group_api
from support.pki import STORE_PW, b64
from support.portal import KEY, TRUST, GroupPage, field

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="pw";'


def test_the_group_page_saves_the_shared_configuration_and_the_services_page_sums_it_up(site):
    api_id = site.import_api(kafka_group_api())
    page = GroupPage(site, api_id)
    # A group that does neither yet shows "both", so that its producer and consumer can be set up.
    assert '<option value="both" selected>Use Producer and Consumer</option>' in page.page.text
    for legend in ("Security", "Producer and consumer", "Producer", "Consumer"):
        assert f"<legend>{legend}</legend>" in page.page.text

    saved = page.save(
        **field(
            {
                "security.protocol": "SASL_PLAINTEXT",
                "security.sasl.saslMechanism": "PLAIN",
                "security.sasl.saslJaasConfig": JAAS,
                "use": "both",
                "producer.topics": "orders",
                "consumer.topics": "orders",
                "consumer.autoOffsetReset": "earliest",
            }
        )
    )
    assert saved.status_code == 200 and "Endpoint group brokers saved." in saved.text
    assert "SASL_PLAINTEXT · PLAIN · producer → orders · consumer ← orders, earliest" in saved.text
    assert '<td class="target">127.0.0.1:9092</td>' in saved.text  # each endpoint's target
    group = page.shared()
    assert group["sharedConfiguration"]["producer"] == {"enabled": True, "topics": ["orders"]}
    assert group["sharedConfiguration"]["consumer"]["enabled"] is True
    assert group["sharedConfiguration"]["security"]["sasl"]["saslJaasConfig"] == "********"
    assert "use" not in group["sharedConfiguration"]  # the form's choice is never stored

    # Bad values: 400 with each message, tied to its input, in a summary; nothing saved.
    before = page.shared(secrets=True)
    bad = page.save(group_name="", **field({"security.protocol": "PLAINTEXT", "use": "producer"}))
    assert bad.status_code == 400
    assert 'id="error-summary"' in bad.text and 'href="#group_name"' in bad.text
    assert 'href="#shared.producer.topics"' in bad.text and "Producer topics is required" in bad.text
    assert re.search(
        r'id="shared\.producer\.topics"[^>]*aria-invalid="true"[^>]*'
        r'aria-describedby="shared\.producer\.topics-help shared\.producer\.topics-error"',
        bad.text,
    )
    assert page.shared(secrets=True) == before

    # Consumer only: the producer's section goes, Gravitee's flags say so.
    assert "Endpoint group brokers saved." in page.save(**field({"use": "consumer", "consumer.topics": "orders"})).text
    shared = page.shared()["sharedConfiguration"]
    assert shared["producer"] == {"enabled": False} and shared["consumer"]["enabled"] is True


def test_a_new_endpoint_inherits_the_group_configuration_by_default(site):
    api_id = site.import_api(kafka_group_api())
    page = GroupPage(site, api_id)
    new = page.browser.get(site.portal + f"/apis/{api_id}/groups/{page.group_id}/endpoints/new")
    assert re.search(r'id="inheritConfiguration" checked', new.text)


# The seed's lists: (type, with) -> exactly the fields shown.
TRUST_PAIRS = {
    ("PEM", "location"): {"location"},
    ("PEM", "certificates"): {"certificates"},
    ("JKS", "location"): {"location", "password"},
    ("JKS", "certificates"): {"certificates", "password"},
    ("PKCS12", "location"): {"location", "password"},
    ("PKCS12", "certificates"): {"certificates", "password"},
}
KEY_PAIRS = {
    ("PEM", "location"): {"certificateChain", "location"},
    ("PEM", "key"): {"certificateChain", "key", "keyPassword"},
    ("JKS", "location"): {"location", "password"},
    ("JKS", "key"): {"key", "keyPassword", "password"},
    ("PKCS12", "location"): {"location", "password"},
    ("PKCS12", "key"): {"key", "keyPassword", "password"},
}


def test_each_store_pair_shows_exactly_the_seeds_fields(site):
    page = GroupPage(site, site.import_api(kafka_group_api()))
    assert not {f for f in page.fields(**field({"security.protocol": "PLAINTEXT"})) if ".ssl." in f}
    for prefix, pairs in ((TRUST, TRUST_PAIRS), (KEY, KEY_PAIRS)):
        none = page.fields(**field({"security.protocol": "SSL", prefix + "type": "NONE"}))
        assert {f for f in none if f.startswith(prefix)} == {prefix + "type"}
        for (kind, source), expected in pairs.items():
            fields = page.fields(**field({"security.protocol": "SSL", prefix + "type": kind, prefix + "with": source}))
            assert {f for f in fields if f.startswith(prefix)} == {prefix + n for n in {"type", "with", *expected}}, (
                kind,
                source,
            )


@pytest.mark.parametrize(
    "store, pair",
    [
        ({"trustStore": {"type": "PEM", "location": "ca.pem"}}, (TRUST, "location")),
        ({"trustStore": {"type": "PEM", "certificates": "CERTS"}}, (TRUST, "certificates")),
        ({"trustStore": {"type": "JKS", "location": "trust.jks", "password": STORE_PW}}, (TRUST, "location")),
        ({"trustStore": {"type": "PKCS12", "certificates": "P12", "password": STORE_PW}}, (TRUST, "certificates")),
        ({"keyStore": {"type": "PEM", "location": "key.pem", "certificateChain": "CHAIN"}}, (KEY, "location")),
        ({"keyStore": {"type": "PEM", "key": "KEY", "certificateChain": "CHAIN"}}, (KEY, "key")),
        ({"keyStore": {"type": "PKCS12", "location": "client.p12", "password": STORE_PW}}, (KEY, "location")),
        ({"keyStore": {"type": "PKCS12", "key": "P12KEY", "password": STORE_PW}}, (KEY, "key")),
    ],
)
def test_an_imported_store_shows_its_pair_and_exports_unchanged(site, material, store, pair):
    content = {
        "CERTS": material.ca_pem,
        "P12": b64(material.p12_truststore()),
        "CHAIN": material.chain_pem,
        "KEY": material.key_pem(),
        "P12KEY": b64(material.p12_keystore()),
    }
    store = {name: {k: content.get(v, v) for k, v in part.items()} for name, part in store.items()}
    shared = {"security": {"protocol": "SSL", "ssl": store}, "consumer": {"enabled": True, "topics": ["t"]}}
    api_id = site.import_api(kafka_group_api(shared))
    page = GroupPage(site, api_id)
    prefix, source = pair
    assert re.search(
        rf'id="shared\.{re.escape(prefix)}with"[^>]*>.*?<option value="{source}" selected>', page.page.text, re.DOTALL
    )
    exported = page.shared(secrets=True)["sharedConfiguration"]
    assert exported["security"]["ssl"] == store  # Gravitee's fields, unchanged, no form choice among them
    # Saved from the page as it is shown, the store comes back the same.
    kind = next(iter(store.values()))["type"]
    form = field(
        {
            "security.protocol": "SSL",
            "use": "consumer",
            "consumer.topics": "t",
            prefix + "type": kind,
            prefix + "with": source,
        }
    )
    for name, value in next(iter(store.values())).items():
        if name != "type" and name not in ("password", "key", "keyPassword"):  # secrets: left empty, kept
            form[f"shared.{prefix}{name}"] = value
    saved = page.save(**form)
    assert "Endpoint group brokers saved." in saved.text, saved.text
    assert page.shared(secrets=True)["sharedConfiguration"]["security"]["ssl"] == store


def test_typed_secrets_are_kept_after_a_failed_save_and_never_shown(site, material):
    api_id = site.import_api(kafka_group_api())
    page = GroupPage(site, api_id)
    form = field(
        {
            "security.protocol": "SASL_SSL",
            "security.sasl.saslMechanism": "PLAIN",
            "security.sasl.saslJaasConfig": JAAS,
            TRUST + "type": "PKCS12",
            TRUST + "with": "certificates",
            TRUST + "certificates": b64(material.p12_truststore()),
            TRUST + "password": STORE_PW,
            "use": "consumer",
            "consumer.topics": "",
        }
    )
    bad = page.save(**form)
    assert bad.status_code == 400 and "Give the topics to consume" in bad.text
    assert STORE_PW not in bad.text and "PlainLoginModule" not in bad.text
    for name in ("security.sasl.saslJaasConfig", TRUST + "password"):
        assert re.search(rf'id="shared\.{re.escape(name)}"[^>]*placeholder="set: leave empty to keep it"', bad.text)
    # The next try leaves them empty: they were kept on the server for this form.
    form.update(
        {"shared.consumer.topics": "orders", "shared.security.sasl.saslJaasConfig": "", f"shared.{TRUST}password": ""}
    )
    saved = page.save(**form)
    assert "Endpoint group brokers saved." in saved.text, saved.text
    security = page.shared(secrets=True)["sharedConfiguration"]["security"]
    assert security["sasl"]["saslJaasConfig"] == JAAS and security["ssl"]["trustStore"]["password"] == STORE_PW
