"""The two spellings of a Gravitee v4 API definition, and our canonical one.

Canonical = the gateway form (lowercase enums, `definitionVersion: "4.0.0"`) with `plans` as a
list. Enum conversions are bijective, so export -> import -> export is stable.
"""

import copy
from datetime import UTC, datetime

from .parts import dicts

GATEWAY_VERSION = "4.0.0"
MANAGEMENT_VERSION = "V4"
APIM_VERSION = "gatehouse-0.1"

# Set by the server that stores an API, not part of what a user defines.
SERVER_MANAGED = (
    "deployedAt",
    "createdAt",
    "updatedAt",
    "state",
    "lifecycleState",
    "definitionContext",
    "originContext",
    "workflowState",
    "primaryOwner",
    "_links",
    "gravitee",
    "crossId",
)


class DefinitionError(ValueError):
    def __init__(self, errors, message="The API definition is not valid."):
        super().__init__(message)
        self.message = message
        self.errors = errors  # [{"field", "message"}]


def gateway_enum(value):
    return value.lower().replace("_", "-") if isinstance(value, str) else value


def management_enum(value):
    return value.upper().replace("-", "_") if isinstance(value, str) else value


def _convert(api, plans, enum):
    """Apply one enum spelling to every enum-valued field, in place."""
    if "type" in api:
        api["type"] = enum(api["type"])
    for listener in dicts(api.get("listeners")):
        if "type" in listener:
            listener["type"] = enum(listener["type"])
        for entrypoint in dicts(listener.get("entrypoints")):
            if "qos" in entrypoint:
                entrypoint["qos"] = enum(entrypoint["qos"])
    for group in dicts(api.get("endpointGroups")):
        if isinstance(group.get("loadBalancer"), dict) and "type" in group["loadBalancer"]:
            group["loadBalancer"]["type"] = enum(group["loadBalancer"]["type"])
    flows = list(dicts(api.get("flows")))
    for plan in plans:
        if isinstance(plan.get("security"), dict) and "type" in plan["security"]:
            plan["security"]["type"] = enum(plan["security"]["type"])
        for key in ("mode", "status"):
            if key in plan:
                plan[key] = enum(plan[key])
        flows.extend(dicts(plan.get("flows")))
    for flow in flows:
        for selector in dicts(flow.get("selectors")):
            if "type" in selector:
                selector["type"] = enum(selector["type"])


def read_document(document):
    """Any accepted input (export envelope or bare API; gateway or management form) -> canonical."""
    if not isinstance(document, dict):
        raise DefinitionError([{"field": "", "message": "The body must be a JSON object."}])
    if isinstance(document.get("api"), dict):
        api = copy.deepcopy(document["api"])
        plans = document.get("plans", api.get("plans"))
    else:
        api = copy.deepcopy(document)
        plans = api.get("plans")
    plans = copy.deepcopy(plans)
    if isinstance(plans, dict):
        plans = [dict(plan, id=plan.get("id", key)) if isinstance(plan, dict) else plan for key, plan in plans.items()]
    if plans is None:
        plans = []
    if not isinstance(plans, list):
        raise DefinitionError([{"field": "plans", "message": "plans must be a list or a map keyed by plan id."}])
    for key in SERVER_MANAGED:
        api.pop(key, None)
    api.pop("plans", None)
    _convert(api, [p for p in plans if isinstance(p, dict)], gateway_enum)
    for plan in plans:  # Gravitee's push plans have no security; ours name it, so that every plan has a type
        if isinstance(plan, dict) and plan.get("mode") == "push" and not plan.get("security"):
            plan["security"] = {"type": "push"}
    api["definitionVersion"] = GATEWAY_VERSION
    api["plans"] = plans
    return api


def to_gateway_form(canonical):
    """What a deployment stores and the runtime reads."""
    api = copy.deepcopy(canonical)
    api["plans"] = {plan["id"]: plan for plan in api.get("plans", [])}
    return api


def to_management_form(canonical):
    """(api, plans) in the management form."""
    api = copy.deepcopy(canonical)
    plans = api.pop("plans", [])
    _convert(api, plans, management_enum)
    api["definitionVersion"] = MANAGEMENT_VERSION
    return api, plans


def export_envelope(canonical, state):
    api, plans = to_management_form(canonical)
    api["state"] = state.upper()
    return {
        "export": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "apimVersion": APIM_VERSION},
        "api": api,
        "plans": plans,
        "members": [],
        "metadata": [],
        "pages": [],
    }
