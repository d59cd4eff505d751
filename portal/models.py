"""The v4 API model as stored by the portal (the draft), and its immutable deployments.

Columns hold what the portal edits and queries; each row's `extra` keeps the definition keys we
do not model, so that an imported definition exports unchanged. Connector settings, the keys kept
in `extra`, plans and deployed definitions hold their secrets encrypted (gateway_runtime.at_rest;
what is secret: gateway_runtime.definition.secrets.secret_slots): the attributes
below read and take clear values, the `stored_*` columns hold what is written.
"""

from datetime import UTC, datetime

from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, UniqueConstraint, event, update
from sqlalchemy.orm import DeclarativeBase, Session

from gateway_runtime import registry
from gateway_runtime.definition import secrets
from gateway_runtime.definition.slots import map_slots
from gateway_runtime.entrypoints.webhook import SUBSCRIPTION as WEBHOOK_SUBSCRIPTION
from gateway_runtime.plans import plan_slots


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer: a larger id names no row (and overflows a query)


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def cipher():
    return current_app.extensions["gatehouse_cipher"]


class _Sealed:
    """An attribute over a JSON column whose secrets are stored encrypted: the secrets slots_of
    finds (gateway_runtime.registry decides what is secret, for every column alike)."""

    def __init__(self, column, slots_of=None):
        self.column, self.slots_of = column, slots_of

    def __get__(self, row, owner=None):
        if row is None:
            return self
        value = getattr(row, self.column)
        return None if value is None else self.transform(row, value, cipher().decrypt)

    def __set__(self, row, value):
        setattr(row, self.column, None if value is None else self.transform(row, value, cipher().encrypt))

    def transform(self, row, value, change):
        return map_slots(self.slots_of, value, change)


class SealedSettings(_Sealed):
    """Connector settings: which values are secret depends on the row's connector type."""

    def __init__(self, column, spec_of, part):
        super().__init__(column)
        self.spec_of, self.part = spec_of, part

    def transform(self, row, value, change):
        if row.type is None:
            # Set in the other order, the settings would be stored without knowing their secrets.
            raise TypeError(f"{type(row).__name__}.type must be set before its settings")
        spec = self.spec_of(row.type)
        return (registry.UNDECLARED if spec is None else getattr(spec, self.part)).map_secrets(value, change)


class SealedConsumer(_Sealed):
    """A push subscription's consumer configuration: its webhook settings hold credentials."""

    def transform(self, row, value, change):
        return dict(
            value,
            entrypointConfiguration=WEBHOOK_SUBSCRIPTION.map_secrets(value.get("entrypointConfiguration"), change),
        )


def reseal(new_cipher):
    """Encrypt every stored secret again with new_cipher, having read it with the current cipher,
    and make new_cipher the current one; the caller commits. Returns how many rows hold secrets."""
    old = cipher()
    read = []  # (row, {name: sealed attribute}, {name: clear value})
    for mapper in db.Model.registry.mappers:
        sealed = {name: attr for name, attr in vars(mapper.class_).items() if isinstance(attr, _Sealed)}
        if sealed:
            read += [
                (row, sealed, {name: getattr(row, name) for name in sealed})
                for row in db.session.scalars(db.select(mapper.class_))
            ]
    connection = db.session.connection()
    api_key_secret = old.api_key_secret(connection)
    current_app.extensions["gatehouse_cipher"] = new_cipher
    changed = 0
    for row, sealed, values in read:
        stored = [getattr(row, attr.column) for attr in sealed.values()]
        for name, value in values.items():
            setattr(row, name, value)
        changed += stored != [
            getattr(row, attr.column) for attr in sealed.values()
        ]  # a row without secrets is as it was
    new_cipher.seal_keys(connection, api_key_secret)
    return changed


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)
    role = db.Column(db.String(20), nullable=False, default="viewer")  # viewer | owner | admin
    disabled = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    tokens = db.relationship(
        "AccessToken", order_by="AccessToken.created_at", cascade="all, delete-orphan", back_populates="user"
    )


class PortalSession(db.Model):
    """A portal login. The cookie (signed, not encrypted) carries a random token and only its SHA-256
    is stored: logging out, a password change or disabling the user deletes the row, which ends
    the session for every copy of the cookie, not only in the browser that logged out."""

    __tablename__ = "portal_sessions"
    id = db.Column(db.String(64), primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    seen_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    user = db.relationship("User")


class KeptFormSecrets(db.Model):
    """Secrets typed into a form whose save failed, so that the next try need not type them again
    and the page never shows them. One row per (portal session, form id); `data` is the JSON of
    {input name: value}, encrypted like every stored secret; rows live an hour at most."""

    __tablename__ = "kept_form_secrets"
    id = db.Column(db.String(64), primary_key=True)  # SHA-256 of session id + form id
    session_id = db.Column(
        db.String(64), db.ForeignKey("portal_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    data = db.Column(db.Text, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow, index=True)


class AccessToken(db.Model):
    """A personal access token for the management API. Only its SHA-256 is stored: tokens are long
    random strings, so a fast hash is enough and keeps the per-request lookup cheap."""

    __tablename__ = "access_tokens"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    name = db.Column(db.String(100), nullable=False)
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    hint = db.Column(db.String(12), nullable=False)  # the first characters, so the owner can tell tokens apart
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    user = db.relationship("User", back_populates="tokens")


class LoginThrottle(db.Model):
    """Failed logins per user name and per client address. Kept in the database so that every
    worker and every node sees the same counts."""

    __tablename__ = "login_throttle"
    key = db.Column(db.String(300), primary_key=True)  # "user:<name>" or "addr:<ip>"
    failures = db.Column(db.Integer, nullable=False, default=0)
    locked_until = db.Column(db.DateTime)


class Api(db.Model):
    __tablename__ = "apis"
    id = db.Column(db.String(64), primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    api_version = db.Column(db.String(50), nullable=False, default="1.0")
    description = db.Column(db.Text, nullable=False, default="")
    type = db.Column(db.String(20), nullable=False)  # message | proxy
    state = db.Column(db.String(20), nullable=False, default="stopped")  # started | stopped
    deployed_revision = db.Column(db.Integer)
    owner_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    stored_extra = db.Column("extra", JSON, nullable=False, default=dict)
    extra = _Sealed("stored_extra", secrets.api_slots)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    listeners = db.relationship(
        "Listener", order_by="Listener.position", cascade="all, delete-orphan", back_populates="api"
    )
    endpoint_groups = db.relationship(
        "EndpointGroup", order_by="EndpointGroup.position", cascade="all, delete-orphan", back_populates="api"
    )
    plans = db.relationship("Plan", order_by="Plan.position", cascade="all, delete-orphan", back_populates="api")
    deployments = db.relationship(
        "Deployment",
        order_by="Deployment.revision.desc()",
        cascade="all, delete-orphan",
        back_populates="api",
        lazy="dynamic",
    )
    owner = db.relationship("User")
    subscriptions = db.relationship(
        "Subscription", order_by="Subscription.created_at", cascade="all, delete-orphan", back_populates="api"
    )


class Listener(db.Model):
    __tablename__ = "listeners"
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    type = db.Column(db.String(30), nullable=False)  # http | subscription | tcp
    extra = db.Column(JSON, nullable=False, default=dict)

    api = db.relationship("Api", back_populates="listeners")
    paths = db.relationship(
        "ContextPath", order_by="ContextPath.position", cascade="all, delete-orphan", back_populates="listener"
    )
    entrypoints = db.relationship(
        "Entrypoint", order_by="Entrypoint.position", cascade="all, delete-orphan", back_populates="listener"
    )


class ContextPath(db.Model):
    __tablename__ = "context_paths"
    id = db.Column(db.Integer, primary_key=True)
    listener_id = db.Column(db.Integer, db.ForeignKey("listeners.id", ondelete="CASCADE"), nullable=False, index=True)
    api_id = db.Column(db.String(64), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    path = db.Column(db.String(500), nullable=False)
    host = db.Column(db.String(255))
    extra = db.Column(JSON, nullable=False, default=dict)

    listener = db.relationship("Listener", back_populates="paths")


class Entrypoint(db.Model):
    __tablename__ = "entrypoints"
    id = db.Column(db.Integer, primary_key=True)
    listener_id = db.Column(db.Integer, db.ForeignKey("listeners.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    type = db.Column(db.String(60), nullable=False)
    qos = db.Column(db.String(30))
    stored_configuration = db.Column("configuration", JSON)
    configuration = SealedSettings("stored_configuration", registry.entrypoint, "configuration")
    stored_extra = db.Column("extra", JSON, nullable=False, default=dict)
    extra = _Sealed("stored_extra", secrets.entrypoint_slots)

    listener = db.relationship("Listener", back_populates="entrypoints")


class EndpointGroup(db.Model):
    __tablename__ = "endpoint_groups"
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    name = db.Column(db.String(200), nullable=False)
    type = db.Column(db.String(60), nullable=False)
    load_balancer = db.Column(db.String(40))
    stored_shared_configuration = db.Column("shared_configuration", JSON)
    shared_configuration = SealedSettings("stored_shared_configuration", registry.endpoint, "shared")
    stored_extra = db.Column("extra", JSON, nullable=False, default=dict)
    extra = _Sealed("stored_extra", secrets.group_slots)

    api = db.relationship("Api", back_populates="endpoint_groups")
    endpoints = db.relationship(
        "Endpoint", order_by="Endpoint.position", cascade="all, delete-orphan", back_populates="group"
    )


class Endpoint(db.Model):
    __tablename__ = "endpoints"
    id = db.Column(db.Integer, primary_key=True)
    group_id = db.Column(
        db.Integer, db.ForeignKey("endpoint_groups.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position = db.Column(db.Integer, nullable=False, default=0)
    name = db.Column(db.String(200), nullable=False)
    type = db.Column(db.String(60), nullable=False)
    weight = db.Column(db.Integer)
    inherit_configuration = db.Column(db.Boolean)
    secondary = db.Column(db.Boolean)
    stored_configuration = db.Column("configuration", JSON)
    configuration = SealedSettings("stored_configuration", registry.endpoint, "configuration")
    stored_shared_configuration_override = db.Column("shared_configuration_override", JSON)
    shared_configuration_override = SealedSettings("stored_shared_configuration_override", registry.endpoint, "shared")
    stored_extra = db.Column("extra", JSON, nullable=False, default=dict)
    extra = _Sealed("stored_extra", secrets.endpoint_slots)

    group = db.relationship("EndpointGroup", back_populates="endpoints")


class Plan(db.Model):
    __tablename__ = "plans"
    pk = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    id = db.Column(db.String(100), nullable=False)
    name = db.Column(db.String(200), nullable=False)
    security_type = db.Column(db.String(30), nullable=False)
    mode = db.Column(db.String(20))
    status = db.Column(db.String(20))
    stored_extra = db.Column("extra", JSON, nullable=False, default=dict)
    extra = _Sealed("stored_extra", plan_slots)

    api = db.relationship("Api", back_populates="plans")


class Deployment(db.Model):
    """An immutable, numbered revision of an API's definition: what the gateway serves."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("api_id", "revision"),)
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    revision = db.Column(db.Integer, nullable=False)
    stored_definition = db.Column("definition", JSON, nullable=False)
    definition = _Sealed("stored_definition", secrets.secret_slots)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    created_by = db.Column(db.String(80), nullable=False)

    api = db.relationship("Api", back_populates="deployments")


class SecretsKeyCheck(db.Model):
    """One row: a value encrypted with the key of the nodes sharing this database. Only
    at_rest.Cipher.check_key reads it; declared here so that autogenerate keeps the table."""

    __tablename__ = "secrets_key_check"
    id = db.Column(db.Integer, primary_key=True)
    value = db.Column(db.Text, nullable=False)


class Application(db.Model):
    """A consumer of APIs: it subscribes to plans; JWTs name it by their `client_id` claim."""

    __tablename__ = "applications"
    id = db.Column(db.String(64), primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    description = db.Column(db.Text, nullable=False, default="")
    client_id = db.Column(db.String(200), nullable=False, unique=True)
    owner_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    owner = db.relationship("User")
    subscriptions = db.relationship(
        "Subscription", order_by="Subscription.created_at", cascade="all, delete-orphan", back_populates="application"
    )


class Subscription(db.Model):
    """An application's subscription to one plan of an API. The plan is named by its definition id
    (plans rows are replaced when a definition is imported again; their ids stay)."""

    __tablename__ = "subscriptions"
    id = db.Column(db.String(64), primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    plan_id = db.Column(db.String(100), nullable=False)
    application_id = db.Column(
        db.String(64), db.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status = db.Column(db.String(20), nullable=False)  # PENDING | ACCEPTED | REJECTED | CLOSED
    reason = db.Column(db.Text)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    processed_at = db.Column(db.DateTime)
    processed_by = db.Column(db.String(80))
    # Push plans: {entrypointId, entrypointConfiguration} (Gravitee's consumerConfiguration)
    # none_as_null: a subscription without webhook settings stores SQL NULL, not a JSON null.
    stored_consumer_configuration = db.Column("consumer_configuration", JSON(none_as_null=True))
    consumer_configuration = SealedConsumer("stored_consumer_configuration")
    # {name: text}, as Gravitee's; flows read it as #subscription.metadata (`metadata` is the
    # declarative base's own name, hence the attribute's)
    subscription_metadata = db.Column("metadata", JSON(none_as_null=True))

    api = db.relationship("Api", back_populates="subscriptions")
    application = db.relationship("Application", back_populates="subscriptions")
    api_keys = db.relationship(
        "ApiKey", order_by="ApiKey.created_at.desc()", cascade="all, delete-orphan", back_populates="subscription"
    )


class ApiKey(db.Model):
    """Only a keyed hash of the key is stored (gateway_runtime.access.KeyHasher); the key itself is
    shown once, when it is made."""

    __tablename__ = "api_keys"
    id = db.Column(db.Integer, primary_key=True)
    subscription_id = db.Column(
        db.String(64), db.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key_hash = db.Column(db.String(64), nullable=False, unique=True)
    prefix = db.Column(db.String(8), nullable=False)  # enough for a person to tell keys apart
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    revoked_at = db.Column(db.DateTime)

    subscription = db.relationship("Subscription", back_populates="api_keys")


class WebhookState(db.Model):
    """A push subscription's delivery state, and its lease: the gateway process delivering it
    (holder) and until when (seconds since the epoch). See gateway_runtime.webhook.leases."""

    __tablename__ = "webhook_states"
    subscription_id = db.Column(db.String(64), db.ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True)
    state = db.Column(db.String(20), nullable=False, default="active")  # active | retrying | failed
    detail = db.Column(db.Text)
    holder = db.Column(db.String(200))
    lease_until = db.Column(db.Float)
    wake = db.Column(db.Integer, nullable=False, default=0)  # 1: "retry now" was asked
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow)


class WebhookDelivery(db.Model):
    """One attempt to deliver a message to a callback (the last ones of each subscription)."""

    __tablename__ = "webhook_deliveries"
    id = db.Column(db.Integer, primary_key=True)
    subscription_id = db.Column(
        db.String(64), db.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    message_id = db.Column(db.String(500))
    attempt = db.Column(db.Integer, nullable=False)
    status = db.Column(db.Integer)  # the callback's HTTP status; None when it could not be reached
    latency_ms = db.Column(db.Integer, nullable=False)
    outcome = db.Column(db.String(20), nullable=False)  # delivered | failed | dead-lettered
    detail = db.Column(db.Text)  # the start of the callback's answer, or why it could not be called
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    gateway = db.Column(db.String(200))  # the process that made the attempt (its lease holder name)


class AccessVersion(db.Model):
    """One row, bumped by every commit that changes who may call what; gateways reload their
    plan/subscription/key cache when it moves (a cheap query on every poll)."""

    __tablename__ = "access_version"
    id = db.Column(db.Integer, primary_key=True)
    version = db.Column(db.BigInteger, nullable=False, default=0)


ACCESS_MODELS = (Plan, Subscription, ApiKey, Application, Api)


@event.listens_for(Session, "before_flush")
def _bump_access_version(session, _context, _instances):
    changed = [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, ACCESS_MODELS)]
    # An API's own edits (name, listeners) do not change access; its deletion (with its plans) does.
    if any(not isinstance(o, Api) or o in session.deleted for o in changed):
        session.execute(update(AccessVersion).values(version=AccessVersion.version + 1))
