"""Connector settings declared once: they drive the portal form, validation, import defaults,
secret masking on export, and the runtime's typed configuration.

A `Field` names a dotted path inside one settings object (an endpoint's `configuration`, a
group's `sharedConfiguration`, an entrypoint's `configuration`). `when` makes it part of a
conditional section: the field is shown, required and used only while another field has one of
the given values.

A field of kind "choice" exists only in the form: a choice the seed offers one at a time (use
the producer, the consumer or both; a store "with location" or "with certificates") that Gravitee
has no field for. It is never stored: `derive` reads it from the fields that are set (an imported
or stored definition), and its `writes` set the stored fields each option stands for. The portal
carries the posted choices beside the values (portal.connector_forms.FormValues.choices), never
inside them, so they cannot reach the database or an export.
"""

import json
import os
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from .definition.slots import SECRET_MASK, Slot, header_slots, map_slots, named_slots, restore_slots, url_slots

KINDS = (
    "string",
    "text",
    "integer",
    "number",
    "boolean",
    "enum",
    "list",
    "pairs",
    "secret",
    "path",
    "choice",
    "expression",  # text in the expression language ({#...}): the form checks it as it is typed
)
TEXT_KINDS = ("string", "text", "secret", "path", "expression")  # kept as text, an empty one too
STORE_TYPES = ("NONE", "PEM", "JKS", "PKCS12")
STORES = STORE_TYPES[1:]
BINARY_STORES = ("JKS", "PKCS12")


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
    # (controlling path, (allowed values...)), or a tuple of such pairs that must all hold
    when: tuple | None = None
    help: str = ""
    multiline: bool = False  # a secret that is text of several lines (a PEM key)
    labels: tuple = ()  # what the form shows for each of `choices`, when not the value itself
    derive: Any = None  # choice: derive(values) -> the option the stored fields stand for
    writes: tuple = ()  # choice: ((option, ((path, value), ...)), ...)
    secret_pairs: bool = False  # pairs: the values of credential headers (secret_header) are secrets
    secret_url: bool = False  # a URL: the password of its `user:password@` is a secret

    def __post_init__(self):
        assert self.kind in KINDS, self.kind
        assert (self.kind == "choice") == (self.derive is not None), self.path

    @property
    def conditions(self):
        if not self.when:
            return ()
        return (self.when,) if isinstance(self.when[0], str) else self.when

    @property
    def secret(self):
        return self.kind == "secret"

    def slots(self, values):
        """The secrets this field holds in `values`: the whole value, credential headers' values
        or a URL's password."""
        value = get_path(values, self.path)
        if value in (None, ""):
            return
        if self.secret:
            yield Slot(
                (self.path,),
                value,
                lambda new: set_path(values, self.path, new) if new is not None else delete_path(values, self.path),
            )
        elif self.secret_pairs and isinstance(value, list):
            yield from header_slots(value, (self.path,))
        elif self.secret_url and isinstance(value, str):
            yield from url_slots(value, (self.path,), lambda new: set_path(values, self.path, new))


@dataclass(frozen=True)
class Settings:
    fields: tuple = ()
    # Keys that exist only in Gravitee's test kit: imported, ignored, named in a warning.
    ignored: tuple = ()
    # Rules across fields: callables taking the coerced values, returning {path: message}.
    checks: tuple = ()
    # (other spelling, path): a value found under the other spelling is kept under `path`.
    aliases: tuple = ()
    # (path prefix, legend): the form shows each field in the fieldset of its longest prefix.
    sections: tuple = ()
    _by_path: dict = dc_field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._by_path.update({f.path: f for f in self.fields})

    def __iter__(self):
        return iter(self.fields)

    def __bool__(self):
        return bool(self.fields)

    def current(self, f, values, choices=None):
        """A field's value; for a choice, the option chosen in the form or else derived."""
        if f.kind == "choice":
            choices = getattr(values, "choices", {}) if choices is None else choices
            chosen = choices.get(f.path)
            return chosen if chosen in f.choices else f.derive(values or {})
        value = get_path(values, f.path)
        return f.default if value is None else value

    def active(self, field, values, choices=None):
        """Is the field's conditional section switched on for these values?"""
        for path, allowed in field.conditions:
            controller = self._by_path.get(path)
            if controller is None:
                current = get_path(values, path)
            else:
                if not self.active(controller, values, choices):
                    return False
                current = self.current(controller, values, choices)
            if current not in allowed:
                return False
        return True

    # ----- validation of JSON values (import, REST, form results) -----
    def validate(self, values, prefix="", checks=True):
        """Return (clean values, errors). Known fields are coerced to their types; unknown keys are
        kept as they are so that a definition round-trips. Expression-language values ({#...})
        are kept as they are (they block Deploy until supported). Without `checks`, the rules
        across fields are skipped: an import keeps placeholders that a deploy then names."""
        choices = getattr(values, "choices", {})
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
            if f.kind == "choice":
                continue
            raw = get_path(values, f.path)
            name = prefix + f.path
            if isinstance(raw, str) and "{#" in raw:
                continue
            if raw is None or raw == "":
                if f.required and self.active(f, values, choices):
                    errors[name] = f"{f.label} is required"
                if raw == "" and f.kind not in TEXT_KINDS:
                    delete_path(values, f.path)
                continue
            try:
                set_path(values, f.path, coerce(f, raw))
            except ValueError as exc:
                errors[name] = f"{f.label}: {exc}"
        if checks:
            # Every problem at once: the rules across fields run too, except where a field they read
            # already failed its own check (what they would say of it is that error again).
            failed = set(errors)
            for check in self.checks:
                try:
                    found = check(values, self)
                except (TypeError, ValueError, AttributeError, KeyError):
                    if failed:
                        continue  # a value of the wrong type, already named above
                    raise
                errors.update(
                    {prefix + path: message for path, message in found.items() if prefix + path not in failed}
                )
        return values, errors

    def with_defaults(self, values: dict[str, Any] | None) -> dict[str, Any]:
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
    def secret_slots(self, values):
        """Every secret in these values: the declared fields' (secret fields, credential headers, URL
        passwords), then keys nobody declared whose names look secret."""
        for f in self.fields:
            yield from f.slots(values)
        yield from named_slots(values, lambda where: ".".join(map(str, where)) in self._by_path)

    def map_secrets(self, values, change):
        """A copy of the values with change(value) in place of each secret that is set."""
        return map_slots(self.secret_slots, values or {}, change)

    def mask_secrets(self, values):
        return self.map_secrets(values, lambda _: SECRET_MASK)

    def restore_secrets(self, values, previous):
        """A masked secret sent back (an export re-imported, a form left blank) keeps the old value."""
        return restore_slots(self.secret_slots, values, previous)


# ----- one-line summaries for the Backend services page -----
def summary_line(*parts):
    return " · ".join(str(p) for p in parts if p)


def store_summary(values, prefix, what="trust"):
    """`trust PEM (location)` for a store that is set, "" for none."""
    kind = get_path(values, prefix + ".type")
    if kind not in STORES:
        return ""
    located = any(get_path(values, f"{prefix}.{name}") for name in ("location", "path", "keyPath"))
    source = "location" if located else "content"
    return f"{what} {kind} ({source})"


def user_summary(values, path="security.auth.username"):
    return f"user {get_path(values, path)}" if get_path(values, path) else ""


def sides_summary(values, producer, consumer):
    """`producer → …` and `consumer ← …` for the enabled sides; each argument says where the side goes."""
    return (
        f"producer → {producer}" if get_path(values, "producer.enabled") else "",
        f"consumer ← {consumer}" if get_path(values, "consumer.enabled") else "",
    )


def topics_text(values):
    topics = values if isinstance(values, list) else [values] if values else []
    return ", ".join(map(str, topics)) or "?"


# ----- the seed's choices, declared once for every connector -----
def use_choice(producer="producer.enabled", consumer="consumer.enabled"):
    """ "Use Producer / Use Consumer / Use Producer and Consumer": one drop-down over Gravitee's
    two flags. Neither flag set shows both: an endpoint that does neither serves no entrypoint."""

    def derive(values):
        produce, consume = bool(get_path(values, producer)), bool(get_path(values, consumer))
        return "producer" if produce and not consume else "consumer" if consume and not produce else "both"

    return Field(
        "use",
        "choice",
        "Use",
        choices=("producer", "consumer", "both"),
        labels=("Use Producer", "Use Consumer", "Use Producer and Consumer"),
        derive=derive,
        writes=(
            ("producer", ((producer, True), (consumer, False))),
            ("consumer", ((producer, False), (consumer, True))),
            ("both", ((producer, True), (consumer, True))),
        ),
    )


@dataclass(frozen=True)
class Member:
    """One field of a store: shown for the store `types` and, when `source` is given, only
    "with" that source."""

    name: str
    kind: str
    label: str
    types: tuple = STORES
    source: str | None = None
    required: bool = False
    help: str = ""
    multiline: bool = False


def store_fields(prefix, type_field, sources, members):
    """A trust or key store's fields: its type, then "with <source>" (a form-only choice), then
    exactly the members for that pair. `sources` is ((value, label), ...), the first the default;
    the choice is derived from which members of a source are set."""
    choice_path = prefix + ".with"

    def derive(values):
        for source, _ in sources:
            if any(get_path(values, f"{prefix}.{m.name}") not in (None, "") for m in members if m.source == source):
                return source
        return sources[0][0]

    choice = Field(
        choice_path,
        "choice",
        type_field.label.replace(" type", "") + " with",
        choices=tuple(v for v, _ in sources),
        labels=tuple(label for _, label in sources),
        derive=derive,
        when=(type_field.path, STORES),
    )
    fields = [type_field, choice]
    for m in members:
        # The choice is shown only for a store type, so "with <source>" implies one.
        conditions = ((type_field.path, m.types),) if m.types != STORES or not m.source else ()
        if m.source:
            conditions += ((choice_path, (m.source,)),)
        fields.append(
            Field(
                f"{prefix}.{m.name}",
                m.kind,
                m.label,
                required=m.required,
                help=m.help,
                when=conditions,
                multiline=m.multiline,
            )
        )
    return tuple(fields)


LOCATION_HELP = "A file under GATEHOUSE_CERTS_DIR."


def trust_store(prefix, type_field, location="location", content="certificates"):
    """Trust store fields under Gravitee's names for this connector (`location` / `certificates`
    for Kafka, `path` / `content` elsewhere)."""
    return store_fields(
        prefix,
        type_field,
        (("location", "with location"), ("certificates", "with certificates")),
        (
            Member(location, "path", "Trust store location", source="location", required=True, help=LOCATION_HELP),
            Member(
                content,
                "text",
                "Trust store certificates",
                source="certificates",
                required=True,
                help="PEM text; JKS and PKCS12: the store file in base64.",
            ),
            Member("password", "secret", "Trust store password", types=BINARY_STORES),
        ),
    )


def kafka_key_store(prefix, type_field):
    """Kafka's key store: the seed's pairs (PEM with location: chain + location; PEM with key:
    chain + key + key password; JKS / PKCS12 with location: location + store password; with
    key: key + key password + store password)."""
    return store_fields(
        prefix,
        type_field,
        (("location", "with location"), ("key", "with key")),
        (
            Member(
                "certificateChain",
                "text",
                "Certificate chain (PEM)",
                types=("PEM",),
                help="The client certificate first, then any intermediate CAs.",
            ),
            Member("location", "path", "Key store location", source="location", required=True, help=LOCATION_HELP),
            Member(
                "key",
                "secret",
                "Key",
                source="key",
                required=True,
                multiline=True,
                help="PEM text; JKS and PKCS12: the store file in base64.",
            ),
            Member("keyPassword", "secret", "Key password", source="key"),
            Member("password", "secret", "Key store password", types=BINARY_STORES, required=True),
        ),
    )


def gravitee_key_store(prefix, type_field, extra=()):
    """The key store of the HTTP proxy, MQTT 5, RabbitMQ and Solace connectors, under their names:
    PEM `certPath` + `keyPath` or `certContent` + `keyContent`; JKS / PKCS12 `path` or `content`,
    with `password`. `extra` members follow (the HTTP proxy's alias and key password)."""
    return store_fields(
        prefix,
        type_field,
        (("location", "with location"), ("key", "with key")),
        (
            Member(
                "certPath",
                "path",
                "Certificate chain location",
                types=("PEM",),
                source="location",
                help=LOCATION_HELP + " The client certificate first.",
            ),
            Member(
                "keyPath", "path", "Key location", types=("PEM",), source="location", required=True, help=LOCATION_HELP
            ),
            Member(
                "certContent",
                "text",
                "Certificate chain (PEM)",
                types=("PEM",),
                source="key",
                help="The client certificate first, then any intermediate CAs.",
            ),
            Member("keyContent", "secret", "Key (PEM)", types=("PEM",), source="key", required=True, multiline=True),
            Member(
                "path",
                "path",
                "Key store location",
                types=BINARY_STORES,
                source="location",
                required=True,
                help=LOCATION_HELP,
            ),
            Member(
                "content",
                "secret",
                "Key store content (base64)",
                types=BINARY_STORES,
                source="key",
                required=True,
                multiline=True,
            ),
            Member("password", "secret", "Key store password", types=BINARY_STORES, required=True),
            *extra,
        ),
    )


def coerce(f, raw):
    kind = f.kind
    if kind in TEXT_KINDS:
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
            isinstance(p, dict) and isinstance(p.get("name"), str) and p.get("name") for p in raw
        ):
            raise ValueError("must be a list of {name, value}")
        # Keys a pair has besides its name and value (a policy's appendToExistingArray) are kept.
        return [{**p, "name": p["name"], "value": "" if p.get("value") is None else str(p["value"])} for p in raw]
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
        raise ValueError(
            "file paths are refused: set GATEHOUSE_CERTS_DIR to the folder that holds key and trust stores"
        )
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
