"""Secrets typed into a form whose save failed are kept on the server, tied to the portal session
and to a random form id posted with the form, so that the next try need not type them again while
the page shows them only as "set". Nothing of them goes back to the browser."""

import hashlib
import json
import re
import secrets
from datetime import timedelta

from flask import g
from sqlalchemy import delete

from gateway_runtime.at_rest import WrongKey
from gateway_runtime.definition.slots import SECRET_MASK

from .models import KeptFormSecrets, cipher, db, utcnow

FIELD = "form_id"
LIFETIME = timedelta(hours=1)


def form_id(form=None):
    """The form id posted with `form`, or a new one for a form shown afresh."""
    posted = (form or {}).get(FIELD, "")
    return posted if re.fullmatch(r"[A-Za-z0-9_-]{16,64}", posted) else secrets.token_urlsafe(24)


def secret_names(*parts):
    """Input names of the secret fields of (settings, prefix) pairs."""
    return [prefix + f.path for settings, prefix in parts for f in settings if f.secret]


def _row(form):
    if not g.get("session_id"):
        return None, None
    key = hashlib.sha256(f"{g.session_id}:{form_id(form)}".encode()).hexdigest()
    return key, db.session.get(KeptFormSecrets, key)


def kept(form):
    """{input name: secret} kept for the form posted."""
    _, row = _row(form)
    if row is None:
        return {}
    try:
        return json.loads(cipher().decrypt(row.data))
    except WrongKey:  # kept before the secret key was rotated: type it again
        return {}


def with_kept(form, names):
    """The posted form as a dict, each secret input left empty filled from what was kept for it."""
    merged = form.to_dict()
    stored = kept(form)
    for name in names:
        if not merged.get(name) and name in stored:
            merged[name] = stored[name]
    return merged


def keep(form, names):
    """After a failed save: keep the secrets the (merged) form holds, never a masked value."""
    key, row = _row(form)
    if key is None:
        return
    typed = {name: form[name] for name in names if form.get(name) and form[name] != SECRET_MASK}
    db.session.execute(delete(KeptFormSecrets).where(KeptFormSecrets.created_at < utcnow() - LIFETIME))
    if row is not None:
        db.session.delete(row)
        db.session.flush()
    if typed:
        db.session.add(KeptFormSecrets(id=key, session_id=g.session_id, data=cipher().encrypt(json.dumps(typed))))
    db.session.commit()


def forget(form):
    """After a successful save: the kept secrets are stored where they belong now."""
    _, row = _row(form)
    if row is not None:
        db.session.delete(row)
        db.session.commit()
