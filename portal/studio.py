"""The Policies tab (Policy Studio): an API's flows and its plans' flows, their selectors and their
steps per phase, edited in place. Each action is a small view; an HTMX request gets the studio
partial back, a plain form post a redirect (or the page with the refused form). Every save is the
whole definition validated as an import is (ui._save_edit), so a refused one stores nothing."""

import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from gateway_runtime import registry
from gateway_runtime.settings import Field, Settings
from gateway_runtime.specs import MESSAGE_PHASES, PHASES

from . import apis
from .auth import can_manage, requires
from .connector_forms import from_form
from .ui import _api, _save_edit

bp = Blueprint("studio", __name__)

MODES = ("DEFAULT", "BEST_MATCH")
OPERATORS = ("STARTS_WITH", "EQUALS")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT")
OPERATIONS = ("PUBLISH", "SUBSCRIBE")
# Selector types the flow form edits; a flow's other selectors are kept as they are.
SELECTOR_TYPES = ("http", "channel", "condition")
ACTIONS = ("toggle", "delete", "up", "down")
API_SCOPE = "api"  # the URL's scope of the API's own flows ("All plans"); any other scope is a plan id

# The parts of the flow and step forms that are settings like a connector's, so that they render,
# read and validate (and expressions check themselves as typed) through the connector form machinery.
NAMED = (Field("name", "string", "Name", required=True), Field("enabled", "boolean", "Enabled"))
FLOW_HEAD = Settings(
    fields=(
        *NAMED,
        Field(
            "condition",
            "expression",
            "Condition selector",
            help="The flow runs only when this holds, e.g. {#request.headers['x-tenant'] == 'eu'}; empty: always",
        ),
    )
)
STEP_HEAD = Settings(
    fields=(
        *NAMED,
        Field(
            "condition",
            "expression",
            "Condition",
            help="The step runs only when this holds, e.g. {#request.headers['x-want'] != null}; empty: always",
        ),
        Field(
            "messageCondition",
            "expression",
            "Message condition",
            help="Read for each message, e.g. {#message.headers['kind'] == 'order'}; empty: every message",
        ),
    )
)
FLOW_PREFIX, STEP_PREFIX, CONFIG_PREFIX = "flow.", "step.", "cfg."


def _phases(api):
    return PHASES if api.type == "message" else tuple(p for p in PHASES if p not in MESSAGE_PHASES)


def _policies_for(api, phase):
    return [spec for spec in registry.policies().values() if phase in spec.phases and phase in _phases(api)]


def _entrypoint_types(d):
    return [e["type"] for listener in d["listeners"] for e in listener.get("entrypoints") or []]


def _flows(d, scope):
    """The flow list of a scope (created empty when absent) and where validation names it."""
    if scope == API_SCOPE:
        return d.setdefault("flows", []), "flows"
    for i, plan in enumerate(d.get("plans") or []):
        if plan.get("id") == scope:
            return plan.setdefault("flows", []), f"plans[{i}].flows"
    abort(404, f"This API has no plan with id {scope}. Go back to the Policies tab to pick a flow.")


def _flow(d, scope, index):
    flows, where = _flows(d, scope)
    if not 0 <= index < len(flows):
        abort(404, f"There is no flow {index + 1} there (any more). Go back to the Policies tab.")
    return flows, flows[index], f"{where}[{index}]"


def _steps(api, flow, phase):
    if phase not in _phases(api):
        abort(
            404, f"{api.type.capitalize()} APIs have no {phase} phase; their phases: " + ", ".join(_phases(api)) + "."
        )
    return flow.setdefault(phase, [])


def _step(api, flow, phase, index):
    steps = _steps(api, flow, phase)
    if not 0 <= index < len(steps):
        abort(404, f"There is no step {index + 1} in the {phase} phase (any more). Go back to the Policies tab.")
    return steps, steps[index]


def _policy_spec(api, phase, policy):
    spec = registry.policy(policy)
    if spec is None or spec not in _policies_for(api, phase):
        offered = ", ".join(s.label for s in _policies_for(api, phase)) or "none"
        abort(400, f"Policy: choose one that runs in the {phase} phase ({offered}).")
    return spec


def _kind(selector):
    """A selector's type as the canonical form spells it (imports may say CHANNEL)."""
    return str(selector.get("type", "")).lower() if isinstance(selector, dict) else None


# ----- what the page shows -----
def selector_summary(selector):
    kind = _kind(selector)
    if kind == "http":
        methods = ", ".join(selector.get("methods") or []) or "any method"
        return f"path {selector.get('pathOperator', 'STARTS_WITH')} {selector.get('path', '/')} · {methods}"
    if kind == "channel":
        parts = [f"channel {selector.get('channelOperator', 'STARTS_WITH')} {selector.get('channel', '/')}"]
        parts.append(", ".join(selector.get("operations") or []) or "any operation")
        parts.append(", ".join(selector.get("entrypoints") or []) or "any entrypoint")
        return " · ".join(parts)
    if kind == "condition":
        return f"condition {selector.get('condition', '')}"
    return f"{kind} selector (kept as imported)"


def _sections(d):
    sections = [("All plans", API_SCOPE, d.get("flows") or [])]
    sections += [(f"Plan {p.get('name')}", p["id"], p.get("flows") or []) for p in d.get("plans") or []]
    return sections


def _flow_values(flow):
    """The flow form's values from a flow (stored, or as posted)."""
    by_type = {_kind(s): s for s in flow.get("selectors") or [] if isinstance(s, dict)}
    return dict(
        head={
            "name": flow.get("name", ""),
            "enabled": flow.get("enabled", True) is not False,
            "condition": by_type.get("condition", {}).get("condition", ""),
        },
        http=by_type.get("http"),
        channel=by_type.get("channel"),
    )


def _render(api, editor=None, errors=None, status=200, message=None):
    """The studio partial for HTMX; the whole page for a plain request."""
    d = apis.definition_of(api)
    template = "_studio.html" if request.headers.get("HX-Request") else "policies.html"
    return render_template(
        template,
        api=api,
        definition=d,
        execution=d.get("flowExecution") or {},
        sections=_sections(d),
        phases=_phases(api),
        policies_for=lambda phase: _policies_for(api, phase),
        policy_label=lambda policy: getattr(registry.policy(policy), "label", None),
        summary_of=selector_summary,
        field_errors={k: v for k, v in (errors or {}).items() if k != "form"},
        deploy_next=url_for("studio.policies", api_id=api.id),
        editable=can_manage(api),
        editor=editor,
        errors=errors or {},
        message=message,
        modes=MODES,
        operators=OPERATORS,
        methods=METHODS,
        operations=OPERATIONS,
        entrypoint_types=_entrypoint_types(d),
        flow_head=FLOW_HEAD,
        step_head=STEP_HEAD,
        message_phases=MESSAGE_PHASES,
        oob=bool(request.headers.get("HX-Request")),
    ), status


def _done(api, message):
    """A save went through: the studio again (HTMX), or back to the page with the message."""
    if request.headers.get("HX-Request"):
        return _render(api, message=message)
    flash(message)
    return redirect(url_for("studio.policies", api_id=api.id))


def _save(api, d, field_of, editor, message):
    errors, status = _save_edit(api, d, field_of)
    if errors:
        return _render(api, editor, errors, status)
    return _done(api, message)


def _field_of(prefix, inputs):
    """Validation's field name -> the input it is about: `inputs` maps what follows `prefix`
    (a regular expression match) to an input name; anything else is the form's."""

    def field_of(where):
        if where.startswith(prefix):
            rest = where[len(prefix) :].lstrip(".")
            for pattern, name in inputs:
                found = re.fullmatch(pattern, rest)
                if found:
                    return name(found) if callable(name) else name
        return "form"

    return field_of


@bp.get("/apis/<api_id>/policies")
@requires("viewer")
def policies(api_id):
    return _render(_api(api_id))


@bp.post("/apis/<api_id>/policies/execution")
@requires("owner", api="api_id")
def save_execution(api_id):
    api = _api(api_id)
    d = apis.definition_of(api)
    mode = request.form.get("mode", "")
    editor = dict(kind="execution", mode=mode, matchRequired=request.form.get("matchRequired") == "on")
    if mode not in MODES:
        return _render(api, editor, {"mode": "Flow execution mode: choose DEFAULT or BEST_MATCH."}, 400)
    d["flowExecution"] = dict(d.get("flowExecution") or {}, mode=mode, matchRequired=editor["matchRequired"])
    field_of = _field_of("flowExecution", ((r"mode", "mode"), (r"matchRequired", "matchRequired")))
    return _save(api, d, field_of, editor, "Flow execution saved. Redeploy to apply.")


# ----- flows -----
def _new_flow(api, d, flows):
    if api.type == "message":
        selector = {"type": "channel", "channel": "/", "channelOperator": "STARTS_WITH"}
        selector.update(operations=list(OPERATIONS), entrypoints=[])
    else:
        selector = {"type": "http", "path": "/", "pathOperator": "STARTS_WITH", "methods": []}
    flow = {"name": f"Flow {len(flows) + 1}", "enabled": True, "selectors": [selector]}
    flow.update({phase: [] for phase in _phases(api)})
    return flow


@bp.post("/apis/<api_id>/policies/<scope>/flows")
@requires("owner", api="api_id")
def add_flow(api_id, scope):
    api = _api(api_id)
    d = apis.definition_of(api)
    flows, _ = _flows(d, scope)
    flows.append(_new_flow(api, d, flows))
    editor = dict(kind="flow", scope=scope, flow=len(flows) - 1, **_flow_values(flows[-1]))
    errors, status = _save_edit(api, d, lambda where: "form")
    if errors:
        return _render(api, None, errors, status)
    if request.headers.get("HX-Request"):  # its form opens at once: a new flow is named and aimed next
        return _render(api, editor, message=f"{flows[-1]['name']} added. Redeploy to apply.")
    flash(f"{flows[-1]['name']} added. Redeploy to apply.")
    return redirect(url_for("studio.edit_flow", api_id=api.id, scope=scope, flow=len(flows) - 1))


def _checked(form, name, offered):
    return [value for value in offered if value in form.getlist(name)]


def _read_selectors(api, d, form, stored, errors):
    """The flow's selectors as posted: an http (proxy APIs) or channel (message APIs) selector when
    ticked, a condition one when typed; selectors of other types are kept."""
    selectors = []
    kind = "http" if api.type != "message" else "channel"
    if form.get(f"{kind}.on"):
        key = "path" if kind == "http" else "channel"
        target = form.get(f"{kind}.{key}", "").strip() or "/"
        operator = form.get(f"{kind}.{key}Operator", "")
        if operator not in OPERATORS:
            errors[f"{kind}.{key}Operator"] = f"{key.capitalize()} operator: choose STARTS_WITH or EQUALS."
        if kind == "http":
            if not target.startswith("/") or any(c.isspace() for c in target):
                errors["http.path"] = "Path: it starts with '/' and has no spaces, for example /orders."
            selectors.append(
                {
                    "type": "http",
                    "path": target,
                    "pathOperator": operator,
                    "methods": _checked(form, "http.methods", METHODS),
                }
            )
        else:
            selectors.append(
                {
                    "type": "channel",
                    "channel": target,
                    "channelOperator": operator,
                    "operations": _checked(form, "channel.operations", OPERATIONS),
                    "entrypoints": _checked(form, "channel.entrypoints", _entrypoint_types(d)),
                }
            )
    head, problems = from_form(FLOW_HEAD, form, FLOW_PREFIX)
    errors.update(problems)
    if head.get("condition", "").strip():
        selectors.append({"type": "condition", "condition": head["condition"].strip()})
    kept = [s for s in stored if _kind(s) not in SELECTOR_TYPES]
    return head, selectors + kept


def _flow_field_of(where, selectors):
    def selector_input(found):
        kind = _kind(selectors[int(found.group(1))]) if int(found.group(1)) < len(selectors) else None
        if kind == "condition":
            return FLOW_PREFIX + "condition"
        if kind in ("http", "channel"):
            return f"{kind}.{found.group(2)}" if found.group(2) else f"{kind}.on"
        return "form"

    return _field_of(where, ((r"name", FLOW_PREFIX + "name"), (r"selectors\[(\d+)\](?:\.(\w+))?.*", selector_input)))


@bp.route("/apis/<api_id>/policies/<scope>/flows/<int:flow>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_flow(api_id, scope, flow):
    api = _api(api_id)
    d = apis.definition_of(api)
    _, stored, where = _flow(d, scope, flow)
    if request.method == "GET":
        return _render(api, dict(kind="flow", scope=scope, flow=flow, **_flow_values(stored)))
    errors = {}
    head, selectors = _read_selectors(api, d, request.form, stored.get("selectors") or [], errors)
    stored.update(name=head.get("name", "").strip(), enabled=bool(head.get("enabled")), selectors=selectors)
    editor = dict(kind="flow", scope=scope, flow=flow, **_flow_values(stored))
    editor["head"]["name"] = request.form.get(FLOW_PREFIX + "name", "")
    if errors:
        return _render(api, editor, errors, 400)
    return _save(api, d, _flow_field_of(where, selectors), editor, f"Flow {stored['name']} saved. Redeploy to apply.")


def _moved(items, index, action):
    """The list after `action` on its item at `index`; what the action did, said in words."""
    item = items[index]
    if action == "delete":
        del items[index]
        return "deleted"
    if action == "toggle":
        item["enabled"] = item.get("enabled", True) is False
        return "enabled" if item["enabled"] else "disabled"
    other = index - 1 if action == "up" else index + 1
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
    return "moved " + action


@bp.post("/apis/<api_id>/policies/<scope>/flows/<int:flow>/<any(toggle,delete,up,down):action>")
@requires("owner", api="api_id")
def flow_action(api_id, scope, flow, action):
    api = _api(api_id)
    d = apis.definition_of(api)
    flows, stored, _ = _flow(d, scope, flow)
    done = _moved(flows, flow, action)
    return _save(api, d, lambda where: "form", None, f"Flow {stored.get('name')} {done}. Redeploy to apply.")


# ----- steps -----
def _step_editor(api, scope, flow, phase, index, spec, step, configuration=None):
    head = {key: step.get(key, "") for key in ("name", "condition", "messageCondition")}
    head["enabled"] = step.get("enabled", True) is not False
    return dict(
        kind="step",
        scope=scope,
        flow=flow,
        phase=phase,
        step=index,
        spec=spec,
        head=head,
        configuration=(step.get("configuration") or {}) if configuration is None else configuration,
        refresh_url=url_for("studio.step_fields", api_id=api.id, policy=spec.type),
    )


def _step_head(phase):
    """The step fields this phase has: a message condition only where messages pass."""
    return Settings(fields=tuple(f for f in STEP_HEAD if f.path != "messageCondition" or phase in MESSAGE_PHASES))


def _save_step(api, d, scope, flow, phase, index, spec, steps, where):
    """Read the posted step (a new one when `index` is None) into its phase and save, or render the
    form again with each error beside its input."""
    form = request.form
    stored = steps[index] if index is not None else {}
    head, errors = from_form(_step_head(phase), form, STEP_PREFIX)
    configuration, problems = from_form(spec.configuration, form, CONFIG_PREFIX, stored.get("configuration"))
    errors.update(problems)
    step = dict(stored, name=head.get("name", "").strip(), policy=spec.type, enabled=bool(head.get("enabled")))
    # Keys the policy does not declare (an import's) are not in the form: they stay as they were.
    declared = {f.path.split(".")[0] for f in spec.configuration}
    kept = {k: v for k, v in (stored.get("configuration") or {}).items() if k not in declared}
    step["configuration"] = {**kept, **configuration}
    for key in ("condition", "messageCondition"):
        step.pop(key, None)
        if head.get(key, "").strip():
            step[key] = head[key].strip()
    position = len(steps) if index is None else index
    editor = _step_editor(api, scope, flow, phase, index, spec, step, configuration)
    editor["head"]["name"] = form.get(STEP_PREFIX + "name", "")
    if errors:
        return _render(api, editor, errors, 400)
    if index is None:
        steps.append(step)
    else:
        steps[index] = step
    fields = {f.path for f in spec.configuration}

    def config_input(found):
        # addHeaders[0].value -> addHeaders: the field whose path the rest starts with
        path = re.split(r"\[", found.group(1))[0]
        while path and path not in fields:
            path = path.rpartition(".")[0]
        return CONFIG_PREFIX + path if path else "form"

    field_of = _field_of(
        f"{where}.{phase}[{position}]",
        (
            (r"configuration\.(.+)", config_input),
            (r"(name|condition|messageCondition|enabled)", lambda found: STEP_PREFIX + found.group(1)),
        ),
    )
    verb = "added" if index is None else "saved"
    return _save(api, d, field_of, editor, f"Step {step['name']} {verb} in the {phase} phase. Redeploy to apply.")


@bp.route("/apis/<api_id>/policies/<scope>/flows/<int:flow>/<phase>/new", methods=["GET", "POST"])
@requires("owner", api="api_id")
def new_step(api_id, scope, flow, phase):
    """GET: the form of a new step of the chosen policy (the first offered when none is named)."""
    api = _api(api_id)
    d = apis.definition_of(api)
    _, stored, where = _flow(d, scope, flow)
    steps = _steps(api, stored, phase)
    offered = _policies_for(api, phase)
    chosen = request.values.get("policy") or (offered[0].type if offered and request.method == "GET" else "")
    spec = _policy_spec(api, phase, chosen)
    if request.method == "GET":
        return _render(api, _step_editor(api, scope, flow, phase, None, spec, {"name": spec.label, "enabled": True}))
    return _save_step(api, d, scope, flow, phase, None, spec, steps, where)


@bp.route("/apis/<api_id>/policies/<scope>/flows/<int:flow>/<phase>/<int:step>/edit", methods=["GET", "POST"])
@requires("owner", api="api_id")
def edit_step(api_id, scope, flow, phase, step):
    api = _api(api_id)
    d = apis.definition_of(api)
    _, stored, where = _flow(d, scope, flow)
    steps, found = _step(api, stored, phase, step)
    spec = registry.policy(found.get("policy"))
    if spec is None:
        abort(
            400,
            f"The policy {found.get('policy')} is not built into this gateway: its step is kept as imported "
            "and cannot be edited here. Delete it, or import a definition without it.",
        )
    if request.method == "GET":
        return _render(api, _step_editor(api, scope, flow, phase, step, spec, found))
    return _save_step(api, d, scope, flow, phase, step, spec, steps, where)


@bp.post("/apis/<api_id>/policies/_fields")
@requires("owner", api="api_id")
def step_fields(api_id):
    """The HTMX refresh of a step's policy settings (a field that switches others changed)."""
    _api(api_id)
    spec = registry.policy(request.args.get("policy"))
    if spec is None:
        abort(400, "Policy: choose one of the policies this gateway has.")
    values, _ = from_form(spec.configuration, request.form, CONFIG_PREFIX)
    refresh_url = url_for("studio.step_fields", api_id=api_id, policy=spec.type)
    return render_template("_step_fields.html", spec=spec, values=values, errors={}, refresh_url=refresh_url)


@bp.post("/apis/<api_id>/policies/<scope>/flows/<int:flow>/<phase>/<int:step>/<any(toggle,delete,up,down):action>")
@requires("owner", api="api_id")
def step_action(api_id, scope, flow, phase, step, action):
    api = _api(api_id)
    d = apis.definition_of(api)
    _, stored, _ = _flow(d, scope, flow)
    steps, found = _step(api, stored, phase, step)
    done = _moved(steps, step, action)
    return _save(api, d, lambda where: "form", None, f"Step {found.get('name')} {done}. Redeploy to apply.")
