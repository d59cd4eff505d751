"""Connector registry: type name -> the one module that declares and implements it.

Each module in `entrypoints/` and `endpoints/` exposes `SPEC`. Adding a connector means adding a
module there (and its form partial `templates/connectors/<type>.html`); nothing else changes.
"""
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from functools import cache

from .plans import map_plan_secret
from .settings import Settings

QOS_ORDER = ("none", "auto", "at-most-once", "at-least-once")


@dataclass(frozen=True)
class EndpointSpec:
    type: str
    label: str
    connector: type
    configuration: Settings = field(default_factory=Settings)
    shared: Settings = field(default_factory=Settings)
    qos: tuple = QOS_ORDER
    api_types: tuple = ("message",)
    description: str = ""
    kind: str = "endpoint"
    # probe(configuration) -> None when the backend answers, else what is wrong (for the portal)
    probe: object = None
    # The listener type it serves under: "tcp" for byte streams routed by SNI; None for any other.
    listener: str | None = None
    # forget(api_id, configuration, shared): the API was deleted; remove what it left at the backend
    forget: object = None
    # summary(shared) -> one line for the Backend services page; target(configuration) -> where it connects
    summary: object = None
    target: object = None


@dataclass(frozen=True)
class EntrypointSpec:
    type: str
    label: str
    handler: type
    configuration: Settings = field(default_factory=Settings)
    qos: tuple = ("auto",)
    api_types: tuple = ("message",)
    # Higher wins when several entrypoints of an API match one request.
    priority: int = 0
    description: str = ""
    kind: str = "entrypoint"
    # The listener type that carries it (`tcp`: a TLS connection routed by SNI, not an HTTP request).
    listener: str = "http"


def _discover(package_name):
    package = importlib.import_module(package_name)
    specs = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package_name}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if spec is not None:
            specs[spec.type] = spec
    return specs


@cache
def endpoints():
    return _discover("gateway_runtime.endpoints")


@cache
def entrypoints():
    return _discover("gateway_runtime.entrypoints")


def endpoint(type_name):
    return endpoints().get(type_name) if isinstance(type_name, str) else None


def entrypoint(type_name):
    return entrypoints().get(type_name) if isinstance(type_name, str) else None


def qos_choices(entrypoint_type, endpoint_type):
    """The qos values both the entrypoint and the endpoint support, in a stable order."""
    ep, en = entrypoint(entrypoint_type), endpoint(endpoint_type)
    allowed = set(ep.qos if ep else QOS_ORDER) & set(en.qos if en else QOS_ORDER)
    return [q for q in QOS_ORDER if q in allowed]


def connector_settings(d):
    """(place, settings declaration, owner, key) for every settings object of a known connector
    in an API definition. Runs on definitions not validated yet, so it skips what is not shaped
    as expected."""
    def dicts(items):
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    for li, listener in enumerate(dicts(d.get("listeners"))):
        for ei, item in enumerate(dicts(listener.get("entrypoints"))):
            spec = entrypoint(item.get("type"))
            if spec is not None:
                yield ("entrypoint", li, ei), spec.configuration, item, "configuration"
    for group in dicts(d.get("endpointGroups")):
        spec = endpoint(group.get("type"))
        if spec is not None:
            yield ("group", group.get("name")), spec.shared, group, "sharedConfiguration"
        for item in dicts(group.get("endpoints")):
            spec = endpoint(item.get("type"))
            if spec is not None:
                place = ("endpoint", group.get("name"), item.get("name"))
                yield place, spec.configuration, item, "configuration"
                yield place, spec.shared, item, "sharedConfigurationOverride"


def map_secrets(d, change):
    """A copy of the definition with change(value) in place of each secret that is set: connector
    settings and plans' HMAC secrets."""
    d = json.loads(json.dumps(d))
    for _, settings, owner, key in connector_settings(d):
        if isinstance(owner.get(key), dict):
            owner[key] = settings.map_secrets(owner[key], change)
    plans = d.get("plans")
    if isinstance(plans, dict):  # the gateway form
        d["plans"] = {key: map_plan_secret(plan, change) for key, plan in plans.items()}
    elif isinstance(plans, list):
        d["plans"] = [map_plan_secret(plan, change) for plan in plans]
    return d
