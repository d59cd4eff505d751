"""WebSocket: frames in are published messages, consumed messages go out as frames."""

import socket

import gevent
from simple_websocket import ConnectionClosed, Server

from ..http import max_message_bytes
from ..messages import EndpointError, Message, OutcomeUnknown
from ..settings import Field, Settings
from ..specs import EntrypointSpec

PING_INTERVAL_S = 25
GOING_AWAY = (1013, "Try again later")
FRAME_CONTENT_TYPES = {True: "text/plain", False: "application/octet-stream"}  # is it a text frame?


class WebSocket:
    def __init__(self, config, api, qos):
        self.api = api
        self.qos = qos
        self.publisher = config["publisher"]["enabled"]
        self.subscriber = config["subscriber"]["enabled"]

    @staticmethod
    def matches(environ):
        return environ.get("HTTP_UPGRADE", "").lower() == "websocket"

    def __call__(self, environ, start_response):
        ws = Server(environ, ping_interval=PING_INTERVAL_S, max_message_size=max_message_bytes())
        subscription = None
        try:
            if self.subscriber:
                try:
                    subscription = self.api.subscribe(environ, self.qos, None)
                except EndpointError as exc:
                    close(ws, 1011, str(exc)[:120])
                    return finish(ws, start_response)
                sender = gevent.spawn(self.send_loop, ws, subscription)
            else:
                sender = None
            self.receive_loop(ws)
            if sender is not None:
                sender.kill()
        finally:
            if subscription is not None:
                self.api.unsubscribe(subscription)
        return finish(ws, start_response)

    def receive_loop(self, ws):
        while ws.connected:
            try:
                data = ws.receive(timeout=1)
            except ConnectionClosed:
                return
            if self.api.stopping.is_set():
                close(ws, *GOING_AWAY)
                return
            if data is None or not self.publisher:
                continue
            content = data.encode() if isinstance(data, str) else data
            kind = FRAME_CONTENT_TYPES[isinstance(data, str)]
            try:
                self.api.publish(ws.environ, self.qos, Message(content, metadata={"contentType": kind}))
            except OutcomeUnknown:
                close(ws, 1011, "outcome unknown: the last message may or may not have been delivered")
                return
            except EndpointError as exc:
                close(ws, 1011, str(exc)[:120])
                return

    def send_loop(self, ws, subscription):
        try:
            while ws.connected:
                batch = subscription.next_batch(PING_INTERVAL_S, 256)
                if batch is None:
                    close(ws, *(GOING_AWAY if self.api.stopping.is_set() else (1000, "")))
                    return
                for message in batch:
                    try:
                        ws.send(message.content.decode("utf-8"))
                    except UnicodeDecodeError:
                        ws.send(message.content)
                subscription.acknowledge(batch)
        except EndpointError as exc:
            close(ws, 1011, str(exc)[:120])
        except (ConnectionClosed, OSError):
            pass


def close(ws, code, reason):
    try:
        ws.close(code, reason)
    except (ConnectionClosed, OSError):
        pass


def finish(ws, start_response):
    """The connection belonged to the WebSocket, which is closed now: end it, so that the server
    neither writes an HTTP response on it nor waits there for a next request."""
    if ws.mode == "gunicorn":
        raise StopIteration()
    try:
        ws.environ["wsgi.input"].raw._sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
    start_response("101 Switching Protocols", [("Connection", "close")])
    return []


SPEC = EntrypointSpec(
    type="websocket",
    label="WebSocket",
    handler=WebSocket,
    priority=30,
    qos=("none", "auto"),
    description="Clients publish and receive messages over one WebSocket.",
    configuration=Settings(
        fields=(
            Field("publisher.enabled", "boolean", "Clients may publish", default=True),
            Field("subscriber.enabled", "boolean", "Clients receive messages", default=True),
        )
    ),
)
