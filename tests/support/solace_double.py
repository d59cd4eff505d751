"""A stand-in for solace-pubsubplus with the surface gateway_runtime/endpoints/solace/api.py exposes, for the
Solace worker to import instead of the library (GATEHOUSE_SOLACE_API=support.solace_double). No Solace
broker can run on these machines; everything above the library (worker, channel, endpoint,
entrypoints) is then the real code.

It answers as the library does, as far as its documentation and a real connection attempt show:
  - `tcp://solace-double[:port]` is a broker held in this (the worker's) memory, with the VPN
    `default` and the user `admin` / `admin`; any other host is really connected to, so a closed
    port fails as the library fails (PubSubPlusCoreClientError, sub code 14, "Connection refused").
    A wrong user fails with sub code 19 (LOGIN_FAILURE), an unknown VPN with 45 (MSG_VPN_NOT_ALLOWED),
    their texts being the broker's response lines.
  - Topics match subscriptions with Solace's wildcards (`*` one level or the rest of one, `>` the
    remaining levels). Direct receivers get what is published from then on.
  - A durable non-exclusive queue (made on start) attracts its topics, direct or persistent; its
    receivers share its messages, at most WINDOW unacknowledged each; what a receiver had not
    acknowledged when it stops goes back to the queue and comes again flagged redelivered.
  - Messages are dispatched on a thread per receiver, as the library's own dispatch thread does.
"""

import copy
import enum
import itertools
import os
import queue
import socket
import threading
import time
from abc import ABC, abstractmethod

HOST = "solace.messaging.transport.host"
VPN_NAME = "solace.messaging.service.vpn-name"
USERNAME = "solace.messaging.authentication.basic.username"
PASSWORD = "solace.messaging.authentication.basic.password"
CONNECTION_ATTEMPTS_TIMEOUT = "solace.messaging.transport.connection-attempts-timeout"
GENERATE_SENDER_ID = "solace.messaging.service.generate-sender-id"
GENERATE_SEND_TIMESTAMPS = "solace.messaging.service.generate-send-timestamps"
PERSISTENT_TIME_TO_LIVE = "solace.messaging.message.persistent.time-to-live"
DOUBLE_HOST = "solace-double"
USERS = {"admin": "admin"}
VPNS = {"default"}
WINDOW = 255


class SolClientSubCode(enum.Enum):
    SOLCLIENT_SUBCODE_COMMUNICATION_ERROR = 14
    SOLCLIENT_SUBCODE_LOGIN_FAILURE = 19
    SOLCLIENT_SUBCODE_MSG_VPN_NOT_ALLOWED = 45
    SOLCLIENT_SUBCODE_MSG_VPN_UNAVAILABLE = 47
    SOLCLIENT_SUBCODE_UNRESOLVED_HOST = 89


class CacheStatus(enum.Enum):
    LIVE = 0
    CACHED = 1
    SUSPECT = 2


class MissingResourcesCreationStrategy(enum.Enum):
    DO_NOT_CREATE = 0
    CREATE_ON_START = 1


class PubSubPlusClientError(Exception):
    pass


class PubSubPlusCoreClientError(PubSubPlusClientError):
    def __init__(self, info, sub_code):
        super().__init__(info)
        self.sub_code = sub_code


def core_error(sub_code, contents):
    return PubSubPlusCoreClientError(
        {
            "caller_description": "do_connect",
            "return_code": "Not ready",
            "sub_code": sub_code.name,
            "error_info_sub_code": sub_code.value,
            "error_info_contents": contents,
        },
        sub_code.value,
    )


class MessageHandler(ABC):
    @abstractmethod
    def on_message(self, message): ...


class ServiceInterruptionListener(ABC):
    @abstractmethod
    def on_service_interrupted(self, event): ...


class RetryStrategy:
    @staticmethod
    def never_retry():
        return RetryStrategy()

    @staticmethod
    def parametrized_retry(retries, retry_interval):
        return RetryStrategy()


class TLS:
    @staticmethod
    def create():
        return TLS()

    def with_certificate_validation(
        self, ignore_expiration, validate_server_name=True, trust_store_file_path=None, trusted_common_name_list=None
    ):
        self.trust_store = trust_store_file_path
        return self


class _Named:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Topic(_Named):
    @staticmethod
    def of(topic_string):
        return Topic(topic_string)


class TopicSubscription(_Named):
    @staticmethod
    def of(expression):
        return TopicSubscription(expression)


class Queue(_Named):
    @staticmethod
    def durable_non_exclusive_queue(queue_name):
        return Queue(queue_name)


def matches(subscription, topic):
    wanted, levels = subscription.split("/"), topic.split("/")
    for i, pattern in enumerate(wanted):
        if pattern == ">" and i == len(wanted) - 1:
            return len(levels) > i
        if i >= len(levels):
            return False
        if pattern.endswith("*"):
            if not levels[i].startswith(pattern[:-1]):
                return False
        elif pattern != levels[i]:
            return False
    return len(levels) == len(wanted)


# ----- the broker -----
class Stored:
    """A message as the broker holds it."""

    numbers = itertools.count(1)

    def __init__(self, payload, properties, destination, sender_id, timestamp):
        self.number = next(Stored.numbers)
        self.payload, self.properties, self.destination = payload, properties, destination
        self.sender_id, self.timestamp = sender_id, timestamp
        self.delivered = False


class InboundMessage:
    def __init__(self, stored, redelivered):
        self.stored, self.redelivered = stored, redelivered

    def get_payload_as_bytes(self):
        return bytearray(self.stored.payload)

    def get_payload_as_string(self):
        return None

    def get_properties(self):
        return dict(self.stored.properties)

    def get_sender_id(self):
        return self.stored.sender_id

    def get_destination_name(self):
        return self.stored.destination

    def get_sender_timestamp(self):
        return self.stored.timestamp

    def get_cache_status(self):
        return CacheStatus.LIVE

    def is_redelivered(self):
        return self.redelivered


class DurableQueue:
    def __init__(self, name):
        self.name = name
        self.subscriptions = set()
        self.pending = []
        self.flows = []
        self.turn = 0

    def dispatch(self):
        """Hand pending messages to the bound flows with room in their window, in turn (under BROKER.lock)."""
        while self.pending:
            ready = [f for f in self.flows if len(f.unacked) < WINDOW]
            if not ready:
                return
            flow = ready[self.turn % len(ready)]
            self.turn += 1
            stored = self.pending.pop(0)
            flow.unacked[stored.number] = stored
            flow.deliver(InboundMessage(stored, stored.delivered))
            stored.delivered = True


class Broker:
    def __init__(self):
        self.lock = threading.RLock()
        self.direct = set()  # started direct receivers
        self.queues = {}

    def publish(self, stored):
        with self.lock:
            for receiver in list(self.direct):
                if any(matches(s, stored.destination) for s in receiver.subscriptions):
                    receiver.deliver(InboundMessage(stored, False))
            for durable in self.queues.values():
                if any(matches(s, stored.destination) for s in durable.subscriptions):
                    durable.pending.append(copy.copy(stored))  # each queue has its own delivery state
                    durable.dispatch()


BROKER = Broker()
CLIENTS = itertools.count(1)


# ----- the messaging service -----
class MessagingService:
    @staticmethod
    def builder():
        return _ServiceBuilder()

    def __init__(self, properties):
        self.properties = properties
        self.connected = False
        self.client_name = f"{DOUBLE_HOST}/{os.getpid()}/#{next(CLIENTS):08d}"

    def connect(self):
        url = self.properties[HOST]
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rstrip("/").rpartition(":") if ":" in rest else (rest, "", "")
        port = int(port or (55443 if scheme == "tcps" else 55555))
        if host != DOUBLE_HOST:
            try:
                socket.create_connection((host.strip("[]"), port), timeout=3).close()
            except socket.gaierror:
                raise core_error(
                    SolClientSubCode.SOLCLIENT_SUBCODE_UNRESOLVED_HOST, f"Could not resolve host '{host}'"
                ) from None
            except OSError as exc:
                raise core_error(
                    SolClientSubCode.SOLCLIENT_SUBCODE_COMMUNICATION_ERROR,
                    f"TCP connection failure for fd 7, error = {exc.strerror} ({exc.errno})",
                ) from None
            raise core_error(
                SolClientSubCode.SOLCLIENT_SUBCODE_COMMUNICATION_ERROR, "the double serves only tcp://solace-double"
            )
        if self.properties.get(VPN_NAME) not in VPNS:
            raise core_error(SolClientSubCode.SOLCLIENT_SUBCODE_MSG_VPN_NOT_ALLOWED, "403 Message VPN Not Allowed")
        if USERS.get(self.properties.get(USERNAME)) != self.properties.get(PASSWORD):
            raise core_error(SolClientSubCode.SOLCLIENT_SUBCODE_LOGIN_FAILURE, "401 Unauthorized")
        self.connected = True
        return self

    def disconnect(self):
        self.connected = False

    def add_service_interruption_listener(self, listener):
        self.listener = listener

    def message_builder(self):
        return _MessageBuilder()

    def create_direct_message_publisher_builder(self):
        return _Builder(lambda: _Publisher(self))

    def create_persistent_message_publisher_builder(self):
        return _Builder(lambda: _Publisher(self))

    def create_direct_message_receiver_builder(self):
        return _Builder(lambda: _DirectReceiver(self))

    def create_persistent_message_receiver_builder(self):
        return _Builder(lambda durable: _PersistentReceiver(self, durable))


class _ServiceBuilder:
    def __init__(self):
        self.properties = {}

    def from_properties(self, properties):
        self.properties.update(properties)
        return self

    def with_connection_retry_strategy(self, strategy):
        return self

    def with_reconnection_retry_strategy(self, strategy):
        return self

    def with_transport_security_strategy(self, strategy):
        return self

    def build(self):
        return MessagingService(self.properties)


class _Builder:
    """The publisher and receiver builders: the options the worker sets, then build()."""

    def __init__(self, make):
        self.make = make
        self.subscriptions = []

    def with_subscriptions(self, subscriptions):
        self.subscriptions = list(subscriptions)
        return self

    def with_missing_resources_creation_strategy(self, strategy):
        return self

    def with_message_client_acknowledgement(self):
        return self

    def build(self, *args):
        built = self.make(*args)
        built.subscriptions = {s.get_name() for s in self.subscriptions}
        return built


class _MessageBuilder:
    def __init__(self):
        self.properties = {}

    def with_property(self, key, value):
        if not key.startswith("solace.messaging."):  # a Solace-defined property is no user property
            self.properties[key] = value
        return self

    def with_expiration(self, timestamp):
        return self

    def build(self, payload, additional_message_properties=None):
        return (bytes(payload), dict(self.properties))


class _Publisher:
    def __init__(self, service):
        self.service = service

    def start(self):
        return self

    def _publish(self, message, destination):
        if not self.service.connected:
            raise PubSubPlusClientError("the service is not connected")
        payload, properties = message
        BROKER.publish(
            Stored(payload, properties, destination.get_name(), self.service.client_name, int(time.time() * 1000))
        )

    def publish(self, message, destination):
        self._publish(message, destination)

    def publish_await_acknowledgement(self, message, destination, time_out=None):
        self._publish(message, destination)


class _Receiver:
    def __init__(self, service):
        self.service = service
        self.inbox = queue.Queue()
        self.handler = None
        self.subscriptions = set()

    def receive_async(self, handler):
        self.handler = handler
        threading.Thread(target=self._dispatch, daemon=True).start()

    def deliver(self, message):
        self.inbox.put(message)

    def _dispatch(self):
        while (message := self.inbox.get()) is not None:
            self.handler.on_message(message)

    def terminate(self, grace_period=0):
        self.inbox.put(None)


class _DirectReceiver(_Receiver):
    def start(self):
        with BROKER.lock:
            BROKER.direct.add(self)
        return self

    def terminate(self, grace_period=0):
        with BROKER.lock:
            BROKER.direct.discard(self)
        super().terminate(grace_period)


class _PersistentReceiver(_Receiver):
    def __init__(self, service, durable):
        super().__init__(service)
        self.queue_name = durable.get_name()
        self.unacked = {}

    def start(self):
        with BROKER.lock:
            self.durable = BROKER.queues.setdefault(self.queue_name, DurableQueue(self.queue_name))
            self.durable.flows.append(self)
        return self

    def add_subscription(self, subscription):
        with BROKER.lock:
            self.durable.subscriptions.add(subscription.get_name())

    def receive_async(self, handler):
        super().receive_async(handler)
        with BROKER.lock:
            self.durable.dispatch()

    def ack(self, message):
        with BROKER.lock:
            self.unacked.pop(message.stored.number, None)
            self.durable.dispatch()

    def terminate(self, grace_period=0):
        with BROKER.lock:
            self.durable.flows.remove(self)
            returned = sorted(self.unacked.values(), key=lambda s: s.number)
            self.unacked = {}
            self.durable.pending[:0] = returned
            self.durable.dispatch()
        super().terminate(grace_period)
