"""The Solace worker: a plain (not gevent-patched) process that runs solace-pubsubplus for one
gateway process, which starts it (channel.py) and talks to it over one socket.

    python -m gateway_runtime.endpoints.solace.worker <fd of its end of the socket pair>

solace-pubsubplus cannot run in the gateway itself: under gevent's monkey-patching its import
fails, and without patched queues its connect never returns. Here it runs with real threads:
the main thread reads requests; each is answered from a thread of a pool, so that a slow
connect to one broker holds up no other endpoint. Acks and unsubscribes are done in the reading
thread itself, so that they reach a receiver in the order the gateway sent them.

Requests (header `op`, `id`) get one reply (`reply`: id, plus `error` when it failed). Received
messages (`event: message`), receivers that died (`event: down`) and log records
(`event: log`) are sent whenever they happen. The library logs to stdout and its native part to
stderr: the protocol has a socket of its own, stdout is pointed at stderr (the gateway's log),
and Python log records travel to the gateway as `log` events.
"""

import importlib
import itertools
import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .wire import frame, read_frame

API_MODULE = os.environ.get("GATEHOUSE_SOLACE_API", "gateway_runtime.endpoints.solace.api")
CONNECT_TIMEOUT_MS = 5000
PUBLISH_TIMEOUT_MS = 10_000
RECONNECT_RETRIES, RECONNECT_INTERVAL_MS = 3, 1000
THREADS = 32

log = logging.getLogger("solace-worker")


class Failure(Exception):
    """What the gateway is told; `unreachable` when nothing reached the broker."""

    def __init__(self, message, unreachable=False):
        super().__init__(message)
        self.unreachable = unreachable


class Channel:
    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.lock = threading.Lock()

    def read(self):
        return read_frame(self.reader.read)

    def send(self, header, payload=b""):
        data = frame(header, payload)
        with self.lock:
            self.sock.sendall(data)


class ChannelLogHandler(logging.Handler):
    def __init__(self, channel):
        super().__init__(logging.INFO)
        self.channel = channel

    def emit(self, record):
        try:
            self.channel.send(
                {"event": "log", "level": record.levelno, "name": record.name, "message": record.getMessage()}
            )
        except OSError:
            pass  # the gateway is gone; the worker is about to stop


def route_logging(channel):
    """Every logger to the channel: the library's own handlers write to stdout, which is not ours."""
    for logger in [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    root = logging.getLogger()
    root.handlers = [ChannelLogHandler(channel)]
    root.setLevel(logging.INFO)


# ----- what the library's errors mean -----
def explain(api, exc, service):
    """(message for the API consumer, unreachable?) for a library error."""
    url, vpn = service["url"], service["vpn"]
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    contents = info.get("error_info_contents") or str(exc)
    try:
        sub = api.SolClientSubCode(getattr(exc, "sub_code", None)).name.replace("SOLCLIENT_SUBCODE_", "")
    except ValueError:
        sub = str(info.get("sub_code", "")).replace("SOLCLIENT_SUBCODE_", "")
    if sub == "COMMUNICATION_ERROR" and "refused" in contents.lower():
        return f"Connection refused to {url}", True
    if sub == "UNRESOLVED_HOST":
        return f"Unknown host: {url} cannot be resolved", True
    if sub == "LOGIN_FAILURE":
        return f"Authentication failed at {url} (VPN '{vpn}'): {contents}", True
    if sub in ("MSG_VPN_NOT_ALLOWED", "MSG_VPN_UNAVAILABLE"):
        return f"VPN not found or not available: '{vpn}' at {url}: {contents}", True
    if sub in ("COMMUNICATION_ERROR", "TIMEOUT"):
        return f"Cannot reach {url}: {contents}", True
    return f"Solace error at {url}: {contents}", False


class Service:
    """One endpoint's connection (a MessagingService) and its publishers, made on first use."""

    def __init__(self, worker, settings):
        self.worker, self.api, self.settings = worker, worker.api, settings
        self.lock = threading.Lock()
        self.messaging = self.direct = self.persistent = None
        self.receivers = set()

    def connected(self):
        with self.lock:
            if self.messaging is None:
                self.messaging = self._connect()
            return self.messaging

    def _connect(self):
        api, s = self.api, self.settings
        properties = {
            api.HOST: s["url"],
            api.VPN_NAME: s["vpn"],
            api.CONNECTION_ATTEMPTS_TIMEOUT: CONNECT_TIMEOUT_MS,
            api.GENERATE_SENDER_ID: True,
            api.GENERATE_SEND_TIMESTAMPS: True,
        }
        if s.get("username"):
            properties[api.USERNAME] = s["username"]
            properties[api.PASSWORD] = s.get("password") or ""
        builder = (
            api.MessagingService.builder()
            .from_properties(properties)
            .with_connection_retry_strategy(api.RetryStrategy.never_retry())
            .with_reconnection_retry_strategy(
                api.RetryStrategy.parametrized_retry(RECONNECT_RETRIES, RECONNECT_INTERVAL_MS)
            )
        )
        if s["url"].startswith("tcps://"):
            builder = builder.with_transport_security_strategy(
                api.TLS.create().with_certificate_validation(
                    False, validate_server_name=s.get("hostnameVerifier", True), trust_store_file_path=s["trustStore"]
                )
            )
        messaging = builder.build()
        try:
            messaging.connect()
        except self.api.PubSubPlusClientError as exc:
            raise Failure(*explain(self.api, exc, s)) from None
        messaging.add_service_interruption_listener(interruption_listener(self))
        log.info("connected to %s (VPN %s)", s["url"], s["vpn"])
        return messaging

    def publisher(self, persistent):
        messaging = self.connected()
        with self.lock:
            if persistent and self.persistent is None:
                self.persistent = messaging.create_persistent_message_publisher_builder().build()
                self.persistent.start()
            if not persistent and self.direct is None:
                self.direct = messaging.create_direct_message_publisher_builder().build()
                self.direct.start()
            return messaging, self.persistent if persistent else self.direct

    def interrupted(self, reason):
        """The library gave up reconnecting: forget this connection; its receivers are dead."""
        with self.lock:
            self.messaging = self.direct = self.persistent = None
        for receiver in list(self.receivers):
            self.worker.receiver_down(receiver, reason)

    def close(self):
        with self.lock:
            messaging, self.messaging = self.messaging, None
        for receiver in list(self.receivers):
            self.worker.unsubscribe(receiver.id)
        if messaging is not None:
            messaging.disconnect()


class Receiver:
    """One gateway subscription: a direct receiver, or a persistent one on the client's queue.
    Persistent messages wait here, by their number, until the gateway acknowledges them."""

    def __init__(self, worker, service, sub_id, header):
        self.worker, self.service, self.id = worker, service, sub_id
        self.numbers = itertools.count(1)
        self.unacked = {}
        api = worker.api
        messaging = service.connected()
        subscriptions = [api.TopicSubscription.of(topic) for topic in header["topics"]]
        self.persistent = header.get("queue") is not None
        handler = type("Handler", (api.MessageHandler,), {"on_message": lambda _, message: self.on_message(message)})()
        if self.persistent:
            self.receiver = (
                messaging.create_persistent_message_receiver_builder()
                .with_missing_resources_creation_strategy(api.MissingResourcesCreationStrategy.CREATE_ON_START)
                .with_message_client_acknowledgement()
                .build(api.Queue.durable_non_exclusive_queue(header["queue"]))
            )
            self.receiver.start()
            for subscription in subscriptions:
                self.receiver.add_subscription(subscription)  # the queue attracts the topics
        else:
            self.receiver = messaging.create_direct_message_receiver_builder().with_subscriptions(subscriptions).build()
            self.receiver.start()
        self.receiver.receive_async(handler)

    def on_message(self, message):
        number = next(self.numbers)
        if self.persistent:
            self.unacked[number] = message
        payload = message.get_payload_as_bytes()
        if payload is None:
            payload = (message.get_payload_as_string() or "").encode()
        headers = {str(name): [text(value)] for name, value in (message.get_properties() or {}).items()}
        metadata = {
            "senderId": message.get_sender_id(),
            "destinationName": message.get_destination_name(),
            "senderTimestamp": message.get_sender_timestamp(),
            "isCached": message.get_cache_status() != self.worker.api.CacheStatus.LIVE,
            "isRedelivered": message.is_redelivered(),
        }
        metadata = {key: value for key, value in metadata.items() if value is not None}
        try:
            self.worker.channel.send(
                {"event": "message", "sub": self.id, "number": number, "headers": headers, "metadata": metadata},
                bytes(payload),
            )
        except OSError:
            pass  # the gateway is gone; unacknowledged, the broker keeps the message

    def ack(self, numbers):
        for number in numbers:
            message = self.unacked.pop(number, None)
            if message is not None:
                self.receiver.ack(message)

    def stop(self):
        # Unacknowledged messages go back to the queue when the flow closes: redelivered later.
        self.receiver.terminate(0)


def text(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


class Worker:
    def __init__(self, channel, api):
        self.channel, self.api = channel, api
        self.lock = threading.Lock()
        self.services = {}  # key -> Service
        self.receivers = {}  # subscription id -> Receiver
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="solace-request")

    def serve(self):
        while True:
            try:
                header, payload = self.channel.read()
            except (EOFError, OSError):
                break
            if header["op"] in ("ack", "unsubscribe"):
                self.handle(header, payload)
            else:
                self.pool.submit(self.handle, header, payload)
        # The gateway is gone (stopped, or killed): leave the brokers cleanly, then go.
        for service in list(self.services.values()):
            try:
                service.close()
            except Exception:
                pass
        os._exit(0)

    def handle(self, header, payload):
        reply = {"reply": header.get("id")}
        try:
            reply.update(getattr(self, "op_" + header["op"])(header, payload) or {})
        except Failure as failure:
            reply.update(error=str(failure), unreachable=failure.unreachable)
        except self.api.PubSubPlusClientError as exc:
            message, _ = explain(self.api, exc, header.get("service") or {"url": "?", "vpn": "?"})
            reply.update(error=message, unreachable=False)
        except Exception as exc:
            log.exception("Solace worker: %s failed", header["op"])
            reply.update(error=f"Solace worker error: {type(exc).__name__}: {exc}", unreachable=False)
        if header.get("id") is not None:
            self.channel.send(reply)

    def service(self, settings):
        with self.lock:
            service = self.services.get(settings["key"])
            if service is None:
                service = self.services[settings["key"]] = Service(self, settings)
            return service

    # ----- requests -----
    def op_connect(self, header, payload):
        self.service(header["service"]).connected()

    def op_publish(self, header, payload):
        persistent = header["persistent"]
        messaging, publisher = self.service(header["service"]).publisher(persistent)
        builder = messaging.message_builder()
        for name, value in header["properties"].items():
            builder = builder.with_property(name, value)
        expiry = header.get("expiry", -1)
        if expiry >= 0:
            builder = builder.with_expiration(int(time.time() * 1000) + expiry * 1000)
            if persistent:
                builder = builder.with_property(self.api.PERSISTENT_TIME_TO_LIVE, expiry * 1000)
        message = builder.build(bytearray(payload))
        for topic in header["topics"]:
            destination = self.api.Topic.of(topic)
            if persistent:
                publisher.publish_await_acknowledgement(message, destination, PUBLISH_TIMEOUT_MS)
            else:
                publisher.publish(message, destination)

    def op_subscribe(self, header, payload):
        service = self.service(header["service"])
        receiver = Receiver(self, service, header["sub"], header)
        with self.lock:
            self.receivers[receiver.id] = receiver
            service.receivers.add(receiver)

    def op_ack(self, header, payload):
        receiver = self.receivers.get(header["sub"])
        if receiver is not None:
            try:
                receiver.ack(header["numbers"])
            except self.api.PubSubPlusClientError as exc:
                log.warning("acknowledging failed (the messages will come again): %s", exc)

    def op_unsubscribe(self, header, payload):
        self.unsubscribe(header["sub"])

    def op_close(self, header, payload):
        with self.lock:
            service = self.services.pop(header["key"], None)
        if service is not None:
            service.close()

    # ----- receivers -----
    def unsubscribe(self, sub_id):
        with self.lock:
            receiver = self.receivers.pop(sub_id, None)
            if receiver is not None:
                receiver.service.receivers.discard(receiver)
        if receiver is not None:
            try:
                receiver.stop()
            except self.api.PubSubPlusClientError as exc:
                log.info("stopping a receiver: %s", exc)

    def receiver_down(self, receiver, reason):
        with self.lock:
            self.receivers.pop(receiver.id, None)
            receiver.service.receivers.discard(receiver)
        self.channel.send({"event": "down", "sub": receiver.id, "error": reason})


def interruption_listener(service):
    """A ServiceInterruptionListener of the library's, telling the service."""
    api = service.api

    class Listener(api.ServiceInterruptionListener):
        def on_service_interrupted(self, event):
            cause = event.get_cause()
            reason = explain(api, cause, service.settings)[0] if cause is not None else event.get_message()
            log.warning("connection to %s lost: %s", service.settings["url"], reason)
            service.interrupted(f"the connection to the Solace broker was lost: {reason}")

    return Listener()


def main(argv):
    sock = socket.socket(fileno=int(argv[1]))
    sock.setblocking(True)  # the gateway's end is a gevent socket: the shared descriptor came non-blocking
    os.dup2(2, 1)  # whatever the library prints lands in the gateway's log, never on the channel
    sys.stdout = sys.stderr
    channel = Channel(sock)
    api = importlib.import_module(API_MODULE)
    route_logging(channel)
    Worker(channel, api).serve()


if __name__ == "__main__":
    main(sys.argv)
