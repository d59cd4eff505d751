"""Secrets at rest: every secret setting (a settings Field of kind "secret") is stored as
"enc:v1:<Fernet token>", in the drafts and in every deployment revision. Values are clear in
memory only: the portal's models decrypt what they read, the gateway what it loads.

The key is derived from GATEHOUSE_SECRET_KEY (or the instance's generated key file), so every
node given the same key reads what the others wrote. A check value stored beside the data lets
a node with another key find out at start, not when it first meets a secret.
"""
import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import text

from . import registry

MARKER = "enc:v1:"
CHECK_TABLE = "secrets_key_check"
CHECK_PLAINTEXT = "gatehouse secrets key check"


class WrongKey(Exception):
    def __init__(self, where="its database"):
        super().__init__(f"Gatehouse cannot decrypt the secrets stored in {where}: they were encrypted with "
                         "another key. Set GATEHOUSE_SECRET_KEY to the key the other nodes use.")


class Cipher:
    def __init__(self, secret_key):
        # HKDF with a purpose of its own: the same secret also signs the portal's session cookies.
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"gatehouse secrets at rest v1").derive(secret_key.encode())
        self.fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, value):
        return MARKER + self.fernet.encrypt(str(value).encode()).decode()

    def decrypt(self, value):
        """A value without the marker is returned as it is: only stored secrets carry it."""
        if not (isinstance(value, str) and value.startswith(MARKER)):
            return value
        try:
            return self.fernet.decrypt(value[len(MARKER):]).decode()
        except InvalidToken:
            raise WrongKey() from None

    def open_definition(self, d):
        return registry.map_secrets(d, self.decrypt)

    def check_key(self, connection):
        """Raise WrongKey unless this key is the one the database's secrets were encrypted with.
        The first node to check records its key's check value (one row: a race has one winner)."""
        connection.execute(text(f"INSERT INTO {CHECK_TABLE} (id, value) VALUES (1, :v) ON CONFLICT DO NOTHING"),
                           {"v": self.encrypt(CHECK_PLAINTEXT)})
        stored = connection.execute(text(f"SELECT value FROM {CHECK_TABLE} WHERE id = 1")).scalar_one()
        if self.decrypt(stored) != CHECK_PLAINTEXT:
            raise WrongKey()
