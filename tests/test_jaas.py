"""JAAS text (Kafka `sasl.jaas.config`) parsing and its mapping to kafka-python settings."""

import sys
import types

import kafka
import pytest
from kafka.net.sasl import get_sasl_mechanism
from kafka.net.sasl.oauth import AbstractTokenProvider

from gateway_runtime.endpoints.kafka.jaas import (
    Jaas,
    JaasError,
    StaticTokenProvider,
    kafka_sasl_settings,
    parse_jaas,
)

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTH = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KRB5 = "com.sun.security.auth.module.Krb5LoginModule"
SECRET = "s3cr3t-Pa55"


# ---------------------------------------------------------------------------------------------
# Parsing

PARSED = [
    (
        "quoted",
        f'{SCRAM} required username="u" password="p";',
        Jaas(SCRAM, "required", {"username": "u", "password": "p"}),
    ),
    ("no options", f"{PLAIN} optional;", Jaas(PLAIN, "optional", {})),
    (
        "bare values",
        f"{KRB5} required useKeyTab=true storeKey=true serviceName=kafka;",
        Jaas(KRB5, "required", {"useKeyTab": "true", "storeKey": "true", "serviceName": "kafka"}),
    ),
    (
        "bare value with digits, dots and slashes",
        f"{KRB5} required keyTab=/etc/security/kafka.keytab principal=client/host1@EXAMPLE.COM;",
        Jaas(KRB5, "required", {"keyTab": "/etc/security/kafka.keytab", "principal": "client/host1@EXAMPLE.COM"}),
    ),
    (
        "escaped quote and backslash; other backslashes kept",
        f'{PLAIN} required username="a\\"b" password="c\\\\d\\n";',
        Jaas(PLAIN, "required", {"username": 'a"b', "password": "c\\d\\n"}),
    ),
    (
        "quoted value holding ; = and spaces",
        f'{PLAIN} required username="u" password="x; y = z";',
        Jaas(PLAIN, "required", {"username": "u", "password": "x; y = z"}),
    ),
    ("empty quoted value", f'{PLAIN} required username="";', Jaas(PLAIN, "required", {"username": ""})),
    (
        "multi-line with indentation and tabs",
        f'\n  {SCRAM}\n\trequired\n    username = "alice"\n    password =\n"p";\n',
        Jaas(SCRAM, "required", {"username": "alice", "password": "p"}),
    ),
    (
        "no spaces around = and before ;",
        f'{PLAIN} required username="u"password="p";',
        Jaas(PLAIN, "required", {"username": "u", "password": "p"}),
    ),
    ("control flag is case-insensitive, stored lower-case", f"{PLAIN} REQUISITE;", Jaas(PLAIN, "requisite", {})),
    (
        "sufficient flag; dotted option names; several options in order",
        f'{OAUTH} sufficient oauth.access.token="t" oauth.client.id=c a_b-c=1;',
        Jaas(OAUTH, "sufficient", {"oauth.access.token": "t", "oauth.client.id": "c", "a_b-c": "1"}),
    ),
    (
        "unicode value",
        f'{PLAIN} required username="zoë" password="пароль";',
        Jaas(PLAIN, "required", {"username": "zoë", "password": "пароль"}),
    ),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in PARSED], ids=[case[0] for case in PARSED])
def test_parse(text, expected):
    parsed = parse_jaas(text)
    assert parsed == expected
    assert list(parsed.options) == list(expected.options)  # order kept


ERRORS = [
    ("empty", "", ("the JAAS config is empty; expected loginModuleClass controlFlag (optionName=optionValue)*;")),
    ("blank", " \n\t ", "the JAAS config is empty"),
    ("not text", None, "the JAAS config must be text, not NoneType"),
    (
        "bad control flag",
        f"{PLAIN} foo;",
        (
            "expected a control flag (required, requisite, sufficient, optional) after the login module, "
            "found 'foo' at line 1, column 57"
        ),
    ),
    (
        "no control flag before an option",
        f'{PLAIN} username="u";',
        (
            "expected a control flag (required, requisite, sufficient, optional) after the login module, "
            "found 'username' at line 1, column 57"
        ),
    ),
    (
        "quoted control flag",
        f'{PLAIN} "required";',
        "after the login module, found a quoted value at line 1, column 57",
    ),
    ("only the module", PLAIN, "after the login module, found the end of the text at line 1, column 56"),
    ("missing ;", f'{PLAIN} required username="u" password="{SECRET}"', "missing the closing ';' at line 1, column "),
    ("missing ; after flag", f"{PLAIN} required", "missing the closing ';' at line 1, column 65"),
    (
        "unterminated quote",
        f'{PLAIN} required username="u" password="{SECRET};',
        "unterminated quoted value for option password: the quote opened at line 1, column 88",
    ),
    (
        "unterminated by a trailing escape",
        f'{PLAIN} required password="{SECRET}\\";',
        "unterminated quoted value for option password",
    ),
    (
        "value with a space",
        f"{PLAIN} required username=u password={SECRET} more;",
        (
            "expected optionName=optionValue or the closing ';' after option password, found a word "
            "with no '=' after it (quote values that contain spaces) at line 1, column "
        ),
    ),
    (
        "word without =",
        f"{PLAIN} required username;",
        (
            "expected optionName=optionValue or the closing ';' after the control flag, found a word "
            "with no '=' after it at line 1, column 66"
        ),
    ),
    (
        "missing value before ;",
        f"{PLAIN} required password=;",
        'missing the value for option password (write "" for an empty value) at line 1, column 75',
    ),
    (
        "missing value at the end",
        f"{PLAIN} required password=",
        "missing the value for option password and the closing ';' at line 1, column 75",
    ),
    (
        "= inside a bare value",
        f"{OAUTH} required access_token={SECRET}==;",
        ("unexpected '=' in the value of option access_token (quote values that contain '=') at line 1, column "),
    ),
    (
        "== after option name",
        f"{OAUTH} required access_token=={SECRET};",
        "unexpected '=' in the value of option access_token",
    ),
    (
        "option without a name",
        f"{PLAIN} required =x;",
        "expected an option name before '=' after the control flag at line 1, column 66",
    ),
    (
        "quoted option name",
        f'{PLAIN} required "username"="u";',
        (
            "expected optionName=optionValue or the closing ';' after the control flag, found a quoted "
            "value at line 1, column 66"
        ),
    ),
    (
        "duplicate option",
        f'{PLAIN} required password="a" password="{SECRET}";',
        "option password is given twice at line 1, column 79",
    ),
    (
        "two login modules",
        f'{PLAIN} required username="u"; {SCRAM} required;',
        "unexpected text after the closing ';' (only one login module is allowed) at line 1, column 80",
    ),
    (
        "quoted login module",
        f'"{PLAIN}" required;',
        "expected the login module class name (e.g. " + PLAIN + ") at the start, found a quoted "
        "value at line 1, column 1",
    ),
    ("starts with ;", ";", "at the start, found ';' at line 1, column 1"),
    (
        "starts with an option",
        f'username="u" password="{SECRET}";',
        "the JAAS config must start with the login module class name and a control flag (e.g. '"
        + SCRAM
        + " required'), found an option at line 1, column 1",
    ),
    (
        "not a class name (maybe a pasted secret)",
        "p@ss!word",
        "the first word is not a Java class name: expected the login module class (e.g. "
        + PLAIN
        + ") at line 1, column 1",
    ),
    (
        "position on a later line",
        f'{SCRAM}\n  required\n  username="u"\n  password\n;',
        (
            "expected optionName=optionValue or the closing ';' after option username, found a word "
            "with no '=' after it (quote values that contain spaces) at line 4, column 3"
        ),
    ),
]


@pytest.mark.parametrize("text, message", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_parse_errors(text, message):
    with pytest.raises(JaasError) as caught:
        parse_jaas(text)
    assert isinstance(caught.value, ValueError)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value) and "p@ss" not in str(caught.value)


def test_repr_hides_option_values():
    parsed = parse_jaas(f'{PLAIN} required username="u" password="{SECRET}";')
    assert SECRET not in repr(parsed) and "'password': '***'" in repr(parsed)


# ---------------------------------------------------------------------------------------------
# Mapping to kafka-python settings


@pytest.mark.parametrize(
    "mechanism, module",
    [
        ("PLAIN", PLAIN),
        ("SCRAM-SHA-256", SCRAM),
        ("SCRAM-SHA-512", SCRAM),
        ("scram-sha-512", SCRAM),
    ],
)
def test_username_password_mechanisms(mechanism, module):
    settings = kafka_sasl_settings(mechanism, f'{module} required username="alice" password="{SECRET}";')
    assert settings == {
        "sasl_mechanism": mechanism.upper(),
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }


@pytest.mark.parametrize("option", ["access_token", "oauth.access.token"])
def test_oauthbearer_token_provider(option):
    settings = kafka_sasl_settings("OAUTHBEARER", f'{OAUTH} required {option}="{SECRET}";')
    assert set(settings) == {"sasl_mechanism", "sasl_oauth_token_provider"}
    assert settings["sasl_mechanism"] == "OAUTHBEARER"
    provider = settings["sasl_oauth_token_provider"]
    assert isinstance(provider, StaticTokenProvider) and isinstance(provider, AbstractTokenProvider)
    assert provider.token() == SECRET
    assert provider.extensions() == {}
    assert SECRET not in repr(provider)


def test_oauthbearer_both_token_options():
    same = kafka_sasl_settings("OAUTHBEARER", f'{OAUTH} required access_token="t" oauth.access.token="t";')
    assert same["sasl_oauth_token_provider"].token() == "t"
    with pytest.raises(
        JaasError, match=r"gives both access_token and oauth\.access\.token with different values; keep one"
    ):
        kafka_sasl_settings("OAUTHBEARER", f'{OAUTH} required access_token="a" oauth.access.token="b";')


def test_gssapi_with_gssapi_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", types.ModuleType("gssapi"))
    assert kafka_sasl_settings(
        "GSSAPI",
        f'{KRB5} required useKeyTab=true keyTab="/k.keytab" principal="client@EXAMPLE.COM" serviceName="kafka-prod";',
    ) == {"sasl_mechanism": "GSSAPI", "sasl_kerberos_service_name": "kafka-prod"}
    assert kafka_sasl_settings("GSSAPI", f"{KRB5} required useTicketCache=true;") == {
        "sasl_mechanism": "GSSAPI",
        "sasl_kerberos_service_name": "kafka",
    }


def test_gssapi_without_gssapi(monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", None)  # makes `import gssapi` raise ImportError
    with pytest.raises(
        JaasError, match=r"^GSSAPI needs the Python package gssapi, which is not installed on this gateway"
    ):
        kafka_sasl_settings("GSSAPI", f'{KRB5} required principal="client@EXAMPLE.COM";')


def test_accepts_a_parsed_jaas():
    jaas = parse_jaas(f'{PLAIN} required username="u" password="p";')
    assert kafka_sasl_settings("PLAIN", jaas)["sasl_plain_username"] == "u"


MAPPING_ERRORS = [
    (
        "PLAIN",
        f'{SCRAM} required username="u" password="{SECRET}";',
        (
            f"^SASL mechanism PLAIN needs the login module {PLAIN}, but the JAAS config names {SCRAM} "
            r"\(the module for SCRAM-SHA-256 / SCRAM-SHA-512\)$"
        ),
    ),
    (
        "SCRAM-SHA-256",
        f'{PLAIN} required username="u" password="{SECRET}";',
        f"needs the login module {SCRAM}, but the JAAS config names {PLAIN} \\(the module for PLAIN\\)",
    ),
    (
        "OAUTHBEARER",
        f'com.example.MyLoginModule required access_token="{SECRET}";',
        (
            f"^SASL mechanism OAUTHBEARER needs the login module {OAUTH}, but the JAAS config names "
            "com.example.MyLoginModule$"
        ),
    ),
    ("GSSAPI", f'{PLAIN} required username="u" password="{SECRET}";', f"GSSAPI needs the login module {KRB5}"),
    (
        "PLAIN",
        f'{PLAIN} required password="{SECRET}";',
        "SASL mechanism PLAIN needs the option username in the JAAS config",
    ),
    (
        "SCRAM-SHA-512",
        f'{SCRAM} required username="u";',
        "SASL mechanism SCRAM-SHA-512 needs the option password in the JAAS config",
    ),
    (
        "PLAIN",
        f'{PLAIN} required username="u" password="";',
        "the option password in the JAAS config is empty; SASL mechanism PLAIN needs a value",
    ),
    (
        "OAUTHBEARER",
        f"{OAUTH} required;",
        "SASL mechanism OAUTHBEARER needs the option access_token in the JAAS config",
    ),
    ("OAUTHBEARER", f'{OAUTH} required access_token="";', ("the option access_token in the JAAS config is empty")),
    (
        "OAUTHBEARER",
        f'{OAUTH} required clientId="c" clientSecret="{SECRET}";',
        "this gateway does not obtain tokens itself \\(found clientId, clientSecret\\)",
    ),
    (
        "SCRAM-SHA-256",
        f'{SCRAM} required username="a,b" password="{SECRET}";',
        "the SCRAM user name 'a,b' contains ',' or '='",
    ),
    (
        "AWS_MSK_IAM",
        "software.amazon.msk.auth.iam.IAMLoginModule required;",
        (
            "^unsupported SASL mechanism 'AWS_MSK_IAM'; expected one of GSSAPI, OAUTHBEARER, PLAIN, "
            "SCRAM-SHA-256, SCRAM-SHA-512$"
        ),
    ),
    ("", f"{PLAIN} required;", "the SASL mechanism is missing"),
    ("PLAIN", f'{PLAIN} required username="u" password={SECRET}', "missing the closing ';'"),
]


@pytest.mark.parametrize("mechanism, text, pattern", MAPPING_ERRORS)
def test_mapping_errors(mechanism, text, pattern, monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", types.ModuleType("gssapi"))
    with pytest.raises(JaasError, match=pattern) as caught:
        kafka_sasl_settings(mechanism, text)
    assert SECRET not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The settings work with the installed kafka-python


SASL_CONFIGS = [
    ("PLAIN", f'{PLAIN} required username="alice" password="{SECRET}";'),
    ("SCRAM-SHA-256", f'{SCRAM} required username="alice" password="{SECRET}";'),
    ("SCRAM-SHA-512", f'{SCRAM} required username="alice" password="{SECRET}";'),
    ("OAUTHBEARER", f'{OAUTH} required access_token="{SECRET}";'),
]


@pytest.mark.parametrize("client", [kafka.KafkaProducer, kafka.KafkaConsumer])
@pytest.mark.parametrize("mechanism, text", SASL_CONFIGS)
def test_kafka_clients_accept_the_settings(client, mechanism, text):
    # With api_version given, kafka-python 3.x constructs without contacting a broker.
    instance = client(
        bootstrap_servers="127.0.0.1:1",
        security_protocol="SASL_PLAINTEXT",
        api_version=(3, 9),
        **kafka_sasl_settings(mechanism, text),
    )
    try:
        assert instance.config["sasl_mechanism"] == mechanism
    finally:
        if client is kafka.KafkaProducer:
            instance.close(timeout=0)
        else:
            instance.close(autocommit=False)


@pytest.mark.parametrize("mechanism, text", SASL_CONFIGS)
def test_kafka_sasl_mechanism_builds_its_first_message(mechanism, text):
    settings = kafka_sasl_settings(mechanism, text)
    sasl = get_sasl_mechanism(mechanism)(host="127.0.0.1", security_protocol="SASL_SSL", **settings)
    first = sasl.auth_bytes()
    if mechanism == "PLAIN":
        assert first == f"alice\0alice\0{SECRET}".encode()
    elif mechanism == "OAUTHBEARER":
        assert first == f"n,,\x01auth=Bearer {SECRET}\x01\x01".encode()
    else:
        assert first.startswith(b"n,,n=alice,r=")
