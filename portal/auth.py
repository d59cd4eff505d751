"""Users, roles and who may do what.

Browser sessions for the portal; HTTP Basic or personal access tokens for the management API.
Every view declares its access rule with `@requires(role)` / `@requires(role, api="api_id")` or
`@public`; `check_every_view_guarded` refuses to start an app with a view that has none.
"""

import functools
import hashlib
import os
import re
import secrets
from datetime import timedelta
from urllib.parse import quote

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf import FlaskForm
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from gateway_runtime.http import client_address, client_scheme

from .models import AccessToken, Api, Application, LoginThrottle, PortalSession, User, db, utcnow

ADMIN = "admin"
ROLES = ("viewer", "owner", "admin")  # each role can do what the ones before it can
ROLE_TEXT = {
    "viewer": "reads everything, changes nothing",
    "owner": "creates APIs and manages the APIs they own",
    "admin": "manages every API and the users",
}
TOKEN_PREFIX = "ghp_"
bp = Blueprint("auth", __name__)


def ensure_admin():
    """Create the admin on first start. Its password comes from GATEHOUSE_ADMIN_PASSWORD, else it
    is generated and printed this once (only its hash is stored)."""
    wanted = os.environ.get("GATEHOUSE_ADMIN_PASSWORD")
    user = db.session.scalar(select(User).where(User.username == ADMIN))
    if user is None:
        password = wanted or secrets.token_urlsafe(12)
        db.session.add(User(username=ADMIN, password_hash=generate_password_hash(password), role="admin"))
        db.session.commit()
        if not wanted:
            print(f"Gatehouse admin user: {ADMIN}  password (shown once, keep it): {password}", flush=True)
    elif wanted and not check_password_hash(user.password_hash, wanted):
        set_password(user, wanted)
        db.session.commit()


def set_password(user, password, keep_session=None):
    """A new password ends the user's portal sessions (all but `keep_session`, the one changing it)."""
    user.password_hash = generate_password_hash(password)
    end_sessions(user, keep_session)


# ----- credentials -----
# Password hashing is deliberately slow (~0.1 s); management API clients send the password on
# every call. A check that passed is remembered for the exact stored hash, so a password change
# invalidates it; only digests are kept.
_verified = set()


def _password_matches(user, password):
    key = hashlib.sha256(f"{user.password_hash}\0{password or ''}".encode()).digest()
    if key in _verified:
        return True
    if check_password_hash(user.password_hash, password or ""):
        _verified.add(key)
        return True
    return False


@functools.cache
def _dummy_hash():
    return generate_password_hash(secrets.token_urlsafe(16))


def _spend_password_work(password):
    """The work of checking a password, for a name that has none: an unknown name must not answer
    faster than a known one, or timing tells which names exist."""
    check_password_hash(_dummy_hash(), password or "")
    return False


def token_digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(user, name):
    """Create a personal access token; the clear token is returned this once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.tokens.append(AccessToken(name=name, token_hash=token_digest(token), hint=token[:10]))
    db.session.commit()
    return token


def _token_user(token):
    found = db.session.scalar(select(AccessToken).where(AccessToken.token_hash == token_digest(token)))
    return found.user if found is not None and not found.user.disabled else None


# ----- failed-login throttle -----
def _user_key(username):
    return f"user:{(username or '').lower()[:200]}"


def _throttle_keys(username):
    # Many people may share one address (an office NAT), so an address gets more tries than one name.
    config = current_app.config
    return (
        (_user_key(username), config["LOGIN_MAX_FAILURES"]),
        (f"addr:{client_address(request.environ)}", config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
    )


def locked_for(username):
    """Seconds until this user name and client address may try again (0: now)."""
    keys = [key for key, _ in _throttle_keys(username)]
    until = db.session.scalars(
        select(LoginThrottle.locked_until).where(LoginThrottle.key.in_(keys), LoginThrottle.locked_until.is_not(None))
    ).all()
    remaining = max([(u - utcnow()).total_seconds() for u in until], default=0)
    return max(0, int(remaining + 0.999))


def _count_failure(key, limit):
    # An UPDATE first: it locks the row (PostgreSQL) or the database (SQLite) until the commit, so
    # processes failing at the same moment each add their failure.
    counted = db.session.execute(
        update(LoginThrottle).where(LoginThrottle.key == key).values(failures=LoginThrottle.failures + 1)
    ).rowcount
    if not counted:
        try:
            db.session.add(LoginThrottle(key=key, failures=1))
            db.session.flush()
        except IntegrityError:  # another process added it first
            db.session.rollback()
            return _count_failure(key, limit)
    row = db.session.get(LoginThrottle, key, populate_existing=True)
    if row.failures >= limit:
        seconds = current_app.config["LOGIN_LOCK_SECONDS"] * 2 ** (row.failures - limit)
        row.locked_until = utcnow() + timedelta(seconds=min(seconds, current_app.config["LOGIN_LOCK_MAX_SECONDS"]))
    db.session.commit()


def _forget_failures(username):
    """After a success, the user name's failures only: the address's keep counting, or an attacker
    logging in to an account of their own now and then could try other names for ever."""
    key = _user_key(username)
    if db.session.get(LoginThrottle, key) is not None:
        db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
        db.session.commit()


def authenticate(username, password):
    """The active user with this password, or None; refuses (429) while failures lock the name or
    the client address, even for the right password."""
    wait = locked_for(username)
    if wait:
        raise TooManyRequests(f"Too many failed logins: try again in {wait} seconds.", retry_after=wait)
    user = db.session.scalar(select(User).where(User.username == username))
    matches = _password_matches(user, password) if user is not None else _spend_password_work(password)
    if user is None or user.disabled or not matches:
        for key, limit in _throttle_keys(username):
            _count_failure(key, limit)
        return None
    _forget_failures(username)
    return user


def _management_user():
    auth = request.authorization
    if auth is None:
        return None
    if auth.type == "basic":
        return authenticate(auth.username, auth.password)
    if auth.type == "bearer" and auth.token:
        return _token_user(auth.token)
    return None


def load_user():
    """Before each request: g.user from the Authorization header (management API) or the session."""
    g.user = g.session_id = None
    if request.endpoint == "static":
        return
    if request.blueprint == "management":
        g.user = _management_user()
        return
    g.session_id = current_session_id()
    row = db.session.get(PortalSession, g.session_id) if g.session_id else None
    if row is None or row.user.disabled:
        if g.session_id:
            session.clear()
        return
    # The row's age decides when it is purged (see start_session); updating it now and then is enough.
    if utcnow() - row.seen_at > _lifetime() / 10:
        row.seen_at = utcnow()
        db.session.commit()
    g.user = row.user


SECURE_COOKIES = ("auto", "true", "false")


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure as the SECURE_COOKIES setting says: true, false, or auto: when
    the client reached the portal over HTTPS, itself or through a trusted proxy (X-Forwarded-Proto)."""

    def get_cookie_secure(self, app):
        setting = app.config["SECURE_COOKIES"]
        return setting == "true" or (
            setting == "auto" and has_request_context() and client_scheme(request.environ) == "https"
        )


def install_sessions(app):
    """Refuses a SECURE_COOKIES setting it does not know, naming it."""
    setting = str(app.config["SECURE_COOKIES"]).lower()  # GATEHOUSE_SECURE_COOKIES=true arrives as True
    if setting not in SECURE_COOKIES:
        raise ValueError(
            f"GATEHOUSE_SECURE_COOKIES is {app.config['SECURE_COOKIES']!r}: use " + ", ".join(SECURE_COOKIES) + "."
        )
    app.config["SECURE_COOKIES"] = setting
    app.session_interface = SessionInterface()


def current_session_id():
    token = session.get("sid")
    return token_digest(token) if isinstance(token, str) else None


def _lifetime():
    return current_app.permanent_session_lifetime


def start_session(user):
    session.clear()
    session.permanent = True  # the cookie expires PERMANENT_SESSION_LIFETIME after the last request
    token = secrets.token_urlsafe(32)
    db.session.add(PortalSession(id=token_digest(token), user=user))
    # Forget sessions idle for longer than any cookie lives.
    db.session.execute(delete(PortalSession).where(PortalSession.seen_at < utcnow() - _lifetime() * 1.1))
    db.session.commit()
    session["sid"] = token


def end_sessions(user, keep=None):
    """Delete the user's portal sessions (but `keep`, a session id); the caller commits."""
    query = delete(PortalSession).where(PortalSession.user_id == user.id)
    if keep is not None:
        query = query.where(PortalSession.id != keep)
    db.session.execute(query)


# ----- access rules -----
def has_role(user, role):
    return user is not None and ROLES.index(user.role) >= ROLES.index(role)


def can_manage(api, user=None):
    """Whether the user (default: the current one) may change this API: an admin, or its owner."""
    user = user or g.get("user")
    return has_role(user, "admin") or (has_role(user, "owner") and api.owner_id == user.id)


def can_use(application, user=None):
    """Whether the user (default: the current one) may act for this application: an admin, or its owner."""
    user = user or g.get("user")
    return has_role(user, "admin") or (user is not None and application.owner_id == user.id)


def ensure(allowed, whose):
    """403 unless allowed; `whose` names who may (e.g. "the owner of the application A")."""
    if not allowed:
        user = g.user
        abort(
            403,
            f"You are logged in as {user.username} (role {user.role}). Only {whose} or an admin can do this: ask them.",
        )


def forbidden_message(role, api=None):
    user = g.user
    who = f"You are logged in as {user.username} (role {user.role})."
    if not has_role(user, role):
        if role == "admin":
            return f"{who} Only an admin can do this; ask an admin if it needs doing."
        return f"{who} This needs the {role} role ({ROLE_TEXT[role]}): ask an admin for the {role} role."
    owner = api.owner.username if api.owner else "nobody"
    return (
        f"{who} Only the owner of the API {api.name} ({owner}) or an admin can change it: ask them, "
        "or ask an admin to make you its owner."
    )


def requires(role, api=None, application=None):
    """Access rule of a view: the least role it needs, and with `api` the name of the URL
    parameter holding an API id, which the user must also be able to manage (owner or admin);
    with `application` that of an application id, which the user must own (or be an admin).

        @bp.post("/apis/<api_id>/plans")
        @requires("owner", api="api_id")
        def new_plan(api_id): ...

    Anonymous: the login page (portal) or 401 (management API). Not allowed: 403 saying what to do.
    An unknown API id is left to the view, which answers 404."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None:
                if request.blueprint == "management":
                    abort(
                        401,
                        "Authentication required: use HTTP Basic, or a personal access token "
                        "(Authorization: Bearer ...) made on the portal's Tokens page.",
                    )
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not has_role(g.user, role):
                abort(403, forbidden_message(role))
            if api is not None:
                found = db.session.get(Api, kwargs[api])
                if found is not None and not can_manage(found):
                    abort(403, forbidden_message(role, found))
            if application is not None:
                found = db.session.get(Application, kwargs[application])
                if found is not None:
                    ensure(can_use(found), f"the owner of the application {found.name}")
            return view(*args, **kwargs)

        wrapped.access = (role, api or application)
        return wrapped

    return decorate


def public(view):
    """Access rule of a view anyone may call, logged in or not."""
    view.access = ("public", None)
    return view


def check_every_view_guarded(app):
    """Fail at start-up, not in production, when a view was added without an access rule."""
    missing = sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint != "static" and not hasattr(view, "access")
    )
    if missing:
        raise RuntimeError(
            "views without an access rule (add @requires(role) or @public from portal.auth): " + ", ".join(missing)
        )


# What browsers drop from a URL before reading it (the WHATWG URL standard): C0 controls and spaces
# around it, tabs and newlines anywhere; and they read a backslash as a slash. So /<tab>/evil.com
# and /\evil.com both mean //evil.com, another site.
_AROUND = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def local_path(target):
    """A redirect target from a form or query, read as a browser would, kept only when it is a
    path on this site (None otherwise); characters a Location header cannot hold are escaped."""
    target = _TAB_OR_NEWLINE.sub("", (target or "").strip(_AROUND)).replace("\\", "/")
    if not target.startswith("/") or target.startswith("//") or _CONTROL.search(target):
        return None
    return quote(target, safe="/?#&=%;:@!$'()*+,~[]")


# ----- log in and out -----
class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired("Enter the user name.")], default=ADMIN)
    password = PasswordField("Password", validators=[DataRequired("Enter the password.")])


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(form.username.data, form.password.data)
        except TooManyRequests as exc:
            form.password.errors.append(exc.description + " Until then even the right password is refused.")
            return render_template("login.html", form=form), 429
        if user is not None:
            start_session(user)
            return redirect(local_path(request.args.get("next")) or url_for("ui.apis"))
        form.password.errors.append(
            "Wrong user name or password (or the account is disabled). The admin "
            "password was printed on first start, or set with GATEHOUSE_ADMIN_PASSWORD; "
            "other users get theirs from an admin."
        )
    return render_template("login.html", form=form)


@bp.post("/logout")
@public
def logout():
    if g.session_id:
        db.session.execute(delete(PortalSession).where(PortalSession.id == g.session_id))
        db.session.commit()
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


@bp.app_context_processor
def access_helpers():
    """Pages show only the actions the user may take."""
    return {"has_role": has_role, "can_manage": can_manage}
