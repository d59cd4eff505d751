"""The deployments a node's gateway served last, kept in its instance folder, so that a node started
while the database is unreachable serves them until the database is back (a node that crashed
during an outage would otherwise stay down).

The file holds what the gateway holds in memory: each served API's deployed definition, its
secrets still encrypted as the database stores them, and the access tables (plan statuses, API
key hashes, subscriptions), with the key API keys are hashed with, encrypted too. It is written
whole to a temporary file, then renamed over the old one: a crash leaves one or the other.
"""

import json
import logging
import os

from sqlalchemy.engine import make_url

from .access import Access

log = logging.getLogger("gatehouse.gateway")
FILE = "last_known_deployments.json"
FORMAT = 1


class Snapshot:
    """What a file holds: {api_id: (revision, stored definition)}, the Access, and the sealed
    API-key hashing key (cipher.encrypt of its hex)."""

    def __init__(self, definitions, access, sealed_key):
        self.definitions, self.access, self.sealed_key = definitions, access, sealed_key

    @property
    def revisions(self):
        return {api_id: revision for api_id, (revision, _) in self.definitions.items()}


class LastKnown:
    def __init__(self, instance_path, database_url):
        self.path = os.path.join(instance_path, FILE)
        # A file written for another database is not this one's: the URL (without its password) says which.
        self.database = make_url(database_url).render_as_string(hide_password=True)

    def save(self, snapshot):
        access = snapshot.access
        document = {
            "format": FORMAT,
            "database": self.database,
            "apiKeySecret": snapshot.sealed_key,
            "apis": {
                api_id: {"revision": revision, "definition": definition}
                for api_id, (revision, definition) in snapshot.definitions.items()
            },
            "access": {
                "version": access.version,
                "statuses": [[*key, status] for key, status in access.statuses.items()],
                "keys": [[key_hash, *row] for key_hash, row in access.keys.items()],
                "subscribers": [[*key, subscription] for key, subscription in access.subscribers.items()],
                "metadata": access.metadata,
            },
        }
        pending = f"{self.path}.{os.getpid()}.tmp"  # gunicorn workers on one instance folder write their own
        with os.fdopen(os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(document, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pending, self.path)

    def load(self):
        """The snapshot, or None (with a line saying why) when there is none this node can use."""
        try:
            with open(self.path) as f:
                document = json.load(f)
        except FileNotFoundError:
            log.warning("no last-known deployments in %s: nothing to serve until the database is reachable", self.path)
            return None
        except (OSError, ValueError) as exc:
            log.warning(
                "the last-known deployments in %s cannot be read (%s): nothing to serve until the "
                "database is reachable",
                self.path,
                exc,
            )
            return None
        if document.get("format") != FORMAT or document.get("database") != self.database:
            log.warning(
                "the last-known deployments in %s are of another database or version: nothing to serve "
                "until the database is reachable",
                self.path,
            )
            return None
        access = document["access"]
        return Snapshot(
            {api_id: (api["revision"], api["definition"]) for api_id, api in document["apis"].items()},
            Access(
                access["version"],
                {(api, plan): status for api, plan, status in access["statuses"]},
                {key_hash: tuple(row) for key_hash, *row in access["keys"]},
                {(api, plan, client): subscription for api, plan, client, subscription in access["subscribers"]},
                access.get("metadata") or {},  # a file written before subscriptions had metadata: none
            ),
            document["apiKeySecret"],
        )
