"""Who may call what, as the gateway sees it: plan statuses, accepted subscriptions and live API
keys, loaded from the database by the deployment poller whenever the access version moves, and
read per request from memory only.

API keys are stored and looked up as keyed hashes (HMAC-SHA256), so a copy of the database does
not give anyone a working key. The HMAC key is derived from the instance's SECRET_KEY, which
every node of one installation shares.
"""
import hashlib
import hmac
from dataclasses import dataclass, field


class KeyHasher:
    def __init__(self, secret_key):
        self.key = hmac.new(secret_key.encode(), b"gatehouse api-key hash", hashlib.sha256).digest()

    def __call__(self, api_key):
        return hmac.new(self.key, api_key.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Access:
    version: int | None = None
    statuses: dict = field(default_factory=dict)     # (api id, plan id) -> plan status
    keys: dict = field(default_factory=dict)         # key hash -> (subscription id, api id, plan id)
    subscribers: dict = field(default_factory=dict)  # (api id, plan id, client id) -> subscription id

