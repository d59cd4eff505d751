"""What a message API's entrypoints need from its endpoints, and what each endpoint offers.

An entrypoint that publishes (http-post, a WebSocket whose clients may publish) needs an endpoint
that produces; one that delivers messages (http-get, sse, a subscribing WebSocket, webhook) needs
one that consumes. A broker endpoint offers a side only when its effective shared configuration
(the group's when it inherits, else its override) enables it; an endpoint without producer /
consumer settings (the Mock) offers both.
"""

from .. import registry

PUBLISH, SUBSCRIBE = "publish", "subscribe"
SIDES = {
    PUBLISH: ("producer", "publishes messages", "produce (Use Producer)"),
    SUBSCRIBE: ("consumer", "delivers messages to its clients", "consume (Use Consumer)"),
}
# Entrypoint type -> what it needs; the WebSocket's depends on its two toggles (see needs()).
NEEDS = {"http-post": {PUBLISH}, "http-get": {SUBSCRIBE}, "sse": {SUBSCRIBE}, "webhook": {SUBSCRIBE}}
WEBSOCKET_TOGGLES = {PUBLISH: "publisher", SUBSCRIBE: "subscriber"}


def needs(entrypoint):
    if entrypoint.get("type") == "websocket":
        configuration = entrypoint.get("configuration") or {}
        return {
            side
            for side, toggle in WEBSOCKET_TOGGLES.items()
            if (configuration.get(toggle) or {}).get("enabled", True) is not False
        }
    return NEEDS.get(entrypoint.get("type"), set())


def offers(group, endpoint):
    """The sides the endpoint serves; None for a type this gateway does not know (named elsewhere)."""
    spec = registry.endpoint(endpoint.get("type"))
    if spec is None:
        return None
    shared = (
        group.get("sharedConfiguration")
        if endpoint.get("inheritConfiguration")
        else endpoint.get("sharedConfigurationOverride")
    ) or {}
    found = set()
    for side, (key, _, _) in SIDES.items():
        declared = any(f.path.startswith(key + ".") for f in spec.shared)
        if not declared or ((shared.get(key) or {}).get("enabled") is True):
            found.add(side)
    return found


def problems(api):
    """One sentence per entrypoint need that an endpoint of the serving (first) group cannot meet."""
    groups = api.get("endpointGroups") or []
    if api.get("type") != "message" or not groups:
        return []
    found = []
    for listener in api.get("listeners", []):
        for entrypoint in listener.get("entrypoints", []):
            for side in sorted(needs(entrypoint)):
                found += [
                    _sentence(entrypoint, side, groups[0], endpoint)
                    for endpoint in groups[0].get("endpoints", [])
                    if side not in (offers(groups[0], endpoint) or SIDES)
                ]
    return found


def _sentence(entrypoint, side, group, endpoint):
    _, does, missing = SIDES[side]
    return (
        f"entrypoint {entrypoint['type']} {does}, but endpoint '{endpoint['name']}' ({endpoint['type']}) "
        f"of group '{group['name']}' is not configured to {missing}"
    )
