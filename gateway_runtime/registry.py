"""Connector registry: type name -> the one module that declares and implements it.

Each module in `entrypoints/` and `endpoints/` exposes `SPEC`. Adding a connector means adding a
module there (and its form partial `templates/connectors/<type>.html`); nothing else changes.
"""
import importlib
import pkgutil
from functools import cache

from .plans import plan_slots
from .specs import QOS_ORDER

from .settings import SECRET_MASK, Settings, Slot, map_slots, named_slots, own_keys, restore_slots

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


def _dicts(items):
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def connector_settings(d):
    """(place, settings declaration, owner, key) for every settings object of a known connector
    in an API definition. Runs on definitions not validated yet, so it skips what is not shaped
    as expected."""
    for place, settings, owner, key in _settings_objects(d):
        if settings is not UNDECLARED:
            yield place, settings, owner, key


# The settings of a connector this gateway does not know: every key is undeclared (named_slots decides).
UNDECLARED = Settings()


def _settings_objects(d):
    """connector_settings, connectors not known here included (with UNDECLARED settings)."""
    def settings(spec, part):
        return UNDECLARED if spec is None else getattr(spec, part)

    for li, listener in enumerate(_dicts(d.get("listeners"))):
        for ei, item in enumerate(_dicts(listener.get("entrypoints"))):
            spec = entrypoint(item.get("type"))
            yield ("entrypoint", li, ei), settings(spec, "configuration"), item, "configuration"
    for group in _dicts(d.get("endpointGroups")):
        spec = endpoint(group.get("type"))
        yield ("group", group.get("name")), settings(spec, "shared"), group, "sharedConfiguration"
        for item in _dicts(group.get("endpoints")):
            spec = endpoint(item.get("type"))
            place = ("endpoint", group.get("name"), item.get("name"))
            yield place, settings(spec, "configuration"), item, "configuration"
            yield place, settings(spec, "shared"), item, "sharedConfigurationOverride"


# Keys of a definition's parts whose secrets are declared: connector settings and the parts inside.
API_PARTS = ("listeners", "endpointGroups", "plans", "properties")
ENTRYPOINT_PARTS = ("configuration",)
GROUP_PARTS = ("sharedConfiguration", "endpoints")
ENDPOINT_PARTS = ("configuration", "sharedConfigurationOverride")


def property_slots(properties, where=("properties",)):
    """The values of an API's properties marked `encrypted: true`, placed by their keys."""
    for prop in _dicts(properties):
        if prop.get("encrypted") is True and isinstance(prop.get("value"), str) and prop["value"]:
            yield Slot(where + (str(prop.get("key")),), prop["value"],
                       lambda new, prop=prop: prop.__setitem__("value", "" if new is None else new))


def api_slots(api):
    """The secrets of an API's own keys (a definition's top level, or the keys the portal does not
    model): encrypted properties, then any key whose name looks secret (resources' clientSecret...)."""
    yield from property_slots(api.get("properties"))
    yield from named_slots(api, own_keys(*API_PARTS))


def part_slots(own):
    """slots_of for a part of a definition (an entrypoint, group or endpoint) whose `own` keys are
    connector settings: its other keys' secrets are found by their names."""
    return lambda part: named_slots(part, own_keys(*own))


entrypoint_slots, group_slots, endpoint_slots = (part_slots(ENTRYPOINT_PARTS), part_slots(GROUP_PARTS),
                                                 part_slots(ENDPOINT_PARTS))


def secret_slots(d):
    """Every secret of an API definition (canonical or gateway form), each placed so that an
    earlier version of the definition has it at the same place. The one answer to "is this a
    secret": masking, encryption at rest and restoring a masked export all read it."""
    yield from api_slots(d)
    for li, listener in enumerate(_dicts(d.get("listeners"))):
        for ei, item in enumerate(_dicts(listener.get("entrypoints"))):
            yield from _placed(("entrypoint", li, ei), entrypoint_slots(item))
    for group in _dicts(d.get("endpointGroups")):
        yield from _placed(("group", group.get("name")), group_slots(group))
        for item in _dicts(group.get("endpoints")):
            yield from _placed(("endpoint", group.get("name"), item.get("name")), endpoint_slots(item))
    for place, settings, owner, key in _settings_objects(d):
        if isinstance(owner.get(key), dict):
            yield from _placed(place + (key,), settings.secret_slots(owner[key]))
    plans = d.get("plans")
    plans = plans.values() if isinstance(plans, dict) else _dicts(plans)  # the gateway form: by id
    for plan in plans:
        if isinstance(plan, dict):
            yield from _placed(("plan", plan.get("id")), plan_slots(plan))


def _placed(place, slots):
    for slot in slots:
        slot.where = place + slot.where
        yield slot


def map_secrets(d, change):
    """A copy of the definition with change(value) in place of each of its secrets."""
    return map_slots(secret_slots, d, change)


def masked(d):
    return map_secrets(d, lambda _: SECRET_MASK)


def restore_secrets(d, previous):
    """Masked secrets of a definition sent back (an export imported again) take the values they
    have in the previous definition, in place."""
    return restore_slots(secret_slots, d, previous)
