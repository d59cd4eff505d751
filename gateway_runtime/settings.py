"""Connector settings declared once: they drive the portal form, validation, import defaults,
secret masking on export, and the runtime's typed configuration.

A `Field` names a dotted path inside one settings object (an endpoint's `configuration`, a
group's `sharedConfiguration`, an entrypoint's `configuration`). `when` makes it part of a
conditional section: the field is shown, required and used only while another field has one of
the given values.
"""
import json
import os
from dataclasses import dataclass, field as dc_field
from typing import Any

SECRET_MASK = "********"
KINDS = ("string", "text", "integer", "number", "boolean", "enum", "list", "pairs", "secret", "path")


class SettingsError(ValueError):
    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Field:
    path: str
    kind: str
    label: str
    default: Any = None
    required: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    when: tuple | None = None  # (controlling path, (allowed values...))
    help: str = ""
    multiline: bool = False    # a secret that is text of several lines (a PEM key)

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def secret(self):
        return self.kind == "secret"


@dataclass(frozen=True)
class Settings:
    fields: tuple = ()
    # Keys that exist only in Gravitee's test kit: imported, ignored, named in a warning.
    ignored: tuple = ()
    # Rules across fields: callables taking the coerced values, returning {path: message}.
    checks: tuple = ()
    # (other spelling, path): a value found under the other spelling is kept under `path`.
    aliases: tuple = ()
    _by_path: dict = dc_field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._by_path.update({f.path: f for f in self.fields})

    def __iter__(self):
        return iter(self.fields)

    def __bool__(self):
        return bool(self.fields)

    @property
    def controlling_paths(self):
        return {f.when[0] for f in self.fields if f.when}

    def active(self, field, values):
        """Is the field's conditional section switched on for these values?"""
        if not field.when:
            return True
        path, allowed = field.when
        controller = self._by_path.get(path)
        current = get_path(values, path)
        if current is None and controller is not None:
            current = controller.default
        if controller is not None and not self.active(controller, values):
            return False
        return current in allowed

    # ----- validation of JSON values (import, REST, form results) -----
    def validate(self, values, prefix="", checks=True):
        """Return (clean values, errors). Known fields are coerced to their types; unknown keys are
        kept as they are so that a definition round-trips. Expression-language values ({#...})
        are kept as they are (they block Deploy until supported). Without `checks`, the rules
        across fields are skipped: an import keeps placeholders that a deploy then names."""
        values = json.loads(json.dumps(values or {}))
        if not isinstance(values, dict):
            return {}, {prefix.rstrip(".") or "configuration": "must be an object"}
        for other, path in self.aliases:
            if get_path(values, other) is not None:
                if get_path(values, path) is None:
                    set_path(values, path, get_path(values, other))
                delete_path(values, other)
        errors = {}
        for f in self.fields:
            raw = get_path(values, f.path)
            name = prefix + f.path
            if isinstance(raw, str) and "{#" in raw:
                continue
            if raw is None or raw == "":
                if f.required and self.active(f, values):
                    errors[name] = f"{f.label} is required"
                if raw == "" and f.kind not in ("string", "text", "secret", "path"):
                    delete_path(values, f.path)
                continue
            try:
                set_path(values, f.path, coerce(f, raw))
            except ValueError as exc:
                errors[name] = f"{f.label}: {exc}"
        if checks and not errors:
            for check in self.checks:
                errors.update({prefix + path: message for path, message in check(values, self).items()})
        return values, errors

    def with_defaults(self, values):
        """Typed configuration for the runtime: defaults filled in for every absent field."""
        clean, errors = self.validate(values)
        if errors:
            raise SettingsError(errors)
        for f in self.fields:
            if f.default is not None and get_path(clean, f.path) is None:
                set_path(clean, f.path, f.default)
        return clean

    def ignored_present(self, values):
        return [key for key in self.ignored if get_path(values or {}, key) is not None]

    # ----- secrets -----
    def map_secrets(self, values, change):
        """A copy of the values with change(value) in place of each secret that is set."""
        values = json.loads(json.dumps(values or {}))
        for f in self.fields:
            value = get_path(values, f.path)
            if f.secret and value not in (None, ""):
                set_path(values, f.path, change(value))
        return values

    def mask_secrets(self, values):
        return self.map_secrets(values, lambda _: SECRET_MASK)

    def restore_secrets(self, values, previous):
        """A masked secret sent back (an export re-imported, a form left blank) keeps the old value."""
        for f in self.fields:
            if f.secret and get_path(values, f.path) == SECRET_MASK:
                old = get_path(previous or {}, f.path)
                if old is None:
                    delete_path(values, f.path)
                else:
                    set_path(values, f.path, old)
        return values

    # ----- the portal form -----
    def from_form(self, form, prefix, previous=None):
        """Build values from posted form fields named `prefix + path`. Fields of switched-off
        sections are dropped. Returns (values, errors)."""
        values = {}
        for f in self.fields:
            key = prefix + f.path
            if f.kind == "boolean":
                set_path(values, f.path, form.get(key) in ("on", "true", "1", "yes"))
                continue
            raw = form.get(key, "")
            if f.kind == "list":
                items = [line.strip() for line in raw.splitlines() if line.strip()]
                if items:
                    set_path(values, f.path, items)
            elif f.kind == "pairs":
                pairs, bad = parse_pairs(raw)
                if bad:
                    set_path(values, f.path, raw)
                elif pairs:
                    set_path(values, f.path, pairs)
            elif f.kind == "secret" and raw == "" and get_path(previous or {}, f.path) is not None:
                set_path(values, f.path, SECRET_MASK)
            elif raw.strip():
                set_path(values, f.path, raw if f.kind in ("text", "secret") else raw.strip())
        for f in self.fields:
            if not self.active(f, values):
                delete_path(values, f.path)
        values = self.restore_secrets(values, previous)
        clean, errors = self.validate(values)
        return prune_empty(clean), {prefix + k: v for k, v in errors.items()}

    def is_set(self, f, values):
        return get_path(values or {}, f.path) not in (None, "")

    def form_value(self, f, values):
        """The text an input shows for a field (secrets are never echoed back)."""
        value = get_path(values or {}, f.path)
        if f.secret:
            return ""
        if value is None:
            value = f.default
        if value is None:
            return ""
        if f.kind == "list":
            return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
        if f.kind == "pairs":
            if isinstance(value, list):
                return "\n".join(f"{p.get('name', '')}: {p.get('value', '')}" for p in value if isinstance(p, dict))
            return str(value)
        return value


def coerce(f, raw):
    kind = f.kind
    if kind in ("string", "text", "secret", "path"):
        if isinstance(raw, (dict, list)):
            raise ValueError("must be text")
        value = str(raw)
        if kind == "path":
            check_certs_path(value)
        return value
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "on", "1", "yes"):
            return True
        if str(raw).lower() in ("false", "off", "0", "no"):
            return False
        raise ValueError("must be true or false")
    if kind in ("integer", "number"):
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if kind == "integer":
            if number != int(number):
                raise ValueError("must be a whole number")
            number = int(number)
        if f.minimum is not None and number < f.minimum:
            raise ValueError(f"must be at least {f.minimum:g}")
        if f.maximum is not None and number > f.maximum:
            raise ValueError(f"must be at most {f.maximum:g}")
        return number
    if kind == "enum":
        if raw not in f.choices:
            raise ValueError("must be one of " + ", ".join(map(str, f.choices)))
        return raw
    if kind == "list":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(v, (str, int, float)) for v in raw):
            raise ValueError("must be a list of values")
        return [str(v) for v in raw]
    if kind == "pairs":
        if isinstance(raw, str):
            pairs, bad = parse_pairs(raw)
            if bad:
                raise ValueError(f"line {bad!r} is not 'name: value'")
            return pairs
        if not isinstance(raw, list) or not all(
                isinstance(p, dict) and isinstance(p.get("name"), str) and p.get("name") for p in raw):
            raise ValueError("must be a list of {name, value}")
        return [{"name": p["name"], "value": "" if p.get("value") is None else str(p["value"])} for p in raw]
    raise AssertionError(kind)


def parse_pairs(text):
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return None, line.strip()
        pairs.append({"name": name.strip(), "value": value.strip()})
    return pairs, None


def check_certs_path(value):
    base = os.environ.get("GATEHOUSE_CERTS_DIR")
    if not base:
        raise ValueError("file paths are refused: set GATEHOUSE_CERTS_DIR to the folder that holds key and trust stores")
    base = os.path.realpath(base)
    full = os.path.realpath(os.path.join(base, value))
    if os.path.commonpath([base, full]) != base:
        raise ValueError(f"must lie under GATEHOUSE_CERTS_DIR ({base})")


def get_path(values, path):
    node = values
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_path(values, path, value):
    parts = path.split(".")
    node = values
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def delete_path(values, path):
    parts = path.split(".")
    node = values
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def prune_empty(values):
    if isinstance(values, dict):
        out = {}
        for key, value in values.items():
            value = prune_empty(value)
            if value != {}:
                out[key] = value
        return out
    return values
