"""The RabbitMQ endpoint form in the portal: its sections follow the toggles, a name RabbitMQ would
refuse is a form error naming the field, nothing is saved until the form is right, and the
password is never echoed."""

from support.apis import mock_api
from support.portal import EndpointsPage, connector_fields


def rabbit_group_api():
    definition = mock_api(path="/r")
    definition["endpointGroups"] = [
        {
            "name": "brokers",
            "type": "rabbitmq",
            "endpoints": [
                {
                    "name": "main",
                    "type": "rabbitmq",
                    "inheritConfiguration": False,
                    "configuration": {"serverHost": "localhost", "serverPort": 5672},
                    "sharedConfigurationOverride": {
                        "consumer": {
                            "enabled": True,
                            "routingKey": "#",
                            "exchange": {"name": "orders", "type": "topic"},
                        }
                    },
                }
            ],
        }
    ]
    return definition


def test_rabbitmq_form_sections_follow_the_toggles_and_save_checks_the_names(server):
    api_id = server.import_api(rabbit_group_api())
    portal = EndpointsPage(server, api_id)
    browser, token, endpoint_id, refresh = portal.browser, portal.token, portal.endpoint_id, portal.refresh

    shown = connector_fields(browser.get(server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit").text)
    assert {
        "cfg.serverHost",
        "cfg.serverPort",
        "cfg.virtualHost",
        "shared.security.auth.username",
        "shared.security.auth.password",
        "shared.security.ssl.enabled",
        "shared.use",
        "shared.consumer.exchange.name",
        "shared.consumer.exchange.type",
        "shared.consumer.exchange.durable",
        "shared.consumer.exchange.autoDelete",
        "shared.consumer.routingKey",
        "shared.consumer.queueExpiry",
    } <= shown
    assert (
        not {"shared.producer.exchange.name", "shared.security.ssl.trustStore.type", "shared.consumer.bindingHeaders"}
        & shown
    )

    def section(**form):
        return connector_fields(browser.post(refresh, data={"csrf_token": token, **form}).text)

    assert {"shared.producer.exchange.name", "shared.producer.routingKey"} <= section(**{"shared.use": "producer"})
    headers = section(**{"shared.use": "consumer", "shared.consumer.exchange.type": "headers"})
    assert {"shared.consumer.bindingHeaders", "shared.consumer.headersMatch"} <= headers
    tls = section(**{"shared.security.ssl.enabled": "on", "shared.security.ssl.trustStore.type": "JKS"})
    assert {
        "shared.security.ssl.trustStore.path",
        "shared.security.ssl.trustStore.password",
        "shared.security.ssl.hostnameVerifier",
    } <= tls and "shared.security.ssl.trustStore.content" not in tls
    tls = section(
        **{
            "shared.security.ssl.enabled": "on",
            "shared.security.ssl.trustStore.type": "JKS",
            "shared.security.ssl.trustStore.with": "certificates",
        }
    )
    assert {"shared.security.ssl.trustStore.content", "shared.security.ssl.trustStore.password"} <= tls

    form = {
        "csrf_token": token,
        "name": "main",
        "weight": "1",
        "cfg.serverHost": "rabbit.internal",
        "cfg.serverPort": "5672",
        "cfg.virtualHost": "/",
        "shared.security.auth.username": "app",
        "shared.security.auth.password": "s3cret",
        "shared.use": "producer",
        "shared.producer.exchange.name": "amq.direct",
        "shared.producer.exchange.type": "direct",
        "shared.producer.routingKey": "orders",
    }
    edit = server.portal + f"/apis/{api_id}/endpoints/{endpoint_id}/edit"
    bad = browser.post(edit, data=form)
    assert bad.status_code == 400
    assert "Exchange name: &#39;amq.direct&#39; starts with amq., a prefix RabbitMQ reserves" in bad.text
    assert "s3cret" not in bad.text  # a secret is never echoed back
    stored = server.mgmt("GET", f"/apis/{api_id}").json()["endpointGroups"][0]["endpoints"][0]
    assert stored["configuration"] == {"serverHost": "localhost", "serverPort": 5672}  # nothing saved

    form["shared.producer.exchange.name"] = "orders-out"
    assert "Endpoint main saved." in browser.post(edit, data=form).text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    endpoint = exported["api"]["endpointGroups"][0]["endpoints"][0]
    assert endpoint["configuration"] == {"serverHost": "rabbit.internal", "serverPort": 5672, "virtualHost": "/"}
    assert endpoint["sharedConfigurationOverride"]["security"] == {
        "auth": {"username": "app", "password": "********"},
        "ssl": {"enabled": False},
    }
    assert endpoint["sharedConfigurationOverride"]["producer"]["exchange"] == {
        "name": "orders-out",
        "type": "direct",
        "durable": False,
        "autoDelete": False,
    }
