"""Secrets at rest: a SASL JAAS password, a trust store password and a PEM private key are
encrypted in the drafts and in every deployment revision (SQLite and PostgreSQL dumps hold none
of them), the gateway still uses them, exports mask them unless an admin asks, the migration
encrypts a database stored in clear (and its downgrade decrypts it), and a node given another
key refuses to start."""

import base64
import json
import re
import stat
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from support.apis import proxy_api, tls_group
from support.database import MARKER, postgres_dump, sqlite_dump
from support.gatehouse import environment, free_port, refused_start, until
from support.pki import make_client_cert, pem, pkcs12_trust_store
from support.portal import csrf_token, portal_login

SASL_PASSWORD = "sasl-pw-" + uuid.uuid4().hex[:12]
TRUST_PASSWORD = "trust-pw-" + uuid.uuid4().hex[:12]
JWT_SECRET = "jwt-hmac-secret-at-least-32-bytes-long!"
PREVIOUS_REVISION = "b7c3e1a2d4f5"  # the revision before the one that encrypts
KEY_A, KEY_B, KEY_C = (
    "shared-node-key-" + uuid.uuid4().hex,
    "another-node-key-" + uuid.uuid4().hex,
    "a-third-key-" + uuid.uuid4().hex,
)
KEYS_PLAN = {"id": "keys", "name": "Keys", "status": "PUBLISHED", "security": {"type": "API_KEY"}}


class Secrets:
    """For the backend that wants a client certificate (at `port`): a client certificate and its
    PEM private key, a PKCS12 trust store of its CA with a password; a JAAS config with a password;
    and the strings a dump must not hold."""

    def __init__(self, port, ca_key, ca_cert):
        self.port = port
        key, cert = make_client_cert(ca_key, ca_cert)
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.cert_pem = pem(cert).decode()
        self.trust_store = base64.b64encode(pkcs12_trust_store(ca_cert, TRUST_PASSWORD)).decode()
        self.jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="gateway" password="{SASL_PASSWORD}";'
        )
        # Each line of the key's base64 body: a dump that keeps any one of them leaks the key.
        self.clear = [SASL_PASSWORD, TRUST_PASSWORD] + [
            line for line in self.key_pem.splitlines() if not line.startswith("-----")
        ]

    def proxy_ssl(self):
        return {
            "trustStore": {"type": "PKCS12", "content": self.trust_store, "password": TRUST_PASSWORD},
            "keyStore": {"type": "PEM", "certContent": self.cert_pem, "keyContent": self.key_pem},
        }

    def proxy_api(self):
        """Served only if the trust store password and the private key decrypt."""
        return proxy_api([], path="/vault") | {"endpointGroups": [tls_group(self.port, self.proxy_ssl())]}

    def kafka_api(self):
        return {
            "name": "Orders",
            "apiVersion": "1",
            "definitionVersion": "4.0.0",
            "type": "message",
            "listeners": [{"type": "http", "paths": [{"path": "/orders"}], "entrypoints": [{"type": "http-post"}]}],
            "endpointGroups": [
                {
                    "name": "brokers",
                    "type": "kafka",
                    "sharedConfiguration": {
                        "security": {
                            "protocol": "SASL_SSL",
                            "sasl": {"saslMechanism": "PLAIN", "saslJaasConfig": self.jaas},
                            "ssl": {
                                "trustStore": {
                                    "type": "PKCS12",
                                    "certificates": self.trust_store,
                                    "password": TRUST_PASSWORD,
                                },
                                "keyStore": {"type": "PEM", "certificateChain": self.cert_pem, "key": self.key_pem},
                            },
                        },
                        "producer": {"enabled": True, "topics": ["orders"]},
                    },
                    "endpoints": [
                        {
                            "name": "main",
                            "type": "kafka",
                            "inheritConfiguration": True,
                            "configuration": {"bootstrapServers": f"127.0.0.1:{free_port()}"},
                        }
                    ],
                }
            ],
        }

    def assert_none_in(self, text, where):
        leaked = [secret for secret in self.clear if secret in text]
        assert not leaked, f"{where} holds secrets in clear: {leaked}"


@pytest.fixture
def secrets(mtls_backend):
    backend, ca_key, ca_cert = mtls_backend
    return Secrets(backend.server_address[1], ca_key, ca_cert)


def shared_ssl(exported):
    return exported["api"]["endpointGroups"][0]["sharedConfiguration"]["ssl"]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_database_dump_holds_no_secret_in_clear(request, start_server, secrets, database):
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    server = start_server(url)
    jwt_plan = {
        "id": "jwt",
        "name": "JWT",
        "status": "PUBLISHED",
        "security": {
            "type": "JWT",
            "configuration": {
                "signature": "HMAC_HS256",
                "publicKeyResolver": "GIVEN_KEY",
                "resolverParameter": JWT_SECRET,
            },
        },
    }
    for definition in (secrets.proxy_api(), secrets.kafka_api() | {"plans": [jwt_plan]}):
        api_id = server.import_api(definition)
        assert server.deploy(api_id) == 1  # a deployment revision beside the draft
    dump = postgres_dump(url) if url else sqlite_dump(server.workdir)
    secrets.assert_none_in(dump, f"the {database} dump")
    assert JWT_SECRET not in dump
    # Drafts and revisions of both APIs (3 secrets in the Kafka group, 2 in the proxy group, the
    # JWT plan's HMAC secret), the key check value and the API-key hashing key.
    assert dump.count(MARKER) == 2 * (3 + 2 + 1) + 2, dump.count(MARKER)


def test_the_gateway_uses_the_decrypted_secrets_and_logs_none(start_server, secrets):
    server = start_server(GATEHOUSE_LOG_LEVEL="DEBUG")
    api_id = server.deploy_api(secrets.proxy_api())
    got = requests.get(server.gateway + "/vault/x", timeout=10)
    assert got.status_code == 200 and got.headers["X-Backend"] == "mtls", got.text
    server.deploy_api(secrets.kafka_api())
    # The producer is made with the JAAS config and both stores, and fails to reach its broker.
    refused = requests.post(server.gateway + "/orders", data="an order", timeout=60)
    assert refused.status_code == 502 and "cannot be reached" in refused.json()["message"]

    browser = portal_login(server)
    endpoints = browser.get(server.portal + f"/apis/{api_id}/endpoints").text
    edit = re.search(r"/endpoints/\d+/edit", endpoints).group(0)
    for page in ("", "/endpoints", edit, "/deployments/1"):
        shown = browser.get(server.portal + f"/apis/{api_id}{page}")
        assert shown.status_code == 200
        secrets.assert_none_in(shown.text, f"the page /apis/<id>{page}")
    secrets.assert_none_in(sqlite_dump(server.workdir), "the SQLite dump")
    log = Path(server.proc.log_path).read_text()
    assert "deployed as revision 1" in log and "DEBUG kafka" in log  # the log is the whole story, at DEBUG
    secrets.assert_none_in(log, "the server log")


def test_exports_mask_secrets_unless_an_admin_asks_and_a_masked_import_keeps_them(server, secrets):
    api_id = server.import_api(secrets.proxy_api())
    masked = server.mgmt("GET", f"/apis/{api_id}/_export/definition").json()
    assert shared_ssl(masked) == {
        "trustStore": {"type": "PKCS12", "content": secrets.trust_store, "password": "********"},
        "keyStore": {"type": "PEM", "certContent": secrets.cert_pem, "keyContent": "********"},
    }
    secrets.assert_none_in(json.dumps(masked), "the export")
    secrets.assert_none_in(server.mgmt("GET", f"/apis/{api_id}").text, "the management API")
    clear = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert shared_ssl(clear) == secrets.proxy_ssl()

    # The masked export imported again keeps the stored secrets, still encrypted.
    before = sqlite_dump(server.workdir)
    assert server.mgmt("PUT", f"/apis/{api_id}/_import/definition", json=masked).status_code == 200
    again = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert shared_ssl(again) == secrets.proxy_ssl()
    after = sqlite_dump(server.workdir)
    secrets.assert_none_in(after, "the SQLite dump")
    assert after.count(MARKER) == before.count(MARKER) == 2 + 2


def test_a_secret_left_blank_in_the_endpoint_form_keeps_its_stored_value(server, secrets):
    kafka = secrets.kafka_api()
    group = kafka["endpointGroups"][0]
    group["endpoints"][0].update(
        inheritConfiguration=False,
        sharedConfigurationOverride={
            "security": {
                "protocol": "SASL_PLAINTEXT",
                "sasl": {"saslMechanism": "PLAIN", "saslJaasConfig": secrets.jaas},
            },
            "producer": {"enabled": True, "topics": ["orders"]},
        },
    )
    api_id = server.import_api(kafka)
    browser = portal_login(server)
    page = browser.get(server.portal + f"/apis/{api_id}/endpoints").text
    edit = server.portal + f"/apis/{api_id}" + re.search(r"/endpoints/\d+/edit", page).group(0)
    form = {
        "csrf_token": csrf_token(page),
        "name": "main",
        "weight": "1",
        "cfg.bootstrapServers": "127.0.0.1:9092",
        "shared.security.protocol": "SASL_PLAINTEXT",
        "shared.security.sasl.saslMechanism": "PLAIN",
        "shared.security.sasl.saslJaasConfig": "",
        "shared.producer.enabled": "on",
        "shared.producer.topics": "orders",
    }
    assert "Endpoint main saved." in browser.post(edit, data=form).text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    override = exported["api"]["endpointGroups"][0]["endpoints"][0]["sharedConfigurationOverride"]
    assert override["security"]["sasl"]["saslJaasConfig"] == secrets.jaas
    dump = sqlite_dump(server.workdir)
    assert SASL_PASSWORD not in dump and MARKER in dump


# ----- the migration -----
def flask_db(workdir, url, *command):
    """`flask db ...` on this checkout's app, as an operator would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", "db", *command],
        cwd=workdir,
        env=environment(workdir, url, GATEHOUSE_SECRET_KEY=KEY_A),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_migrations_build_the_schema_the_models_declare(tmp_path):
    url = f"sqlite:///{tmp_path / 'check.db'}"
    flask_db(tmp_path, url, "upgrade")
    flask_db(tmp_path, url, "check")  # fails naming each table or column the models and migrations disagree on


def insert_clear_api(url, definition, state):
    """What the previous revision stored for a deployed API: every row, secrets in clear. Returns its id."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    tables = sa.MetaData()
    tables.reflect(engine)
    api_id, now = str(uuid.uuid4()), datetime(2026, 1, 1)
    listener, group = definition["listeners"][0], definition["endpointGroups"][0]
    plan = {
        "id": str(uuid.uuid4()),
        "name": "Open",
        "security": {"type": "key-less"},
        "mode": "standard",
        "status": "published",
    }
    with engine.begin() as db:

        def insert(table, **row):
            return db.execute(tables.tables[table].insert().values(**row)).inserted_primary_key[0]

        insert(
            "apis",
            id=api_id,
            name=definition["name"],
            api_version="1",
            description="",
            type=definition["type"],
            state=state,
            deployed_revision=1,
            extra={},
            created_at=now,
            updated_at=now,
        )
        listener_id = insert("listeners", api_id=api_id, position=0, type="http", extra={})
        insert(
            "context_paths",
            listener_id=listener_id,
            api_id=api_id,
            position=0,
            path=listener["paths"][0]["path"],
            extra={},
        )
        for position, entrypoint in enumerate(listener["entrypoints"]):
            insert("entrypoints", listener_id=listener_id, position=position, type=entrypoint["type"], extra={})
        group_id = insert(
            "endpoint_groups",
            api_id=api_id,
            position=0,
            name=group["name"],
            type=group["type"],
            shared_configuration=group["sharedConfiguration"],
            extra={},
        )
        for position, endpoint in enumerate(group["endpoints"]):
            insert(
                "endpoints",
                group_id=group_id,
                position=position,
                name=endpoint["name"],
                type=endpoint["type"],
                weight=1,
                inherit_configuration=True,
                secondary=False,
                configuration=endpoint["configuration"],
                extra={},
            )
        insert(
            "plans",
            api_id=api_id,
            position=0,
            id=plan["id"],
            name=plan["name"],
            security_type="key-less",
            mode="standard",
            status="published",
            extra={},
        )
        deployed = dict(definition, id=api_id, description="", plans={plan["id"]: plan})
        insert("deployments", api_id=api_id, revision=1, definition=deployed, created_at=now, created_by="admin")
    engine.dispose()
    return api_id


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migration_encrypts_a_clear_database_and_its_downgrade_decrypts_it(
    request, tmp_path, start_server, secrets, database
):
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None  # None: the instance's
    dump = (lambda: postgres_dump(url)) if url else (lambda: sqlite_dump(tmp_path))
    flask_db(tmp_path, url, "upgrade", PREVIOUS_REVISION)
    engine_url = url or f"sqlite:///{tmp_path / 'instance' / 'gatehouse.db'}"
    api_id = insert_clear_api(engine_url, secrets.proxy_api(), "started")
    insert_clear_api(engine_url, secrets.kafka_api(), "stopped")
    clear = dump()
    assert all(secret in clear for secret in secrets.clear) and MARKER not in clear

    server = start_server(url, GATEHOUSE_SECRET_KEY=KEY_A)  # starting migrates
    encrypted = dump()
    secrets.assert_none_in(encrypted, "the migrated dump")
    assert encrypted.count(MARKER) == 2 * (3 + 2) + 2  # drafts and revisions, the key check and API-key rows
    server.wait_serving(api_id, 1)
    got = requests.get(server.gateway + "/vault/x", timeout=10)  # served from the migrated revision
    assert got.status_code == 200 and got.headers["X-Backend"] == "mtls", got.text
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert shared_ssl(exported) == secrets.proxy_ssl()
    server.stop()

    flask_db(tmp_path, url, "downgrade", PREVIOUS_REVISION)
    downgraded = dump()
    assert all(secret in downgraded for secret in secrets.clear) and MARKER not in downgraded


# ----- the key -----
def test_nodes_sharing_a_database_need_the_same_key(tmp_path, start_server, secrets, postgres_url):
    first = start_server(postgres_url, GATEHOUSE_SECRET_KEY=KEY_A)
    api_id = first.import_api(secrets.proxy_api())
    same_key = start_server(postgres_url, GATEHOUSE_SECRET_KEY=KEY_A)
    exported = same_key.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"})
    assert shared_ssl(exported.json()) == secrets.proxy_ssl()

    other = tmp_path / "other-node"
    other.mkdir()
    refused = refused_start(other, environment(other, postgres_url, GATEHOUSE_SECRET_KEY=KEY_B))
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"Gatehouse cannot decrypt the secrets stored in {postgres_url.replace('postgresql://', 'postgresql+psycopg://')}"
        ": they were encrypted with another key. Set GATEHOUSE_SECRET_KEY to the key the other nodes use."
    )


def test_the_generated_key_file_is_readable_by_its_owner_only(start_server, monkeypatch):
    monkeypatch.delenv("GATEHOUSE_SECRET_KEY", raising=False)
    server = start_server()
    key_file = server.workdir / "instance" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    server.stop()
    key_file.chmod(0o644)  # a copy restored with the usual umask
    start_server()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# ----- rotating the key -----
def rotate(workdir, url=None, **keys):
    """`gatehouse rotate-secret-key`, as an operator would run it with every node stopped."""
    return subprocess.run(
        [sys.executable, "-c", "import app, sys; sys.exit(app.main())", "rotate-secret-key"],
        cwd=workdir,
        env=environment(workdir, url, **keys),
        capture_output=True,
        text=True,
        timeout=120,
    )


def keyed_api(server, secrets):
    """The mutual-TLS proxy API behind an API-key plan: served only if its secrets decrypt and the key is known."""
    api_id = server.deploy_api(secrets.proxy_api() | {"plans": [KEYS_PLAN]})
    key = server.subscribe(api_id, "keys")["apiKey"]
    until(lambda: call_with(server, key).status_code == 200, timeout=5)  # the gateway's next access poll
    return api_id, key


def call_with(server, api_key):
    return requests.get(server.gateway + "/vault/x", headers={"X-Gravitee-Api-Key": api_key}, timeout=10)


def assert_served_after_rotation(server, api_id, api_key, secrets):
    server.wait_serving(api_id, 1)
    until(lambda: call_with(server, api_key).status_code != 401, timeout=5)  # the access snapshot is loaded
    got = call_with(server, api_key)
    assert got.status_code == 200 and got.headers["X-Backend"] == "mtls", got.text
    assert call_with(server, api_key[:-2]).status_code == 401
    exported = server.mgmt("GET", f"/apis/{api_id}/_export/definition", params={"includeSecrets": "true"}).json()
    assert shared_ssl(exported) == secrets.proxy_ssl()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rotating_the_secret_key_keeps_every_secret_and_api_key(request, start_server, secrets, database):
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    server = start_server(url, GATEHOUSE_SECRET_KEY=KEY_A)
    api_id, api_key = keyed_api(server, secrets)
    server.stop()

    def dump():  # without pg_dump's \restrict lines, which carry a new random token each time
        text = postgres_dump(url) if url else sqlite_dump(server.workdir)
        return "\n".join(line for line in text.splitlines() if not re.match(r"\\(un)?restrict ", line))

    before = dump()

    refusals = [
        (
            {"GATEHOUSE_SECRET_KEY": KEY_B, "GATEHOUSE_NEW_SECRET_KEY": KEY_C},
            3,
            "they were encrypted with another key. Set GATEHOUSE_SECRET_KEY to the key the other nodes use.",
        ),
        ({"GATEHOUSE_SECRET_KEY": KEY_A}, 2, "Set GATEHOUSE_NEW_SECRET_KEY to the new key"),
        (
            {"GATEHOUSE_SECRET_KEY": KEY_A, "GATEHOUSE_NEW_SECRET_KEY": "short"},
            2,
            "GATEHOUSE_NEW_SECRET_KEY is too short: use at least 16 characters",
        ),
        ({"GATEHOUSE_SECRET_KEY": KEY_A, "GATEHOUSE_NEW_SECRET_KEY": KEY_A}, 2, "is the current key"),
    ]
    for keys, status, message in refusals:
        refused = rotate(server.workdir, url, **keys)
        assert refused.returncode == status and message in refused.stderr, (keys, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert dump() == before  # nothing changed by a refused rotation

    done = rotate(server.workdir, url, GATEHOUSE_SECRET_KEY=KEY_A, GATEHOUSE_NEW_SECRET_KEY=KEY_B)
    assert done.returncode == 0, done.stderr
    # The draft's endpoint group and the deployed revision hold secrets.
    assert (
        "The secrets of 2 stored rows are encrypted with the new key. Start every node again: set "
        "GATEHOUSE_SECRET_KEY to the new key."
    ) in done.stdout
    for secret in (KEY_A, KEY_B, *secrets.clear):
        assert secret not in done.stdout + done.stderr
    after = dump()
    secrets.assert_none_in(after, f"the {database} dump after the rotation")
    assert after.count(MARKER) == before.count(MARKER) == 2 * 2 + 2
    assert set(re.findall(r"enc:v1:[\w=-]+", after)).isdisjoint(re.findall(r"enc:v1:[\w=-]+", before))

    old_key = rotate(server.workdir, url, GATEHOUSE_SECRET_KEY=KEY_A, GATEHOUSE_NEW_SECRET_KEY=KEY_C)
    assert old_key.returncode == 3 and "encrypted with another key" in old_key.stderr
    assert_served_after_rotation(start_server(url, GATEHOUSE_SECRET_KEY=KEY_B), api_id, api_key, secrets)


def test_rotating_a_generated_key_file_writes_the_new_key_to_it(start_server, secrets, monkeypatch):
    monkeypatch.delenv("GATEHOUSE_SECRET_KEY", raising=False)
    server = start_server()
    api_id, api_key = keyed_api(server, secrets)
    server.stop()
    key_file = server.workdir / "instance" / "secret_key"
    old_key = key_file.read_text()

    done = rotate(server.workdir)
    assert done.returncode == 0, done.stderr
    assert f"Start every node again: the key file {key_file} holds the new key." in done.stdout
    new_key = key_file.read_text()
    assert new_key != old_key and len(new_key) == 64 and new_key not in done.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in key_file.parent.glob("secret_key*")) == ["secret_key"]
    assert_served_after_rotation(start_server(), api_id, api_key, secrets)
