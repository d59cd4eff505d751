"""Secrets at rest: every secret setting (a settings Field of kind "secret") is stored as
"enc:v1:<Fernet token>", in the drafts and in every deployment revision. Values are clear in
memory only: the portal's models decrypt what they read, the gateway what it loads.

The key is derived from GATEHOUSE_SECRET_KEY (or the instance's generated key file), so every
node given the same key reads what the others wrote. A check value stored beside the data lets
a node with another key find out at start, not when it first meets a secret.

`gatehouse rotate-secret-key` (rotate_secret_key in app.py) encrypts everything again with a new
key. API keys cannot be hashed again (only their hashes are kept), so the key they are hashed with
is stored too, encrypted, and outlives the secret key it was first derived from.
"""

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import text

from .definition.secrets import map_secrets

MARKER = "enc:v1:"
CHECK_TABLE = "secrets_key_check"
CHECK_PLAINTEXT = "gatehouse secrets key check"
CHECK_ROW, API_KEY_ROW = 1, 2  # CHECK_TABLE's rows: the check value; the key API keys are hashed with


class WrongKey(Exception):
    def __init__(self, where="its database"):
        super().__init__(
            f"Gatehouse cannot decrypt the secrets stored in {where}: they were encrypted with "
            "another key. Set GATEHOUSE_SECRET_KEY to the key the other nodes use."
        )


class Cipher:
    def __init__(self, secret_key):
        # HKDF with a purpose of its own: the same secret also signs the portal's session cookies.
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"gatehouse secrets at rest v1").derive(
            secret_key.encode()
        )
        self.fernet = Fernet(base64.urlsafe_b64encode(key))
        self.first_api_key_secret = hmac.new(secret_key.encode(), b"gatehouse api-key hash", hashlib.sha256).digest()

    def encrypt(self, value):
        return MARKER + self.fernet.encrypt(str(value).encode()).decode()

    def decrypt(self, value):
        """A value without the marker is returned as it is: only stored secrets carry it."""
        if not (isinstance(value, str) and value.startswith(MARKER)):
            return value
        try:
            return self.fernet.decrypt(value[len(MARKER) :]).decode()
        except InvalidToken:
            raise WrongKey() from None

    def open_definition(self, d):
        return map_secrets(d, self.decrypt)

    def check_key(self, connection):
        """Raise WrongKey unless this key is the one the database's secrets were encrypted with.
        The first node to check records its key's check value and API-key hashing key (one row
        each: a race has one winner)."""
        for row, value in ((CHECK_ROW, CHECK_PLAINTEXT), (API_KEY_ROW, self.first_api_key_secret.hex())):
            connection.execute(
                text(f"INSERT INTO {CHECK_TABLE} (id, value) VALUES (:id, :v) ON CONFLICT DO NOTHING"),
                {"id": row, "v": self.encrypt(value)},
            )
        if self.decrypt(self._stored(connection, CHECK_ROW)) != CHECK_PLAINTEXT:
            raise WrongKey()

    def api_key_secret(self, connection):
        return bytes.fromhex(self.decrypt(self._stored(connection, API_KEY_ROW)))

    def seal_keys(self, connection, api_key_secret):
        """Store the check value and the API-key hashing key encrypted with this key (after a rotation)."""
        for row, value in ((CHECK_ROW, CHECK_PLAINTEXT), (API_KEY_ROW, api_key_secret.hex())):
            connection.execute(
                text(f"UPDATE {CHECK_TABLE} SET value = :v WHERE id = :id"), {"id": row, "v": self.encrypt(value)}
            )

    @staticmethod
    def _stored(connection, row):
        return connection.execute(text(f"SELECT value FROM {CHECK_TABLE} WHERE id = :id"), {"id": row}).scalar_one()
