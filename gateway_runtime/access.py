"""Who may call what, as the gateway sees it: plan statuses, accepted subscriptions and live API
keys, loaded from the database by the deployment poller whenever the access version moves, and
read per request from memory only.

API keys are stored and looked up as keyed hashes (HMAC-SHA256), so a copy of the database does
not give anyone a working key. The HMAC key is stored encrypted beside the secrets
(at_rest.Cipher.api_key_secret), so every node of one installation reads the same one.
"""

import hashlib
import hmac
from dataclasses import dataclass, field


class KeyHasher:
    def __init__(self, key):
        self.key = key

    def __call__(self, api_key):
        return hmac.new(self.key, api_key.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Access:
    version: int | None = None
    statuses: dict = field(default_factory=dict)  # (api id, plan id) -> plan status
    keys: dict = field(default_factory=dict)  # key hash -> (subscription id, api id, plan id)
    subscribers: dict = field(default_factory=dict)  # (api id, plan id, client id) -> subscription id
    metadata: dict = field(default_factory=dict)  # subscription id -> {name: text}, for flows
