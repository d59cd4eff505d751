"""WebSocket: frames in are published messages, consumed messages go out as frames."""

import gevent
from simple_websocket import ConnectionClosed, Server

from ..http import end_taken, max_message_bytes, take_connection
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
        # simple_websocket takes a socket given as werkzeug's, whatever the server.
        ws = Server(
            {**environ, "werkzeug.socket": take_connection(environ)},
            ping_interval=PING_INTERVAL_S,
            max_message_size=max_message_bytes(),
        )
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
    """The connection belonged to the WebSocket, which is closed now."""
    return end_taken(ws.environ, start_response)


SPEC = EntrypointSpec(
    type="websocket",
    label="WebSocket",
    handler=WebSocket,
    priority=30,
    operations=("PUBLISH", "SUBSCRIBE"),
    qos=("none", "auto"),
    description="Clients publish and receive messages over one WebSocket.",
    configuration=Settings(
        fields=(
            Field("publisher.enabled", "boolean", "Clients may publish", default=True),
            Field("subscriber.enabled", "boolean", "Clients receive messages", default=True),
        )
    ),
)
