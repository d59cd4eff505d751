"""Connector and policy registry: type name -> the one module that declares and implements it.

Each module in `entrypoints/`, `endpoints/` and `policies/` exposes `SPEC`. Adding a connector means
adding a module there (and its form partial `templates/connectors/<type>.html`); adding a policy, a
module in `policies/` (its form is drawn from its settings); nothing else changes.
"""

import importlib
import pkgutil
from collections.abc import Iterator
from functools import cache
from typing import Any

from .definition.parts import connector_parts
from .settings import Settings
from .specs import QOS_ORDER, EndpointSpec, EntrypointSpec, PolicySpec


def _discover(package_name: str) -> dict[str, Any]:
    package = importlib.import_module(package_name)
    specs = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package_name}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if spec is not None:
            specs[spec.type] = spec
    return specs


@cache
def endpoints() -> dict[str, EndpointSpec]:
    return _discover("gateway_runtime.endpoints")


@cache
def entrypoints() -> dict[str, EntrypointSpec]:
    return _discover("gateway_runtime.entrypoints")


@cache
def policies() -> dict[str, PolicySpec]:
    return _discover("gateway_runtime.policies")


@cache
def _policy_ids() -> dict[str, PolicySpec]:
    return {name: spec for spec in policies().values() for name in (spec.type, *spec.aliases)}


def policy(type_name: object) -> PolicySpec | None:
    return _policy_ids().get(type_name) if isinstance(type_name, str) else None


@cache
def _entrypoint_types() -> dict[type, str]:
    return {spec.handler: spec.type for spec in entrypoints().values()}


def entrypoint_type(handler: object) -> str:
    """The type of the entrypoint a handler serves ("" for the gateway's own, a preflight's)."""
    return _entrypoint_types().get(type(handler), "")


def endpoint(type_name: object) -> EndpointSpec | None:
    return endpoints().get(type_name) if isinstance(type_name, str) else None


def entrypoint(type_name: object) -> EntrypointSpec | None:
    return entrypoints().get(type_name) if isinstance(type_name, str) else None


def qos_choices(entrypoint_type: object, endpoint_type: object) -> list[str]:
    """The qos values both the entrypoint and the endpoint support, in a stable order."""
    ep, en = entrypoint(entrypoint_type), endpoint(endpoint_type)
    allowed = set(ep.qos if ep else QOS_ORDER) & set(en.qos if en else QOS_ORDER)
    return [q for q in QOS_ORDER if q in allowed]


def connector_settings(d: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], Settings, dict[str, Any], str]]:
    """(place, settings declaration, owner, key) for every settings object of a known connector
    in an API definition. Runs on definitions not validated yet, so it skips what is not shaped
    as expected."""
    for place, settings, owner, key in settings_objects(d):
        if settings is not UNDECLARED:
            yield place, settings, owner, key


# The settings of a connector this gateway does not know: every key is undeclared (named_slots decides).
UNDECLARED = Settings()


# Per kind of part: (key of a settings object, the lookup of the part's connector, its declaration there).
SETTINGS_KEYS = {
    "entrypoint": (("configuration", entrypoint, "configuration"),),
    "group": (("sharedConfiguration", endpoint, "shared"),),
    "endpoint": (("configuration", endpoint, "configuration"), ("sharedConfigurationOverride", endpoint, "shared")),
}


def settings_objects(d: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], Settings, dict[str, Any], str]]:
    """connector_settings, connectors not known here included (with UNDECLARED settings)."""
    for place, part in connector_parts(d):
        for key, lookup, declaration in SETTINGS_KEYS[place[0]]:
            spec = lookup(part.get("type"))
            yield place, UNDECLARED if spec is None else getattr(spec, declaration), part, key
