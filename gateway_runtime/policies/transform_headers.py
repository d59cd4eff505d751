"""transform-headers: on a request, an answer or a message, set headers (replacing their values),
append values, then remove headers and keep only the whitelisted ones, in that order as Gravitee's
policy does (so a header both set and removed is removed). Values are templates."""

from ..expressions import Headers
from ..messages import Message
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import PAIRS_HELP, evaluate, template

FAILURE = ("TRANSFORM_HEADERS_FAILURE", "Unable to apply headers transformation")


def _pairs(configuration, key):
    return [
        (pair["name"], template(pair["value"], f"{key}[{i}].value"))
        for i, pair in enumerate(configuration.get(key) or [])
        if pair.get("name", "").strip()
    ]


class TransformHeaders:
    def __init__(self, configuration):
        self.set = _pairs(configuration, "addHeaders")
        self.append = _pairs(configuration, "appendHeaders")
        self.remove = [name for name in configuration.get("removeHeaders") or [] if name.strip()]
        self.whitelist = [name for name in configuration.get("whitelistHeaders") or [] if name.strip()]
        self.constant = all(value.is_constant for _, value in self.set + self.append)
        # What it does to an answer depends on the answer's headers alone: the gateway may reuse it.
        self.edit_headers = (lambda headers: self._apply(headers, None, "")) if self.constant else None

    def on_request(self, exchange):
        self._apply(exchange.request.headers, exchange.context, FAILURE[1])

    def on_response(self, exchange):
        self._apply(exchange.response.headers, exchange.context, FAILURE[1])

    def on_message(self, exchange, message):
        self._apply(message.headers, lambda: exchange.message_context(message), FAILURE[1] + " on message")

    def on_batch(self, exchange, messages, private):
        """Values without expressions: each distinct headers dict of the batch (a connector's
        messages often share one) is transformed once, and the result shared as theirs; messages
        private to the subscription get it in place, others are copied."""
        if not self.constant:
            return None
        done = {}
        source = new = None
        if private:  # changed in place: the list given is the answer
            for message in messages:
                if isinstance(message, Message):  # not one left out
                    if message.headers is not source:
                        source = message.headers
                        new = done.get(id(source))
                        if new is None:
                            new = done[id(source)] = self._applied(source)
                    message.headers = new
            return messages
        out = []
        for message in messages:
            if not isinstance(message, Message):  # left out: stays so
                out.append(message)
                continue
            if message.headers is not source:
                source = message.headers
                new = done.get(id(source))
                if new is None:
                    new = done[id(source)] = self._applied(source)
            out.append(Message(message.content, message.id, new, message.metadata, message.attributes))
        return out

    def _applied(self, source):
        headers = Headers(source)
        self._apply(headers, None, "")
        return headers.as_lists()

    def _apply(self, headers, context, failure):
        for name, value in self.set:
            text = value.text if value.is_constant else evaluate(value, context, failure, FAILURE[0])
            if text:  # an expression giving nothing sets nothing
                headers.put(name, text)
        for name, value in self.append:
            text = value.text if value.is_constant else evaluate(value, context, failure, FAILURE[0])
            if text:
                headers.add(name, text)
        for name in self.remove:
            headers.remove(name)
        if self.whitelist:
            headers.keep_only(self.whitelist)


def _header_names(values, settings):
    names = [p.get("name", "") for key in ("addHeaders", "appendHeaders") for p in values.get(key) or []]
    return {"addHeaders": "Header names must not contain spaces."} if any(" " in name for name in names) else {}


SPEC = PolicySpec(
    type="transform-headers",
    label="Transform headers",
    policy=TransformHeaders,
    description="Set, append or remove headers of requests, answers and messages.",
    configuration=Settings(
        fields=(
            Field("addHeaders", "pairs", "Set or replace headers", help=PAIRS_HELP, secret_pairs=True),
            Field("appendHeaders", "pairs", "Append header values", help="One 'name: value' a line", secret_pairs=True),
            Field("removeHeaders", "list", "Remove headers"),
            Field("whitelistHeaders", "list", "Keep only these headers"),
        ),
        checks=(_header_names,),
    ),
)
