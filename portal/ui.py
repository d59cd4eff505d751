"""Browser UI: server-rendered pages and the small HTMX partials they swap in."""
import json

from flask import (Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for)
from werkzeug.exceptions import HTTPException

from gateway_runtime import definition as v4
from gateway_runtime import registry

from . import apis
from .auth import local_path, login_required
from .models import Endpoint, EndpointGroup, db

bp = Blueprint("ui", __name__)
API_TYPES = (("message", "Message API: clients reach a message backend over HTTP, SSE or WebSocket"),
             ("proxy", "Proxy API: requests are forwarded to HTTP backends"))
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
        app.logger.exception("unexpected error on %s", request.path)
        db.session.rollback()
        if request.path.startswith("/management/"):
            return jsonify({"message": "Unexpected error; the server log has the details.", "errors": []}), 500
        return render_template("error.html", code=500, message="Something went wrong on our side. Nothing was "
                               "saved; the server log has the details."), 500


def _api(api_id):
    api = apis.find(api_id)
    if api is None:
        abort(404, f"There is no API with id {api_id}. Go back to the API list to pick one.")
    return api


@bp.get("/")
@login_required
def index():
    return redirect(url_for("ui.apis"))


@bp.get("/apis", endpoint="apis")
@login_required
def apis_list():
    items = [(api, apis.has_undeployed_changes(api)) for api in apis.all_apis()]
    return render_template("apis.html", items=items)


# ----- create-API wizard -----
def _wizard_state(form):
    api_type = form.get("type", "message")
    entrypoint_specs = [s for s in registry.entrypoints().values() if api_type in s.api_types]
    endpoint_specs = [s for s in registry.endpoints().values() if api_type in s.api_types]
    chosen = [s.type for s in entrypoint_specs if form.get(f"entrypoint.{s.type}")]
    endpoint_type = form.get("endpoint_type") or (endpoint_specs[0].type if endpoint_specs else "")
    return api_type, entrypoint_specs, endpoint_specs, chosen, endpoint_type


def _wizard_sections(form, errors):
    api_type, entrypoint_specs, endpoint_specs, chosen, endpoint_type = _wizard_state(form)
    sections = []
    for spec in entrypoint_specs:
        values, _ = spec.configuration.from_form(form, f"ep.{spec.type}.")
        sections.append(dict(spec=spec, chosen=spec.type in chosen, values=values,
                             qos_choices=registry.qos_choices(spec.type, endpoint_type),
                             qos=form.get(f"qos.{spec.type}") or "auto"))
    endpoint_spec = registry.endpoint(endpoint_type)
    endpoint_values = endpoint_spec.configuration.from_form(form, "cfg.")[0] if endpoint_spec and form else {}
    return dict(api_type=api_type, entrypoint_sections=sections, endpoint_specs=endpoint_specs,
                endpoint_spec=endpoint_spec, endpoint_values=endpoint_values, errors=errors,
                refresh_url=url_for("ui.wizard_fields"))


@bp.post("/apis/new/_fields")
@login_required
def wizard_fields():
    return render_template("_wizard_connectors.html", **_wizard_sections(request.form, {}))


@bp.route("/apis/new", methods=["GET", "POST"])
@login_required
def create_api():
    form = request.form
    errors = {}
    if request.method == "POST":
        api_type, entrypoint_specs, _, chosen, endpoint_type = _wizard_state(form)
        name = form.get("name", "").strip()
        path = form.get("path", "").strip()
        if not name:
            errors["name"] = "Give the API a name."
        if not path.startswith("/"):
            errors["path"] = "The context path must start with '/', for example /orders."
        if not chosen:
            errors["entrypoints"] = "Choose at least one entrypoint." if entrypoint_specs else \
                "No entrypoint for this API type is available yet."
        endpoint_spec = registry.endpoint(endpoint_type)
        if endpoint_spec is None:
            errors["endpoint_type"] = "Choose an endpoint type."
        entrypoints = []
        for type_name in chosen:
            spec = registry.entrypoint(type_name)
            values, problems = spec.configuration.from_form(form, f"ep.{type_name}.")
            errors.update(problems)
            qos = form.get(f"qos.{type_name}") or "auto"
            offered = registry.qos_choices(type_name, endpoint_type)
            if qos not in offered:
                errors[f"qos.{type_name}"] = f"{spec.label} offers the quality of service " + ", ".join(offered) + "."
            entrypoints.append({"type": type_name, "qos": qos, "configuration": values})
        if endpoint_spec is not None:
            configuration, problems = endpoint_spec.configuration.from_form(form, "cfg.")
            errors.update(problems)
        if not errors:
            document = {
                "name": name, "apiVersion": form.get("version", "").strip() or "1.0",
                "description": form.get("description", "").strip(), "definitionVersion": "4.0.0",
                "type": api_type,
                "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": entrypoints}],
                "endpointGroups": [{"name": "Default group", "type": endpoint_type,
                                    "loadBalancer": {"type": "round-robin"},
                                    "endpoints": [{"name": "Default endpoint", "type": endpoint_type, "weight": 1,
                                                   "inheritConfiguration": True, "configuration": configuration}]}],
            }
            try:
                api = apis.create(document)
            except apis.Conflict as exc:
                errors["path"] = str(exc)
            except v4.DefinitionError as exc:
                for item in exc.errors:
                    errors[FIELD_OF_ERROR.get(item["field"], "form")] = item["message"]
            else:
                flash(f"API {api.name} created. It is not deployed yet: press Deploy when ready.")
                return redirect(url_for("ui.api_page", api_id=api.id))
    return render_template("api_new.html", form=form, api_types=API_TYPES, **_wizard_sections(form, errors)), \
        (400 if errors else 200)


# ----- the API page -----
@bp.get("/apis/<api_id>")
@login_required
def api_page(api_id):
    api = _api(api_id)
    d = apis.definition_of(api)
    return render_template("api.html", api=api, definition=d, changes=apis.has_undeployed_changes(api),
                           blocking=v4.blocking_parts(d), warnings=v4.warnings(d), last=apis.last_deployment(api))


@bp.post("/apis/<api_id>/deploy")
@login_required
def deploy(api_id):
    api = _api(api_id)
    try:
        deployment = apis.deploy(api, g.user.username)
    except apis.DeployRefused as exc:
        flash(str(exc), "error")
    else:
        flash(f"Deployed revision {deployment.revision}. The gateway serves it within a second"
              + ("." if api.state == "started" else "; start the API to serve it."))
    return redirect(local_path(request.form.get("next")) or url_for("ui.api_page", api_id=api.id))


@bp.post("/apis/<api_id>/start")
@login_required
def start(api_id):
    api = _api(api_id)
    try:
        apis.start(api, g.user.username)
    except apis.DeployRefused as exc:
        flash(str(exc), "error")
    else:
        flash("API started.")
    return redirect(url_for("ui.api_page", api_id=api.id))


@bp.post("/apis/<api_id>/stop")
@login_required
def stop(api_id):
    apis.stop(_api(api_id))
    flash("API stopped: the gateway no longer serves it.")
    return redirect(url_for("ui.api_page", api_id=api_id))


@bp.route("/apis/<api_id>/delete", methods=["GET", "POST"])
@login_required
def delete_api(api_id):
    api = _api(api_id)
    if api.state == "started":
        flash("Stop the API before deleting it.", "error")
        return redirect(url_for("ui.api_page", api_id=api.id))
    if request.method == "POST":
        apis.delete(api)
        flash(f"API {api.name} deleted.")
        return redirect(url_for("ui.apis"))
    return render_template("confirm.html", title=f"Delete the API {api.name}?",
                           text="Its definition and deployment history are removed.",
                           action=url_for("ui.delete_api", api_id=api.id),
                           back=url_for("ui.api_page", api_id=api.id))


@bp.get("/apis/<api_id>/deployments")
@login_required
def deployments(api_id):
    api = _api(api_id)
    return render_template("deployments.html", api=api, deployments=api.deployments.all())


@bp.get("/apis/<api_id>/deployments/<int:revision>")
@login_required
def deployment(api_id, revision):
    api = _api(api_id)
    found = api.deployments.filter_by(revision=revision).first()
    if found is None:
        abort(404, f"API {api.name} has no revision {revision}. The deployment history lists those it has.")
    return render_template("deployment.html", api=api, deployment=found,
                           definition=json.dumps(apis.masked(found.definition), indent=2))


# ----- Endpoints -> Backend services -----
@bp.get("/apis/<api_id>/endpoints")
@login_required
def endpoints(api_id):
    api = _api(api_id)
    return render_template("endpoints.html", api=api, changes=apis.has_undeployed_changes(api),
                           registry=registry)


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


def _endpoint_form(api, group, endpoint, form):
    """Read and validate the endpoint form. Returns (fields, errors); nothing is stored here."""
    spec = _spec_of(group)
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
    configuration, problems = spec.configuration.from_form(form, "cfg.", endpoint.configuration if endpoint else None)
    errors.update(problems)
    override = {}
    if spec.shared and not inherit:
        override, problems = spec.shared.from_form(
            form, "shared.", endpoint.shared_configuration_override if endpoint else None)
        errors.update(problems)
    fields = dict(name=name, weight=int(weight) if weight.isdigit() else 1, inherit_configuration=inherit,
                  secondary=form.get("secondary") == "on", configuration=configuration,
                  shared_configuration_override=override)
    return fields, errors


def _spec_of(group):
    spec = registry.endpoint(group.type)
    if spec is None:
        abort(400, f"Endpoints of type {group.type} cannot be edited here yet: this gateway has no {group.type} "
                   "connector. Edit the definition and import it again.")
    return spec


def _render_endpoint_form(api, group, endpoint, form, errors, status=200):
    spec = _spec_of(group)
    if form:
        values = spec.configuration.from_form(form, "cfg.")[0]
        shared_values = spec.shared.from_form(form, "shared.")[0]
        inherit = form.get("inheritConfiguration") == "on"
        head = dict(name=form.get("name", ""), weight=form.get("weight", "1"), secondary=form.get("secondary") == "on")
    elif endpoint is not None:
        values, shared_values = endpoint.configuration or {}, endpoint.shared_configuration_override or {}
        inherit = bool(endpoint.inherit_configuration)
        head = dict(name=endpoint.name, weight=endpoint.weight or 1, secondary=bool(endpoint.secondary))
    else:
        values, shared_values, inherit = {}, {}, True
        head = dict(name="", weight=1, secondary=False)
    return render_template("endpoint_form.html", api=api, group=group, endpoint=endpoint, spec=spec, values=values,
                           shared_values=shared_values, inherit=inherit, head=head, errors=errors,
                           refresh_url=url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id)), status


@bp.post("/apis/<api_id>/groups/<int:group_id>/_fields")
@login_required
def endpoint_fields(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    spec = _spec_of(group)
    form = request.form
    return render_template("_endpoint_fields.html", spec=spec, values=spec.configuration.from_form(form, "cfg.")[0],
                           shared_values=spec.shared.from_form(form, "shared.")[0],
                           inherit=form.get("inheritConfiguration") == "on", errors={},
                           refresh_url=url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id))


@bp.route("/apis/<api_id>/groups/<int:group_id>/endpoints/new", methods=["GET", "POST"])
@login_required
def new_endpoint(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    if request.method == "POST":
        fields, errors = _endpoint_form(api, group, None, request.form)
        if errors:
            return _render_endpoint_form(api, group, None, request.form, errors, 400)
        group.endpoints.append(Endpoint(type=group.type, position=len(group.endpoints), extra={}, **fields))
        db.session.commit()
        flash(f"Endpoint {fields['name']} added. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_endpoint_form(api, group, None, None, {})


@bp.route("/apis/<api_id>/endpoints/<int:endpoint_id>/edit", methods=["GET", "POST"])
@login_required
def edit_endpoint(api_id, endpoint_id):
    api = _api(api_id)
    endpoint = _endpoint(api, endpoint_id)
    if request.method == "POST":
        fields, errors = _endpoint_form(api, endpoint.group, endpoint, request.form)
        if errors:
            return _render_endpoint_form(api, endpoint.group, endpoint, request.form, errors, 400)
        for key, value in fields.items():
            setattr(endpoint, key, value)
        db.session.commit()
        flash(f"Endpoint {endpoint.name} saved. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_endpoint_form(api, endpoint.group, endpoint, None, {})


@bp.get("/apis/<api_id>/endpoints/<int:endpoint_id>/_status")
@login_required
def endpoint_status(api_id, endpoint_id):
    """Loaded by the Backend services page after it is shown: can the backend be reached now?"""
    endpoint = _endpoint(_api(api_id), endpoint_id)
    spec = registry.endpoint(endpoint.type)
    if spec is None or spec.probe is None:
        return ""
    problem = spec.probe(endpoint.configuration or {})
    return render_template("_endpoint_status.html", problem=problem)


@bp.route("/apis/<api_id>/endpoints/<int:endpoint_id>/delete", methods=["GET", "POST"])
@login_required
def delete_endpoint(api_id, endpoint_id):
    api = _api(api_id)
    endpoint = _endpoint(api, endpoint_id)
    back = url_for("ui.endpoints", api_id=api.id)
    if len(endpoint.group.endpoints) == 1:
        flash(f"Endpoint {endpoint.name} is the last one of group {endpoint.group.name}, and a group needs at least "
              "one endpoint. Add another endpoint first, or change this one.", "error")
        return redirect(back)
    if request.method == "POST":
        db.session.delete(endpoint)
        db.session.commit()
        flash(f"Endpoint {endpoint.name} deleted. Redeploy to apply.")
        return redirect(back)
    return render_template("confirm.html", title=f"Delete the endpoint {endpoint.name}?",
                           text="The gateway keeps using it until you redeploy.",
                           action=url_for("ui.delete_endpoint", api_id=api.id, endpoint_id=endpoint.id), back=back)
