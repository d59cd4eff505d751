"""How the management API answers errors: Gravitee's JSON shape {message, errors}, the status
of the exception raised by the portal's rules."""

from flask import current_app, jsonify, request
from werkzeug.exceptions import ServiceUnavailable

from gateway_runtime import database


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
    browser = (
        headers.get("Sec-Fetch-Mode")
        or headers.get("Origin")
        or "text/html" in headers.get("Accept", "")
        or headers.get("User-Agent", "").startswith("Mozilla/")
    )
    scheme = "Bearer" if browser else "Basic"
    return f'{scheme} realm="Gatehouse management API"'


def definition_error(exc):
    return error(400, exc.message, exc.errors)


def conflict(exc):
    return error(409, str(exc), [{"field": exc.field, "message": str(exc)}])


def refused(exc):
    return error(400, str(exc), [{"field": "definition", "message": part} for part in exc.parts])


def http_error(exc):
    response = error(exc.code, exc.description)
    if getattr(exc, "retry_after", None):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def unexpected(exc):
    busy = database.unavailable(exc)
    if busy:  # the database's fault, said in one line: no traceback
        current_app.logger.warning("%s %s: %s", request.method, request.path, busy)
        return http_error(ServiceUnavailable(busy, retry_after=5))
    current_app.logger.exception("management API error")
    return error(500, "Unexpected error; the server log has the details.")


def invalid(exc):
    return error(400, str(exc), [{"field": field, "message": message} for field, message in exc.errors.items()])
