"""HTTP POST: one request body is one published message."""

from ..http import (
    TooLarge,
    max_message_bytes,
    read_body,
    request_headers,
    respond,
    respond_interrupted,
    respond_json,
    templated,
)
from ..messages import EndpointError, Interrupted, Message, OutcomeUnknown
from ..settings import Field, Settings
from ..specs import EntrypointSpec


class HttpPost:
    def __init__(self, config, api, qos):
        self.api = api
        self.qos = qos
        self.headers_to_message = config["requestHeadersToMessage"]
        self.produce_empty = config["produceEmptyMessage"]

    @staticmethod
    def matches(environ):
        return environ["REQUEST_METHOD"] == "POST"

    def __call__(self, environ, start_response):
        limit = max_message_bytes()
        try:
            body = read_body(environ, limit)
        except TooLarge:
            return respond_json(
                start_response,
                "413 Request Entity Too Large",
                {"message": f"The message is larger than {limit} bytes."},
            )
        if body or self.produce_empty:
            headers = request_headers(environ) if self.headers_to_message else {}
            # The body's type travels with it, whatever requestHeadersToMessage says: it becomes the
            # AMQP content_type and the MQTT ContentType.
            metadata = {"contentType": environ["CONTENT_TYPE"]} if environ.get("CONTENT_TYPE") else {}
            try:
                self.api.publish(environ, self.qos, Message(body, headers=headers, metadata=metadata))
            except Interrupted as stop:  # a policy refused the message
                return respond_interrupted(environ, start_response, stop)
            except OutcomeUnknown as exc:
                return templated(environ, start_response, exc) or respond_json(
                    start_response, exc.status, {"message": f"Outcome unknown: {exc}; {exc.advice}."}
                )
            except EndpointError as exc:
                return templated(environ, start_response, exc) or respond_json(
                    start_response, exc.status, {"message": f"The endpoint failed: {exc}"}
                )
        return respond(start_response, "202 Accepted")


SPEC = EntrypointSpec(
    type="http-post",
    label="HTTP POST",
    handler=HttpPost,
    priority=10,
    operations=("PUBLISH",),
    qos=("none", "auto"),
    description="Clients publish one message per request.",
    configuration=Settings(
        fields=(
            Field("requestHeadersToMessage", "boolean", "Add request headers to the message", default=False),
            Field("produceEmptyMessage", "boolean", "Publish a message for an empty body", default=False),
        )
    ),
)
