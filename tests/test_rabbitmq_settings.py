"""RabbitMQ endpoint settings: what is refused at save, what the connection is given, and TLS end to
end through stunnel4 in front of the local broker (the shared broker has no TLS listener)."""

import os
import subprocess

import pytest
import requests

from gateway_runtime.endpoints.rabbitmq import SPEC
from gateway_runtime.messages import ClientContext, EndpointError
from support.gatehouse import free_port, wait_for_port
from support.pki import STUNNEL, Pki
from support.rabbit import get_while


def shared(**sides):
    return {
        side: {"enabled": True, "routingKey": "k", "exchange": {"name": name, "type": "topic"}}
        for side, name in sides.items()
    }


@pytest.mark.parametrize(
    "values, field, message",
    [
        (
            shared(producer="amq.topic"),
            "producer.exchange.name",
            "Exchange name: 'amq.topic' starts with amq., a prefix RabbitMQ reserves for its own exchanges",
        ),
        (
            shared(consumer="x" * 256),
            "consumer.exchange.name",
            "Exchange name: longer than RabbitMQ's limit of 255 bytes",
        ),
        (
            {"consumer": {"enabled": True, "exchange": {"name": "orders", "type": "topic"}, "routingKey": "é" * 128}},
            "consumer.routingKey",
            "Routing key: longer than RabbitMQ's limit of 255 bytes",
        ),
        (
            {"consumer": {"enabled": True, "exchange": {"type": "topic"}}},
            "consumer.exchange.name",
            "Consumer exchange name is required",
        ),
        (
            {"producer": {"enabled": True, "exchange": {"name": "o", "type": "stream"}}},
            "producer.exchange.type",
            "Producer exchange type: must be one of direct, fanout, topic, headers",
        ),
        (
            {"consumer": {"enabled": True, "exchange": {"name": "o"}, "queueExpiry": 0}},
            "consumer.queueExpiry",
            "Queue expiry (s): must be at least 1",
        ),
    ],
)
def test_names_rabbitmq_would_refuse_are_errors_naming_the_field(values, field, message):
    _, errors = SPEC.shared.validate(values)
    assert errors == {field: message}


def test_server_port_out_of_range_is_an_error():
    assert SPEC.configuration.validate({"serverHost": "h", "serverPort": 70000})[1] == {
        "serverPort": "Server port: must be between 1 and 65535"
    }


def test_connection_parameters_name_the_connection_and_carry_the_settings():
    endpoint = SPEC.connector(
        SPEC.configuration.with_defaults({"serverHost": "broker", "serverPort": 5671, "virtualHost": "shop"}),
        SPEC.shared.with_defaults({"security": {"auth": {"username": "u", "password": "p"}}}),
    )
    endpoint.owner = "api-1/main"
    try:
        parameters = endpoint.parameters("api-1")
        assert (parameters.host, parameters.port, parameters.virtual_host) == ("broker", 5671, "shop")
        assert (parameters.credentials.username, parameters.credentials.password) == ("u", "p")
        assert parameters.client_properties == {"connection_name": "gatehouse/api-1/main"}
        assert parameters.ssl_options is None
    finally:
        endpoint.close()


def test_password_is_masked_on_export():
    values = {"security": {"auth": {"username": "u", "password": "s3cret"}}}
    assert SPEC.shared.mask_secrets(values)["security"]["auth"] == {"username": "u", "password": "********"}


# ----- TLS end to end -----
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory, pki, rabbitmq):
    """stunnel4 on a TLS port in front of the local broker's plain port."""
    if not os.path.exists(STUNNEL):
        pytest.skip("needs Debian's stunnel4")
    workdir = tmp_path_factory.mktemp("stunnel")
    port = free_port()
    config = workdir / "stunnel.conf"
    config.write_text(
        "\n".join(
            [
                "foreground = yes",
                "pid =",
                "debug = notice",
                "[amqp]",
                f"accept = 127.0.0.1:{port}",
                "connect = 127.0.0.1:5672",
                f"cert = {pki.server_pem}",
                f"key = {pki.server_key_pem}",
                "",
            ]
        )
    )
    with open(workdir / "stunnel.log", "w") as log:
        proc = subprocess.Popen([STUNNEL, str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(port, proc, timeout=10)
        yield port
        proc.terminate()
        proc.wait(5)


def tls_endpoint(port, ca_pem):
    values = shared(producer="unused", consumer="unused")
    values["security"] = {"ssl": {"enabled": True, "trustStore": {"type": "PEM", "content": ca_pem}}}
    return SPEC.connector(
        SPEC.configuration.with_defaults({"serverHost": "127.0.0.1", "serverPort": port}),
        SPEC.shared.with_defaults(values),
    )


def test_tls_with_a_pem_trust_store_round_trips_through_the_gateway(shared_server, names, pki, tls_port):
    name = names.exchange()
    api = {
        "name": "RabbitMQ TLS",
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [
            {
                "type": "http",
                "paths": [{"path": "/tls"}],
                "entrypoints": [
                    {"type": "http-get", "configuration": {"messagesLimitCount": 1}},
                    {"type": "http-post"},
                ],
            }
        ],
        "endpointGroups": [
            {
                "name": "rabbit",
                "type": "rabbitmq",
                "endpoints": [
                    {
                        "name": "tls",
                        "type": "rabbitmq",
                        "configuration": {"serverHost": "127.0.0.1", "serverPort": tls_port},
                        "sharedConfigurationOverride": {
                            "security": {
                                "ssl": {
                                    "enabled": True,
                                    "trustStore": {"type": "PEM", "content": pki.read("ca.pem").decode()},
                                }
                            },
                            "producer": {
                                "enabled": True,
                                "routingKey": "k",
                                "exchange": {"name": name, "type": "topic"},
                            },
                            "consumer": {
                                "enabled": True,
                                "routingKey": "#",
                                "exchange": {"name": name, "type": "topic"},
                            },
                        },
                    }
                ],
            }
        ],
    }
    api_id = shared_server.deploy_api(api)
    names.api_ids.add(api_id)

    def post():
        assert requests.post(shared_server.gateway + "/tls", data=b"over tls", timeout=10).status_code == 202

    body = get_while(shared_server.gateway, "/tls", api_id, "tls", post)
    assert [item["content"] for item in body["items"]] == ["over tls"]


def test_tls_with_the_wrong_ca_says_why(pki, tls_port):
    endpoint = tls_endpoint(tls_port, pki.read("wrong-ca.pem").decode())
    try:
        with pytest.raises(EndpointError) as refused:
            endpoint.subscribe(ClientContext("tls-api", "c"))
        assert f"TLS verification of the RabbitMQ broker at 127.0.0.1:{tls_port} failed" in str(refused.value)
        assert "not signed by a CA in the trust store" in str(refused.value)
    finally:
        endpoint.close()


def test_a_bad_trust_store_is_refused_at_save_naming_it():
    values = shared(consumer="o")
    values["security"] = {"ssl": {"enabled": True, "trustStore": {"type": "PEM", "content": "not a certificate"}}}
    _, errors = SPEC.shared.validate(values)
    assert list(errors) == ["security.ssl.trustStore.content"]
    assert errors["security.ssl.trustStore.content"].startswith("Trust store: ")
