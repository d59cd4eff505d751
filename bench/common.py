"""Helpers shared by the benchmark scripts (bench/messages.py, bench/kafka.py).

A real `gatehouse serve` on free ports of 127.0.0.1 with a temp SQLite, APIs imported and started
through the management API, processes each in their own session and all stopped on exit, and the
raw-socket client pieces (no HTTP library in the measured paths).
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ADMIN_PASSWORD = "bench-admin-pw"
MGMT = "/management/v2/environments/DEFAULT"


# ---------------------------------------------------------------- processes
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


class Processes:
    """Every process this script starts, each in its own session; all stopped on exit."""

    def __init__(self):
        self.procs = []

    def start(self, args, workdir, env=None, stdout=None, stdin=None):
        """stdout: the log file unless given (subprocess.PIPE, say); stderr always goes to the log."""
        log_path = Path(workdir) / f"proc-{len(self.procs)}.log"
        with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(args, cwd=workdir, env=env, stdin=stdin,
                                    stdout=log if stdout is None else stdout,
                                    stderr=subprocess.STDOUT if stdout is None else log,
                                    start_new_session=True)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, timeout=10):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
            proc.wait()

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            self.stop(proc)


class Gatehouse:
    """A `gatehouse serve` process (temp SQLite in `workdir`, free ports) and its management API."""

    def __init__(self, procs, workdir, log_level="WARNING"):
        import requests

        portal_port, self.port = free_port(), free_port()
        env = dict(os.environ, GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONUNBUFFERED="1",
                   GATEHOUSE_INSTANCE_PATH=str(Path(workdir) / f"instance-{portal_port}"),
                   GATEHOUSE_LOG_LEVEL=log_level)
        env.pop("GATEHOUSE_DATABASE_URL", None)  # the default: SQLite in the temp instance folder
        args = [sys.executable, "-c", "import app, sys; sys.exit(app.main())", "serve",
                "--portal-port", str(portal_port), "--gateway-port", str(self.port)]
        self.procs = procs
        self.proc = procs.start(args, workdir, env)
        self.pid = self.proc.pid
        wait_for_port(portal_port, self.proc)
        wait_for_port(self.port, self.proc)
        self.http = requests.Session()
        self.http.auth = ("admin", ADMIN_PASSWORD)
        self.portal = f"http://127.0.0.1:{portal_port}{MGMT}"

    def deploy(self, definition, timeout=10):
        """Import and start an API; returns its id once the gateway serves it."""
        response = self.http.post(f"{self.portal}/apis/_import/definition", json=definition, timeout=30)
        assert response.status_code == 201, response.text
        api_id = response.json()["id"]
        response = self.http.post(f"{self.portal}/apis/{api_id}/_start", timeout=30)
        assert response.status_code == 204, response.text
        deadline = time.monotonic() + timeout
        while api_id not in self.http.get(f"{self.portal}/_runtime", timeout=30).json()["apis"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not start serving the API")
            time.sleep(0.05)
        return api_id

    def stop(self):
        self.http.close()
        self.procs.stop(self.proc)


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def rss_mib(pid):
    """VmRSS of a process in MiB, from /proc/<pid>/status (None where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


# ---------------------------------------------------------------- client
# The client sets TCP_QUICKACK after each read (see bench/messages.py's docstring); scripts may
# turn it off by setting common.QUICKACK = False.
QUICKACK = hasattr(socket, "TCP_QUICKACK")


def quickack(sock):
    """ACK what arrived at once instead of delaying the ACK."""
    if QUICKACK:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def recv_some(sock):
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


def read_headers(sock, buf=b""):
    while b"\r\n\r\n" not in buf:
        buf += recv_some(sock)
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(head.decode("latin-1"))
    return head, rest
