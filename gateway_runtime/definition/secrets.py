"""Every secret of an API definition, each placed so that an earlier version of the definition has
it at the same place: connector settings (their declarations say which fields), encrypted
properties, plans' secrets, and keys nobody declared whose names look secret. Masking on export,
encryption at rest and restoring a masked export all read secret_slots."""

from .. import registry
from ..plans import plan_slots
from .parts import connector_parts, dicts
from .slots import SECRET_MASK, Slot, map_slots, named_slots, own_keys, restore_slots

# Keys of a definition's parts whose secrets are declared: connector settings and the parts inside.
API_PARTS = ("listeners", "endpointGroups", "plans", "properties")
ENTRYPOINT_PARTS = ("configuration",)
GROUP_PARTS = ("sharedConfiguration", "endpoints")
ENDPOINT_PARTS = ("configuration", "sharedConfigurationOverride")


def property_slots(properties, where=("properties",)):
    """The values of an API's properties marked `encrypted: true`, placed by their keys."""
    for prop in dicts(properties):
        if prop.get("encrypted") is True and isinstance(prop.get("value"), str) and prop["value"]:
            yield Slot(
                where + (str(prop.get("key")),),
                prop["value"],
                lambda new, prop=prop: prop.__setitem__("value", "" if new is None else new),
            )


def api_slots(api):
    """The secrets of an API's own keys (a definition's top level, or the keys the portal does not
    model): encrypted properties, then any key whose name looks secret (resources' clientSecret...)."""
    yield from property_slots(api.get("properties"))
    yield from named_slots(api, own_keys(*API_PARTS))


def part_slots(own):
    """slots_of for a part of a definition (an entrypoint, group or endpoint) whose `own` keys are
    connector settings: its other keys' secrets are found by their names."""
    return lambda part: named_slots(part, own_keys(*own))


entrypoint_slots, group_slots, endpoint_slots = (
    part_slots(ENTRYPOINT_PARTS),
    part_slots(GROUP_PARTS),
    part_slots(ENDPOINT_PARTS),
)
PART_SLOTS = {"entrypoint": entrypoint_slots, "group": group_slots, "endpoint": endpoint_slots}


def secret_slots(d):
    """Every secret of an API definition (canonical or gateway form), each placed so that an
    earlier version of the definition has it at the same place. The one answer to "is this a
    secret": masking, encryption at rest and restoring a masked export all read it."""
    yield from api_slots(d)
    for place, part in connector_parts(d):
        yield from _placed(place, PART_SLOTS[place[0]](part))
    for place, settings, owner, key in registry.settings_objects(d):
        if isinstance(owner.get(key), dict):
            yield from _placed(place + (key,), settings.secret_slots(owner[key]))
    plans = d.get("plans")
    plans = plans.values() if isinstance(plans, dict) else dicts(plans)  # the gateway form: by id
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
