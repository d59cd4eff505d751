"""Solace PubSub+ endpoint. solace-pubsubplus runs in a worker process of its own
(worker.py, reached through channel.py): it cannot run in the gevent-patched gateway.

Publish: direct messages for qos none, persistent ones (confirmed by the broker) otherwise; one
message per configured topic; message headers become user properties. Subscribe: qos none is a
direct receiver of the topics; any other qos a persistent receiver on the client's durable,
non-exclusive queue, which attracts the topics, so that what comes while the client is away is
kept for it. Its name is Gravitee's `gravitee/gio-gateway/<client>` with the client scoped by API
(as the RabbitMQ queues are), so that one client of two APIs does not get both in one queue.
"""

import logging
import re
import ssl
import uuid

import gevent

from ...messages import EndpointConnector, EndpointError, Message
from ...settings import (
    STORE_TYPES,
    STORES,
    Field,
    Settings,
    SettingsError,
    get_path,
    sides_summary,
    store_summary,
    summary_line,
    topics_text,
    trust_store,
    use_choice,
    user_summary,
)
from ...specs import EndpointSpec
from ...tls.stores import check_gravitee_stores, gravitee_stores, materialise
from ...toolkit.probe import tcp_probe
from ...toolkit.subscriptions import BufferedSubscription, QuietSubscription, Unacked
from ...toolkit.topics import topic_errors
from .channel import channel

log = logging.getLogger("gatehouse.solace")

QUEUE_PREFIX = "gravitee/gio-gateway/"
DIRECT_BUFFER = 10_000  # direct messages a subscriber may fall behind before it is told
RESUBSCRIBES = 3  # times a subscription follows a dead worker to a new one
DEFAULT_PORTS = {"tcp": 55555, "tcps": 55443}
URL = re.compile(r"^(tcps?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*)(?::(\d{1,5}))?/?$")
TOPIC_MAX_BYTES = 250

_endpoints = set()  # live endpoints of this process, for the portal's status probe


def queue_name(context):
    return f"{QUEUE_PREFIX}{context.api_id}-{context.client_id}"


def user_properties(message, producer):
    """Message headers as Solace user properties (a map: several values of one header are joined
    as HTTP joins them). The Python API cannot set a reply-to destination, so a response topic
    travels as the user property `responseTopic`."""
    properties = {name: ", ".join(values) for name, values in message.headers.items()}
    if producer.get("responseTopic"):
        properties["responseTopic"] = producer["responseTopic"]
    return properties


class SolaceEndpoint(EndpointConnector):
    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        self.url = configuration["url"].rstrip("/")
        self.vpn = configuration["vpnName"]
        self.producer = shared.get("producer") or {}
        self.consumer = shared.get("consumer") or {}
        self.key = uuid.uuid4().hex  # this endpoint's connection in the worker
        self.tls_files = None
        self.last_error = None  # why the last connection failed, until one succeeds
        _endpoints.add(self)

    def service(self):
        """How the worker connects for this endpoint (sent with every request: a restarted worker
        connects again from it)."""
        settings = {"key": self.key, "url": self.url, "vpn": self.vpn}
        auth = get_path(self.shared, "security.auth") or {}
        if auth.get("enabled", True) and auth.get("username"):
            settings.update(username=auth["username"], password=auth.get("password") or "")
        if self.url.startswith("tcps://"):
            ssl_settings = get_path(self.shared, "security.ssl") or {}
            settings.update(
                hostnameVerifier=ssl_settings.get("hostnameVerifier", True),
                trustStore=self._trust_directory(ssl_settings),
            )
        return settings

    def _trust_directory(self, ssl_settings):
        """The Solace API trusts a directory of PEM files: the trust store written as one, or the
        system's certificate directory when the store is NONE."""
        trust_store, _ = gravitee_stores(ssl_settings)
        if trust_store["type"] == "NONE":
            return ssl.get_default_verify_paths().capath or "/etc/ssl/certs"
        if self.tls_files is None:
            try:
                self.tls_files = materialise(trust_store, {"type": "NONE"})
            except SettingsError as exc:
                raise EndpointError(f"the Solace TLS trust store cannot be used: {exc}") from None
        return self.tls_files.directory

    def call(self, header, payload=b""):
        try:
            result = channel().call({**header, "service": self.service()}, payload)
        except EndpointError as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None
        return result

    # ----- publish -----
    def publish(self, context, message):
        if not self.producer.get("enabled"):
            raise EndpointError("this Solace endpoint is not configured to publish")
        self.call(
            {
                "op": "publish",
                "topics": self.producer["topics"],
                "persistent": context.qos != "none",
                "properties": user_properties(message, self.producer),
                "expiry": self.producer.get("messageExpiryInterval", -1),
            },
            message.content,
        )

    # ----- subscribe -----
    def subscribe(self, context):
        if not self.consumer.get("enabled"):
            # As the MQTT endpoint: a websocket that only publishes gets a quiet stream, not an error.
            return QuietSubscription()
        return SolaceSubscription(self, context)

    def probe(self):
        try:
            self.call({"op": "connect"})
            return None
        except EndpointError as exc:
            return str(exc)

    def close(self):
        _endpoints.discard(self)
        channel().send({"op": "close", "key": self.key})
        if self.tls_files is not None:
            self.tls_files.close()


class SolaceSubscription(BufferedSubscription):
    """One client's receiver in the worker. Messages come over the channel as the broker sends
    them; a persistent one is acknowledged to the broker when handed over (auto, at-most-once)
    or once written to the client (at-least-once). A direct subscriber that falls too far behind
    is told so (qos none may drop messages; silently losing them would hide it)."""

    def __init__(self, endpoint, context):
        self.persistent = context.qos != "none"
        super().__init__(None if self.persistent else DIRECT_BUFFER)  # buffered: (message, number)
        self.id = uuid.uuid4().hex
        self.qos = context.qos
        self.unacked = Unacked()
        self.channel = channel()
        self.endpoint = endpoint
        self.request = {
            "op": "subscribe",
            "sub": self.id,
            "topics": endpoint.consumer["topics"],
            "queue": queue_name(context) if self.persistent else None,
        }
        self.resubscribes = 0
        self._subscribe()

    def _subscribe(self):
        self.channel.subscribers[self.id] = self
        try:
            self.endpoint.call(self.request)
        except EndpointError:
            self.channel.subscribers.pop(self.id, None)
            raise

    # called by the channel's reader
    def received(self, header, payload):
        self.deliver([(Message(payload, None, header["headers"], header["metadata"]), header["number"])])

    def worker_lost(self, reason):
        """The worker died: subscribe again on a new one, so that the client's stream goes on. What
        the dead worker's receiver held unacknowledged the broker sends again (persistent queues);
        the numbers it gave are void, so nothing buffered under them is acknowledged."""
        if self.closed:
            return
        if self.persistent:
            self.buffer.clear()
            self.unacked.clear()
        self.resubscribes += 1
        if self.resubscribes > RESUBSCRIBES:
            self.fail(f"{reason} ({self.resubscribes} times while this client was connected); reconnect to resume")
            return
        gevent.spawn(self._resubscribe, reason)

    def _resubscribe(self, reason):
        if self.closed:
            return
        try:
            self._subscribe()
        except EndpointError as exc:
            self.fail(f"{reason}, and subscribing again failed: {exc}; reconnect to resume")
            return
        log.warning("Solace subscription %s subscribed again after %s", self.id, reason)

    def handed(self, entries):
        if self.persistent:
            if self.qos == "at-least-once":
                self.unacked.hold(entries)
            else:
                self._ack(entries)
        return [message for message, _ in entries]

    def acknowledge(self, messages):
        self._ack(self.unacked.take(messages))

    def _ack(self, entries):
        if entries and not self.error:
            self.channel.send({"op": "ack", "sub": self.id, "numbers": [number for _, number in entries]})

    def close(self):
        if not self.closed:
            super().close()
            if self.channel.subscribers.pop(self.id, None) is not None:
                # What was received and not acknowledged goes back to the queue, redelivered later.
                self.channel.send({"op": "unsubscribe", "sub": self.id})


# ----- checks at save -----
def url_problem(url):
    found = URL.match(url or "")
    if not found:
        return "must be tcp://host[:port] or tcps://host[:port]"
    if found.group(3) and not 1 <= int(found.group(3)) <= 65535:
        return f"port {found.group(3)} is not between 1 and 65535"
    return None


def topic_problem(topic, wildcards):
    """What is wrong with a Solace topic (with wildcards, a subscription); None when usable."""
    if not topic:
        return "must not be empty"
    if len(topic.encode()) > TOPIC_MAX_BYTES:
        return f"longer than Solace's limit of {TOPIC_MAX_BYTES} bytes"
    if "\0" in topic:
        return "must not contain a NUL character"
    levels = topic.split("/")
    if any(level == "" for level in levels):
        return "must not have an empty level (// or a leading or trailing /)"
    if not wildcards:
        if "*" in topic or ">" in topic:
            return "a topic to publish to cannot hold the wildcards * or >"
        return None
    for i, level in enumerate(levels):
        if ">" in level and (level != ">" or i != len(levels) - 1):
            return "> must be the whole last level (as in orders/>)"
        if "*" in level[:-1]:
            return "* must end a level (as in orders/*/eu or orders/eu*)"
    return None


def _check_url(values, settings):
    problem = url_problem(values.get("url"))
    return {"url": f"URL: '{values.get('url')}' {problem}"} if problem else {}


def _check_topics(values, settings):
    return topic_errors(values, "topics", topic_problem)


def _check_tls(values, settings):
    if get_path(values, "security.ssl.trustStore.type") not in STORES:
        return {}
    return check_gravitee_stores(get_path(values, "security.ssl") or {}, "security.ssl")


def summary(shared):
    auth = get_path(shared, "security.auth") or {}
    return summary_line(
        store_summary(shared, "security.ssl.trustStore"),
        auth.get("enabled", True) and user_summary(shared),
        *sides_summary(
            shared, topics_text(get_path(shared, "producer.topics")), topics_text(get_path(shared, "consumer.topics"))
        ),
    )


def probe(configuration):
    """What a live endpoint of this process says (connecting through the worker, with its
    credentials); else can a TCP connection be opened to the broker?"""
    url, vpn = str(configuration.get("url", "")).rstrip("/"), configuration.get("vpnName")
    for endpoint in list(_endpoints):
        if endpoint.url == url and endpoint.vpn == vpn:
            return endpoint.probe()
    found = URL.match(url)
    if not found:
        return f"not a Solace URL: {url}"
    scheme, host, port = found.groups()
    return tcp_probe([(url, host, port or DEFAULT_PORTS[scheme])], refused=f"Connection refused to {url}")


PRODUCER = ("producer.enabled", (True,))
CONSUMER = ("consumer.enabled", (True,))
AUTH = ("security.auth.enabled", (True,))

SHARED = Settings(
    fields=(
        Field(
            "security.auth.enabled",
            "boolean",
            "Authentication configuration",
            default=True,
            help="Log in with a user name and password (basic authentication).",
        ),
        Field("security.auth.username", "string", "Username", when=AUTH),
        Field("security.auth.password", "secret", "Password", when=AUTH),
        *trust_store(
            "security.ssl.trustStore",
            Field(
                "security.ssl.trustStore.type",
                "enum",
                "TLS trust store",
                default="NONE",
                choices=STORE_TYPES,
                help="Used with tcps:// URLs. NONE: the system's certificate authorities.",
            ),
            "path",
            "content",
        ),
        Field(
            "security.ssl.hostnameVerifier",
            "boolean",
            "Verify the host name",
            default=True,
            help="With tcps://: the broker's certificate must name the URL's host.",
        ),
        use_choice(),
        Field("producer.enabled", "boolean", "Use producer", default=False),
        Field(
            "producer.topics",
            "list",
            "Producer topics",
            required=True,
            when=PRODUCER,
            help="One per line; each message is published to every one. No wildcards.",
        ),
        Field(
            "producer.retained",
            "boolean",
            "Retained",
            default=False,
            when=PRODUCER,
            help="Kept for Gravitee definitions: Solace brokers have no retained messages, so it changes nothing.",
        ),
        Field(
            "producer.messageExpiryInterval",
            "integer",
            "Message expiry interval (s)",
            default=-1,
            minimum=-1,
            when=PRODUCER,
            help="-1: never. Otherwise the broker discards a persistent message not consumed by then.",
        ),
        Field(
            "producer.responseTopic",
            "string",
            "Response topic",
            when=PRODUCER,
            help="Sent with each message as the user property responseTopic.",
        ),
        Field("consumer.enabled", "boolean", "Use consumer", default=False),
        Field(
            "consumer.topics",
            "list",
            "Consumer topics",
            required=True,
            when=CONSUMER,
            help="One per line. Wildcards: * for one level (orders/*/eu) or the rest of one (orders/eu*), "
            "> for all further levels (orders/>).",
        ),
    ),
    checks=(_check_topics, _check_tls),
    sections=(
        ("security.auth", "Authentication"),
        ("security.ssl", "SSL trust store"),
        ("use", "Producer and consumer"),
        ("producer", "Producer"),
        ("consumer", "Consumer"),
    ),
)

SPEC = EndpointSpec(
    type="solace",
    label="Solace",
    connector=SolaceEndpoint,
    description="Publish to and subscribe to the topics of a Solace PubSub+ broker (direct or persistent).",
    configuration=Settings(
        fields=(
            Field(
                "url",
                "string",
                "URL",
                required=True,
                help="tcp://host[:port] (55555 by default) or tcps://host[:port].",
            ),
            Field("vpnName", "string", "VPN name", required=True, default="default"),
        ),
        checks=(_check_url,),
    ),
    shared=SHARED,
    probe=probe,
    summary=summary,
    target=lambda configuration: f"{configuration.get('url')} · VPN {configuration.get('vpnName') or 'default'}",
)
