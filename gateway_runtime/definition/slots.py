"""Secrets inside JSON documents, one decision per place, shared by masking, encryption at rest and
restoring a masked copy sent back: a Slot is one secret, where it is and how to replace it.
Declared secrets (a connector's settings, a plan's HMAC secret) give their own slots; keys nobody
declared are secrets when their names say so (named_slots)."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SECRET_MASK = "********"
# Request headers that carry credentials: their values are secrets wherever headers are configured.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")
SECRET_HEADER_ENDINGS = ("-token", "-secret", "-key")
# The last word of a key nobody declared that names a secret (clientSecret, api_key, keyStorePassword).
SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "key", "credential", "credentials")


@dataclass
class Slot:
    """One secret inside a JSON document: where it is (the same in an earlier copy of the document,
    so that a masked value can take the stored one back), its value, and put(new) to replace it
    (put(None) removes it)."""

    where: tuple
    value: Any
    put: Callable


def map_slots(slots_of, values, change):
    """A copy of the values with change(value) in place of each secret slots_of(values) finds."""
    values = json.loads(json.dumps(values))
    for slot in list(slots_of(values)):
        slot.put(change(slot.value))
    return values


def restore_slots(slots_of, values, previous):
    """Masked secrets (an export imported again, a form sent back) take the previous values, in
    place; a masked secret the previous values lack is removed."""
    before = {slot.where: slot.value for slot in slots_of(previous)} if previous else {}
    for slot in list(slots_of(values)):
        if slot.value == SECRET_MASK:
            slot.put(before.get(slot.where))
    return values


def secret_header(name):
    name = str(name).strip().lower()
    return name in SECRET_HEADERS or name.endswith(SECRET_HEADER_ENDINGS)


def secret_name(name):
    """Does a key nobody declared name a secret? Its last word decides: clientSecret, api_key,
    keyStorePassword do; tokenEndpoint, keyStore and publicKey do not."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name)).lower()
    words = re.findall(r"[a-z0-9]+", words)
    return bool(words) and words[-1] in SECRET_WORDS and "public" not in words


def header_slots(pairs, where):
    """The values of credential headers in a list of {name, value}, each placed by its name (and
    its rank among headers of that name)."""
    seen = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not secret_header(pair.get("name", "")) or pair.get("value") in (None, ""):
            continue
        name = pair["name"].strip().lower()
        seen[name] = seen.get(name, -1) + 1

        def put(new, pair=pair):
            if new is None:
                pairs.remove(pair)
            else:
                pair["value"] = new

        yield Slot(where + (name, seen[name]), pair["value"], put)


def url_slots(url, where, replace):
    """The password of a URL's `user:password@`; replace(url) stores the URL with a new one."""
    netloc = urlsplit(url).netloc if "://" in url else ""
    userinfo, at, _ = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return
    start = url.index("://") + 3
    rest = url[start + len(netloc) :]
    host = netloc[len(userinfo) + 1 :]

    def put(new):
        credentials = user if new is None else f"{user}:{new}"
        replace(url[:start] + credentials + "@" + host + rest)

    yield Slot(where + ("password",), password, put)


def without_password(url):
    """A URL as logs and messages show it: its password masked."""
    found = {}
    for slot in url_slots(url, (), lambda masked: found.update(url=masked)):
        slot.put(SECRET_MASK)
    return found.get("url", url)


def named_slots(node, skip=lambda where: False, where=()):
    """Secrets nobody declared: string values under keys whose names look secret (secret_name),
    at any depth. skip(where) is true for the keys whose secrets are declared elsewhere."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    # A {name, value} naming a credential header: health-check headers, a policy's added headers.
    header = isinstance(node, dict) and isinstance(node.get("name"), str) and secret_header(node["name"])
    for key, value in items:
        if skip(where + (key,)):
            continue
        if (
            isinstance(value, str)
            and value
            and isinstance(key, str)
            and (secret_name(key) or (header and key == "value"))
        ):
            yield Slot(
                where + (key,),
                value,
                lambda new, key=key: node.__setitem__(key, new) if new is not None else node.pop(key, None),
            )
        else:
            yield from named_slots(value, skip, where + (key,))


def own_keys(*keys):
    """A skip for named_slots: these top-level keys hold secrets declared elsewhere."""
    return lambda where: len(where) == 1 and where[0] in keys
