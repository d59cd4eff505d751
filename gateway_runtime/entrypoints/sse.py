"""Server-Sent Events: a long-lived stream of messages, resumable by Last-Event-ID."""

from ..http import respond_json, templated
from ..messages import EndpointError, NotFound, json_text
from ..settings import Field, Settings
from ..specs import EntrypointSpec

HEADERS = [
    ("Content-Type", "text/event-stream;charset=UTF-8"),
    ("Cache-Control", "no-cache"),
    ("Connection", "keep-alive"),
    ("X-Accel-Buffering", "no"),
]
GOAWAY = b"event: goaway\ndata: the API is being redeployed or stopped; reconnect\n\n"


class ServerSentEvents:
    def __init__(self, config, api, qos):
        self.api = api
        self.qos = qos
        self.heartbeat = config["heartbeatIntervalInMs"] / 1000
        self.retry = config["heartbeatIntervalInMs"]
        self.metadata_as_comment = config["metadataAsComment"]
        self.headers_as_comment = config["headersAsComment"]

    @staticmethod
    def matches(environ):
        return environ["REQUEST_METHOD"] == "GET" and "text/event-stream" in environ.get("HTTP_ACCEPT", "")

    def __call__(self, environ, start_response):
        try:
            subscription = self.api.subscribe(environ, self.qos, environ.get("HTTP_LAST_EVENT_ID"))
        except NotFound as exc:
            return templated(environ, start_response, exc) or respond_json(
                start_response, exc.status, {"message": f"The endpoint failed: {exc}"}
            )
        except EndpointError as exc:
            start_response("200 OK", HEADERS)
            return [f"retry: {self.retry}\n\n".encode() + event_error(str(exc))]
        start_response("200 OK", HEADERS)
        return self.stream(subscription)

    def stream(self, subscription):
        try:
            yield f"retry: {self.retry}\n\n".encode()
            while True:
                try:
                    batch = subscription.next_batch(self.heartbeat, 256)
                except EndpointError as exc:
                    yield event_error(str(exc))
                    return
                if batch is None:
                    if self.api.stopping.is_set():
                        yield GOAWAY
                    return
                if not batch:
                    yield b":\n\n"
                    continue
                yield self.events(batch)
                subscription.acknowledge(batch)
        finally:
            self.api.unsubscribe(subscription)

    def events(self, batch):
        """The bytes of one write: the events of a batch (the hot path: str formatting, one encode)."""
        with_comments = self.headers_as_comment or self.metadata_as_comment
        out = []
        shared = (None, None, "")  # messages of a batch often share their headers and metadata dicts
        for message in batch:
            data = message.content.decode("utf-8", "replace")
            if "\n" in data or "\r" in data:  # one data line per line of the content
                data = data.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\ndata: ")
            comments = ""
            if with_comments:
                if message.headers is not shared[0] or message.metadata is not shared[1]:
                    shared = (message.headers, message.metadata, self.comments(message))
                comments = shared[2]
            if message.id is None:
                out.append(f"event: message\ndata: {data}{comments}\n\n")
            else:
                out.append(f"id: {message.id}\nevent: message\ndata: {data}{comments}\n\n")
        return "".join(out).encode()

    def comments(self, message):
        lines = []
        if self.headers_as_comment:
            lines.extend(f"\n:{name}: {value}" for name, values in message.headers.items() for value in values)
        if self.metadata_as_comment:
            lines.extend(f"\n:{name}: {json_text(value)}" for name, value in message.metadata.items())
        return "".join(lines)


def event_error(text):
    return f"event: error\ndata: {text}\n\n".encode()


SPEC = EntrypointSpec(
    type="sse",
    label="Server-Sent Events",
    handler=ServerSentEvents,
    priority=20,
    qos=("none", "auto", "at-most-once", "at-least-once"),
    description="A long-lived stream of events, resumable with Last-Event-ID.",
    configuration=Settings(
        fields=(
            Field("heartbeatIntervalInMs", "integer", "Heartbeat interval (ms)", default=5000, minimum=2000),
            Field("metadataAsComment", "boolean", "Send message metadata as comments", default=False),
            Field("headersAsComment", "boolean", "Send message headers as comments", default=False),
        )
    ),
)
