"""The Kafka endpoint form: its conditional sections and what is checked at save."""

from support.apis import mock_api
from support.portal import EndpointsPage, connector_fields

JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="s3cret";'


def kafka_group_api():
    definition = mock_api(path="/k")
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "kafka",
            "endpoints": [
                {
                    "name": "main",
                    "type": "kafka",
                    "inheritConfiguration": False,
                    "configuration": {"bootstrapServers": "localhost:9092"},
                    "sharedConfigurationOverride": {"consumer": {"enabled": True, "topics": ["orders"]}},
                }
            ],
        }
    ]
    return definition


def test_kafka_form_sections_follow_the_toggles_and_save_checks_the_settings(server):
    api_id = server.import_api(kafka_group_api())
    portal = EndpointsPage(server, api_id)
    browser, token, endpoint_id, refresh = portal.browser, portal.token, portal.endpoint_id, portal.refresh

    edit = browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit")
    shown = connector_fields(edit.text)
    assert {
        "cfg.bootstrapServers",
        "shared.security.protocol",
        "shared.use",
        "shared.consumer.topics",
        "shared.consumer.autoOffsetReset",
    } <= shown
    assert '<option value="consumer" selected>Use Consumer</option>' in edit.text  # derived from consumer.enabled
    assert "shared.producer.topics" not in shown and "shared.security.sasl.saslMechanism" not in shown

    def section(**form):
        return connector_fields(browser.post(refresh, data={"csrf_token": token, **form}).text)

    producer = section(**{"shared.use": "producer"})
    assert "shared.producer.topics" in producer and "shared.consumer.topics" not in producer
    assert {"shared.producer.topics", "shared.consumer.topics"} <= section(**{"shared.use": "both"})
    sasl = section(**{"shared.security.protocol": "SASL_SSL"})
    assert {
        "shared.security.sasl.saslMechanism",
        "shared.security.sasl.saslJaasConfig",
        "shared.security.ssl.trustStore.type",
    } <= sasl
    assert "shared.security.ssl.trustStore.password" not in sasl
    jks = section(**{"shared.security.protocol": "SSL", "shared.security.ssl.trustStore.type": "JKS"})
    assert {"shared.security.ssl.trustStore.location", "shared.security.ssl.trustStore.password"} <= jks
    assert "shared.security.ssl.trustStore.certificates" not in jks and "shared.security.sasl.saslMechanism" not in jks
    jks = section(
        **{
            "shared.security.protocol": "SSL",
            "shared.security.ssl.trustStore.type": "JKS",
            "shared.security.ssl.trustStore.with": "certificates",
        }
    )
    assert {"shared.security.ssl.trustStore.certificates", "shared.security.ssl.trustStore.password"} <= jks
    assert "shared.security.ssl.trustStore.location" not in jks
    pem = section(**{"shared.security.protocol": "SSL", "shared.security.ssl.trustStore.type": "PEM"})
    assert "shared.security.ssl.trustStore.password" not in pem

    form = {
        "csrf_token": token,
        "name": "main",
        "weight": "1",
        "cfg.bootstrapServers": "broker one",
        "shared.security.protocol": "SASL_PLAINTEXT",
        "shared.security.sasl.saslMechanism": "PLAIN",
        "shared.security.sasl.saslJaasConfig": JAAS,
        "shared.use": "consumer",
        "shared.consumer.topicPattern": "orders-(",
    }
    bad = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data=form)
    assert bad.status_code == 400
    assert "&#39;broker one&#39; is not host:port" in bad.text
    form["cfg.bootstrapServers"] = "broker1:9092,broker2:9093"
    bad = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data=form)
    assert (
        "SASL JAAS config: SASL mechanism PLAIN needs the login module org.apache.kafka.common.security.plain"
        in bad.text
    )
    assert "s3cret" not in bad.text  # a secret is never echoed back
    form["shared.security.sasl.saslMechanism"] = "SCRAM-SHA-512"
    bad = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data=form)
    assert "Topic pattern: not a regular expression" in bad.text
    stored = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert stored["configuration"] == {"bootstrapServers": "localhost:9092"}  # nothing saved so far

    form["shared.consumer.topicPattern"] = "orders-.*"
    saved = browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data=form)
    assert "Endpoint main saved." in saved.text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    shared = exported["api"]["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]
    assert shared["security"] == {
        "protocol": "SASL_PLAINTEXT",
        "sasl": {"saslMechanism": "SCRAM-SHA-512", "saslJaasConfig": "********"},
    }
    with_secrets = server.mgmt("GET", f"/apis/{api_id}/_export/definition?includeSecrets=true").json()
    assert (
        with_secrets["api"]["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]["security"]["sasl"][
            "saslJaasConfig"
        ]
        == JAAS
    )

    # Saving again with the password field left empty keeps the stored JAAS config.
    form["shared.security.sasl.saslJaasConfig"] = ""
    assert (
        "Endpoint main saved."
        in browser.post(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit", data=form).text
    )
    # And a masked export imported again keeps it too.
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=exported).status_code == 200
    again = server.mgmt("GET", f"/apis/{api_id}/_export/definition?includeSecrets=true").json()
    assert (
        again["api"]["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]["security"]["sasl"][
            "saslJaasConfig"
        ]
        == JAAS
    )
