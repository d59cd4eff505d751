"""The v4 API model as stored by the portal (the draft), and its immutable deployments.

Columns hold what the portal edits and queries; each row's `extra` keeps the definition keys we
do not model, so that an imported definition exports unchanged.
"""
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, UniqueConstraint, event, update
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)


class Api(db.Model):
    __tablename__ = "apis"
    id = db.Column(db.String(64), primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    api_version = db.Column(db.String(50), nullable=False, default="1.0")
    description = db.Column(db.Text, nullable=False, default="")
    type = db.Column(db.String(20), nullable=False)  # message | proxy
    state = db.Column(db.String(20), nullable=False, default="stopped")  # started | stopped
    deployed_revision = db.Column(db.Integer)
    extra = db.Column(JSON, nullable=False, default=dict)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    listeners = db.relationship("Listener", order_by="Listener.position", cascade="all, delete-orphan",
                                back_populates="api")
    endpoint_groups = db.relationship("EndpointGroup", order_by="EndpointGroup.position",
                                      cascade="all, delete-orphan", back_populates="api")
    plans = db.relationship("Plan", order_by="Plan.position", cascade="all, delete-orphan", back_populates="api")
    deployments = db.relationship("Deployment", order_by="Deployment.revision.desc()",
                                  cascade="all, delete-orphan", back_populates="api", lazy="dynamic")
    subscriptions = db.relationship("Subscription", order_by="Subscription.created_at", cascade="all, delete-orphan",
                                    back_populates="api")


class Listener(db.Model):
    __tablename__ = "listeners"
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    type = db.Column(db.String(30), nullable=False)  # http | subscription | tcp
    extra = db.Column(JSON, nullable=False, default=dict)

    api = db.relationship("Api", back_populates="listeners")
    paths = db.relationship("ContextPath", order_by="ContextPath.position", cascade="all, delete-orphan",
                            back_populates="listener")
    entrypoints = db.relationship("Entrypoint", order_by="Entrypoint.position", cascade="all, delete-orphan",
                                  back_populates="listener")


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
    configuration = db.Column(JSON)
    extra = db.Column(JSON, nullable=False, default=dict)

    listener = db.relationship("Listener", back_populates="entrypoints")


class EndpointGroup(db.Model):
    __tablename__ = "endpoint_groups"
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    name = db.Column(db.String(200), nullable=False)
    type = db.Column(db.String(60), nullable=False)
    load_balancer = db.Column(db.String(40))
    shared_configuration = db.Column(JSON)
    extra = db.Column(JSON, nullable=False, default=dict)

    api = db.relationship("Api", back_populates="endpoint_groups")
    endpoints = db.relationship("Endpoint", order_by="Endpoint.position", cascade="all, delete-orphan",
                                back_populates="group")


class Endpoint(db.Model):
    __tablename__ = "endpoints"
    id = db.Column(db.Integer, primary_key=True)
    group_id = db.Column(db.Integer, db.ForeignKey("endpoint_groups.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    position = db.Column(db.Integer, nullable=False, default=0)
    name = db.Column(db.String(200), nullable=False)
    type = db.Column(db.String(60), nullable=False)
    weight = db.Column(db.Integer)
    inherit_configuration = db.Column(db.Boolean)
    secondary = db.Column(db.Boolean)
    configuration = db.Column(JSON)
    shared_configuration_override = db.Column(JSON)
    extra = db.Column(JSON, nullable=False, default=dict)

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
    extra = db.Column(JSON, nullable=False, default=dict)

    api = db.relationship("Api", back_populates="plans")


class Deployment(db.Model):
    """An immutable, numbered revision of an API's definition: what the gateway serves."""
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("api_id", "revision"),)
    id = db.Column(db.Integer, primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    revision = db.Column(db.Integer, nullable=False)
    definition = db.Column(JSON, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    created_by = db.Column(db.String(80), nullable=False)

    api = db.relationship("Api", back_populates="deployments")


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
    subscriptions = db.relationship("Subscription", order_by="Subscription.created_at", cascade="all, delete-orphan",
                                    back_populates="application")


class Subscription(db.Model):
    """An application's subscription to one plan of an API. The plan is named by its definition id
    (plans rows are replaced when a definition is imported again; their ids stay)."""
    __tablename__ = "subscriptions"
    id = db.Column(db.String(64), primary_key=True)
    api_id = db.Column(db.String(64), db.ForeignKey("apis.id", ondelete="CASCADE"), nullable=False, index=True)
    plan_id = db.Column(db.String(100), nullable=False)
    application_id = db.Column(db.String(64), db.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False,
                               index=True)
    status = db.Column(db.String(20), nullable=False)  # PENDING | ACCEPTED | REJECTED | CLOSED
    reason = db.Column(db.Text)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    processed_at = db.Column(db.DateTime)
    processed_by = db.Column(db.String(80))

    api = db.relationship("Api", back_populates="subscriptions")
    application = db.relationship("Application", back_populates="subscriptions")
    api_keys = db.relationship("ApiKey", order_by="ApiKey.created_at.desc()", cascade="all, delete-orphan",
                               back_populates="subscription")


class ApiKey(db.Model):
    """Only a keyed hash of the key is stored (gateway_runtime.access.KeyHasher); the key itself is
    shown once, when it is made."""
    __tablename__ = "api_keys"
    id = db.Column(db.Integer, primary_key=True)
    subscription_id = db.Column(db.String(64), db.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False,
                                index=True)
    key_hash = db.Column(db.String(64), nullable=False, unique=True)
    prefix = db.Column(db.String(8), nullable=False)  # enough for a person to tell keys apart
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)
    revoked_at = db.Column(db.DateTime)

    subscription = db.relationship("Subscription", back_populates="api_keys")


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
