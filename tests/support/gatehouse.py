"""Real `gatehouse serve` processes on free ports, each with its own instance folder, and small
clients for the management API and the gateway."""

import os
import random
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

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "test-admin-pw"
MGMT = "/management/v2/environments/DEFAULT"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restartable_port():
    """A free port below the kernel's ephemeral range, for a server a test stops and starts again
    on the same port: a port from that range can be handed, while the server is down, to some
    outgoing connection of another test as its source port, and the restart could not bind it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(10000, max(10001, low))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


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


def refused(port):
    """Does 127.0.0.1:port refuse a new connection (nothing listens on it)?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


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
        response = self.mgmt(
            "POST", f"/apis/{api_id}/subscriptions", json={"applicationId": application["id"], "planId": plan_id}
        )
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

    def rss_mb(self):
        """The process's resident memory."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024

    def socket_count(self):
        """How many sockets this process holds (listening, connected, to brokers): what a leak of
        connections would grow, unlike its file count (SQLite opens files as its pool grows)."""
        count = 0
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                count += os.readlink(f"/proc/{self.proc.pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue  # closed meanwhile
        return count

    def connections_to(self, port):
        """How many TCP connections this process holds open to `port` on 127.0.0.1 (read from /proc, as
        `ss -tnp` would show them)."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.proc.pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        wanted = f"0100007F:{port:04X}"
        with open(f"/proc/{self.proc.pid}/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
        # st 01 is ESTABLISHED; a socket the process closed is no longer among its descriptors
        return sum(1 for row in rows if row[2] == wanted and row[3] == "01" and row[9] in inodes)

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
                os.killpg(self.proc.pid, signal.SIGKILL)  # its session: a supervisor's workers too
                self.proc.wait()


def environment(workdir, database_url=None, **extra):
    # PYTHONPATH: the server runs this checkout's code, whichever checkout `pip install -e` last named.
    # GATEHOUSE_TCP_PORT 0: the system picks one, so that servers running side by side never race for a port.
    # A 5 s shutdown grace: a test's teardown must not wait the default 30 s for a stream it left open.
    # One worker (no supervisor): ~180 servers on a small machine; a test of workers asks for more.
    env = dict(
        os.environ,
        GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONPATH=str(ROOT),
        GATEHOUSE_INSTANCE_PATH=str(workdir / "instance"),
        PYTHONUNBUFFERED="1",
        GATEHOUSE_TCP_PORT="0",
        GATEHOUSE_SHUTDOWN_GRACE_SECONDS="5",
        GATEHOUSE_WORKERS="1",
    )
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
    proc = subprocess.Popen(
        args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec_fn
    )
    proc.log_path = log_path
    return proc


LISTENING = re.compile(r"^Gatehouse (portal|gateway|TCP): +(?:http://)?[^ ]*:(\d+)/?", re.MULTILINE)


def launch_gunicorn(workdir, workers=2):
    """Gatehouse under gunicorn's gevent workers, portal and gateway each on a port of their own."""
    portal_port, gateway_port = free_port(), free_port()
    args = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers), "--no-control-socket",
            "-b", f"127.0.0.1:{portal_port}", "-b", f"127.0.0.1:{gateway_port}", "app:make_wsgi()"]  # fmt: skip
    env = environment(workdir, GATEHOUSE_GATEWAY_PORT=str(gateway_port))
    return Server(start_process(args, workdir, env, (portal_port, gateway_port)), portal_port, gateway_port, workdir)


# `gatehouse serve` on ports it picks, run from the checkout under test
SERVE = [
    sys.executable,
    "-c",
    "import app, sys; sys.exit(app.main())",
    "serve",
    "--portal-port",
    "0",
    "--gateway-port",
    "0",
]


def refused_start(workdir, env, timeout=60, args=()):
    """A `gatehouse serve` that should stop at start: what it printed and its exit status."""
    return subprocess.run([*SERVE, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def launch(workdir, database_url=None, preexec_fn=None, args=(), **extra):
    """A `gatehouse serve` process with its instance folder in `workdir`. It binds port 0 and
    prints the ports it got: ports picked here and bound later could be taken in between.
    `preexec_fn` runs in the child before it starts (to lower its limits, say); `args` are more
    arguments of `gatehouse serve`."""
    proc = _popen(
        [*SERVE, *args], workdir, environment(workdir, database_url, **extra), uuid.uuid4().hex[:8], preexec_fn
    )
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


def missing(what):
    """A test that needs a service fails in CI when it is missing, and is skipped elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (the Makefile's test-deps installs it)")
    pytest.skip(f"needs {what}")


def until(check, timeout=1.0):
    """Poll check() until it is true; the time it took, or an AssertionError past the timeout."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - started


# ----- several workers: which one answers
def runtime(server):
    """/_runtime over a new connection: whichever worker accepts it answers."""
    response = requests.get(
        server.portal + MGMT + "/_runtime",
        auth=("admin", ADMIN_PASSWORD),
        headers={"Connection": "close"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def serving_pids(server, count=2, timeout=10):
    """The pids answering new connections, polled until `count` differ."""
    pids = set()
    until(lambda: pids.add(runtime(server)["pid"]) or len(pids) >= count, timeout)
    return pids
