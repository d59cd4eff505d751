"""A deployed API: an immutable object built from one revision's definition.

A redeploy builds the new one beside the old; the router swaps one reference; the old one then
retires: its streams are told to go away, in-flight requests finish, its connectors close.
"""

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from gevent.event import Event

from . import cors, failover, health, plans, registry, response_templates
from .definition.parts import dlq_endpoint
from .flows.compiled import FlowSet
from .flows.exchange import EXCHANGE
from .flows.serve import FlowSubscription, publish_phase, push_exchange
from .http import ROUTE, client_identifier
from .messages import ClientContext, EndpointConnector, EndpointError, Message, Request, Subscription
from .request_target import route_key

log = logging.getLogger("gatehouse.gateway")
DRAIN_TIMEOUT_S = 30
ADHOC_LIMIT = 32  # connectors kept for the URLs dynamic routes named
Environ = dict[str, Any]  # a WSGI environ
Definition = dict[str, Any]  # a deployed revision's definition, in the gateway form
S = TypeVar("S")


class DeployedApi:
    def __init__(self, definition: Definition, revision: int) -> None:
        self.id: str = definition["id"]
        self.name = definition.get("name", self.id)
        self.revision = revision
        self.stopping = Event()
        self.active = 0
        self.idle = Event()
        self.idle.set()
        self.subscriptions: set[Subscription] = set()
        self.paths: list[tuple[str | None, str]] = []  # (host or None, normalised path)
        self.sni_hosts: list[str] = []  # lower-case host names of a tcp listener
        self.entrypoints: list[Any] = []  # handlers (each its entrypoint's own class), highest priority first
        self.webhook: Any = None  # the webhook entrypoint of a subscription listener
        self.endpoints: list[tuple[EndpointConnector, int, bool]] = []  # (connector, weight, secondary)
        self.extra_connectors: list[EndpointConnector] = []  # connectors outside the balancer (a dead-letter endpoint)
        self.health_checks: list[health.HealthCheck] = []
        settings = definition.get("failover") or {}
        self.failover = (
            failover.Failover(failover.SETTINGS.with_defaults(settings)) if settings.get("enabled") else None
        )
        listed = definition.get("plans") or {}
        listed = list(listed.values() if isinstance(listed, dict) else listed)
        self.guard = plans.Guard(self.id, listed)
        self.push_plans = {plan["id"] for plan in listed if plan.get("mode") == "push"}
        # Compiled once here; None when no flow has a step (requests then skip flows altogether).
        self.flows = FlowSet(definition) if FlowSet.needed(definition) else None
        self.streams = definition.get("type") == "message"  # its answers are streams, not held whole
        self.cors = cors.of(definition.get("listeners", []))
        self.templates = response_templates.of(definition)
        try:
            self._build(definition)
        except Exception:
            self.close_connectors()
            raise

    def _build(self, definition: Definition) -> None:
        ranked = []
        for listener in definition.get("listeners", []):
            if listener.get("type") == "subscription":
                self._build_webhook(definition, listener)
                continue
            for entry in listener.get("paths", []):
                self.paths.append((entry.get("host") or None, route_key(entry["path"])))
            if listener["type"] == "tcp":
                self.sni_hosts += [host.lower() for host in listener.get("hosts", [])]
            for entrypoint in listener.get("entrypoints", []):
                spec = _known(registry.entrypoint(entrypoint["type"]))
                config = spec.configuration.with_defaults(entrypoint.get("configuration"))
                handler = spec.handler(config, self, entrypoint.get("qos", "auto"))
                handler.type, handler.operations = spec.type, frozenset(spec.operations)  # for flows' selectors
                ranked.append((spec.priority, handler))
        self.entrypoints = [handler for _, handler in sorted(ranked, key=lambda e: -e[0])]
        group = definition["endpointGroups"][0]
        # The other groups are dynamic routing's: built when a route first names them.
        self.other_groups = {g["name"]: g for g in definition["endpointGroups"][1:]}
        self.routed: dict[str, tuple[failover.Balancer, dict[str, EndpointConnector]]] = {}
        self.adhoc: dict[str, EndpointConnector] = {}  # a dynamic route's URL origin -> its connector
        self.first = (group, next(iter(group.get("endpoints") or []), None))
        checks = []
        named = {}
        for endpoint, connector, configuration in self._group_connectors(group):
            named[endpoint["name"]] = connector
            self.endpoints.append(_entry(endpoint, connector))
            check = health.settings_of(group, endpoint)
            if check is not None and "target" in configuration:
                checks.append((connector, check, configuration["target"]))
        if not self.endpoints:
            raise EndpointError("the API has no endpoint this gateway can use")
        self.balancer = _balancer(group, self.endpoints)
        self.routed[group["name"]] = (self.balancer, named)
        self._pick: Callable[[], EndpointConnector] = self.balancer.pick
        self.health_checks = [
            health.HealthCheck(check, target, partial(self.balancer.set_up, connector))
            for connector, check, target in checks
        ]

    def _connector(self, group: dict[str, Any], endpoint: dict[str, Any]) -> tuple[EndpointConnector, dict[str, Any]]:
        spec = _known(registry.endpoint(endpoint["type"]))
        shared_source = (
            group.get("sharedConfiguration")
            if endpoint.get("inheritConfiguration")
            else endpoint.get("sharedConfigurationOverride")
        )
        configuration = spec.configuration.with_defaults(endpoint.get("configuration"))
        connector = spec.connector(configuration, spec.shared.with_defaults(shared_source))
        connector.owner = f"{self.id}/{endpoint.get('name')}"
        return connector, configuration

    def _build_webhook(self, definition: Definition, listener: dict[str, Any]) -> None:
        entrypoint = listener["entrypoints"][0]
        spec = _known(registry.entrypoint(entrypoint["type"]))
        self.webhook = spec.handler(
            spec.configuration.with_defaults(entrypoint.get("configuration")), self, entrypoint.get("qos", "auto")
        )
        name = (entrypoint.get("dlq") or {}).get("endpoint")
        if name:
            group, endpoint = dlq_endpoint(definition, name)
            self.webhook.dlq = self._connector(group, endpoint)[0]
            self.extra_connectors.append(self.webhook.dlq)

    # ----- what entrypoints call -----
    def handler_for(self, environ: Environ) -> Any:
        for handler in self.entrypoints:
            if handler.matches(environ):
                return handler
        return None

    def context(self, environ: Environ, qos: str, resume_after: str | None) -> ClientContext:
        exchange = environ.get(EXCHANGE)
        attributes = exchange.attributes if exchange is not None and exchange.attributes else None
        return ClientContext(self.id, client_identifier(environ), qos, resume_after, attributes)

    def forward(self, request: Request, environ: Environ) -> Any:
        """An HTTP request to a proxy endpoint, with failover when the API has it; the backend's
        answer. A dynamic route (environ[ROUTE]) names the group, the endpoint or the URL to call; the
        request's own query goes with it, after the route's."""
        balancer, connector = self.balancer, None
        route = environ.get(ROUTE)
        if route is not None:
            balancer, connector = self._route(route, request)
        if connector is not None:
            return cast(failover.ProxyConnector, connector).forward(request)
        if self.failover is None:
            return cast(failover.ProxyConnector, balancer.pick()).forward(request)
        client = client_identifier(environ) if self.failover.per_subscription else None
        return self.failover.forward(balancer, request, client)

    def _route(self, route: str, request: Request) -> tuple[failover.Balancer, EndpointConnector | None]:
        """Where a dynamic route goes: `name:path` (an endpoint group, or an endpoint, of the API, as
        #endpoints['name'] writes it) or an http(s) URL; the request's path and query become the route's."""
        name, colon, rest = route.partition(":")
        if colon and not rest.startswith("//"):
            target = self._named(name)
            if target is None:
                raise EndpointError(f"the dynamic route {route[:200]!r} names no endpoint or group of this API")
            request.rest, _, query = rest.partition("?")
            request.query = _joined(query, request.query)
            return target
        parts = urlsplit(route)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EndpointError(f"the dynamic route {route[:200]!r} is not an http(s) URL nor an endpoint of this API")
        origin = f"{parts.scheme}://{parts.netloc}"
        connector = self.adhoc.get(origin)
        if connector is None:
            if len(self.adhoc) >= ADHOC_LIMIT:  # routes made of what clients send must not pile up
                self.adhoc.pop(next(iter(self.adhoc))).close()
            group, endpoint = self.first  # its settings (timeouts, TLS, proxy), another target
            endpoint = endpoint or {}
            configuration = {**(endpoint.get("configuration") or {}), "target": origin}
            connector = self.adhoc[origin] = self._connector(group, {**endpoint, "configuration": configuration})[0]
        request.rest, request.query = parts.path, _joined(parts.query, request.query)
        return self.balancer, connector

    def _named(self, name: str) -> tuple[failover.Balancer, EndpointConnector | None] | None:
        for balancer, named in self.routed.values():
            if name in named:
                return balancer, named[name]
        if name in self.routed:
            return self.routed[name][0], None
        group = self.other_groups.get(name)
        if group is None:
            for other in self.other_groups.values():
                if any(e.get("name") == name for e in other.get("endpoints", [])):
                    group = other
            if group is None:
                return None
        named = {}
        endpoints = []
        for endpoint, connector, _ in self._group_connectors(group):
            named[endpoint["name"]] = connector
            endpoints.append(_entry(endpoint, connector))
            self.extra_connectors.append(connector)
        self.routed[group["name"]] = (_balancer(group, endpoints), named)
        return self._named(name)

    def _group_connectors(
        self, group: dict[str, Any]
    ) -> Iterator[tuple[dict[str, Any], EndpointConnector, dict[str, Any]]]:
        """(endpoint, its connector, its configuration) for the group's endpoints this gateway has
        (a test-kit-only endpoint is left out)."""
        for endpoint in group.get("endpoints", []):
            if registry.endpoint(endpoint["type"]) is not None:
                yield (endpoint, *self._connector(group, endpoint))

    def subscribe(self, environ: Environ, qos: str, resume_after: str | None) -> Subscription:
        if self.stopping.is_set():
            raise EndpointError("the API is being redeployed; try again")
        context = self.context(environ, qos, resume_after)
        if self.failover is None:
            subscription = self._pick().subscribe(context)
        else:  # subscribing twice is harmless: every failure may be retried
            subscription = self.failover.call(
                self.balancer, context.client_id, lambda connector: connector.subscribe(context), idempotent=True
            )
        if self.flows is not None and (exchange := environ.get(EXCHANGE)) and self.flows.has("subscribe", exchange):
            subscription = FlowSubscription(subscription, self.flows, exchange)
        self.subscriptions.add(subscription)
        return subscription

    def context_for(self, subscription_id: str, qos: str) -> ClientContext:
        """The context of a push subscription: its id is the client identifier."""
        return ClientContext(self.id, subscription_id, qos, None)

    def subscribe_push(self, subscription_id: str, qos: str) -> Subscription:
        if self.stopping.is_set():
            raise EndpointError("the API is being redeployed")
        subscription = self._pick().subscribe(self.context_for(subscription_id, qos))
        if self.flows is not None:
            metadata = self.guard.metadata.get(subscription_id, {})
            exchange = push_exchange(self.flows, {"id": subscription_id, "metadata": metadata})
            if exchange is not None and self.flows.has("subscribe", exchange):
                subscription = FlowSubscription(subscription, self.flows, exchange)
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)
        subscription.close()

    def publish(self, environ: Environ, qos: str, message: Message) -> None:
        if self.flows is not None:
            phased = publish_phase(self.flows, environ, message)
            if phased is None:  # filtered out by a policy: accepted, not sent on
                return None
            message = phased
        context = self.context(environ, qos, None)
        if self.failover is None:
            return self._pick().publish(context, message)
        # A message that may have reached the broker is not sent again: it would be there twice.
        self.failover.call(
            self.balancer, context.client_id, lambda connector: connector.publish(context, message), idempotent=False
        )

    # ----- request accounting, so a retiring API can drain -----
    def enter(self) -> None:
        self.active += 1
        self.idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.idle.set()

    def retire(self, drain_timeout: float = DRAIN_TIMEOUT_S) -> None:
        self.stopping.set()
        for subscription in list(self.subscriptions):
            subscription.close()
        if not self.idle.wait(drain_timeout):
            log.warning(
                "API %s revision %s: %d requests still open after %ss; closing its connectors",
                self.id,
                self.revision,
                self.active,
                drain_timeout,
            )
        self.close_connectors()

    def close_connectors(self) -> None:
        for check in self.health_checks:
            check.stop()
        for connector in [e[0] for e in self.endpoints] + self.extra_connectors + list(self.adhoc.values()):
            try:
                connector.close()
            except Exception:
                log.exception("closing a connector of API %s failed", self.id)


def _entry(endpoint: dict[str, Any], connector: EndpointConnector) -> tuple[EndpointConnector, int, bool]:
    """What a balancer holds of an endpoint: (connector, weight, secondary)."""
    return connector, endpoint.get("weight") or 1, bool(endpoint.get("secondary"))


def _balancer(group: dict[str, Any], entries: list[tuple[EndpointConnector, int, bool]]) -> failover.Balancer:
    return failover.Balancer((group.get("loadBalancer") or {}).get("type", "round-robin"), entries)


def _joined(*queries: str) -> str:
    return "&".join(query for query in queries if query)


def _known(spec: S | None) -> S:
    """The spec of a connector type that validation let through (Deploy is refused for others)."""
    assert spec is not None, "a deployed definition names only connector types this gateway knows"
    return spec
