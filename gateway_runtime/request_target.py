"""The request target as the client sent it (RFC 9112, 3.2), and the path the gateway routes and forwards.

PATH_INFO is percent-decoded: in it `%2F` looks like a separator, `%3F` like a query, `%23` like a
fragment, and `%2e%2e` climbs. So routing reads the raw target instead. Its path is cut into
segments at literal `/` only (a `%2F` is data inside a segment), and each segment is compared in a
canonical form (escapes of unreserved characters decoded, other escapes in upper case: RFC 3986,
6.2.2). Dot segments are removed (RFC 3986, 5.2.4) before the context path is matched; what is
forwarded is the rest of the path with each segment exactly as the client encoded it.

A segment that only looks like a dot segment once `%2F` or `%5C` is read as a separator, or once a
`;parameter` is cut off (`..%2f..`, `..;`), is refused: backends that decode them would climb.
"""

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# pchar without the escapes (RFC 3986, 3.3), and the path separator.
PATH_CHARS = UNRESERVED | frozenset("!$&'()*+,;=:@/")
ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
CONTROL = re.compile(r"[\x00-\x20\x7f]")
ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?]*)(.*)$")
SEPARATORS_INSIDE = re.compile(r"%2F|%5C")
# Unreserved characters only and no dot segment: already canonical, nothing to escape or remove.
PLAIN_PATH = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]*)+")
ROUTED = "gatehouse.routed"  # environ key: the Routed request


class BadTarget(ValueError):
    """The request target cannot be served; the message says why, for the 400 answer."""


@dataclass(frozen=True)
class Target:
    segments: tuple  # the path's segments after dot-segment removal, as the client encoded them
    named: str  # the path's canonical form before dot-segment removal: what the client named
    query: str  # exactly as sent ('' when none)
    host: str | None  # the authority of an absolute-form target (RFC 9112, 3.2.2), lower case
    key: str  # the canonical path after dot-segment removal: what the routes are matched against

    def rest_after(self, context):
        """The path after a context path it is under ('' when none is left), still percent-encoded."""
        depth = 0 if context == "/" else context.count("/")
        rest = self.segments[depth:]
        return "/" + "/".join(rest) if rest else ""


@dataclass(frozen=True)
class Routed:
    """A request the routes took: its target and the context path that matched it."""

    target: Target
    context: str

    @property
    def rest(self):
        return self.target.rest_after(self.context)


def raw_target(environ):
    """The request target of the request line: pywsgi's handler (framing.StrictFraming) and gunicorn
    give it; rebuilt from PATH_INFO (losing the difference between `/` and `%2F`) for other servers."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING", "")
    return quote(environ.get("PATH_INFO") or "/", safe="/!$&'()*+,;=:@") + ("?" + query if query else "")


def parse(raw):
    """The Target of a raw request target; raises BadTarget."""
    if CONTROL.search(raw) or "#" in raw:
        raise BadTarget("The request target has a space, a control character or a fragment (#).")
    host = None
    absolute = ABSOLUTE.match(raw)
    if absolute:
        host = authority_host(absolute.group(1))
        raw = absolute.group(2) or "/"
    if not raw.startswith("/"):
        raise BadTarget("The request target must be a path starting with '/'.")
    path, _, query = raw.partition("?")
    if PLAIN_PATH.fullmatch(path):
        return Target(tuple(path.split("/")[1:]), path, query, host, path)
    segments = [escape_others(segment) for segment in path.split("/")[1:]]
    for segment in segments:
        check_segment(segment)
    kept = tuple(remove_dot_segments(segments))
    key = "/" + "/".join(map(canonical, kept))
    return Target(kept, "/" + "/".join(map(canonical, segments)), query, host, key)


def escape_others(segment):
    """Characters a URI may not hold (`\\`, `|`, `{`, non-ASCII...) percent-encoded, as a browser would."""
    return "".join(c if c in PATH_CHARS or c == "%" else quote(c.encode("latin-1")) for c in segment)


def check_segment(segment):
    if "%" in ESCAPE.sub("", segment):
        raise BadTarget("The request path has a '%' that does not start an escape like %2F.")
    key = canonical(segment)
    if "%00" in key:
        raise BadTarget("The request path has an encoded NUL (%00).")
    if key not in (".", "..") and any(piece.split(";", 1)[0] in (".", "..") for piece in SEPARATORS_INSIDE.split(key)):
        raise BadTarget("The request path has a dot segment hidden by an encoded separator or a ';'.")


def canonical(segment):
    """Escapes of unreserved characters decoded, the others' hex digits in upper case (RFC 3986, 6.2.2)."""

    def one(match):
        char = chr(int(match.group(1), 16))
        return char if char in UNRESERVED else "%" + match.group(1).upper()

    return ESCAPE.sub(one, segment)


def remove_dot_segments(segments):
    """RFC 3986, 5.2.4, on a path's segments: `.` goes, `..` takes the segment before with it (never
    above the root); a path ending in a dot segment keeps its trailing slash."""
    out = []
    for position, segment in enumerate(segments):
        dots = canonical(segment)
        if dots == "..":
            if out:
                out.pop()
        elif dots != ".":
            out.append(segment)
            continue
        if position == len(segments) - 1:
            out.append("")
    return out


def is_under(path, context):
    return context == "/" or path == context or path.startswith(context + "/")


def route_key(path: str) -> str:
    """A context path from a definition, in the canonical form requests are matched in."""
    segments = remove_dot_segments([escape_others(s) for s in path.strip("/").split("/")]) if path.strip("/") else []
    return "/" + "/".join(canonical(segment) for segment in segments)


def authority_host(authority):
    host = authority.rpartition("@")[2]
    host = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return host.lower() or None


def header_host(value):
    """The host name of a Host header, without its port, lower case (None when empty)."""
    return authority_host(value) if value else None


def without_params(query, names):
    """The query without the parameters of these names; the other parameters exactly as sent."""
    kept = [part for part in query.split("&") if unquote_plus(part.partition("=")[0]) not in names]
    return "&".join(kept)
