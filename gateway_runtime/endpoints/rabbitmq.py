"""RabbitMQ endpoint (AMQP 0-9-1, pika's BlockingConnection over gevent's sockets).

A BlockingConnection must not be used by two greenlets at once, so each connection has one
owner: each of the endpoint's producer connections serves one publish at a time, and each
subscription (one SSE stream, one WebSocket, one http-get call) owns a connection of its own. A waiting consumer sits
in pika's select(), which gevent makes cooperative: the hub goes on serving other requests.

Every connection is named `gatehouse/<api id>/<endpoint name>` (client property
`connection_name`), so that an operator can tell the gateway's connections apart on a shared
broker.

Consumer queues are per API and client, `gravitee/gio-gateway/<api id>-<client id>` (Gravitee's
name, with the client identifier scoped by API as the Kafka consumer groups are, so that one
client of two APIs does not get the messages of both in one queue). Each queue name is also
written to the API's directory queue on the broker, so that deleting the API can remove the
queues that any gateway process created for it.
"""

import collections
import logging
import re
import time

import gevent
import pika
from gevent.lock import BoundedSemaphore
from gevent.queue import LifoQueue
from pika.exceptions import (
    AMQPConnectionError,
    AMQPError,
    ChannelClosedByBroker,
    NackError,
    ProbableAuthenticationError,
    StreamLostError,
)

from ..messages import EndpointConnector, EndpointError, Message, Subscription, Unreachable
from ..settings import (
    STORE_TYPES,
    Field,
    Settings,
    SettingsError,
    get_path,
    gravitee_key_store,
    sides_summary,
    store_summary,
    summary_line,
    trust_store,
    use_choice,
    user_summary,
)
from ..specs import EndpointSpec
from ..tls.stores import check_gravitee_stores, diagnose_tls, gravitee_ssl_context
from ..toolkit.probe import tcp_probe
from ..toolkit.reconnect import Reconnect

log = logging.getLogger("gatehouse.rabbitmq")
# pika logs each refused or closed connection at ERROR with a traceback; the endpoint reports
# those itself, once and in words, so only pika's critical messages reach the log.
logging.getLogger("pika").setLevel(logging.CRITICAL)

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
QUEUE_PREFIX = "gravitee/gio-gateway/"
DIRECTORY_PREFIX = "gatehouse/queues-of/"
# The directory keeps the newest names; an older queue it forgets still goes by its x-expires.
DIRECTORY_MAX = 100_000
NAME_MAX_BYTES = 255  # AMQP short strings: exchange and queue names, routing keys
PREFETCH = 256  # unacknowledged deliveries a subscription may hold
WAIT_SLICE_S = 0.25  # next_batch waits in slices so that close() is noticed quickly
CONNECT_TIMEOUT_S = 3
HEARTBEAT_S = 30
KEEPALIVE_S = 10  # an idle producer connection answers heartbeats this often
PRODUCERS = 8  # producer connections per endpoint, opened as concurrent publishes need them
# A lost consumer connection not back after 15 s is the client's error.
RECONNECT = Reconnect((0.1, 0.2, 0.5, 1, 2), give_up_after_s=15)
DEFAULT_EXPIRY_S = 86_400
INEQUIVALENT = re.compile(
    r"inequivalent arg '(\w+)' for exchange '(.*)' in vhost '.*': "
    r"received '?(.*?)'? but current is '?(.*?)'?$"
)
ARG_NAMES = {"type": "type", "durable": "durable", "auto_delete": "autoDelete"}
# Connection-level failures: worth a reconnect. A channel error (a refused declaration) is not.
LOST = (AMQPConnectionError, StreamLostError, ConnectionError, OSError)
AMQP_PROPERTIES = (
    ("content_type", "contentType"),
    ("content_encoding", "contentEncoding"),
    ("correlation_id", "correlationId"),
    ("app_id", "appId"),
    ("expiration", "expiration"),
    ("type", "type"),
    ("delivery_mode", "deliveryMode"),
    ("reply_to", "replyTo"),
    ("priority", "priority"),
    ("timestamp", "timestamp"),
    ("user_id", "userId"),
)


def queue_name(context):
    suffix = "-none" if context.qos == "none" else ""  # not durable: may not share a durable queue's name
    return f"{QUEUE_PREFIX}{context.api_id}-{context.client_id}{suffix}"


def directory_name(api_id):
    return DIRECTORY_PREFIX + api_id


# ----- messages -----
def header_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def to_message(method, properties, body):
    headers = {}
    for name, value in (properties.headers or {}).items():
        values = value if isinstance(value, list) else [value]
        headers[name] = [header_value(v) for v in values]
    metadata = {"deliveryTag": method.delivery_tag, "exchange": method.exchange, "routingKey": method.routing_key}
    for attribute, name in AMQP_PROPERTIES:
        value = getattr(properties, attribute)
        if value is not None:
            metadata[name] = value
    return Message(body, properties.message_id, headers, metadata)


def amqp_properties(message, persistent):
    # A header sent once is a string, so that a headers exchange matches it against its binding.
    headers = {name: values[0] if len(values) == 1 else list(values) for name, values in message.headers.items()}
    return pika.BasicProperties(
        headers=headers or None,
        content_type=message.metadata.get("contentType"),
        delivery_mode=2 if persistent else None,
    )


# ----- the endpoint -----
class RabbitEndpoint(EndpointConnector):
    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        self.host, self.port = configuration["serverHost"], configuration["serverPort"]
        self.where = f"{self.host}:{self.port}"
        self.producer_settings = shared.get("producer") or {}
        self.consumer_settings = shared.get("consumer") or {}
        self.tls = None
        # A confirm is a round trip, and a channel waits for each: publishes of concurrent requests
        # go over several connections. Last in, first out, so that a light load uses one.
        self.all_producers = [Producer(self) for _ in range(PRODUCERS)]
        self.producers = LifoQueue()
        for producer in reversed(self.all_producers):
            self.producers.put(producer)
        self.recorded = set()  # queue names this process wrote to the directory
        self.keeper = gevent.spawn(self._keep_alive)

    # ----- connections -----
    def parameters(self, api_id):
        auth = get_path(self.shared, "security.auth") or {}
        credentials = (
            pika.PlainCredentials(auth["username"], auth.get("password") or "")
            if auth.get("username")
            else pika.ConnectionParameters.DEFAULT_CREDENTIALS
        )
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.configuration.get("virtualHost", "/"),
            credentials=credentials,
            ssl_options=self._ssl_options(),
            heartbeat=HEARTBEAT_S,
            connection_attempts=1,
            socket_timeout=CONNECT_TIMEOUT_S,
            stack_timeout=CONNECT_TIMEOUT_S * 2,
            blocked_connection_timeout=CONNECT_TIMEOUT_S * 10,
            client_properties={"connection_name": f"gatehouse/{self.owner or api_id}"},
        )

    def _ssl_options(self):
        ssl_settings = get_path(self.shared, "security.ssl") or {}
        if not ssl_settings.get("enabled"):
            return None
        if self.tls is None:
            try:
                self.tls = gravitee_ssl_context(ssl_settings)
            except SettingsError as exc:
                raise EndpointError(f"the RabbitMQ TLS settings cannot be used: {exc}") from None
        return pika.SSLOptions(self.tls, server_hostname=self.host)

    def connect(self, api_id):
        try:
            return pika.BlockingConnection(self.parameters(api_id))
        except EndpointError:
            raise
        except Exception as exc:
            # No connection, so nothing was sent: failover may send it to another endpoint.
            raise Unreachable(self.explain(exc)) from None

    def explain(self, exc):
        if isinstance(exc, ProbableAuthenticationError) or "ACCESS_REFUSED" in str(exc):
            return f"the RabbitMQ broker at {self.where} refused the user name or password"
        if isinstance(exc, ChannelClosedByBroker):
            return self._refusal(exc)
        if isinstance(exc, NackError):
            return f"the RabbitMQ broker at {self.where} refused the message (nack)"
        if isinstance(exc, LOST):
            diagnosis = self.tls and diagnose_tls(self.tls, [self.where], "RabbitMQ broker")
            return diagnosis or f"the RabbitMQ broker at {self.where} cannot be reached"
        return f"RabbitMQ error: {type(exc).__name__}: {exc}"

    def _refusal(self, exc):
        found = INEQUIVALENT.search(exc.reply_text)
        if found:
            arg, exchange, declared, current = found.groups()
            name = ARG_NAMES.get(arg, arg)
            return f"exchange '{exchange}' exists with {name}={current}; this endpoint declares {name}={declared}"
        return f"the RabbitMQ broker at {self.where} refused: {exc.reply_text}"

    # ----- declarations -----
    def declare_exchange(self, channel, settings):
        exchange = settings.get("exchange") or {}
        if exchange.get("name"):
            channel.exchange_declare(
                exchange["name"],
                exchange.get("type", "topic"),
                durable=exchange.get("durable", False),
                auto_delete=exchange.get("autoDelete", False),
            )
        return exchange.get("name", "")

    def declare_queue(self, channel, context):
        """The client's queue, bound to the consumer exchange with the consumer's routing key."""
        settings = self.consumer_settings
        exchange = self.declare_exchange(channel, settings)
        name = queue_name(context)
        self.record(channel, context.api_id, name)
        arguments = {"x-expires": int(settings.get("queueExpiry", DEFAULT_EXPIRY_S) * 1000)}
        durable = context.qos != "none"
        channel.queue_declare(name, durable=durable, auto_delete=not durable, arguments=arguments)
        binding = None
        if settings.get("exchange", {}).get("type") == "headers":
            binding = {
                "x-match": settings.get("headersMatch", "all"),
                **{p["name"]: p["value"] for p in settings.get("bindingHeaders") or []},
            }
        channel.queue_bind(name, exchange, routing_key=settings.get("routingKey") or "", arguments=binding)
        return name

    def record(self, channel, api_id, name):
        """Write the queue's name to the API's directory once per process (see forget_queues)."""
        if name in self.recorded:
            return
        directory = directory_name(api_id)
        channel.queue_declare(
            directory, durable=True, arguments={"x-max-length": DIRECTORY_MAX, "x-overflow": "drop-head"}
        )
        channel.basic_publish("", directory, name.encode(), pika.BasicProperties(delivery_mode=2))
        self.recorded.add(name)

    # ----- produce -----
    def publish(self, context, message):
        if not self.producer_settings.get("enabled"):
            raise EndpointError("this RabbitMQ endpoint is not configured to produce")
        exchange = self.producer_settings.get("exchange") or {}
        properties = amqp_properties(message, exchange.get("durable", False))
        producer = self.producers.get()
        try:
            producer.publish(
                context,
                exchange.get("name", ""),
                self.producer_settings.get("routingKey") or "",
                message.content,
                properties,
                confirm=context.qos != "none",
            )
        finally:
            self.producers.put(producer)

    def _keep_alive(self):
        """pika answers heartbeats only while called: idle producers are called here."""
        while True:
            gevent.sleep(KEEPALIVE_S)
            for producer in self.all_producers:
                producer.keep_alive()

    # ----- consume -----
    def subscribe(self, context):
        if not self.consumer_settings.get("enabled"):
            raise EndpointError("this RabbitMQ endpoint is not configured to consume")
        return RabbitSubscription(self, context)

    def close(self):
        self.keeper.kill()
        for producer in self.all_producers:
            producer.close()


class Producer:
    """One producer connection, used by one publish at a time (the endpoint's pool sees to it)."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.lock = BoundedSemaphore()  # against the keep-alive greenlet
        self.connection = None
        self.channels = {}  # confirm mode -> channel

    def publish(self, context, exchange, routing_key, body, properties, confirm):
        # A connection the broker closed since the last publish is found here: one new connection
        # is tried before the client is told. A message is confirmed to the client only once the
        # broker confirmed it.
        with self.lock:
            for attempt in (1, 2):
                try:
                    self._channel(context, confirm).basic_publish(exchange, routing_key, body, properties)
                    return
                except LOST as exc:
                    self._drop()
                    if attempt == 2:
                        raise EndpointError(self.endpoint.explain(exc)) from None
                except EndpointError:
                    self._drop()
                    raise
                except AMQPError as exc:
                    self._drop()
                    raise EndpointError(self.endpoint.explain(exc)) from None

    def _channel(self, context, confirm):
        if self.connection is None:
            self.connection = self.endpoint.connect(context.api_id)
        if confirm not in self.channels:
            channel = self.connection.channel()
            self.endpoint.declare_exchange(channel, self.endpoint.producer_settings)
            if confirm:
                channel.confirm_delivery()
            self.channels[confirm] = channel
        return self.channels[confirm]

    def _drop(self):
        if self.connection is not None:
            close_quietly(self.connection)
        self.connection, self.channels = None, {}

    def keep_alive(self):
        if self.connection is None or not self.lock.acquire(blocking=False):
            return
        try:
            if self.connection is not None:
                self.connection.process_data_events(0)
        except Exception as exc:
            log.info("a producer connection to %s was lost (%s); the next publish reconnects", self.endpoint.where, exc)
            self._drop()
        finally:
            self.lock.release()

    def close(self):
        with self.lock:
            self._drop()


class RabbitSubscription(Subscription):
    """One client connection's consumer, on a connection of its own."""

    def __init__(self, endpoint, context):
        self.endpoint = endpoint
        self.context = context
        self.qos = context.qos
        self.lock = BoundedSemaphore()
        self.buffer = collections.deque()
        self.unacked = set()  # delivery tags of the current channel not yet acknowledged
        self.connection = self.channel = None
        self.closed = False
        self.down_since = None
        self._open()  # a broker that cannot be reached, or a refused declaration, fails the call at once

    def _open(self):
        connection = self.endpoint.connect(self.context.api_id)
        try:
            channel = connection.channel()
            name = self.endpoint.declare_queue(channel, self.context)
            channel.basic_qos(prefetch_count=PREFETCH)
            channel.basic_consume(name, self._deliver, auto_ack=self.qos == "none")
        except Exception as exc:
            close_quietly(connection)
            raise EndpointError(self.endpoint.explain(exc)) from None
        self.connection, self.channel = connection, channel
        self.unacked.clear()  # tags of a closed channel mean nothing on a new one
        self.down_since = None

    def _deliver(self, channel, method, properties, body):
        self.buffer.append(to_message(method, properties, body))

    def next_batch(self, timeout, max_messages):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not self.buffer and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if self.connection is not None and not self.connection.is_open:
                    self._lost()  # found closed by an acknowledge: pika cannot wait on it any more
                if self.connection is None:
                    self._reconnect(deadline)
                    continue
                try:
                    self.connection.process_data_events(time_limit=min(WAIT_SLICE_S, remaining))
                except LOST as exc:
                    log.info("consumer connection to %s lost (%s); reconnecting", self.endpoint.where, exc)
                    self._lost()
                except AMQPError as exc:
                    self._lost()
                    raise EndpointError(self.endpoint.explain(exc)) from None
            if self.closed:
                self._shut()
                return None
            batch = [self.buffer.popleft() for _ in range(min(max_messages, len(self.buffer)))]
            if self.qos != "none":
                self.unacked.update(m.metadata["deliveryTag"] for m in batch)
            if self.qos == "at-most-once":
                self._ack(batch)
            return batch

    def _lost(self):
        close_quietly(self.connection)
        self.connection = self.channel = None
        # Unacknowledged deliveries come again from the broker: the buffered copies would be doubles.
        self.buffer.clear()
        self.down_since = self.down_since or time.monotonic()

    def _reconnect(self, deadline):
        for _ in RECONNECT.tries(stop=lambda: self.closed, until=deadline, wait_first=False):
            try:
                self._open()
                log.info("consumer connection to %s is back", self.endpoint.where)
                return
            except EndpointError as exc:
                if RECONNECT.given_up(self.down_since):
                    raise
                log.info("reconnecting to %s: %s", self.endpoint.where, exc)

    def acknowledge(self, messages):
        """auto / at-least-once: these messages were written to the client."""
        if self.qos in ("none", "at-most-once") or not messages:
            return
        with self.lock:
            self._ack(messages)

    def _ack(self, messages):
        # Deliveries come in tag order and are written in that order: one ack covers the batch.
        tags = [m.metadata["deliveryTag"] for m in messages if m.metadata["deliveryTag"] in self.unacked]
        if not tags or self.channel is None:
            return
        try:
            self.channel.basic_ack(max(tags), multiple=True)
        except AMQPError as exc:
            if self.qos == "at-most-once":
                raise EndpointError(self.endpoint.explain(exc)) from None
            log.warning("acknowledging delivered messages failed (they will come again): %s", exc)
            return
        self.unacked.difference_update(t for t in list(self.unacked) if t <= max(tags))

    def close(self):
        self.closed = True
        # A waiting next_batch holds the lock and closes the connection at the end of its slice.
        if self.lock.acquire(blocking=False):
            try:
                self._shut()
            finally:
                self.lock.release()

    def _shut(self):
        # Closing the channel gives the broker back what was delivered and not acknowledged.
        if self.connection is not None:
            close_quietly(self.connection)
            self.connection = self.channel = None


def close_quietly(connection):
    try:
        if connection.is_open:
            connection.close()
    except Exception as exc:
        log.debug("closing a RabbitMQ connection: %s", exc)


# ----- when the API is deleted -----
def forget_queues(api_id, configuration, shared):
    """Delete the consumer queues that gateways created for this API on this endpoint's broker
    (their names are in the API's directory queue), then the directory itself."""
    endpoint = RabbitEndpoint(configuration, shared)
    try:
        connection = endpoint.connect(api_id)
        try:
            channel = connection.channel()
            directory = directory_name(api_id)
            try:
                channel.queue_declare(directory, passive=True)
            except ChannelClosedByBroker:
                return  # no queue was ever made for this API on this broker
            names = set()
            while True:
                method, _, body = channel.basic_get(directory, auto_ack=False)
                if method is None:
                    break
                names.add(body.decode())
            for name in sorted(names):
                channel.queue_delete(name)
            channel.queue_delete(directory)
        finally:
            close_quietly(connection)
    finally:
        endpoint.close()


# ----- settings -----
def _check_port(values, settings):
    # A rule rather than a bound of the field: an imported placeholder (Gravitee's failover fixture
    # has -1) is kept and named at deploy instead of failing the import.
    if not 1 <= values.get("serverPort", 0) <= 65535:
        return {"serverPort": "Server port: must be between 1 and 65535"}
    return {}


def _check_names(values, settings):
    errors = {}
    for side in ("producer", "consumer"):
        part = values.get(side) or {}
        if not part.get("enabled"):
            continue
        name = get_path(part, "exchange.name") or ""
        if name.startswith("amq."):
            errors[f"{side}.exchange.name"] = (
                f"Exchange name: '{name}' starts with amq., a prefix RabbitMQ reserves for its own exchanges"
            )
        for path, label in (("exchange.name", "Exchange name"), ("routingKey", "Routing key")):
            if len((get_path(part, path) or "").encode()) > NAME_MAX_BYTES:
                errors[f"{side}.{path}"] = f"{label}: longer than RabbitMQ's limit of {NAME_MAX_BYTES} bytes"
    return errors


def _check_tls(values, settings):
    if not get_path(values, "security.ssl.enabled"):
        return {}
    return check_gravitee_stores(get_path(values, "security.ssl") or {}, "security.ssl")


def side_fields(side, label):
    on = (f"{side}.enabled", (True,))
    return (
        Field(f"{side}.enabled", "boolean", f"Use {label.lower()}", default=False),
        Field(f"{side}.exchange.name", "string", f"{label} exchange name", required=True, when=on),
        Field(
            f"{side}.exchange.type", "enum", f"{label} exchange type", default="topic", choices=EXCHANGE_TYPES, when=on
        ),
        Field(f"{side}.exchange.durable", "boolean", f"{label} exchange durable", default=False, when=on),
        Field(f"{side}.exchange.autoDelete", "boolean", f"{label} exchange auto delete", default=False, when=on),
        Field(
            f"{side}.routingKey",
            "string",
            f"{label} routing key",
            when=on,
            help="Topic exchanges match it against binding patterns (* one word, # any); fanout ignores it.",
        ),
    )


SHARED = Settings(
    fields=(
        Field("security.auth.username", "string", "Username"),
        Field("security.auth.password", "secret", "Password"),
        Field("security.ssl.enabled", "boolean", "Use TLS", default=False),
        Field(
            "security.ssl.hostnameVerifier",
            "boolean",
            "Verify the broker's host name",
            default=True,
            when=("security.ssl.enabled", (True,)),
        ),
        *trust_store(
            "security.ssl.trustStore",
            Field(
                "security.ssl.trustStore.type",
                "enum",
                "Trust store type",
                default="NONE",
                choices=STORE_TYPES,
                when=("security.ssl.enabled", (True,)),
                help="NONE: the system's certificate authorities.",
            ),
            "path",
            "content",
        ),
        *gravitee_key_store(
            "security.ssl.keyStore",
            Field(
                "security.ssl.keyStore.type",
                "enum",
                "Key store type",
                default="NONE",
                choices=STORE_TYPES,
                when=("security.ssl.enabled", (True,)),
            ),
        ),
        use_choice(),
        *side_fields("producer", "Producer"),
        *side_fields("consumer", "Consumer"),
        Field(
            "consumer.bindingHeaders",
            "pairs",
            "Binding headers",
            when=("consumer.exchange.type", ("headers",)),
            help="One 'name: value' per line: the headers a message must carry to reach the client.",
        ),
        Field(
            "consumer.headersMatch",
            "enum",
            "Headers match",
            default="all",
            choices=("all", "any"),
            when=("consumer.exchange.type", ("headers",)),
        ),
        Field(
            "consumer.queueExpiry",
            "integer",
            "Queue expiry (s)",
            default=DEFAULT_EXPIRY_S,
            minimum=1,
            when=("consumer.enabled", (True,)),
            help="A client's queue is removed after it has had no consumer for this long (x-expires).",
        ),
    ),
    checks=(_check_names, _check_tls),
    sections=(
        ("security.auth", "Authentication"),
        ("security.ssl", "TLS"),
        ("security.ssl.trustStore", "SSL trust store"),
        ("security.ssl.keyStore", "SSL key store"),
        ("use", "Producer and consumer"),
        ("producer", "Producer"),
        ("consumer", "Consumer"),
    ),
)


def summary(shared):
    def side(name):
        exchange = get_path(shared, f"{name}.exchange") or {}
        key = get_path(shared, f"{name}.routingKey")
        return f"{exchange.get('name', '?')} ({exchange.get('type') or 'topic'})" + (f", key {key}" if key else "")

    ssl = get_path(shared, "security.ssl.enabled")
    return summary_line(
        "TLS" if ssl else "AMQP",
        ssl and store_summary(shared, "security.ssl.trustStore"),
        ssl and store_summary(shared, "security.ssl.keyStore", "key"),
        user_summary(shared),
        *sides_summary(shared, side("producer"), side("consumer")),
    )


def probe(configuration):
    """Can a TCP connection be opened to the broker?"""
    host, port = configuration.get("serverHost"), configuration.get("serverPort")
    return tcp_probe([(f"{host}:{port}", host, port)])


SPEC = EndpointSpec(
    type="rabbitmq",
    label="RabbitMQ",
    connector=RabbitEndpoint,
    description="Publish to and consume from RabbitMQ exchanges (AMQP 0-9-1).",
    configuration=Settings(
        fields=(
            Field("serverHost", "string", "Server host", required=True),
            Field("serverPort", "integer", "Server port", default=5672, required=True),
            Field("virtualHost", "string", "Virtual host", default="/"),
        ),
        checks=(_check_port,),
    ),
    shared=SHARED,
    probe=probe,
    summary=summary,
    target=lambda configuration: (
        f"{configuration.get('serverHost')}:{configuration.get('serverPort')}{configuration.get('virtualHost') or '/'}"
    ),
    forget=forget_queues,
)
