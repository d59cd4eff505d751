"""The v4 API model as stored by the portal (the draft), and its immutable deployments.

Columns hold what the portal edits and queries; each row's `extra` keeps the definition keys we
do not model, so that an imported definition exports unchanged.
"""
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase


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
    role = db.Column(db.String(20), nullable=False, default="viewer")  # viewer | owner | admin
    disabled = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    tokens = db.relationship("AccessToken", order_by="AccessToken.created_at", cascade="all, delete-orphan",
                             back_populates="user")


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
    owner = db.relationship("User")


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
