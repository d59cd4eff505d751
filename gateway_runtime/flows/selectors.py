"""Which requests a flow applies to: Gravitee v4's `http`, `channel` and `condition` selectors,
compiled once per deployment."""

import re
from typing import Any

from ..expressions import EvaluationError, compile_condition
from .exchange import Exchange

# Gravitee's own spellings, and those its older exports and test fixtures use.
OPERATORS = {"STARTS_WITH": "STARTS_WITH", "START_WITH": "STARTS_WITH", "EQUALS": "EQUALS"}
PARAM = re.compile(r"^:([A-Za-z_][A-Za-z0-9_-]*)$")
NO_PARAMS: dict[str, str] = {}  # shared, never changed: a path without parameters matched


class SelectorError(ValueError):
    """A selector that cannot be used, with the field it is in."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PathPattern:
    """A flow path such as `/books/:bookId`, matched against the path under the context path as
    Gravitee does: EQUALS the whole path, STARTS_WITH a prefix (`/foo` takes `/foobar` too)."""

    # What Gravitee lets a path parameter hold (PathPatterns.java).
    PARAM_VALUE = r"[a-zA-Z0-9\-._~%!$&'()* +,;=:@|]+"

    def __init__(self, path: str, operator: str) -> None:
        self.path = path if path.startswith("/") else "/" + path
        self.operator = operator
        self.segments = self.path.split("/")  # as BEST_MATCH compares them, empty ones kept
        self.names: list[str] = []
        parts = []
        for segment in (s for s in self.path.split("/") if s):
            param = PARAM.match(segment)
            if param:
                self.names.append(param.group(1))
                parts.append(f"({self.PARAM_VALUE})")
            else:
                parts.append(re.escape(segment))
        body = "".join("/" + part for part in parts) + "/?"
        self.regex = re.compile(body + ("$" if operator == "EQUALS" else ""))
        self.everything = not parts and operator == "STARTS_WITH"  # `/`: no need to look

    def match(self, path: str) -> dict[str, str] | None:
        if self.everything:
            return NO_PARAMS
        found = self.regex.match(path or "/")
        if found is None:
            return None
        return dict(zip(self.names, found.groups(), strict=True)) if self.names else NO_PARAMS

    def scores(self, path: str) -> list[float]:
        """Gravitee's BEST_MATCH score of each of this path's segments against the request's: 1 for
        the same (or past the request's end), 0.5 for a parameter, 0 otherwise."""
        asked = path.split("/")
        return [
            1.0 if i >= len(asked) or segment == asked[i] else 0.5 if segment.startswith(":") else 0.0
            for i, segment in enumerate(self.segments)
        ]


def _operator(selector: dict[str, Any], key: str, field: str) -> str:
    raw = selector.get(key) or selector.get(key.replace("Operator", "-operator")) or "STARTS_WITH"
    operator = OPERATORS.get(str(raw).upper())
    if operator is None:
        raise SelectorError(field, f"the operator must be STARTS_WITH or EQUALS, not {raw!r}")
    return operator


def _names(value: Any, field: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SelectorError(field, "must be a list of names")
    return frozenset(v.upper() for v in value)


class HttpSelector:
    def __init__(self, selector: dict[str, Any], where: str) -> None:
        self.pattern = PathPattern(
            str(selector.get("path") or "/"), _operator(selector, "pathOperator", f"{where}.pathOperator")
        )
        self.methods = _names(selector.get("methods"), f"{where}.methods")

    def fixed(self, entrypoint: str | None, operations: frozenset[str]) -> bool | None:
        """True or False when the request need not be looked at (no methods, the path `/`), else None."""
        return True if self.pattern.everything and not self.methods else None

    def matches(self, exchange: Exchange) -> bool:
        request = exchange.request
        if request is None:
            return self.pattern.path == "/" and self.pattern.operator == "STARTS_WITH"
        if self.methods and request.environ.get("REQUEST_METHOD") not in self.methods:
            return False
        found = self.pattern.match(request.path_info)
        if found is None:
            return False
        if found:
            request.path_params.update(found)
        return True


class ChannelSelector:
    def __init__(self, selector: dict[str, Any], where: str) -> None:
        self.pattern = PathPattern(
            str(selector.get("channel") or "/"), _operator(selector, "channelOperator", f"{where}.channelOperator")
        )
        operations = selector.get("operations", selector.get("operation"))
        self.operations = _names(operations, f"{where}.operations")
        if self.operations - {"PUBLISH", "SUBSCRIBE"}:
            raise SelectorError(f"{where}.operations", "the operations are PUBLISH and SUBSCRIBE")
        self.entrypoints = frozenset(str(e) for e in selector.get("entrypoints") or ())

    def fixed(self, entrypoint: str | None, operations: frozenset[str]) -> bool | None:
        if (self.entrypoints and entrypoint not in self.entrypoints) or (
            self.operations and not self.operations & operations
        ):
            return False
        return True if self.pattern.everything else None

    def matches(self, exchange: Exchange) -> bool:
        if self.entrypoints and exchange.entrypoint not in self.entrypoints:
            return False
        if self.operations and not self.operations & exchange.operations:
            return False
        request = exchange.request
        found = self.pattern.match(request.path_info if request is not None else "/")
        if found is None:
            return False
        if found and request is not None:
            request.path_params.update(found)
        return True


class ConditionSelector:
    def __init__(self, selector: dict[str, Any], where: str) -> None:
        self.condition = compile_condition(str(selector.get("condition") or ""))

    def fixed(self, entrypoint: str | None, operations: frozenset[str]) -> bool | None:
        return None

    def matches(self, exchange: Exchange) -> bool:
        try:
            return self.condition.test(exchange.context())
        except EvaluationError:
            return False


SELECTORS = {"http": HttpSelector, "channel": ChannelSelector, "condition": ConditionSelector}


def compile_selector(selector: Any, where: str) -> Any:
    if not isinstance(selector, dict):
        raise SelectorError(where, "must be an object")
    kind = str(selector.get("type", "")).lower()
    if kind not in SELECTORS:
        raise SelectorError(f"{where}.type", f"must be http, channel or condition, not {selector.get('type')!r}")
    return SELECTORS[kind](selector, where)
