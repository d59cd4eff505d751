"""Plans' lifecycle and settings, applications, subscriptions and API keys: what the portal pages
and the management API both do. Every change commits at once; gateways see it within a poll
(the access version moves with it, see models.AccessVersion)."""

import secrets
import uuid

from flask import current_app
from sqlalchemy import select

from gateway_runtime import plans as rules
from gateway_runtime.access import KeyHasher
from gateway_runtime.entrypoints.webhook import SUBSCRIPTION as WEBHOOK_SETTINGS
from gateway_runtime.settings import get_path
from gateway_runtime.webhook import caller

from .models import ApiKey, Application, Plan, Subscription, WebhookDelivery, WebhookState, cipher, db, utcnow

# status -> the statuses a plan may move to (closing is final, as in Gravitee)
PLAN_MOVES = {
    "staging": ("published", "closed"),
    "published": ("deprecated", "closed"),
    "deprecated": ("published", "closed"),
    "closed": (),
}
LIVE = ("PENDING", "ACCEPTED")


class Invalid(ValueError):
    """What the user asked cannot be done as asked: {field: message}, each saying what to change."""

    def __init__(self, errors):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def hasher():
    if "gatehouse_key_hasher" not in current_app.extensions:
        current_app.extensions["gatehouse_key_hasher"] = KeyHasher(cipher().api_key_secret(db.session.connection()))
    return current_app.extensions["gatehouse_key_hasher"]


# ----- plans -----
def validation(plan):
    return plan.extra.get("validation", "AUTO")


def configuration(plan):
    return plan.extra.get("security", {}).get("configuration") or {}


def save_plan(api, plan, fields):
    """Add (plan None) or change a plan of the API's draft. fields: name, description, security type,
    security configuration, validation. A new plan starts in staging, as in Gravitee."""
    errors = {}
    name = (fields.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the plan a name."
    kind = fields.get("type") if plan is None else plan.security_type
    if kind not in rules.TYPES:
        errors["type"] = "Choose a plan type: " + ", ".join(rules.TYPES) + "."
    if fields.get("validation", "AUTO") not in rules.VALIDATIONS:
        errors["validation"] = "Subscriptions are accepted automatically (AUTO) or by the API owner (MANUAL)."
    config = rules.restore_secret(dict(fields.get("configuration") or {}), configuration(plan) if plan else {})
    # Left out, requireExp keeps its stored value; a new JWT plan refuses tokens without an expiry.
    previous = configuration(plan) if plan else {rules.REQUIRE_EXP: True}
    if kind == "jwt" and rules.REQUIRE_EXP not in config and rules.REQUIRE_EXP in previous:
        config[rules.REQUIRE_EXP] = previous[rules.REQUIRE_EXP]
    if kind in rules.TYPES:
        errors.update(rules.problems({"security": {"type": kind, "configuration": config}}))
    if errors:
        raise Invalid(errors)
    if plan is None:
        plan = Plan(
            api_id=api.id,
            id=str(uuid.uuid4()),
            security_type=kind,
            mode=rules.PUSH if kind == rules.PUSH else "standard",
            status="staging",
            position=max((p.position for p in api.plans), default=-1) + 1,
            extra={},
        )
        api.plans.append(plan)
    security = {"configuration": config} if config else {}
    plan.name = name
    plan.extra = {
        **{k: v for k, v in plan.extra.items() if k not in ("security", "description")},
        **({"security": security} if security else {}),
        "validation": fields.get("validation", "AUTO"),
        **({"description": fields["description"].strip()} if fields.get("description") else {}),
    }
    api.updated_at = utcnow()
    db.session.commit()
    return plan


def move_plan(plan, status, user):
    """Publish, deprecate or close a plan: at once, without a redeploy. Closing it closes its
    subscriptions (their keys stop working)."""
    current = plan.status or "published"
    if status not in PLAN_MOVES.get(current, ()):
        raise Invalid(
            {
                "status": f"A {current} plan cannot become {status}; it may become "
                + (" or ".join(PLAN_MOVES.get(current, ())) or "nothing else: closing is final")
                + "."
            }
        )
    plan.status = status
    if status == "closed":
        for subscription in subscriptions_of_plan(plan):
            if subscription.status in LIVE:
                _close(subscription, user)
    db.session.commit()


def find_plan(api, plan_id):
    return next((p for p in api.plans if p.id == plan_id), None)


def subscriptions_of_plan(plan):
    return db.session.scalars(
        select(Subscription).where(Subscription.api_id == plan.api_id, Subscription.plan_id == plan.id)
    ).all()


# ----- applications -----
def create_application(name, description, client_id, owner):
    app_id = str(uuid.uuid4())
    name, client_id = (name or "").strip(), (client_id or "").strip() or app_id
    errors = {}
    if not name:
        errors["name"] = "Give the application a name."
    if db.session.scalar(select(Application).where(Application.client_id == client_id)):
        errors["client_id"] = f"Another application already has the client id {client_id}: choose another one."
    if errors:
        raise Invalid(errors)
    application = Application(
        id=app_id, name=name, description=(description or "").strip(), client_id=client_id, owner_id=owner.id
    )
    db.session.add(application)
    db.session.commit()
    return application


def all_applications():
    return db.session.scalars(select(Application).order_by(Application.name)).all()


# ----- subscriptions -----
METADATA_LIMITS = (64, 100, 2000)  # entries, characters of a name, of a value


def subscription_metadata(metadata):
    """The metadata as stored ({name: text}, None when empty); Invalid naming what is wrong."""
    if metadata is None or metadata == {}:
        return None
    entries, name_limit, value_limit = METADATA_LIMITS
    if not isinstance(metadata, dict):
        raise Invalid({"metadata": "Metadata must be an object of names and text values."})
    if len(metadata) > entries:
        raise Invalid({"metadata": f"Metadata holds at most {entries} entries."})
    for name, value in metadata.items():
        if not name or len(name) > name_limit:
            raise Invalid({"metadata": f"A metadata name has 1 to {name_limit} characters."})
        if not isinstance(value, str) or len(value) > value_limit:
            raise Invalid({f"metadata.{name}": f"A metadata value is text of at most {value_limit} characters."})
    return dict(metadata)


def update(subscription, changes):
    """A subscription's webhook settings and / or metadata, as a PUT names them: all checked before
    any is stored (a refused call changes nothing)."""
    metadata = subscription_metadata(changes["metadata"]) if "metadata" in changes else None
    consumer = None
    if "consumerConfiguration" in changes or "metadata" not in changes:
        consumer = _checked_consumer(subscription, changes.get("consumerConfiguration"))
    if "metadata" in changes:
        subscription.subscription_metadata = metadata
    if consumer is not None:
        subscription.consumer_configuration = consumer
    db.session.commit()


def subscribe(application, api, plan_id, user, consumer=None, metadata=None):
    """(subscription, the API key in clear or None). AUTO validation accepts at once, and an
    api-key subscription then gets its key; MANUAL waits for the API owner. A push plan's
    subscription needs its consumer configuration (the webhook's callback and settings)."""
    plan = find_plan(api, plan_id)
    if plan is None:
        raise Invalid({"planId": f"API {api.name} has no plan {plan_id}."})
    if plan.security_type == "key-less":
        raise Invalid({"planId": f"{plan.name} is a key-less plan: anyone may call the API, no subscription needed."})
    if (plan.status or "published") != "published":
        raise Invalid({"planId": f"Plan {plan.name} is {plan.status}: only published plans take new subscriptions."})
    if any(s.application_id == application.id and s.plan_id == plan.id and s.status in LIVE for s in api.subscriptions):
        raise Invalid({"planId": f"Application {application.name} already has a subscription to plan {plan.name}."})
    if plan.security_type == rules.PUSH:
        if not any(listener.type == "subscription" for listener in api.listeners):
            raise Invalid(
                {"planId": f"API {api.name} has no webhook entrypoint (a subscription listener) to push messages with."}
            )
        consumer = consumer_configuration(consumer, None)
    else:
        consumer = None
    metadata = subscription_metadata(metadata)
    automatic = validation(plan) == "AUTO"
    subscription = Subscription(
        id=str(uuid.uuid4()),
        api_id=api.id,
        plan_id=plan.id,
        application=application,
        status="ACCEPTED" if automatic else "PENDING",
        processed_at=utcnow() if automatic else None,
        processed_by="automatic validation" if automatic else None,
        consumer_configuration=consumer,
        subscription_metadata=metadata,
    )
    db.session.add(subscription)
    key = _issue_key(subscription)[1] if automatic and plan.security_type == "api-key" else None
    db.session.commit()
    return subscription, key


# ----- push subscriptions (webhooks) -----
def consumer_configuration(consumer, previous):
    """A push subscription's consumer configuration, checked: {entrypointId: webhook,
    entrypointConfiguration}. Masked secrets sent back keep the stored ones."""
    consumer = consumer if isinstance(consumer, dict) else {}
    settings = consumer.get("entrypointConfiguration")
    if not isinstance(settings, dict) or not settings:
        raise Invalid(
            {
                "consumerConfiguration": "A push plan's subscription needs its webhook settings "
                "(consumerConfiguration.entrypointConfiguration), at least a callbackUrl."
            }
        )
    settings = WEBHOOK_SETTINGS.restore_secrets(settings, (previous or {}).get("entrypointConfiguration"))
    clean, errors = WEBHOOK_SETTINGS.validate(settings)
    if not errors:
        # The token endpoint is called by the gateway too: the same rule as the callback.
        urls = [("callbackUrl", clean["callbackUrl"], "callbacks")] + (
            [("auth.oauth2.endpoint", clean["auth"]["oauth2"]["endpoint"], caller.TOKEN_ENDPOINTS)]
            if get_path(clean, "auth.type") == "oauth2"
            else []
        )
        for field, url, what in urls:
            try:
                caller.check_callback(url, what)
            except caller.Refused as exc:
                errors[field] = str(exc)
    if errors:
        raise Invalid({f"consumerConfiguration.entrypointConfiguration.{k}": v for k, v in errors.items()})
    return {
        "entrypointId": "webhook",
        **{k: v for k, v in consumer.items() if k == "channel"},
        "entrypointConfiguration": clean,
    }


def masked_consumer(subscription):
    consumer = subscription.consumer_configuration
    if consumer is None:
        return None
    return dict(consumer, entrypointConfiguration=WEBHOOK_SETTINGS.mask_secrets(consumer["entrypointConfiguration"]))


def update_consumer(subscription, consumer):
    """New webhook settings: the delivering gateway restarts its loop with them within a second."""
    subscription.consumer_configuration = _checked_consumer(subscription, consumer)
    db.session.commit()


def _checked_consumer(subscription, consumer):
    if subscription.consumer_configuration is None:
        raise Invalid({"consumerConfiguration": "Only subscriptions to push plans have webhook settings."})
    return consumer_configuration(consumer, subscription.consumer_configuration)


def webhook_state(subscription):
    return db.session.get(WebhookState, subscription.id)


def deliveries(subscription, limit=20):
    return db.session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()


def _webhook_state_in(subscription, wanted, done):
    """The subscription's delivery state, refused unless it is `wanted` (`done`: what the caller does)."""
    state = webhook_state(subscription)
    if state is None or state.state != wanted:
        raise Invalid(
            {
                "state": f"Only a {wanted} subscription can be {done}; this one is "
                f"{state.state if state else 'not started'}."
            }
        )
    return state


def retry_now(subscription):
    """Cut a retrying subscription's wait short: its gateway tries again within a second."""
    state = _webhook_state_in(subscription, "retrying", "retried now")
    state.wake = 1
    db.session.commit()


def resume(subscription):
    """A failed subscription delivers again, from the first message it had not delivered."""
    state = _webhook_state_in(subscription, "failed", "resumed")
    state.state, state.detail, state.updated_at = "active", None, utcnow()
    db.session.commit()


def plan_of(subscription):
    return find_plan(subscription.api, subscription.plan_id)


def accept(subscription, user):
    """The API owner accepts a pending subscription; the application's owner then gets its key."""
    _process(subscription, "ACCEPTED", user)


def reject(subscription, user, reason=""):
    _process(subscription, "REJECTED", user, reason)


def _process(subscription, status, user, reason=""):
    if subscription.status != "PENDING":
        raise Invalid({"status": f"The subscription is {subscription.status.lower()}, not pending."})
    subscription.status, subscription.processed_at, subscription.processed_by = status, utcnow(), user
    subscription.reason = (reason or "").strip() or None
    db.session.commit()


def close(subscription, user):
    if subscription.status not in LIVE:
        raise Invalid({"status": f"The subscription is already {subscription.status.lower()}."})
    _close(subscription, user)
    db.session.commit()


def _close(subscription, user):
    subscription.status, subscription.processed_at, subscription.processed_by = "CLOSED", utcnow(), user
    for key in active_keys(subscription):
        key.revoked_at = utcnow()


# ----- API keys -----
def active_keys(subscription):
    return [key for key in subscription.api_keys if key.revoked_at is None]


def renew_key(subscription):
    """(the new key's row, the key in clear: shown this once) for an accepted api-key subscription;
    the keys it had stop working at once."""
    plan = plan_of(subscription)
    if plan is None or plan.security_type != "api-key":
        raise Invalid({"subscription": "Only subscriptions to api-key plans have API keys."})
    if subscription.status != "ACCEPTED":
        raise Invalid(
            {
                "subscription": f"The subscription is {subscription.status.lower()}: only accepted "
                "subscriptions get API keys."
            }
        )
    for key in active_keys(subscription):
        key.revoked_at = utcnow()
    issued = _issue_key(subscription)
    db.session.commit()
    return issued


def revoke_key(key):
    if key.revoked_at is not None:
        raise Invalid({"apiKey": "This API key is already revoked."})
    key.revoked_at = utcnow()
    db.session.commit()


def _issue_key(subscription):
    key = secrets.token_urlsafe(32)
    row = ApiKey(key_hash=hasher()(key), prefix=key[:6], created_at=utcnow())
    subscription.api_keys.append(row)
    return row, key


def find_subscription(subscription_id):
    return db.session.get(Subscription, subscription_id)


def find_application(application_id):
    return db.session.get(Application, application_id)
