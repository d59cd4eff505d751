"""Management API routes for APIs: list, read, import, replace, delete, start, stop, deploy,
export, and what this process's gateway serves."""

from flask import abort, current_app, g, jsonify, request

from gateway_runtime.definition import checks, forms

from .. import apis
from ..auth import public, requires
from ..openapi import document as openapi_document
from .blueprint import ENV, bp, find_api, json_body
from .errors import error


def summary(api):
    d = apis.definition_of(api)
    body, _ = forms.to_management_form(apis.masked(d))
    body["state"] = api.state.upper()
    last = apis.last_deployment(api)
    body["deployedAt"] = last.created_at.isoformat() + "Z" if last else None
    body["gatehouse"] = {
        "deployedRevision": api.deployed_revision,
        "undeployedChanges": apis.has_undeployed_changes(api),
        "warnings": checks.warnings(d),
        "blockingParts": checks.blocking_parts(d),
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
    return jsonify(
        {
            "data": items,
            "pagination": {
                "page": 1,
                "perPage": len(items),
                "pageCount": 1,
                "pageItemsCount": len(items),
                "totalCount": len(items),
            },
        }
    )


@bp.get(ENV + "/apis/<api_id>")
@requires("viewer")
def get_api(api_id):
    return jsonify(summary(find_api(api_id)))


@bp.delete(ENV + "/apis/<api_id>")
@requires("owner", api="api_id")
def delete_api(api_id):
    return _unless(api_id, "started", "Stop the API before deleting it.", apis.delete)


@bp.post(ENV + "/apis/_import/definition")
@requires("owner")
def import_definition():
    api, warnings = apis.create(json_body(), owner=g.user)
    return jsonify(summary(api) | {"warnings": warnings}), 201


@bp.put(ENV + "/apis/<api_id>/_import/definition")
@requires("owner", api="api_id")
def replace_definition(api_id):
    api = find_api(api_id)
    warnings = apis.replace(api, json_body(), g.user)
    return jsonify(summary(api) | {"warnings": warnings})


@bp.post(ENV + "/apis/<api_id>/_start")
@requires("owner", api="api_id")
def start(api_id):
    return _unless(api_id, "started", "The API is already started.", lambda api: apis.start(api, g.user.username))


@bp.post(ENV + "/apis/<api_id>/_stop")
@requires("owner", api="api_id")
def stop(api_id):
    return _unless(api_id, "stopped", "The API is already stopped.", apis.stop)


def _unless(api_id, state, refusal, act):
    """act(api) and 204, unless the API is in `state`: then 400 saying `refusal`."""
    api = find_api(api_id)
    if api.state == state:
        return error(400, refusal)
    act(api)
    return "", 204


@bp.post(ENV + "/apis/<api_id>/deployments")
@requires("owner", api="api_id")
def deploy(api_id):
    """202 with a new revision; 200 with the deployed one when the draft equals it (a retried
    deploy is harmless, and no identical revision is made)."""
    try:
        deployment = apis.deploy(find_api(api_id), g.user.username)
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
    return jsonify(apis.export(find_api(api_id), include_secrets=include))


@bp.get(ENV + "/_runtime")
@requires("viewer")
def runtime():
    """Ours: what this process's gateway serves, and its greenlet and file descriptor counts."""
    gateway = current_app.extensions.get("gatehouse_gateway")
    if gateway is None:
        return error(404, "No gateway runs in this process.")
    return jsonify(gateway.stats())
