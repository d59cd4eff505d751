"""What the portal does to APIs, shared by the browser views and the management REST API:
definitions in and out of the model, deploy, start and stop."""

import difflib
import json
import uuid

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway_runtime import plans as plan_rules
from gateway_runtime import registry
from gateway_runtime.definition import checks, forms, secrets
from gateway_runtime.definition.forms import DefinitionError
from gateway_runtime.request_target import is_under, route_key

from .models import Api, ContextPath, Deployment, Endpoint, EndpointGroup, Entrypoint, Listener, Plan, db, utcnow

API_KEYS = (
    "id",
    "name",
    "apiVersion",
    "definitionVersion",
    "type",
    "description",
    "listeners",
    "endpointGroups",
    "plans",
)
LISTENER_KEYS = ("type", "paths", "entrypoints")
PATH_KEYS = ("path", "host")
ENTRYPOINT_KEYS = ("type", "qos", "configuration")
GROUP_KEYS = ("name", "type", "loadBalancer", "sharedConfiguration", "endpoints")
ENDPOINT_KEYS = (
    "name",
    "type",
    "weight",
    "inheritConfiguration",
    "secondary",
    "configuration",
    "sharedConfigurationOverride",
)
PLAN_KEYS = ("id", "name", "security", "mode", "status")


class Conflict(Exception):
    def __init__(self, message, field="listeners.paths", value=None):
        super().__init__(message)
        self.field = field
        self.value = value  # the path or host in conflict, so that a form can mark its input


class NothingToDeploy(Exception):
    def __init__(self, deployment):
        super().__init__(f"Nothing to deploy: the draft equals revision {deployment.revision}.")
        self.deployment = deployment


class DeployRefused(Exception):
    def __init__(self, parts):
        super().__init__("This API cannot be deployed yet: " + "; ".join(parts) + ".")
        self.parts = parts


def _extra(source, known):
    return {k: v for k, v in source.items() if k not in known}


def _part(entry, extra, **optional):
    """A part of a definition from its row: `entry`, the `optional` keys the row has set, then the
    keys the row keeps in `extra`, in that order."""
    entry.update({key: value for key, value in optional.items() if value is not None})
    entry.update(extra)
    return entry


# ----- model <-> canonical definition -----
def definition_of(api):
    """The canonical (gateway-form, plans as a list) definition of the API's draft."""
    out = {
        "id": api.id,
        "name": api.name,
        "apiVersion": api.api_version,
        "definitionVersion": "4.0.0",
        "type": api.type,
        "description": api.description,
    }
    out.update(api.extra)
    out["listeners"] = []
    for listener in api.listeners:
        item = {"type": listener.type}
        if listener.type == "http" or listener.paths:
            item["paths"] = [_part({"path": p.path}, p.extra, host=p.host) for p in listener.paths]
        item["entrypoints"] = [
            _part({"type": e.type}, e.extra, qos=e.qos, configuration=e.configuration) for e in listener.entrypoints
        ]
        item.update(listener.extra)
        out["listeners"].append(item)
    out["endpointGroups"] = []
    for g in api.endpoint_groups:
        group = {"name": g.name, "type": g.type}
        if g.load_balancer:
            group["loadBalancer"] = {"type": g.load_balancer}
        endpoints = [
            _part(
                {"name": e.name, "type": e.type},
                e.extra,
                weight=e.weight,
                inheritConfiguration=e.inherit_configuration,
                secondary=e.secondary,
                configuration=e.configuration,
                sharedConfigurationOverride=e.shared_configuration_override,
            )
            for e in g.endpoints
        ]
        group = _part(group, g.extra, sharedConfiguration=g.shared_configuration, endpoints=endpoints)
        out["endpointGroups"].append(group)
    out["plans"] = [plan_definition(p) for p in api.plans]
    return out


def plan_definition(p):
    plan = {"id": p.id, "name": p.name, "security": dict(p.extra.get("security", {}), type=p.security_type)}
    return _part(plan, {k: v for k, v in p.extra.items() if k != "security"}, mode=p.mode, status=p.status)


def store_definition(api, d):
    """Replace the API's draft with a validated canonical definition."""
    api.name = d["name"].strip()
    api.api_version = str(d.get("apiVersion") or "1.0")
    api.description = d.get("description") or ""
    api.type = d["type"]
    api.extra = _extra(d, API_KEYS)
    api.listeners = []
    api.endpoint_groups = []
    api.plans = []
    db.session.flush()
    for li, given in enumerate(d["listeners"]):
        listener = Listener(position=li, type=given["type"], extra=_extra(given, LISTENER_KEYS))
        for pi, p in enumerate(given.get("paths") or []):
            listener.paths.append(
                ContextPath(api_id=api.id, position=pi, path=p["path"], host=p.get("host"), extra=_extra(p, PATH_KEYS))
            )
        for ei, e in enumerate(given.get("entrypoints") or []):
            listener.entrypoints.append(
                Entrypoint(
                    position=ei,
                    type=e["type"],
                    qos=e.get("qos"),
                    configuration=e.get("configuration"),
                    extra=_extra(e, ENTRYPOINT_KEYS),
                )
            )
        api.listeners.append(listener)
    for gi, g in enumerate(d["endpointGroups"]):
        group = EndpointGroup(
            position=gi,
            name=g["name"],
            type=g["type"],
            load_balancer=(g.get("loadBalancer") or {}).get("type"),
            shared_configuration=g.get("sharedConfiguration"),
            extra=_extra(g, GROUP_KEYS),
        )
        if isinstance(g.get("loadBalancer"), dict) and set(g["loadBalancer"]) - {"type"}:
            group.extra = dict(group.extra, loadBalancer=g["loadBalancer"])  # a copy: extra is sealed
        for ni, e in enumerate(g.get("endpoints") or []):
            group.endpoints.append(
                Endpoint(
                    position=ni,
                    name=e["name"],
                    type=e["type"],
                    weight=e.get("weight"),
                    inherit_configuration=e.get("inheritConfiguration"),
                    secondary=e.get("secondary"),
                    configuration=e.get("configuration"),
                    shared_configuration_override=e.get("sharedConfigurationOverride"),
                    extra=_extra(e, ENDPOINT_KEYS),
                )
            )
        api.endpoint_groups.append(group)
    for pi, p in enumerate(d.get("plans") or []):
        extra = _extra(p, PLAN_KEYS)
        security = {k: v for k, v in p["security"].items() if k != "type"}
        if security:
            extra["security"] = security
        api.plans.append(
            Plan(
                position=pi,
                id=str(p.get("id") or uuid.uuid4()),
                name=p.get("name") or "Plan",
                security_type=p["security"]["type"],
                mode=p.get("mode"),
                status=p.get("status"),
                extra=extra,
            )
        )
    api.updated_at = utcnow()


def default_plan():
    return {
        "id": str(uuid.uuid4()),
        "name": "Default Keyless (UNSECURED)",
        "security": {"type": "key-less"},
        "mode": "standard",
        "status": "published",
    }


def prepare(document, previous=None):
    """Any accepted input -> a validated canonical definition, with a plan. Masked secrets take
    their values from the previous definition first, so that they validate."""
    d = forms.read_document(document)
    if previous is not None:
        restore_secrets(d, previous)
    d = checks.validate(d)
    if not d.get("plans"):
        d["plans"] = [default_plan()]
    for plan in d["plans"]:  # a plan in a gateway-form definition serves: Gravitee's test kit omits the status
        plan.setdefault("status", "published")
    return d


def _routes(d):
    """The (host or None, canonical path) pairs a definition's listeners serve."""
    return {
        ((p.get("host") or "").lower() or None, route_key(p["path"]))
        for listener in d["listeners"]
        for p in listener.get("paths") or []
    }


def _overlap(route, other):
    """Whether two routes could serve the same request: hosts compatible (one of them any host),
    and one path on or under the other on segment boundaries (/api and /api/admin, not /ap)."""
    (host, path), (other_host, other_path) = route, other
    return (host is None or other_host is None or host == other_host) and (
        is_under(path, other_path) or is_under(other_path, path)
    )


def check_paths(d, api_id, user=None, kept=frozenset()):
    """409 when a context path (with its host) is already used by another API, or when it overlaps
    a path of an API the user does not own: the longest path wins a request and a host-bound one
    beats a host-less one, so /api/admin (or /api on one host) takes traffic of /api, API keys and
    tokens included; and / (or /api over /api/admin) receives it whenever that API stops.
    An admin may, and is warned: returns the warnings. `user` None (a script): only the first rule.
    Routes in `kept` (the API's own, before an edit) were allowed already and are not judged again."""
    wanted = _routes(d)
    used = db.session.execute(
        select(ContextPath.host, ContextPath.path, ContextPath.api_id).where(ContextPath.api_id != api_id)
    ).all()
    new = sorted(wanted - kept, key=str)
    warnings = []
    for host, path, other in used:
        route = ((host or "").lower() or None, route_key(path))
        if route in wanted:
            name = db.session.get(Api, other).name
            raise Conflict(f"The context path {path} is already used by the API '{name}'.", value=path)
        taking = next((mine for mine in new if _overlap(mine, route)), None)
        if taking is None or user is None:
            continue
        owner = db.session.get(Api, other)
        if owner.owner_id == user.id:
            continue
        message = _takeover_message(taking, route, owner)
        if user.role != "admin":
            raise Conflict(
                f"{message} Only its owner or an admin may do this: choose a path outside it, or ask an admin.",
                value=taking[1],
            )
        warnings.append(f"{message} You may, as an admin: check that this is wanted.")
    wanted_hosts = {
        h.lower() for listener in d["listeners"] if listener["type"] == "tcp" for h in listener.get("hosts") or []
    }
    tcp_listeners = db.session.execute(
        select(Listener.extra, Listener.api_id).where(Listener.type == "tcp", Listener.api_id != api_id)
    ).all()
    for extra, other in tcp_listeners:
        for host in extra.get("hosts") or []:
            if host.lower() in wanted_hosts:
                raise Conflict(
                    f"The host {host} is already used by the tcp listener of the API "
                    f"'{db.session.get(Api, other).name}'.",
                    "listeners.hosts",
                    host,
                )
    return warnings


def _takeover_message(route, other_route, api):
    def named(r):
        return r[1] + (f" on the host {r[0]}" if r[0] else "")

    owner = api.owner.username if api.owner else "nobody"
    return (
        f"The context path {named(route)} overlaps the context path {named(other_route)} of the API "
        f"'{api.name}' (owned by {owner}): its clients, with their API keys and tokens, could reach this API."
    )


def create(document, owner):
    """The new API and the warnings of its import: what it did not take from the document, and
    those an admin gets (see check_paths)."""
    d = prepare(document)
    api = Api(id=str(uuid.uuid4()), name=d["name"], type=d["type"], state="stopped", extra={}, owner=owner)
    d["id"] = api.id
    warnings = checks.import_notes(document) + check_paths(d, api.id, owner)
    db.session.add(api)
    store_definition(api, d)
    db.session.commit()
    return api, warnings


def replace(api, document, user=None):
    """Replace the draft, validated as an import is; on any error nothing is saved. Returns the
    warnings of the import (see create)."""
    previous = definition_of(api)
    d = prepare(document, previous)
    d["id"] = api.id
    warnings = checks.import_notes(document, api.state) + check_paths(d, api.id, user, kept=_routes(previous))
    store_definition(api, d)
    db.session.commit()
    return warnings


def restore_secrets(d, previous):
    """Masked secrets in a re-imported export keep the values they had; so do plans' HMAC secrets
    left out."""
    secrets.restore_secrets(d, previous)
    stored = {p["id"]: p["security"].get("configuration") for p in previous.get("plans", [])}
    for plan in d.get("plans", []):
        security = plan.get("security") if isinstance(plan, dict) else None
        if isinstance(security, dict) and isinstance(security.get("configuration"), dict):
            plan_rules.restore_secret(security["configuration"], stored.get(plan.get("id")))


def masked(d):
    """A copy of the definition with every secret masked."""
    return secrets.masked(d)


def export(api, include_secrets=False):
    d = definition_of(api)
    return forms.export_envelope(d if include_secrets else masked(d), api.state)


# ----- deployments -----
def last_deployment(api):
    return api.deployments.first()


# Plan fields that act at once, without a redeploy (gateways read plan statuses live).
LIVE_PLAN_KEYS = ("status", "validation")


def has_undeployed_changes(api):
    last = last_deployment(api)
    return last is None or _deployed_part(last.definition) != _deployed_part(_draft(api))


def _draft(api):
    return forms.to_gateway_form(definition_of(api))


def _deployed_part(gateway_form):
    plans = {
        plan_id: {k: v for k, v in plan.items() if k not in LIVE_PLAN_KEYS}
        for plan_id, plan in gateway_form.get("plans", {}).items()
    }
    return dict(gateway_form, plans=plans)


def blocking_parts(api):
    return checks.blocking_parts(definition_of(api))


def deploy(api, user):
    """A new revision of the draft. On PostgreSQL deploys of one API take turns, from every node:
    each locks the API's row, then reads the draft and the last revision as the one before left
    them. SQLite has no row locks: of two deploys that made the same revision number, the second
    is refused (409) and deploys nothing."""
    db.session.execute(select(Api.id).where(Api.id == api.id).with_for_update())
    db.session.expire_all()  # what was read before the lock may be older than the last deploy
    d = definition_of(api)
    last = last_deployment(api)
    if last is not None and not has_undeployed_changes(api):
        raise NothingToDeploy(last)
    parts = checks.blocking_parts(d)
    if parts:
        raise DeployRefused(parts)
    deployment = Deployment(
        api_id=api.id, revision=(last.revision + 1) if last else 1, definition=forms.to_gateway_form(d), created_by=user
    )
    db.session.add(deployment)
    api.deployed_revision = deployment.revision
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"Another deploy of this API made revision {deployment.revision} at the same time, so this "
            "one deployed nothing. Deploy again if the draft has changed since.",
            field="revision",
        ) from None
    current_app.logger.info("API %s deployed as revision %s by %s", api.id, deployment.revision, user)
    served_here()
    return deployment


def served_here():
    """This process's gateway serves what was just committed before the answer says "deployed",
    "started" or "stopped" (other processes and nodes take up to their watcher's poll)."""
    gateway = current_app.extensions.get("gatehouse_gateway")
    if gateway is not None:
        gateway.refresh_now()


def revision(api, number):
    return api.deployments.filter_by(revision=number).first()


def restore(api, deployment, user=None):
    """Make the draft equal to a deployed revision. Its stored secrets are the real ones (sealed in
    the database, not masked). Plans keep their current status and validation: those act at once,
    so a restore must not reopen a closed plan before anyone deploys. Returns the warnings an admin
    gets (see check_paths)."""
    d = prepare(deployment.definition)
    current = definition_of(api)
    live = {p["id"]: {k: p[k] for k in LIVE_PLAN_KEYS if k in p} for p in current["plans"]}
    for plan in d["plans"]:
        plan.update(live.get(plan["id"], {}))
    d["id"] = api.id
    warnings = check_paths(d, api.id, user, kept=_routes(current))
    store_definition(api, d)
    db.session.commit()
    return warnings


# ----- what changed between two gateway-form definitions -----
GENERAL_LABELS = {"name": "name", "apiVersion": "version", "description": "description", "type": "API type"}
SKIPPED_KEYS = ("id", "definitionVersion", "listeners", "endpointGroups", "plans")


def _keyed(items, key):
    return {key(item): item for item in items if isinstance(item, dict)}


def _counted(noun, before, after, strip=lambda item: item):
    """['1 endpoint added', '2 endpoints changed', ...] between two {key: item} maps."""
    counts = (
        ("added", len(after.keys() - before.keys())),
        ("removed", len(before.keys() - after.keys())),
        ("changed", sum(strip(before[k]) != strip(after[k]) for k in before.keys() & after.keys())),
    )
    return [f"{n} {noun}{'s' if n != 1 else ''} {verb}" for verb, n in counts if n]


def change_summary(before, after):
    """What Deploy would change, in words: compares the deployed parts of two gateway-form
    definitions (plan statuses act live, so they never count)."""
    if before is None:
        return ["never deployed"]
    before, after = _deployed_part(before), _deployed_part(after)
    changes = [f"{label} changed" for key, label in GENERAL_LABELS.items() if before.get(key) != after.get(key)]
    listeners = [_keyed(d.get("listeners") or [], lambda item: item.get("type")) for d in (before, after)]
    without_entrypoints = [
        {kind: {k: v for k, v in one.items() if k != "entrypoints"} for kind, one in side.items()} for side in listeners
    ]
    if without_entrypoints[0] != without_entrypoints[1]:
        changes.append("context paths or hosts changed")
    entrypoints = [
        {(kind, e.get("type")): e for kind, one in side.items() for e in one.get("entrypoints") or []}
        for side in listeners
    ]
    changes += _counted("entrypoint", *entrypoints)
    groups = [_keyed(d.get("endpointGroups") or [], lambda item: item.get("name")) for d in (before, after)]
    changes += _counted("endpoint group", *groups, strip=lambda g: {k: v for k, v in g.items() if k != "endpoints"})
    endpoints = [
        {(name, e.get("name")): e for name, group in side.items() for e in group.get("endpoints") or []}
        for side in groups
    ]
    changes += _counted("endpoint", *endpoints)
    changes += _counted("plan", before.get("plans") or {}, after.get("plans") or {})
    known = set(GENERAL_LABELS) | set(SKIPPED_KEYS)
    changes += [
        f"{key} changed" for key in sorted((before.keys() | after.keys()) - known) if before.get(key) != after.get(key)
    ]
    if not changes and before != after:
        changes.append("order of parts changed")
    return changes


def undeployed_changes(api):
    """The change summary of the draft against the last deployment ([] when they are equal)."""
    last, draft = last_deployment(api), _draft(api)
    if last is not None and _deployed_part(last.definition) == _deployed_part(draft):
        return []
    return change_summary(last.definition if last else None, draft)


def definition_at(api, which):
    """The gateway-form definition of a revision number, or of the draft ("draft"); None if absent."""
    if which == "draft":
        return _draft(api)
    found = revision(api, which)
    return found.definition if found else None


def diff_lines(before, after, before_label, after_label):
    """A unified diff of two definitions as pretty JSON, secrets masked: [(kind, line)] with kind
    one of header, hunk, added, removed, same."""

    def pretty(d):
        return json.dumps(masked(d), indent=2, sort_keys=True).splitlines()

    lines = []
    for line in difflib.unified_diff(pretty(before), pretty(after), before_label, after_label, lineterm=""):
        if line.startswith(("---", "+++")):
            kind = "header"
        else:
            kind = {"@": "hunk", "+": "added", "-": "removed"}.get(line[:1], "same")
        lines.append((kind, line))
    return lines


def start(api, user):
    if api.deployed_revision is None:
        deploy(api, user)
    api.state = "started"
    db.session.commit()
    served_here()


def stop(api):
    api.state = "stopped"
    db.session.commit()
    served_here()


def delete(api):
    forget_at_backends(api)
    db.session.delete(api)
    db.session.commit()


def forget_at_backends(api):
    """Let each endpoint remove what the API left at its backend (RabbitMQ queues), for the draft
    and the deployed revision. A backend that cannot be reached does not stop the deletion."""
    definitions = [definition_of(api)] + [d.definition for d in api.deployments.limit(1)]
    done = set()
    for definition in definitions:
        for group in definition.get("endpointGroups", []):
            for endpoint in group.get("endpoints", []):
                spec = registry.endpoint(endpoint.get("type"))
                shared = (
                    group.get("sharedConfiguration")
                    if endpoint.get("inheritConfiguration")
                    else endpoint.get("sharedConfigurationOverride")
                )
                key = json.dumps([endpoint.get("type"), endpoint.get("configuration"), shared], sort_keys=True)
                if spec is None or spec.forget is None or key in done:
                    continue
                done.add(key)
                try:
                    spec.forget(
                        api.id,
                        spec.configuration.with_defaults(endpoint.get("configuration")),
                        spec.shared.with_defaults(shared),
                    )
                except Exception as exc:
                    current_app.logger.warning(
                        "API %s deleted; endpoint %s could not clean up: %s", api.id, endpoint.get("name"), exc
                    )


def find(api_id):
    return db.session.get(Api, api_id)


def all_apis():
    return db.session.scalars(select(Api).order_by(Api.name)).all()


__all__ = ["Conflict", "DefinitionError", "DeployRefused", "NothingToDeploy"]
