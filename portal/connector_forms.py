"""A connector's settings declaration (gateway_runtime.settings) as an HTML form: the fields shown
for the values at hand, grouped in sections, the text each input shows, and the posted form read
back into values. Templates reach these functions as `connector_forms` (_settings.html)."""

import json

from gateway_runtime.definition.slots import SECRET_MASK, map_slots
from gateway_runtime.settings import delete_path, get_path, parse_pairs, set_path


class FormValues(dict):
    """Values read from a form, with the form-only choices made in it beside them."""

    def __init__(self, values=(), choices=None):
        super().__init__(values)
        self.choices = dict(choices or {})


def from_form(settings, form, prefix, previous=None):
    """Build values from posted form fields named `prefix + path`. Fields of switched-off
    sections are dropped. Returns (FormValues, errors): the choices made ride beside."""
    values, choices = {}, {}
    for f in settings.fields:
        key = prefix + f.path
        if f.kind == "choice":
            if form.get(key) in f.choices:
                choices[f.path] = form[key]
            continue
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
    for f in settings.fields:
        for path, value in dict(f.writes).get(choices.get(f.path), ()):
            set_path(values, path, value)
    for f in settings.fields:
        if not settings.active(f, values, choices):
            delete_path(values, f.path)
    values = settings.restore_secrets(values, previous)
    clean, errors = settings.validate(FormValues(values, choices))
    return FormValues(prune_empty(clean), choices), {prefix + k: v for k, v in errors.items()}


def for_form(settings, values):
    """Values as a form shows them: every choice made (or derived from the stored fields),
    and the fields it writes set accordingly."""
    choices = dict(getattr(values, "choices", {}))
    values = json.loads(json.dumps(values or {}))
    for f in settings.fields:
        if f.kind == "choice" and f.path not in choices and settings.active(f, values, choices):
            choices[f.path] = f.derive(values)
        for path, value in dict(f.writes).get(choices.get(f.path), ()):
            set_path(values, path, value)
    return FormValues(values, choices)


def controlling_paths(settings):
    """The fields whose change refreshes the form: they switch sections on and off."""
    paths = {path for f in settings.fields for path, _ in f.conditions}
    return paths | {f.path for f in settings.fields if f.writes}


def written_paths(settings):
    """Stored fields set by a choice: the form shows the choice instead of them."""
    return {path for f in settings.fields for _, pairs in f.writes for path, _ in pairs}


def shown(settings, values):
    """The fields a form shows for these values, grouped in sections: [(legend, [field...])]."""
    groups, written = [], written_paths(settings)
    for f in settings.fields:
        if f.path in written or not settings.active(f, values):
            continue
        name = legend(settings, f)
        if not groups or groups[-1][0] != name:
            groups.append((name, []))
        groups[-1][1].append(f)
    return groups


def legend(settings, f):
    """The section a field is shown in: the longest matching prefix of `sections`."""
    matches = [
        (prefix, legend) for prefix, legend in settings.sections if f.path == prefix or f.path.startswith(prefix + ".")
    ]
    return max(matches, key=lambda m: len(m[0]))[1] if matches else ""


def options(f):
    """(value, label) of each choice of an enum or a choice."""
    return tuple(zip(f.choices, f.labels or f.choices, strict=True))


def is_set(f, values):
    return get_path(values or {}, f.path) not in (None, "")


def form_value(settings, f, values):
    """The text an input shows for a field (secrets are never echoed back)."""
    if f.kind == "choice":
        return settings.current(f, values)
    if f.secret:
        return ""
    # Shown with its secret parts masked: credential headers' values, a URL's password.
    holds_secrets = f.secret_pairs or f.secret_url
    value = get_path(map_slots(f.slots, values or {}, lambda _: SECRET_MASK) if holds_secrets else values or {}, f.path)
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


def prune_empty(values):
    if isinstance(values, dict):
        out = {}
        for key, value in values.items():
            value = prune_empty(value)
            if value != {}:
                out[key] = value
        return out
    return values
