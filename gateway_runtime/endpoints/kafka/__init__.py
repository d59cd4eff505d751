"""Kafka endpoint (kafka-python, cooperative under gevent).

Produce: one producer per endpoint, one record per configured topic. Consume: a consumer per
client identifier (the consumer group), kept for a while after a subscription ends so that the
next http-get poll of the same client does not wait for a group join. The message id is the
consumer position after the message, so it is also the resume token.
"""

import collections
import logging
import re
import time

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import (
    BrokerResponseError,
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NoOffsetForPartitionError,
    NotEnoughReplicasAfterAppendError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    RequestTimedOutError,
    UnknownProducerIdError,
)

from ...messages import (
    EndpointConnector,
    EndpointError,
    Interrupted,
    Message,
    NotFound,
    OutcomeUnknown,
    Subscription,
    Unreachable,
    attribute,
)
from ...outage import Outage, one_line
from ...settings import (
    STORE_TYPES,
    Field,
    Settings,
    SettingsError,
    get_path,
    kafka_key_store,
    sides_summary,
    store_summary,
    summary_line,
    topics_text,
    trust_store,
    use_choice,
)
from ...specs import EndpointSpec
from ...tls.stores import check_key_store, check_trust_store, diagnose_tls, materialise
from ...toolkit.fanout import FanOut
from ...toolkit.pool import IdlePool
from ...toolkit.probe import host_port, tcp_probe
from ...toolkit.reconnect import Reconnect
from .jaas import JaasError, kafka_sasl_settings
from .positions import PositionIds, decode_position, seek_resumed

log = logging.getLogger("gatehouse.kafka")
TOPICS_ATTRIBUTE = "gravitee.attribute.kafka.topics"  # a flow's choice of topics for a message
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

# Tansu (and Kafka) start a new member's first fetch after about session_timeout / 2.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000
# Kafka's default. A broker whose storage is slower than this (Tansu on S3) answers a fetch empty at
# this deadline even with records there, every time: with 20 ms, under load, a stream got nothing more.
# A fetch is answered once a record comes: Kafka at once, Tansu in 80-100 ms (5-50 ms with 20 ms).
FETCH_MAX_WAIT_MS = 500
POLL_SLICE_S = 0.25  # next_batch polls in slices so that close() is noticed quickly
# A new consumer first joins its group (about 3 s with Tansu). An http-get's messagesLimitDurationMs
# starts once the consumer is in (Subscription.wait_until_receiving), so that the join does not use it up: the
# first poll of a new client waits up to JOIN_WAIT_S longer. Streams (SSE, WebSocket) do not wait:
# their heartbeats go on while the consumer joins, or a client or proxy timing out a silent stream
# would reconnect and start the join again.
JOIN_WAIT_S = 10
# How long a consumer waits in the pool for its client's next poll. Short: an idle consumer holds up
# every rebalance of its group (it is not polled, so it cannot rejoin) until it leaves.
IDLE_CONSUMER_S = 5
REAP_EVERY_S = 1
# How long a resuming client's new stream waits for its old one to give its consumer back: a poll
# slice and a little more, unless the old stream is stuck writing to a client that is gone.
SUPERSEDE_WAIT_S = 1.0
SEND_TIMEOUT_S = 10  # a record not acknowledged by then is given up by the producer (delivery timeout)
BOOTSTRAP_TIMEOUT_MS = 3000  # kafka-python's default (30 s) would hold a request that long when brokers are down
FANOUT_RECONNECT = Reconnect((1.0,))  # the fan-out's consumer, after it failed: for as long as the endpoint lives
# Reconnect attempts back off up to this: kafka-python's 30 s would leave a broker that is back unused that long.
RECONNECT_BACKOFF_MAX_MS = 1000
CONFLUENT_MAGIC = 0
BOOTSTRAP = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")
PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL = ("SASL_PLAINTEXT", "SASL_SSL")
TLS = ("SSL", "SASL_SSL")
# The broker no longer knows the idempotent producer (it restarted without its producer state, or
# the id expired): kafka-python's producer keeps failing from then on, a new producer starts afresh.
PRODUCER_FORGOTTEN = (
    UnknownProducerIdError,
    OutOfOrderSequenceNumberError,
    InvalidProducerEpochError,
    ProducerFencedError,
)
# Errors a broker answers after it may have written the records.
WRITTEN_MAYBE = (RequestTimedOutError, NotEnoughReplicasAfterAppendError)


def quiet_kafka_python():
    """kafka-python logs every reconnect to a down broker (with tracebacks) and every heartbeat
    answer of a rebalancing group (once a second): its log is shown at GATEHOUSE_LOG_LEVEL=DEBUG
    only. The endpoint says itself what failed (to the client, and once per outage in the log)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


# ----- consumption -----
def read_records(records, strip_confluent):
    """(partition, record, content, headers, metadata) for the records of one poll, in order."""
    for tp, items in sorted(records.items(), key=lambda item: (item[0].topic, item[0].partition)):
        topic, partition = tp.topic, tp.partition
        for record in items:
            value = record.value or b""
            if strip_confluent and len(value) >= 5 and value[0] == CONFLUENT_MAGIC:
                value = value[5:]
            metadata = {
                "topic": topic,
                "partition": partition,
                "offset": record.offset,
                "sourceTimestamp": record.timestamp,
            }
            if record.key is not None:
                metadata["key"] = record.key.decode("utf-8", "replace")
            headers = {}
            if record.headers:
                for name, raw in record.headers:
                    headers.setdefault(name, []).append((raw or b"").decode("utf-8", "replace"))
            yield tp, record, value, headers, metadata


class KafkaSubscription(Subscription):
    def __init__(self, endpoint, context, consumer):
        self.endpoint = endpoint
        self.context = context
        self.consumer = consumer
        self.qos = context.qos
        self.encode = endpoint.consumer_settings.get("encodeMessageId", True)
        self.strip_confluent = endpoint.consumer_settings.get("removeConfluentHeader", False)
        self.position = {}
        self.unacked = {}  # TopicPartition -> first offset delivered but not yet acknowledged
        self.closed = False
        self.superseded = False  # the client reconnected: this stream ends and gives its consumer back
        self.early = None  # a message that came while wait_until_receiving() waited for the group join
        resume = decode_position(context.resume_after)
        if resume:
            self.position.update(resume)
        consumer.resume_from = resume
        seek_resumed(consumer, consumer.assignment(), resume)  # a pooled consumer is assigned already

    def wait_until_receiving(self):
        """Until the consumer is in its group (JOIN_WAIT_S at most)."""
        deadline = time.monotonic() + JOIN_WAIT_S
        while not self.closed and not self.consumer.assignment() and time.monotonic() < deadline:
            records = self._poll(deadline, 1)  # one message at most: any max_messages takes it
            if records:
                self.early = self._messages(records)
                return

    def next_batch(self, timeout, max_messages):
        deadline = time.monotonic() + timeout
        while not self.closed and not self.superseded:
            batch, self.early = self.early, None
            records = None if batch else self._poll(deadline, max_messages)
            if records:
                batch = self._messages(records)
            if batch:
                if self.qos == "at-most-once":
                    self._commit()
                return batch
            if time.monotonic() >= deadline:
                return []
        return None

    def _poll(self, until, max_messages):
        slice_ms = int(max(0.0, min(POLL_SLICE_S, until - time.monotonic())) * 1000)
        try:
            # A handshake with a newly found broker has no deadline of its own.
            with gevent.Timeout(
                POLL_SLICE_S + BOOTSTRAP_TIMEOUT_MS / 1000, KafkaTimeoutError("no answer from the brokers")
            ):
                return self.consumer.poll(timeout_ms=slice_ms, max_records=max_messages)
        except Exception as exc:  # kafka-python raises many types; each one is told to the client
            raise EndpointError(self.endpoint.explain(exc)) from None

    def _messages(self, records):
        batch = []
        ids = PositionIds(self.position, self.encode)
        at_least_once = self.qos == "at-least-once"
        for tp, record, value, headers, metadata in read_records(records, self.strip_confluent):
            if at_least_once:
                self.unacked.setdefault(tp, record.offset)
            batch.append(Message(value, ids.after(tp, record.offset), headers, metadata))
        return batch

    def acknowledge(self, messages):
        """at-least-once: these messages were written to the client; commit up to them, in one call."""
        if self.qos != "at-least-once" or not messages:
            return
        upto = {}
        for message in messages:
            meta = message.metadata
            upto[TopicPartition(meta["topic"], meta["partition"])] = meta["offset"] + 1
        try:
            self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in upto.items()})
        except Exception as exc:
            log.warning("commit after delivery failed (the messages may come again): %s", exc)
            return
        for tp, offset in upto.items():
            if self.position.get((tp.topic, tp.partition), -1) <= offset:  # all delivered is acknowledged
                self.unacked.pop(tp, None)
            else:
                self.unacked[tp] = offset

    def _commit(self):
        try:
            self.consumer.commit()
        except Exception as exc:
            raise EndpointError(self.endpoint.explain(exc)) from None

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                # Delivered but never written to the client: the next subscription starts there again. A
                # partition a rebalance took away meanwhile starts, once assigned, from the committed offset.
                assigned = self.consumer.assignment()
                for tp, offset in self.unacked.items():
                    if tp in assigned:
                        self.consumer.seek(tp, offset)
            finally:
                self.endpoint.release(self)  # always: a consumer kept by a stream no one polls holds its group


class KafkaFanOut(FanOut):
    """qos none: one consumer per endpoint and process, outside any group, reading from the end of
    every partition, whose records go to every connected subscriber."""

    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint
        self.position = {}
        self.consumer = None
        self.connected = Event()
        self.reader = gevent.spawn(self._read)

    def _connect(self):
        settings = self.endpoint.consumer_settings
        consumer = self.endpoint.client(
            KafkaConsumer,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        pattern = re.compile(settings["topicPattern"]) if settings.get("topicPattern") else None
        topics = [t for t in consumer.topics() if pattern.fullmatch(t)] if pattern else settings["topics"]
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for tp in partitions:
            consumer.position(tp)  # fixes "the end" now: what is produced from here on is delivered
        return consumer

    def _read(self):
        encode = self.endpoint.consumer_settings.get("encodeMessageId", True)
        strip = self.endpoint.consumer_settings.get("removeConfluentHeader", False)
        for _ in FANOUT_RECONNECT.tries(wait_first=False):
            try:
                self.consumer = self._connect()
                self.recovered()
                self.connected.set()
                while True:
                    records = self.consumer.poll(timeout_ms=int(POLL_SLICE_S * 1000))
                    if records:
                        ids = PositionIds(self.position, encode)
                        self.deliver(
                            [
                                Message(value, ids.after(tp, record.offset), headers, metadata)
                                for tp, record, value, headers, metadata in read_records(records, strip)
                            ]
                        )
            except Exception as exc:
                self.failed(self.endpoint.explain(exc))
                self.connected.set()  # subscribers waiting for the start get the error instead
                if self.consumer is not None:
                    close_quietly(self.consumer)
                    self.consumer = None

    def subscribe(self):
        """A subscriber gets what is produced once this returns."""
        self.connected.wait(BOOTSTRAP_TIMEOUT_MS / 1000 + 2)
        if self.consumer is None and self.error:
            raise EndpointError(self.error)
        return super().subscribe()

    def close(self):
        self.reader.kill()
        if self.consumer is not None:
            close_quietly(self.consumer)


class KafkaEndpoint(EndpointConnector):
    """One endpoint's producer and consumer pool."""

    def __init__(self, configuration, shared):
        super().__init__(configuration, shared)
        quiet_kafka_python()
        self.bootstrap = configuration["bootstrapServers"]
        self.producer_settings = shared.get("producer") or {}
        self.consumer_settings = shared.get("consumer") or {}
        self.settings = None
        self.fanout = None
        self.producer = None
        self.producer_lock = BoundedSemaphore()
        self._outage = None
        # (client id, qos) -> consumers. Closing one leaves its group (LeaveGroup), so that the group's
        # partitions go to its other members at once.
        self.idle = IdlePool(IDLE_CONSUMER_S, REAP_EVERY_S, close_quietly)
        self.streams = collections.defaultdict(set)  # client id -> its subscriptions being served

    # ----- client settings -----
    def client_settings(self):
        """kafka-python settings shared by the producer and the consumers, built once."""
        if self.settings is None:
            protocol = get_path(self.shared, "security.protocol") or "PLAINTEXT"
            settings = {
                "bootstrap_servers": self.bootstrap.split(","),
                "security_protocol": protocol,
                "client_id": "gatehouse",
                "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
                "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
            }
            try:
                if protocol in SASL:
                    sasl = get_path(self.shared, "security.sasl") or {}
                    settings.update(kafka_sasl_settings(sasl.get("saslMechanism"), sasl.get("saslJaasConfig", "")))
                if protocol in TLS:
                    ssl_settings = get_path(self.shared, "security.ssl") or {}
                    # The context keeps what it loaded, so the PEM files need not outlive this block.
                    with materialise(ssl_settings.get("trustStore"), ssl_settings.get("keyStore")) as tls:
                        settings["ssl_context"] = tls.ssl_context(check_hostname=True)
            except (JaasError, SettingsError) as exc:
                raise EndpointError(f"the Kafka security settings cannot be used: {exc}") from None
            self.settings = settings
        return self.settings

    def explain(self, exc):
        if isinstance(exc, (KafkaTimeoutError, KafkaConnectionError, ConnectionError)):
            # kafka-python reports a failing TLS handshake only as a timeout: one of our own says why.
            context = (self.settings or {}).get("ssl_context")
            diagnosis = context and diagnose_tls(context, self.bootstrap.split(",")[:3], "Kafka broker")
            return diagnosis or f"the Kafka brokers at {self.bootstrap} cannot be reached"
        if isinstance(exc, NoOffsetForPartitionError):
            return (
                "no committed offset for this client, and autoOffsetReset is none: consume with a cursor, "
                "or set autoOffsetReset to earliest or latest"
            )
        return f"Kafka error: {type(exc).__name__}: {exc}"

    def client(self, factory, **settings):
        """A kafka-python client. Its TLS handshake has no deadline of its own (against a plain
        listener it would wait for ever), so building it is bounded here."""
        with gevent.Timeout(BOOTSTRAP_TIMEOUT_MS / 1000 + 2, KafkaTimeoutError("no answer from the brokers")):
            return factory(**self.client_settings(), **settings)

    # ----- produce -----
    def publish(self, context, message):
        if not self.producer_settings.get("enabled"):
            raise EndpointError("this Kafka endpoint is not configured to produce")
        topics = topics_attribute(attribute(context, message, TOPICS_ATTRIBUTE)) or self.producer_settings["topics"]
        for attempt in (1, 2):
            producer = self._producer()
            try:
                self._send(producer, message, topics)
            except EndpointError as exc:
                broken = self._replace_if_broken(producer, exc)
                if broken and attempt == 1 and not isinstance(exc, OutcomeUnknown):
                    continue  # nothing was written: a new producer sends it once more
                self.outage.failed(exc)
                raise
            self.outage.recovered()
            return

    @property
    def outage(self):
        if self._outage is None:  # the owner is named after construction
            self._outage = Outage(log, f"Kafka endpoint {self.owner}: publishing to {self.bootstrap}")
        return self._outage

    def _send(self, producer, message, topics):
        """One record per topic. Raises Unreachable when no record was written, EndpointError when
        the broker refused them, OutcomeUnknown when one may have been written."""
        key = message.metadata.get("key")
        headers = [(name, value.encode()) for name, values in message.headers.items() for value in values]
        sent, error = [], None
        try:
            for topic in topics:
                future = producer.send(topic, value=message.content, key=key.encode() if key else None, headers=headers)
                sent.append((future, batch_of(producer, future)))
        except Exception as exc:  # refused before it was queued (no metadata, too large): not sent
            error = exc
        fates = [record_fate(future, batch) for future, batch in sent]
        failures = [exc for fate, exc in fates if fate != "written"]
        if error is None and not failures:
            return
        cause = error or failures[0]
        if any(fate in ("written", "unknown") for fate, _ in fates):
            raise OutcomeUnknown(self.explain_unknown(cause)) from cause
        if error is not None or any(fate == "not sent" for fate, _ in fates):
            raise Unreachable(self.explain(cause)) from cause
        raise EndpointError(self.explain(cause)) from cause  # refused by the broker: not written either

    def explain_unknown(self, exc):
        if isinstance(exc, KafkaTimeoutError):
            return f"the Kafka brokers at {self.bootstrap} did not confirm the message within {SEND_TIMEOUT_S} s"
        return f"the Kafka brokers at {self.bootstrap} did not confirm the message ({one_line(exc)})"

    def _producer(self):
        with self.producer_lock:
            if self.producer is None:
                compression = self.producer_settings.get("compressionType", "none")
                try:
                    # A record is given up by the producer before its publish is answered, so that
                    # nothing the client was told failed is delivered later.
                    self.producer = self.client(
                        KafkaProducer,
                        compression_type=None if compression == "none" else compression,
                        linger_ms=1,
                        max_block_ms=SEND_TIMEOUT_S * 1000,
                        delivery_timeout_ms=SEND_TIMEOUT_S * 1000,
                        request_timeout_ms=(SEND_TIMEOUT_S - 1) * 1000,
                    )
                except EndpointError:
                    raise
                except Exception as exc:  # no producer, so nothing was sent: failover may send it elsewhere
                    raise Unreachable(self.explain(exc)) from None
            return self.producer

    def _replace_if_broken(self, producer, exc):
        """A producer that may not recover by itself is closed, and the next publish makes a new
        one: the brokers no longer know it (they restarted without its state), it is in a fatal
        state, or a record's outcome is unknown (kafka-python then resets the producer's identity,
        and can stall there for good). True when it was."""
        cause, manager = exc.__cause__, getattr(producer, "_transaction_manager", None)
        if isinstance(cause, PRODUCER_FORGOTTEN):
            why = f"the brokers no longer know it ({one_line(cause)})"
        elif manager is not None and manager.has_fatal_error():
            why = f"it failed for good ({one_line(manager.last_error or cause)})"
        elif isinstance(exc, OutcomeUnknown):
            why = f"a record's outcome is unknown ({one_line(cause)})"
        else:
            return False
        with self.producer_lock:
            if self.producer is producer:
                self.producer = None
                log.info(
                    "Kafka endpoint %s: replacing its producer for the brokers at %s: %s",
                    self.owner,
                    self.bootstrap,
                    why,
                )
        gevent.spawn(close_quietly, producer, 0)  # at once: its records fail, it sends none of them again
        return True

    # ----- consume -----
    def subscribe(self, context):
        if not self.consumer_settings.get("enabled"):
            raise EndpointError("this Kafka endpoint is not configured to consume")
        if context.qos == "none" and not context.resume_after:
            if self.fanout is None:
                self.fanout = KafkaFanOut(self)
            return self.fanout.subscribe()
        if context.resume_after:
            self._end_streams_of(context.client_id)
        consumer = self.idle.take((context.client_id, context.qos)) or self._new_consumer(context)
        subscription = KafkaSubscription(self, context, consumer)
        self.streams[context.client_id].add(subscription)
        return subscription

    def _end_streams_of(self, client_id):
        """A client resuming (Last-Event-ID, cursor) has reconnected: a stream of its that the gateway
        has not yet seen end gives its consumer back first, and the new stream takes it over, still
        in the group. A second consumer would have to join beside it, and a rebalance between the
        two, the old one no longer polled, can last until the old one is noticed (seen to stall a
        group for good on a broker that had just restarted)."""
        streams = self.streams.get(client_id)
        if not streams:
            return
        for subscription in streams:
            subscription.superseded = True
        deadline = time.monotonic() + SUPERSEDE_WAIT_S
        while self.streams.get(client_id) and time.monotonic() < deadline:
            gevent.sleep(0.02)

    def _new_consumer(self, context):
        # The client's idle consumers (of another qos) are in the same group: the new one's join
        # would wait for them to rejoin, which they cannot while idle.
        self.idle.drop(lambda key: key[0] == context.client_id)
        settings = self.consumer_settings
        try:
            consumer = self.client(
                KafkaConsumer,
                group_id=consumer_group(context),
                auto_offset_reset=settings.get("autoOffsetReset", "latest"),
                enable_auto_commit=context.qos == "auto",
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
        except Exception as exc:
            raise EndpointError(self.explain(exc)) from None
        consumer.resume_from = None
        listener = ResumeListener(consumer)
        if settings.get("topicPattern"):
            consumer.subscribe(pattern=settings["topicPattern"], listener=listener)
        else:
            if settings.get("checkTopicExistence"):
                missing = set(settings["topics"]) - (consumer.topics() or set())
                if missing:
                    consumer.close()
                    raise NotFound(f"no such topic: {', '.join(sorted(missing))}")
            consumer.subscribe(topics=settings["topics"], listener=listener)
        return consumer

    def release(self, subscription):
        """Pools the consumer of an ended subscription for the client's next poll, unless another
        consumer of the client's group is in use (a client reconnecting before its old stream
        ended): pooled, this one would keep its partitions from that consumer while idle."""
        client_id = subscription.context.client_id
        streams = self.streams[client_id]
        streams.discard(subscription)
        if streams:
            close_quietly(subscription.consumer)
            return
        del self.streams[client_id]
        self.idle.put((client_id, subscription.qos), subscription.consumer)

    def close(self):
        self.idle.close()
        if self.fanout is not None:
            self.fanout.close()
        if self.producer is not None:
            close_quietly(self.producer)


def consumer_group(context):
    """The client's group, per API: one client's groups on two APIs must not rebalance each other."""
    return f"{context.api_id}-{context.client_id}"


class ResumeListener(ConsumerRebalanceListener):
    """Seeks the partitions named by a resume token once the group has assigned them."""

    def __init__(self, consumer):
        self.consumer = consumer

    def on_partitions_assigned(self, assigned):
        seek_resumed(self.consumer, assigned, getattr(self.consumer, "resume_from", None))

    def on_partitions_revoked(self, revoked):
        pass


def batch_of(producer, future):
    """The producer's batch that holds a record just queued, or None. Whether that batch was ever
    handed to the network (`drained`) tells a record surely not sent from one that may have been:
    kafka-python fails both with the same timeout."""
    produce = getattr(future, "_produce_future", None)
    try:
        queued = producer._accumulator._batches.get(produce.topic_partition, ())
    except AttributeError:  # not the kafka-python this was written for: every failure is then unknown
        return None
    return next((batch for batch in queued if batch.produce_future is produce), None)


def record_fate(future, batch):
    """("written" | "not sent" | "refused" | "unknown", error) of one record, waiting for the
    producer's verdict (it gives up on a record after SEND_TIMEOUT_S)."""
    try:
        future.get(timeout=SEND_TIMEOUT_S + 2)
        return "written", None
    except Exception as exc:
        if not future.is_done:  # no verdict yet: the producer may still send it
            return "unknown", exc
        if batch is not None and batch.drained is None:
            return "not sent", exc
        if isinstance(exc, BrokerResponseError) and not isinstance(exc, WRITTEN_MAYBE):
            return "refused", exc
        return "unknown", exc


def close_quietly(client, timeout=2):
    try:
        client.close(timeout=timeout) if hasattr(client, "flush") else client.close()
    except KafkaTimeoutError:
        # A producer whose records are still pending: kafka-python's close gives up at its flush
        # and leaves the producer running. Stopped here, it fails those records, sends none of them.
        sender = getattr(client, "_sender", None)
        if sender is not None:
            sender.force_close()
    except Exception as exc:
        log.warning("closing a Kafka client failed: %s", exc)


def _check_bootstrap(values, settings):
    for server in (values.get("bootstrapServers") or "").split(","):
        server = server.strip()
        if not BOOTSTRAP.match(server):
            return {
                "bootstrapServers": f"'{server}' is not host:port; give a comma-separated list such as "
                "broker1:9092,broker2:9092"
            }
        port = int(server.rpartition(":")[2])
        if not 1 <= port <= 65535:
            return {"bootstrapServers": f"Bootstrap servers: '{server}' has port {port}, not between 1 and 65535"}
    return {}


def _check_security(values, settings):
    """What would make the client fail to connect, found at save: the JAAS config and the stores."""
    protocol = get_path(values, "security.protocol") or "PLAINTEXT"
    errors = {}
    if protocol in SASL:
        sasl = get_path(values, "security.sasl") or {}
        if sasl.get("saslMechanism") and sasl.get("saslJaasConfig"):
            try:
                kafka_sasl_settings(sasl["saslMechanism"], sasl["saslJaasConfig"])
            except JaasError as exc:
                errors["security.sasl.saslJaasConfig"] = f"SASL JAAS config: {exc}"
    if protocol in TLS:
        for name, label, check in (
            ("trustStore", "Trust store", check_trust_store),
            ("keyStore", "Key store", check_key_store),
        ):
            store = get_path(values, f"security.ssl.{name}")
            for field, message in check(store).items():
                errors[f"security.ssl.{name}" + (f".{field}" if field else ".type")] = f"{label}: {message}"
    return errors


def _check_consumer(values, settings):
    consumer = values.get("consumer") or {}
    if not consumer.get("enabled"):
        return {}
    if not consumer.get("topics") and not consumer.get("topicPattern"):
        return {"consumer.topics": "Give the topics to consume, or a topic pattern."}
    try:
        re.compile(consumer.get("topicPattern") or "")
    except re.error as exc:
        return {"consumer.topicPattern": f"Topic pattern: not a regular expression ({exc})"}
    return {}


SECTIONS = (
    ("security", "Security"),
    ("security.ssl.trustStore", "SSL trust store"),
    ("security.ssl.keyStore", "SSL key store"),
    ("use", "Producer and consumer"),
    ("producer", "Producer"),
    ("consumer", "Consumer"),
)
SHARED = Settings(
    fields=(
        Field("security.protocol", "enum", "Security protocol", default="PLAINTEXT", choices=PROTOCOLS),
        Field(
            "security.sasl.saslMechanism",
            "enum",
            "SASL mechanism",
            required=True,
            when=("security.protocol", SASL),
            choices=("GSSAPI", "OAUTHBEARER", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        ),
        Field(
            "security.sasl.saslJaasConfig",
            "secret",
            "SASL JAAS config",
            required=True,
            when=("security.protocol", SASL),
            help='e.g. org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";',
        ),
        *trust_store(
            "security.ssl.trustStore",
            Field(
                "security.ssl.trustStore.type",
                "enum",
                "Trust store type",
                default="NONE",
                choices=STORE_TYPES,
                when=("security.protocol", TLS),
                help="NONE: the system's certificate authorities.",
            ),
        ),
        *kafka_key_store(
            "security.ssl.keyStore",
            Field(
                "security.ssl.keyStore.type",
                "enum",
                "Key store type",
                default="NONE",
                choices=STORE_TYPES,
                when=("security.protocol", TLS),
                help="A client certificate, for brokers that ask for one.",
            ),
        ),
        use_choice(),
        Field("producer.enabled", "boolean", "Use producer", default=False),
        Field(
            "producer.topics",
            "list",
            "Producer topics",
            required=True,
            when=("producer.enabled", (True,)),
            help="One topic per line; each message is sent to every topic.",
        ),
        Field(
            "producer.compressionType",
            "enum",
            "Compression",
            default="none",
            when=("producer.enabled", (True,)),
            choices=("none", "gzip", "snappy", "lz4", "zstd"),
        ),
        Field("consumer.enabled", "boolean", "Use consumer", default=False),
        Field(
            "consumer.topics",
            "list",
            "Consumer topics",
            when=("consumer.enabled", (True,)),
            help="One topic per line; or give a topic pattern.",
        ),
        Field(
            "consumer.topicPattern",
            "string",
            "Topic pattern",
            when=("consumer.enabled", (True,)),
            help="A regular expression over topic names.",
        ),
        Field(
            "consumer.encodeMessageId",
            "boolean",
            "Encode message id (base64)",
            default=True,
            when=("consumer.enabled", (True,)),
        ),
        Field(
            "consumer.autoOffsetReset",
            "enum",
            "Auto offset reset",
            default="latest",
            choices=("latest", "earliest", "none"),
            when=("consumer.enabled", (True,)),
        ),
        Field(
            "consumer.checkTopicExistence",
            "boolean",
            "Check topic existence",
            default=False,
            when=("consumer.enabled", (True,)),
        ),
        Field(
            "consumer.removeConfluentHeader",
            "boolean",
            "Remove Confluent schema-registry header",
            default=False,
            when=("consumer.enabled", (True,)),
        ),
    ),
    checks=(_check_security, _check_consumer),
    sections=SECTIONS,
)


def summary(shared):
    protocol = get_path(shared, "security.protocol") or "PLAINTEXT"
    consumer = get_path(shared, "consumer") or {}
    consumed = topics_text(consumer.get("topics") or consumer.get("topicPattern"))
    return summary_line(
        protocol,
        get_path(shared, "security.sasl.saslMechanism") if protocol in SASL else "",
        *(
            (store_summary(shared, "security.ssl.trustStore"), store_summary(shared, "security.ssl.keyStore", "key"))
            if protocol in TLS
            else ()
        ),
        *sides_summary(
            shared,
            topics_text(get_path(shared, "producer.topics")),
            f"{consumed}, {consumer.get('autoOffsetReset') or 'latest'}",
        ),
    )


def probe(configuration):
    """Can a TCP connection be opened to one of the bootstrap servers?"""
    return tcp_probe(map(host_port, configuration.get("bootstrapServers", "").split(",")))


def topics_attribute(value):
    """The topics a flow chose for a message (a list, or text of comma-separated names), each a
    legal Kafka topic name: a flow often takes them from what the client sent."""
    if isinstance(value, str):
        topics = [topic.strip() for topic in value.split(",") if topic.strip()]
    elif isinstance(value, (list, tuple)):
        topics = [str(topic).strip() for topic in value if str(topic).strip()]
    else:
        return None
    for topic in topics:
        if not TOPIC_NAME.match(topic):
            raise Interrupted(
                400, f"The topic {topic[:300]!r} chosen for the message is not a Kafka topic name", "INVALID_TOPIC"
            )
    return topics


SPEC = EndpointSpec(
    type="kafka",
    publish_attributes=(TOPICS_ATTRIBUTE,),
    label="Kafka",
    connector=KafkaEndpoint,
    description="Produce to and consume from Kafka topics.",
    configuration=Settings(
        fields=(
            Field("bootstrapServers", "string", "Bootstrap servers", required=True, help="host1:port1,host2:port2"),
        ),
        checks=(_check_bootstrap,),
    ),
    shared=SHARED,
    probe=probe,
    summary=summary,
    target=lambda configuration: configuration.get("bootstrapServers"),
)
