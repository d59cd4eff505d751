"""Browser UI: server-rendered pages and the small HTMX partials they swap in."""

import json
import re
import uuid

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from gateway_runtime import database, failover, registry
from gateway_runtime import plans as rules
from gateway_runtime.definition import capabilities, checks, forms
from gateway_runtime.definition.checks import LOAD_BALANCERS
from gateway_runtime.expressions import ExpressionError, compile_template
from gateway_runtime.request_target import route_key
from gateway_runtime.settings import get_path, set_path

from . import apis, clients, connector_forms, health, kept_secrets
from .auth import local_path, requires
from .connector_forms import form_value, from_form
from .models import Endpoint, EndpointGroup, db

bp = Blueprint("ui", __name__)
# _settings.html renders every connector form through these functions
bp.add_app_template_global(connector_forms, "connector_forms")  # type: ignore[arg-type]
API_TYPES = (
    ("message", "Message API: clients reach a message backend over HTTP, SSE or WebSocket"),
    ("proxy", "Proxy API: requests are forwarded to HTTP backends"),
)
FIELD_OF_ERROR = {"name": "name", "listeners[0].paths[0].path": "path", "apiVersion": "version"}


def register_error_pages(app):
    @app.errorhandler(HTTPException)
    def http_error(exc):
        if request.path.startswith("/management/"):
            response = jsonify({"message": exc.description, "errors": []})
            response.status_code = exc.code
            return response
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc):
        busy = database.unavailable(exc)
        if busy:  # the database's fault, said in one line: no traceback
            app.logger.warning("%s %s: %s", request.method, request.path, busy)
            db.session.rollback()
            return http_error(ServiceUnavailable(busy, retry_after=5))
        app.logger.exception("unexpected error on %s", request.path)
        db.session.rollback()
        if request.path.startswith("/management/"):
            return jsonify({"message": "Unexpected error; the server log has the details.", "errors": []}), 500
        return render_template(
            "error.html",
            code=500,
            message="Something went wrong on our side. Nothing was saved; the server log has the details.",
        ), 500


def _api(api_id):
    api = apis.find(api_id)
    if api is None:
        abort(404, f"There is no API with id {api_id}. Go back to the API list to pick one.")
    return api


@bp.get("/")
@requires("viewer")
def index():
    return redirect(url_for("ui.apis"))


@bp.get("/apis", endpoint="apis")
@requires("viewer")
def apis_list():
    every = apis.all_apis()
    items = [(api, apis.has_undeployed_changes(api)) for api in every]
    return render_template("apis.html", items=items, healths=health.of_apis(every))


# ----- create-API wizard -----
# One form whose steps post to the same view: `step` names the step to show next, and every step
# before it is validated first; a POST without `step` creates the API (one full form does it all).
# The other steps' values travel as hidden inputs; secrets never do: they are kept on the server
# (portal/kept_secrets.py) under the wizard's form id, and shown as "set".
WIZARD_STEPS = (
    ("general", "General"),
    ("entrypoints", "Entrypoints"),
    ("endpoint", "Endpoint"),
    ("plan", "Plan"),
    ("summary", "Summary"),
)
WIZARD_STEP_NAMES = tuple(name for name, _ in WIZARD_STEPS)
# Input name prefix -> its step; any other name is the General step's.
WIZARD_STEP_OF_INPUT = (
    ("entrypoint", "entrypoints"),
    ("qos.", "entrypoints"),
    ("ep.", "entrypoints"),
    ("cfg.", "endpoint"),
    ("shared", "endpoint"),
    ("endpoint_type", "endpoint"),
    ("plan_", "plan"),
    ("signature", "plan"),
    ("publicKey", "plan"),
    ("secret", "plan"),
    ("jwksUrl", "plan"),
    ("form", "summary"),
)
WIZARD_INPUTS = ("csrf_token", "step", "go", "wizard", "wizard_step", "seen.entrypoints", "seen.endpoint")
WIZARD_PLANS = (
    ("key-less", "Key-less: anyone may call the API"),
    ("api-key", "API key: callers send the key of their subscription (header X-Gravitee-Api-Key)"),
    ("jwt", "JWT: callers send a signed token whose client_id claim names their application"),
)
WIZARD_PLAN_NAMES = {"key-less": "Default Keyless (UNSECURED)", "api-key": "API key", "jwt": "JWT"}


def _wizard_step_of(name):
    return next((step for prefix, step in WIZARD_STEP_OF_INPUT if name.startswith(prefix)), "general")


def _wizard_state(form):
    api_type = form.get("type") if form.get("type") in dict(API_TYPES) else "message"
    # The wizard makes an HTTP listener (a context path); tcp-proxy APIs are imported for now.
    entrypoint_specs = [s for s in registry.entrypoints().values() if api_type in s.api_types and s.listener == "http"]
    endpoint_specs = [s for s in registry.endpoints().values() if api_type in s.api_types and s.listener != "tcp"]
    chosen = [s.type for s in entrypoint_specs if form.get(f"entrypoint.{s.type}")]
    offered = [s.type for s in endpoint_specs]
    endpoint_type = form.get("endpoint_type") if form.get("endpoint_type") in offered else offered[0]
    return api_type, entrypoint_specs, endpoint_specs, chosen, endpoint_type


def _wizard_secret_inputs():
    names = {"secret"}
    for spec in registry.entrypoints().values():
        names |= {f"ep.{spec.type}.{f.path}" for f in spec.configuration if f.secret}
    for spec in registry.endpoints().values():
        names |= {"cfg." + f.path for f in spec.configuration if f.secret}
        names |= {"shared." + f.path for f in spec.shared if f.secret}
    return names


def _wizard_form(posted):
    """The posted form with the secrets typed at earlier steps put back (they are kept on the
    server between steps, never carried in the page), and the wizard's form id."""
    form = posted.copy()
    form[kept_secrets.FIELD] = kept_secrets.form_id(posted)
    names = _wizard_secret_inputs()
    stored = kept_secrets.kept(form)
    typed = {name: value for name, value in posted.items() if name in names and value}
    for name, value in dict(stored, **typed).items():
        form[name] = value
    if typed:
        kept_secrets.keep(form, names)
    return form, form[kept_secrets.FIELD]


def _wizard_seen(form, state):
    """Sections whose inputs the page showed: only their posted values count (an unticked box posts
    nothing); the others take their starting values. A form posted whole (no wizard_step) showed all."""
    if form and "wizard_step" not in form:
        return {"entrypoints": set(state[3]), "endpoint": {state[4]}}
    return {"entrypoints": set(form.getlist("seen.entrypoints")), "endpoint": set(form.getlist("seen.endpoint"))}


def _wizard_section(settings, form, prefix, seen, initial=None):
    """(values, errors) of one connector section: as posted once shown, else its starting values."""
    if seen:
        return from_form(settings, form, prefix)
    values, errors = settings.validate(initial or {})
    return values, {prefix + name: message for name, message in errors.items()}


def _topic_of(path):
    """A topic named after the context path: /orders -> orders, /shop/orders -> shop.orders."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.strip("/").replace("/", ".")).strip("-.") or "messages"


def _initial_shared(spec, path):
    """A broker endpoint starts producing and consuming, on a topic (exchange) named after the path."""
    topic = _topic_of(path)
    paths = {f.path for f in spec.shared}
    values = {}
    for side in ("producer", "consumer"):
        for key, value in (
            (".enabled", True),
            (".topics", [topic]),
            (".topic", topic),
            (".exchange.name", topic),
            (".routingKey", topic),
        ):
            if side + key in paths:
                set_path(values, side + key, value)
    return values


def _wizard_general(form, errors):
    name, path, api_type = form.get("name", "").strip(), form.get("path", "").strip(), form.get("type", "message")
    if not name:
        errors["name"] = "Give the API a name."
    if not path.startswith("/"):
        errors["path"] = "The context path must start with '/', for example /orders."
    if api_type not in dict(API_TYPES):
        errors["type"] = "Choose a message API or a proxy API."
    return {
        "name": name,
        "apiVersion": form.get("version", "").strip() or "1.0",
        "definitionVersion": "4.0.0",
        "description": form.get("description", "").strip(),
        "type": api_type,
    }, path


def _wizard_entrypoints(form, state, seen, errors):
    _, entrypoint_specs, _, chosen, endpoint_type = state
    sections = []
    for spec in entrypoint_specs:
        values, problems = _wizard_section(spec.configuration, form, f"ep.{spec.type}.", spec.type in seen)
        qos, offered = form.get(f"qos.{spec.type}") or "auto", registry.qos_choices(spec.type, endpoint_type)
        if spec.type in chosen:
            errors.update(problems)
            if qos not in offered:
                errors[f"qos.{spec.type}"] = f"{spec.label} offers the quality of service " + ", ".join(offered) + "."
        # the shape _entrypoints_fields.html reads (the Entrypoints tab's)
        sections.append(dict(spec=spec, chosen=spec.type in chosen, current=values, qos_choices=offered, qos=qos))
    if not chosen:
        errors["entrypoints"] = (
            "Choose at least one entrypoint."
            if entrypoint_specs
            else "No entrypoint for this API type is available yet."
        )
    return sections


def _wizard_endpoint(form, state, seen, path, errors):
    _, _, endpoint_specs, _, endpoint_type = state
    if form.get("endpoint_type", endpoint_type) != endpoint_type:
        errors["endpoint_type"] = (
            "Choose one of the endpoint types offered: " + ", ".join(s.label for s in endpoint_specs) + "."
        )
    spec = registry.endpoint(endpoint_type)
    configuration, problems = _wizard_section(spec.configuration, form, "cfg.", endpoint_type in seen)
    errors.update(problems)
    shared, problems = _wizard_section(spec.shared, form, "shared.", endpoint_type in seen, _initial_shared(spec, path))
    errors.update(problems)
    return dict(spec=spec, configuration=configuration, shared=shared)


def _wizard_jwt_input(form):
    """The input a JWT plan's key is typed in: it depends on the signature and the key resolver."""
    if form.get("signature", "").startswith("HMAC_"):
        return "secret"
    return "publicKey" if form.get("publicKeyResolver", "GIVEN_KEY") == "GIVEN_KEY" else "jwksUrl"


def _wizard_plan(form, errors):
    from .consumers import _plan_form_fields  # here: consumers imports this module

    kind = form.get("plan_type") or "key-less"
    if kind not in WIZARD_PLAN_NAMES:
        errors["plan_type"] = "Choose a plan: " + ", ".join(WIZARD_PLAN_NAMES) + "."
        kind = "key-less"
    security = {"type": kind}
    if kind == "jwt":
        security["configuration"] = {rules.REQUIRE_EXP: True, **_plan_form_fields(form, kind)["configuration"]}
        for field, message in rules.problems({"security": security}).items():
            errors[_wizard_jwt_input(form) if field == "resolverParameter" else field] = message
    return {
        "id": str(uuid.uuid4()),
        "name": form.get("plan_name", "").strip() or WIZARD_PLAN_NAMES[kind],
        "security": security,
        "mode": "standard",
        "status": "published",
        "validation": "AUTO",
    }


def _wizard(form):
    """What the wizard's steps hold: the definition they make, its parts for the pages, and the
    problems of every step ({input name: message})."""
    errors = {}
    state = _wizard_state(form)
    seen = _wizard_seen(form, state)
    document, path = _wizard_general(form, errors)
    entrypoints = _wizard_entrypoints(form, state, seen["entrypoints"], errors)
    endpoint = _wizard_endpoint(form, state, seen["endpoint"], path, errors)
    plan = _wizard_plan(form, errors)
    kind = endpoint["spec"].type
    document.update(
        listeners=[
            {
                "type": "http",
                "paths": [{"path": path}],
                "entrypoints": [
                    {"type": s["spec"].type, "qos": s["qos"], "configuration": s["current"]}
                    for s in entrypoints
                    if s["chosen"]
                ],
            }
        ],
        endpointGroups=[
            {
                "name": "Default group",
                "type": kind,
                "loadBalancer": {"type": "round-robin"},
                "sharedConfiguration": endpoint["shared"],
                "endpoints": [
                    {
                        "name": "Default endpoint",
                        "type": kind,
                        "weight": 1,
                        "inheritConfiguration": True,
                        "configuration": endpoint["configuration"],
                    }
                ],
            }
        ],
        plans=[plan],
    )
    if not any(_wizard_step_of(name) in ("entrypoints", "endpoint") for name in errors):
        problems = capabilities.problems(document)
        if problems:
            errors["shared"] = "; ".join(problems) + "."
    return dict(
        document=document, state=state, seen=seen, entrypoints=entrypoints, endpoint=endpoint, plan=plan, errors=errors
    )


def _wizard_summary_rows(settings, values):
    """(label, text) of each setting that differs from its default; secrets only say "set"."""
    rows = []
    for f in settings:
        value = get_path(values, f.path)
        if value in (None, "", []) or value == f.default or not settings.active(f, values):
            continue
        if f.secret:
            text = "set"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif f.kind == "pairs":
            text = ", ".join(f"{p['name']}: {p['value']}" for p in value)
        else:
            text = ", ".join(value) if isinstance(value, list) else str(value)
        rows.append((f.label, text))
    return rows


def _render_wizard(form, wizard, step, wizard_id, errors=None, later=(), status=200):
    """The wizard at one step (the whole page, or for an HTMX refresh the step's swapped part);
    `errors` are the step's, `later` (step label, message) those of the steps after it."""
    index = WIZARD_STEP_NAMES.index(step)
    secret = _wizard_secret_inputs()
    carried = [
        (name, value)
        for name in form
        for value in form.getlist(name)
        if name not in WIZARD_INPUTS and name not in secret and _wizard_step_of(name) != step
    ]
    shown = {"entrypoints": set(wizard["state"][3]), "endpoint": {wizard["endpoint"]["spec"].type}}
    seen = {part: shown[part] if part == step else values for part, values in wizard["seen"].items()}
    context = dict(
        wizard,
        form=form,
        step=step,
        steps=WIZARD_STEPS,
        errors=errors or {},
        later=later,
        carried=carried,
        seen=seen,
        wizard_id=wizard_id,
        api_types=API_TYPES,
        plan_choices=WIZARD_PLANS,
        rules=rules,
        sections=wizard["entrypoints"],
        kept=[],
        jwt_input=_wizard_jwt_input(form),
        previous=WIZARD_STEP_NAMES[index - 1] if index else None,
        next=WIZARD_STEP_NAMES[index + 1] if index + 1 < len(WIZARD_STEPS) else None,
        refresh_url=url_for("ui.wizard_fields"),
        summary_rows=_wizard_summary_rows,
    )
    template = "api_new.html" if request.endpoint == "ui.create_api" else "_wizard_connectors.html"
    return render_template(template, **context), status


def _wizard_problems(form, wizard, errors, wizard_id):
    """400: the earliest step with problems, those of the steps after it named above it."""
    step = min((_wizard_step_of(name) for name in errors), key=WIZARD_STEP_NAMES.index)
    mine = {name: message for name, message in errors.items() if _wizard_step_of(name) == step}
    later = [
        (dict(WIZARD_STEPS)[_wizard_step_of(name)], message) for name, message in errors.items() if name not in mine
    ]
    return _render_wizard(form, wizard, step, wizard_id, mine, later, 400)


@bp.post("/apis/new/_fields")
@requires("owner")
def wizard_fields():
    form, wizard_id = _wizard_form(request.form)
    step = form.get("wizard_step") if form.get("wizard_step") in WIZARD_STEP_NAMES else "entrypoints"
    return _render_wizard(form, _wizard(form), step, wizard_id)


@bp.route("/apis/new", methods=["GET", "POST"])
@requires("owner")
def create_api():
    if request.method == "GET":
        return _render_wizard(MultiDict(), _wizard(MultiDict()), "general", kept_secrets.form_id())
    form, wizard_id = _wizard_form(request.form)
    wizard = _wizard(form)
    target = form.get("step")
    if target in WIZARD_STEP_NAMES:
        before = {
            name: message
            for name, message in wizard["errors"].items()
            if WIZARD_STEP_NAMES.index(_wizard_step_of(name)) < WIZARD_STEP_NAMES.index(target)
        }
        if before:
            return _wizard_problems(form, wizard, before, wizard_id)
        return _render_wizard(form, wizard, target, wizard_id)
    if wizard["errors"]:
        return _wizard_problems(form, wizard, wizard["errors"], wizard_id)
    try:
        api = _wizard_create(wizard["document"], deploy=form.get("go") == "deploy")
    except _WizardRefused as exc:
        return _wizard_problems(form, wizard, exc.errors, wizard_id)
    kept_secrets.forget(form)
    return redirect(url_for("ui.api_page", api_id=api.id))


class _WizardRefused(Exception):
    def __init__(self, errors):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _wizard_create(document, deploy):
    """Create the API (and deploy and start it); on refusal nothing is saved."""
    try:
        if deploy:
            parts = checks.blocking_parts(apis.prepare(document))
            if parts:
                raise _WizardRefused({"form": str(apis.DeployRefused(parts))})
        api, warnings = apis.create(document, owner=g.user)
    except apis.Conflict as exc:
        raise _WizardRefused({"path": str(exc)}) from None
    except forms.DefinitionError as exc:
        raise _WizardRefused(
            {FIELD_OF_ERROR.get(item["field"], "form"): item["message"] for item in exc.errors}
        ) from None
    if deploy:
        apis.start(api, g.user.username)
        flash(f"API {api.name} created, deployed and started: it serves now.")
    else:
        flash(f"API {api.name} created. It is not deployed yet: press Deploy when ready.")
    _flash_warnings(warnings)
    return api


def _flash_warnings(warnings):
    for warning in warnings:
        flash(warning, "warning")


# ----- the API page -----
@bp.get("/apis/<api_id>")
@requires("viewer")
def api_page(api_id):
    api = _api(api_id)
    d = apis.definition_of(api)
    base = clients.base_url(current_app.config, request.host)
    return render_template(
        "api.html",
        api=api,
        definition=d,
        blocking=checks.blocking_parts(d),
        warnings=checks.warnings(d),
        last=apis.last_deployment(api),
        healths={api.id: health.of_api(api)},
        connections=clients.connections(api, base, current_app.config.get("TCP_PORT")),
        registry=registry,
    )


# Every page with the API header shows the API's health; pages that did not probe it ask here.
bp.add_app_template_global(health.unprobed, "api_health")


@bp.get("/apis/_states")
@requires("viewer")
def api_states():
    """Polled by pages showing API states: each `shown.<api id>` is the digest of what the page shows;
    the answer replaces (out of band) only those that changed, and is empty (204) when none did."""
    shown = {key.removeprefix("shown."): value for key, value in request.args.items() if key.startswith("shown.")}
    found = [api for api in (apis.find(api_id) for api_id in shown) if api is not None]
    healths = health.of_apis(found)
    changed = [api for api in found if healths[api.id].digest != shown[api.id]]
    if not changed:
        return "", 204
    return render_template("_api_states.html", apis=changed, healths=healths)


@bp.post("/apis/<api_id>/deploy")
@requires("owner", api="api_id")
def deploy(api_id):
    api = _api(api_id)
    try:
        deployment = apis.deploy(api, g.user.username)
    except apis.NothingToDeploy as exc:
        flash(str(exc))
    except (apis.DeployRefused, apis.Conflict) as exc:
        flash(str(exc), "error")
    else:
        flash(
            f"Deployed revision {deployment.revision}. The gateway serves it within a second"
            + ("." if api.state == "started" else "; start the API to serve it.")
        )
    return redirect(local_path(request.form.get("next")) or url_for("ui.api_page", api_id=api.id))


@bp.post("/apis/<api_id>/start")
@requires("owner", api="api_id")
def start(api_id):
    api = _api(api_id)
    try:
        apis.start(api, g.user.username)
    except apis.DeployRefused as exc:
        flash(str(exc), "error")
    else:
        flash("API started.")
    return redirect(url_for("ui.api_page", api_id=api.id))


@bp.route("/apis/<api_id>/stop", methods=["GET", "POST"])
@requires("owner", api="api_id")
def stop(api_id):
    """GET asks first: stopping drops every connected client."""
    api = _api(api_id)
    back = url_for("ui.api_page", api_id=api.id)
    if api.state != "started":
        flash("The API is already stopped.")
        return redirect(back)
    if request.method == "POST":
        apis.stop(api)
        flash("API stopped: the gateway no longer serves it.")
        return redirect(back)
    return render_template(
        "confirm.html",
        title=f"Stop the API {api.name}?",
        text="The gateway stops serving it at once: connected clients (SSE streams, WebSockets, "
        "pending GETs) are dropped, and new calls get 404 until you start it again.",
        button="Yes, stop",
        action=url_for("ui.stop", api_id=api.id),
        back=back,
    )


@bp.route("/apis/<api_id>/delete", methods=["GET", "POST"])
@requires("owner", api="api_id")
def delete_api(api_id):
    api = _api(api_id)
    if api.state == "started":
        flash("Stop the API before deleting it.", "error")
        return redirect(url_for("ui.api_page", api_id=api.id))
    if request.method == "POST":
        apis.delete(api)
        flash(f"API {api.name} deleted.")
        return redirect(url_for("ui.apis"))
    return render_template(
        "confirm.html",
        title=f"Delete the API {api.name}?",
        text="Its definition and deployment history are removed.",
        action=url_for("ui.delete_api", api_id=api.id),
        back=url_for("ui.api_page", api_id=api.id),
    )


# The deploy banner of the API header says what Deploy would change, on every page that has it.
bp.add_app_template_global(apis.undeployed_changes, "undeployed_changes")


def _revision(api, number):
    found = apis.revision(api, number)
    if found is None:
        abort(404, f"API {api.name} has no revision {number}. The deployment history lists those it has.")
    return found


@bp.get("/apis/<api_id>/deployments")
@requires("viewer")
def deployments(api_id):
    api = _api(api_id)
    return render_template("deployments.html", api=api, deployments=api.deployments.all())


@bp.get("/apis/<api_id>/deployments/<int:revision>")
@requires("viewer")
def deployment(api_id, revision):
    api = _api(api_id)
    found = _revision(api, revision)
    return render_template(
        "deployment.html", api=api, deployment=found, definition=json.dumps(apis.masked(found.definition), indent=2)
    )


def _compared(api, name, default):
    """One side of a comparison from the query: a revision number or `draft`."""
    raw = request.args.get(name) or default
    which = raw if raw == "draft" else int(raw) if raw.isdigit() else None
    definition = apis.definition_at(api, which) if which is not None else None
    if definition is None:
        abort(
            404,
            f"Compare ({name}): API {api.name} has no revision {raw}. Choose a revision of the deployment "
            "history, or the draft.",
        )
    return which, definition


@bp.get("/apis/<api_id>/deployments/compare")
@requires("viewer")
def compare_deployments(api_id):
    api = _api(api_id)
    revisions = [d.revision for d in api.deployments.all()]
    if not revisions:
        return render_template("deployments_diff.html", api=api, revisions=[], lines=[])
    base, before = _compared(api, "from", str(revisions[0]))
    target, after = _compared(api, "to", "draft")

    def label(which):
        return "draft" if which == "draft" else f"revision {which}"

    return render_template(
        "deployments_diff.html",
        api=api,
        revisions=revisions,
        base=base,
        target=target,
        lines=apis.diff_lines(before, after, label(base), label(target)),
        summary=apis.change_summary(before, after),
        labels=(label(base), label(target)),
    )


def _not_restored(revision, reason, back):
    db.session.rollback()
    flash(f"Revision {revision} cannot be restored, nothing changed: {reason}", "error")
    return redirect(back)


@bp.route("/apis/<api_id>/deployments/<int:revision>/restore", methods=["GET", "POST"])
@requires("owner", api="api_id")
def restore_deployment(api_id, revision):
    api = _api(api_id)
    found = _revision(api, revision)
    back = url_for("ui.deployment", api_id=api.id, revision=revision)
    if request.method == "POST":
        try:
            _flash_warnings(apis.restore(api, found, g.user))
        except apis.Conflict as exc:
            return _not_restored(revision, str(exc), back)
        except forms.DefinitionError as exc:  # the rules changed since it was deployed
            return _not_restored(revision, "; ".join(e["message"] for e in exc.errors) or exc.message, back)
        flash(f"The draft now equals revision {revision}. Deploy to serve it.")
        return redirect(url_for("ui.deployments", api_id=api.id))
    serving = f"revision {api.deployed_revision}" if api.deployed_revision else "what it serves"
    return render_template(
        "confirm.html",
        title=f"Restore revision {revision}?",
        text=f"The draft becomes revision {revision}: changes made since are replaced. The gateway "
        f"keeps serving {serving} until you deploy.",
        button="Yes, restore",
        button_class="",
        action=url_for("ui.restore_deployment", api_id=api.id, revision=revision),
        back=back,
    )


# ----- General and Entrypoints tabs: each save is validated and stored as an import (apis.replace) -----
FIELD_OF_GENERAL = {"name": "name", "apiVersion": "version", "description": "description"}
EMPTY_ROW = {"path": "", "host": ""}


def _http_listener(d):
    return next((listener for listener in d["listeners"] if listener["type"] == "http"), None)


def _save_edit(api, d, field_of, conflict_field=lambda exc: "form"):
    """Store the edited definition, or return (errors by input name, status) with nothing saved."""
    try:
        _flash_warnings(apis.replace(api, d, g.user))
    except apis.Conflict as exc:
        db.session.rollback()
        return {conflict_field(exc): str(exc)}, 409
    except forms.DefinitionError as exc:
        db.session.rollback()
        errors = {}
        for item in exc.errors:
            errors.setdefault(field_of(item["field"]), item["message"])
        return errors, 400
    return {}, 200


def _path_rows(form, listener):
    """The context path rows of the General form: the posted ones, else the stored ones; with an
    empty row last, to add a path."""
    if form:
        count = sum(1 for key in form if key.startswith("path."))
        rows = [{"path": form.get(f"path.{i}", ""), "host": form.get(f"host.{i}", "")} for i in range(count)]
    else:
        rows = [{"path": p["path"], "host": p.get("host") or ""} for p in listener.get("paths", [])]
    return rows if rows[-1:] == [EMPTY_ROW] else rows + [dict(EMPTY_ROW)]


def _general_paths(rows, stored, errors):
    """The edited context paths, each keeping what else its stored row had; errors by input name."""
    paths, seen = [], set()
    for i, row in enumerate(rows):
        path, host = row["path"].strip(), row["host"].strip()
        if not path:
            if host:
                errors[f"path.{i}"] = f"Give the context path served on the host {host}, or clear the host."
            continue
        if not path.startswith("/") or any(c.isspace() for c in path):
            errors[f"path.{i}"] = "A context path starts with '/' and has no spaces, for example /orders."
        if host and (any(c.isspace() for c in host) or "/" in host):
            errors[f"host.{i}"] = "A host is a name such as api.example.com, without scheme or path."
        key = (host.lower() or None, route_key(path))
        if key in seen:
            errors[f"path.{i}"] = f"The context path {path} is listed twice" + (
                f" for the host {host}." if host else "."
            )
        seen.add(key)
        entry = dict(stored[i], path=path) if i < len(stored) else {"path": path}
        entry.pop("host", None)
        paths.append(dict(entry, host=host) if host else entry)
    if not paths and not errors:
        errors["path.0"] = "Keep at least one context path: clients reach the API on it."
    return paths


def _render_general(api, form, errors, status=200):
    listener = _http_listener(apis.definition_of(api))
    values = (
        {k: form.get(k, "") for k in ("name", "version", "description")}
        if form
        else dict(name=api.name, version=api.api_version, description=api.description)
    )
    return render_template(
        "api_general.html",
        api=api,
        values=values,
        errors=errors,
        listener=listener,
        rows=_path_rows(form, listener) if listener else [],
    ), status


@bp.get("/apis/<api_id>/general")
@requires("viewer")
def general(api_id):
    return _render_general(_api(api_id), None, {})


@bp.post("/apis/<api_id>/general")
@requires("owner", api="api_id")
def save_general(api_id):
    api = _api(api_id)
    form = request.form
    errors = {}
    d = apis.definition_of(api)
    d["name"] = form.get("name", "").strip()
    if not d["name"]:
        errors["name"] = "Give the API a name."
    d["apiVersion"] = form.get("version", "").strip() or "1.0"
    d["description"] = form.get("description", "").strip()
    listener = _http_listener(d)
    rows = _path_rows(form, listener) if listener else []
    if listener is not None:
        listener["paths"] = _general_paths(rows, listener.get("paths", []), errors)
    status = 400
    if not errors:

        def conflict_field(exc):
            taken = route_key(exc.value or "")
            return next(
                (
                    f"path.{i}"
                    for i, row in enumerate(rows)
                    if row["path"].strip() and route_key(row["path"].strip()) == taken
                ),
                "path.0",
            )

        def field_of(where):
            found = re.fullmatch(r"listeners\[\d+\]\.paths\[(\d+)\]\.path", where)
            return f"path.{found.group(1)}" if found else FIELD_OF_GENERAL.get(where, "form")

        errors, status = _save_edit(api, d, field_of, conflict_field)
    if errors:
        return _render_general(api, form, errors, status)
    flash("General settings saved. Redeploy to apply.")
    return redirect(url_for("ui.general", api_id=api.id))


def _entrypoint_specs(api):
    return [s for s in registry.entrypoints().values() if api.type in s.api_types and s.listener == "http"]


def _qos_offered(api, entrypoint_type):
    """The qos values the entrypoint and every endpoint group of the API support."""
    offered = registry.qos_choices(entrypoint_type, None)
    for group in api.endpoint_groups:
        offered = [q for q in offered if q in registry.qos_choices(entrypoint_type, group.type)]
    return offered


def _entrypoint_sections(api, listener, form, errors):
    """One section per entrypoint type this API may have: chosen or not, qos, settings values."""
    stored = {e["type"]: e for e in listener["entrypoints"]}
    sections = []
    for spec in _entrypoint_specs(api):
        before = stored.get(spec.type, {})
        offered = _qos_offered(api, spec.type)
        if form:
            chosen, qos = bool(form.get(f"entrypoint.{spec.type}")), form.get(f"qos.{spec.type}")
            values = from_form(spec.configuration, form, f"ep.{spec.type}.", before.get("configuration"))[0]
        else:
            chosen, qos, values = spec.type in stored, before.get("qos"), before.get("configuration") or {}
        sections.append(
            dict(
                spec=spec,
                chosen=chosen,
                current=values,
                qos_choices=offered,
                qos=qos or ("auto" if "auto" in offered else offered[0] if offered else ""),
            )
        )
    return dict(
        sections=sections,
        errors=errors,
        kept=[e for e in listener["entrypoints"] if e["type"] not in {s.type for s in _entrypoint_specs(api)}],
        refresh_url=url_for("ui.entrypoint_fields", api_id=api.id),
    )


# The CORS fieldset of the Entrypoints tab edits the HTTP listener's `cors` block (Gravitee's shape).
CORS_LINES = ("allowOrigin", "allowHeaders", "exposeHeaders")  # textareas, one entry a line
CORS_LABELS = {
    "cors.enabled": "CORS",
    "cors.allowOrigin": "Allowed origins",
    "cors.allowMethods": "Allowed methods",
    "cors.allowHeaders": "Allowed headers",
    "cors.exposeHeaders": "Exposed headers",
    "cors.allowCredentials": "Allow credentials",
    "cors.maxAge": "Max age",
}
NEW_CORS = {"allowOrigin": [], "allowMethods": [], "allowHeaders": [], "exposeHeaders": [], "maxAge": 86400}


def _edited_cors(stored, form):
    """The listener's cors block as the form leaves it: None when it had none and CORS stays off.
    Keys the form does not show (runPolicies) are kept; so is all of it when the form had no CORS
    fieldset, and its settings when they were not shown (CORS just ticked without a refresh)."""
    if not form.get("cors_fieldset") or (stored is None and not form.get("cors.enabled")):
        return stored
    block = dict(stored if isinstance(stored, dict) else NEW_CORS, enabled=bool(form.get("cors.enabled")))
    if not form.get("cors_fields"):
        return block
    for key in CORS_LINES:
        block[key] = [line.strip() for line in form.get(f"cors.{key}", "").splitlines() if line.strip()]
    block["allowMethods"] = [m.strip() for m in form.get("cors.allowMethods", "").split(",") if m.strip()]
    block["allowCredentials"] = bool(form.get("cors.allowCredentials"))
    age = form.get("cors.maxAge", "").strip()
    block.pop("maxAge", None)
    if age:  # anything but a whole number is kept as typed, for the checks to name
        block["maxAge"] = int(age) if re.fullmatch(r"-?\d+", age) else age
    return block


def _cors_view(block):
    """What the CORS fieldset shows of a cors block."""
    block = block if isinstance(block, dict) else {}

    def joined(key, separator):
        values = block.get(key) or []
        return separator.join(map(str, values)) if isinstance(values, list) else str(values)

    return dict(
        {key: joined(key, "\n") for key in CORS_LINES},
        enabled=block.get("enabled") is True,
        allowMethods=joined("allowMethods", ", "),
        allowCredentials=block.get("allowCredentials") is True,
        maxAge="" if block.get("maxAge") is None else str(block["maxAge"]),
    )


def _cors_field(where):
    """The CORS input an error of the definition's checks belongs beside; None for another field."""
    found = re.fullmatch(r"listeners\[\d+\]\.cors(?:\.(\w+))?(?:\[\d+\])?", where)
    if not found:
        return None
    name = f"cors.{found.group(1)}"
    return name if name in CORS_LABELS else "cors.enabled"


def _render_entrypoints(api, form, errors, status=200):
    listener = _http_listener(apis.definition_of(api))
    sections = _entrypoint_sections(api, listener, form, errors) if listener else {}
    cors = _cors_view(_edited_cors(listener.get("cors"), form or {})) if listener else {}
    return render_template(
        "api_entrypoints.html", api=api, listener=listener, cors=cors, cors_labels=CORS_LABELS, **sections
    ), status


@bp.get("/apis/<api_id>/entrypoints")
@requires("viewer")
def entrypoints(api_id):
    return _render_entrypoints(_api(api_id), None, {})


def _edited_listener(api, what):
    """The HTTP listener an HTMX refresh edits; 400 for an API reached by TCP alone."""
    listener = _http_listener(apis.definition_of(api))
    if listener is None:
        abort(400, f"This API has no HTTP listener, so it has no {what}.")
    return listener


@bp.post("/apis/<api_id>/entrypoints/_fields")
@requires("owner", api="api_id")
def entrypoint_fields(api_id):
    """The HTMX refresh of the entrypoint sections (one ticked, a conditional setting changed)."""
    api = _api(api_id)
    listener = _edited_listener(api, "entrypoints to edit here")
    return render_template("_entrypoints_fields.html", **_entrypoint_sections(api, listener, request.form, {}))


@bp.post("/apis/<api_id>/entrypoints/_cors")
@requires("owner", api="api_id")
def cors_fields(api_id):
    """The HTMX refresh of the CORS fieldset: its settings shown once Enabled is ticked."""
    api = _api(api_id)
    listener = _edited_listener(api, "CORS settings")
    cors = _cors_view(_edited_cors(listener.get("cors"), request.form))
    return render_template("_cors_fields.html", api=api, cors=cors, errors={})


@bp.post("/apis/<api_id>/entrypoints")
@requires("owner", api="api_id")
def save_entrypoints(api_id):
    api = _api(api_id)
    d = apis.definition_of(api)
    listener = _http_listener(d)
    if listener is None:
        abort(400, "This API has no HTTP listener (a tcp-proxy API): its entrypoint is fixed.")
    form = request.form
    errors = {}
    stored = {e["type"]: e for e in listener["entrypoints"]}
    edited = []
    for spec in _entrypoint_specs(api):
        if not form.get(f"entrypoint.{spec.type}"):
            continue
        before = stored.get(spec.type, {"type": spec.type})
        configuration, problems = from_form(spec.configuration, form, f"ep.{spec.type}.", before.get("configuration"))
        errors.update(problems)
        qos = form.get(f"qos.{spec.type}", "")
        offered = _qos_offered(api, spec.type)
        if qos not in offered:
            errors[f"qos.{spec.type}"] = f"{spec.label} offers here the quality of service " + ", ".join(offered) + "."
        edited.append(dict(before, qos=qos, configuration=configuration))
    kept = [e for e in listener["entrypoints"] if e["type"] not in {s.type for s in _entrypoint_specs(api)}]
    if not edited and not kept:
        errors["entrypoints"] = "Keep at least one entrypoint: clients reach the API through them."
    cors = _edited_cors(listener.get("cors"), form)
    if cors is not None:
        listener["cors"] = cors
    status = 400
    if not errors:
        order = [e["type"] for e in listener["entrypoints"]]  # the stored order; new ones last
        listener["entrypoints"] = sorted(
            kept + edited, key=lambda e: order.index(e["type"]) if e["type"] in order else len(order)
        )
        types = [e["type"] for e in listener["entrypoints"]]

        def field_of(where):
            found = re.fullmatch(r"listeners\[\d+\]\.entrypoints\[(\d+)\](?:\.(qos)|\.configuration\.(.+))?", where)
            if not found:
                return _cors_field(where) or "entrypoints"
            kind = types[int(found.group(1))]
            return (
                f"qos.{kind}"
                if found.group(2)
                else f"ep.{kind}.{found.group(3)}"
                if found.group(3)
                else f"entrypoint.{kind}"
            )

        errors, status = _save_edit(api, d, field_of)
    if errors:
        return _render_entrypoints(api, form, errors, status)
    on = "; CORS enabled" if (cors or {}).get("enabled") is True else ""
    flash("Entrypoints saved: " + ", ".join(e["type"] for e in listener["entrypoints"]) + on + ". Redeploy to apply.")
    return redirect(url_for("ui.entrypoints", api_id=api.id))


# ----- Endpoints -> Backend services -----
@bp.get("/apis/<api_id>/endpoints")
@requires("viewer")
def endpoints(api_id):
    api = _api(api_id)
    return render_template(
        "endpoints.html",
        api=api,
        group_types=_group_specs(api),
        registry=registry,
        group_summary=_group_summary,
        endpoint_target=_endpoint_target,
    )


def _group_summary(group):
    """One line for the group's shared configuration: the connector's own words, or the fields set."""
    spec = registry.endpoint(group.type)
    shared = group.shared_configuration or {}
    if spec is None:
        return ""
    if spec.summary is not None:
        return spec.summary(shared)
    return " · ".join(
        f"{f.label}: {form_value(spec.shared, f, shared)}"
        for f in spec.shared
        if not f.secret and get_path(shared, f.path) not in (None, "")
    )


def _endpoint_target(endpoint):
    spec = registry.endpoint(endpoint.type)
    return (
        spec.target(spec.configuration.mask_secrets(endpoint.configuration)) if spec is not None and spec.target else ""
    )


def _group(api, group_id):
    group = db.session.get(EndpointGroup, group_id)
    if group is None or group.api_id != api.id:
        abort(404, "That endpoint group does not exist (any more). Go back to the Backend services page.")
    return group


def _endpoint(api, endpoint_id):
    endpoint = db.session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.group.api_id != api.id:
        abort(404, "That endpoint does not exist (any more). Go back to the Backend services page.")
    return endpoint


def _endpoint_form(api, spec, endpoint, form):
    """Read and validate the endpoint form (also the first-endpoint part of the add-group form).
    Returns (fields, errors); nothing is stored here."""
    errors = {}
    name = form.get("name", "").strip()
    if not name:
        errors["name"] = "Give the endpoint a name."
    taken = {e.name for g_ in api.endpoint_groups for e in g_.endpoints if e is not endpoint}
    if name in taken:
        errors["name"] = f"Another endpoint of this API is already named {name}."
    weight = form.get("weight", "1").strip() or "1"
    if not weight.isdigit() or int(weight) < 1:
        errors["weight"] = "Weight must be a whole number of at least 1."
    inherit = form.get("inheritConfiguration") == "on"
    configuration, problems = from_form(spec.configuration, form, "cfg.", endpoint.configuration if endpoint else None)
    errors.update(problems)
    override = {}
    if spec.shared and not inherit:
        override, problems = from_form(
            spec.shared, form, "shared.", endpoint.shared_configuration_override if endpoint else None
        )
        errors.update(problems)
    fields = dict(
        name=name,
        weight=int(weight) if weight.isdigit() else 1,
        inherit_configuration=inherit,
        secondary=form.get("secondary") == "on",
        configuration=configuration,
        shared_configuration_override=override,
    )
    return fields, errors


def _spec_of(group):
    spec = registry.endpoint(group.type)
    if spec is None:
        abort(
            400,
            f"Endpoints of type {group.type} cannot be edited here yet: this gateway has no {group.type} "
            "connector. Edit the definition and import it again.",
        )
    return spec


def _endpoint_form_values(spec, endpoint, form):
    """What the endpoint fields show: the posted form, else the stored endpoint, else the defaults."""
    if form:
        return dict(
            values=from_form(spec.configuration, form, "cfg.", endpoint and endpoint.configuration)[0],
            shared_values=from_form(spec.shared, form, "shared.", endpoint and endpoint.shared_configuration_override)[
                0
            ],
            inherit=form.get("inheritConfiguration") == "on",
            head=dict(
                name=form.get("name", ""), weight=form.get("weight", "1"), secondary=form.get("secondary") == "on"
            ),
        )
    if endpoint is not None:
        return dict(
            values=endpoint.configuration or {},
            shared_values=endpoint.shared_configuration_override or {},
            inherit=bool(endpoint.inherit_configuration),
            head=dict(name=endpoint.name, weight=endpoint.weight or 1, secondary=bool(endpoint.secondary)),
        )
    return dict(values={}, shared_values={}, inherit=True, head=dict(name="", weight=1, secondary=False))


def _render_endpoint_form(api, group, endpoint, form, errors, status=200):
    spec = _spec_of(group)
    return render_template(
        "endpoint_form.html",
        api=api,
        group=group,
        endpoint=endpoint,
        spec=spec,
        errors=errors,
        refresh_url=url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id),
        form_id=kept_secrets.form_id(form),
        **_endpoint_form_values(spec, endpoint, form),
    ), status


def _endpoint_secrets(spec):
    return kept_secrets.secret_names((spec.configuration, "cfg."), (spec.shared, "shared."))


def _save_endpoint(api, group, endpoint):
    """Validate the posted endpoint form and store it (a new endpoint when `endpoint` is None);
    on error, render the form again (400) with the typed secrets kept on the server."""
    spec = _spec_of(group)
    form = kept_secrets.with_kept(request.form, _endpoint_secrets(spec))
    fields, errors = _endpoint_form(api, spec, endpoint, form)
    if errors:
        kept_secrets.keep(form, _endpoint_secrets(spec))
        return _render_endpoint_form(api, group, endpoint, form, errors, 400)
    if endpoint is None:
        position = max((e.position for e in group.endpoints), default=-1) + 1  # after deletes too
        group.endpoints.append(Endpoint(type=group.type, position=position, extra={}, **fields))
    else:
        for key, value in fields.items():
            setattr(endpoint, key, value)
    db.session.commit()
    kept_secrets.forget(form)
    flash(f"Endpoint {fields['name']} {'saved' if endpoint else 'added'}. Redeploy to apply.")
    return redirect(url_for("ui.endpoints", api_id=api.id))


def _render_endpoint_fields(spec, form, refresh_url):
    """The HTMX refresh of the connector part of an endpoint form (inherit toggled, type changed...)."""
    values = _endpoint_form_values(spec, None, form)
    del values["head"]
    return render_template("_endpoint_fields.html", spec=spec, errors={}, refresh_url=refresh_url, **values)


@bp.post("/apis/<api_id>/groups/<int:group_id>/_fields")
@requires("owner", api="api_id")
def endpoint_fields(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    return _render_endpoint_fields(
        _spec_of(group), request.form, url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id)
    )


@bp.route("/apis/<api_id>/groups/<int:group_id>/endpoints/new", methods=["GET", "POST"])
@requires("owner", api="api_id")
def new_endpoint(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    if request.method == "POST":
        return _save_endpoint(api, group, None)
    return _render_endpoint_form(api, group, None, None, {})


@bp.route("/apis/<api_id>/endpoints/<int:endpoint_id>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_endpoint(api_id, endpoint_id):
    api = _api(api_id)
    endpoint = _endpoint(api, endpoint_id)
    if request.method == "POST":
        return _save_endpoint(api, endpoint.group, endpoint)
    return _render_endpoint_form(api, endpoint.group, endpoint, None, {})


@bp.get("/apis/<api_id>/endpoints/<int:endpoint_id>/_status")
@requires("viewer")
def endpoint_status(api_id, endpoint_id):
    """Loaded by the Backend services page after it is shown: can the backend be reached now?"""
    endpoint = _endpoint(_api(api_id), endpoint_id)
    spec = registry.endpoint(endpoint.type)
    if spec is None or spec.probe is None:
        return ""
    problem = spec.probe(endpoint.configuration or {})
    return render_template("_endpoint_status.html", problem=problem)


@bp.route("/apis/<api_id>/endpoints/<int:endpoint_id>/delete", methods=["GET", "POST"])
@requires("owner", api="api_id")
def delete_endpoint(api_id, endpoint_id):
    api = _api(api_id)
    endpoint = _endpoint(api, endpoint_id)
    back = url_for("ui.endpoints", api_id=api.id)
    if len(endpoint.group.endpoints) == 1:
        flash(
            f"Endpoint {endpoint.name} is the last one of group {endpoint.group.name}, and a group needs at least "
            "one endpoint. Add another endpoint first, or change this one.",
            "error",
        )
        return redirect(back)
    if request.method == "POST":
        db.session.delete(endpoint)
        db.session.commit()
        flash(f"Endpoint {endpoint.name} deleted. Redeploy to apply.")
        return redirect(back)
    return render_template(
        "confirm.html",
        title=f"Delete the endpoint {endpoint.name}?",
        text="The gateway keeps using it until you redeploy.",
        action=url_for("ui.delete_endpoint", api_id=api.id, endpoint_id=endpoint.id),
        back=back,
    )


# ----- endpoint groups -----
def _group_specs(api):
    """The endpoint types a new group of this API may have: registered connectors for its API type
    and its kind of listener (tcp-proxy endpoints for a tcp listener, only there)."""
    tcp = any(listener.type == "tcp" for listener in api.listeners)
    return [
        spec for spec in registry.endpoints().values() if api.type in spec.api_types and (spec.listener == "tcp") == tcp
    ]


def _chosen_group_spec(api, form):
    specs = _group_specs(api)
    chosen = (form or {}).get("group_type")
    return next((spec for spec in specs if spec.type == chosen), specs[0] if specs else None)


def _render_group_form(api, form, errors, status=200):
    spec = _chosen_group_spec(api, form)
    if spec is None:
        abort(400, f"This gateway has no endpoint connector for {api.type} APIs, so no group can be added.")
    group_head = dict(
        name=(form or {}).get("group_name", ""),
        type=spec.type,
        load_balancer=(form or {}).get("load_balancer") or LOAD_BALANCERS[0],
    )
    return render_template(
        "group_form.html",
        api=api,
        spec=spec,
        specs=_group_specs(api),
        load_balancers=LOAD_BALANCERS,
        group_head=group_head,
        errors=errors,
        form_id=kept_secrets.form_id(form),
        refresh_url=url_for("ui.new_group_fields", api_id=api.id),
        **_endpoint_form_values(spec, None, form),
    ), status


@bp.post("/apis/<api_id>/groups/new/_fields")
@requires("owner", api="api_id")
def new_group_fields(api_id):
    api = _api(api_id)
    spec = _chosen_group_spec(api, request.form)
    if spec is None:
        abort(400, f"This gateway has no endpoint connector for {api.type} APIs.")
    return _render_endpoint_fields(spec, request.form, url_for("ui.new_group_fields", api_id=api.id))


@bp.route("/apis/<api_id>/groups/new", methods=["GET", "POST"])
@requires("owner", api="api_id")
def new_group(api_id):
    """A group needs an endpoint, so the group is created together with its first endpoint."""
    api = _api(api_id)
    if request.method == "POST":
        spec = _chosen_group_spec(api, request.form)
        names = _endpoint_secrets(spec) if spec is not None else []
        form = kept_secrets.with_kept(request.form, names)
        errors = _group_head_errors(api, None, form)
        if spec is None or spec.type != form.get("group_type"):
            errors["group_type"] = "Choose an endpoint type among those offered for " + api.type + " APIs."
        name, load_balancer = form.get("group_name", "").strip(), form.get("load_balancer", "")
        fields = {}
        if spec is not None:
            fields, problems = _endpoint_form(api, spec, None, form)
            errors.update(problems)
        if errors:
            kept_secrets.keep(form, names)
            return _render_group_form(api, form, errors, 400)
        position = max((g_.position for g_ in api.endpoint_groups), default=-1) + 1
        group = EndpointGroup(
            name=name,
            type=spec.type,
            load_balancer=load_balancer,
            position=position,
            extra={},
            endpoints=[Endpoint(type=spec.type, position=0, extra={}, **fields)],
        )
        api.endpoint_groups.append(group)
        db.session.commit()
        kept_secrets.forget(form)
        flash(f"Endpoint group {name} added with its endpoint {fields['name']}. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_group_form(api, None, {})


@bp.route("/apis/<api_id>/groups/<int:group_id>/delete", methods=["GET", "POST"])
@requires("owner", api="api_id")
def delete_group(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    back = url_for("ui.endpoints", api_id=api.id)
    if len(api.endpoint_groups) == 1:
        flash(
            f"Endpoint group {group.name} is the last one of this API, and an API needs at least one endpoint "
            "group. Add another group first, or change this one's endpoints.",
            "error",
        )
        return redirect(back)
    if request.method == "POST":
        api.endpoint_groups.remove(group)
        db.session.commit()
        flash(f"Endpoint group {group.name} and its endpoints deleted. Redeploy to apply.")
        return redirect(back)
    return render_template(
        "confirm.html",
        title=f"Delete the endpoint group {group.name}?",
        text=f"Its {len(group.endpoints)} endpoint(s) are deleted with it. "
        "The gateway keeps using them until you redeploy.",
        action=url_for("ui.delete_group", api_id=api.id, group_id=group.id),
        back=back,
    )


def _group_head_errors(api, group, form):
    """Errors of the group's own fields (name, load balancer), shared by the add and edit forms."""
    errors = {}
    name = form.get("group_name", "").strip()
    if not name:
        errors["group_name"] = "Give the group a name."
    elif name in {g_.name for g_ in api.endpoint_groups if g_ is not group}:
        errors["group_name"] = f"Another endpoint group of this API is already named {name}."
    if form.get("load_balancer", "") not in LOAD_BALANCERS:
        errors["load_balancer"] = "Choose a load balancer: " + ", ".join(LOAD_BALANCERS) + "."
    return errors


def _render_group_edit(api, group, form, errors, status=200):
    spec = _spec_of(group)
    if form:
        head = dict(name=form.get("group_name", ""), load_balancer=form.get("load_balancer"))
        values = from_form(spec.shared, form, "shared.", group.shared_configuration)[0]
    else:
        head = dict(name=group.name, load_balancer=group.load_balancer or LOAD_BALANCERS[0])
        values = group.shared_configuration or {}
    return render_template(
        "group_edit.html",
        api=api,
        group=group,
        spec=spec,
        head=head,
        values=values,
        errors=errors,
        load_balancers=LOAD_BALANCERS,
        form_id=kept_secrets.form_id(form),
        refresh_url=url_for("ui.group_fields", api_id=api.id, group_id=group.id),
    ), status


@bp.post("/apis/<api_id>/groups/<int:group_id>/_shared")
@requires("owner", api="api_id")
def group_fields(api_id, group_id):
    """The HTMX refresh of the group page's shared configuration (a controlling field changed)."""
    api = _api(api_id)
    group = _group(api, group_id)
    spec = _spec_of(group)
    return render_template(
        "_group_shared.html",
        spec=spec,
        errors={},
        values=from_form(spec.shared, request.form, "shared.", group.shared_configuration)[0],
        refresh_url=url_for("ui.group_fields", api_id=api.id, group_id=group.id),
    )


@bp.route("/apis/<api_id>/groups/<int:group_id>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_group(api_id, group_id):
    """The group's name, load balancer and shared configuration, which its endpoints inherit."""
    api = _api(api_id)
    group = _group(api, group_id)
    spec = _spec_of(group)
    if request.method == "GET":
        return _render_group_edit(api, group, None, {})
    names = kept_secrets.secret_names((spec.shared, "shared."))
    form = kept_secrets.with_kept(request.form, names)
    errors = _group_head_errors(api, group, form)
    shared, problems = from_form(spec.shared, form, "shared.", group.shared_configuration)
    errors.update(problems)
    if errors:
        kept_secrets.keep(form, names)
        return _render_group_edit(api, group, form, errors, 400)
    group.name, group.load_balancer = form["group_name"].strip(), form["load_balancer"]
    group.shared_configuration = dict(shared)
    db.session.commit()
    kept_secrets.forget(form)
    flash(f"Endpoint group {group.name} saved. Redeploy to apply.")
    return redirect(url_for("ui.endpoints", api_id=api.id))


# ----- expressions, checked as they are typed -----
@bp.post("/expression-check")
@requires("owner")  # for those who edit expressions; it reads nothing stored
def expression_check():
    """The form field named by `field` read as the expression language: what is wrong and where,
    or that it reads (an HTMX partial beside the field)."""
    text = request.form.get(request.form.get("field", ""), "")
    try:
        compile_template(text)
    except ExpressionError as exc:
        return render_template("_expression_check.html", error=str(exc))
    return render_template("_expression_check.html", error=None, empty=not text.strip())


# ----- failover (the API's `failover` block) -----
def _render_failover(api, values, errors, status=200, template="failover.html"):
    return render_template(
        template,
        api=api,
        settings=failover.SETTINGS,
        values=values,
        errors=errors,
        refresh_url=url_for("ui.failover_fields", api_id=api.id),
    ), status


@bp.post("/apis/<api_id>/failover/_fields")
@requires("owner", api="api_id")
def failover_fields(api_id):
    values, _ = from_form(failover.SETTINGS, request.form, "failover.")
    return _render_failover(_api(api_id), values, {}, template="_failover_fields.html")


@bp.route("/apis/<api_id>/failover", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_failover(api_id):
    api = _api(api_id)
    if any(listener.type == "tcp" for listener in api.listeners):
        abort(400, "TCP proxy APIs have no failover: their endpoints' reconnect attempts do that job.")
    if request.method == "POST":
        values, errors = from_form(failover.SETTINGS, request.form, "failover.")
        if errors:
            return _render_failover(api, values, errors, 400)
        api.extra = {**api.extra, "failover": values}
        db.session.commit()
        flash("Failover saved. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_failover(api, api.extra.get("failover") or {}, {})
