"""From the Kafka endpoint's saved settings to the exact kafka-python client settings.

SASL cannot be tried end to end here (Tansu offers only SCRAM and cannot create users), so the
mapping of each mechanism is checked up to the client's own SASL handshake objects."""

import pytest

from gateway_runtime.endpoints.kafka import SPEC

JAAS = {
    "PLAIN": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";',
    "SCRAM-SHA-256": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";',
    "SCRAM-SHA-512": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";',
    "OAUTHBEARER": 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required access_token="tok";',
}


def endpoint(shared):
    return SPEC.connector(
        SPEC.configuration.with_defaults({"bootstrapServers": "b1:9092,b2:9092"}), SPEC.shared.with_defaults(shared)
    )


@pytest.mark.parametrize("mechanism", sorted(JAAS))
def test_sasl_mechanisms_map_onto_the_client_settings(mechanism):
    kafka = endpoint(
        {
            "security": {
                "protocol": "SASL_PLAINTEXT",
                "sasl": {"saslMechanism": mechanism, "saslJaasConfig": JAAS[mechanism]},
            }
        }
    )
    settings = kafka.client_settings()
    assert settings["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert settings["security_protocol"] == "SASL_PLAINTEXT" and settings["sasl_mechanism"] == mechanism
    if mechanism == "OAUTHBEARER":
        assert settings["sasl_oauth_token_provider"].token() == "tok"
    else:
        assert (settings["sasl_plain_username"], settings["sasl_plain_password"]) == ("u", "p")
    kafka.close()


def test_plaintext_has_no_security_settings():
    settings = endpoint({}).client_settings()
    assert settings["security_protocol"] == "PLAINTEXT"
    assert not {key for key in settings if key.startswith(("sasl", "ssl"))}


def test_gssapi_without_its_package_is_refused_at_save_naming_the_cause():
    _, errors = SPEC.shared.validate(
        {
            "security": {
                "protocol": "SASL_PLAINTEXT",
                "sasl": {
                    "saslMechanism": "GSSAPI",
                    "saslJaasConfig": "com.sun.security.auth.module.Krb5LoginModule required;",
                },
            }
        }
    )
    assert "GSSAPI needs the Python package gssapi" in errors["security.sasl.saslJaasConfig"]
