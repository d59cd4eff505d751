"""HTTP proxy entrypoint: any request under the context path goes to the backend, streamed both
ways; the backend's answer comes back as it arrives."""

from functools import lru_cache

from ..http import respond_json, templated
from ..messages import EndpointError, Request
from ..request_target import ROUTED
from ..settings import Settings
from ..specs import EntrypointSpec

# Request headers the server folds into the environ without an HTTP_ prefix.
CONTENT_HEADERS = (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length"))
# Meaningful for the client's connection only (RFC 9110, 7.6.1), with those its Connection header names.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    )
)


class HttpProxy:
    def __init__(self, config, api, qos):
        self.api = api

    @staticmethod
    def matches(environ):
        return True

    def __call__(self, environ, start_response):
        headers = forwarded_headers(environ)
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        # The body is read from the client while it is sent on: an upload never sits in memory.
        body = environ["wsgi.input"] if chunked or headers.get("Content-Length", "0") != "0" else None
        # The path exactly as the client encoded it, under the target's; the query as it sent it
        # (less the credentials the plans took out).
        request = Request(
            environ["REQUEST_METHOD"],
            environ[ROUTED].rest,
            environ.get("QUERY_STRING", ""),
            headers,
            body,
            environ.get("HTTP_HOST"),
        )
        try:
            answer = self.api.forward(request, environ)
        except EndpointError as exc:
            return templated(environ, start_response, exc) or respond_json(
                start_response, exc.status, {"message": str(exc)}
            )
        start_response(answer.status, answer.headers)
        return answer


def forwarded_headers(environ):
    options = connection_options(environ)
    dropped = HOP_BY_HOP | options if options else HOP_BY_HOP
    headers = {}
    for key, value in environ.items():
        if key[:5] == "HTTP_":
            name, lower = header_name(key)
            if lower not in dropped:
                headers[name] = value
    for key, name in CONTENT_HEADERS:
        if environ.get(key):
            headers[name] = environ[key]
    client = environ.get("REMOTE_ADDR", "")
    previous = environ.get("HTTP_X_FORWARDED_FOR")
    headers["X-Forwarded-For"] = f"{previous}, {client}" if previous else client
    headers["X-Forwarded-Proto"] = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http")
    headers["X-Forwarded-Host"] = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST", "")
    return headers


@lru_cache(maxsize=1024)  # the same few names on every request; bounded against made-up ones
def header_name(key):
    """The header name of an environ key, and its lower case."""
    name = key[5:].replace("_", "-").title()
    return name, name.lower()


def connection_options(environ):
    """The header names the client's Connection header lists."""
    value = environ.get("HTTP_CONNECTION")
    return {option.strip().lower() for option in value.split(",")} - {""} if value else set()


SPEC = EntrypointSpec(
    type="http-proxy",
    label="HTTP proxy",
    handler=HttpProxy,
    api_types=("proxy",),
    priority=0,
    operations=(),
    qos=("auto",),
    description="Clients call the API as they would call the backend.",
    configuration=Settings(),
)
