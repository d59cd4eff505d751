"""The MQTT 5 endpoint's settings: what is refused at save (naming the field, nothing saved), the
form's sections following its toggles, secrets never echoed, the schema's spellings."""

from gateway_runtime.endpoints.mqtt5 import SPEC
from support.apis import mock_api
from support.portal import EndpointsPage, connector_fields


def errors_of(shared, configuration=None):
    _, shared_errors = SPEC.shared.validate(shared)
    _, config_errors = SPEC.configuration.validate(configuration or {"serverHost": "localhost", "serverPort": 1883})
    return {**shared_errors, **config_errors}


def test_reconnect_attempts_above_ten_are_refused_and_both_spellings_are_read():
    assert errors_of({"reconnectAttempt": 11}) == {"reconnectAttempt": "Reconnect attempts: must be at most 10"}
    assert errors_of({"reconnectAttempt": -1}) == {"reconnectAttempt": "Reconnect attempts: must be at least 0"}
    clean, errors = SPEC.shared.validate({"reconnectAttempts": 7})
    assert errors == {} and clean == {"reconnectAttempt": 7}  # kept (and exported) as the schema spells it
    assert SPEC.shared.with_defaults({})["reconnectAttempt"] == 3
    assert SPEC.shared.with_defaults({})["sessionExpiryInterval"] == 0
    assert SPEC.shared.with_defaults({})["cleanStart"] is True


def test_topics_wildcards_only_where_a_filter_is_meant():
    assert errors_of({"producer": {"enabled": True, "topic": "sensors/+/t"}}) == {
        "producer.topic": "Topic: a topic to publish to cannot hold the wildcards + or #"
    }
    assert errors_of({"consumer": {"enabled": True, "topic": "sensors/+/t"}}) == {}
    assert errors_of({"consumer": {"enabled": True, "topic": "sensors/#"}}) == {}
    assert errors_of({"consumer": {"enabled": True, "topic": "sensors/#/t"}}) == {
        "consumer.topic": "Topic: # must be a whole level, the last one (as in sensors/#)"
    }
    assert errors_of({"consumer": {"enabled": True, "topic": "sen+sors"}}) == {
        "consumer.topic": "Topic: + must be a whole level (as in sensors/+/temperature)"
    }
    assert errors_of({"consumer": {"enabled": True}}) == {"consumer.topic": "Consumer topic is required"}


def test_server_and_tls_stores_are_checked_naming_the_field():
    assert errors_of({}, {"serverHost": "broker one", "serverPort": "70000"}) == {
        "serverHost": "Server host: 'broker one' is not a host name or IP address",
        "serverPort": "Server port: '70000' is not a port number (1 to 65535)",
    }
    errors = errors_of({"security": {"ssl": {"trustStore": {"type": "PEM", "content": "not a certificate"}}}})
    assert errors == {
        "security.ssl.trustStore.content": "Trust store: not PEM certificates: expected one or more "
        "-----BEGIN CERTIFICATE----- blocks"
    }
    errors = errors_of({"security": {"ssl": {"trustStore": {"type": "JKS", "content": "-----BEGIN CERT"}}}})
    assert (
        list(errors) == ["security.ssl.trustStore.content"]
        and "set the type to PEM" in errors["security.ssl.trustStore.content"]
    )


def mqtt_group_api():
    definition = mock_api(path="/m")
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "mqtt5",
            "endpoints": [
                {
                    "name": "main",
                    "type": "mqtt5",
                    "inheritConfiguration": False,
                    "configuration": {"serverHost": "localhost", "serverPort": "1883"},
                    "sharedConfigurationOverride": {"consumer": {"enabled": True, "topic": "orders"}},
                }
            ],
        }
    ]
    return definition


def test_mqtt_form_sections_follow_the_toggles_and_save_checks_the_settings(server):
    api_id = server.import_api(mqtt_group_api())
    portal = EndpointsPage(server, api_id)
    browser, token, endpoint_id, refresh = portal.browser, portal.token, portal.endpoint_id, portal.refresh
    edit_url = server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit"

    shown = connector_fields(browser.get(edit_url).text)
    assert {
        "cfg.serverHost",
        "cfg.serverPort",
        "shared.reconnectAttempt",
        "shared.sessionExpiryInterval",
        "shared.cleanStart",
        "shared.security.auth.username",
        "shared.security.auth.password",
        "shared.security.ssl.trustStore.type",
        "shared.use",
        "shared.consumer.topic",
    } <= shown
    assert "shared.producer.topic" not in shown and "shared.security.ssl.hostnameVerifier" not in shown

    def section(**form):
        return connector_fields(browser.post(refresh, data={"csrf_token": token, **form}).text)

    assert {
        "shared.producer.topic",
        "shared.producer.retained",
        "shared.producer.messageExpiryInterval",
        "shared.producer.responseTopic",
    } <= section(**{"shared.use": "producer"})
    jks = section(**{"shared.security.ssl.trustStore.type": "JKS", "shared.security.ssl.keyStore.type": "PKCS12"})
    assert {
        "shared.security.ssl.hostnameVerifier",
        "shared.security.ssl.trustStore.path",
        "shared.security.ssl.trustStore.password",
        "shared.security.ssl.keyStore.path",
        "shared.security.ssl.keyStore.password",
    } <= jks  # "with location" by default
    jks = section(
        **{
            "shared.security.ssl.trustStore.type": "JKS",
            "shared.security.ssl.trustStore.with": "certificates",
            "shared.security.ssl.keyStore.type": "PKCS12",
            "shared.security.ssl.keyStore.with": "key",
        }
    )
    assert {
        "shared.security.ssl.trustStore.content",
        "shared.security.ssl.trustStore.password",
        "shared.security.ssl.keyStore.content",
        "shared.security.ssl.keyStore.password",
    } <= jks
    pem = section(**{"shared.security.ssl.trustStore.type": "PEM", "shared.security.ssl.keyStore.type": "PEM"})
    assert {"shared.security.ssl.keyStore.certPath", "shared.security.ssl.keyStore.keyPath"} <= pem
    pem = section(
        **{
            "shared.security.ssl.trustStore.type": "PEM",
            "shared.security.ssl.keyStore.type": "PEM",
            "shared.security.ssl.keyStore.with": "key",
        }
    )
    assert {"shared.security.ssl.keyStore.certContent", "shared.security.ssl.keyStore.keyContent"} <= pem
    assert "shared.security.ssl.trustStore.password" not in pem

    form = {
        "csrf_token": token,
        "name": "main",
        "weight": "1",
        "cfg.serverHost": "broker.local",
        "cfg.serverPort": "1883",
        "shared.reconnectAttempt": "11",
        "shared.sessionExpiryInterval": "0",
        "shared.cleanStart": "on",
        "shared.security.auth.username": "app",
        "shared.security.auth.password": "pw-never-shown",
        "shared.security.ssl.trustStore.type": "NONE",
        "shared.use": "both",
        "shared.producer.topic": "orders/#",
        "shared.producer.messageExpiryInterval": "-1",
        "shared.consumer.topic": "orders/+",
    }
    bad = browser.post(edit_url, data=form)
    assert bad.status_code == 400
    assert "Reconnect attempts: must be at most 10" in bad.text
    assert "pw-never-shown" not in bad.text  # a secret is never echoed back
    form["shared.reconnectAttempt"] = "5"
    bad = browser.post(edit_url, data=form)
    assert bad.status_code == 400 and "a topic to publish to cannot hold the wildcards + or #" in bad.text
    stored = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert stored["configuration"] == {"serverHost": "localhost", "serverPort": "1883"}  # nothing saved so far

    form["shared.producer.topic"] = "orders/new"
    assert "Endpoint main saved." in browser.post(edit_url, data=form).text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    endpoint = exported["api"]["endpointGroups"][0]["endpoints"][0]
    assert endpoint["configuration"] == {"serverHost": "broker.local", "serverPort": "1883"}
    shared = endpoint["sharedConfigurationOverride"]
    assert shared["reconnectAttempt"] == 5 and shared["cleanStart"] is True
    assert shared["security"]["auth"] == {"username": "app", "password": "********"}
    assert shared["producer"] == {
        "enabled": True,
        "topic": "orders/new",
        "retained": False,
        "messageExpiryInterval": -1,
    }
    assert shared["consumer"] == {"enabled": True, "topic": "orders/+"}
