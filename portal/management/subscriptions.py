"""Management API routes for plans and consumers: plans of an API, applications, subscriptions and
API keys (the Gravitee APIM v2 routes and shapes, JSON, on the management blueprint and its auth)."""

from flask import abort, g, jsonify, request

from gateway_runtime import plans as rules
from gateway_runtime.definition import forms

from .. import apis
from .. import subscriptions as subs
from ..auth import can_manage, can_use, ensure, requires
from ..models import MAX_ROW_ID, ApiKey, db
from .blueprint import ENV, bp, find_api, json_body


def _plan(api, plan_id):
    plan = subs.find_plan(api, plan_id)
    if plan is None:
        abort(404, f"API {api.name} has no plan {plan_id}.")
    return plan


def _subscription(api, subscription_id, api_owner=True, application_owner=True):
    """The subscription, once the current user is shown to be one who may act on it: the API's
    owner and / or its application's owner, as allowed (admins always)."""
    subscription = subs.find_subscription(subscription_id)
    if subscription is None or subscription.api_id != api.id:
        abort(404, f"API {api.name} has no subscription {subscription_id}.")
    whose = " or ".join(
        w
        for w, allowed in (
            (f"the owner of the API {api.name}", api_owner),
            (f"the owner of the application {subscription.application.name}", application_owner),
        )
        if allowed
    )
    ensure((api_owner and can_manage(api)) or (application_owner and can_use(subscription.application)), whose)
    return subscription


def plan_json(plan):
    d = apis.plan_definition(plan)
    if d["security"].get("configuration"):
        d["security"]["configuration"] = rules.mask_secret(d["security"]["configuration"])
    _, (out,) = forms.to_management_form({"plans": [d]})
    out.setdefault("validation", subs.validation(plan))
    out["apiId"] = plan.api_id
    return out


def application_json(application):
    return {
        "id": application.id,
        "name": application.name,
        "description": application.description,
        "settings": {"app": {"clientId": application.client_id}},
        "owner": {"id": application.owner_id},
        "createdAt": application.created_at.isoformat() + "Z",
    }


def key_json(key, clear=None):
    out = {
        "id": str(key.id),
        "prefix": key.prefix,
        "revoked": key.revoked_at is not None,
        "createdAt": key.created_at.isoformat() + "Z",
        "revokedAt": key.revoked_at.isoformat() + "Z" if key.revoked_at else None,
    }
    if clear is not None:
        out["key"] = clear  # the only time the key is shown
    return out


def subscription_json(subscription, clear_key=None):
    out = {
        "id": subscription.id,
        "api": {"id": subscription.api_id},
        "plan": {"id": subscription.plan_id},
        "application": {"id": subscription.application_id, "name": subscription.application.name},
        "status": subscription.status,
        "reason": subscription.reason,
        "createdAt": subscription.created_at.isoformat() + "Z",
        "processedAt": subscription.processed_at.isoformat() + "Z" if subscription.processed_at else None,
        "processedBy": subscription.processed_by,
        "metadata": subscription.subscription_metadata or {},
    }
    if clear_key is not None:
        out["apiKey"] = clear_key  # the only time the key is shown
    if subscription.consumer_configuration is not None:
        out["consumerConfiguration"] = subs.masked_consumer(subscription)
    return out


def webhook_json(subscription):
    """A push subscription's delivery state and its last attempts, newest first."""
    state = subs.webhook_state(subscription)
    return {
        "state": state.state if state else "pending",
        "detail": state.detail if state else None,
        "deliveries": [
            {
                "at": d.created_at.isoformat() + "Z",
                "messageId": d.message_id,
                "attempt": d.attempt,
                "status": d.status,
                "latencyMs": d.latency_ms,
                "outcome": d.outcome,
                "detail": d.detail,
                "gateway": d.gateway,
            }
            for d in subs.deliveries(subscription)
        ],
    }


def _text(body, field):
    """A text field of a JSON body (None when absent); any other JSON type is refused, as the
    portal's forms only ever send text."""
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise subs.Invalid({field: f"{field} must be a string."})
    return value


def _fields(body):
    security = body.get("security") if isinstance(body.get("security"), dict) else {}
    configuration = security.get("configuration")
    return {
        "name": _text(body, "name"),
        "description": _text(body, "description"),
        "type": rules.PUSH
        if forms.gateway_enum(body.get("mode")) == rules.PUSH
        else forms.gateway_enum(security.get("type")),
        "validation": body.get("validation", "AUTO"),
        "configuration": configuration if isinstance(configuration, dict) else {},
    }


# ----- plans -----
@bp.get(ENV + "/apis/<api_id>/plans")
@requires("viewer")
def list_plans(api_id):
    return jsonify({"data": [plan_json(p) for p in find_api(api_id).plans]})


@bp.post(ENV + "/apis/<api_id>/plans")
@requires("owner", api="api_id")
def create_plan(api_id):
    return jsonify(plan_json(subs.save_plan(find_api(api_id), None, _fields(json_body())))), 201


@bp.get(ENV + "/apis/<api_id>/plans/<plan_id>")
@requires("viewer")
def get_plan(api_id, plan_id):
    api = find_api(api_id)
    return jsonify(plan_json(_plan(api, plan_id)))


@bp.put(ENV + "/apis/<api_id>/plans/<plan_id>")
@requires("owner", api="api_id")
def update_plan(api_id, plan_id):
    api = find_api(api_id)
    return jsonify(plan_json(subs.save_plan(api, _plan(api, plan_id), _fields(json_body()))))


@bp.post(ENV + "/apis/<api_id>/plans/<plan_id>/<any(_publish, _deprecate, _close):action>")
@requires("owner", api="api_id")
def move_plan(api_id, plan_id, action):
    api = find_api(api_id)
    plan = _plan(api, plan_id)
    status = {"_publish": "published", "_deprecate": "deprecated", "_close": "closed"}[action]
    subs.move_plan(plan, status, g.user.username)
    return jsonify(plan_json(plan))


# ----- applications -----
@bp.get(ENV + "/applications")
@requires("viewer")
def list_applications():
    return jsonify({"data": [application_json(a) for a in subs.all_applications()]})


@bp.post(ENV + "/applications")
@requires("owner")
def create_application():
    body = json_body()
    settings = body.get("settings") if isinstance(body.get("settings"), dict) else {}
    app_settings = settings.get("app") if isinstance(settings.get("app"), dict) else {}
    client_id = _text(body, "clientId") or _text(app_settings, "clientId")
    application = subs.create_application(_text(body, "name"), _text(body, "description"), client_id, g.user)
    return jsonify(application_json(application)), 201


@bp.get(ENV + "/applications/<application_id>")
@requires("viewer")
def get_application(application_id):
    application = subs.find_application(application_id)
    if application is None:
        abort(404, f"No application with id {application_id}.")
    return jsonify(application_json(application))


# ----- subscriptions -----
@bp.get(ENV + "/apis/<api_id>/subscriptions")
@requires("viewer")
def list_subscriptions(api_id):
    api = find_api(api_id)
    # The API's owner sees every subscription; an application's owner, those of their applications.
    return jsonify(
        {"data": [subscription_json(s) for s in api.subscriptions if can_manage(api) or can_use(s.application)]}
    )


@bp.post(ENV + "/apis/<api_id>/subscriptions")
@requires("owner")
def create_subscription(api_id):
    body = json_body()
    application = subs.find_application(str(body.get("applicationId")))
    if application is None:
        raise subs.Invalid({"applicationId": f"No application with id {body.get('applicationId')}."})
    ensure(can_use(application), f"the owner of the application {application.name}")
    subscription, key = subs.subscribe(
        application,
        find_api(api_id),
        str(body.get("planId")),
        g.user.username,
        body.get("consumerConfiguration"),
        body.get("metadata"),
    )
    return jsonify(subscription_json(subscription, key)), 201


@bp.get(ENV + "/apis/<api_id>/subscriptions/<subscription_id>")
@requires("viewer")
def get_subscription(api_id, subscription_id):
    subscription = _subscription(find_api(api_id), subscription_id)
    out = subscription_json(subscription)
    if subscription.consumer_configuration is not None:
        out["gatehouse"] = {"webhook": webhook_json(subscription)}
    return jsonify(out)


@bp.put(ENV + "/apis/<api_id>/subscriptions/<subscription_id>")
@requires("owner")
def update_subscription(api_id, subscription_id):
    subscription = _subscription(find_api(api_id), subscription_id, api_owner=False)
    subs.update(subscription, json_body())
    return jsonify(subscription_json(subscription))


@bp.post(ENV + "/apis/<api_id>/subscriptions/<subscription_id>/<any(_retry, _resume):action>")
@requires("owner")
def push_subscription(api_id, subscription_id, action):
    """A push subscription's "retry now" (while it waits to try again) and "resume" (once failed)."""
    subscription = _subscription(find_api(api_id), subscription_id)
    (subs.retry_now if action == "_retry" else subs.resume)(subscription)
    return jsonify(subscription_json(subscription))


# Changes need the owner role: an application's owner made a viewer since changes nothing (can_use
# alone would let them, as they still own the application).
@bp.post(ENV + "/apis/<api_id>/subscriptions/<subscription_id>/<any(_accept, _reject, _close):action>")
@requires("owner")
def process_subscription(api_id, subscription_id, action):
    subscription = _subscription(find_api(api_id), subscription_id, application_owner=action == "_close")
    if action == "_accept":
        subs.accept(subscription, g.user.username)
    elif action == "_reject":
        # The body is optional; when sent, it is a JSON object whose reason is text.
        subs.reject(subscription, g.user.username, _text(json_body() if request.get_data() else {}, "reason"))
    else:
        subs.close(subscription, g.user.username)
    return jsonify(subscription_json(subscription))


# ----- API keys -----
@bp.get(ENV + "/apis/<api_id>/subscriptions/<subscription_id>/api-keys")
@requires("viewer")
def list_api_keys(api_id, subscription_id):
    subscription = _subscription(find_api(api_id), subscription_id)
    return jsonify({"data": [key_json(k) for k in subscription.api_keys]})


@bp.post(ENV + "/apis/<api_id>/subscriptions/<subscription_id>/api-keys/_renew")
@requires("owner")
def renew_api_key(api_id, subscription_id):
    subscription = _subscription(find_api(api_id), subscription_id, api_owner=False)
    return jsonify(key_json(*subs.renew_key(subscription))), 201


@bp.post(ENV + "/apis/<api_id>/subscriptions/<subscription_id>/api-keys/<int:key_id>/_revoke")
@requires("owner")
def revoke_api_key(api_id, subscription_id, key_id):
    subscription = _subscription(find_api(api_id), subscription_id)
    key = db.session.get(ApiKey, key_id) if key_id <= MAX_ROW_ID else None
    if key is None or key.subscription_id != subscription.id:
        abort(404, f"Subscription {subscription.id} has no API key {key_id}.")
    subs.revoke_key(key)
    return jsonify(key_json(key))
