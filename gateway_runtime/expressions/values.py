"""The values expressions walk: conversions to boolean and text as SpEL does them, and the header map."""

from collections.abc import Mapping

from .errors import EvaluationError


class Headers(Mapping):
    """HTTP headers: name -> list of values, looked up case-insensitively. Made from a mapping of
    name -> value(s), or from (name, value) pairs as they came on the wire."""

    __slots__ = ("_items", "changed")

    def __init__(self, headers=None):
        self.changed = False  # set by the changes below: what was only read needs no writing back
        items = self._items = {}
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        for name, values in pairs:
            if values.__class__ is str:  # the usual case (an answer's pairs), first
                values = (values,)
            elif isinstance(values, bytes) or not isinstance(values, (list, tuple)):
                values = (values,)
            entry = items.get(lower := str(name).lower())
            if entry is None:
                items[lower] = (name, list(values))
            else:
                entry[1].extend(values)

    def __getitem__(self, name):
        return self._items[str(name).lower()][1]

    def __iter__(self):
        return (name for name, _ in self._items.values())

    def __len__(self):
        return len(self._items)

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._items

    def get_first(self, name):
        values = self.get(name)
        return values[0] if values else None

    # What policies change (transform-headers); expressions only read.
    def add(self, name, value):
        self.changed = True
        self._items.setdefault(name.lower(), (name, []))[1].append(value)

    def put(self, name, value):
        self.changed = True
        self._items[name.lower()] = (name, [value])

    def remove(self, name):
        self.changed = True
        self._items.pop(name.lower(), None)

    def keep_only(self, names):
        self.changed = True
        wanted = {name.lower() for name in names}
        self._items = {lower: item for lower, item in self._items.items() if lower in wanted}

    def pairs(self, leaving_out=frozenset()):
        """(name, value) of each value; `leaving_out`: lower-case names left out."""
        return [
            (name, value)
            for lower, (name, values) in self._items.items()
            if lower not in leaving_out
            for value in values
        ]

    def as_lists(self):
        return {name: list(values) for name, values in self._items.values()}

    def __repr__(self):
        return f"Headers({dict(self.items())!r})"


def type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return "object"


def to_bool(value, what="value"):
    """SpEL's conversion to boolean, with None as false (SpEL would refuse it)."""
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered in ("false", ""):
            return False
    raise EvaluationError(f"Cannot convert {type_name(value)} {to_text(value)!r} to boolean ({what})")


def to_text(value):
    """Java's String.valueOf for the value types expressions meet (None renders as "null" here)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{to_text(k)}={to_text(v)}" for k, v in value.items()) + "}"
    return str(value)
