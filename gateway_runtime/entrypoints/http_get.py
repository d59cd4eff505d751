"""HTTP GET: one call returns the messages available now, up to a count or a duration."""

import json
import time
from xml.sax.saxutils import escape, quoteattr

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from ..http import SentBody, query, respond, respond_json, templated
from ..messages import EndpointError, json_text
from ..settings import Field, Settings
from ..specs import EntrypointSpec

FORMATS = ("application/json", "application/xml", "text/plain")


class HttpGet:
    def __init__(self, config, api, qos):
        self.api = api
        self.qos = qos
        self.count = config["messagesLimitCount"]
        self.duration = config["messagesLimitDurationMs"] / 1000
        self.with_headers = config["headersInPayload"]
        self.with_metadata = config["metadataInPayload"]

    @staticmethod
    def matches(environ):
        return environ["REQUEST_METHOD"] == "GET"

    def __call__(self, environ, start_response):
        accept = environ.get("HTTP_ACCEPT")
        if accept:
            fmt = parse_accept_header(accept, MIMEAccept).best_match(FORMATS)
            if fmt is None:
                return respond(start_response, "400 Bad Request", f"Unsupported accept header: {accept}")
        else:
            fmt = "text/plain"
        params = query(environ)
        limit = self.count
        if "limit" in params:
            if not params["limit"].isdigit() or int(params["limit"]) < 1:
                return respond(start_response, "400 Bad Request", "limit must be a whole number of at least 1")
            limit = min(int(params["limit"]), self.count)
        cursor = params.get("cursor") or None
        items, error = [], None
        try:
            subscription = self.api.subscribe(environ, self.qos, cursor)
        except EndpointError as exc:
            return templated(environ, start_response, exc) or respond_json(
                start_response, exc.status, {"message": f"The endpoint failed: {exc}"}
            )
        try:
            subscription.wait_until_receiving()  # the client's wait starts once the endpoint receives
            deadline = time.monotonic() + self.duration
            while len(items) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                batch = subscription.next_batch(remaining, limit - len(items))
                if batch is None:
                    break
                items.extend(batch)
        except EndpointError as exc:
            error = str(exc)
        except BaseException:
            self.api.unsubscribe(subscription)
            raise
        next_cursor = items[-1].id if items and items[-1].id is not None else cursor
        body = RENDER[fmt](self, items, next_cursor, limit, error)
        chunks = respond(start_response, "200 OK", body, fmt + ";charset=UTF-8")
        # Acknowledge once the response was written (at-least-once), then give the subscription back.
        return SentBody(chunks[0], lambda: subscription.acknowledge(items), lambda: self.api.unsubscribe(subscription))

    def _item(self, message):
        item = {}
        if message.id is not None:
            item["id"] = message.id
        item["content"] = message.content.decode("utf-8", "replace")
        if self.with_headers:
            item["headers"] = message.headers
        if self.with_metadata:
            item["metadata"] = {k: v if isinstance(v, bool) else str(v) for k, v in message.metadata.items()}
        return item

    def as_json(self, items, next_cursor, limit, error):
        body = {"items": [self._item(m) for m in items], "pagination": {"nextCursor": next_cursor, "limit": str(limit)}}
        if error:
            body["error"] = {"message": error}
        return json.dumps(body)

    def as_xml(self, items, next_cursor, limit, error):
        out = ["<response><items>"]
        for message in items:
            item = self._item(message)
            out.append("<item>")
            if "id" in item:
                out.append(f"<id>{escape(item['id'])}</id>")
            out.append("<content><![CDATA[" + item["content"].replace("]]>", "]]]]><![CDATA[>") + "]]></content>")
            if "headers" in item:
                out.append(
                    "<headers>"
                    + "".join(
                        f"<header name={quoteattr(k)}>{escape(v)}</header>"
                        for k, vs in item["headers"].items()
                        for v in vs
                    )
                    + "</headers>"
                )
            if "metadata" in item:
                out.append(
                    "<metadata>"
                    + "".join(
                        f"<entry name={quoteattr(k)}>{escape(json_text(v))}</entry>"
                        for k, v in item["metadata"].items()
                    )
                    + "</metadata>"
                )
            out.append("</item>")
        out.append("</items><pagination>")
        if next_cursor is not None:
            out.append(f"<nextCursor>{escape(next_cursor)}</nextCursor>")
        out.append(f"<limit>{limit}</limit></pagination>")
        if error:
            out.append(f"<error><message>{escape(error)}</message></error>")
        out.append("</response>")
        return "".join(out)

    def as_text(self, items, next_cursor, limit, error):
        blocks = ["items"]
        for message in items:
            item = self._item(message)
            lines = ["item"]
            if "id" in item:
                lines.append(f"id: {item['id']}")
            lines.append(f"content: {item['content']}")
            if "headers" in item:
                lines.append(f"headers: {json.dumps(item['headers'])}")
            if "metadata" in item:
                lines.append(f"metadata: {json.dumps(item['metadata'])}")
            blocks.append("\n".join(lines))
        blocks.append(f"pagination\nnextCursor: {next_cursor if next_cursor is not None else ''}\nlimit: {limit}")
        if error:
            blocks.append(f"error\nmessage: {error}")
        return "\n\n".join(blocks) + "\n"


RENDER = {"application/json": HttpGet.as_json, "application/xml": HttpGet.as_xml, "text/plain": HttpGet.as_text}

SPEC = EntrypointSpec(
    type="http-get",
    label="HTTP GET",
    handler=HttpGet,
    priority=10,
    qos=("auto", "at-most-once", "at-least-once"),
    description="Clients poll for messages; each call returns up to a count or a duration.",
    configuration=Settings(
        fields=(
            Field("messagesLimitCount", "integer", "Limit messages count", default=500, minimum=1),
            Field("messagesLimitDurationMs", "integer", "Limit messages duration (ms)", default=5000, minimum=1),
            Field("headersInPayload", "boolean", "Send message headers in the payload", default=False),
            Field("metadataInPayload", "boolean", "Send message metadata in the payload", default=False),
        )
    ),
)
