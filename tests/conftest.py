"""Fixtures: real `gatehouse serve` processes (one per test, or one per module when its tests need
no isolation), brokers, certificates and browsers; the helpers they use live in support/."""

import os
import ssl
import subprocess
import sys
import threading
import uuid

import pytest

from support import plans
from support.gatehouse import free_port, launch, missing, wait_for_port
from support.http_backends import serve, start_backend
from support.mosquitto import Mosquitto
from support.pki import Material, make_ca, pem, server_cert_files
from support.rabbit import HOST, PORT, Names, broker_up
from support.tansu import Tansu
from support.tcp_backends import EchoBackend
from support.webhook import Receiver


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(database_url=None, **env) -> Server running `gatehouse serve`."""
    servers = []

    def start(database_url=None, **extra):
        servers.append(launch(tmp_path, database_url, **extra))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One server for a whole test module (for modules of many short tests)."""
    server = launch(tmp_path_factory.mktemp("module"))
    yield server
    server.stop()


@pytest.fixture
def shared_server(module_server):
    """The module's server, emptied of APIs after each test."""
    yield module_server
    module_server.delete_all_apis()


@pytest.fixture
def server(start_server):
    return start_server()


POSTGRES = "postgresql://postgres@127.0.0.1:5432/"


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL (trust auth for the user postgres), dropped after."""
    import psycopg

    name = "gatehouse_test_" + uuid.uuid4().hex[:10]
    try:
        admin = psycopg.connect(POSTGRES + "postgres", autocommit=True)
    except psycopg.OperationalError:
        missing("PostgreSQL on 127.0.0.1:5432")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES + name
    with psycopg.connect(POSTGRES + "postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, one per module; each page a test opens has a browser context of its own."""
    from support.browser import launched_chromium  # Playwright only where a test needs a browser

    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="session")
def tansu(tmp_path_factory):
    """One broker for the session; each test uses topics of its own (names from new_topic)."""
    broker = Tansu(tmp_path_factory.mktemp("tansu")).start()
    yield broker
    broker.stop()


@pytest.fixture
def new_topic(request, tansu):
    """new_topic(partitions=1) -> the name of a topic created for this test (one partition: order)."""
    import re as _re

    from kafka.admin import KafkaAdminClient, NewTopic

    counter = iter(range(1000))
    base = _re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[-60:].strip("-")
    admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap)

    def create(partitions=1):
        name = f"{base}-{next(counter)}"
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        return name

    yield create
    admin.close()


@pytest.fixture
def receiver():
    """Factory: receiver(answer=None) -> a Receiver, closed after the test."""
    made = []

    def make(answer=None):
        made.append(Receiver(answer) if answer else Receiver())
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="session")
def rabbitmq():
    """The local broker; in CI a missing broker fails the test instead of skipping it."""
    if not broker_up():
        message = f"no RabbitMQ broker at {HOST}:{PORT} (start it with `rabbitmq-server -detached`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return f"{HOST}:{PORT}"


@pytest.fixture
def names(request, rabbitmq):
    """Exchange and queue names of this test, and the clean-up of what it made on the broker."""
    made = Names(request.node.name)
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def backend():
    """A JSON backend for the plan tests (it names the API key it was sent), one per module."""
    httpd = serve(plans.Backend)
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def http_backends():
    """Three HTTP backends, b0 to b2."""
    servers = [start_backend(f"b{i}") for i in range(3)]
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mtls_backend(tmp_path):
    """A TLS backend that asks for a client certificate signed by the test's CA; it names the
    client it saw in the X-Client header."""
    ca_key, ca_cert = make_ca("Mutual TLS test CA")
    (tmp_path / "ca.pem").write_bytes(pem(ca_cert))
    server = start_backend("mtls", start=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server_cert_files(tmp_path, ca_key, ca_cert))
    context.load_verify_locations(tmp_path / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, ca_key, ca_cert
    server.shutdown()
    server.server_close()


@pytest.fixture
def outbound_proxies(tmp_path):
    """pproxy (a real HTTP / SOCKS proxy server) on free ports: an HTTP and a SOCKS5 proxy that
    want user `gw` with password `secret`, and a SOCKS4 one without. Its log names every
    connection it carries."""
    ports = {"HTTP": free_port(), "SOCKS5": free_port(), "SOCKS4": free_port()}
    log = tmp_path / "pproxy.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pproxy",
            "-v",
            "--auth",
            "0",
            "-l",
            f"http://127.0.0.1:{ports['HTTP']}#gw:secret",
            "-l",
            f"socks5://127.0.0.1:{ports['SOCKS5']}#gw:secret",
            "-l",
            f"socks4://127.0.0.1:{ports['SOCKS4']}",
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for port in ports.values():
        wait_for_port(port, process)
    yield ports, log
    process.terminate()
    process.wait(10)


@pytest.fixture
def tcp_backends():
    """Factory: tcp_backends(name, context=None) -> an echo backend, killed after the test."""
    made = []

    def make(name, context=None):
        made.append(EchoBackend(name, context))
        return made[-1]

    yield make
    for backend in made:
        backend.kill()


@pytest.fixture(scope="session")
def material():
    """One CA's certificates and keys in every store format, for the session."""
    return Material()


@pytest.fixture(scope="module")
def certs(tmp_path_factory, material):
    """A GATEHOUSE_CERTS_DIR holding the material's stores, for the module."""
    base = tmp_path_factory.mktemp("certs")
    (base / "ca.pem").write_text(material.ca_pem)
    (base / "trust.jks").write_bytes(material.jks_truststore())
    (base / "key.pem").write_text(material.key_pem())
    (base / "client.p12").write_bytes(material.p12_keystore())
    return base


@pytest.fixture(scope="module")
def gatehouse(tmp_path_factory, certs):
    """The module's server, its certificate folder `certs` (stores named by location resolve)."""
    server = launch(tmp_path_factory.mktemp("group-page"), GATEHOUSE_CERTS_DIR=str(certs))
    yield server
    server.stop()


@pytest.fixture
def site(gatehouse):
    """That server, emptied of APIs after each test."""
    yield gatehouse
    gatehouse.delete_all_apis()


# ----- markers and the order of the modules across xdist workers -----
# Modules whose tests talk to a broker (Tansu, RabbitMQ, Mosquitto) throughout; tests elsewhere are
# marked `broker` by the broker fixtures they use.
BROKER_MODULES = {
    "test_kafka",
    "test_kafka_fixtures",
    "test_kafka_tls",
    "test_mqtt5",
    "test_mqtt5_broker",
    "test_mqtt5_fixtures",
    "test_plans_kafka",
    "test_plans_rabbitmq",
    "test_rabbitmq",
    "test_rabbitmq_fixtures",
    "test_rabbitmq_settings",
    "test_reliability_kafka",
    "test_reliability_lifecycle",
    "test_reliability_mqtt",
    "test_webhook",
    "test_webhook_fixtures",
    "test_webhook_processes",
}
BROKER_FIXTURES = {"tansu", "new_topic", "rabbitmq", "names"}
# A module with a module-scoped fixture (a server shared by its tests, say) runs on one worker, so that
# the fixture is made once; the tests of other modules go to whichever worker is free. The longest
# modules are handed out first: one of them started last would keep its worker busy after the others end.
FIRST = (
    "test_reliability_nodes",
    "test_kafka_fixtures",
    "test_http_proxy",
    "test_axe",
    "test_webhook_fixtures",
    "test_security_portal",
    "test_rabbitmq",
    "test_reliability_mqtt",
    "test_mqtt5_fixtures",
    "test_rabbitmq_fixtures",
    "test_proxy_fixtures",
    "test_accessibility",
    "test_reliability_kafka",
    "test_secrets_at_rest",
    "test_kafka",
    "test_roles",
    "test_reliability_lifecycle",
    "test_browser",
)


def module_scoped(item):
    definitions = item._fixtureinfo.name2fixturedefs.values()
    return any(overrides[-1].scope in ("module", "class") for overrides in definitions)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__
        if "browser" in item.fixturenames or module.startswith(("test_browser", "test_axe", "test_accessibility")):
            item.add_marker(pytest.mark.browser)
        if module in BROKER_MODULES or BROKER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.broker)
    grouped = {item.module.__name__ for item in items if module_scoped(item)}
    for item in items:
        if item.module.__name__ in grouped and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    rank = {module: i for i, module in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(FIRST)))  # stable: each module keeps its order


@pytest.fixture
def private_broker(tmp_path):
    """A Mosquitto of the test's own, which it may stop and start again (on the same ports)."""
    for folder in ("broker", "certs"):
        (tmp_path / folder).mkdir()
    broker = Mosquitto(tmp_path / "broker", tmp_path / "certs").start()
    yield broker
    broker.stop()
