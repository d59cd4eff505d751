"""Small WSGI helpers for the gateway's hot path (no Flask here)."""

import hashlib
import ipaddress
import json
import os
import socket
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


class TooLarge(Exception):
    pass


class BadBody(Exception):
    """The client's request body could not be read: a malformed chunk, or the connection ended
    before the body did. The client's fault: 400, never a traceback."""


class ClientBody:
    """wsgi.input, its failures turned into BadBody. Every way a body fails to arrive is the
    client's: pywsgi's malformed-chunk and early-end IOErrors, a reset, gunicorn's parse errors,
    and a body shorter than its Content-Length (gunicorn hands over what came before the end)."""

    __slots__ = ("stream", "length", "left")

    def __init__(self, stream, length=None):
        self.stream = stream
        self.length = self.left = length  # None: chunked, the server checks its framing

    def read(self, *size):
        data = _client_side(self.stream.read, size)
        self._count(data, _short(data, size))
        return data

    def readline(self, *size):
        data = _client_side(self.stream.readline, size)
        self._count(data, not data.endswith(b"\n") and _short(data, size))
        return data

    def _count(self, data, at_end):
        """A read that came back short ended the stream: before the body's end, the client's fault."""
        if self.left is None:
            return
        self.left -= len(data)
        if at_end and self.left > 0:
            raise BadBody(
                f"The request body could not be read: it ended after {self.length - self.left} of its "
                f"{self.length} bytes (Content-Length)."
            )


def _short(data, size):
    """Whether a read(size) came back with less than it asked for (all there was, without a size)."""
    wanted = size[0] if size and size[0] is not None and size[0] >= 0 else None
    return wanted is None or len(data) < wanted


def _client_side(read, size):
    try:
        return read(*size)
    except Exception as exc:
        raise BadBody(f"The request body could not be read: {_reason(exc)}.") from None


def has_body(environ):
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ


def _reason(exc):
    first = exc.args[0] if exc.args else None  # pywsgi's errors: (what, the byte that was wrong)
    return first if isinstance(first, str) else str(exc) or type(exc).__name__


MAX_MESSAGE_BYTES = "GATEHOUSE_MAX_MESSAGE_BYTES"


@lru_cache(maxsize=1)  # read once: the environment does not change while the process serves
def max_message_bytes():
    """The largest http-post body and WebSocket frame; ValueError naming the setting when it is not
    a whole number greater than 0 (checked at start)."""
    raw = os.environ.get(MAX_MESSAGE_BYTES, "").strip()
    if not raw:
        return DEFAULT_MAX_MESSAGE_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise ValueError(f"{MAX_MESSAGE_BYTES} must be a whole number of bytes greater than 0, not {raw!r}")
    return int(raw)


@lru_cache(maxsize=4096)  # the same few client addresses, request after request
def address_identifier(address):
    return hashlib.sha256(address.encode()).hexdigest()[:32]


UPGRADE = "gatehouse.upgrade"  # environ key: hands the client's connection over (server/http1.py)


def take_connection(environ):
    """The client's socket, for a protocol that replaces HTTP on it (WebSocket). The gateway's own
    server hands its connection over; pywsgi and gunicorn only let it be dug out of their environ."""
    if UPGRADE in environ:
        return environ[UPGRADE]()
    if "gunicorn.socket" in environ:
        return environ["gunicorn.socket"]
    return _pywsgi_socket(environ).dup()


def end_taken(environ, start_response):
    """The response to a request whose connection was taken (take_connection) and is done with:
    the server neither writes an HTTP response on it nor waits there for a next request."""
    if UPGRADE in environ:
        return []
    if "gunicorn.socket" in environ:
        raise StopIteration()  # gunicorn's gevent worker: the connection ends without a response
    try:
        _pywsgi_socket(environ).shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
    start_response("101 Switching Protocols", [("Connection", "close")])
    return []


def _pywsgi_socket(environ):
    stream = environ["wsgi.input"]  # pywsgi gives an upgrade request its socket file itself
    return getattr(stream, "rfile", stream).raw._sock


def respond(start_response, status, body=b"", content_type="text/plain;charset=UTF-8", headers=(), exc_info=None):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers], exc_info)
    return [body]


class SentBody:
    """A one-chunk response body that knows whether the server finished writing it: the server
    asks for the next chunk only after the previous one was sent. On close, `on_sent` runs if it
    was, then `on_close` in any case."""

    def __init__(self, body, on_sent, on_close):
        self.body, self.on_sent, self.on_close = body, on_sent, on_close
        self.sent = False

    def __iter__(self):
        yield self.body
        self.sent = True

    def close(self):
        try:
            if self.sent:
                self.on_sent()
        finally:
            self.on_close()


def respond_json(start_response, status, payload, exc_info=None, headers=()):
    return respond(start_response, status, json.dumps(payload), "application/json", headers, exc_info)


def with_headers(start_response, added):
    """A start_response that sends these headers too."""

    def started(status, headers, exc_info=None):
        return start_response(status, [*headers, *added], exc_info)

    return started


def templated(environ, start_response, failed, headers=()):
    """The API's response template's answer to a failure of the gateway's own (an EndpointError,
    a plan's Refused: status, message, key), or None, when the API has none for it."""
    templates = environ.get(TEMPLATES)
    if templates is None:
        return None
    from .response_templates import Failure  # it answers with this module's respond

    status = int(str(failed.status)[:3])
    failure = Failure(status, getattr(failed, "message", None) or str(failed), failed.key, failed.parameters)
    return templates.answer(environ, start_response, failure, headers)


def respond_interrupted(environ, start_response, stop):
    """A policy's failure (messages.Interrupted) as Gravitee answers it: the API's response template
    for it, else JSON when the client takes it, else the message as text."""
    headers = getattr(stop, "headers", ())
    answered = templated(environ, start_response, stop, headers)
    if answered is not None:
        return answered
    accept = environ.get("HTTP_ACCEPT", "")
    if "application/json" in accept or "*/*" in accept:
        payload = {"message": stop.message, "http_status_code": stop.code}
        return respond_json(start_response, stop.status, payload, headers=headers)
    return respond(start_response, stop.status, stop.message, headers=headers)


def query(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def read_body(environ, limit):
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.isdigit():
        if int(length) > limit:
            raise TooLarge()
        return stream.read(int(length))
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise TooLarge()
    return body


def request_headers(environ):
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.setdefault(key[5:].replace("_", "-").lower(), []).append(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.setdefault(key.replace("_", "-").lower(), []).append(value)
    return headers


def _trusted_networks():
    raw = os.environ.get("GATEHOUSE_TRUSTED_PROXIES", "")
    return [ipaddress.ip_network(item.strip(), strict=False) for item in raw.split(",") if item.strip()]


TRUSTED_PROXIES = _trusted_networks()


def _trusted(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in TRUSTED_PROXIES)


def client_address(environ):
    """The first untrusted address: behind trusted proxies, walk X-Forwarded-For from the right."""
    address = environ.get("REMOTE_ADDR", "")
    if not TRUSTED_PROXIES or not _trusted(address):
        return address
    for hop in reversed([h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]):
        address = hop
        if not _trusted(hop):
            break
    return address


def client_scheme(environ):
    """The scheme the client used: the connection's, or the X-Forwarded-Proto a trusted proxy
    (one that terminates TLS, say) sends."""
    forwarded = environ.get("HTTP_X_FORWARDED_PROTO", "")
    if forwarded and _trusted(environ.get("REMOTE_ADDR", "")):
        return forwarded.split(",")[0].strip().lower()
    return environ.get("wsgi.url_scheme", "http")


# Headers that frame a body on its connection: the gateway keeps them right, never a flow's policy.
FRAMING = frozenset(("content-length", "transfer-encoding"))
SUBSCRIPTION = "gatehouse.subscription"  # environ key: the subscription a request is served under
ROUTE = "gatehouse.route"  # environ key: where a flow's dynamic routing sends a proxy request
TEMPLATES = "gatehouse.response_templates"  # environ key: the response templates of the request's API


def client_identifier(environ: dict[str, Any]) -> str:
    """The subscription id; key-less clients are told apart by a hash of their address. Either way
    a client may append to it (X-Gravitee-Client-Identifier), to run several consumer groups."""
    identifier = environ.get(SUBSCRIPTION) or address_identifier(client_address(environ))
    extra = environ.get("HTTP_X_GRAVITEE_CLIENT_IDENTIFIER")
    return f"{identifier}-{extra}" if extra else identifier
