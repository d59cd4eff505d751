"""Management REST API: the Gravitee-compatible subset, JSON, HTTP Basic auth or personal access
tokens (portal.auth.load_user reads them)."""
from flask import Blueprint, abort, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from gateway_runtime import definition as v4
from gateway_runtime import database
from gateway_runtime.http import client_scheme

from . import apis
from .auth import public, requires
from .openapi import document as openapi_document

bp = Blueprint("management", __name__, url_prefix="/management/v2")
ENV = "/environments/DEFAULT"


STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# What an HTML form can send: a page on another site may post these without asking the browser first.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
MAX_DEPTH = 100  # far deeper than any definition; deeper bodies would exhaust what reads them recursively


def error(status, message, errors=()):
    response = jsonify({"message": message, "errors": list(errors)})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = _challenge()
    return response


def _challenge():
    """Basic for command-line clients; a browser offered Basic prompts and then caches the
    password, sending it with any request a page on another site makes: it is offered Bearer."""
    headers = request.headers
    browser = headers.get("Sec-Fetch-Mode") or headers.get("Origin") or "text/html" in headers.get("Accept", "") \
        or headers.get("User-Agent", "").startswith("Mozilla/")
    scheme = "Bearer" if browser else "Basic"
    return f'{scheme} realm="Gatehouse management API"'


@bp.before_request
def refuse_cross_site():
    """A browser holding the management API's credentials (Basic, cached) would send them with any
    request a page on another site makes; such requests are told apart and refused here."""
    if request.method not in STATE_CHANGING:
        return None
    origin = request.headers.get("Origin")
    own = f"{client_scheme(request.environ)}://{request.host}"
    if origin is not None and origin != own:
        return error(403, f"Refused: this request came from a page of another site ({origin}). Management "
                          "calls that change something are accepted from scripts and tools, not from web pages.")
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return error(403, "Refused: this request came from a page of another site (Sec-Fetch-Site). Management "
                          "calls that change something are accepted from scripts and tools, not from web pages.")
    if request.mimetype in FORM_TYPES:
        return error(403, f"Refused: a management call that changes something cannot have the content type "
                          f"{request.mimetype} (a web form's). Send JSON with Content-Type: application/json, "
                          "or no body.")
    return None


@bp.errorhandler(apis.DefinitionError)
def definition_error(exc):
    return error(400, exc.message, exc.errors)


@bp.errorhandler(apis.Conflict)
def conflict(exc):
    return error(409, str(exc), [{"field": exc.field, "message": str(exc)}])


@bp.errorhandler(apis.DeployRefused)
def refused(exc):
    return error(400, str(exc), [{"field": "definition", "message": part} for part in exc.parts])


@bp.errorhandler(HTTPException)
def http_error(exc):
    response = error(exc.code, exc.description)
    if getattr(exc, "retry_after", None):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(Exception)
def unexpected(exc):
    busy = database.unavailable(exc)
    if busy:  # the database's fault, said in one line: no traceback
        current_app.logger.warning("%s %s: %s", request.method, request.path, busy)
        return http_error(ServiceUnavailable(busy, retry_after=5))
    current_app.logger.exception("management API error")
    return error(500, "Unexpected error; the server log has the details.")


def _body():
    """The JSON object of the request: every route's body is one (an array or a string would be
    read with .get further on, a 500)."""
    try:
        body = request.get_json(silent=True)
        too_deep = isinstance(body, (dict, list)) and _deeper_than(body, MAX_DEPTH)
    except RecursionError:  # nested too deep for the parser itself
        too_deep = True
    if too_deep:
        raise apis.DefinitionError([{"field": "", "message": f"The body nests deeper than {MAX_DEPTH} levels."}],
                                   f"The body nests deeper than {MAX_DEPTH} levels: no definition does.")
    if not isinstance(body, dict):
        raise apis.DefinitionError([{"field": "", "message": "The body must be a JSON object."}],
                                   "The body is not valid JSON." if body is None else "The body must be a JSON object.")
    return body


def _deeper_than(value, limit):
    """Without recursion: the point is to bear bodies too deep for it."""
    level = [value]
    for _ in range(limit):
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, (dict, list))]
        if not level:
            return False
    return True


def _api(api_id):
    api = apis.find(api_id)
    if api is None:
        abort(404, f"No API with id {api_id}.")
    return api


def summary(api):
    d = apis.definition_of(api)
    body, _ = v4.to_management_form(apis.masked(d))
    body["state"] = api.state.upper()
    last = apis.last_deployment(api)
    body["deployedAt"] = last.created_at.isoformat() + "Z" if last else None
    body["gatehouse"] = {
        "deployedRevision": api.deployed_revision,
        "undeployedChanges": apis.has_undeployed_changes(api),
        "warnings": v4.warnings(d),
        "blockingParts": v4.blocking_parts(d),
    }
    return body


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(openapi_document())


@bp.get(ENV + "/apis")
@requires("viewer")
def list_apis():
    items = [summary(api) for api in apis.all_apis()]
    return jsonify({"data": items, "pagination": {"page": 1, "perPage": len(items), "pageCount": 1,
                                                  "pageItemsCount": len(items), "totalCount": len(items)}})


@bp.get(ENV + "/apis/<api_id>")
@requires("viewer")
def get_api(api_id):
    return jsonify(summary(_api(api_id)))


@bp.delete(ENV + "/apis/<api_id>")
@requires("owner", api="api_id")
def delete_api(api_id):
    api = _api(api_id)
    if api.state == "started":
        return error(400, "Stop the API before deleting it.")
    apis.delete(api)
    return "", 204


@bp.post(ENV + "/apis/_import/definition")
@requires("owner")
def import_definition():
    api, warnings = apis.create(_body(), owner=g.user)
    return jsonify(summary(api) | {"warnings": warnings}), 201


@bp.put(ENV + "/apis/<api_id>/_import/definition")
@requires("owner", api="api_id")
def replace_definition(api_id):
    api = _api(api_id)
    warnings = apis.replace(api, _body(), g.user)
    return jsonify(summary(api) | {"warnings": warnings})


@bp.post(ENV + "/apis/<api_id>/_start")
@requires("owner", api="api_id")
def start(api_id):
    api = _api(api_id)
    if api.state == "started":
        return error(400, "The API is already started.")
    apis.start(api, g.user.username)
    return "", 204


@bp.post(ENV + "/apis/<api_id>/_stop")
@requires("owner", api="api_id")
def stop(api_id):
    api = _api(api_id)
    if api.state == "stopped":
        return error(400, "The API is already stopped.")
    apis.stop(api)
    return "", 204


@bp.post(ENV + "/apis/<api_id>/deployments")
@requires("owner", api="api_id")
def deploy(api_id):
    """202 with a new revision; 200 with the deployed one when the draft equals it (a retried
    deploy is harmless, and no identical revision is made)."""
    try:
        deployment = apis.deploy(_api(api_id), g.user.username)
    except apis.NothingToDeploy as exc:
        return jsonify(_deployment(exc.deployment) | {"message": str(exc)}), 200
    return jsonify(_deployment(deployment)), 202


def _deployment(deployment):
    return {"revision": deployment.revision, "deployedAt": deployment.created_at.isoformat() + "Z"}


@bp.get(ENV + "/apis/<api_id>/_export/definition")
@requires("viewer")
def export(api_id):
    include = request.args.get("includeSecrets", "false").lower() == "true"
    if include and g.user.role != "admin":
        abort(403, "Only an admin may export secrets in clear: leave out includeSecrets, or ask an admin.")
    return jsonify(apis.export(_api(api_id), include_secrets=include))


@bp.get(ENV + "/_runtime")
@requires("viewer")
def runtime():
    """Ours: what this process's gateway serves, and its greenlet and file descriptor counts."""
    gateway = current_app.extensions.get("gatehouse_gateway")
    if gateway is None:
        return error(404, "No gateway runs in this process.")
    return jsonify(gateway.stats())


from . import management_subscriptions  # noqa: E402,F401  (its routes join this blueprint)
