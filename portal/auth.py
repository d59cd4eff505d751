"""One admin user: browser sessions for the UI, HTTP Basic for the management API."""
import functools
import hashlib
import os
import secrets

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from .models import User, db

ADMIN = "admin"
bp = Blueprint("auth", __name__)


def ensure_admin():
    """Create the admin on first start. Its password comes from GATEHOUSE_ADMIN_PASSWORD, else it
    is generated and printed this once (only its hash is stored)."""
    wanted = os.environ.get("GATEHOUSE_ADMIN_PASSWORD")
    user = db.session.scalar(select(User).where(User.username == ADMIN))
    if user is None:
        password = wanted or secrets.token_urlsafe(12)
        db.session.add(User(username=ADMIN, password_hash=generate_password_hash(password)))
        db.session.commit()
        if not wanted:
            print(f"Gatehouse admin user: {ADMIN}  password (shown once, keep it): {password}", flush=True)
    elif wanted and not check_password_hash(user.password_hash, wanted):
        user.password_hash = generate_password_hash(wanted)
        db.session.commit()


# Password hashing is deliberately slow (~0.1 s); management API clients send the password on
# every call. A check that passed is remembered for the exact stored hash, so a password change
# invalidates it; only digests are kept.
_verified = set()


def authenticate(username, password):
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        return None
    key = hashlib.sha256(f"{user.password_hash}\0{password or ''}".encode()).digest()
    if key in _verified:
        return user
    if check_password_hash(user.password_hash, password or ""):
        _verified.add(key)
        return user
    return None


def local_path(target):
    """A redirect target from a form or query, kept only when it stays on this site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user_id = session.get("user_id")
        g.user = db.session.get(User, user_id) if user_id else None
        if g.user is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapped


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired("Enter the user name.")], default=ADMIN)
    password = PasswordField("Password", validators=[DataRequired("Enter the password.")])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            session.clear()
            session["user_id"] = user.id
            return redirect(local_path(request.args.get("next")) or url_for("ui.apis"))
        form.password.errors.append("Wrong user name or password. The admin password was printed on first "
                                    "start, or set with GATEHOUSE_ADMIN_PASSWORD.")
    return render_template("login.html", form=form)


@bp.post("/logout")
def logout():
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))
