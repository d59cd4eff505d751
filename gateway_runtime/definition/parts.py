"""Finding parts of an API definition, on definitions not validated yet as on deployed ones."""

from collections.abc import Iterator
from typing import Any

from ..messages import EndpointError


def dicts(items: Any) -> list[dict[str, Any]]:
    """The objects of a list that should hold objects: anything else is skipped (validation names it)."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def connector_parts(d: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """(place, part) of each entrypoint, endpoint group and endpoint of a definition, groups before
    their endpoints; the place, (kind, ...) with kind "entrypoint", "group" or "endpoint", is the same
    in an earlier version of the definition."""
    for li, listener in enumerate(dicts(d.get("listeners"))):
        for ei, item in enumerate(dicts(listener.get("entrypoints"))):
            yield ("entrypoint", li, ei), item
    for group in dicts(d.get("endpointGroups")):
        yield ("group", group.get("name")), group
        for item in dicts(group.get("endpoints")):
            yield ("endpoint", group.get("name"), item.get("name")), item


def dlq_endpoint(definition: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group, endpoint) a webhook's `dlq.endpoint` names: an endpoint, or a group (its first endpoint)."""
    for group in definition.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            if endpoint.get("name") == name or group.get("name") == name:
                return group, endpoint
    raise EndpointError(f"the dead-letter endpoint {name} is not an endpoint of the API")
