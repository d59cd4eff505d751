"""What makes a definition malformed (refused at import or save), what it holds that this gateway
cannot run yet (kept, shown, blocks Deploy), and what is ignored (named in a warning)."""

import json
import re

from .. import cors, failover, health, plans, registry, response_templates
from ..flows import compiled as flows
from ..settings import get_path, set_path
from ..specs import PHASES
from . import capabilities
from .forms import DefinitionError

API_TYPES = ("message", "proxy", "native")
LISTENER_TYPES = ("http", "subscription", "tcp", "kafka")
QOS = ("none", "auto", "at-most-once", "at-least-once")
LOAD_BALANCERS = ("round-robin", "random", "weighted-round-robin", "weighted-random")
FLOW_PHASES = ("request", "response", "subscribe", "publish", "connect", "interact", "entrypointConnect")
TEST_KIT_ENDPOINTS = ("mutating-http-proxy",)
NATIVE = "the Kafka native listener (type NATIVE) is not supported yet"
# What an export holds beside the API that an import does not take.
EXPORT_PARTS = (
    ("members", "members are not imported: the importing user owns the API"),
    ("pages", "pages are not imported: Gatehouse keeps no documentation pages"),
    ("metadata", "metadata is not imported: Gatehouse keeps no API metadata"),
)
CONTEXT_PATH = re.compile(r"^/[A-Za-z0-9_\-./~%:@!$&'()*+,;=]*$")
# RFC 9110's token: what a method or a header name is made of (no spaces, no line breaks).
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
CORS_FLAGS = ("enabled", "allowCredentials", "runPolicies")
# Each list of the cors block, with the kind of entry it holds and an example of one.
CORS_LISTS = {
    "allowOrigin": ("an origin", "https://app.example.com"),
    "allowMethods": ("an HTTP method name", "GET"),
    "allowHeaders": ("a header name", "Content-Type"),
    "exposeHeaders": ("a header name", "X-Request-Id"),
}
SNI_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$")


def validate(api):
    """Check the structure and the settings of every known connector; coerce those settings in
    place. Raises DefinitionError listing every problem by field."""
    errors = []

    def err(field, message):
        errors.append({"field": field, "message": message})

    if not isinstance(api.get("name"), str) or not api["name"].strip():
        err("name", "The API needs a name.")
    if api.get("type") not in API_TYPES:
        err("type", "type must be message, proxy or native.")
    for key in ("apiVersion", "description"):
        if key in api and api[key] is not None and not isinstance(api[key], str):
            err(key, f"{key} must be text.")
    listeners = _one_or_more(api, "listeners", "The API needs at least one listener.", err)
    for li, listener in enumerate(listeners):
        where = f"listeners[{li}]"
        if not isinstance(listener, dict):
            err(where, "A listener must be an object.")
            continue
        if listener.get("type") not in LISTENER_TYPES:
            err(f"{where}.type", "Listener type must be http, subscription, tcp or kafka.")
        paths = listener.get("paths", [])
        if listener.get("type") == "http" and (not isinstance(paths, list) or not paths):
            err(f"{where}.paths", "An HTTP listener needs at least one context path.")
            paths = []
        for pi, entry in enumerate(paths if isinstance(paths, list) else []):
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str) or not CONTEXT_PATH.match(path):
                err(f"{where}.paths[{pi}].path", "A context path must start with '/' and contain no spaces.")
        if listener.get("type") == "http" and listener.get("cors") is not None:
            _check_cors(listener["cors"], f"{where}.cors", err)
        if listener.get("type") == "tcp":
            _check_tcp_listener(listener, listeners, where, err)
        if listener.get("type") == "kafka":
            _check_kafka_listener(listener, where, err)
        entrypoints = listener.get("entrypoints")
        if not isinstance(entrypoints, list) or not entrypoints:
            err(f"{where}.entrypoints", "A listener needs at least one entrypoint.")
            entrypoints = []
        for ei, entrypoint in enumerate(entrypoints):
            ewhere = f"{where}.entrypoints[{ei}]"
            if not isinstance(entrypoint, dict) or not isinstance(entrypoint.get("type"), str):
                err(ewhere, "An entrypoint needs a type.")
                continue
            if "qos" in entrypoint and entrypoint["qos"] not in QOS:
                err(f"{ewhere}.qos", "qos must be one of " + ", ".join(QOS) + ".")
            spec = registry.entrypoint(entrypoint["type"])
            if spec is not None:
                _check_settings(spec.configuration, entrypoint, "configuration", ewhere, errors)
                if spec.listener != listener.get("type") and listener.get("type") in LISTENER_TYPES:
                    err(f"{ewhere}.type", f"The {spec.type} entrypoint belongs on a {spec.listener} listener.")
    groups = _one_or_more(api, "endpointGroups", "The API needs at least one endpoint group.", err)
    for gi, group in enumerate(groups):
        where = f"endpointGroups[{gi}]"
        if (
            not isinstance(group, dict)
            or not isinstance(group.get("name"), str)
            or not isinstance(group.get("type"), str)
        ):
            err(where, "An endpoint group needs a name and a type.")
            continue
        lb = group.get("loadBalancer")
        if lb is not None and (not isinstance(lb, dict) or lb.get("type", "round-robin") not in LOAD_BALANCERS):
            err(f"{where}.loadBalancer.type", "Load balancer must be one of " + ", ".join(LOAD_BALANCERS) + ".")
        spec = registry.endpoint(group["type"])
        if spec is not None:
            _check_settings(spec.shared, group, "sharedConfiguration", where, errors)
            if (spec.listener == "tcp") != any(isinstance(li, dict) and li.get("type") == "tcp" for li in listeners):
                err(
                    f"{where}.type",
                    f"{spec.type} endpoints need a tcp listener (clients routed by SNI host)."
                    if spec.listener == "tcp"
                    else f"An API with a tcp listener needs tcp-proxy endpoints, not {spec.type}.",
                )
        endpoints = group.get("endpoints")
        if not isinstance(endpoints, list):
            err(f"{where}.endpoints", "endpoints must be a list.")
            continue
        for ni, endpoint in enumerate(endpoints):
            ewhere = f"{where}.endpoints[{ni}]"
            if (
                not isinstance(endpoint, dict)
                or not isinstance(endpoint.get("name"), str)
                or not isinstance(endpoint.get("type"), str)
            ):
                err(ewhere, "An endpoint needs a name and a type.")
                continue
            if "weight" in endpoint and (
                isinstance(endpoint["weight"], bool)
                or not isinstance(endpoint["weight"], int)
                or endpoint["weight"] < 1
            ):
                err(f"{ewhere}.weight", "weight must be a whole number of at least 1.")
            spec = registry.endpoint(endpoint["type"])
            if spec is not None:
                _check_settings(spec.configuration, endpoint, "configuration", ewhere, errors)
                _check_settings(spec.shared, endpoint, "sharedConfigurationOverride", ewhere, errors)
    if api.get("failover") is not None:
        if isinstance(api["failover"], dict):
            api["failover"], problems = failover.SETTINGS.validate(api["failover"], checks=False)
            for field, message in problems.items():
                err(f"failover.{field}", message)
        else:
            err("failover", "failover must be an object.")
    for pi, plan in enumerate(api.get("plans", [])):
        if (
            not isinstance(plan, dict)
            or not isinstance(plan.get("security"), dict)
            or not isinstance(plan["security"].get("type"), str)
        ):
            err(f"plans[{pi}].security.type", "A plan needs a security type.")
        elif plan.get("status") is not None and plan["status"] not in plans.STATUSES:
            err(f"plans[{pi}].status", "A plan's status must be one of " + ", ".join(plans.STATUSES) + ".")
        elif (plan.get("mode") == plans.PUSH) != (plan["security"]["type"] == plans.PUSH):
            err(f"plans[{pi}].mode", "A push plan (mode push) has no other security: subscribers are called back.")
        elif not isinstance(plan["security"].get("configuration") or {}, dict):  # problems() reads it with .get
            err(f"plans[{pi}].security.configuration", "A plan's security configuration must be an object.")
    for problem in flows.problems(api):
        if not isinstance(problem, flows.UnknownPolicy):  # kept: it blocks Deploy, naming the policy
            err(problem.field, problem.message)
    for field, message in response_templates.problems(api.get("responseTemplates")):
        err(field, message)
    if errors:
        raise DefinitionError(errors)
    return api


def _one_or_more(api, key, message, err):
    """The list under `key`, or [] once `message` names that it is missing or empty."""
    items = api.get(key)
    if isinstance(items, list) and items:
        return items
    err(key, message)
    return []


def _check_tcp_listener(listener, listeners, where, err):
    """A tcp listener names the SNI hosts it answers, and is the API's only listener (as in Gravitee)."""
    hosts = listener.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        err(f"{where}.hosts", "A tcp listener needs at least one host name (the SNI name clients send).")
        hosts = []
    for hi, host in enumerate(hosts):
        if not isinstance(host, str) or not SNI_HOST.match(host):
            err(f"{where}.hosts[{hi}]", f"{host!r} is not a host name (such as api.example.com).")
    if len(listeners) > 1:
        err(f"{where}.type", "An API with a tcp listener can have no other listener.")


def _check_kafka_listener(listener, where, err):
    """A NATIVE API's Kafka listener: the host prefix and port its clients bootstrap from."""
    if not isinstance(listener.get("host"), str) or not SNI_HOST.match(listener["host"]):
        err(f"{where}.host", "A kafka listener needs a host (the prefix of the bootstrap host name clients use).")
    port = listener.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        err(f"{where}.port", "A kafka listener needs a port number (1 to 65535).")


def _check_cors(settings, where, err):
    """Gravitee's CORS block of an HTTP listener: checked here so that the gateway compiles it at
    deploy without failing (cors.Cors)."""
    if not isinstance(settings, dict):
        err(where, 'cors must be an object, such as {"enabled": true, "allowOrigin": ["https://app.example.com"]}.')
        return
    for key in CORS_FLAGS:
        if key in settings and not isinstance(settings[key], bool):
            err(f"{where}.{key}", f"{key} must be true or false.")
    for key, (kind, example) in CORS_LISTS.items():
        values = settings.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            err(f"{where}.{key}", f'{key} must be a list of text values, such as ["{example}"].')
            continue
        for i, value in enumerate(values):
            problem = _origin_problem(value) if key == "allowOrigin" else _token_problem(value, kind, example)
            if problem:
                err(f"{where}.{key}[{i}]", problem)
    age = settings.get("maxAge")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < -1):
        err(
            f"{where}.maxAge",
            "maxAge must be a whole number of seconds, at least 0 (Gravitee's default is 86400), "
            "or -1 to send no Access-Control-Max-Age.",
        )


def _origin_problem(origin):
    if origin == "*":
        return None
    try:
        cors.origin_pattern(origin)
    except re.error as exc:
        return (
            f"{origin!r} is neither an origin nor a regular expression ({exc}). Write an origin such as "
            "https://app.example.com, * for any origin, or a regular expression matching whole origins "
            "such as https://.*\\.example\\.com."
        )
    return None


def _token_problem(value, kind, example):
    if TOKEN.match(value):
        return None
    return f"{value!r} is not {kind}: write one such as {example}, without spaces."


def _check_settings(settings, owner, key, where, errors):
    if owner.get(key) is None:
        return
    if isinstance(owner[key], dict):
        # As Gravitee's schema validation does: a required setting that has a default and is
        # absent takes the default (the mock endpoint's `configuration: {}` is valid in Gravitee).
        for f in settings:
            if (
                f.required
                and f.default is not None
                and get_path(owner[key], f.path) is None
                and settings.active(f, owner[key])
            ):
                set_path(owner[key], f.path, f.default)
    clean, problems = settings.validate(owner[key], checks=False)
    for field, message in problems.items():
        errors.append({"field": f"{where}.{key}.{field}", "message": message})
    owner[key] = clean


def blocking_parts(api):
    """Parts this gateway cannot run yet, or settings it cannot use as they are (an imported
    placeholder such as `bootstrap-server`), each named; Deploy is refused while any remain."""
    parts = [NATIVE] if api.get("type") == "native" else []
    parts += _unusable_settings(api)
    for listener in api.get("listeners", []):
        for entrypoint in listener.get("entrypoints", []):
            if registry.entrypoint(entrypoint["type"]) is None:
                parts.append(f"entrypoint {entrypoint['type']}")
            parts += _dlq_parts(api, entrypoint)
    for group in api.get("endpointGroups", []):
        kinds = {group["type"]} | {e["type"] for e in group.get("endpoints", [])}
        for kind in sorted(kinds - set(TEST_KIT_ENDPOINTS)):
            if registry.endpoint(kind) is None:
                parts.append(f"endpoint {kind}")
        if group.get("endpoints") and all(e["type"] in TEST_KIT_ENDPOINTS for e in group["endpoints"]):
            parts.append(f"group {group['name']} has only test-kit endpoints, which are ignored: nothing to call")
        parts += _service_parts(group.get("services"), group, f"group {group['name']}")
        for endpoint in group.get("endpoints", []):
            if endpoint.get("tenants"):
                parts.append(f"tenants on endpoint {endpoint['name']}")
            parts += _service_parts(endpoint.get("services"), group, f"endpoint {endpoint['name']}")
    for plan in api.get("plans", []):
        name = plan.get("name", plan.get("id"))
        parts += [f"{message.rstrip('.')} (plan {name})" for message in plans.problems(plan).values()]
    for policy in sorted(_policies(api) - set(flows.TEST_KIT_POLICIES)):
        if registry.policy(policy) is None:
            parts.append(f"policy {policy}")
    parts += [
        f"flow steps in the {phase} phase" for phase in sorted(_policies(api, by_phase=True)) if phase not in PHASES
    ]
    parts += _attribute_parts(api)
    parts += _restrictions(api)
    parts += failover.problems(api.get("failover"))
    parts += capabilities.problems(api)
    if (
        isinstance(api.get("failover"), dict)
        and api["failover"].get("enabled")
        and any(listener.get("type") == "tcp" for listener in api.get("listeners", []))
    ):
        parts.append("failover on a tcp listener's API (the endpoints' reconnect attempts retry connections)")
    if _enabled_services(api.get("services")):
        parts.append(f"API services ({', '.join(_enabled_services(api['services']))})")
    if api.get("resources"):
        parts.append(
            "resources (" + ", ".join(r.get("type", "?") for r in api["resources"] if isinstance(r, dict)) + ")"
        )
    text = json.dumps(
        {
            "listeners": api.get("listeners"),
            # flows' expressions run (validate checks them); services are judged above (a health
            # check's assertion is EL we evaluate)
            "endpointGroups": [_without_services(g) for g in api.get("endpointGroups", [])],
        }
    )
    if "{#secrets" in text:
        parts.append("secret references ({#secrets...})")
    elif "{#" in text:
        parts.append("expression language ({#...})")
    return list(dict.fromkeys(parts))


def _dlq_parts(api, entrypoint):
    name = (entrypoint.get("dlq") or {}).get("endpoint")
    if not entrypoint.get("dlq"):
        return []
    if entrypoint["type"] != "webhook":
        return [f"dead-letter queue on entrypoint {entrypoint['type']}"]
    names = {
        n for g in api.get("endpointGroups", []) for n in [g["name"]] + [e["name"] for e in g.get("endpoints", [])]
    }
    if name not in names:
        return [f"dead-letter endpoint {name} of entrypoint webhook: the API has no endpoint or group of that name"]
    return []


def _restrictions(api):
    """Parts that narrow which requests, gateways or plans serve the API. Ignored, the gateway
    would serve what Gravitee refuses: they block Deploy (docs/compatibility.md, the rule)."""
    parts = []
    if api.get("tags"):
        parts.append(f"tags (sharding tags {_listed(api['tags'])}): every Gatehouse gateway would serve the API")
    for li, listener in enumerate(api.get("listeners", [])):
        if listener.get("servers"):
            parts.append(
                f"listeners[{li}].servers ({_listed(listener['servers'])}): the gateway port would serve this listener"
            )
    for plan in api.get("plans", []):
        name = plan.get("name", plan.get("id"))
        if plan.get("selectionRule"):
            parts.append(f"selectionRule of plan {name} (which requests the plan takes)")
        if plan.get("tags"):
            parts.append(
                f"tags of plan {name} (sharding tags {_listed(plan['tags'])}): every Gatehouse gateway "
                "would offer the plan"
            )
    return parts


def _listed(values):
    return ", ".join(map(str, values)) if isinstance(values, list) else str(values)


def _unusable_settings(api):
    found = []
    for listener in api.get("listeners", []):
        for entrypoint in listener.get("entrypoints", []):
            spec = registry.entrypoint(entrypoint["type"])
            if spec is not None:
                found += _problems(spec.configuration, entrypoint.get("configuration"), f"entrypoint {spec.type}")
    for group in api.get("endpointGroups", []):
        spec = registry.endpoint(group["type"])
        if spec is not None:
            found += _problems(spec.shared, group.get("sharedConfiguration"), f"group {group['name']}")
        for endpoint in group.get("endpoints", []):
            spec = registry.endpoint(endpoint["type"])
            if spec is None:
                continue
            where = f"endpoint {endpoint['name']}"
            found += _problems(spec.configuration, endpoint.get("configuration"), where)
            if not endpoint.get("inheritConfiguration"):
                found += _problems(spec.shared, endpoint.get("sharedConfigurationOverride"), where)
    return found


def _problems(settings, values, where):
    if values is None or "{#" in json.dumps(values):  # expression language is named on its own
        return []
    return [f"{where}: {message}" for message in settings.validate(values)[1].values()]


def warnings(api):
    """Parts kept but not applied, whose absence loses the operator something but lets no request
    through that Gravitee refuses; and test-kit-only parts, imported and ignored."""
    found = _unapplied(api)
    for policy in sorted(_policies(api) & set(flows.TEST_KIT_POLICIES)):
        found.append(f"policy {policy} is ignored (it exists only in Gravitee's test kit)")
    for place in flows.unapplied_selectors(api):
        found.append(
            f"{place} (an http selector) is not applied: a message API's flows are chosen by their "
            "channel and condition selectors, as in Gravitee"
        )
    for group in api.get("endpointGroups", []):
        for endpoint in group.get("endpoints", []):
            if endpoint["type"] in TEST_KIT_ENDPOINTS:
                found.append(
                    f"endpoint {endpoint['name']} of type {endpoint['type']} is ignored "
                    "(it exists only in Gravitee's test kit)"
                )
            spec = registry.endpoint(endpoint["type"])
            if spec is not None:
                for key in spec.configuration.ignored_present(endpoint.get("configuration")):
                    found.append(
                        f"{key} of endpoint {endpoint['name']} is ignored (it exists only in Gravitee's test kit)"
                    )
    return found


def _unapplied(api):
    analytics = api.get("analytics") if isinstance(api.get("analytics"), dict) else {}
    found = []
    if analytics.get("enabled") is True:
        found.append(_kept("analytics.enabled", "no request analytics are recorded"))
    if analytics.get("enabled", True) is not False:  # Gravitee's default: on
        if _switched_on(analytics.get("logging")):
            found.append(_kept("analytics.logging", "no request or message logs are written"))
        if isinstance(analytics.get("tracing"), dict) and analytics["tracing"].get("enabled"):
            found.append(_kept("analytics.tracing", "no traces are sent"))
        for key in ("sampling", "messageSampling"):
            if analytics.get(key):
                found.append(_kept(f"analytics.{key}", "no message analytics are recorded"))
    for li, listener in enumerate(api.get("listeners", [])):
        if listener.get("pathMappings"):
            found.append(_kept(f"listeners[{li}].pathMappings", "they only group analytics, which are not recorded"))
    if api.get("groups"):
        found.append(_kept("groups", "Gatehouse has no user groups (the API's owner and admins manage it)"))
    if api.get("categories"):
        found.append(_kept("categories", "Gatehouse has no API catalogue"))
    if isinstance(api.get("visibility"), str) and api["visibility"].lower() == "private":
        found.append(_kept("visibility", "every portal user sees the API (calling it is up to its plans)"))
    return found


def _kept(field, loss):
    return f"{field} is kept but not applied yet: {loss}"


def _switched_on(value):
    """Whether a settings block (logging's mode, phase, content) turns anything on."""
    if isinstance(value, dict):
        return any(_switched_on(v) for v in value.values())
    return value is True


def import_notes(document, state=None):
    """What an import does not take from the document it was given (state, an export's members,
    pages and metadata), each named; `state` is that of the API it replaces, None for a new one."""
    if not isinstance(document, dict):
        return []
    api = document["api"] if isinstance(document.get("api"), dict) else document
    notes = []
    wanted = api.get("state")
    if isinstance(wanted, str) and wanted.lower() != (state or "stopped"):
        notes.append(
            f"state {wanted} is not applied: "
            + (
                "the API is imported stopped; deploy and start it to serve it"
                if state is None
                else f"the API stays {state}; an import changes its draft only"
            )
        )
    if api is not document:
        notes += [note for key, note in EXPORT_PARTS if document.get(key)]
    return notes + response_templates.notes(api.get("responseTemplates"))


def _steps(api):
    """(phase, step) of every enabled step of the API's and its plans' enabled flows."""
    flows_ = list(api.get("flows") or [])
    for plan in api.get("plans", []):
        flows_.extend(plan.get("flows") or [])
    for flow in flows_:
        if not isinstance(flow, dict) or flow.get("enabled") is False:
            continue
        for phase in FLOW_PHASES:
            for step in flow.get(phase) or []:
                if isinstance(step, dict) and step.get("enabled", True) is not False:
                    yield phase, step


def _policies(api, by_phase=False):
    return {phase if by_phase else step.get("policy", "?") for phase, step in _steps(api)}


def _attribute_parts(api):
    """Attributes a flow sets for Gravitee's endpoints to read (gravitee.attribute..., a topic
    chosen per message, say): those the API's endpoints read when publishing apply; any other
    would change what Gravitee delivers, unread."""
    kinds = sorted({e.get("type") for g in api.get("endpointGroups", []) for e in g.get("endpoints", [])} - {None})
    readable = {name for kind in kinds if (spec := registry.endpoint(kind)) for name in spec.publish_attributes}
    subscribing = any(
        "SUBSCRIBE" in spec.operations
        for listener in api.get("listeners", [])
        for entrypoint in listener.get("entrypoints", [])
        if (spec := registry.entrypoint(entrypoint.get("type")))
    )
    endpoints = ", ".join(kinds)
    parts = []
    for phase, step in _steps(api):
        spec = registry.policy(step.get("policy"))
        if spec is None or spec.type != "policy-assign-attributes":
            continue
        for pair in (step.get("configuration") or {}).get("attributes") or []:
            name = pair.get("name", "") if isinstance(pair, dict) else ""
            if not name.startswith("gravitee.attribute"):
                continue
            if name not in readable:
                parts.append(
                    f"attribute {name} (for Gravitee's endpoint; the {endpoints} endpoint here does not read it)"
                )
            elif phase != "publish" and subscribing:
                parts.append(f"attribute {name} for consuming (the {endpoints} endpoint reads it when publishing only)")
    return parts


def _without_services(group):
    group = {k: v for k, v in group.items() if k != "services"}
    group["endpoints"] = [{k: v for k, v in e.items() if k != "services"} for e in group.get("endpoints", [])]
    return group


def _service_parts(services, group, where):
    """Endpoint services this gateway cannot run: HTTP health checks of proxy endpoints it can."""
    parts = []
    for name in _enabled_services(services):
        service = services[name]
        if (
            name == "healthCheck"
            and service.get("type", "http-health-check") == "http-health-check"
            and group["type"] == "http-proxy"
        ):
            parts += [
                f"{where}: {problem}"
                for problem in health.problems({**health.DEFAULTS, **(service.get("configuration") or {})})
            ]
        else:
            parts.append(f"services ({name}) on {where}")
    return parts


def _enabled_services(services):
    if not isinstance(services, dict):
        return []
    return [name for name, service in services.items() if isinstance(service, dict) and service.get("enabled", True)]
