"""CORS on an API's HTTP listener (Gravitee's `listeners[].cors`): preflight requests answered, the
Access-Control-* headers on every entrypoint's answer, and a request from an origin the API does
not allow refused before any entrypoint runs (a browser's simple POST would otherwise be
delivered while the page is told it failed, and sent again)."""

import re
from typing import Any

from .messages import Interrupted

PREFLIGHT_FAILED = "CORS_PREFLIGHT_FAILED"
NOT_ALLOWED = "CORS_ORIGIN_NOT_ALLOWED"


def _names(values: Any) -> list[str]:
    return [str(v) for v in values or [] if str(v).strip()]


class Cors:
    def __init__(self, settings: dict[str, Any]) -> None:
        origins = _names(settings.get("allowOrigin"))
        self.any_origin = "*" in origins
        self.origins = [origin_pattern(o) for o in origins if o != "*"]
        self.methods = [m.upper() for m in _names(settings.get("allowMethods"))]
        self.headers = _names(settings.get("allowHeaders"))
        self.expose = _names(settings.get("exposeHeaders"))
        self.credentials = settings.get("allowCredentials") is True
        self.max_age = settings.get("maxAge")
        self.run_policies = settings.get("runPolicies") is True

    def allowed(self, origin: str) -> bool:
        return self.any_origin or any(pattern.fullmatch(origin) for pattern in self.origins)

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        # With credentials a browser refuses `*`: the origin itself is named.
        named = origin if self.credentials or not self.any_origin else "*"
        headers = [("Access-Control-Allow-Origin", named), ("Vary", "Origin")]
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def preflight(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The headers of the answer to a preflight request; Interrupted when it is refused."""
        origin = environ.get("HTTP_ORIGIN", "")
        method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "").upper()
        asked = _names(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").split(","))
        wanted = {h.strip().lower() for h in asked}
        allowed_headers = {h.lower() for h in self.headers}
        if (
            not self.allowed(origin)
            or (self.methods and method not in self.methods)
            or ("*" not in allowed_headers and not wanted <= allowed_headers)
        ):
            raise Interrupted(
                400, "CORS preflight failed: the origin, method or headers are not allowed", PREFLIGHT_FAILED
            )
        headers = self._origin_headers(origin)
        headers.append(("Access-Control-Allow-Methods", ", ".join(self.methods or [method])))
        if asked:
            headers.append(("Access-Control-Allow-Headers", ", ".join(self.headers if self.headers else asked)))
        if isinstance(self.max_age, int) and self.max_age >= 0:
            headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return headers

    def answer_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The headers of an answer to a request from another origin; Interrupted when that origin
        is not allowed."""
        origin = environ["HTTP_ORIGIN"]
        if not self.allowed(origin):
            raise Interrupted(403, f"The origin {origin[:200]} may not call this API", NOT_ALLOWED)
        headers = self._origin_headers(origin)
        if self.expose:
            headers.append(("Access-Control-Expose-Headers", ", ".join(self.expose)))
        return headers


def origin_pattern(origin: str) -> re.Pattern[str]:
    """An allowOrigin entry is an origin, or a regular expression (Gravitee's) matching whole
    origins; re.error when it is neither (the definition's checks refuse it at import and save)."""
    return re.compile(re.escape(origin) if _plain(origin) else origin)


def _plain(origin: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9.-]+(:\d+)?", origin) is not None


def of(listeners: list[dict[str, Any]]) -> Cors | None:
    """The CORS of the API's HTTP listener, when enabled."""
    for listener in listeners:
        settings = listener.get("cors")
        if listener.get("type") == "http" and isinstance(settings, dict) and settings.get("enabled"):
            return Cors(settings)
    return None
