"""Kafka `sasl.jaas.config` text: parse it, and turn it into kafka-python client settings.

A Gravitee kafka endpoint carries `security.sasl` = {`saslMechanism`, `saslJaasConfig`}, where the
JAAS text has the form Kafka's Java client reads from `sasl.jaas.config`:

    loginModuleClass controlFlag (optionName=optionValue)*;

e.g. `org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";`

kafka-python knows nothing of JAAS; `kafka_sasl_settings` maps the text to the keyword arguments
KafkaProducer / KafkaConsumer take (checked against kafka-python 3.0.x: `sasl_mechanism`,
`sasl_plain_username`, `sasl_plain_password`, `sasl_kerberos_service_name`,
`sasl_oauth_token_provider` in `kafka/consumer/group.py` and `kafka/producer/kafka.py`
DEFAULT_CONFIG, mechanisms in `kafka/net/sasl/`).

Parsing differs from Java's StreamTokenizer-based parser only in being more lenient: a bare
value may hold any character but whitespace, `=`, `;` and `"` (Java needs quotes around values
that start with a digit or hold `/`); inside quotes only `\\"` and `\\\\` are escapes, any other
backslash is kept as written; comments are not supported. Like Kafka, exactly one login module
is allowed and the control flag is matched case-insensitively.

No error message ever contains an option value: values may be secrets.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field

try:  # kafka-python 3.x
    from kafka.net.sasl.oauth import AbstractTokenProvider
except ImportError:  # pragma: no cover - older kafka-python (2.1+, then 2.0)
    try:
        from kafka.sasl.oauth import AbstractTokenProvider
    except ImportError:
        from kafka.oauth.abstract import AbstractTokenProvider

__all__ = [
    "CONTROL_FLAGS",
    "LOGIN_MODULES",
    "MECHANISMS",
    "Jaas",
    "JaasError",
    "StaticTokenProvider",
    "kafka_sasl_settings",
    "parse_jaas",
]

CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")
FORMAT = "loginModuleClass controlFlag (optionName=optionValue)*;"

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KRB5_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
IBM_KRB5_MODULE = "com.ibm.security.auth.module.Krb5LoginModule"

#: The login module(s) each supported SASL mechanism accepts; the first is the one to suggest.
LOGIN_MODULES = {  # in the order of the schema's saslMechanism enum
    "GSSAPI": (KRB5_MODULE, IBM_KRB5_MODULE),
    "OAUTHBEARER": (OAUTHBEARER_MODULE,),
    "PLAIN": (PLAIN_MODULE,),
    "SCRAM-SHA-256": (SCRAM_MODULE,),
    "SCRAM-SHA-512": (SCRAM_MODULE,),
}
MECHANISMS = tuple(LOGIN_MODULES)

#: Option names holding an OAUTHBEARER access token: Gravitee's, then Strimzi's client option.
TOKEN_OPTIONS = ("access_token", "oauth.access.token")


class JaasError(ValueError):
    """A JAAS config that is malformed or does not fit the SASL mechanism. Never names a secret."""


@dataclass(frozen=True)
class Jaas:
    """One parsed login module entry. `options` values are strings, in the order written."""

    login_module: str
    control_flag: str
    options: dict = field(default_factory=dict)

    def __repr__(self):  # option values may be secrets: show the names only
        names = ", ".join(f"{name!r}: '***'" for name in self.options)
        return f"Jaas(login_module={self.login_module!r}, control_flag={self.control_flag!r}, options={{{names}}})"


# ---------------------------------------------------------------------------------------------
# Parsing

_WORD, _QUOTED, _UNTERMINATED, _EQUALS, _SEMICOLON, _END = ("word", "quoted", "unterminated", "=", ";", "end")
_BARE = re.compile(r'[^\s=;"]+')
_SPACE = re.compile(r"\s*")
_CLASS_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


@dataclass
class _Token:
    kind: str
    value: str
    start: int


class _Tokens:
    """Lazily splits the text into words, quoted values, '=', ';' and the end."""

    def __init__(self, text):
        self.text = text
        self.pos = 0
        self._peeked = None

    def peek(self):
        if self._peeked is None:
            self._peeked = self._read()
        return self._peeked

    def next(self):
        token = self.peek()
        self._peeked = None
        return token

    def _read(self):
        text = self.text
        self.pos = _SPACE.match(text, self.pos).end()
        start = self.pos
        if start >= len(text):
            return _Token(_END, "", start)
        char = text[start]
        if char in "=;":
            self.pos += 1
            return _Token(char, char, start)
        if char == '"':
            value, i = [], start + 1
            while i < len(text):
                c = text[i]
                if c == '"':
                    self.pos = i + 1
                    return _Token(_QUOTED, "".join(value), start)
                if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                    value.append(text[i + 1])
                    i += 2
                    continue
                value.append(c)
                i += 1
            self.pos = len(text)
            return _Token(_UNTERMINATED, "", start)
        match = _BARE.match(text, start)
        self.pos = match.end()
        return _Token(_WORD, match.group(), start)


def _where(text, offset):
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"at line {line}, column {column}"


def _describe(token, echo=False):
    """What was found, for a message. Words are quoted back only when `echo` (never a value)."""
    if token.kind == _WORD:
        if not echo:
            return "a word"
        return repr(token.value if len(token.value) <= 40 else token.value[:37] + "...")
    if token.kind in (_QUOTED, _UNTERMINATED):
        return "a quoted value"
    if token.kind == _END:
        return "the end of the text"
    return repr(token.value)


def parse_jaas(text) -> Jaas:
    """Parse `loginModuleClass controlFlag (optionName=optionValue)*;` into a `Jaas`.

    Raises JaasError (a ValueError) saying what is wrong and where; no option value is ever
    quoted in the message.
    """
    if not isinstance(text, str):
        raise JaasError(f"the JAAS config must be text, not {type(text).__name__}")
    if not text.strip():
        raise JaasError(f"the JAAS config is empty; expected {FORMAT}")
    tokens = _Tokens(text)

    def fail(message, token):
        raise JaasError(f"{message} {_where(text, token.start)}")

    module = tokens.next()
    if module.kind != _WORD:
        fail(
            f"expected the login module class name (e.g. {PLAIN_MODULE}) at the start, found {_describe(module)}",
            module,
        )
    if tokens.peek().kind == _EQUALS:
        fail(
            "the JAAS config must start with the login module class name and a control flag "
            f"(e.g. '{SCRAM_MODULE} required'), found an option",
            module,
        )
    if not _CLASS_NAME.fullmatch(module.value):
        # not echoed: a text that is not a JAAS config at all may be a pasted secret
        fail(f"the first word is not a Java class name: expected the login module class (e.g. {PLAIN_MODULE})", module)

    flag = tokens.next()
    if flag.kind != _WORD or flag.value.lower() not in CONTROL_FLAGS:
        fail(
            f"expected a control flag ({', '.join(CONTROL_FLAGS)}) after the login module, "
            f"found {_describe(flag, echo=True)}",
            flag,
        )

    options = {}
    option, bare_value = None, False
    previous = "after the control flag"
    while True:
        name = tokens.next()
        if name.kind == _SEMICOLON:
            break
        if name.kind == _END:
            fail("missing the closing ';'", name)
        if name.kind == _EQUALS:
            if option is not None and bare_value:
                fail(f"unexpected '=' in the value of option {option} (quote values that contain '=')", name)
            fail(f"expected an option name before '=' {previous}", name)
        if name.kind != _WORD:
            fail(f"expected optionName=optionValue or the closing ';' {previous}, found {_describe(name)}", name)
        equals = tokens.next()
        if equals.kind != _EQUALS:
            hint = " (quote values that contain spaces)" if option is not None else ""
            fail(
                f"expected optionName=optionValue or the closing ';' {previous}, found a word "
                f"with no '=' after it{hint}",
                name,
            )
        option = name.value
        value = tokens.next()
        if value.kind == _UNTERMINATED:
            fail(f"unterminated quoted value for option {option}: the quote opened", value)
        if value.kind == _END:
            fail(f"missing the value for option {option} and the closing ';'", value)
        if value.kind == _SEMICOLON:
            fail(f'missing the value for option {option} (write "" for an empty value)', value)
        if value.kind == _EQUALS:
            fail(f"unexpected '=' in the value of option {option} (quote values that contain '=')", value)
        if option in options:
            fail(f"option {option} is given twice", name)
        options[option] = value.value
        bare_value = value.kind == _WORD
        previous = f"after option {option}"

    rest = tokens.next()
    if rest.kind != _END:
        fail("unexpected text after the closing ';' (only one login module is allowed)", rest)
    return Jaas(module.value, flag.value.lower(), options)


# ---------------------------------------------------------------------------------------------
# kafka-python settings


class StaticTokenProvider(AbstractTokenProvider):
    """An OAUTHBEARER token provider that always hands out the configured access token."""

    def __init__(self, access_token):
        super().__init__()
        self._token = access_token

    def token(self):
        return self._token

    def __repr__(self):  # the token is a secret
        return f"{type(self).__name__}(access_token='***')"


def _required(jaas, mechanism, option):
    value = jaas.options.get(option)
    if value is None:
        raise JaasError(
            f"SASL mechanism {mechanism} needs the option {option} in the JAAS config "
            f'({jaas.login_module} required {option}="...";)'
        )
    if value == "":
        raise JaasError(f"the option {option} in the JAAS config is empty; SASL mechanism {mechanism} needs a value")
    return value


def _token(jaas):
    given = [name for name in TOKEN_OPTIONS if jaas.options.get(name)]
    if len(given) > 1 and len({jaas.options[name] for name in given}) > 1:
        raise JaasError(f"the JAAS config gives both {' and '.join(given)} with different values; keep one")
    if given:
        return jaas.options[given[0]]
    empty = [name for name in TOKEN_OPTIONS if name in jaas.options]
    if empty:
        raise JaasError(f"the option {empty[0]} in the JAAS config is empty; SASL mechanism OAUTHBEARER needs a value")
    message = (
        f"SASL mechanism OAUTHBEARER needs the option access_token in the JAAS config "
        f'({OAUTHBEARER_MODULE} required access_token="...";); '
        "Strimzi's oauth.access.token is accepted too"
    )
    fetching = {
        "clientId",
        "clientSecret",
        "oauth.client.id",
        "oauth.client.secret",
        "oauth.token.endpoint.uri",
        "unsecuredLoginStringClaim_sub",
    } & set(jaas.options)
    if fetching:
        message += f"; this gateway does not obtain tokens itself (found {', '.join(sorted(fetching))})"
    raise JaasError(message)


def _require_gssapi():
    try:
        importlib.import_module("gssapi")
    except (ImportError, OSError):
        raise JaasError(
            "GSSAPI needs the Python package gssapi, which is not installed on this "
            "gateway (pip install gssapi; it needs the system Kerberos libraries, "
            "e.g. libkrb5-dev) - or choose another SASL mechanism"
        ) from None


def kafka_sasl_settings(mechanism, jaas_text) -> dict:
    """The KafkaProducer / KafkaConsumer keyword arguments for one Gravitee `security.sasl`.

    `mechanism` is the `saslMechanism` (GSSAPI, OAUTHBEARER, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
    `jaas_text` the `saslJaasConfig` (or an already parsed `Jaas`). The login module must be the
    one the mechanism uses. `security_protocol` is not included: it comes from
    `security.protocol`.

    GSSAPI: kafka-python authenticates with the gateway process's Kerberos credentials (a ticket
    cache from `kinit`, or a client keytab through KRB5_CLIENT_KTNAME); it has no setting for
    `principal` / `keyTab`, so those options are not used. `serviceName` becomes
    `sasl_kerberos_service_name` (default "kafka").
    """
    if not isinstance(mechanism, str) or not mechanism.strip():
        raise JaasError(f"the SASL mechanism is missing; expected one of {', '.join(MECHANISMS)}")
    mech = mechanism.strip().upper()
    if mech not in LOGIN_MODULES:
        raise JaasError(f"unsupported SASL mechanism {mechanism.strip()!r}; expected one of {', '.join(MECHANISMS)}")
    jaas = jaas_text if isinstance(jaas_text, Jaas) else parse_jaas(jaas_text)

    modules = LOGIN_MODULES[mech]
    if jaas.login_module not in modules:
        message = (
            f"SASL mechanism {mech} needs the login module {modules[0]}, but the JAAS config names {jaas.login_module}"
        )
        owners = [m for m, mods in LOGIN_MODULES.items() if jaas.login_module in mods]
        if owners:
            message += f" (the module for {' / '.join(owners)})"
        raise JaasError(message)

    if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        username = _required(jaas, mech, "username")
        password = _required(jaas, mech, "password")
        if mech != "PLAIN" and ("," in username or "=" in username):
            # kafka-python 3.0.x sends the SCRAM user name without RFC 5802's =2C / =3D escaping.
            raise JaasError(
                f"the SCRAM user name {username!r} contains ',' or '=', which the "
                "gateway's Kafka client (kafka-python) cannot send"
            )
        return {"sasl_mechanism": mech, "sasl_plain_username": username, "sasl_plain_password": password}

    if mech == "OAUTHBEARER":
        return {"sasl_mechanism": mech, "sasl_oauth_token_provider": StaticTokenProvider(_token(jaas))}

    # GSSAPI
    _require_gssapi()
    service = jaas.options.get("serviceName", "").strip() or "kafka"
    return {"sasl_mechanism": mech, "sasl_kerberos_service_name": service}
