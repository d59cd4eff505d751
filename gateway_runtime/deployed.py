"""A deployed API: an immutable object built from one revision's definition.

A redeploy builds the new one beside the old; the router swaps one reference; the old one then
retires: its streams are told to go away, in-flight requests finish, its connectors close.
"""
import itertools
import logging
import random

from gevent.event import Event

from . import registry
from .http import client_identifier
from .messages import ClientContext, EndpointError

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
        self.entrypoints = []    # handlers, highest priority first
        self.endpoints = []      # (connector, weight, secondary)
        try:
            self._build(definition)
        except Exception:
            self.close_connectors()
            raise

    def _build(self, definition):
        for listener in definition.get("listeners", []):
            if listener.get("type") != "http":
                continue
            for entry in listener.get("paths", []):
                self.paths.append((entry.get("host") or None, normalise_path(entry["path"])))
            for entrypoint in listener.get("entrypoints", []):
                spec = registry.entrypoint(entrypoint["type"])
                config = spec.configuration.with_defaults(entrypoint.get("configuration"))
                self.entrypoints.append((spec.priority, spec.handler(config, self, entrypoint.get("qos", "auto"))))
        self.entrypoints = [handler for _, handler in sorted(self.entrypoints, key=lambda e: -e[0])]
        group = definition["endpointGroups"][0]
        for endpoint in group.get("endpoints", []):
            spec = registry.endpoint(endpoint["type"])
            if spec is None:  # a test-kit-only endpoint, ignored
                continue
            shared_source = group.get("sharedConfiguration") if endpoint.get("inheritConfiguration") \
                else endpoint.get("sharedConfigurationOverride")
            connector = spec.connector(spec.configuration.with_defaults(endpoint.get("configuration")),
                                       spec.shared.with_defaults(shared_source))
            self.endpoints.append((connector, endpoint.get("weight") or 1, bool(endpoint.get("secondary"))))
        if not self.endpoints:
            raise EndpointError("the API has no endpoint this gateway can use")
        self._pick = balancer((group.get("loadBalancer") or {}).get("type", "round-robin"), self.endpoints)

    # ----- what entrypoints call -----
    def handler_for(self, environ):
        for handler in self.entrypoints:
            if handler.matches(environ):
                return handler
        return None

    def context(self, environ, qos, resume_after):
        return ClientContext(self.id, client_identifier(environ), qos, resume_after)

    def pick_endpoint(self):
        return self._pick()

    def rest_of(self, path):
        """The request path after the context path that routed it here ('' when none is left)."""
        for _, prefix in sorted(self.paths, key=lambda p: -len(p[1])):
            if prefix == "/":
                return path
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix):]
        return path

    def subscribe(self, environ, qos, resume_after):
        if self.stopping.is_set():
            raise EndpointError("the API is being redeployed; try again")
        subscription = self._pick().subscribe(self.context(environ, qos, resume_after))
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription):
        self.subscriptions.discard(subscription)
        subscription.close()

    def publish(self, environ, qos, message):
        return self._pick().publish(self.context(environ, qos, None), message)

    # ----- request accounting, so a retiring API can drain -----
    def enter(self):
        self.active += 1
        self.idle.clear()

    def leave(self):
        self.active -= 1
        if self.active == 0:
            self.idle.set()

    def retire(self):
        self.stopping.set()
        for subscription in list(self.subscriptions):
            subscription.close()
        if not self.idle.wait(DRAIN_TIMEOUT_S):
            log.warning("API %s revision %s: %d requests still open after %ss; closing its connectors",
                        self.id, self.revision, self.active, DRAIN_TIMEOUT_S)
        self.close_connectors()

    def close_connectors(self):
        for connector, _, _ in self.endpoints:
            try:
                connector.close()
            except Exception:
                log.exception("closing a connector of API %s failed", self.id)


def balancer(kind, endpoints):
    """A function picking the connector for one call. Secondary endpoints serve only when no
    primary exists (health checks come with the HTTP proxy)."""
    pool = [e for e in endpoints if not e[2]] or endpoints
    if kind == "random":
        return lambda: random.choice(pool)[0]
    if kind == "weighted-random":
        weights = [e[1] for e in pool]
        return lambda: random.choices(pool, weights)[0][0]
    if kind == "weighted-round-robin":
        cycle = itertools.cycle([e[0] for e in pool for _ in range(e[1])])
    else:
        cycle = itertools.cycle([e[0] for e in pool])
    return lambda: next(cycle)


def normalise_path(path):
    path = "/" + path.strip("/")
    return path if path != "/" else "/"
