"""MQTT 5 endpoint (paho-mqtt 2.x, cooperative under gevent).

Each paho client's network loop is driven by a greenlet of ours (`client.loop()` on gevent's
sockets), not by paho's own thread or reconnect logic, so that the reconnect attempts, their
backoff and the "down" state are ours to count and to report.

Publish: one client per endpoint. Consume: a client per client identifier (and qos) and process,
subscribed through a shared subscription `$share/<group>/<topic>`, so that several gateway
processes serving one client identifier split its messages instead of each getting all of them;
at-least-once, subscribed to the topic itself in a session that outlives reconnects; or, for qos
none, one fan-out client per endpoint and process whose messages go to every connected subscriber.
MQTT has no replayable position: at-least-once messages are numbered by the process that wrote
them (a client resuming after one gets again what was written after it); other messages carry no
id, and a resume token is ignored.
"""

import base64
import collections
import functools
import hashlib
import itertools
import logging
import os
import re
import socket
import ssl
import time
import uuid
from typing import NamedTuple

import gevent
import paho.mqtt.client as mqtt
from gevent.event import AsyncResult, Event
from gevent.lock import BoundedSemaphore
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ...messages import (
    EndpointConnector,
    EndpointError,
    Interrupted,
    Message,
    OutcomeUnknown,
    Subscription,
    Unreachable,
)
from ...messages import (
    attribute as flow_attribute,
)
from ...settings import (
    STORE_TYPES,
    STORES,
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
from ...specs import EndpointSpec
from ...tls.stores import check_gravitee_stores, diagnose_tls, gravitee_ssl_context
from ...toolkit.fanout import FanOut
from ...toolkit.pool import IdlePool
from ...toolkit.probe import tcp_probe
from ...toolkit.reconnect import Reconnect
from ...toolkit.subscriptions import QuietSubscription, Unacked
from ...toolkit.topics import topic_errors

log = logging.getLogger("gatehouse.mqtt5")
TOPIC_ATTRIBUTE = "gravitee.attribute.mqtt5.topic"  # a flow's choice of topic for a message

CONNECT_TIMEOUT_S = 5
KEEPALIVE_S = 30
LOOP_SLICE_S = 0.5
PUBLISH_TIMEOUT_S = 10
IDLE_CLIENT_S = 30  # how long a subscriber's connection stays open for its client's next poll
# At-least-once sessions last at least this long (s): past the reconnect attempts' backoff and a
# client's coming back, the broker holds what comes meanwhile.
AT_LEAST_ONCE_SESSION_S = 300
# What an at-least-once consumer keeps of the messages last written, for a client that resumes.
REPLAY_MESSAGES, REPLAY_BYTES = 500, 512 * 1024
# Unique per process, so that two gateway processes never take over each other's MQTT sessions.
PROCESS = f"{socket.gethostname()}-{os.getpid()}"

_endpoints = set()  # live endpoints, for the portal's status probe (same process)


def decapitalise(text):
    return text[:1].lower() + text[1:]


# ----- messages -----
def to_message(msg):
    props = msg.properties
    headers = {}
    for name, value in getattr(props, "UserProperty", None) or ():
        headers.setdefault(name, []).append(value)
    metadata = {"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain)}
    for attribute, key in (
        ("ContentType", "contentType"),
        ("MessageExpiryInterval", "messageExpiryInterval"),
        ("ResponseTopic", "responseTopic"),
    ):
        value = getattr(props, attribute, None)
        if value is not None:
            metadata[key] = value
    correlation = getattr(props, "CorrelationData", None)
    if correlation is not None:
        metadata["correlationData"] = as_text(correlation)
    return Message(msg.payload, None, headers, metadata)


def as_text(data):
    """Correlation data is bytes: its text when it is UTF-8 (as a request id mostly is), else base64."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


def publish_properties(message, producer):
    pairs = [(name, value) for name, values in message.headers.items() for value in values]
    content_type = message.metadata.get("contentType") or (message.headers.get("content-type") or [None])[0]
    expiry, response_topic = producer.get("messageExpiryInterval", -1), producer.get("responseTopic") or None
    if pairs:
        return new_properties(pairs, content_type, expiry, response_topic)
    return shared_properties(content_type, expiry, response_topic)


@functools.lru_cache(maxsize=64)
def shared_properties(content_type, expiry, response_topic):
    """Without user properties, messages of an endpoint mostly carry the same properties: built once
    (paho's Properties validate every attribute set, a tenth of a QoS 0 publish); paho only packs them."""
    return new_properties([], content_type, expiry, response_topic)


def new_properties(pairs, content_type, expiry, response_topic):
    props = Properties(PacketTypes.PUBLISH)
    if pairs:
        props.UserProperty = pairs
    if content_type:
        props.ContentType = content_type
    if expiry >= 0:
        props.MessageExpiryInterval = expiry
    if response_topic:
        props.ResponseTopic = response_topic
    return props


# ----- one connection to the broker -----
class Entry(NamedTuple):
    """A received message, with what acknowledging it takes: its packet id in its session."""

    message: Message
    mid: int
    qos: int
    session: int


class Connection:
    """A paho client, connected (or an EndpointError raised) when built. When the connection drops
    it reconnects up to the endpoint's attempts, with backoff; then it is down for good (`error`).

    Received messages wait in `queue` as Entry; `on_message`, when given, takes them instead (the
    fan-out). With `manual_ack` a QoS 1 message is acknowledged only by `ack`. `clean_start` and
    `session_expiry` are the endpoint's unless given (at-least-once keeps its session)."""

    def __init__(
        self,
        endpoint,
        client_id,
        topic=None,
        qos=0,
        manual_ack=False,
        on_message=None,
        on_down=None,
        clean_start=None,
        session_expiry=None,
    ):
        self.endpoint = endpoint
        self.client_id = client_id
        self.topic, self.qos = topic, qos
        self.on_message, self.on_down = on_message, on_down
        self.clean_start = endpoint.clean_start if clean_start is None else clean_start
        self.session_expiry = endpoint.session_expiry if session_expiry is None else session_expiry
        self.queue = collections.deque()
        # The packet ids of a session are its own: an entry of an earlier session is never acknowledged.
        self.session = 0
        self.pending = set()  # ids of this session's messages received and not yet acknowledged
        self.owed = set()  # ids acknowledged while the connection was down: the broker sends them again
        self.arrived = Event()
        self.up = Event()
        self.error = None
        self.closed = False
        self.acks = {}  # mid -> AsyncResult(reason codes) of a SUBSCRIBE
        self.connack = None
        self.lost = None  # why the broker dropped the connection, when it said so
        self.client = endpoint.new_client(client_id, manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._connect()
        self.loop = gevent.spawn(self._run)

    # paho callbacks (run inside client.loop(), in this connection's greenlet)
    def _on_connect(self, client, userdata, flags, reason, properties):
        self.connack.set((reason, flags.session_present))

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        if mid in self.acks:
            self.acks.pop(mid).set(reasons)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.lost = decapitalise(str(reason))

    def _on_message(self, client, userdata, msg):
        if self.on_message is not None:
            self.on_message(to_message(msg))
            return
        if msg.qos:
            # A resumed session brings again what was not acknowledged: held already, or written.
            if msg.mid in self.pending:
                return
            if msg.mid in self.owed:
                self.owed.discard(msg.mid)
                self.client.ack(msg.mid, msg.qos)
                return
            self.pending.add(msg.mid)
        self.queue.append(Entry(to_message(msg), msg.mid, msg.qos, self.session))
        self.arrived.set()

    def _pump_until(self, done):
        while not done():
            rc = self.client.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS and not done():  # a refusing CONNACK also ends the loop
                raise ConnectionError(self.lost or mqtt.error_string(rc))

    def _connect(self):
        """CONNECT and, without a session that holds it, SUBSCRIBE; EndpointError when refused."""
        endpoint = self.endpoint
        self.connack = AsyncResult()
        try:
            with gevent.Timeout(CONNECT_TIMEOUT_S, TimeoutError(f"no answer within {CONNECT_TIMEOUT_S} s")):
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = self.session_expiry
                self.client.connect(
                    endpoint.host, endpoint.port, KEEPALIVE_S, clean_start=self.clean_start, properties=properties
                )
                self._pump_until(self.connack.ready)
                reason, session_present = self.connack.get()
                if reason.is_failure:
                    self.client.disconnect()
                    # Mosquitto answers a wrong password with "not authorized", not with code 0x86.
                    hint = " (check the user name and password)" if reason.value in (0x86, 0x87) else ""
                    raise Unreachable(
                        f"the MQTT broker at {endpoint.address} refused the connection: "
                        f"{decapitalise(str(reason))}{hint}"
                    )
                if not session_present:
                    self.session += 1
                    self.pending.clear()
                    self.owed.clear()
                if self.topic:
                    # Even into a session that has it: Mosquitto 2.0 forgets shared subscriptions when
                    # it restarts, sessions or not. Retained messages only come to a new subscription.
                    result = AsyncResult()
                    _, mid = self.client.subscribe(self.topic, options=SubscribeOptions(qos=self.qos, retainHandling=1))
                    self.acks[mid] = result
                    self._pump_until(result.ready)
                    refused = [r for r in result.get() if r.is_failure]
                    if refused:
                        self.client.disconnect()
                        raise EndpointError(
                            f"the MQTT broker at {endpoint.address} refused the subscription to "
                            f"{self.topic}: {decapitalise(str(refused[0]))}"
                        )
        except EndpointError:
            raise
        except Exception as exc:
            abort(self.client)
            raise Unreachable(endpoint.explain(exc)) from None
        self.lost = None
        self.up.set()
        endpoint.reached()

    def _run(self):
        while not self.closed:
            rc = self.client.loop(timeout=LOOP_SLICE_S)
            if self.closed:
                return
            if rc == mqtt.MQTT_ERR_SUCCESS:
                continue
            self.up.clear()
            reason = self.lost or mqtt.error_string(rc)
            log.warning("MQTT broker %s: connection lost (%s); reconnecting", self.endpoint.address, reason)
            if not self._reconnect(f"the connection to the MQTT broker {self.endpoint.address} was lost ({reason})"):
                return

    def _reconnect(self, last):
        policy = self.endpoint.reconnect
        for attempt in policy.tries(stop=lambda: self.closed):
            try:
                self._connect()
                log.info(
                    "MQTT broker %s: reconnected (attempt %d of %d)",
                    self.endpoint.address,
                    attempt + 1,
                    policy.attempts,
                )
                return True
            except EndpointError as exc:
                last = str(exc)
        if self.closed:
            return False
        self.error = policy.gave_up(last)
        log.warning("MQTT broker %s: %s", self.endpoint.address, self.error)
        self.endpoint.gave_up(self.error)
        self.arrived.set()
        self.up.set()  # whoever waits for the connection now sees the error
        if self.on_down is not None:
            self.on_down()
        return False

    def wait_up(self, timeout):
        """True when connected; Unreachable once down; False while still reconnecting."""
        self.up.wait(timeout)
        if self.error:
            raise Unreachable(self.error)
        return self.up.is_set()

    def ack(self, entries):
        for entry in entries:
            if entry.qos and entry.session == self.session and entry.mid in self.pending:
                self.pending.discard(entry.mid)
                if not self.up.is_set() or self.client.ack(entry.mid, entry.qos) != mqtt.MQTT_ERR_SUCCESS:
                    self.owed.add(entry.mid)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.up.set()
        self.arrived.set()
        if gevent.getcurrent() is not self.loop:
            self.loop.kill()
        # paho writes DISCONNECT at once (its loop is not ours to run here): the broker then keeps
        # or ends the session as CONNECT asked, and no will is sent.
        self.client.disconnect()
        abort(self.client)


# ----- consuming -----
class MqttSubscription(Subscription):
    """One client's stream from the connection of its client identifier (shared with that
    identifier's other live streams in this process: they split its messages). QoS 1 messages are
    acknowledged to the broker when handed over (auto, at-most-once) or once written to the client
    (at-least-once); at-least-once, they are numbered, and a client resuming after one of them
    first gets again those written after it (what was on its way when it left)."""

    def __init__(self, consumer, connection, replay):
        self.consumer, self.connection = consumer, connection
        self.replay = collections.deque(replay)
        self.unacked = Unacked()  # at-least-once: the messages as handed over, with their entries
        self.closed = False

    def next_batch(self, timeout, max_messages):
        if self.closed:
            return None
        if self.replay:
            return [self.replay.popleft() for _ in range(min(max_messages, len(self.replay)))]
        connection = self.connection
        deadline = time.monotonic() + timeout
        while not connection.queue and not (self.closed or connection.closed or connection.error):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            connection.arrived.clear()  # the other waiting streams are woken all the same
            connection.arrived.wait(remaining)
        if self.closed:
            return None
        if not connection.queue:
            if connection.error:
                raise EndpointError(connection.error)
            return None  # the endpoint closed the connection
        entries = [connection.queue.popleft() for _ in range(min(max_messages, len(connection.queue)))]
        if not self.consumer.at_least_once:
            connection.ack(entries)
            return [entry.message for entry in entries]
        handed = [(self.consumer.recent.numbered(entry.message), entry) for entry in entries]
        self.unacked.hold(handed)
        return [message for message, _ in handed]

    def acknowledge(self, messages):
        done = self.unacked.take(messages)
        if done:
            self.connection.ack([entry for _, entry in done])
            self.consumer.recent.written([message for message, _ in done])

    def close(self):
        if not self.closed:
            self.closed = True
            # Handed over but never written: the client's next subscription gets them first.
            self.connection.queue.extendleft(reversed([entry for _, entry in self.unacked.clear()]))
            self.connection.arrived.set()
            self.consumer.release(self)


class Consumer:
    """A client identifier (and qos) in this process while it has live subscriptions: one connection,
    so one MQTT session, for them all. Between its subscriptions the endpoint pools its connection."""

    def __init__(self, endpoint, key, recent):
        self.endpoint, self.key = endpoint, key
        self.at_least_once = key[2] == "at-least-once"
        self.lock = BoundedSemaphore()  # one CONNECT at a time: a second would take the session over
        self.connection = None
        self.subscriptions = set()
        self.joining = 0  # subscribe calls under way: the consumer is in use while one waits for the lock
        self.recent = recent

    def subscribe(self, resume_after):
        self.joining += 1
        try:
            with self.lock:
                if self.connection is None or self.connection.error or self.connection.closed:
                    self.retire()
                    self.connection = self.endpoint.idle.take(self.key) or self.endpoint.consumer_connection(
                        self.key, self.at_least_once
                    )
                replay = self.recent.after(resume_after)
                subscription = MqttSubscription(self, self.connection, replay or ())
                self.subscriptions.add(subscription)
                if replay is not None:
                    # The client is back: the stream it left is over, noticed or not. Left open, it would
                    # take messages to a client that is gone.
                    for other in [s for s in self.subscriptions if s is not subscription]:
                        other.close()
                return subscription
        finally:
            self.joining -= 1
            self._leave_if_unused()

    def release(self, subscription):
        self.subscriptions.discard(subscription)
        self._leave_if_unused()

    def _leave_if_unused(self):
        if not self.subscriptions and not self.joining:
            self.endpoint.left(self)

    def retire(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Recent:
    """At-least-once: the messages last written to a client, numbered, for a client that comes back after
    one of them (Last-Event-ID, cursor)."""

    def __init__(self):
        self.epoch = uuid.uuid4().hex[:8]  # ids of another process, or of an earlier consumer, are not ours
        self.numbers = itertools.count(1)
        self.messages = collections.deque()  # (number, message) written, the newest last
        self.bytes = 0

    def numbered(self, message):
        return Message(message.content, f"{self.epoch}-{next(self.numbers)}", message.headers, message.metadata)

    def written(self, messages):
        for message in messages:
            self.messages.append((int(message.id.rpartition("-")[2]), message))
            self.bytes += len(message.content)
        while len(self.messages) > REPLAY_MESSAGES or self.bytes > REPLAY_BYTES:
            self.bytes -= len(self.messages.popleft()[1].content)

    def after(self, token):
        """The messages written after the one with id `token`; None when it is not one of ours."""
        epoch, _, number = (token or "").rpartition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        return [message for n, message in self.messages if n > int(number)]


class MqttFanOut(FanOut):
    """qos none: one connection per endpoint and process subscribed at QoS 0, whose messages go to
    every connected subscriber."""

    def __init__(self, endpoint):
        super().__init__()
        self.connection = Connection(
            endpoint,
            f"gatehouse-fanout-{uuid.uuid4().hex[:12]}",
            endpoint.topic("consumer"),
            0,
            on_message=self.gather,
            on_down=self._down,
        )

    def _down(self):
        self.failed(self.connection.error)

    def close(self):
        self.connection.close()


# ----- the endpoint -----
class Mqtt5Endpoint(EndpointConnector):
    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        self.host = configuration["serverHost"]
        self.port = int(configuration["serverPort"])
        self.address = f"{self.host}:{self.port}"
        self.reconnect = Reconnect.doubling(0.5, 5.0, shared["reconnectAttempt"])
        self.session_expiry = shared["sessionExpiryInterval"]
        self.clean_start = shared["cleanStart"]
        self.producer = shared.get("producer") or {}
        self.consumer = shared.get("consumer") or {}
        self.tls_context = None
        self.down = None  # why the last connection gave up, until one connects again
        self.publisher = None
        self.publisher_lock = BoundedSemaphore()
        self.fanout = None
        self.fanout_lock = BoundedSemaphore()
        self.consumers = {}  # (api id, client id, qos) -> Consumer, while in use
        # A consumer's connection between its client's subscriptions; closed at once when broken.
        self.idle = IdlePool(
            IDLE_CLIENT_S,
            IDLE_CLIENT_S / 3,
            Connection.close,
            broken=lambda connection: bool(connection.error) or connection.closed,
        )
        # At-least-once, what was last written is kept as long as the broker keeps the session.
        self.recent = IdlePool(AT_LEAST_ONCE_SESSION_S, IDLE_CLIENT_S / 3, lambda recent: None)
        _endpoints.add(self)

    # ----- clients -----
    def new_client(self, client_id, manual_ack):
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        auth = get_path(self.shared, "security.auth") or {}
        if auth.get("username"):
            client.username_pw_set(auth["username"], auth.get("password"))
        ssl_settings = get_path(self.shared, "security.ssl") or {}
        if tls_enabled(self.shared):
            if self.tls_context is None:
                try:
                    self.tls_context = gravitee_ssl_context(ssl_settings)
                except SettingsError as exc:
                    raise EndpointError(f"the MQTT TLS settings cannot be used: {exc}") from None
            client.tls_set_context(self.tls_context)
            client.tls_insecure_set(not self.tls_context.check_hostname)
        return client

    def explain(self, exc):
        where = f"the MQTT broker at {self.address}"
        if isinstance(exc, socket.gaierror):
            return f"{where} cannot be reached: no such host {self.host}"
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError)) or (
            self.tls_context is not None and isinstance(exc, (TimeoutError, ConnectionError))
        ):
            diagnosis = self.tls_context and diagnose_tls(self.tls_context, [self.address], "MQTT broker")
            if diagnosis:
                return diagnosis
        if isinstance(exc, ConnectionRefusedError):
            return f"{where} cannot be reached: connection refused"
        if isinstance(exc, (TimeoutError, gevent.Timeout)):
            return f"{where} did not answer within {CONNECT_TIMEOUT_S} s"
        if isinstance(exc, OSError):
            return f"{where} cannot be reached: {exc.strerror or exc}"
        return f"{where}: {exc}"

    def topic(self, side):
        return (self.producer if side == "producer" else self.consumer)["topic"]

    def reached(self):
        self.down = None

    def gave_up(self, reason):
        self.down = reason

    # ----- publish -----
    def publish(self, context, message):
        if not self.producer.get("enabled"):
            raise EndpointError("this MQTT endpoint is not configured to publish")
        connection = self._publisher()
        if not connection.wait_up(PUBLISH_TIMEOUT_S):
            raise Unreachable(f"the MQTT broker at {self.address} is reconnecting; try again")
        qos = 0 if context.qos == "none" else 1
        chosen = flow_attribute(context, message, TOPIC_ATTRIBUTE)
        if chosen is not None:  # a flow chose it, often from what the client sent: checked as a setting is
            problem = topic_problem(str(chosen), False) if str(chosen) else "must not be empty"
            if problem:
                raise Interrupted(
                    400, f"The topic {str(chosen)[:200]!r} chosen for the message: {problem}", "INVALID_TOPIC"
                )
        info = connection.client.publish(
            str(chosen) if chosen is not None else self.topic("producer"),
            message.content,
            qos,
            self.producer.get("retained", False),
            publish_properties(message, self.producer),
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise EndpointError(f"publishing to the MQTT broker at {self.address} failed: {mqtt.error_string(info.rc)}")
        if qos and not wait_published(info, connection, PUBLISH_TIMEOUT_S):
            # Sent, or about to be sent again on reconnecting: the broker may have it.
            raise OutcomeUnknown(
                connection.error
                or f"the MQTT broker at {self.address} did not acknowledge the message within {PUBLISH_TIMEOUT_S} s"
            )

    def _publisher(self):
        with self.publisher_lock:
            if self.publisher is None or self.publisher.error:
                if self.publisher is not None:
                    self.publisher.close()
                self.publisher = None
                self.publisher = Connection(self, f"gatehouse-pub-{uuid.uuid4().hex[:12]}")
            return self.publisher

    # ----- subscribe -----
    def subscribe(self, context):
        if not self.consumer.get("enabled"):
            # As Gravitee does: a websocket that only publishes (its subscriber side left on by
            # default, as in the mqtt5-endpoint-publish fixture) gets a quiet stream, not an error.
            return QuietSubscription()
        if context.qos == "none":
            with self.fanout_lock:
                if self.fanout is None or self.fanout.error:
                    if self.fanout is not None:
                        self.fanout.close()
                    self.fanout = None
                    self.fanout = MqttFanOut(self)
                return self.fanout.subscribe()
        key = (context.api_id, context.client_id, context.qos)
        consumer = self.consumers.get(key)
        if consumer is None:
            recent = self.recent.take(key) if context.qos == "at-least-once" else None
            consumer = self.consumers[key] = Consumer(self, key, recent or Recent())
        return consumer.subscribe(context.resume_after)

    def left(self, consumer):
        """The consumer's last subscription ended: its connection waits for the client's next one, unless
        the broker holds what comes while the client is away (a session expiry), or it is broken."""
        if self.consumers.get(consumer.key) is consumer:
            del self.consumers[consumer.key]
        connection, consumer.connection = consumer.connection, None
        if connection is not None:
            if connection.error or connection.closed or self.session_expiry > 0:
                connection.close()
            else:
                self.idle.put(consumer.key, connection)
        if consumer.at_least_once:
            self.recent.put(consumer.key, consumer.recent)

    def consumer_connection(self, key, at_least_once):
        group = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
        client_id = f"gatehouse-{group}-{PROCESS}"
        if at_least_once:
            # A session that outlives a reconnect (of the broker, of the client): the broker keeps
            # what comes meanwhile. Its own subscription, not a shared one: Mosquitto 2.0 drops
            # shared subscriptions when it restarts, and what is published until they are made again.
            return Connection(
                self,
                client_id,
                self.topic("consumer"),
                1,
                manual_ack=True,
                clean_start=False,
                session_expiry=max(self.session_expiry, AT_LEAST_ONCE_SESSION_S),
            )
        # A shared subscription: several gateway processes serving one client identifier split its messages.
        return Connection(self, client_id, f"$share/{group}/{self.topic('consumer')}", 1, manual_ack=True)

    def close(self):
        _endpoints.discard(self)
        self.idle.close()
        self.recent.close()
        if self.fanout is not None:
            self.fanout.close()
        for consumer in self.consumers.values():
            consumer.retire()
        self.consumers.clear()
        if self.publisher is not None:
            self.publisher.close()


def wait_published(info, connection, timeout):
    """Until the PUBACK came (True), the connection went down (False) or timeout (False). Waits
    in slices: paho does not wake a waiting publisher when its connection is given up."""
    deadline = time.monotonic() + timeout
    while not info.is_published():
        if connection.error or time.monotonic() > deadline:
            return False
        info.wait_for_publish(LOOP_SLICE_S)
    return True


def abort(client):
    """Close a client's socket now: paho has no public call for a connection that failed half-way."""
    if client.socket() is not None:
        client._sock_close()


def tls_enabled(shared):
    return get_path(shared, "security.ssl.trustStore.type") in STORES


# ----- checks at save -----
PORT = re.compile(r"^\d{1,5}$")
HOST = re.compile(r"^[A-Za-z0-9.\-_:\[\]]+$")


def _check_server(values, settings):
    errors = {}
    host, port = str(values.get("serverHost", "")), str(values.get("serverPort", ""))
    if not HOST.match(host):
        errors["serverHost"] = f"Server host: '{host}' is not a host name or IP address"
    if not PORT.match(port) or not 1 <= int(port) <= 65535:
        errors["serverPort"] = f"Server port: '{port}' is not a port number (1 to 65535)"
    return errors


def topic_problem(topic, wildcards):
    """What is wrong with a topic (or, with wildcards, a topic filter); None when it is usable."""
    if "\0" in topic:
        return "must not contain a NUL character"
    levels = topic.split("/")
    if not wildcards:
        if "+" in topic or "#" in topic:
            return "a topic to publish to cannot hold the wildcards + or #"
        return None
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "# must be a whole level, the last one (as in sensors/#)"
        if "+" in level and level != "+":
            return "+ must be a whole level (as in sensors/+/temperature)"
    return None


def _check_topics(values, settings):
    return topic_errors(values, "topic", topic_problem)


def _check_tls(values, settings):
    if not tls_enabled(values):
        return {}
    return check_gravitee_stores(get_path(values, "security.ssl") or {}, "security.ssl")


def summary(shared):
    tls = store_summary(shared, "security.ssl.trustStore")
    return summary_line(
        "TLS, " + tls if tls else "TCP",
        store_summary(shared, "security.ssl.keyStore", "key"),
        user_summary(shared),
        *sides_summary(shared, get_path(shared, "producer.topic"), get_path(shared, "consumer.topic")),
    )


def probe(configuration):
    """Down when this process's gateway gave up reconnecting to the broker; else can a TCP
    connection be opened to it?"""
    host, port = configuration.get("serverHost"), str(configuration.get("serverPort"))
    address = f"{host}:{port}"
    for endpoint in list(_endpoints):
        if endpoint.address == address and endpoint.down:
            return f"down: {endpoint.down}"
    return tcp_probe([(address, host, port)])


PRODUCER = ("producer.enabled", (True,))
CONSUMER = ("consumer.enabled", (True,))
TLS = ("security.ssl.trustStore.type", STORES)

SHARED = Settings(
    fields=(
        Field(
            "reconnectAttempt",
            "integer",
            "Reconnect attempts",
            default=3,
            minimum=0,
            maximum=10,
            help=(
                "How often to reconnect after the connection drops (0 to 10), with backoff; then the endpoint is down."
            ),
        ),
        Field(
            "sessionExpiryInterval",
            "integer",
            "Session expiry interval (s)",
            default=0,
            minimum=0,
            help="How long the broker keeps a consumer's session (and its QoS 1 messages) while it is away; 0: none.",
        ),
        Field(
            "cleanStart",
            "boolean",
            "Clean start",
            default=True,
            help="Start every connection with a fresh session, discarding what the broker kept.",
        ),
        Field("security.auth.username", "string", "Username"),
        Field("security.auth.password", "secret", "Password"),
        *trust_store(
            "security.ssl.trustStore",
            Field(
                "security.ssl.trustStore.type",
                "enum",
                "TLS trust store",
                default="NONE",
                choices=STORE_TYPES,
                help="NONE: plain TCP. Otherwise TLS, trusting the certificates of this store.",
            ),
            "path",
            "content",
        ),
        Field("security.ssl.hostnameVerifier", "boolean", "Verify the host name", default=True, when=TLS),
        *gravitee_key_store(
            "security.ssl.keyStore",
            Field(
                "security.ssl.keyStore.type",
                "enum",
                "Key store (client certificate)",
                default="NONE",
                choices=STORE_TYPES,
                when=TLS,
            ),
        ),
        use_choice(),
        Field("producer.enabled", "boolean", "Use producer", default=False),
        Field("producer.topic", "string", "Producer topic", required=True, when=PRODUCER, help="No wildcards."),
        Field(
            "producer.retained",
            "boolean",
            "Retained",
            default=False,
            when=PRODUCER,
            help="The broker keeps the last message and gives it to every new subscriber.",
        ),
        Field(
            "producer.messageExpiryInterval",
            "integer",
            "Message expiry interval (s)",
            default=-1,
            minimum=-1,
            when=PRODUCER,
            help="-1: the message never expires.",
        ),
        Field("producer.responseTopic", "string", "Response topic", when=PRODUCER),
        Field("consumer.enabled", "boolean", "Use consumer", default=False),
        Field(
            "consumer.topic",
            "string",
            "Consumer topic",
            required=True,
            when=CONSUMER,
            help="Wildcards allowed: + for one level, # for the rest (sensors/+/temperature, sensors/#).",
        ),
    ),
    checks=(_check_topics, _check_tls),
    aliases=(("reconnectAttempts", "reconnectAttempt"),),
    sections=(
        *((name, "Connection") for name in ("reconnectAttempt", "sessionExpiryInterval", "cleanStart")),
        ("security.auth", "Authentication"),
        ("security.ssl.trustStore", "SSL trust store"),
        ("security.ssl.hostnameVerifier", "SSL trust store"),
        ("security.ssl.keyStore", "SSL key store"),
        ("use", "Producer and consumer"),
        ("producer", "Producer"),
        ("consumer", "Consumer"),
    ),
)

SPEC = EndpointSpec(
    type="mqtt5",
    publish_attributes=(TOPIC_ATTRIBUTE,),
    label="MQTT 5",
    connector=Mqtt5Endpoint,
    description="Publish to and subscribe to the topics of an MQTT 5 broker.",
    configuration=Settings(
        fields=(
            Field("serverHost", "string", "Server host", required=True),
            Field("serverPort", "string", "Server port", required=True, help="1 to 65535, e.g. 1883 (8883 for TLS)."),
        ),
        checks=(_check_server,),
    ),
    shared=SHARED,
    probe=probe,
    summary=summary,
    target=lambda configuration: f"{configuration.get('serverHost')}:{configuration.get('serverPort')}",
)
