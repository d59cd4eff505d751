"""An API's `responseTemplates` (Gravitee's): the gateway's own error answers (a policy's refusal,
a plan's 401/403, a flow's 404, the endpoint's 502/504, CORS refusals) replaced by the API's own.

The template is looked up by the error's key, then its parent key (a failure to connect has a
fine-grained key under GATEWAY_CLIENT_CONNECTION_ERROR, a timeout one under REQUEST_TIMEOUT), then
DEFAULT; among that key's templates, by the media types the client accepts (best first), then
`*/*`; none matching, the gateway answers as it does without templates. A template sets the status,
headers and a body in which `{#error.key}`, `{#error.message}`, `{#error.statusCode}`,
`{#error.cause}`, `{#error.parameters[...]}` and `{#request...}` are read.
"""

from dataclasses import dataclass, field
from typing import Any

from .expressions import EvaluationError, ExpressionError, Template, compile_template
from .http import respond
from .messages import status_line

DEFAULT = "DEFAULT"
ANY = "*/*"
CONNECTION_ERROR, TIMEOUT = "GATEWAY_CLIENT_CONNECTION_ERROR", "REQUEST_TIMEOUT"


def parent(key: str) -> str | None:
    if key.startswith("GATEWAY_CLIENT_") and key != CONNECTION_ERROR:
        return TIMEOUT if key.endswith("_TIMEOUT") else CONNECTION_ERROR
    return None


@dataclass(frozen=True)
class Failure:
    """What the gateway would answer: the template's `#error`."""

    status: int
    message: str
    key: str | None
    parameters: dict[str, Any] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "message": self.message,
            "statusCode": self.status,
            "cause": self.message,  # Gravitee's connection failures carry their text there
            "parameters": self.parameters,
        }


@dataclass(frozen=True)
class ResponseTemplate:
    status: int
    headers: tuple[tuple[str, Template], ...]
    body: Template
    media_type: str


class ResponseTemplates:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.by_key = {
            key: {media.strip().lower(): _template(media, spec) for media, spec in templates.items()}
            for key, templates in raw.items()
        }

    def pick(self, key: str | None, accept: str) -> ResponseTemplate | None:
        for candidate in (key, parent(key) if key else None, DEFAULT):
            templates = self.by_key.get(candidate) if candidate else None
            if templates:  # the first key with templates decides, matching the client or not
                for media in accepted(accept):
                    if media in templates:
                        return templates[media]
                return templates.get(ANY)
        return None

    def answer(
        self, environ: dict[str, Any], start_response: Any, failure: Failure, headers: Any = ()
    ) -> list[bytes] | None:
        """The templated answer to the failure (sent with `headers`, a rate limit's, say), or None."""
        chosen = self.pick(failure.key, environ.get("HTTP_ACCEPT", ""))
        if chosen is None:
            return None
        from .flows.exchange import RequestView  # the flows import this module's environ key

        context = {"error": failure.context(), "request": RequestView(environ)}
        try:
            body = chosen.body.render(context)
            rendered = [(name, value.render(context)) for name, value in chosen.headers]
        except EvaluationError as exc:
            failed = f"The API's response template for {failure.key or DEFAULT} failed: {exc}"
            return respond(start_response, "500 Internal Server Error", failed)
        content_type = next((v for n, v in rendered if n.lower() == "content-type"), None)
        rendered = [(n, v) for n, v in rendered if n.lower() not in ("content-type", "content-length")]
        if content_type is None:
            content_type = chosen.media_type if "*" not in chosen.media_type else "text/plain;charset=UTF-8"
        return respond(start_response, status_line(chosen.status), body, content_type, [*headers, *rendered])


def accepted(accept: str) -> list[str]:
    """The media types of an Accept header, the most wanted first (by q, then as listed)."""
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.strip():
            ranked.append((-quality, position, media.strip().lower()))
    return [media for quality, _, media in sorted(ranked) if quality < 0]


def _template(media: str, spec: dict[str, Any]) -> ResponseTemplate:
    headers = tuple((str(name), compile_template(str(value))) for name, value in (spec.get("headers") or {}).items())
    return ResponseTemplate(int(spec.get("status") or 200), headers, compile_template(spec.get("body") or ""), media)


def of(definition: dict[str, Any]) -> ResponseTemplates | None:
    raw = definition.get("responseTemplates")
    return ResponseTemplates(raw) if raw else None


def problems(raw: Any) -> list[tuple[str, str]]:
    """(field, message) for what in `responseTemplates` cannot be used."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [("responseTemplates", "Response templates are an object: error key -> media type -> template.")]
    found = []
    for key, templates in raw.items():
        where = f"responseTemplates.{key}"
        if not isinstance(templates, dict) or not templates:
            found.append((where, "Give one template or more, by media type (such as */* or application/json)."))
            continue
        for media, spec in templates.items():
            found += _template_problems(f"{where}.{media}", media, spec)
    return found


def notes(raw: Any) -> list[str]:
    """Templates kept that no request can pick: a media type no Accept header names."""
    if not isinstance(raw, dict):
        return []
    return [
        f"response template {key} for '{media}' is kept, but no Accept header names that media type "
        "(*/* is the one for any)"
        for key, templates in raw.items()
        if isinstance(templates, dict)
        for media in templates
        if media == "*.*"
    ]


def _template_problems(where: str, media: str, spec: Any) -> list[tuple[str, str]]:
    if not isinstance(spec, dict):
        return [(where, "A template is an object with status, headers and body.")]
    found = []
    if "/" not in media and media != "*.*":
        found.append((where, f"'{media[:100]}' is not a media type: write type/subtype (application/json, */*)."))
    status = spec.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        found.append((f"{where}.status", "The status is a whole number from 100 to 599."))
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, (str, int, float)) for v in headers.values()):
        found.append((f"{where}.headers", "Headers are an object of header name -> text."))
        headers = {}
    body = spec.get("body")
    if body is not None and not isinstance(body, str):
        found.append((f"{where}.body", "The body is text (it may hold {#...} expressions)."))
        body = None
    for place, text in [(f"{where}.headers.{n}", str(v)) for n, v in headers.items()] + [(f"{where}.body", body or "")]:
        try:
            compile_template(text)
        except ExpressionError as exc:
            found.append((place, str(exc)))
    return found
