"""A deployed API: an immutable object built from one revision's definition.

A redeploy builds the new one beside the old; the router swaps one reference; the old one then
retires: its streams are told to go away, in-flight requests finish, its connectors close.
"""
import itertools
import logging
import random
from functools import partial

from gevent.event import Event

from . import failover, health, plans, registry
from .http import client_identifier
from .messages import ClientContext, EndpointError
from .request_target import route_key

log = logging.getLogger("gatehouse.gateway")
DRAIN_TIMEOUT_S = 30


class DeployedApi:
    def __init__(self, definition, revision):
        self.id = definition["id"]
        self.name = definition.get("name", self.id)
        self.revision = revision
        self.stopping = Event()
        self.active = 0
        self.idle = Event()
        self.idle.set()
        self.subscriptions = set()
        self.paths = []          # (host or None, normalised path)
        self.sni_hosts = []      # lower-case host names of a tcp listener
        self.entrypoints = []    # handlers, highest priority first
        self.webhook = None      # the webhook entrypoint of a subscription listener
        self.endpoints = []      # (connector, weight, secondary)
        self.extra_connectors = []  # connectors outside the balancer (a dead-letter endpoint)
        self.health_checks = []
        settings = definition.get("failover") or {}
        self.failover = failover.Failover(failover.SETTINGS.with_defaults(settings)) if settings.get("enabled") \
            else None
        listed = definition.get("plans") or {}
        listed = list(listed.values() if isinstance(listed, dict) else listed)
        self.guard = plans.Guard(self.id, listed)
        self.push_plans = {plan["id"] for plan in listed if plan.get("mode") == "push"}
        try:
            self._build(definition)
        except Exception:
            self.close_connectors()
            raise

    def _build(self, definition):
        for listener in definition.get("listeners", []):
            if listener.get("type") == "subscription":
                self._build_webhook(definition, listener)
                continue
            for entry in listener.get("paths", []):
                self.paths.append((entry.get("host") or None, normalise_path(entry["path"])))
            if listener["type"] == "tcp":
                self.sni_hosts += [host.lower() for host in listener.get("hosts", [])]
            for entrypoint in listener.get("entrypoints", []):
                spec = registry.entrypoint(entrypoint["type"])
                config = spec.configuration.with_defaults(entrypoint.get("configuration"))
                self.entrypoints.append((spec.priority, spec.handler(config, self, entrypoint.get("qos", "auto"))))
        self.entrypoints = [handler for _, handler in sorted(self.entrypoints, key=lambda e: -e[0])]
        group = definition["endpointGroups"][0]
        checks = []
        for endpoint in group.get("endpoints", []):
            if registry.endpoint(endpoint["type"]) is None:  # a test-kit-only endpoint, ignored
                continue
            connector, configuration = self._connector(group, endpoint)
            self.endpoints.append((connector, endpoint.get("weight") or 1, bool(endpoint.get("secondary"))))
            check = health.settings_of(group, endpoint)
            if check is not None and "target" in configuration:
                checks.append((connector, check, configuration["target"]))
        if not self.endpoints:
            raise EndpointError("the API has no endpoint this gateway can use")
        self.balancer = Balancer((group.get("loadBalancer") or {}).get("type", "round-robin"), self.endpoints)
        self._pick = self.balancer.pick
        self.health_checks = [health.HealthCheck(check, target, partial(self.balancer.set_up, connector))
                              for connector, check, target in checks]

    def _connector(self, group, endpoint):
        spec = registry.endpoint(endpoint["type"])
        shared_source = group.get("sharedConfiguration") if endpoint.get("inheritConfiguration") \
            else endpoint.get("sharedConfigurationOverride")
        configuration = spec.configuration.with_defaults(endpoint.get("configuration"))
        connector = spec.connector(configuration, spec.shared.with_defaults(shared_source))
        connector.owner = f"{self.id}/{endpoint.get('name')}"
        return connector, configuration

    def _build_webhook(self, definition, listener):
        entrypoint = listener["entrypoints"][0]
        spec = registry.entrypoint(entrypoint["type"])
        self.webhook = spec.handler(spec.configuration.with_defaults(entrypoint.get("configuration")), self,
                                    entrypoint.get("qos", "auto"))
        name = (entrypoint.get("dlq") or {}).get("endpoint")
        if name:
            group, endpoint = dlq_endpoint(definition, name)
            self.webhook.dlq = self._connector(group, endpoint)[0]
            self.extra_connectors.append(self.webhook.dlq)

    # ----- what entrypoints call -----
    def handler_for(self, environ):
        for handler in self.entrypoints:
            if handler.matches(environ):
                return handler
        return None

    def context(self, environ, qos, resume_after):
        return ClientContext(self.id, client_identifier(environ), qos, resume_after)

    def forward(self, request, environ):
        """An HTTP request to a proxy endpoint, with failover when the API has it."""
        if self.failover is None:
            return self._pick().forward(request)
        client = client_identifier(environ) if self.failover.per_subscription else None
        return self.failover.forward(self.balancer, request, client)

    def subscribe(self, environ, qos, resume_after):
        if self.stopping.is_set():
            raise EndpointError("the API is being redeployed; try again")
        context = self.context(environ, qos, resume_after)
        if self.failover is None:
            subscription = self._pick().subscribe(context)
        else:  # subscribing twice is harmless: every failure may be retried
            subscription = self.failover.call(self.balancer, context.client_id,
                                              lambda connector: connector.subscribe(context), idempotent=True)
        self.subscriptions.add(subscription)
        return subscription

    def context_for(self, subscription_id, qos):
        """The context of a push subscription: its id is the client identifier."""
        return ClientContext(self.id, subscription_id, qos, None)

    def subscribe_push(self, subscription_id, qos):
        if self.stopping.is_set():
            raise EndpointError("the API is being redeployed")
        subscription = self._pick().subscribe(self.context_for(subscription_id, qos))
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription):
        self.subscriptions.discard(subscription)
        subscription.close()

    def publish(self, environ, qos, message):
        context = self.context(environ, qos, None)
        if self.failover is None:
            return self._pick().publish(context, message)
        # A message that may have reached the broker is not sent again: it would be there twice.
        return self.failover.call(self.balancer, context.client_id,
                                  lambda connector: connector.publish(context, message), idempotent=False)

    # ----- request accounting, so a retiring API can drain -----
    def enter(self):
        self.active += 1
        self.idle.clear()

    def leave(self):
        self.active -= 1
        if self.active == 0:
            self.idle.set()

    def retire(self, drain_timeout=DRAIN_TIMEOUT_S):
        self.stopping.set()
        for subscription in list(self.subscriptions):
            subscription.close()
        if not self.idle.wait(drain_timeout):
            log.warning("API %s revision %s: %d requests still open after %ss; closing its connectors",
                        self.id, self.revision, self.active, drain_timeout)
        self.close_connectors()

    def close_connectors(self):
        for check in self.health_checks:
            check.stop()
        for connector in [e[0] for e in self.endpoints] + self.extra_connectors:
            try:
                connector.close()
            except Exception:
                log.exception("closing a connector of API %s failed", self.id)


class NoEndpointUp(EndpointError):
    status = "503 Service Unavailable"


class Balancer:
    """Picks the connector for one call among the endpoints that are up (health checks take them
    out of rotation and back). Secondary endpoints serve only when no primary one is up."""

    def __init__(self, kind, endpoints):
        self.kind = kind
        self.endpoints = endpoints
        self.down = set()
        self._arrange()

    def set_up(self, connector, up):
        (self.down.discard if up else self.down.add)(connector)
        self._arrange()

    def _arrange(self):
        live = [e for e in self.endpoints if e[0] not in self.down]
        self.pool = [e for e in live if not e[2]] or live
        self.weights = [e[1] for e in self.pool]
        if self.kind == "weighted-round-robin":
            self.cycle = itertools.cycle([e[0] for e in self.pool for _ in range(e[1])])
        else:
            self.cycle = itertools.cycle([e[0] for e in self.pool])

    def next_after(self, connector):
        """The endpoint after this one in the group's order (failover's forceNextEndpointOnFailure)."""
        connectors = [e[0] for e in self.pool]
        if not connectors:
            return self.pick()
        position = connectors.index(connector) if connector in connectors else -1
        return connectors[(position + 1) % len(connectors)]

    def pick(self):
        if not self.pool:
            raise NoEndpointUp("no endpoint of this API is up (all fail their health checks)")
        if self.kind == "random":
            return random.choice(self.pool)[0]
        if self.kind == "weighted-random":
            return random.choices(self.pool, self.weights)[0][0]
        return next(self.cycle)


def dlq_endpoint(definition, name):
    """(group, endpoint) a webhook's `dlq.endpoint` names: an endpoint, or a group (its first endpoint)."""
    for group in definition.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            if endpoint.get("name") == name or group.get("name") == name:
                return group, endpoint
    raise EndpointError(f"the dead-letter endpoint {name} is not an endpoint of the API")


normalise_path = route_key  # a context path in the form requests are routed in
