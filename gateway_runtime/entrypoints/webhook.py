"""Webhook: the gateway pushes each message of a push-plan subscription to the subscriber's
callback URL. It serves no request; gateway_runtime.webhook runs its delivery loops.

The entrypoint's settings say how the gateway calls callbacks; each subscription's own settings
(SUBSCRIPTION) say where and how: callback URL, headers, authentication, TLS and retries.
"""

from urllib.parse import urlsplit

# Callbacks are called as the http-proxy endpoint calls backends: the same TLS and proxy settings.
from ..outbound_http import PROXY_FIELDS, SSL_FIELDS
from ..settings import Field, Settings, get_path
from ..specs import EntrypointSpec
from ..tls.stores import check_gravitee_stores

QOS = ("none", "auto", "at-most-once", "at-least-once")
ORDERED = ("at-most-once", "at-least-once")  # one message at a time: the order is kept
AUTH_TYPES = ("none", "basic", "token", "oauth2")
NO_RETRY, RETRY = "No Retry", "Retry On Fail"


class Webhook:
    """The entrypoint as deployed: its settings and qos, and the connector of its dead-letter
    endpoint (None without one). It never matches an HTTP request."""

    def __init__(self, config, api, qos):
        self.api = api
        self.qos = qos
        self.config = config
        http = config["http"]
        self.connect_timeout = http["connectTimeout"] / 1000
        self.read_timeout = http["readTimeout"] / 1000
        self.concurrency = 1 if qos in ORDERED else http["maxConcurrentConnections"]
        self.interrupt_on_server_error = config["interruptConsumptionOnServerError"]
        self.interrupt_on_exception = config["interruptConsumptionOnException"]
        self.dlq = None

    @staticmethod
    def matches(environ):
        return False


def _check_subscription(values, settings):
    errors = {}
    url = values.get("callbackUrl", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["callbackUrl"] = f"'{url}' is not an http:// or https:// URL"
    retry = values.get("retry") or {}
    if retry.get("retryOption", RETRY) == RETRY and retry.get("initialDelaySeconds", 1) > retry.get(
        "maxDelaySeconds", 30
    ):
        errors["retry.maxDelaySeconds"] = "The maximum delay must be at least the initial delay"
    if (get_path(values, "auth.oauth2.endpoint") or "http://").split("://")[0] not in ("http", "https"):
        errors["auth.oauth2.endpoint"] = "The token endpoint must be an http:// or https:// URL"
    errors.update(check_gravitee_stores(values.get("ssl") or {}, "ssl", trust=not get_path(values, "ssl.trustAll")))
    return errors


# A subscription's `consumerConfiguration.entrypointConfiguration` (Gravitee's webhook subscription
# schema, with the advanced edition's auth and retry).
SUBSCRIPTION = Settings(
    fields=(
        Field(
            "callbackUrl",
            "string",
            "Callback URL",
            required=True,
            help="Each message is POSTed here. Addresses of private networks are refused.",
        ),
        Field(
            "headers",
            "pairs",
            "Headers added to each call",
            secret_pairs=True,
            help="One 'name: value' per line. Credentials (Authorization, Cookie, *-Token...) are kept as secrets.",
        ),
        Field("auth.type", "enum", "Authentication", default="none", choices=AUTH_TYPES),
        Field("auth.basic.username", "string", "User name", required=True, when=("auth.type", ("basic",))),
        Field("auth.basic.password", "secret", "Password", required=True, when=("auth.type", ("basic",))),
        Field("auth.token.value", "secret", "Bearer token", required=True, when=("auth.type", ("token",))),
        Field("auth.oauth2.endpoint", "string", "Token endpoint", required=True, when=("auth.type", ("oauth2",))),
        Field("auth.oauth2.clientId", "string", "Client id", required=True, when=("auth.type", ("oauth2",))),
        Field("auth.oauth2.clientSecret", "secret", "Client secret", required=True, when=("auth.type", ("oauth2",))),
        Field("auth.oauth2.scopes", "list", "Scopes", when=("auth.type", ("oauth2",))),
        Field("retry.retryOption", "enum", "Retry", default=RETRY, choices=(NO_RETRY, RETRY)),
        Field(
            "retry.retryStrategy",
            "enum",
            "Backoff",
            default="EXPONENTIAL",
            choices=("LINEAR", "EXPONENTIAL"),
            when=("retry.retryOption", (RETRY,)),
            help="Linear: the initial delay times the attempt; exponential: doubled at each attempt.",
        ),
        Field(
            "retry.maxAttempts",
            "integer",
            "Attempts in all",
            default=5,
            minimum=1,
            maximum=100,
            when=("retry.retryOption", (RETRY,)),
        ),
        Field(
            "retry.initialDelaySeconds",
            "number",
            "Initial delay (s)",
            default=1,
            minimum=0,
            when=("retry.retryOption", (RETRY,)),
        ),
        Field(
            "retry.maxDelaySeconds",
            "number",
            "Maximum delay (s)",
            default=30,
            minimum=0,
            when=("retry.retryOption", (RETRY,)),
        ),
        *SSL_FIELDS,
    ),
    checks=(_check_subscription,),
)


SPEC = EntrypointSpec(
    type="webhook",
    label="Webhook",
    handler=Webhook,
    qos=QOS,
    listener="subscription",
    description="Pushes each message to the callback URL of each push-plan subscription, with retries "
    "and a dead-letter endpoint.",
    configuration=Settings(
        fields=(
            Field("http.connectTimeout", "integer", "Connect timeout (ms)", default=3000, minimum=1),
            Field("http.readTimeout", "integer", "Read timeout (ms)", default=10000, minimum=1),
            Field("http.idleTimeout", "integer", "Idle timeout (ms)", default=60000, minimum=0),
            Field(
                "http.maxConcurrentConnections",
                "integer",
                "Max concurrent calls per subscription",
                default=5,
                minimum=1,
                maximum=20,
                help="Forced to 1 for at-most-once and at-least-once: the order is kept.",
            ),
            Field(
                "interruptConsumptionOnServerError",
                "boolean",
                "Stop the subscription when the callback keeps answering 5xx (not dead-lettered)",
                default=False,
            ),
            Field(
                "interruptConsumptionOnException",
                "boolean",
                "Stop the subscription when the callback cannot be reached (not dead-lettered)",
                default=False,
            ),
            *PROXY_FIELDS,
        )
    ),
)
