"""One request through an API's flows: what expressions read (#request, #response, #message,
#context.attributes, #api, #subscription, #application) and what policies change.

The views are built lazily from the WSGI environ: a request whose flows read nothing costs nothing.
Changes to the request (headers, query, body) are written back into the environ once, after the
request phase; changes to the answer, before it is sent; a message's, into a new Message.
"""

import io
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote

from ..expressions import Headers
from ..http import FRAMING
from ..messages import Message
from ..request_target import ROUTED

EXCHANGE = "gatehouse.exchange"  # environ key: the request's Exchange, for the message phases
ENVIRON_CONTENT = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def environ_headers(environ: dict[str, Any]) -> Headers:
    pairs = [(key[5:].replace("_", "-").title(), value) for key, value in environ.items() if key[:5] == "HTTP_"]
    pairs += [(name, environ[key]) for name, key in (("Content-Type", "CONTENT_TYPE"),) if environ.get(key)]
    if environ.get("CONTENT_LENGTH"):
        pairs.append(("Content-Length", environ["CONTENT_LENGTH"]))
    return Headers(pairs)


def _json_or_none(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


class View(Mapping):
    """What an expression reads of the request, the answer or a message: a mapping of KEYS, each
    made when read."""

    KEYS: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)


class RequestView(View):
    """#request. `content` reads the whole body once (it is then sent on from memory)."""

    KEYS = (
        "id",
        "transactionId",
        "method",
        "scheme",
        "host",
        "path",
        "pathInfo",
        "contextPath",
        "uri",
        "headers",
        "params",
        "pathParams",
        "content",
        "jsonContent",
        "remoteAddress",
        "localAddress",
        "timestamp",
    )

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._id: str | None = None
        self._path_info: str | None = None
        self.path_params: dict[str, str] = {}
        self._headers: Headers | None = None
        self._params: dict[str, list[str]] | None = None
        self._content: bytes | None = None
        self.query_changed = False
        self.content_changed = False

    # ----- what policies change -----
    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = environ_headers(self.environ)
        return self._headers

    @property
    def params(self) -> dict[str, list[str]]:
        if self._params is None:
            self._params = parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
        return self._params

    def set_params(self, params: dict[str, list[str]]) -> None:
        self._params, self.query_changed = params, True

    @property
    def content(self) -> bytes:
        if self._content is None:
            from ..http import max_message_bytes, read_body  # as the entrypoints read a body

            self._content = read_body(self.environ, max_message_bytes())
            self._replace_body(self._content)
        return self._content

    def set_content(self, content: bytes) -> None:
        self._content, self.content_changed = content, True

    def _replace_body(self, content: bytes) -> None:
        self.environ["wsgi.input"] = io.BytesIO(content)
        self.environ["CONTENT_LENGTH"] = str(len(content))
        self.environ.pop("HTTP_TRANSFER_ENCODING", None)

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "/")

    @property
    def path_info(self) -> str:
        if self._path_info is None:  # every selector reads it
            routed = self.environ.get(ROUTED)
            self._path_info = (routed.rest if routed is not None else self.path) or "/"
        return self._path_info

    def write_back(self) -> None:
        """The request phase's changes, into the environ the entrypoint reads."""
        environ = self.environ
        if self._headers is not None and self._headers.changed:
            for key in [k for k in environ if k[:5] == "HTTP_" and k != "HTTP_TRANSFER_ENCODING"]:
                del environ[key]
            environ.pop("CONTENT_TYPE", None)
            for name, values in self._headers.as_lists().items():
                lower = name.lower()
                if lower in FRAMING:
                    continue
                key = ENVIRON_CONTENT.get(lower) or "HTTP_" + name.upper().replace("-", "_")
                environ[key] = ", ".join(values)
        if self.query_changed:
            environ["QUERY_STRING"] = "&".join(
                f"{quote(name, safe='')}={quote(value, safe='')}" if value else quote(name, safe="")
                for name, values in self.params.items()
                for value in values
            )
        if self.content_changed and self._content is not None:
            self._replace_body(self._content)

    # ----- what expressions read -----
    def __getitem__(self, key: str) -> Any:
        environ = self.environ
        if key in ("id", "transactionId"):
            if self._id is None:  # made when read: most flows never do
                self._id = str(uuid.uuid4())
            return self._id
        if key == "method":
            return environ.get("REQUEST_METHOD")
        if key == "scheme":
            return environ.get("wsgi.url_scheme", "http")
        if key == "host":
            return environ.get("HTTP_HOST")
        if key == "path":
            return self.path
        if key == "pathInfo":
            return self.path_info
        if key == "contextPath":
            routed = environ.get(ROUTED)
            return routed.context if routed is not None else "/"
        if key == "uri":
            query = environ.get("QUERY_STRING")
            return self.path + ("?" + query if query else "")
        if key == "headers":
            return self.headers
        if key == "params":
            return self.params
        if key == "pathParams":
            return self.path_params
        if key == "content":
            return self.content.decode("utf-8", "replace")
        if key == "jsonContent":
            return _json_or_none(self.content.decode("utf-8", "replace"))
        if key == "remoteAddress":
            return environ.get("REMOTE_ADDR")
        if key == "localAddress":
            return environ.get("SERVER_NAME")
        if key == "timestamp":
            return environ.get("gatehouse.started")
        raise KeyError(key)


class ResponseView(View):
    """#response: the answer the entrypoint started, before it is sent. `content` is there only
    where the answer can be held whole (a proxy's); a stream's is None."""

    KEYS = ("status", "reason", "headers", "content", "jsonContent")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: Any, bufferable: bool) -> None:
        code, _, self.reason = status.partition(" ")
        self.status = int(code)
        self.started = status, headers
        self._headers: Headers | None = None
        self.body = body
        self.bufferable = bufferable
        self._content: bytes | None = None
        self.content_changed = False

    @property
    def content(self) -> bytes | None:
        if self._content is None and self.bufferable:
            body, self.body = self.body, None
            try:
                self._content = b"".join(body)
            finally:
                if hasattr(body, "close"):
                    body.close()
            self.body = [self._content]
        return self._content

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.started[1])
        return self._headers

    def set_content(self, content: bytes) -> None:
        self._content, self.content_changed, self.body = content, True, [content]

    def status_line(self) -> str:
        line = f"{self.status} {self.reason}".rstrip()
        return self.started[0] if line == self.started[0] else line

    def header_list(self) -> list[tuple[str, str]]:
        """The headers to send: the framing ones as the entrypoint set them (or the length of a
        body a policy replaced), whatever a policy did to them."""
        original = self.started[1]
        if (self._headers is None or not self._headers.changed) and not self.content_changed:
            return original
        changed = self._headers if self._headers is not None else Headers(original)
        pairs = changed.pairs(FRAMING)
        if self._content is not None:
            pairs.append(("Content-Length", str(len(self._content))))
        else:
            pairs += [(name, value) for name, value in original if name.lower() in FRAMING]
        return pairs

    def __getitem__(self, key: str) -> Any:
        if key == "status":
            return self.status
        if key == "reason":
            return self.reason
        if key == "headers":
            return self.headers
        if key == "content":
            content = self.content
            return None if content is None else content.decode("utf-8", "replace")
        if key == "jsonContent":
            content = self.content
            return None if content is None else _json_or_none(content.decode("utf-8", "replace"))
        raise KeyError(key)


class MessageView(View):
    """#message: one message as policies change it; `result()` is the Message sent on."""

    KEYS = ("id", "content", "headers", "attributes", "metadata", "contentType", "error")

    def __init__(self, message: Message, phase: str) -> None:
        self.original = message
        self.phase = phase
        self.content = message.content
        self._headers: Headers | None = None
        self.metadata = message.metadata
        self.attributes: dict[str, Any] = dict(message.attributes) if message.attributes else {}

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.original.headers)
        return self._headers

    def result(self) -> Message:
        original = self.original
        unchanged = self.content is original.content and self.metadata is original.metadata
        changed = self._headers is not None and self._headers.changed
        if unchanged and not changed and self.attributes == (original.attributes or {}):
            return original
        headers = self._headers.as_lists() if self._headers is not None and changed else original.headers
        attributes = self.attributes or None
        return Message(self.content, original.id, headers, self.metadata, attributes)

    def __getitem__(self, key: str) -> Any:
        if key == "id":
            return self.original.id
        if key == "content":
            return self.content.decode("utf-8", "replace")
        if key == "headers":
            return self.headers
        if key == "attributes":
            return self.attributes
        if key == "metadata":
            return self.metadata
        if key == "contentType":
            return self.metadata.get("contentType")
        if key == "error":
            return False
        raise KeyError(key)


class Exchange:
    """A request (or a push subscription's delivery) through an API's flows (a FlowSet): the roots
    its expressions see."""

    def __init__(
        self,
        request: RequestView | None,
        flows: Any,
        plan: str | None,
        subscription: Mapping[str, Any] | None,
        entrypoint: str | None,
        operations: frozenset[str] = frozenset(),
    ) -> None:
        self.request = request
        self.operations = operations  # PUBLISH, SUBSCRIBE: what the entrypoint does with messages
        self.response: ResponseView | None = None
        self.attributes: dict[str, Any] = {}
        self.plan = plan
        self.entrypoint = entrypoint
        self.endpoint = flows.endpoint_type  # the type of the API's endpoints
        self.flows: list[Any] = []  # the flows selected for this request, plan flows first
        self.answer_headers: list[tuple[str, str]] = []  # added to the answer by request-phase steps
        self.api = flows.api  # #api, the FlowSet's
        self.endpoint_refs = flows.endpoint_refs
        self.subscription = subscription
        self.roots: dict[str, Any] | None = None  # made when an expression first reads them

    def context(self) -> dict[str, Any]:
        if self.roots is None:
            self.roots = {
                "request": self.request,
                "context": {"attributes": self.attributes},
                "api": self.api,
                "subscription": self.subscription,
                "application": (self.subscription or {}).get("application"),
                "endpoints": self.endpoint_refs,
            }
        self.roots["response"] = self.response
        return self.roots

    def message_context(self, message: MessageView) -> dict[str, Any]:
        return {**self.context(), "message": message}
