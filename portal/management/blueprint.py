"""The management API's blueprint: its routes (apis, subscriptions) join it; what applies to every
request (cross-site refusal, error answers) and what every route reads (the JSON body, the API
named in the path) is here."""

from flask import Blueprint, abort, request
from werkzeug.exceptions import HTTPException

from gateway_runtime.http import client_scheme

from .. import apis
from .. import subscriptions as subs
from . import errors
from .errors import error

bp = Blueprint("management", __name__, url_prefix="/management/v2")
ENV = "/environments/DEFAULT"


STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# What an HTML form can send: a page on another site may post these without asking the browser first.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
MAX_DEPTH = 100  # far deeper than any definition; deeper bodies would exhaust what reads them recursively


@bp.before_request
def refuse_cross_site():
    """A browser holding the management API's credentials (Basic, cached) would send them with any
    request a page on another site makes; such requests are told apart and refused here."""
    if request.method not in STATE_CHANGING:
        return None
    origin = request.headers.get("Origin")
    own = f"{client_scheme(request.environ)}://{request.host}"
    if origin is not None and origin != own:
        return error(
            403,
            f"Refused: this request came from a page of another site ({origin}). Management "
            "calls that change something are accepted from scripts and tools, not from web pages.",
        )
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return error(
            403,
            "Refused: this request came from a page of another site (Sec-Fetch-Site). Management "
            "calls that change something are accepted from scripts and tools, not from web pages.",
        )
    if request.mimetype in FORM_TYPES:
        return error(
            403,
            f"Refused: a management call that changes something cannot have the content type "
            f"{request.mimetype} (a web form's). Send JSON with Content-Type: application/json, "
            "or no body.",
        )
    return None


for exception, handler in (
    (apis.DefinitionError, errors.definition_error),
    (apis.Conflict, errors.conflict),
    (apis.DeployRefused, errors.refused),
    (subs.Invalid, errors.invalid),
    (HTTPException, errors.http_error),
    (Exception, errors.unexpected),
):
    bp.register_error_handler(exception, handler)


def json_body():
    """The JSON object of the request: every route's body is one (an array or a string would be
    read with .get further on, a 500)."""
    try:
        body = request.get_json(silent=True)
        too_deep = isinstance(body, (dict, list)) and _deeper_than(body, MAX_DEPTH)
    except RecursionError:  # nested too deep for the parser itself
        too_deep = True
    if too_deep:
        raise apis.DefinitionError(
            [{"field": "", "message": f"The body nests deeper than {MAX_DEPTH} levels."}],
            f"The body nests deeper than {MAX_DEPTH} levels: no definition does.",
        )
    if not isinstance(body, dict):
        raise apis.DefinitionError(
            [{"field": "", "message": "The body must be a JSON object."}],
            "The body is not valid JSON." if body is None else "The body must be a JSON object.",
        )
    return body


def _deeper_than(value, limit):
    """Without recursion: the point is to bear bodies too deep for it."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def find_api(api_id):
    api = apis.find(api_id)
    if api is None:
        abort(404, f"No API with id {api_id}.")
    return api
