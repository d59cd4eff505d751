"""HTTP proxy entrypoint: any request under the context path goes to the backend, streamed both
ways; the backend's answer comes back as it arrives."""
from ..http import respond_json
from ..messages import EndpointError, Request
from ..registry import EntrypointSpec
from ..settings import Settings

# Request headers the server folds into the environ without an HTTP_ prefix.
CONTENT_HEADERS = (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length"))


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
        request = Request(environ["REQUEST_METHOD"], self.api.rest_of(environ.get("PATH_INFO") or "/"),
                          environ.get("QUERY_STRING", ""), headers, body, environ.get("HTTP_HOST"))
        try:
            answer = self.api.forward(request, environ)
        except EndpointError as exc:
            return respond_json(start_response, exc.status, {"message": str(exc)})
        start_response(answer.status, answer.headers)
        return answer


def forwarded_headers(environ):
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            if name.lower() not in ("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
                                    "proxy-authorization", "proxy-connection"):
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


SPEC = EntrypointSpec(
    type="http-proxy",
    label="HTTP proxy",
    handler=HttpProxy,
    api_types=("proxy",),
    priority=0,
    qos=("auto",),
    description="Clients call the API as they would call the backend.",
    configuration=Settings(),
)
