"""Where flows meet the gateway: around an entrypoint's request (request and response phases), and
on each message an API publishes or delivers (publish and subscribe phases)."""

import time
from typing import Any, cast

from ..http import respond_interrupted, with_headers
from ..messages import Interrupted, Message, Subscription
from ..specs import UNACKNOWLEDGED
from .compiled import ANSWER_AS_IS, FlowSet
from .exchange import EXCHANGE, Exchange, RequestView, ResponseView


def serve(
    flows: FlowSet,
    environ: dict[str, Any],
    start_response: Any,
    handler: Any,
    plan: str | None,
    subscription_id: str | None,
    metadata: dict[str, dict[str, str]],
    streaming: bool,
) -> Any:
    """The entrypoint's answer with the API's flows run around it. `metadata`: subscriptions', by
    id; `streaming`: the answer is a stream (a message API's), whose content the response phase
    cannot hold."""
    shortcut = flows.shortcut(plan, handler)
    if shortcut is not None:  # the same for every request of this entrypoint: nothing to look at
        if shortcut is ANSWER_AS_IS:
            return handler(environ, start_response)
        return handler(environ, _edited(start_response, shortcut))
    subscription = None
    if subscription_id is not None:  # as #subscription shows it
        subscription = {"id": subscription_id, "plan": plan, "metadata": metadata.get(subscription_id, {})}
    request = RequestView(environ)
    exchange = Exchange(
        request,
        flows,
        plan,
        subscription,
        getattr(handler, "type", None),
        getattr(handler, "operations", frozenset()),
    )
    try:
        flows.start(exchange)
    except Interrupted as stop:
        return respond_interrupted(environ, start_response, stop)
    request.write_back()
    if exchange.answer_headers:  # a request step's word to the client (a rate limit's counts)
        start_response = with_headers(start_response, exchange.answer_headers)
    if not flows.has("response", exchange):
        return _entrypoint(handler, environ, start_response, exchange)
    edit = flows.header_edit(exchange)
    if edit is not None:  # the answer's headers changed as they are started: nothing held
        return _entrypoint(handler, environ, _edited(start_response, edit), exchange)
    started: list[Any] = []

    def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers, exc_info]
        return None  # no entrypoint writes through start_response's writer

    body = _entrypoint(handler, environ, hold, exchange)
    exchange.response = ResponseView(started[0], list(started[1]), body, not streaming)
    try:
        flows.run("response", exchange)
    except Interrupted as stop:
        _close(exchange.response.body)
        return respond_interrupted(environ, start_response, stop)
    answer = exchange.response
    start_response(answer.status_line(), answer.header_list(), started[2])
    return answer.body


def _edited(start_response: Any, edit: Any) -> Any:
    """A start_response that sends the headers as `edit` makes them."""
    return lambda status, headers, exc_info=None: start_response(status, edit(headers), exc_info)


def _entrypoint(handler: Any, environ: dict[str, Any], start_response: Any, exchange: Exchange) -> Any:
    """The entrypoint's answer; while it runs, its message phases find the exchange in the environ.
    Taken out after: the request view holds the environ, and a cycle would wait for the collector."""
    environ[EXCHANGE] = exchange
    try:
        return handler(environ, start_response)
    finally:
        del environ[EXCHANGE]


def _close(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def publish_phase(flows: FlowSet, environ: dict[str, Any], message: Message) -> Message | None:
    """The message as the publish phase leaves it (None: filtered out); raises Interrupted."""
    exchange = environ.get(EXCHANGE)
    if exchange is None or not flows.has("publish", exchange):
        return message
    return flows.run_message("publish", exchange, message)


def push_exchange(flows: FlowSet, subscription: dict[str, Any]) -> Exchange | None:
    """The exchange of a push subscription's deliveries (no request: its flows are chosen once)."""
    exchange = Exchange(None, flows, subscription.get("plan"), subscription, "webhook", frozenset(("SUBSCRIBE",)))
    try:
        flows.start(exchange)
    except Interrupted:  # no flow for it, and one is required: delivered as it comes
        return None
    return exchange


class FlowSubscription(Subscription):
    """A subscription whose messages go through the subscribe phase. A message a policy filters out
    is acknowledged with the next one delivered after it, so that at-least-once commits stay in order."""

    def __init__(self, inner: Subscription, flows: FlowSet, exchange: Exchange) -> None:
        self.inner = inner
        self.flows = flows
        self.exchange = exchange
        self.carried: list[Message] = []  # filtered out since the last delivered message
        # What acknowledging a delivered message acknowledges at the connector: the message it was
        # made from (when a policy made a new one), and those filtered out just before it.
        self.origins: dict[int, Message] = {}
        self.before: dict[int, list[Message]] = {}
        # A connector that acknowledges nothing (the Mock) needs none of that kept.
        self.tracked = type(inner).acknowledge is not Subscription.acknowledge
        self.private = inner.private_messages

    def __getattr__(self, name: str) -> Any:  # what a connector's subscription offers besides the contract
        return getattr(self.inner, name)

    def wait_until_receiving(self) -> None:
        self.inner.wait_until_receiving()

    def next_batch(self, timeout: float, max_messages: int) -> list[Message] | None:
        deadline = time.monotonic() + timeout
        while True:
            batch = self.inner.next_batch(max(0.0, deadline - time.monotonic()), max_messages)
            if not batch:
                return batch
            results = self.flows.run_batch("subscribe", self.exchange, batch, self.private)
            if not self.tracked:
                if "subscribe" not in self.flows.drops:
                    return cast(list[Message], results)  # nothing was left out: no None in it
                delivered = [result for result in results if result is not None and result is not UNACKNOWLEDGED]
                if delivered or time.monotonic() >= deadline:
                    return delivered
                continue
            delivered = []
            origins, carried = self.origins, self.carried
            for original, result in zip(batch, results, strict=True):
                if result is None:
                    carried.append(original)
                    continue
                if result is UNACKNOWLEDGED:  # left to the connector, which may give it again
                    continue
                if result is not original:
                    origins[id(result)] = original
                if carried:
                    self.before[id(result)] = carried
                    carried = []
                delivered.append(result)
            self.carried = carried
            if delivered or time.monotonic() >= deadline:
                return delivered

    def acknowledge(self, messages: list[Message]) -> None:
        if not self.tracked:
            return self.inner.acknowledge(messages)
        sources = []
        for message in messages:
            before = self.before.pop(id(message), None) if self.before else None
            if before:
                sources += before
            sources.append(self.origins.pop(id(message), message))
        self.inner.acknowledge(sources)

    def close(self) -> None:
        self.inner.close()
