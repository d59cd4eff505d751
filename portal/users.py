"""Portal pages for people: users and roles (admins), personal access tokens (everyone), and who
owns an API."""

import re

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import generate_password_hash

from . import apis
from .auth import ROLE_TEXT, ROLES, authenticate, end_sessions, has_role, new_token, requires, set_password
from .models import AccessToken, User, db

bp = Blueprint("users", __name__)
USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,80}")
MIN_PASSWORD = 10


def _too_short(password, which):
    if len(password) < MIN_PASSWORD:
        return f"The {which} password needs at least {MIN_PASSWORD} characters."
    return None


def _render_users(form=None, errors=None, status=200):
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template(
        "users.html",
        users=users,
        roles=ROLES,
        role_text=ROLE_TEXT,
        form=form or {},
        errors=errors or {},
        min_password=MIN_PASSWORD,
    ), status


@bp.get("/users")
@requires("admin")
def users():
    return _render_users()


@bp.post("/users")
@requires("admin")
def create_user():
    form = request.form
    username, role, password = form.get("username", "").strip(), form.get("role", ""), form.get("password", "")
    errors = {}
    if not USERNAME.fullmatch(username):
        errors["username"] = "A user name is 1 to 80 letters, digits or . _ @ -."
    elif db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        errors["username"] = f"There is already a user named {username}."
    if role not in ROLES:
        errors["role"] = "Choose a role: " + ", ".join(ROLES) + "."
    if too_short := _too_short(password, "initial"):
        errors["password"] = too_short
    if errors:
        return _render_users(form, errors, 400)
    db.session.add(User(username=username, role=role, password_hash=generate_password_hash(password)))
    db.session.commit()
    flash(f"User {username} created with the role {role}. Give them their initial password.")
    return redirect(url_for("users.users"))


def _active_admins():
    return db.session.scalar(select(func.count(User.id)).where(User.role == "admin", User.disabled.is_(False)))


@bp.post("/users/<int:user_id>")
@requires("admin")
def update_user(user_id):
    user = db.session.get(User, user_id)
    if user is None:
        abort(404, "That user does not exist (any more). Go back to the Users page.")
    role, disabled = request.form.get("role", user.role), request.form.get("disabled") == "on"
    if role not in ROLES:
        return _render_users(errors={f"role-{user.id}": "Choose a role: " + ", ".join(ROLES) + "."}, status=400)
    # Someone must always be able to manage users.
    if user.role == "admin" and not user.disabled and (role != "admin" or disabled) and _active_admins() == 1:
        return _render_users(
            errors={f"role-{user.id}": f"{user.username} is the last active admin: make another user admin first."},
            status=400,
        )
    user.role, user.disabled = role, disabled
    if disabled:
        end_sessions(user)
    db.session.commit()
    flash(
        f"User {user.username}: role {role}"
        + (", disabled: they can no longer log in or use their tokens." if disabled else ".")
    )
    return redirect(url_for("users.users"))


@bp.post("/users/<int:user_id>/password")
@requires("admin")
def reset_password(user_id):
    """For a user who forgot theirs: the admin sets a new initial password and passes it on."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404, "That user does not exist (any more). Go back to the Users page.")
    password = request.form.get("password", "")
    if too_short := _too_short(password, "new"):
        return _render_users(errors={f"password-{user.id}": too_short}, status=400)
    set_password(user, password, keep_session=g.session_id if user.id == g.user.id else None)
    db.session.commit()
    flash(f"New password set for {user.username}: their portal sessions were logged out. Pass it on to them.")
    return redirect(url_for("users.users"))


# ----- the signed-in user's own account -----
def _render_account(errors=None, status=200):
    return render_template("account.html", errors=errors or {}, min_password=MIN_PASSWORD), status


@bp.get("/account")
@requires("viewer")
def account():
    return _render_account()


@bp.post("/account/password")
@requires("viewer")
def change_password():
    form = request.form
    current, new, repeated = form.get("current", ""), form.get("new", ""), form.get("repeat", "")
    errors = {}
    try:
        # Throttled as a login is: a session left open must not become a way to guess the password.
        if not current:
            errors["current"] = "Enter your current password."
        elif authenticate(g.user.username, current) is None:
            errors["current"] = "That is not your current password."
    except TooManyRequests as exc:
        return _render_account({"current": exc.description}, 429)
    if too_short := _too_short(new, "new"):
        errors["new"] = too_short
    elif new == current:
        errors["new"] = "The new password is the current one: choose another."
    elif repeated != new:
        errors["repeat"] = "The two new passwords differ: type the same one twice."
    if errors:
        return _render_account(errors, 400)
    set_password(g.user, new, keep_session=g.session_id)
    db.session.commit()
    flash("Password changed. Your other portal sessions were logged out; personal access tokens still work.")
    return redirect(url_for("users.account"))


@bp.post("/apis/<api_id>/owner")
@requires("admin")
def api_owner(api_id):
    api = apis.find(api_id)
    if api is None:
        abort(404, f"There is no API with id {api_id}. Go back to the API list to pick one.")
    owner = db.session.scalar(select(User).where(User.username == request.form.get("owner", "")))
    if owner is None or not has_role(owner, "owner"):
        flash("Choose a user with the owner or admin role as the API's owner.", "error")
    else:
        api.owner = owner
        db.session.commit()
        flash(f"{owner.username} now owns the API {api.name}.")
    return redirect(url_for("ui.api_page", api_id=api.id))


# ----- personal access tokens -----
def _render_tokens(created=None, errors=None, status=200):
    return render_template("tokens.html", tokens=g.user.tokens, created=created, errors=errors or {}), status


@bp.get("/tokens")
@requires("viewer")
def tokens():
    return _render_tokens()


@bp.post("/tokens")
@requires("viewer")
def create_token():
    name = request.form.get("name", "").strip()
    if not 1 <= len(name) <= 100:
        return _render_tokens(
            errors={"name": "Name the token (up to 100 characters), e.g. after the script that will use it."},
            status=400,
        )
    # Shown in this response only: a flash message would travel in the (signed, not encrypted) cookie.
    return _render_tokens(created=(name, new_token(g.user, name)), status=201)


@bp.post("/tokens/<int:token_id>/revoke")
@requires("viewer")
def revoke_token(token_id):
    token = db.session.get(AccessToken, token_id)
    if token is None or token.user_id != g.user.id:
        abort(404, "You have no such token (it may be revoked already). Go back to the Tokens page.")
    db.session.delete(token)
    db.session.commit()
    flash(f"Token {token.name} revoked: it no longer works.")
    return redirect(url_for("users.tokens"))
