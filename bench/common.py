"""Helpers shared by the benchmark scripts (bench/messages.py, bench/kafka.py, bench/mqtt.py, bench/webhook.py).

A real `gatehouse serve` on free ports of 127.0.0.1 with a temp SQLite, APIs imported and started
through the management API, processes each in their own session and all stopped on exit, the
raw-socket client pieces (no HTTP library in the measured paths), wrk POSTing with a Lua script,
and the 1,000-stream SSE fan-out client, run as `python bench/common.py --fanout-client PORT PATH N`.
"""

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ADMIN_PASSWORD = "bench-admin-pw"
MGMT = "/management/v2/environments/DEFAULT"
ROOT = Path(__file__).resolve().parent.parent
BODY_1K = b'{"order":"GATE-0000001","side":"buy","qty":100,"note":"' + b"x" * 967 + b'"}'
assert len(BODY_1K) == 1024


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
            proc = subprocess.Popen(
                args,
                cwd=workdir,
                env=env,
                stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=subprocess.STDOUT if stdout is None else log,
                start_new_session=True,
            )
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

    def __init__(self, procs, workdir, log_level="WARNING", env=None):
        """env: more environment variables for the process."""
        import requests

        portal_port, self.port = free_port(), free_port()
        # PYTHONPATH: this checkout's gateway, not whichever checkout `pip install -e` last named.
        environment = dict(
            os.environ,
            GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            PYTHONUNBUFFERED="1",
            GATEHOUSE_INSTANCE_PATH=str(Path(workdir) / f"instance-{portal_port}"),
            GATEHOUSE_LOG_LEVEL=log_level,
            PYTHONPATH=str(ROOT),
            # one process unless a bench asks for more: the CPU figures read this process's time
            GATEHOUSE_WORKERS="1",
        )
        environment.update(env or {})
        environment.pop("GATEHOUSE_DATABASE_URL", None)  # the default: SQLite in the temp instance folder
        args = [
            sys.executable,
            "-c",
            "import app, sys; sys.exit(app.main())",
            "serve",
            "--portal-port",
            str(portal_port),
            "--gateway-port",
            str(self.port),
        ]
        self.procs = procs
        self.proc = procs.start(args, workdir, environment)
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


def api(name, path, endpoint, entrypoints):
    return {
        "name": name,
        "apiVersion": "1",
        "definitionVersion": "4.0.0",
        "type": "message",
        "listeners": [{"type": "http", "paths": [{"path": path}], "entrypoints": entrypoints}],
        "endpointGroups": [endpoint],
    }


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


def sse_request(port, path, client_id):
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"X-Gravitee-Client-Identifier: {client_id}\r\n\r\n"
    ).encode()


def post_request(port, path, body):
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def read_headers_any(sock, buf=b""):
    """Headers and the rest of a response whose body is Content-Length bytes long (read fully)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[length:]


def warm_up_posts(port, path, count=20, body=BODY_1K):
    """A few POSTs, each answered 202, before measuring (the first one creates the endpoint's client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        for _ in range(count):
            sock.sendall(post_request(port, path, body))
            head, _ = read_headers_any(sock)
            assert head.startswith(b"HTTP/1.1 202"), head


# ---------------------------------------------------------------- wrk
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) accepted = 0; other = 0 end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("ACCEPTED %%d OTHER %%d ERRORS %%d\\n", a, o,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("LATENCY p50 %%d p99 %%d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_tools(*tools):
    """Installs the missing ones with apt-get (Debian package names equal to the commands)."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{' and '.join(missing)} not found: apt-get install {' '.join(missing)}")
    print(f"installing {' '.join(missing)}: apt-get install -y {' '.join(missing)}", flush=True)
    # The Debian nginx package would start a system nginx: policy-rc.d usually refuses it, and it is not used.
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL)


def wrk_post(port, path, duration, connections, workdir, body=BODY_1K):
    """`wrk -t2 -c<connections>` POSTing `body` (ASCII); 202s/s, latency, and what was not a 202."""
    ensure_tools("wrk")
    script = Path(workdir) / "post.lua"
    script.write_text(WRK_LUA % body.decode())
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        cwd=workdir,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    text = out.stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(m?s)", text).group(1))
    seconds = float(re.search(r"requests in ([\d.]+)(m?s)", text).group(1))
    if re.search(r"requests in [\d.]+ms", text):
        seconds /= 1000
    accepted, other, errors = map(int, re.search(r"ACCEPTED (\d+) OTHER (\d+) ERRORS (\d+)", text).groups())
    p50, p99 = map(int, re.search(r"LATENCY p50 (\d+) p99 (\d+)", text).groups())
    return {
        "requests": total,
        "accepted": accepted,
        "other": other,
        "errors": errors,
        "seconds": seconds,
        "rate": accepted / seconds,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


# ---------------------------------------------------------------- SSE fan-out client
FANOUT_DATA = re.compile(rb"\ndata: (\d+) (\d+|END) ([0-9.]+)")


def fanout_client(port, path, clients):
    """Separate process: `clients` greenlets, each with a raw socket reading one SSE stream.

    Messages are `<phase> <seq> <send time> <padding>`, then `<phase> END <count> <time>`. Each
    stream checks that it gets seq 0, 1, 2 ... in order; when every stream has seen a phase's END
    (or 20 s after the first one did), one JSON line per phase goes to stdout. `lag_*` is the
    send-to-read time of the first message of each read; `reach_*` the time until the last stream
    read a message (greenlets run one at a time, so the last read of a seq is the latest)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    raise_nofile()

    phases = {}
    ready = []
    broken = {"closed": 0, "errors": 0}  # streams that ended, error events

    def phase_stats(p):
        return phases.setdefault(
            p,
            {
                "phase": p,
                "deliveries": 0,
                "missing": 0,
                "disorder": 0,
                "ended": 0,
                "first_ts": None,
                "last_rx": 0.0,
                "lags": [],
                "reported": False,
                "sent": {},
                "reached": {},
            },
        )

    def reader(i):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        sock.sendall(sse_request(port, path, f"fan-{i}"))
        buf = b""
        while b"retry:" not in buf:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed before subscribing")
            buf += data
        ready.append(i)
        buf = buf[buf.index(b"retry:") :]
        current, expected = None, 0
        while True:
            data = sock.recv(1 << 16)
            now = time.time()
            if not data:
                broken["closed"] += 1
                return
            buf += data
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            complete, buf = buf[: cut + 2], buf[cut + 2 :]
            if b"event: error" in complete:
                broken["errors"] += 1
                sys.stderr.write(complete[complete.index(b"event: error") :][:300].decode() + "\n")
            found = FANOUT_DATA.findall(complete)
            if not found:
                continue
            first = True
            for p, seq, ts in found:
                p = int(p)
                if p != current:
                    current, expected = p, 0
                st = phases.get(p) or phase_stats(p)
                if seq == b"END":
                    st["missing"] += max(0, int(ts) - expected)  # for END the third field is the count
                    st["ended"] += 1
                    if st["ended"] == 1:
                        gevent.spawn(report_later, p)
                    if st["ended"] == len(ready):
                        report(p)
                    continue
                seq = int(seq)
                if seq != expected:
                    if seq > expected:
                        st["missing"] += seq - expected
                    else:
                        st["disorder"] += 1
                expected = seq + 1
                st["deliveries"] += 1
                st["reached"][seq] = now
                if seq not in st["sent"]:
                    st["sent"][seq] = ts
                if first:
                    ts = float(ts)
                    st["lags"].append(now - ts)
                    if st["first_ts"] is None or ts < st["first_ts"]:
                        st["first_ts"] = ts
                    first = False
                st["last_rx"] = now

    def report(p):
        st = phases[p]
        if st["reported"]:
            return
        st["reported"] = True
        lags = sorted(st.pop("lags")) or [0.0]
        sent = st.pop("sent")
        reach = sorted(at - float(sent[seq]) for seq, at in st.pop("reached").items()) or [0.0]
        st.update(reach_p50=percentile(reach, 50), reach_p99=percentile(reach, 99), reach_max=reach[-1])
        st.update(
            lag_p50=lags[len(lags) // 2],
            lag_p99=lags[int(len(lags) * 0.99)],
            lag_max=lags[-1],
            clients=len(ready),
            errors=broken["closed"] + broken["errors"],
        )
        print(json.dumps(st), flush=True)

    def report_later(p):
        gevent.sleep(20)
        report(p)

    readers = []
    for i in range(clients):
        readers.append(gevent.spawn(reader, i))
        if i % 100 == 99:
            gevent.sleep(0.05)  # a gentler connection ramp than 1,000 at once
    deadline = time.monotonic() + 60
    while len(ready) < clients and time.monotonic() < deadline:
        failed = [g for g in readers if g.dead and g.exception]
        if failed:
            print(json.dumps({"error": repr(failed[0].exception)}), flush=True)
            return 1
        gevent.sleep(0.05)
    print(json.dumps({"ready": len(ready)}), flush=True)
    gevent.joinall(readers)
    return 0


class JsonLines:
    """A helper process (started here) that reports on its stdout, one JSON object a line."""

    def __init__(self, procs, workdir, args, what):
        self.what = what
        self.proc = procs.start(args, workdir, stdout=subprocess.PIPE)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        # Lines already read, kept here: a buffered readline() would take several lines from the
        # pipe at once, and select() would then wait for more while the next one sits in its buffer.
        self.buffer = b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if not self.selector.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(
                    f"{self.what} said nothing in {timeout:g} s: {self.proc.log_path.read_text()[-1000:]}"
                )
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError(f"{self.what} ended: {self.proc.log_path.read_text()[-2000:]}")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


class FanoutClient(JsonLines):
    def __init__(self, procs, workdir, port, path, clients):
        super().__init__(
            procs,
            workdir,
            [sys.executable, str(Path(__file__).resolve()), "--fanout-client", str(port), path, str(clients)],
            "the fan-out client",
        )

    @classmethod
    def connected(cls, procs, workdir, gateway, path, clients):
        """(the client process once all its streams are open, gateway VmRSS before, with them idle)."""
        rss_before = rss_mib(gateway.pid)
        print(f"  connecting {clients:,} clients ...", flush=True)
        client = cls(procs, workdir, gateway.port, path, clients)
        ready = client.line(90)
        if "error" in ready or ready["ready"] != clients:
            raise RuntimeError(f"fan-out clients: {ready}")
        time.sleep(1)
        rss_idle = rss_mib(gateway.pid)
        print(
            f"  gateway VmRSS {rss_before:.0f} MiB before the clients, {rss_idle:.0f} MiB with "
            f"{clients:,} idle streams",
            flush=True,
        )
        return client, rss_before, rss_idle


if __name__ == "__main__":
    if sys.argv[1:2] != ["--fanout-client"] or len(sys.argv) != 5:
        sys.exit("usage: python bench/common.py --fanout-client PORT PATH N")
    sys.exit(fanout_client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))


def alternating_ratios(pairs, runs):
    """pairs: name -> (measure the baseline, measure the other), each a callable giving a rate. Each
    run measures every pair back to back, the two in alternating order from run to run (drifts of the
    machine then fall on both alike); name -> [other / baseline of each run]."""
    ratios = {name: [] for name in pairs}
    for run in range(runs):
        print(f"run {run + 1}/{runs}", flush=True)
        for name, (baseline, other) in pairs.items():
            order = [baseline, other] if run % 2 == 0 else [other, baseline]
            rates = {id(measure): measure() for measure in order}
            ratios[name].append(rates[id(other)] / rates[id(baseline)])
    return ratios


def report_ratios(what, ratios, targets):
    """Prints each pair's median of its runs' ratios against its target (None: reported); True when one is missed."""
    missed = False
    for name, values in ratios.items():
        figure = median(values)
        bound = targets.get(name)
        verdict = f"target >= {bound:g}: {'met' if figure >= bound else 'missed'}" if bound else "reported"
        missed |= bound is not None and figure < bound
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"{what} {name}: median {figure:.3f} ({verdict}); runs {runs}", flush=True)
    return missed
