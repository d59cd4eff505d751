"""Browser UI: server-rendered pages and the small HTMX partials they swap in."""
import json

from flask import (Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for)
from werkzeug.exceptions import HTTPException

from gateway_runtime import definition as v4
from gateway_runtime import failover, registry
from gateway_runtime.definition.checks import LOAD_BALANCERS

from . import apis
from .auth import local_path, requires
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
@requires("viewer")
def index():
    return redirect(url_for("ui.apis"))


@bp.get("/apis", endpoint="apis")
@requires("viewer")
def apis_list():
    items = [(api, apis.has_undeployed_changes(api)) for api in apis.all_apis()]
    return render_template("apis.html", items=items)


# ----- create-API wizard -----
def _wizard_state(form):
    api_type = form.get("type", "message")
    # The wizard makes an HTTP listener (a context path); tcp-proxy APIs are imported for now.
    entrypoint_specs = [s for s in registry.entrypoints().values() if api_type in s.api_types and s.listener == "http"]
    endpoint_specs = [s for s in registry.endpoints().values() if api_type in s.api_types and s.listener != "tcp"]
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
@requires("owner")
def wizard_fields():
    return render_template("_wizard_connectors.html", **_wizard_sections(request.form, {}))


@bp.route("/apis/new", methods=["GET", "POST"])
@requires("owner")
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
                api = apis.create(document, owner=g.user)
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
@requires("viewer")
def api_page(api_id):
    api = _api(api_id)
    d = apis.definition_of(api)
    return render_template("api.html", api=api, definition=d, changes=apis.has_undeployed_changes(api),
                           blocking=v4.blocking_parts(d), warnings=v4.warnings(d), last=apis.last_deployment(api))


@bp.post("/apis/<api_id>/deploy")
@requires("owner", api="api_id")
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


@bp.post("/apis/<api_id>/stop")
@requires("owner", api="api_id")
def stop(api_id):
    apis.stop(_api(api_id))
    flash("API stopped: the gateway no longer serves it.")
    return redirect(url_for("ui.api_page", api_id=api_id))


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
    return render_template("confirm.html", title=f"Delete the API {api.name}?",
                           text="Its definition and deployment history are removed.",
                           action=url_for("ui.delete_api", api_id=api.id),
                           back=url_for("ui.api_page", api_id=api.id))


@bp.get("/apis/<api_id>/deployments")
@requires("viewer")
def deployments(api_id):
    api = _api(api_id)
    return render_template("deployments.html", api=api, deployments=api.deployments.all())


@bp.get("/apis/<api_id>/deployments/<int:revision>")
@requires("viewer")
def deployment(api_id, revision):
    api = _api(api_id)
    found = api.deployments.filter_by(revision=revision).first()
    if found is None:
        abort(404, f"API {api.name} has no revision {revision}. The deployment history lists those it has.")
    return render_template("deployment.html", api=api, deployment=found,
                           definition=json.dumps(apis.masked(found.definition), indent=2))


# ----- Endpoints -> Backend services -----
@bp.get("/apis/<api_id>/endpoints")
@requires("viewer")
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


def _endpoint_form_values(spec, endpoint, form):
    """What the endpoint fields show: the posted form, else the stored endpoint, else the defaults."""
    if form:
        return dict(values=spec.configuration.from_form(form, "cfg.")[0],
                    shared_values=spec.shared.from_form(form, "shared.")[0],
                    inherit=form.get("inheritConfiguration") == "on",
                    head=dict(name=form.get("name", ""), weight=form.get("weight", "1"),
                              secondary=form.get("secondary") == "on"))
    if endpoint is not None:
        return dict(values=endpoint.configuration or {}, shared_values=endpoint.shared_configuration_override or {},
                    inherit=bool(endpoint.inherit_configuration),
                    head=dict(name=endpoint.name, weight=endpoint.weight or 1, secondary=bool(endpoint.secondary)))
    return dict(values={}, shared_values={}, inherit=True, head=dict(name="", weight=1, secondary=False))


def _render_endpoint_form(api, group, endpoint, form, errors, status=200):
    spec = _spec_of(group)
    return render_template("endpoint_form.html", api=api, group=group, endpoint=endpoint, spec=spec, errors=errors,
                           refresh_url=url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id),
                           **_endpoint_form_values(spec, endpoint, form)), status


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
    return _render_endpoint_fields(_spec_of(group), request.form,
                                   url_for("ui.endpoint_fields", api_id=api.id, group_id=group.id))


@bp.route("/apis/<api_id>/groups/<int:group_id>/endpoints/new", methods=["GET", "POST"])
@requires("owner", api="api_id")
def new_endpoint(api_id, group_id):
    api = _api(api_id)
    group = _group(api, group_id)
    if request.method == "POST":
        fields, errors = _endpoint_form(api, _spec_of(group), None, request.form)
        if errors:
            return _render_endpoint_form(api, group, None, request.form, errors, 400)
        position = max((e.position for e in group.endpoints), default=-1) + 1  # after deletes too
        group.endpoints.append(Endpoint(type=group.type, position=position, extra={}, **fields))
        db.session.commit()
        flash(f"Endpoint {fields['name']} added. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_endpoint_form(api, group, None, None, {})


@bp.route("/apis/<api_id>/endpoints/<int:endpoint_id>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_endpoint(api_id, endpoint_id):
    api = _api(api_id)
    endpoint = _endpoint(api, endpoint_id)
    if request.method == "POST":
        fields, errors = _endpoint_form(api, _spec_of(endpoint.group), endpoint, request.form)
        if errors:
            return _render_endpoint_form(api, endpoint.group, endpoint, request.form, errors, 400)
        for key, value in fields.items():
            setattr(endpoint, key, value)
        db.session.commit()
        flash(f"Endpoint {endpoint.name} saved. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
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


# ----- endpoint groups -----
def _group_specs(api):
    """The endpoint types a new group of this API may have: registered connectors for its API type
    and its kind of listener (tcp-proxy endpoints for a tcp listener, only there)."""
    tcp = any(listener.type == "tcp" for listener in api.listeners)
    return [spec for spec in registry.endpoints().values()
            if api.type in spec.api_types and (spec.listener == "tcp") == tcp]


def _chosen_group_spec(api, form):
    specs = _group_specs(api)
    chosen = (form or {}).get("group_type")
    return next((spec for spec in specs if spec.type == chosen), specs[0] if specs else None)


def _render_group_form(api, form, errors, status=200):
    spec = _chosen_group_spec(api, form)
    if spec is None:
        abort(400, f"This gateway has no endpoint connector for {api.type} APIs, so no group can be added.")
    group_head = dict(name=(form or {}).get("group_name", ""),
                      type=spec.type, load_balancer=(form or {}).get("load_balancer") or LOAD_BALANCERS[0])
    return render_template("group_form.html", api=api, spec=spec, specs=_group_specs(api),
                           load_balancers=LOAD_BALANCERS, group_head=group_head, errors=errors,
                           refresh_url=url_for("ui.new_group_fields", api_id=api.id),
                           **_endpoint_form_values(spec, None, form)), status


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
        form = request.form
        spec = _chosen_group_spec(api, form)
        errors = {}
        if spec is None or spec.type != form.get("group_type"):
            errors["group_type"] = "Choose an endpoint type among those offered for " + api.type + " APIs."
        name = form.get("group_name", "").strip()
        if not name:
            errors["group_name"] = "Give the group a name."
        elif name in {g_.name for g_ in api.endpoint_groups}:
            errors["group_name"] = f"Another endpoint group of this API is already named {name}."
        load_balancer = form.get("load_balancer", "")
        if load_balancer not in LOAD_BALANCERS:
            errors["load_balancer"] = "Choose a load balancer: " + ", ".join(LOAD_BALANCERS) + "."
        fields = {}
        if spec is not None:
            fields, problems = _endpoint_form(api, spec, None, form)
            errors.update(problems)
        if errors:
            return _render_group_form(api, form, errors, 400)
        position = max((g_.position for g_ in api.endpoint_groups), default=-1) + 1
        group = EndpointGroup(name=name, type=spec.type, load_balancer=load_balancer, position=position, extra={},
                              endpoints=[Endpoint(type=spec.type, position=0, extra={}, **fields)])
        api.endpoint_groups.append(group)
        db.session.commit()
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
        flash(f"Endpoint group {group.name} is the last one of this API, and an API needs at least one endpoint "
              "group. Add another group first, or change this one's endpoints.", "error")
        return redirect(back)
    if request.method == "POST":
        api.endpoint_groups.remove(group)
        db.session.commit()
        flash(f"Endpoint group {group.name} and its endpoints deleted. Redeploy to apply.")
        return redirect(back)
    return render_template("confirm.html", title=f"Delete the endpoint group {group.name}?",
                           text=f"Its {len(group.endpoints)} endpoint(s) are deleted with it. "
                                "The gateway keeps using them until you redeploy.",
                           action=url_for("ui.delete_group", api_id=api.id, group_id=group.id), back=back)


# ----- failover (the API's `failover` block) -----
def _render_failover(api, values, errors, status=200, template="failover.html"):
    return render_template(template, api=api, settings=failover.SETTINGS, values=values, errors=errors,
                           refresh_url=url_for("ui.failover_fields", api_id=api.id)), status


@bp.post("/apis/<api_id>/failover/_fields")
@requires("owner", api="api_id")
def failover_fields(api_id):
    values, _ = failover.SETTINGS.from_form(request.form, "failover.")
    return _render_failover(_api(api_id), values, {}, template="_failover_fields.html")


@bp.route("/apis/<api_id>/failover", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_failover(api_id):
    api = _api(api_id)
    if any(listener.type == "tcp" for listener in api.listeners):
        abort(400, "TCP proxy APIs have no failover: their endpoints' reconnect attempts do that job.")
    if request.method == "POST":
        values, errors = failover.SETTINGS.from_form(request.form, "failover.")
        if errors:
            return _render_failover(api, values, errors, 400)
        api.extra = {**api.extra, "failover": values}
        db.session.commit()
        flash("Failover saved. Redeploy to apply.")
        return redirect(url_for("ui.endpoints", api_id=api.id))
    return _render_failover(api, api.extra.get("failover") or {}, {})
